"""Optimizer updates as single fused grid-stride passes over the flat parameter buffer (CUDA).

The math, the hyper-parameter order and the state layout are those of
``kernels/cpu/optimizers.py`` (its integer codes are reused): each thread reads the gradient,
folds in the L1/L2 penalty gradient for weights (the first ``n_weights`` entries), updates the
optimizer state ``state[slot, i]`` and writes the parameter, once per element.

Adam's bias corrections depend only on the step number, so the host computes them in float64
(as the CPU kernel does) and passes ``step_size = lr / (1 - beta1**t)``, ``inv_sqrt_bc2 =
1 / sqrt(1 - beta2**t)`` and the AdamW decay factor ``1 - lr * weight_decay`` as scalars.

The step is gated on the batch's loss so that a whole epoch can be queued without a host
round trip: if ``loss_parts[slot]`` is not finite the update is skipped and ``bad[0]`` records
the first such batch; once ``bad[0] >= 0`` every later update of the epoch is skipped too. This
is the CPU epoch's "stop before applying a non-finite batch".
"""

import functools
import math
from types import SimpleNamespace

import numba
import numpy as np

from ...engines.cuda import cuda
from ..cpu.optimizers import ADAM, ADAMW, RMSPROP, SGD

__all__ = ["ADAM", "ADAMW", "RMSPROP", "SGD", "optimizer_step", "param_kernels"]


@cuda.jit(device=True, inline="always")
def _penalised(g, p, l1, l2):
    """``g + l1 * sign(p) + l2 * p`` in the CPU kernel's order of operations."""
    t = type(p)
    sign = t(p > 0) - t(p < 0)
    return g + l1 * sign + l2 * p


@cuda.jit(device=True, inline="always")
def _sgd(p, g, state, hyper, n_weights, l1, l2, start, stride):
    lr, momentum, nesterov = hyper[0], hyper[1], hyper[2]
    zero = type(lr)(0.0)
    n = p.size
    if momentum == 0:
        for i in range(start, n, stride):
            w = i < n_weights
            p[i] -= lr * _penalised(g[i], p[i], l1 if w else zero, l2 if w else zero)
        return
    for i in range(start, n, stride):
        w = i < n_weights
        gi = _penalised(g[i], p[i], l1 if w else zero, l2 if w else zero)
        b = momentum * state[0, i] + gi
        state[0, i] = b
        p[i] -= lr * (gi + momentum * b if nesterov != 0 else b)


@cuda.jit(device=True, inline="always")
def _adam(p, g, state, hyper, n_weights, l1, l2, step_size, inv_sqrt_bc2, decay, start, stride):
    beta1, beta2, eps = hyper[1], hyper[2], hyper[3]
    one = type(beta1)(1.0)
    zero = type(beta1)(0.0)
    n = p.size
    for i in range(start, n, stride):
        w = i < n_weights
        gi = _penalised(g[i], p[i], l1 if w else zero, l2 if w else zero)
        mi = beta1 * state[0, i] + (one - beta1) * gi
        vi = beta2 * state[1, i] + (one - beta2) * gi * gi
        state[0, i] = mi
        state[1, i] = vi
        p[i] = p[i] * decay - step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


@cuda.jit(device=True, inline="always")
def _rmsprop(p, g, state, hyper, n_weights, l1, l2, start, stride):
    lr, rho, eps, momentum = hyper[0], hyper[1], hyper[2], hyper[3]
    one = type(lr)(1.0)
    zero = type(lr)(0.0)
    n = p.size
    for i in range(start, n, stride):
        w = i < n_weights
        gi = _penalised(g[i], p[i], l1 if w else zero, l2 if w else zero)
        s = rho * state[0, i] + (one - rho) * gi * gi
        state[0, i] = s
        if momentum == 0:
            p[i] -= lr * gi / (math.sqrt(s) + eps)
        else:
            b = momentum * state[1, i] + gi / (math.sqrt(s) + eps)
            state[1, i] = b
            p[i] -= lr * b


@cuda.jit(cache=True)
def optimizer_step(
    code, params, grads, state, hyper, n_weights, l1, l2, step_size, inv_sqrt_bc2, decay,
    loss_parts, slot, bad,
):  # fmt: skip
    """Apply one update to ``params`` in place (``code`` from ``kernels.cpu.optimizers``).

    Parameters
    ----------
    code : int
        SGD, ADAM, ADAMW or RMSPROP.
    params, grads : device array (n,)
        Flat buffers: weights first (``n_weights`` of them, penalised), then biases.
    state : device array (slots, n)
        Optimizer state rows as on the CPU (momentum; Adam's m, v; RMSprop's square average and
        momentum); at least one row even for plain SGD, which does not touch it.
    hyper : device array
        Hyper-parameters in the order of ``fastdnn.optimizers`` (``hyperparameters(dtype)``).
    n_weights : int
    l1, l2 : scalar of the parameters' dtype
    step_size, inv_sqrt_bc2, decay : scalar of the parameters' dtype
        Adam/AdamW factors for this step (ignored by SGD and RMSprop).
    loss_parts : device array
        Per-batch loss sums; the update runs only if ``loss_parts[slot]`` is finite.
    slot : int
    bad : device int64 array (1,)
        First non-finite batch of the epoch, or -1; set here, and read to skip later updates.
    """
    if bad[0] >= 0:
        return
    start = cuda.grid(1)
    if not math.isfinite(loss_parts[slot]):
        if start == 0:
            bad[0] = slot
        return
    stride = cuda.gridsize(1)
    if code == SGD:
        _sgd(params, grads, state, hyper, n_weights, l1, l2, start, stride)
    elif code == RMSPROP:
        _rmsprop(params, grads, state, hyper, n_weights, l1, l2, start, stride)
    else:
        _adam(
            params, grads, state, hyper, n_weights, l1, l2, step_size, inv_sqrt_bc2, decay, start,
            stride,
        )  # fmt: skip


@functools.cache
def param_kernels(dtype, threads):
    """Reductions over the parameter buffer for ``dtype``, ``threads`` (a power of two) per block.

    Returns
    -------
    types.SimpleNamespace
        ``stats(params, n_weights, partials)``: block ``b`` writes ``partials[b, 0] = sum |w|``,
        ``partials[b, 1] = sum w**2`` over its share of the weights and ``partials[b, 2]`` = the
        count of non-finite entries among all parameters (grid-stride; the host adds the
        partials in float64, as the CPU ``penalty`` kernel accumulates in float64).
    """
    NT = int(threads)
    if NT < 1 or NT & (NT - 1):
        raise ValueError(f"threads must be a power of two, got {threads}")
    dt = numba.from_dtype(np.dtype(dtype))

    @cuda.jit(cache=True)
    def stats(params, n_weights, partials):
        abs_buf = cuda.shared.array(NT, dt)
        sq_buf = cuda.shared.array(NT, dt)
        bad_buf = cuda.shared.array(NT, dt)
        tid = cuda.threadIdx.x
        abs_sum = dt(0.0)
        sq_sum = dt(0.0)
        n_bad = dt(0.0)
        for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
            p = params[i]
            if not math.isfinite(p):
                n_bad += dt(1.0)
            if i < n_weights:
                abs_sum += abs(p)
                sq_sum += p * p
        abs_buf[tid] = abs_sum
        sq_buf[tid] = sq_sum
        bad_buf[tid] = n_bad
        cuda.syncthreads()
        s = NT // 2
        while s > 0:
            if tid < s:
                abs_buf[tid] += abs_buf[tid + s]
                sq_buf[tid] += sq_buf[tid + s]
                bad_buf[tid] += bad_buf[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            b = cuda.blockIdx.x
            partials[b, 0] = abs_buf[0]
            partials[b, 1] = sq_buf[0]
            partials[b, 2] = bad_buf[0]

    return SimpleNamespace(stats=stats, threads=NT)
