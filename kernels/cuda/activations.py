"""Activation functions and derivatives as CUDA device functions, plus the output activation.

The device functions mirror ``kernels/cpu/activations.py`` code for code (the integer codes are
imported from there) and are generic over float32/float64: every constant is cast with
``type(z)`` so float32 arithmetic never becomes float64 (libdevice's ``expf``/``tanhf``/... are
called for float32 arguments). The GEMM epilogues and the loss kernels inline them.
"""

import math

from ...engines.cuda import cuda
from ..cpu.activations import (
    ELU,
    EXP,
    GELU,
    GELU_A,
    GELU_C,
    LEAKY_RELU,
    LEAKY_SLOPE,
    RELU,
    SIGMOID,
    SOFTMAX,
    SOFTPLUS,
    TANH,
)

GELU_3A = 3.0 * GELU_A


@cuda.jit(device=True, inline="always")
def sigmoid(z):
    """Logistic function; ``exp(-z)`` overflowing to infinity still gives 0, not NaN."""
    one = type(z)(1.0)
    return one / (one + math.exp(-z))


@cuda.jit(device=True, inline="always")
def softplus(z):
    """``log(1 + exp(z))`` without overflow."""
    return max(z, type(z)(0.0)) + math.log1p(math.exp(-abs(z)))


@cuda.jit(device=True, inline="always")
def activate(code, z):
    """Elementwise activation ``f(z)`` for every code but softmax (which is row-wise)."""
    t = type(z)
    if code == RELU:
        return z if z > 0 else t(0.0)
    if code == SIGMOID:
        return sigmoid(z)
    if code == TANH:
        return math.tanh(z)
    if code == LEAKY_RELU:
        return z if z > 0 else t(LEAKY_SLOPE) * z
    if code == ELU:
        return z if z > 0 else math.expm1(z)
    if code == GELU:
        u = t(GELU_C) * (z + t(GELU_A) * z * z * z)
        return t(0.5) * z * (t(1.0) + math.tanh(u))
    if code == SOFTPLUS:
        return softplus(z)
    if code == EXP:
        return math.exp(z)
    return z


@cuda.jit(device=True, inline="always")
def derivative(code, z, a):
    """``f'(z)`` for every code but softmax, using the cached output ``a = f(z)`` where cheaper."""
    t = type(z)
    one = t(1.0)
    if code == RELU:
        return one if z > 0 else t(0.0)
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == LEAKY_RELU:
        return one if z > 0 else t(LEAKY_SLOPE)
    if code == ELU:
        return one if z > 0 else a + one
    if code == GELU:
        z2 = z * z
        th = math.tanh(t(GELU_C) * (z + t(GELU_A) * z2 * z))
        du = t(GELU_C) * (one + t(GELU_3A) * z2)
        return t(0.5) * (one + th) + t(0.5) * z * (one - th * th) * du
    if code == SOFTPLUS:
        return sigmoid(z)
    if code == EXP:
        return a
    return one


@cuda.jit(device=True, inline="always")
def softmax_row(Z, z_off, A, a_off, n):
    """Softmax of ``Z[z_off:z_off + n]`` into ``A[a_off:a_off + n]`` by the max-shifted form.

    Returns ``(shift, sum_exp)`` so that a caller can form ``log-sum-exp = shift + log(sum)``.
    """
    shift = Z[z_off]
    for j in range(1, n):
        shift = max(shift, Z[z_off + j])
    total = type(shift)(0.0)
    for j in range(n):
        e = math.exp(Z[z_off + j] - shift)
        A[a_off + j] = e
        total += e
    inv = type(shift)(1.0) / total
    for j in range(n):
        A[a_off + j] *= inv
    return shift, total


@cuda.jit
def output_activation(code, Z, z_off, A, a_off, rows, n_out):
    """``A = f(Z)`` for a (rows, n_out) block, one thread per row: softmax row-wise, every other
    code elementwise. Used by prediction, where no loss is fused with the output layer."""
    i = cuda.grid(1)
    if i < rows:
        zr = z_off + i * n_out
        ar = a_off + i * n_out
        if code == SOFTMAX:
            softmax_row(Z, zr, A, ar, n_out)
        else:
            for j in range(n_out):
                A[ar + j] = activate(code, Z[zr + j])
