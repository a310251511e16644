"""Whole-network kernels: forward, backward, a full training epoch, evaluation and prediction.

A network is described by its layer table, a :class:`Net` of small arrays with one entry per
layer (``Sequential`` builds it from the layers of ``fastdnn/layers.py``): the layer's kind,
widths, activation code, offsets of its parameters in the flat parameter buffer (the gradient
buffer has the same layout) and of its running statistics, and its constants. The compiled
passes walk the table; each kind's arithmetic is in ``dense`` GEMMs here or in ``layers.py``.
Every layer writes a pre-activation ``Z`` and an activation ``A`` (a dropout layer: its mask
and its output), and every backward step turns ``D = dL/dZ`` into the previous layer's ``D``.

``ws_off`` (L,) gives the offsets of each layer's (rows, out) block in the flat workspace buffers
  ``Zbuf`` (pre-activations), ``Abuf`` (activations) and ``Dbuf`` (deltas), sized for the
  largest batch.

``Tbuf`` is the first layer's scratch for a CSR input, a ``sparse.FirstLayerScratch`` (unused
for a dense input).

The input ``X`` is a dense C-contiguous (rows, in) array or a :class:`sparse.CSR` matrix. The
drivers are written once for both: the few steps that touch the input (its row count, a block
or gathered batch of its rows, the first layer's two products) go through the ``_input_*``
functions below, each compiled to the dense or the CSR kernel by the type of ``X``. The batch
buffer ``Xbuf`` is then a flat array, or a CSR of buffers for the largest batch.

Every driver takes a feature set first (``features.py``): it is compiled with the kernels of
those layer kinds, activations, loss and optimizer only, and :func:`features_of` gives a
network's. The passes over the layers (``forward``, ``backward``) take its layer part, so a fit,
an evaluation and a prediction of one network type them alike; Numba inlines them into the
drivers.

Every array argument is owned by the caller; nothing here allocates on the training path.
"""

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from .._options import OVERLOAD_OPTIONS, callee, kernel
from . import sparse
from .activations import LINEAR, activation_for, bias_fill, scale_by_derivative_for
from .blas import gemm, gemm_add
from .features import (
    CLIP,
    activation_bit,
    features,
    gated,
    kind_bit,
    layer_features,
    loss_bit,
    optimizer_bit,
)
from .fpmode import flush_denormals, restore_fp_mode
from .layers import (
    batch_mask_key,
    batch_norm_backward,
    batch_norm_forward,
    copy_rows,
    dropout_backward,
    dropout_forward,
    layer_mask_key,
    layer_norm_backward,
    layer_norm_forward,
)
from .losses import CROSS_ENTROPY, count_correct_for, output_delta_for, output_loss_for
from .optimizers import clip_by_global_norm, optimizer_step_for

DENSE = 0
BATCH_NORM = 1
LAYER_NORM = 2
DROPOUT = 3


class Net(NamedTuple):
    """The layer table (Numba types it as a named tuple of arrays).

    Attributes
    ----------
    kinds : ndarray of int64 (L,)
        ``DENSE``, ``BATCH_NORM``, ``LAYER_NORM`` or ``DROPOUT``. The first and the last layer
        are dense.
    sizes : ndarray of int64 (L + 1,)
        The input width, then each layer's output width.
    acts : ndarray of int64 (L,)
        Activation codes (``activations.py``); ``LINEAR`` for dropout.
    p_off, q_off : ndarray of int64 (L,)
        Offsets of a dense layer's ``W`` (out, in) and ``b`` (out,), of a normalisation's
        ``gamma`` and ``beta`` (n,), in the parameter buffer (-1 for dropout).
    s_off : ndarray of int64 (L,)
        Offset of a batch normalisation's running mean and variance (2n,) in the running
        statistics buffer, and of its moments in the moments scratch of the same size (-1 for
        the other kinds).
    eps, momentum, rate : ndarray of float64 (L,)
        Normalisation epsilon, batch-normalisation momentum, dropout rate (0 where unused).
    n_weights : int
        Parameters ``[0, n_weights)`` are dense weights, penalised by L1/L2; the rest (biases,
        ``gamma``, ``beta``) are not.
    """

    kinds: np.ndarray
    sizes: np.ndarray
    acts: np.ndarray
    p_off: np.ndarray
    q_off: np.ndarray
    s_off: np.ndarray
    eps: np.ndarray
    momentum: np.ndarray
    rate: np.ndarray
    n_weights: int


@callee
def _view(buf, offset, rows, cols):
    return buf[offset : offset + rows * cols].reshape((rows, cols))


def _by_input(dense, csr):
    """A function of the network input ``X`` and more arguments, compiled as the kernel
    ``dense(X, ...)`` when ``X`` is an array and as ``csr(X, ...)`` when it is a CSR."""

    def by_input(X, *args):
        raise NotImplementedError("called from compiled kernels only")

    @overload(by_input, jit_options=OVERLOAD_OPTIONS)
    def _select(X, *args):
        is_csr = isinstance(X, types.BaseNamedTuple) and X.instance_class is sparse.CSR
        kernel = csr if is_csr else dense

        def impl(X, *args):
            return kernel(X, *args)

        return impl

    return by_input


@callee
def _dense_rows(X):
    return X.shape[0]


@callee
def _csr_rows(X):
    return X.indptr.size - 1


@callee
def _dense_block(X, start, rows):
    return X[start : start + rows]  # typed C-contiguous, as X


@callee
def _dense_gather(X, order, start, rows, buf):
    width = X.shape[1]
    out = _view(buf, np.int64(0), rows, width)  # not a literal 0: one ``_view`` instance
    for i in range(rows):
        src = order[start + i]
        for j in range(width):
            out[i, j] = X[src, j]
    return out


@callee
def _dense_targets(X, Xb, Y, order, start, rows, Ybuf):
    # When ``Y`` is ``X`` itself (an autoencoder) its rows are already in ``Xb``.
    if Y.ctypes.data == X.ctypes.data and Y.shape == X.shape:
        return Xb
    return _dense_gather(Y, order, start, rows, Ybuf)


@callee
def _csr_targets(X, Xb, Y, order, start, rows, Ybuf):
    return _dense_gather(Y, order, start, rows, Ybuf)


@callee
def _dense_matmul_add(X, W, Z, T):
    gemm_add(X, W.T, Z)


@callee
def _dense_weight_grad(X, D, dW, T):
    gemm(D.T, X, dW)


_input_rows = _by_input(_dense_rows, _csr_rows)
_input_block = _by_input(_dense_block, sparse.row_block)  # rows start:start + rows, no copy
_gather_inputs = _by_input(_dense_gather, sparse.gather_rows)
_gather_targets = _by_input(_dense_targets, _csr_targets)
_input_matmul_add = _by_input(_dense_matmul_add, sparse.matmul_add)  # Z += X @ W.T
_input_weight_grad = _by_input(_dense_weight_grad, sparse.weight_grad)  # dW = D.T @ X


@kernel
def column_sum(D, out):
    """``out[j] = sum_i D[i, j]`` (the bias gradient), row by row for contiguous reads."""
    n, m = D.shape
    out[:] = 0
    for i in range(n):
        for j in range(m):
            out[j] += D[i, j]


@callee
def _dropout_layer(X, rate, key, layer, Z, A):
    dropout_forward(X, rate, layer_mask_key(key, layer), Z, A)


# Each layer kind's kernels, compiled into a driver only when its feature set has the kind.
_dropout_layer_forward = gated(kind_bit(DROPOUT), _dropout_layer)
_dropout_backward = gated(kind_bit(DROPOUT), dropout_backward)
_dropout_copy = gated(kind_bit(DROPOUT), copy_rows)
_batch_norm_forward = gated(kind_bit(BATCH_NORM), batch_norm_forward)
_batch_norm_backward = gated(kind_bit(BATCH_NORM), batch_norm_backward)
_layer_norm_forward = gated(kind_bit(LAYER_NORM), layer_norm_forward)
_layer_norm_backward = gated(kind_bit(LAYER_NORM), layer_norm_backward)
_clip = gated(CLIP, clip_by_global_norm)


def features_of(net, loss_code=None, opt_code=None, clip=False):
    """The :class:`~fastdnn.kernels.cpu.features.Features` a driver needs for the layer table
    ``net``: its kinds and activations, and the loss, the optimizer and clipping when given
    (prediction needs none of them, evaluation no optimizer)."""
    mask = 0
    for kind in np.unique(net.kinds):
        mask |= kind_bit(int(kind))
    for code in np.unique(net.acts):
        mask |= activation_bit(int(code))
    if loss_code is not None:
        mask |= loss_bit(loss_code)
    if opt_code is not None:
        mask |= optimizer_bit(opt_code)
    if clip:
        mask |= CLIP
    return features(mask)


# The passes are inlined into their callers by Numba: each driver then goes through LLVM once
# rather than once more for every level of passes it calls (a first S fit: 13-15 -> 10.5 s).
@kernel(inline="always")
def forward(
    features, X, net, params, running, moments, training, update, key, ws_off, Zbuf, Abuf, Tbuf
):  # fmt: skip
    """Run every layer on the batch ``X``; the last (dense) layer stops at its pre-activation.

    A dense layer fills ``Z`` with its bias, adds ``X @ W.T`` by one BLAS GEMM (a CSR input: by
    ``sparse.matmul_add``) and runs its activation pass (the output layer's activation is fused
    with the loss by the caller). A hidden layer with the linear activation writes straight into
    ``A`` and leaves ``Z`` alone: nothing reads it (the derivative is 1), and the copy was a pass
    over the layer's output (the dense layers before each normalisation of workload MD).
    ``training`` selects batch statistics and dropout; ``update`` (with ``training``) moves the
    running statistics; ``key`` is the batch's dropout key (:func:`layers.batch_mask_key`).
    ``moments`` receives each batch normalisation's mean and inverse deviation for
    :func:`backward`.
    """
    rows = _input_rows(X)
    n_layers = net.kinds.size
    for layer in range(n_layers):
        n_in = net.sizes[layer]
        n_out = net.sizes[layer + 1]
        kind = net.kinds[layer]
        Z = _view(Zbuf, ws_off[layer], rows, n_out)
        A = _view(Abuf, ws_off[layer], rows, n_out)
        hidden = layer < n_layers - 1
        linear_hidden = hidden and net.acts[layer] == LINEAR
        out = A if linear_hidden else Z
        p, q, s = net.p_off[layer], net.q_off[layer], net.s_off[layer]
        if kind == DENSE:
            W = _view(params, p, n_out, n_in)
            bias_fill(params[q : q + n_out], out)
            if layer == 0:
                _input_matmul_add(X, W, out, Tbuf)
            else:
                gemm_add(_view(Abuf, ws_off[layer - 1], rows, n_in), W.T, out)
        else:
            X_prev = _view(Abuf, ws_off[layer - 1], rows, n_in)
            if kind == DROPOUT:
                if training and net.rate[layer] > 0:
                    _dropout_layer_forward(features, X_prev, net.rate[layer], key, layer, Z, A)
                else:
                    _dropout_copy(features, X_prev, A)
                continue
            gamma, beta = params[p : p + n_out], params[q : q + n_out]
            if kind == BATCH_NORM:
                _batch_norm_forward(
                    features, X_prev, gamma, beta, running[s : s + 2 * n_out], net.eps[layer],
                    net.momentum[layer], training, update, moments[s : s + 2 * n_out], out,
                )  # fmt: skip
            else:
                _layer_norm_forward(features, X_prev, gamma, beta, net.eps[layer], out)
        if hidden and not linear_hidden:
            activation_for(features, net.acts[layer], Z, A)


@kernel(inline="always")
def backward(features, X, net, params, grads, moments, training, ws_off, Zbuf, Abuf, Dbuf, Tbuf):
    """Back-propagate the output delta (already in ``Dbuf``) and write every parameter gradient.

    A dense layer: ``dW = D.T @ A_prev`` and ``D_prev = (D @ W) * f'(Z_prev)`` by BLAS GEMMs on
    transposed views (no copies), and ``db`` as a column sum of ``D``; for a CSR input the first
    layer's ``dW`` comes from ``sparse.weight_grad``, dense and whole, as from the GEMM. The
    other kinds write ``D_prev`` and their parameters' gradients by their ``layers.py`` kernels,
    in the mode (``training``) of the forward pass that filled the workspace.
    """
    rows = _input_rows(X)
    for layer in range(net.kinds.size - 1, -1, -1):
        n_in = net.sizes[layer]
        n_out = net.sizes[layer + 1]
        kind = net.kinds[layer]
        p, q, s = net.p_off[layer], net.q_off[layer], net.s_off[layer]
        D = _view(Dbuf, ws_off[layer], rows, n_out)
        if kind == DENSE:
            dW = _view(grads, p, n_out, n_in)
            if layer == 0:
                _input_weight_grad(X, D, dW, Tbuf)
            else:
                gemm(D.T, _view(Abuf, ws_off[layer - 1], rows, n_in), dW)
            column_sum(D, grads[q : q + n_out])
            if layer == 0:
                break
            gemm(D, _view(params, p, n_out, n_in), _view(Dbuf, ws_off[layer - 1], rows, n_in))
        else:
            X_prev = _view(Abuf, ws_off[layer - 1], rows, n_in)
            D_prev = _view(Dbuf, ws_off[layer - 1], rows, n_in)
            if kind == DROPOUT:
                if training and net.rate[layer] > 0:
                    _dropout_backward(features, D, _view(Zbuf, ws_off[layer], rows, n_out), D_prev)
                else:
                    _dropout_copy(features, D, D_prev)
            elif kind == BATCH_NORM:
                _batch_norm_backward(
                    features, X_prev, D, params[p : p + n_out], moments[s : s + 2 * n_out],
                    training, grads[p : p + n_out], grads[q : q + n_out], D_prev,
                )  # fmt: skip
            else:
                _layer_norm_backward(
                    features, X_prev, D, params[p : p + n_out], net.eps[layer],
                    grads[p : p + n_out], grads[q : q + n_out], D_prev,
                )  # fmt: skip
        scale_by_derivative_for(
            features,
            net.acts[layer - 1],
            _view(Zbuf, ws_off[layer - 1], rows, n_in),
            _view(Abuf, ws_off[layer - 1], rows, n_in),
            _view(Dbuf, ws_off[layer - 1], rows, n_in),
        )


@kernel(inline="always")
def forward_backward(
    features, X, Y, row_weight, net, loss_code, loss_weight, params, grads, running, moments,
    training, update, key, ws_off, Zbuf, Abuf, Dbuf, Tbuf,
):  # fmt: skip
    """Gradients of ``loss_weight`` times the weighted mean loss over the batch ``(X, Y)`` into
    ``grads``, the forward pass in the mode ``training``/``update``/``key`` of :func:`forward`.

    The mean is ``sum_i w_i loss_i / sum_i w_i`` with ``w = row_weight`` (ones when unweighted),
    over samples for cross-entropy and over all output elements otherwise. ``loss_weight`` is a
    scalar of the parameters' dtype (a Python float would compile a second signature).
    Returns ``(weighted summed loss, correct predictions)`` of the batch, before the update and
    without ``loss_weight``: the caller scales the mean it reports.
    """
    rows = _input_rows(X)
    layers = layer_features(features)
    forward(
        layers, X, net, params, running, moments, training, update, key, ws_off, Zbuf, Abuf, Tbuf
    )
    scale = _delta_scale(params, loss_code, net, loss_weight, row_weight)
    loss, correct = _output_loss_and_delta(
        features, net, loss_code, scale, Y, row_weight, rows, ws_off, Zbuf, Abuf, Dbuf
    )
    backward(layers, X, net, params, grads, moments, training, ws_off, Zbuf, Abuf, Dbuf, Tbuf)
    return loss, correct


@kernel
def blocked_gradients(
    features, X, Y, row_weight, net, loss_code, loss_weight, params, grads, block_grads, running,
    moments, block_rows, ws_off, Zbuf, Abuf, Dbuf, Tbuf,
):  # fmt: skip
    """:func:`forward_backward` in inference mode over the whole of ``(X, Y)``, ``block_rows``
    rows at a time: the gradient of ``loss_weight`` times the weighted mean loss over all rows
    into ``grads``. Returns the weighted summed loss, as :func:`forward_backward`.

    In inference mode every row's loss depends on its own row only, so the blocks' gradients
    add up to the whole batch's. Each block's passes then run on a workspace of
    ``block_rows`` rows that stays in cache between a product and the pass after it (a
    full-batch L-BFGS evaluation of 40000 x 100 rows through (256, 128) units: 25-40 % faster
    than one batch, float32 and float64). The first block's gradient goes into ``grads``, each
    later block's into ``block_grads`` (the size of ``grads``; empty for a single block) and is
    added from there.
    """
    rows = _input_rows(X)
    layers = layer_features(features)
    scale = _delta_scale(params, loss_code, net, loss_weight, row_weight)
    n_out = Y.shape[1]
    Y_flat = Y.reshape(Y.size)
    no_key = np.uint64(0)
    loss_total = 0.0
    for start in range(0, rows, block_rows):
        n = min(block_rows, rows - start)
        Xb = _input_block(X, start, n)
        Yb = _view(Y_flat, start * n_out, n, n_out)
        Wb = row_weight[start : start + n]
        forward(
            layers, Xb, net, params, running, moments, False, False, no_key, ws_off, Zbuf, Abuf,
            Tbuf,
        )  # fmt: skip
        loss, _ = _output_loss_and_delta(
            features, net, loss_code, scale, Yb, Wb, n, ws_off, Zbuf, Abuf, Dbuf
        )
        loss_total += loss
        target = grads if start == 0 else block_grads
        backward(layers, Xb, net, params, target, moments, False, ws_off, Zbuf, Abuf, Dbuf, Tbuf)
        if start > 0:
            for i in range(grads.size):
                grads[i] += block_grads[i]
    return loss_total


@kernel(inline="always")
def _delta_scale(params, loss_code, net, loss_weight, row_weight):
    """The output delta's factor ``loss_weight / sum of weights`` (times the output width but
    for cross-entropy, whose mean is over samples), formed in float64 and rounded once to the
    parameters' dtype; 0 when every weight is 0 (such a batch contributes no gradient)."""
    weight_sum = float(row_weight.sum())
    if loss_code != CROSS_ENTROPY:
        weight_sum *= net.sizes[net.kinds.size]
    return params.dtype.type(loss_weight / weight_sum if weight_sum > 0 else 0.0)


@kernel(inline="always")
def _output_loss_and_delta(
    features, net, loss_code, scale, Y, row_weight, rows, ws_off, Zbuf, Abuf, Dbuf
):  # fmt: skip
    """The loss, the correct predictions and the output delta (``scale`` times the summed
    loss's) of the batch whose forward pass is in the workspace."""
    last = net.kinds.size - 1
    n_out = net.sizes[last + 1]
    Z = _view(Zbuf, ws_off[last], rows, n_out)
    A = _view(Abuf, ws_off[last], rows, n_out)
    D = _view(Dbuf, ws_off[last], rows, n_out)
    out_act = net.acts[last]
    loss = output_loss_for(features, loss_code, out_act, Z, Y, row_weight, A)
    correct = count_correct_for(features, loss_code, A, Y)
    output_delta_for(features, loss_code, out_act, Z, A, Y, row_weight, scale, D)
    return loss, correct


@kernel
def gather_batch(X, Y, sample_weight, order, start, rows, Xbuf, Ybuf, Wbuf):
    """Copy rows ``order[start:start + rows]`` of ``X``, ``Y`` and ``sample_weight`` into the
    batch buffers; returns the batch ``(Xb, Yb, Wb)``, views of those buffers.

    When ``Y`` is ``X`` itself (an autoencoder), ``Yb`` is ``Xb``: the rows are copied once.
    """
    Xb = _gather_inputs(X, order, start, rows, Xbuf)
    Yb = _gather_targets(X, Xb, Y, order, start, rows, Ybuf)
    Wb = Wbuf[:rows]
    for i in range(rows):
        Wb[i] = sample_weight[order[start + i]]
    return Xb, Yb, Wb


@kernel
def train_epoch(
    features, X, Y, sample_weight, order, batch_size, net, loss_code, loss_weight, params, grads,
    running, moments, model_key, opt_code, hyper, state, step, l1, l2, clipnorm, Xbuf, Ybuf, Wbuf,
    ws_off, Zbuf, Abuf, Dbuf, Tbuf,
):  # fmt: skip
    """One epoch of mini-batch training in a single compiled call.

    Rows are visited in ``order`` (a permutation when shuffling), ``batch_size`` at a time; the
    last batch may be smaller. Each batch is gathered into ``Xbuf``/``Ybuf``/``Wbuf`` (sample
    weights), forwarded in training mode (batch statistics, which move the running ones, and
    dropout masks keyed by ``model_key`` and the update's number), back-propagated, its gradient
    scaled to a global L2 norm of at most ``clipnorm`` when ``clipnorm > 0``, and applied by one
    fused optimizer pass. ``step[0]`` counts updates. Each batch minimises ``loss_weight`` times
    its mean loss (see :func:`forward_backward`); the returned sums leave ``loss_weight`` out.
    For a CSR ``X``, ``Xbuf`` is a CSR whose ``indptr`` holds ``batch_size + 1`` entries and
    whose ``indices``/``data`` hold the most values any batch can have.

    Returns ``(summed loss, correct predictions, index of the first batch whose loss was not
    finite or -1)``. Training stops at a non-finite loss, before applying that batch's update.
    Denormal results are flushed to zero during the epoch (see ``fpmode.py``).
    """
    n_rows = order.size
    loss_total = 0.0
    correct_total = 0
    batch_index = 0
    bad_batch = -1
    fp_mode = flush_denormals()
    for start in range(0, n_rows, batch_size):
        rows = min(batch_size, n_rows - start)
        Xb, Yb, Wb = gather_batch(X, Y, sample_weight, order, start, rows, Xbuf, Ybuf, Wbuf)
        key = batch_mask_key(model_key, step[0] + 1)
        loss, correct = forward_backward(
            features, Xb, Yb, Wb, net, loss_code, loss_weight, params, grads, running, moments,
            True, True, key, ws_off, Zbuf, Abuf, Dbuf, Tbuf,
        )  # fmt: skip
        if not np.isfinite(loss):
            bad_batch = batch_index
            break
        if clipnorm > 0:
            _clip(features, grads, clipnorm)
        step[0] += 1
        optimizer_step_for(
            features, opt_code, params, grads, state, hyper, step[0], net.n_weights, l1, l2
        )
        loss_total += loss
        correct_total += correct
        batch_index += 1
    restore_fp_mode(fp_mode)
    return loss_total, correct_total, bad_batch


@kernel
def evaluate(
    features, X, Y, sample_weight, batch_size, net, loss_code, params, running, moments, ws_off,
    Zbuf, Abuf, Tbuf,
):  # fmt: skip
    """Weighted summed loss and correct predictions over ``(X, Y)`` in inference mode,
    ``batch_size`` rows at a time."""
    n_rows = _input_rows(X)
    n_out = Y.shape[1]
    last = net.kinds.size - 1
    Y_flat = Y.reshape(Y.size)
    loss_total = 0.0
    correct_total = 0
    no_key = np.uint64(0)
    for start in range(0, n_rows, batch_size):
        rows = min(batch_size, n_rows - start)
        Xb = _input_block(X, start, rows)
        Yb = _view(Y_flat, start * n_out, rows, n_out)
        forward(
            layer_features(features), Xb, net, params, running, moments, False, False, no_key,
            ws_off, Zbuf, Abuf, Tbuf,
        )  # fmt: skip
        Z = _view(Zbuf, ws_off[last], rows, n_out)
        A = _view(Abuf, ws_off[last], rows, n_out)
        Wb = sample_weight[start : start + rows]
        loss_total += output_loss_for(features, loss_code, net.acts[last], Z, Yb, Wb, A)
        correct_total += count_correct_for(features, loss_code, A, Yb)
    return loss_total, correct_total


@kernel
def predict(features, X, batch_size, net, params, running, moments, ws_off, Zbuf, out, Tbuf):
    """Output-layer activations for every row of ``X`` into ``out`` in inference mode,
    ``batch_size`` at a time.

    Each hidden activation overwrites its pre-activation in ``Zbuf`` (nothing goes backward):
    half the workspace, and the next GEMM reads what the activation pass just wrote, still in
    cache (the M network's forward at 4096 rows: 5 % faster than with a separate ``Abuf``).
    """
    n_rows = _input_rows(X)
    last = net.kinds.size - 1
    n_out = net.sizes[last + 1]
    out_flat = out.reshape(out.size)
    no_key = np.uint64(0)
    for start in range(0, n_rows, batch_size):
        rows = min(batch_size, n_rows - start)
        Xb = _input_block(X, start, rows)
        forward(
            layer_features(features), Xb, net, params, running, moments, False, False, no_key,
            ws_off, Zbuf, Zbuf, Tbuf,
        )  # fmt: skip
        activation_for(
            features,
            net.acts[last],
            _view(Zbuf, ws_off[last], rows, n_out),
            _view(out_flat, start * n_out, rows, n_out),
        )
