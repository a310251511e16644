"""``Sequential``: a stack of dense layers trained and run by the compiled CPU kernels.

The model owns every array: one flat parameter buffer (all weights first, then all biases; each
W and b is a view), the optimizer state, and the workspace a fit allocates once. Python only
validates input, allocates, and calls one compiled function per epoch.
"""

import numbers
import time
from contextlib import contextmanager

import numpy as np
from tqdm.auto import tqdm

from . import io as _io
from ._validation import (
    as_finite,
    as_inputs,
    as_numeric_array,
    check_finite,
    choice,
    is_finite,
    non_negative_float,
    positive_finite_scalar,
    positive_int,
    resolve_dtype,
)
from .callbacks import Callback
from .engines import Scratch, engine_module
from .errors import NotCompiledError, TrainingDivergedError
from .kernels.cpu import losses as _loss_kernels
from .kernels.cpu import network as _net
from .kernels.cpu import optimizers as _opt_kernels
from .kernels.cpu.sparse import CSR
from .layers import Dense, Layer, layer_from_config
from .optimizers import OPTIMIZERS, Adam, get_optimizer

LOSSES = _loss_kernels.LOSS_CODES
# The fused, numerically stable gradients exist for these pairs only; MSE takes any elementwise
# output activation.
REQUIRED_OUTPUT = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "poisson": "exp"}
# Losses whose targets are probabilities, in [0, 1], and which report an accuracy.
CLASSIFICATION_LOSSES = ("cross_entropy", "binary_cross_entropy")
DEVICES = ("cpu", "cuda")


def _require_nonnegative(variance, name):
    """Raise ValueError naming ``name`` when the running variance ``variance`` has a negative
    entry (``set_weights`` and ``load`` accept none)."""
    if (variance < 0).any():
        raise ValueError(f"{name} must be >= 0, found {variance.min():g}")


class History:
    """Per-epoch metrics of a fit, as in Keras.

    Attributes
    ----------
    history : dict of str to list of float
        ``"loss"`` (penalty included), ``"accuracy"`` for classification losses, and
        ``"val_loss"``/``"val_accuracy"`` with validation data; one entry per epoch.
    epoch : list of int
        0-based epoch indices.
    epoch_seconds : list of float
        Wall time of each epoch's training pass (validation excluded).
    comm_seconds : list of float
        Of that, time spent communicating between MPI ranks (0 without ``distributed``).
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.epoch_seconds = []
        self.comm_seconds = []

    def _append(self, logs, seconds, comm_seconds):
        self.epoch.append(len(self.epoch))
        self.epoch_seconds.append(seconds)
        self.comm_seconds.append(comm_seconds)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class Sequential:
    """A feed-forward network of :class:`Dense` layers.

    Parameters
    ----------
    layers : list of Dense
        Consecutive layers; each layer's ``in_features`` equals the previous ``out_features``.
        ``softmax`` is allowed on the last layer only.
    dtype : {"float32", "float64"}, default "float32"
        Precision of parameters, activations and arithmetic.
    seed : int or None, default None
        Seeds the initial weights (He uniform for the ReLU family, Glorot uniform otherwise,
        zero biases) and the shuffling. The same seed gives identical weights.
    device : {"cpu", "cuda"}, default "cpu"
        Where ``fit``, ``predict`` and ``evaluate`` run. ``"cuda"`` uses an NVIDIA GPU through
        the ``@cuda.jit`` kernels (``pip install "fastdnn[cuda]"``): parameters, gradients,
        optimizer state and workspace stay on the GPU for a whole fit, the data set is copied
        once when it fits in GPU memory (else streamed batch by batch), and only the per-epoch
        metrics come back (the weights too when callbacks are given). Initial weights and the
        training results are those of ``"cpu"``, to float32 rounding. Without a usable GPU,
        ``"cuda"`` raises a ``RuntimeError`` saying what is missing.

    Examples
    --------
    >>> import fastdnn as fd
    >>> model = fd.Sequential([fd.Dense(64, 128, activation="relu"),
    ...                        fd.Dense(128, 10, activation="softmax")], seed=0)
    >>> model.compile(loss="cross_entropy", optimizer=fd.Adam(lr=1e-3))
    """

    def __init__(self, layers, dtype="float32", seed=None, device="cpu"):
        device = choice(device, "device", DEVICES)
        if device == "cuda":
            from .engines.cuda import require_cuda

            require_cuda()  # one clear error before anything is set up
        layers = list(layers) if isinstance(layers, (list, tuple)) else None
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError(
                "layers must be a non-empty list of fastdnn layers (fastdnn.Dense, "
                "fastdnn.BatchNorm, fastdnn.LayerNorm, fastdnn.Dropout)"
            )
        for index in (0, len(layers) - 1):
            if not isinstance(layers[index], Dense):
                where = "first" if index == 0 else "last"
                why = (
                    "it acts on a previous layer's outputs"
                    if index == 0
                    else "its activation is fused with the loss"
                )
                raise ValueError(
                    f"the {where} layer must be Dense, got {type(layers[index]).__name__} "
                    f"(layer {index}: {why})"
                )
        widths = [layers[0].in_features]
        for i, layer in enumerate(layers):
            widths.append(layer.output_width(widths[-1], i))
        for i, layer in enumerate(layers[:-1]):
            if layer.activation == "softmax":
                raise ValueError(
                    f"softmax is only allowed on the last layer; layer {i} of {len(layers)} uses it"
                )
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
        ):
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
        self.layers = layers
        self.dtype = np.dtype(resolve_dtype(dtype))
        self.seed = seed
        self.device = device
        self._build_table(widths)
        self._rng = np.random.default_rng(seed)
        for buffer, slots_per_layer in (
            (self._params, self._param_slots),
            (self._running, self._state_slots),
        ):
            views_per_layer = self._slot_views(buffer, slots_per_layer)
            for layer, slots, views in zip(layers, slots_per_layer, views_per_layer):
                for (name, _, _), view in zip(slots, views):
                    layer.initialise(name, view, self._rng)
        # Dropout masks are keyed by this and the update's number; drawn from a child of the
        # seed's sequence, so that the weights and shuffling of a seed do not change.
        seeds = np.random.SeedSequence(seed).spawn(1)[0]
        self._mask_key = seeds.generate_state(1, np.uint64)[0]

        self.loss = None
        self.optimizer = None
        self.l1 = 0.0
        self.l2 = 0.0
        self.loss_weight = 1.0
        self.clipnorm = None
        self._state = None
        self._step = np.zeros(1, dtype=np.int64)
        self._rank = 0  # MPI rank during a distributed fit; checkpoints come from rank 0 only

    # ----------------------------------------------------------------------------- structure
    @property
    def n_features_in(self):
        """Width of the input."""
        return int(self._sizes[0])

    @property
    def n_outputs(self):
        """Width of the output."""
        return int(self._sizes[-1])

    def count_params(self):
        """Number of trainable scalars (weights, biases, normalisation scales and shifts)."""
        return int(self._params.size)

    def _build_table(self, widths):
        """The layer table (``self._net``), each layer's parameter and statistics slots
        (``(name, offset, shape)`` per array), and the zeroed buffers they index."""
        n_layers = len(self.layers)
        shapes = [
            layer.parameter_shapes(n_in, n_out)
            for layer, n_in, n_out in zip(self.layers, widths, widths[1:])
        ]
        # Penalised weights first, then every unpenalised vector: L1/L2 cover [0, n_weights).
        n_weights = sum(int(np.prod(s)) for layer in shapes for _, s, pen in layer if pen)
        cursors = {True: 0, False: n_weights}
        self._param_slots, self._state_slots = [], []
        s_cursor = 0
        table = {name: np.full(n_layers, -1, np.int64) for name in ("p_off", "q_off", "s_off")}
        for i, (layer, layer_shapes) in enumerate(zip(self.layers, shapes)):
            slots = []
            for name, shape, penalised in layer_shapes:
                slots.append((name, cursors[penalised], shape))
                cursors[penalised] += int(np.prod(shape))
            for column, (_, offset, _) in zip(("p_off", "q_off"), slots):
                table[column][i] = offset
            self._param_slots.append(slots)
            states = []
            for name, shape in layer.state_shapes(widths[i + 1]):
                states.append((name, s_cursor, shape))
                s_cursor += int(np.prod(shape))
            if states:
                table["s_off"][i] = states[0][1]
            self._state_slots.append(states)
        constants = np.array([layer.constants() for layer in self.layers], dtype=np.float64)
        self._net = _net.Net(
            np.array([layer.kind for layer in self.layers], dtype=np.int64),
            np.array(widths, dtype=np.int64),
            np.array([layer.activation_code for layer in self.layers], dtype=np.int64),
            table["p_off"], table["q_off"], table["s_off"],
            constants[:, 0].copy(), constants[:, 1].copy(), constants[:, 2].copy(),
            n_weights,
        )  # fmt: skip
        self._sizes = self._net.sizes
        self._n_weights = n_weights
        self._params = np.zeros(cursors[False], dtype=self.dtype)
        self._running = np.zeros(s_cursor, dtype=self.dtype)

    @staticmethod
    def _slot_views(flat, slots_per_layer):
        return [
            tuple(flat[o : o + int(np.prod(shape))].reshape(shape) for _, o, shape in slots)
            for slots in slots_per_layer
        ]

    def _layer_views(self, flat):
        """Per layer, the views of its parameters in ``flat`` (the parameter buffer or one of
        its layout): ``(W, b)`` for Dense, ``(gamma, beta)`` for the normalisations, ``()``
        for Dropout."""
        return self._slot_views(flat, self._param_slots)

    def _dense_views(self, flat):
        """``[(W, b), ...]`` of the Dense layers alone, in order."""
        return [
            views
            for layer, views in zip(self.layers, self._layer_views(flat))
            if isinstance(layer, Dense)
        ]

    def _engine(self):
        """The engine module of ``device`` (:mod:`fastdnn.engines`)."""
        return engine_module(self.device)

    def _take_scratch(self):
        """The model's :class:`fastdnn.engines.Scratch`, held by one caller at a time: a
        concurrent caller (another thread; ``dict.pop`` is atomic) gets a new one. Hand it
        back with :meth:`_return_scratch`."""
        return self.__dict__.pop("_scratch", None) or Scratch()

    def _return_scratch(self, scratch):
        self._scratch = scratch.kept()

    @contextmanager
    def _borrowed_scratch(self):
        """:meth:`_take_scratch` for the duration of a ``with`` block."""
        scratch = self._take_scratch()
        try:
            yield scratch
        finally:
            self._return_scratch(scratch)

    def __getstate__(self):
        # The scratch buffers are memory, not state: pickles and copies leave them out.
        state = self.__dict__.copy()
        state.pop("_scratch", None)
        return state

    def __setstate__(self, state):
        # A pickle loaded from a read-only memory map (joblib) gives read-only buffers; the
        # kernels write the model's buffers (running statistics even in ``predict``'s typing),
        # so the model owns writable copies.
        for name in ("_params", "_running", "_state", "_step"):
            value = state.get(name)
            if isinstance(value, np.ndarray) and not value.flags.writeable:
                state[name] = value.copy()
        self.__dict__.update(state)

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        device = "" if self.device == "cpu" else f", device={self.device!r}"
        return f"Sequential([{inner}], dtype={self.dtype.name!r}, seed={self.seed!r}{device})"

    # ----------------------------------------------------------------------------- compile
    def compile(self, loss, optimizer=None, l1=0.0, l2=0.0, loss_weight=1.0, clipnorm=None):
        """Choose the loss, the optimizer and the weight penalty; resets the optimizer state.

        Parameters
        ----------
        loss : {"mse", "cross_entropy", "binary_cross_entropy", "poisson"}
            ``mse``: mean over all elements, any output activation but softmax.
            ``cross_entropy``: softmax output; integer labels or one-hot (probability) rows;
            mean over samples. ``binary_cross_entropy``: sigmoid output; targets in [0, 1];
            mean over all elements. ``poisson``: exp output (the log link), counts or rates
            ``y >= 0``; the half Poisson deviance ``y * log(y / mu) - y + mu`` of ``mu = exp(z)``
            (``0 * log 0 = 0``, so a perfect fit scores 0), as scikit-learn's
            ``HalfPoissonLoss`` plus its constant term; mean over all elements.
        optimizer : Optimizer or str, default Adam()
            An optimizer object (``fd.SGD``, ``fd.Adam``, ``fd.AdamW``, ``fd.RMSprop``) or name.
        l1, l2 : float, default 0.0
            Penalty ``l1 * sum|W| + (l2 / 2) * sum W**2`` on weights (not biases), included in
            the reported loss.
        loss_weight : float, default 1.0
            Positive finite factor on the data loss and its gradient, not on the penalty (as
            Keras' ``loss_weights`` for a single output): training minimises and every reported
            loss (history, :meth:`evaluate`, :meth:`loss_and_gradients`) is
            ``loss_weight * mean loss + penalty``. For example 0.5 gives scikit-learn's half
            squared error with ``"mse"``.
        clipnorm : float or None, default None
            When set (positive, finite), every update's gradient is scaled so that its global
            L2 norm, over all parameters, is at most ``clipnorm`` before the optimizer step:
            ``torch.nn.utils.clip_grad_norm_(model.parameters(), clipnorm)``. The L1/L2
            penalty, folded into the optimizer step, is not clipped.

        Raises
        ------
        ValueError
            For an unknown loss or optimizer, a loss that does not fit the output activation,
            or an invalid ``l1``, ``l2`` or ``loss_weight``; the model is left unchanged.
        """
        loss = choice(loss, "loss", LOSSES)
        output = self.layers[-1].activation
        required = REQUIRED_OUTPUT.get(loss)
        if required is not None and output != required:
            raise ValueError(
                f"loss {loss!r} needs a {required!r} output layer, the last layer uses {output!r}"
            )
        if loss == "mse" and output == "softmax":
            raise ValueError(
                "loss 'mse' does not fit a 'softmax' output layer; use 'cross_entropy' "
                "or another output activation"
            )
        optimizer = get_optimizer(Adam() if optimizer is None else optimizer)
        l1 = non_negative_float(l1, "l1")
        l2 = non_negative_float(l2, "l2")
        loss_weight = positive_finite_scalar(loss_weight, "loss_weight")
        if clipnorm is not None:
            clipnorm = positive_finite_scalar(clipnorm, "clipnorm")
        self.loss, self.optimizer, self.l1, self.l2 = loss, optimizer, l1, l2
        self.loss_weight, self.clipnorm = loss_weight, clipnorm
        self._state = np.zeros((optimizer.n_slots, self._params.size), dtype=self.dtype)
        self._step = np.zeros(1, dtype=np.int64)

    def _require_compiled(self, action):
        if self.loss is None:
            raise NotCompiledError(f"call compile(loss=..., optimizer=...) before {action}")

    # ----------------------------------------------------------------------------- targets
    def _targets(self, y, name, n_rows, x_name="X"):
        """Targets as a C-contiguous (rows, outputs) array of the model dtype."""
        y = as_numeric_array(y, name)
        n_out = self.n_outputs
        if y.ndim == 0 or y.shape[0] != n_rows:
            raise ValueError(
                f"{name} has {y.shape[0] if y.ndim else 0} samples but {x_name} has {n_rows}; "
                "they must match"
            )
        if self.loss != "mse":  # before the label and range checks, which NaN would confuse
            check_finite(y, name)
        if self.loss == "cross_entropy" and y.ndim == 1:
            labels = y.astype(np.int64)
            if (labels != y).any():
                raise ValueError(f"{name} must hold integer class labels 0..{n_out - 1}")
            outside = labels[(labels < 0) | (labels >= n_out)]
            if outside.size:
                raise ValueError(
                    f"{name} holds labels outside 0..{n_out - 1} (the output has {n_out} "
                    f"units): found {np.unique(outside)[:5].tolist()}"
                )
            targets = np.zeros((n_rows, n_out), dtype=self.dtype)
            targets[np.arange(n_rows), labels] = 1
            return targets
        if y.ndim == 1 and n_out == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[1] != n_out:
            raise ValueError(
                f"{name} must have shape ({n_rows}, {n_out})"
                + (" or hold integer labels" if self.loss == "cross_entropy" else "")
                + f", got {y.shape}"
            )
        if self.loss in CLASSIFICATION_LOSSES and ((y < 0).any() or (y > 1).any()):
            raise ValueError(f"{name} must lie in [0, 1] for loss {self.loss!r}")
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(
                f"{name} must be >= 0 (counts or rates) for loss 'poisson', found {y.min():g}"
            )
        if self.loss == "cross_entropy" and not np.allclose(y.sum(axis=1), 1, atol=1e-3):
            raise ValueError(f"{name} rows must be one-hot (or probabilities summing to 1)")
        return as_finite(y, name, self.dtype)

    def _sample_weight(self, sample_weight, name, n_rows):
        """Per-sample weights as a (rows,) array of the model dtype (ones when None)."""
        if sample_weight is None:
            return np.ones(n_rows, dtype=self.dtype)
        weight = as_numeric_array(sample_weight, name)
        if weight.shape != (n_rows,):
            raise ValueError(f"{name} must have shape ({n_rows},), got {weight.shape}")
        check_finite(weight, name)
        if (weight < 0).any() or not (weight > 0).any():
            raise ValueError(f"{name} must be >= 0 with at least one positive weight")
        return np.ascontiguousarray(weight, dtype=self.dtype)

    def _data(self, X, y, sample_weight=None, x_name="X", y_name="y"):
        inputs = X
        X = as_inputs(X, x_name, self.n_features_in, self.dtype)
        if y is inputs and isinstance(X, CSR):
            raise TypeError(
                f"{y_name} is the sparse {x_name}, but targets must be dense: pass "
                f"{y_name}={x_name}.toarray() (a sparse input is never densified)"
            )
        if y is inputs and self.loss == "mse" and X.shape[1] == self.n_outputs:
            Y = X  # an autoencoder's targets are its inputs: validated and converted once
        else:
            Y = self._targets(y, y_name, X.shape[0], x_name)
        weight_name = "sample_weight" if x_name == "X" else "sample_weight_val"
        return X, Y, self._sample_weight(sample_weight, weight_name, X.shape[0])

    def _metrics(self, loss_sum, correct, weight_sum, n_rows, prefix="", penalty=None):
        # Cross-entropy averages over samples; the elementwise losses (and the binary accuracy)
        # over all output elements. The loss is weighted by the sample weights.
        width = 1 if self.loss == "cross_entropy" else self.n_outputs
        if penalty is None:
            penalty = _opt_kernels.penalty(
                self._params, self._n_weights, self.dtype.type(self.l1), self.dtype.type(self.l2)
            )
        mean = float(loss_sum) / (float(weight_sum) * width)
        logs = {prefix + "loss": self.loss_weight * mean + penalty}
        if self.loss in CLASSIFICATION_LOSSES:
            logs[prefix + "accuracy"] = float(correct) / (n_rows * width)
        return logs

    def _fit_arguments(
        self, X, y, sample_weight, epochs, batch_size, validation_data, verbose, callbacks
    ):
        """Validate every argument of :meth:`fit` before anything changes."""
        self._require_compiled("fit")
        X, Y, weight = self._data(X, y, sample_weight)
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError(
                    "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, weights)"
                )
            validation = self._data(*validation_data, x_name="X_val", y_name="y_val")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        callbacks = list(callbacks or [])
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be fastdnn.Callback instances, got {callback!r}")
        return X, Y, weight, epochs, batch_size, validation, callbacks

    # ----------------------------------------------------------------------------- training
    def fit(
        self,
        X,
        y,
        epochs=1,
        batch_size=32,
        shuffle=True,
        validation_data=None,
        verbose=1,
        callbacks=None,
        sample_weight=None,
        distributed=False,
    ):
        """Train for ``epochs`` passes over ``(X, y)`` in mini-batches.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix/array of shape (n_samples, n_features)
            Sparse input (CSR or CSC; other formats are converted to CSR once) is never
            densified on the CPU: each batch's rows are gathered as CSR and the first layer
            reads only their stored values. With ``device="cuda"`` each batch is densified on
            the host and streamed to the GPU.
        y : array-like
            Integer labels (n_samples,) or rows (n_samples, n_outputs); see :meth:`compile`.
        epochs : int, default 1
        batch_size : int, default 32
            Samples per update; the last batch of an epoch may be smaller.
        shuffle : bool or callable, default True
            Visit the samples in a new random order each epoch (seeded by ``seed``). A callable
            ``shuffle(n_rows)`` gives each epoch's visiting order instead (a permutation of
            ``range(n_rows)``, like a PyTorch sampler; the scikit-learn estimators use it to
            visit rows in scikit-learn's order).
        validation_data : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), optional
            Evaluated after every epoch into ``val_loss`` (and ``val_accuracy``); ``X_val`` may
            be sparse, as ``X``.
        verbose : {0, 1, 2}, default 1
            0 silent, 1 a progress bar and a line per epoch, 2 a line per epoch.
        callbacks : list of Callback, optional
            Called between epochs (``fd.EarlyStopping``, ``fd.ModelCheckpoint``, learning-rate
            schedules); one may stop the fit by setting ``model.stop_training = True``.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights: each batch minimises ``sum_i w_i loss_i / sum_i w_i``.
        distributed : bool, default False
            Synchronous data-parallel training over MPI (see :mod:`fastdnn.engines.mpi`): every
            rank passes its own shard and ``batch_size`` rows per rank; global batch k is the
            concatenation of every rank's batch k. Without MPI, or with one rank, it is
            ordinary training.

        Returns
        -------
        History
            Per-epoch metrics in ``history.history``.

        Raises
        ------
        TrainingDivergedError
            If the loss or a parameter becomes non-finite; the model is restored to the end of
            the last good epoch first.
        """
        if distributed and self.device != "cpu":
            raise ValueError(
                "distributed=True trains on the CPU only; build the model with device='cpu'"
            )
        comm = None
        if distributed:
            from .engines.mpi import DistributedEpochRunner, agree, communicator

            comm = communicator()
        try:
            X, Y, weight, epochs, batch_size, validation, callbacks = self._fit_arguments(
                X, y, sample_weight, epochs, batch_size, validation_data, verbose, callbacks
            )
        except (TypeError, ValueError, RuntimeError) as error:
            if comm is not None:
                agree(comm, error)  # every rank raises, none waits in a collective
            raise
        if comm is None:
            # Held until the fit ends (put back in the ``finally`` below).
            scratch = self._take_scratch()
            runner = self._engine().EpochRunner(self, X, Y, weight, batch_size, scratch)
        else:
            agree(comm, None)
            runner = DistributedEpochRunner(self, X, Y, weight, batch_size, comm)
            verbose = verbose if runner.rank == 0 else 0
        self._rank = runner.rank
        weight_sum, n_rows = runner.reduce([float(weight.sum()), X.shape[0]])

        history = History()
        self.stop_training = False
        for callback in callbacks:
            callback.set_model(self)
            callback.on_train_begin()
        bar = tqdm(total=epochs, unit="epoch", disable=verbose != 1, leave=False)
        try:
            for epoch in range(1, epochs + 1):
                for callback in callbacks:
                    callback.on_epoch_begin(epoch - 1)
                # Read every epoch: a schedule may have changed the learning rate.
                hyper = self.optimizer.hyperparameters(self.dtype)
                n_local = X.shape[0]
                order = self._epoch_order(shuffle, n_local)
                runner.snapshot()
                start = time.perf_counter()
                loss_sum, correct, bad_batch = runner.train(order, hyper)
                seconds = time.perf_counter() - start
                if bad_batch >= 0 or not runner.params_finite():
                    runner.restore()
                    last_batch = bad_batch if bad_batch >= 0 else runner.n_batches - 1
                    raise TrainingDivergedError(epoch, last_batch)
                penalty = runner.penalty()
                logs = self._metrics(loss_sum, correct, weight_sum, n_rows, penalty=penalty)
                if validation is not None:
                    X_val, Y_val, w_val = validation
                    sums = runner.evaluate(X_val, Y_val, w_val)
                    totals = runner.reduce([*sums, float(w_val.sum()), X_val.shape[0]])
                    logs.update(self._metrics(*totals, prefix="val_", penalty=penalty))
                history._append(logs, seconds, runner.comm_seconds)
                if verbose:
                    text = "  ".join(f"{k}={v:.4f}" for k, v in logs.items())
                    rate = n_rows / seconds if seconds > 0 else float("inf")
                    line = f"epoch {epoch}/{epochs}  {text}  {rate:,.0f} samples/s"
                    bar.set_postfix(loss=f"{logs['loss']:.4f}", samples_s=f"{rate:,.0f}")
                    bar.update()
                    bar.write(line) if verbose == 1 else print(line)
                if callbacks:
                    runner.sync()  # callbacks may read or save the weights
                for callback in callbacks:
                    callback.on_epoch_end(epoch - 1, logs)
                if callbacks:
                    runner.reload()  # ... or change them
                if self.stop_training:
                    break
        except TrainingDivergedError:
            raise  # every rank sees the same reduced loss, so every rank raises it
        except BaseException as exc:
            runner.abort(exc)
            raise
        finally:
            try:
                runner.sync()  # the device's parameters, state and step back into the model
            finally:
                bar.close()
                if comm is None:
                    self._return_scratch(scratch)
        for callback in callbacks:
            callback.on_train_end()
        return history

    def _epoch_order(self, shuffle, n_rows):
        """The visiting order of one epoch over ``n_rows`` rows (see ``fit``'s ``shuffle``)."""
        if not callable(shuffle):
            return self._rng.permutation(n_rows) if shuffle else np.arange(n_rows)
        order = np.asarray(shuffle(n_rows))
        if (
            order.shape != (n_rows,)
            or order.dtype.kind not in "iu"
            or (n_rows and (order.min() < 0 or order.max() >= n_rows))
            or (np.bincount(order, minlength=n_rows) != 1).any()
        ):
            raise ValueError(f"shuffle({n_rows}) must return a permutation of range({n_rows})")
        return order.astype(np.int64, copy=False)

    # ----------------------------------------------------------------------------- inference
    def predict(self, X, batch_size=4096):
        """Output-layer activations for ``X`` (probabilities for softmax/sigmoid outputs).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix/array of shape (n_samples, n_features)
            As in :meth:`fit`.
        batch_size : int, default 4096
            Rows per forward pass (bounds the scratch memory).

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), the model dtype
        """
        X = as_inputs(X, "X", self.n_features_in, self.dtype)
        batch_size = positive_int(batch_size, "batch_size")
        with self._borrowed_scratch() as scratch:
            return self._engine().predict(self, X, batch_size, scratch)

    def evaluate(self, X, y, batch_size=4096, sample_weight=None):
        """Mean loss (penalty included) and, for classification, accuracy on ``(X, y)``.

        With ``sample_weight`` the loss is the weighted mean (accuracy stays unweighted).
        ``X`` may be sparse, as in :meth:`fit`.

        Returns
        -------
        dict
            ``{"loss": float}`` plus ``"accuracy"`` for the cross-entropy losses.
        """
        self._require_compiled("evaluate")
        X, Y, weight = self._data(X, y, sample_weight)
        batch_size = positive_int(batch_size, "batch_size")
        with self._borrowed_scratch() as scratch:
            sums = self._engine().evaluate(self, X, Y, weight, batch_size, scratch)
        return self._metrics(*sums, weight.sum(), X.shape[0])

    def loss_and_gradients(self, X, y, training=False):
        """Loss and its gradients on ``(X, y)`` as one batch, without updating anything.

        ``X`` may be sparse, as in :meth:`fit` (with ``device="cuda"`` the batch, all of ``X``,
        is densified on the host).

        Parameters
        ----------
        X, y : array-like
            As in :meth:`fit`.
        training : bool, default False
            Evaluate the network as ``fit`` does: batch statistics in :class:`BatchNorm` (the
            running statistics are left as they are) and the dropout masks of the next update
            (the same masks at every call until the model trains). The default is inference
            mode, as :meth:`predict` and :meth:`evaluate`.

        Returns
        -------
        loss : float
            ``loss_weight`` times the mean loss, plus the L1/L2 penalty.
        grads : list of tuple
            One tuple per layer, shaped like its parameters: ``(dW, db)`` for Dense,
            ``(dgamma, dbeta)`` for the normalisations, ``()`` for Dropout.
        """
        self._require_compiled("loss_and_gradients")
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False, got {training!r}")
        X, Y, weight = self._data(X, y)
        grads = np.empty_like(self._params)
        loss = self._loss_and_flat_gradient(X, Y, weight, grads, bool(training))
        return loss, self._layer_views(grads)

    def _loss_and_flat_gradient(self, X, Y, weight, grads, training=False):
        """:meth:`loss_and_gradients` on arrays validated by :meth:`_data`, the gradient
        written into the flat buffer ``grads`` (the L-BFGS solver calls this many times)."""
        with self._borrowed_scratch() as scratch:
            loss_sum = self._engine().gradients(self, X, Y, weight, grads, training, scratch)
        l1, l2 = self.dtype.type(self.l1), self.dtype.type(self.l2)
        _opt_kernels.add_penalty_gradient(self._params, grads, self._n_weights, l1, l2)
        return self._metrics(loss_sum, 0, weight.sum(), X.shape[0])["loss"]

    # ----------------------------------------------------------------------------- weights
    def _weight_views(self):
        """Per layer, ``(names, views)`` of its parameters then its running statistics."""
        params = self._layer_views(self._params)
        states = self._slot_views(self._running, self._state_slots)
        return [
            ([name for name, _, _ in p_slots + s_slots], p_views + s_views)
            for p_slots, s_slots, p_views, s_views in zip(
                self._param_slots, self._state_slots, params, states
            )
        ]

    def get_weights(self):
        """Copies of the parameters and statistics, one tuple per layer.

        ``(W, b)`` for :class:`Dense` (``W`` of shape (out, in)), ``(gamma, beta, running_mean,
        running_var)`` for :class:`BatchNorm`, ``(gamma, beta)`` for :class:`LayerNorm`, ``()``
        for :class:`Dropout`.
        """
        return [tuple(view.copy() for view in views) for _, views in self._weight_views()]

    def set_weights(self, weights):
        """Replace every parameter and statistic; ``weights`` is shaped like
        :meth:`get_weights`' result.

        Nothing is changed unless every array has the right shape and is finite (and every
        running variance is >= 0).
        """
        layers = self._weight_views()
        if not isinstance(weights, (list, tuple)) or len(weights) != len(layers):
            raise ValueError(
                f"weights must be a list of {len(layers)} tuples, one per layer (as "
                "get_weights() returns)"
            )
        staged = []
        for i, (values, (names, views)) in enumerate(zip(weights, layers)):
            if not isinstance(values, (list, tuple)) or len(values) != len(views):
                kind = type(self.layers[i]).__name__
                raise ValueError(
                    f"weights[{i}] must be a ({', '.join(names)}) "
                    f"{'pair' if len(names) == 2 else 'tuple'} for {kind}"
                    if names
                    else f"weights[{i}] must be an empty tuple for {kind}"
                )
            for value, target, what in zip(values, views, names):
                name = f"weights[{i}] {what}"
                array = as_numeric_array(value, name)
                if array.shape != target.shape:
                    raise ValueError(f"{name} must have shape {target.shape}, got {array.shape}")
                array = as_finite(array, name, self.dtype)
                if what == "running_var":
                    _require_nonnegative(array, name)
                staged.append((target, array))
        for target, array in staged:
            target[...] = array

    # ----------------------------------------------------------------------------- save / load
    def _archive(self):
        """Description and arrays for ``fastdnn.io.save_archive``."""
        meta = {
            "layers": [
                {"kind": type(layer).__name__, **layer.get_config()} for layer in self.layers
            ],
            "mask_key": int(self._mask_key),
            "dtype": self.dtype.name,
            "seed": self.seed,
            "device": self.device,
            "rng": self._rng.bit_generator.state,
            "compile": None,
        }
        arrays = {"params": self._params, "running": self._running}
        if self.loss is not None:
            meta["compile"] = {
                "loss": self.loss,
                "optimizer": type(self.optimizer).__name__.lower(),
                "optimizer_config": self.optimizer.get_config(),
                "l1": self.l1,
                "l2": self.l2,
                "loss_weight": self.loss_weight,
                "clipnorm": self.clipnorm,
            }
            arrays["state"] = self._state
            arrays["step"] = self._step
        return meta, arrays

    @classmethod
    def _from_archive(cls, meta, arrays, device=None):
        device = meta.get("device", "cpu") if device is None else device
        layers = [layer_from_config(config) for config in meta["layers"]]
        model = cls(layers, meta["dtype"], meta["seed"], device=device)
        # Files written before the normalisation layers have no running statistics (none needed).
        loaded = {"params": arrays["params"], "running": arrays.get("running", model._running)}
        for name, array in loaded.items():
            target = getattr(model, "_" + name)
            if array.shape != target.shape or array.dtype != model.dtype:
                raise ValueError(
                    f"{name} has shape {array.shape} and dtype {array.dtype}, the architecture "
                    f"needs {target.shape} and {model.dtype}"
                )
            if not is_finite(array):
                raise ValueError(f"{name} holds NaN or infinity")
        model._params[:] = loaded["params"]
        model._running[:] = loaded["running"]
        for i, (names, views) in enumerate(model._weight_views()):
            for name, view in zip(names, views):
                if name == "running_var":
                    _require_nonnegative(view, f"running: layer {i}'s running_var")
        if "mask_key" in meta:
            model._mask_key = np.uint64(meta["mask_key"])
        model._rng.bit_generator.state = meta["rng"]
        compiled = meta["compile"]
        if compiled is not None:
            optimizer = OPTIMIZERS[compiled["optimizer"]](**compiled["optimizer_config"])
            # Files written before loss_weight existed trained with the plain mean: 1.0.
            model.compile(
                compiled["loss"], optimizer, compiled["l1"], compiled["l2"],
                compiled.get("loss_weight", 1.0), compiled.get("clipnorm"),
            )  # fmt: skip
            state, step = arrays["state"], arrays["step"]
            if state.shape != model._state.shape or step.shape != (1,):
                raise ValueError("optimizer state does not match the optimizer and architecture")
            model._state[...] = state
            model._step[:] = step
        return model

    def save(self, path):
        """Save architecture, weights, optimizer state and shuffling state to ``path``.

        The file (see :mod:`fastdnn.io` for the format) is written atomically; load it with
        ``fastdnn.load(path)`` to predict identically or to resume training exactly.
        """
        meta, arrays = self._archive()
        _io.save_archive(path, type(self).__name__, meta, arrays)

    def to_onnx(self, path, opset=17):
        """Write the network as an ONNX graph (see :func:`fastdnn.onnx_export.to_onnx`)."""
        from .onnx_export import to_onnx

        return to_onnx(self, path, opset)


_io.register("Sequential", Sequential._from_archive)
