"""The CPU engine: the compiled epoch, prediction, evaluation and gradients on the host.

Every function here validates nothing (``fastdnn.network`` has done it) and allocates only
through the model's :class:`~fastdnn.engines.Scratch`: per-layer workspaces, the first layer's
sparse scratch and the batch normalisations' moments, then one compiled call from
``kernels/cpu/network.py``.
"""

import numpy as np

from .._validation import is_finite
from ..kernels.cpu import layers as _layer_kernels
from ..kernels.cpu import network as _net
from ..kernels.cpu.losses import LOSS_CODES
from ..kernels.cpu.sparse import CSR, FORWARD_FILL, FirstLayerScratch
from . import Scratch

__all__ = ["EpochRunner", "evaluate", "gradients", "predict"]

#: Rows per block of an inference-mode gradient of a dense input (see :func:`gradients`). On
#: the 40000 x 100 L-BFGS evaluation of ``asv_benchmarks/sklearn_mlp.py`` blocks of 1024-8192
#: rows ran alike (float64) and 1024-2048 best (float32); 512 was slower in float64.
GRADIENT_BLOCK = 2048


# ----------------------------------------------------------------------------- buffers
def workspace_offsets(model, rows):
    """Each layer's offset in a workspace for batches of ``rows`` rows."""
    return (rows * np.concatenate(([0], np.cumsum(model._sizes[1:-1])))).astype(np.int64)


def _buffer(scratch, name, size, dtype):
    """A 1-D buffer from ``scratch`` (see :class:`~fastdnn.engines.Scratch`), or newly
    allocated when it is None."""
    return np.empty(size, dtype) if scratch is None else scratch.get(name, size, dtype)


def workspace(model, rows, names, scratch=None):
    """``(offsets, buffer per name)``: per-layer workspace for batches of ``rows`` rows,
    from ``scratch`` or newly allocated (:func:`_buffer`)."""
    size = rows * int(model._sizes[1:].sum())
    buffers = [_buffer(scratch, name, size, model.dtype) for name in names]
    return (workspace_offsets(model, rows), *buffers)


def first_layer_scratch(model, X, batch_nnz, scratch=None):
    """The first layer's scratch ``Tbuf``, a ``sparse.FirstLayerScratch`` (see
    ``kernels/cpu/sparse.py``), for batches of up to ``batch_nnz`` stored values of ``X``:
    room for all of ``W`` when such a batch may take the transposed sparse kernels
    (``sparse.FORWARD_FILL``), else for the columns it can use; empty arrays for a dense
    ``X``."""
    size = columns = 0
    if isinstance(X, CSR):
        columns = X.n_cols
        n_in, n_out = int(model._sizes[0]), int(model._sizes[1])
        used = n_in if batch_nnz >= FORWARD_FILL * X.n_cols else min(batch_nnz, n_in)
        size = used * n_out
    slot = _buffer(scratch, "first layer slot", columns, np.int64)
    slot.fill(-1)
    return FirstLayerScratch(
        _buffer(scratch, "first layer", size, model.dtype),
        slot,
        _buffer(scratch, "first layer columns", columns, np.int64),
    )


def moments(model, scratch):
    """The batch normalisations' moments scratch (``kernels/cpu/network.py``)."""
    return scratch.get("moments", model._running.size, model.dtype)


def block_nnz(X, batch_size):
    """The most stored values in a block of ``batch_size`` consecutive rows of ``X`` (0 for a
    dense ``X``), as ``evaluate`` and ``predict`` visit it."""
    if not isinstance(X, CSR) or X.shape[0] == 0:
        return 0
    starts = np.arange(0, X.shape[0], batch_size)
    ends = np.minimum(starts + batch_size, X.shape[0])
    return int((X.indptr[ends] - X.indptr[starts]).max())


def features(model, loss=False, optimizer=False):
    """The feature set (``kernels/cpu/features.py``) a compiled call needs for ``model``: its
    layers, plus its loss and its optimizer (and clipping) where the call uses them."""
    return _net.features_of(
        model._net,
        LOSS_CODES[model.loss] if loss else None,
        model.optimizer.code if optimizer else None,
        bool(optimizer and model.clipnorm),
    )


# ----------------------------------------------------------------------------- inference
def predict(model, X, batch_size, scratch):
    """Output-layer activations of validated ``X``, ``batch_size`` rows per pass."""
    out = np.empty((X.shape[0], model.n_outputs), dtype=model.dtype)
    ws_off, Zbuf = workspace(model, min(batch_size, X.shape[0]), ["Z"], scratch)
    Tbuf = first_layer_scratch(model, X, block_nnz(X, batch_size), scratch)
    _net.predict(
        features(model), X, batch_size, model._net, model._params, model._running,
        moments(model, scratch), ws_off, Zbuf, out, Tbuf,
    )  # fmt: skip
    return out


def evaluate(model, X, Y, weight, batch_size, scratch):
    """``(summed weighted loss, correct predictions)`` over validated arrays."""
    ws_off, Zbuf, Abuf = workspace(model, min(batch_size, X.shape[0]), ["Z", "A"], scratch)
    Tbuf = first_layer_scratch(model, X, block_nnz(X, batch_size), scratch)
    return _net.evaluate(
        features(model, loss=True), X, Y, weight, batch_size, model._net, LOSS_CODES[model.loss],
        model._params, model._running, moments(model, scratch), ws_off, Zbuf, Abuf, Tbuf,
    )  # fmt: skip


def gradients(model, X, Y, weight, grads, training, scratch):
    """The gradient of ``(X, Y)`` as one batch into the flat buffer ``grads`` (penalty not
    included); ``training``: batch statistics and the next update's dropout masks. Returns
    the batch's summed weighted loss.

    In inference mode a dense ``X`` goes through in blocks of :data:`GRADIENT_BLOCK` rows
    (``kernels/cpu/network.py``'s ``blocked_gradients``); a CSR ``X`` in one block, where the
    sparse kernels' choice of path is made for the whole batch (``kernels/cpu/sparse.py``).
    """
    rows = X.shape[0]
    names = ("gradient Z", "gradient A", "gradient D")
    Tbuf = first_layer_scratch(model, X, block_nnz(X, rows), scratch)
    if training:
        ws_off, Zbuf, Abuf, Dbuf = workspace(model, rows, names, scratch)
        key = np.uint64(_layer_kernels.batch_mask_key(model._mask_key, model._step[0] + 1))
        loss_sum, _ = _net.forward_backward(
            features(model, loss=True), X, Y, weight, model._net, LOSS_CODES[model.loss],
            model.dtype.type(model.loss_weight), model._params, grads, model._running,
            moments(model, scratch), True, False, key, ws_off, Zbuf, Abuf, Dbuf, Tbuf,
        )  # fmt: skip
        return loss_sum
    block_rows = rows if isinstance(X, CSR) else min(GRADIENT_BLOCK, rows)  # rows >= 1
    ws_off, Zbuf, Abuf, Dbuf = workspace(model, block_rows, names, scratch)
    block_grads = scratch.get("block gradient", grads.size if block_rows < rows else 0,
                              model.dtype)  # fmt: skip
    return _net.blocked_gradients(
        features(model, loss=True), X, Y, weight, model._net, LOSS_CODES[model.loss],
        model.dtype.type(model.loss_weight), model._params, grads, block_grads, model._running,
        moments(model, scratch), block_rows, ws_off, Zbuf, Abuf, Dbuf, Tbuf,
    )  # fmt: skip


# ----------------------------------------------------------------------------- training
class EpochRunner:
    """Runs the training epochs of one fit on this process's data.

    Owns the batch buffers and workspace, allocated once per fit. ``train`` runs one epoch as
    a single compiled call; ``reduce`` sums per-process totals (the identity here; across ranks
    in :class:`fastdnn.engines.mpi.DistributedEpochRunner`).
    """

    rank = 0

    def __init__(self, model, X, Y, weight, batch_size, scratch=None):
        self.model, self.X, self.Y, self.weight = model, X, Y, weight
        self.batch_size = batch_size
        rows = min(batch_size, X.shape[0])
        self.n_batches = -(-X.shape[0] // batch_size)
        self.scratch = scratch = Scratch() if scratch is None else scratch
        names = ("train Z", "train A", "train D")
        self.ws_off, self.Zbuf, self.Abuf, self.Dbuf = workspace(model, rows, names, scratch)
        dtype = model.dtype
        capacity = 0
        if isinstance(X, CSR):
            # Room for the batch of the ``rows`` longest rows: no batch of any order holds more.
            lengths = np.diff(X.indptr)
            capacity = int(np.partition(lengths, lengths.size - rows)[-rows:].sum())
            index = X.indptr.dtype
            self.Xbuf = CSR(
                scratch.get("train X indptr", rows + 1, index),
                scratch.get("train X indices", capacity, index),
                scratch.get("train X data", capacity, dtype),
                X.n_cols,
            )
        else:
            self.Xbuf = scratch.get("train X", rows * X.shape[1], dtype)
        self.Ybuf = scratch.get("train Y", rows * Y.shape[1], dtype)
        self.Wbuf = scratch.get("train weight", rows, dtype)
        self.Tbuf = first_layer_scratch(model, X, capacity, scratch)
        # every batch overwrites every gradient entry before the update reads it
        self.grads = scratch.get("gradient", model._params.size, dtype)
        self.l1, self.l2 = model.dtype.type(model.l1), model.dtype.type(model.l2)
        self.loss_weight = model.dtype.type(model.loss_weight)
        self.clipnorm = float(model.clipnorm or 0.0)
        self.moments = moments(model, scratch)
        self.features = features(model, loss=True, optimizer=True)
        self.comm_seconds = 0.0

    def reduce(self, values):
        """Totals over every process of ``values`` (a list of numbers)."""
        return values

    def abort(self, error):
        """Called when the fit fails with ``error`` (a no-op for a single process)."""

    def train(self, order, hyper):
        """One epoch over the rows in ``order``; returns ``(loss sum, correct, bad batch)``."""
        m = self.model
        return _net.train_epoch(
            self.features, self.X, self.Y, self.weight, order, self.batch_size, m._net,
            LOSS_CODES[m.loss], self.loss_weight, m._params, self.grads, m._running, self.moments,
            m._mask_key, m.optimizer.code, hyper, m._state, m._step, self.l1, self.l2,
            self.clipnorm, self.Xbuf, self.Ybuf, self.Wbuf, self.ws_off, self.Zbuf, self.Abuf,
            self.Dbuf, self.Tbuf,
        )  # fmt: skip

    def snapshot(self):
        """Remember the parameters, state and step before an epoch (see :meth:`restore`)."""
        m = self.model
        self._saved = []
        arrays = (m._params, m._running, m._state, m._step)
        for name, array in zip(("params", "running", "state", "step"), arrays):
            saved = self.scratch.get("saved " + name, array.size, array.dtype)
            saved = saved.reshape(array.shape)
            np.copyto(saved, array)
            self._saved.append(saved)

    def restore(self):
        """Return the model to the last :meth:`snapshot` (after a diverged epoch)."""
        m = self.model
        m._params[:], m._running[:], m._state[...], m._step[:] = self._saved

    def params_finite(self):
        """Whether every parameter is finite."""
        return is_finite(self.model._params)

    def penalty(self):
        """The L1/L2 penalty of the current parameters, or None to let ``_metrics`` compute it."""
        return None

    def evaluate(self, X, Y, weight):
        """``(summed loss, correct)`` on validated validation arrays."""
        return evaluate(self.model, X, Y, weight, 4096, self.scratch)

    def sync(self):
        """Bring the model's host arrays up to date (nothing to do on the CPU)."""

    def reload(self):
        """Push host-side weight changes (by callbacks) to where training runs (the CPU: none)."""
