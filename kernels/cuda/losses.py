"""Losses fused with the output layer's activation and delta, as CUDA kernels.

Mirrors ``kernels/cpu/losses.py`` (same codes, same numerically stable forms): from the output
pre-activation ``Z`` one kernel writes the output activation ``A``, the delta ``D = dloss/dZ``
(scaled by ``scale * row_weight``) and adds the batch's weighted loss and correct-prediction count
into ``loss_parts[slot]`` and ``correct_parts[slot]``. Each block reduces its threads' values in
shared memory and adds them with one atomic per block; the host sums the per-batch slots in float64
at the end of an epoch, as the CPU path sums its per-batch totals.

- :func:`loss_kernels` ``.cross_entropy``: softmax + cross-entropy, one thread per row;
- :func:`loss_kernels` ``.elementwise``: MSE (any elementwise output activation), sigmoid +
  binary cross-entropy and exp + Poisson, one thread per output element.
"""

import functools
import math
from types import SimpleNamespace

import numba
import numpy as np

from ...engines.cuda import cuda
from ..cpu.losses import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE, POISSON
from .activations import activate, derivative, softmax_row, softplus

__all__ = ["BINARY_CROSS_ENTROPY", "CROSS_ENTROPY", "MSE", "POISSON", "loss_kernels"]


@cuda.jit(device=True, inline="always")
def poisson_deviance(z, mu, y):
    """Half Poisson deviance ``y * log(y / mu) - y + mu`` of one element, ``mu = exp(z)``, in
    the two forms of ``kernels.cpu.losses.poisson_deviance`` (see there for why)."""
    t = type(z)
    if y <= 0:
        return mu
    d = mu - y
    if abs(d) < t(0.5) * y:
        return d - y * math.log1p(d / y)
    return d + y * (math.log(y) - z)


@functools.cache
def loss_kernels(dtype, threads):
    """The output-layer loss kernels for ``dtype``, launched with ``threads`` per block.

    Parameters
    ----------
    dtype : str or numpy.dtype
        Element type of the floating-point buffers.
    threads : int
        Threads per block, a power of two (the block reduction halves it).

    Returns
    -------
    types.SimpleNamespace
        ``cross_entropy`` and ``elementwise`` kernels; see their docstrings.
    """
    NT = int(threads)
    if NT < 1 or NT & (NT - 1):
        raise ValueError(f"threads must be a power of two, got {threads}")
    dt = numba.from_dtype(np.dtype(dtype))

    @cuda.jit(device=True, inline="always")
    def add_block_totals(loss, correct, loss_parts, correct_parts, slot):
        # Tree reduction over the block, then one atomic per block.
        loss_buf = cuda.shared.array(NT, dt)
        count_buf = cuda.shared.array(NT, numba.int32)
        tid = cuda.threadIdx.x
        loss_buf[tid] = loss
        count_buf[tid] = correct
        cuda.syncthreads()
        s = NT // 2
        while s > 0:
            if tid < s:
                loss_buf[tid] += loss_buf[tid + s]
                count_buf[tid] += count_buf[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            cuda.atomic.add(loss_parts, slot, loss_buf[0])
            cuda.atomic.add(correct_parts, slot, count_buf[0])

    @cuda.jit(cache=True)
    def cross_entropy(
        Z, A, D, off, Y, y_off, weight, w_off, rows, n_out, scale, write_delta, loss_parts,
        correct_parts, slot,
    ):  # fmt: skip
        """Softmax + cross-entropy of a (rows, n_out) batch, one thread per row.

        ``Z``, ``A``, ``D`` share the block offset ``off``; ``Y`` is (rows, n_out) at
        ``Y[y_off:]`` and the row weights at ``weight[w_off:]``. Writes ``A = softmax(Z)`` and,
        if ``write_delta``, ``D = (A - Y) * scale * w``; adds ``sum_i w_i * (lse_i * sum_j y_ij
        - sum_j y_ij z_ij)`` and the argmax matches (first maximum, as ``argmax``) to the slots.
        Launch with ``ceil(rows / threads)`` blocks.
        """
        i = cuda.blockIdx.x * NT + cuda.threadIdx.x
        loss = dt(0.0)
        correct = 0
        if i < rows:
            zr = off + i * n_out
            yr = y_off + i * n_out
            shift, sum_exp = softmax_row(Z, zr, A, zr, n_out)
            y_sum = dt(0.0)
            yz = dt(0.0)
            best_a = 0
            best_y = 0
            for j in range(n_out):
                y = Y[yr + j]
                y_sum += y
                yz += y * Z[zr + j]
                if A[zr + j] > A[zr + best_a]:
                    best_a = j
                if y > Y[yr + best_y]:
                    best_y = j
            w = weight[w_off + i]
            loss = w * ((shift + math.log(sum_exp)) * y_sum - yz)
            if best_a == best_y:
                correct = 1
            if write_delta:
                row_scale = scale * w
                for j in range(n_out):
                    D[zr + j] = (A[zr + j] - Y[yr + j]) * row_scale
        add_block_totals(loss, correct, loss_parts, correct_parts, slot)

    @cuda.jit(cache=True)
    def elementwise(
        loss_code, act, Z, A, D, off, Y, y_off, weight, w_off, rows, n_out, scale, write_delta,
        loss_parts, correct_parts, slot,
    ):  # fmt: skip
        """MSE, sigmoid + binary cross-entropy or exp + Poisson of a (rows, n_out) batch, one
        thread per element.

        Writes ``A = f(Z)`` (activation code ``act``) and, if ``write_delta``, the delta:
        ``(A - Y) * scale * w`` for binary cross-entropy and Poisson,
        ``(A - Y) * (2 * scale * w) * f'(Z)`` for MSE. Adds ``w * (softplus(z) - z * y)``,
        ``w * poisson_deviance(z, a, y)`` or ``w * (a - y)**2`` and, for binary cross-entropy,
        the elements on the right side of 0.5 to the slots. Launch with
        ``ceil(rows * n_out / threads)`` blocks.
        """
        e = cuda.blockIdx.x * NT + cuda.threadIdx.x
        loss = dt(0.0)
        correct = 0
        if e < rows * n_out:
            z = Z[off + e]
            a = activate(act, z)
            A[off + e] = a
            y = Y[y_off + e]
            w = weight[w_off + e // n_out]
            if loss_code == BINARY_CROSS_ENTROPY:
                loss = w * (softplus(z) - z * y)
                half = dt(0.5)
                if (a > half) == (y > half):
                    correct = 1
                if write_delta:
                    D[off + e] = (a - y) * (scale * w)
            elif loss_code == POISSON:
                loss = w * poisson_deviance(z, a, y)
                if write_delta:
                    D[off + e] = (a - y) * (scale * w)
            else:
                r = a - y
                loss = w * (r * r)
                if write_delta:
                    D[off + e] = r * (dt(2.0) * scale * w) * derivative(act, z, a)
        add_block_totals(loss, correct, loss_parts, correct_parts, slot)

    return SimpleNamespace(cross_entropy=cross_entropy, elementwise=elementwise, threads=NT)
