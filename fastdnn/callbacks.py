"""Keras-style callbacks, called by ``Sequential.fit`` between epochs.

A callback sees the model (``self.model``) and the epoch's logs. Setting
``model.stop_training = True`` ends the fit after the current epoch.
"""

import math

import numpy as np

from ._validation import non_negative_float, positive_float, positive_int


class Callback:
    """Base class: override any of the hooks. ``epoch`` is 0-based, as in Keras."""

    model = None

    def set_model(self, model):
        """Attach the model being trained."""
        self.model = model

    def on_train_begin(self, logs=None):
        """Called once before the first epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called before each epoch."""

    def on_epoch_end(self, epoch, logs=None):
        """Called after each epoch with its metrics (``loss``, ``val_loss``, ...)."""

    def on_train_end(self, logs=None):
        """Called once after the last epoch (also after an early stop)."""


def _improvement(mode, monitor):
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


class _Monitor(Callback):
    """Shared bookkeeping of a monitored metric."""

    def __init__(self, monitor, mode, min_delta):
        self.monitor = monitor
        self.mode = _improvement(mode, monitor)
        self.min_delta = non_negative_float(min_delta, "min_delta")
        self.best = None

    def _value(self, logs):
        if not logs or self.monitor not in logs:
            available = sorted(logs or {})
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, which the fit does not report "
                f"(available: {available}); pass validation_data for 'val_*' metrics"
            )
        return logs[self.monitor]

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
    patience : int, default 5
        Epochs without improvement before stopping.
    restore_best_weights : bool, default True
        On stopping (or at the end), put back the weights of the best epoch.
    min_delta : float, default 0.0
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}, default "auto"
        "auto" maximises metrics whose name contains "acc" and minimises the rest.

    Attributes
    ----------
    stopped_epoch : int or None
        0-based epoch at which training stopped, None if it ran to the end.
    best_epoch : int or None
    """

    def __init__(
        self, monitor="val_loss", patience=5, restore_best_weights=True, min_delta=0.0, mode="auto"
    ):
        super().__init__(monitor, mode, min_delta)
        self.patience = positive_int(patience, "patience")
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self, logs=None):
        self.best = None
        self.best_epoch = None
        self.best_weights = None
        self.stopped_epoch = None
        self._wait = 0

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model after each epoch with ``model.save`` (on rank 0 only when distributed).

    Parameters
    ----------
    filepath : str
        Target path; may contain ``{epoch}`` (1-based) and any log key, e.g.
        ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``.
    monitor : str, default "val_loss"
        Used only with ``save_best_only``.
    save_best_only : bool, default False
        Save only when ``monitor`` improves.
    mode : {"auto", "min", "max"}, default "auto"
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, mode, 0.0)
        self.filepath = str(filepath)
        self.save_best_only = bool(save_best_only)

    def on_train_begin(self, logs=None):
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        if self.model._rank != 0:
            return
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        self.model.save(self.filepath.format(epoch=epoch + 1, **(logs or {})))


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate before each epoch to ``schedule(epoch, lr)``.

    Parameters
    ----------
    schedule : callable
        ``(epoch: int (0-based), lr: float) -> float``, the rate for that epoch.
    """

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError("schedule must be callable as schedule(epoch, lr)")
        self.schedule = schedule

    def on_train_begin(self, logs=None):
        self.initial_lr = self.model.optimizer.lr

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, self.model.optimizer.lr)
        self.model.optimizer.lr = positive_float(lr, "scheduled learning rate")


class StepDecay(LearningRateScheduler):
    """Multiply the initial learning rate by ``gamma`` every ``step_size`` epochs
    (as ``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, step_size, gamma=0.1):
        self.step_size = positive_int(step_size, "step_size")
        self.gamma = positive_float(gamma, "gamma")
        super().__init__(
            lambda epoch, lr: self.initial_lr * self.gamma ** (epoch // self.step_size)
        )


class ExponentialDecay(LearningRateScheduler):
    """Learning rate ``initial * gamma ** epoch``
    (as ``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, gamma):
        self.gamma = positive_float(gamma, "gamma")
        super().__init__(lambda epoch, lr: self.initial_lr * self.gamma**epoch)


class CosineDecay(LearningRateScheduler):
    """Cosine annealing from the initial rate to ``min_lr`` over ``t_max`` epochs
    (as ``torch.optim.lr_scheduler.CosineAnnealingLR`` without restarts)."""

    def __init__(self, t_max, min_lr=0.0):
        self.t_max = positive_int(t_max, "t_max")
        self.min_lr = non_negative_float(min_lr, "min_lr")
        super().__init__(self._rate)

    def _rate(self, epoch, lr):
        progress = min(epoch, self.t_max) / self.t_max
        cosine = (1 + math.cos(math.pi * progress)) / 2
        rate = self.min_lr + (self.initial_lr - self.min_lr) * cosine
        # The learning rate must stay > 0 for the optimizer.
        return max(rate, np.finfo(np.float32).tiny)
