"""Exceptions raised by fastdnn."""


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss or parameter.

    The model has been restored to the end of the last good epoch.

    Attributes
    ----------
    epoch : int
        1-based epoch in which the loss stopped being finite.
    batch : int
        0-based index of the batch within that epoch.
    """

    def __init__(self, epoch, batch):
        self.epoch = epoch
        self.batch = batch
        super().__init__(
            f"training diverged at epoch {epoch}, batch {batch}: the loss or a parameter became "
            "NaN or infinite. The parameters and optimizer state were restored to the end of "
            f"epoch {epoch - 1}. Try a lower learning rate."
        )


class NotCompiledError(RuntimeError, ValueError):
    """A model was used for training or evaluation before ``compile`` chose its loss.

    A ``ValueError`` (bad use of the API) and, as in Keras, a ``RuntimeError``.
    """
