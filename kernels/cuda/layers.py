"""Batch and layer normalisation, dropout and gradient clipping as CUDA kernels.

The device twins of ``kernels/cpu/layers.py`` and ``clip_by_global_norm`` in
``kernels/cpu/optimizers.py``: the same formulas in the same order of operations, and the same
dropout hash, so that a mask is the same on either device. Buffers are flat, with offsets, as
in the other CUDA kernels. Every backward kernel also applies the previous layer's activation
derivative (``prev_act`` over ``Zp``/``Ap`` at ``dx_off``), the step the CPU path takes with
``scale_by_derivative`` after it.

Scalars that the CPU kernels derive in float64 and round once (``1 / rows``, the unbiasing
factor, ``1 / (1 - rate)``) are formed on the host by :class:`fastdnn.engines.cuda.CudaEngine`
and passed in the data's dtype.
"""

import math

import numba
import numpy as np

from ...engines.cuda import cuda
from ..cpu.layers import _GOLDEN, _MIX1, _MIX2, _S27, _S30, _S31, _S32
from .activations import activate, derivative

_LOW32 = np.uint64(0xFFFFFFFF)


@cuda.jit(device=True, inline="always")
def mix64(z):
    """SplitMix64's finaliser, as ``kernels.cpu.layers.mix64``."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@cuda.jit(cache=True)
def batch_norm_forward(X, x_off, Z, A, z_off, params, g_off, b_off, running, s_off, moments,
                       rows, n, eps, momentum, scale, unbias, training, update, act):  # fmt: skip
    """One thread per feature ``j``: the batch (or running) statistics of column ``j`` of the
    (rows, n) block ``X``, then ``Z = gamma * (X - mean) * inv + beta`` and ``A = f(Z)``.

    ``moments[s_off + j]``/``moments[s_off + n + j]`` receive the mean and ``inv = 1 /
    sqrt(var + eps)`` used; with ``training`` and ``update`` the running mean and unbiased
    variance (``unbias = rows / (rows - 1)``, 1 for one row) move by ``momentum``.
    """
    j = cuda.grid(1)
    if j >= n:
        return
    one = type(eps)(1.0)
    if training:
        mean = type(eps)(0.0)
        for i in range(rows):
            mean += X[x_off + i * n + j]
        mean *= scale
        sq = type(eps)(0.0)
        for i in range(rows):
            d = X[x_off + i * n + j] - mean
            sq += d * d
        var = sq * scale
        if update:
            running[s_off + j] = (one - momentum) * running[s_off + j] + momentum * mean
            running[s_off + n + j] = (one - momentum) * running[s_off + n + j] + momentum * (
                var * unbias
            )
        inv = one / math.sqrt(var + eps)
    else:
        mean = running[s_off + j]
        inv = one / math.sqrt(running[s_off + n + j] + eps)
    moments[s_off + j] = mean
    moments[s_off + n + j] = inv
    gamma = params[g_off + j]
    beta = params[b_off + j]
    for i in range(rows):
        z = gamma * ((X[x_off + i * n + j] - mean) * inv) + beta
        Z[z_off + i * n + j] = z
        A[z_off + i * n + j] = activate(act, z)


@cuda.jit(cache=True)
def batch_norm_backward(X, x_off, D, d_off, params, g_off, moments, s_off, grads, b_off, rows, n,
                        scale, DX, Zp, Ap, prev_act):  # fmt: skip
    """One thread per feature: ``dgamma``/``dbeta`` into ``grads[g_off]``/``grads[b_off]`` and
    ``DX = gamma * inv * (D - scale * (dbeta + xhat * dgamma)) * f'(Zp)`` at ``x_off``
    (``scale = 1 / rows`` with batch statistics, 0 with running ones)."""
    j = cuda.grid(1)
    if j >= n:
        return
    mean = moments[s_off + j]
    inv = moments[s_off + n + j]
    dgamma = type(scale)(0.0)
    dbeta = type(scale)(0.0)
    for i in range(rows):
        d = D[d_off + i * n + j]
        dbeta += d
        dgamma += d * ((X[x_off + i * n + j] - mean) * inv)
    grads[g_off + j] = dgamma
    grads[b_off + j] = dbeta
    gamma = params[g_off + j]
    for i in range(rows):
        k = x_off + i * n + j
        xhat = (X[k] - mean) * inv
        dx = gamma * inv * (D[d_off + i * n + j] - scale * (dbeta + xhat * dgamma))
        DX[k] = dx * derivative(prev_act, Zp[k], Ap[k])


@cuda.jit(device=True, inline="always")
def _row_moments(X, row, n, eps, inv_n):
    """``(mean, 1 / sqrt(var + eps))`` of ``X[row:row + n]``, as the CPU ``_row_moments``."""
    total = type(eps)(0.0)
    for j in range(n):
        total += X[row + j]
    mean = total * inv_n
    sq = type(eps)(0.0)
    for j in range(n):
        d = X[row + j] - mean
        sq += d * d
    return mean, type(eps)(1.0) / math.sqrt(sq * inv_n + eps)


@cuda.jit(cache=True)
def layer_norm_forward(X, x_off, Z, A, z_off, params, g_off, b_off, rows, n, eps, inv_n, act):
    """One thread per row: ``Z = gamma * (x - mean(x)) * inv + beta``, ``A = f(Z)``."""
    i = cuda.grid(1)
    if i >= rows:
        return
    row = x_off + i * n
    mean, inv = _row_moments(X, row, n, eps, inv_n)
    for j in range(n):
        z = params[g_off + j] * ((X[row + j] - mean) * inv) + params[b_off + j]
        Z[z_off + i * n + j] = z
        A[z_off + i * n + j] = activate(act, z)


@cuda.jit(cache=True)
def layer_norm_backward_rows(X, x_off, D, d_off, params, g_off, rows, n, eps, inv_n,
                             row_moments, DX, Zp, Ap, prev_act):  # fmt: skip
    """One thread per row: ``DX = inv * (g - mean(g) - xhat * mean(g * xhat)) * f'(Zp)`` with
    ``g = D * gamma``; the row's mean and ``inv`` go to ``row_moments[2i:2i + 2]`` for
    :func:`layer_norm_backward_params`."""
    i = cuda.grid(1)
    if i >= rows:
        return
    row = x_off + i * n
    drow = d_off + i * n
    mean, inv = _row_moments(X, row, n, eps, inv_n)
    row_moments[2 * i] = mean
    row_moments[2 * i + 1] = inv
    g_sum = type(eps)(0.0)
    gx_sum = type(eps)(0.0)
    for j in range(n):
        xhat = (X[row + j] - mean) * inv
        g = D[drow + j] * params[g_off + j]
        g_sum += g
        gx_sum += g * xhat
    g_mean = g_sum * inv_n
    gx_mean = gx_sum * inv_n
    for j in range(n):
        xhat = (X[row + j] - mean) * inv
        dx = inv * (D[drow + j] * params[g_off + j] - g_mean - xhat * gx_mean)
        DX[row + j] = dx * derivative(prev_act, Zp[row + j], Ap[row + j])


@cuda.jit(cache=True)
def layer_norm_backward_params(X, x_off, D, d_off, row_moments, grads, g_off, b_off, rows, n):
    """One thread per feature: ``dgamma = sum_i D * xhat``, ``dbeta = sum_i D``."""
    j = cuda.grid(1)
    if j >= n:
        return
    dgamma = type(D[d_off])(0.0)
    dbeta = type(D[d_off])(0.0)
    for i in range(rows):
        d = D[d_off + i * n + j]
        dbeta += d
        dgamma += d * ((X[x_off + i * n + j] - row_moments[2 * i]) * row_moments[2 * i + 1])
    grads[g_off + j] = dgamma
    grads[b_off + j] = dbeta


@cuda.jit(cache=True)
def dropout_forward(X, x_off, Z, A, z_off, size, threshold, keep, key):
    """One thread per pair of elements: element ``e`` of the block is dropped when 32 bits of
    ``mix64(key + (e // 2) * golden)`` (top half for even ``e``, bottom for odd) fall below
    ``threshold = rate * 2**32``; the mask (0 or ``keep = 1 / (1 - rate)``) goes to ``Z``."""
    p = cuda.grid(1)
    e = 2 * p
    if e >= size:
        return
    h = mix64(key + numba.uint64(p) * _GOLDEN)
    zero = type(keep)(0.0)
    m = keep if (h >> _S32) >= threshold else zero
    Z[z_off + e] = m
    A[z_off + e] = X[x_off + e] * m
    if e + 1 < size:
        m = keep if (h & _LOW32) >= threshold else zero
        Z[z_off + e + 1] = m
        A[z_off + e + 1] = X[x_off + e + 1] * m


@cuda.jit(cache=True)
def dropout_identity(X, x_off, A, a_off, size):
    """``A = X`` (dropout at inference, or at rate 0)."""
    e = cuda.grid(1)
    if e < size:
        A[a_off + e] = X[x_off + e]


@cuda.jit(cache=True)
def dropout_backward(D, d_off, Z, masked, DX, dx_off, size, Zp, Ap, prev_act):
    """``DX = D * mask * f'(Zp)`` (the mask in ``Z`` at ``d_off``; 1 unless ``masked``)."""
    e = cuda.grid(1)
    if e >= size:
        return
    d = D[d_off + e]
    if masked:
        d *= Z[d_off + e]
    k = dx_off + e
    DX[k] = d * derivative(prev_act, Zp[k], Ap[k])


@cuda.jit(cache=True)
def squared_norm(grads, sq, slot):
    """``sq[slot] += sum(grads**2)`` in float64: each thread's grid-stride share, one atomic."""
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    acc = 0.0
    for i in range(start, grads.size, stride):
        g = numba.float64(grads[i])
        acc += g * g
    cuda.atomic.add(sq, slot, acc)


@cuda.jit(cache=True)
def clip_by_norm(grads, sq, slot, max_norm):
    """Scale ``grads`` by ``max_norm / (sqrt(sq[slot]) + 1e-6)`` when that is below 1
    (``torch.nn.utils.clip_grad_norm_``)."""
    coef = max_norm / (math.sqrt(sq[slot]) + 1e-6)
    if coef >= 1.0:
        return
    factor = type(grads[0])(coef)
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, grads.size, stride):
        grads[i] *= factor
