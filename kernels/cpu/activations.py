"""Activation functions and their derivatives, fused with the bias add of a dense layer.

Codes are plain integers so that compiled code can branch on them; ``fastdnn.layers`` maps the
public names onto them. Every scalar function is generic over float32/float64: constants are
built with ``z.dtype``-typed casts so that float32 never silently becomes float64.
"""

import numpy as np
from numba import njit

from .._options import INLINE_OPTIONS, JIT_OPTIONS

LINEAR = 0
RELU = 1
SIGMOID = 2
TANH = 3
LEAKY_RELU = 4
ELU = 5
GELU = 6
SOFTPLUS = 7
SOFTMAX = 8

LEAKY_SLOPE = 0.01
GELU_C = 0.7978845608028654  # sqrt(2 / pi)
GELU_A = 0.044715


@njit(**INLINE_OPTIONS)
def sigmoid(z):
    """Logistic function without overflow for large ``|z|``."""
    one = type(z)(1.0)
    if z >= 0:
        return one / (one + np.exp(-z))
    e = np.exp(z)
    return e / (one + e)


@njit(**INLINE_OPTIONS)
def softplus(z):
    """``log(1 + exp(z))`` without overflow."""
    zero = type(z)(0.0)
    return max(z, zero) + np.log1p(np.exp(-abs(z)))


@njit(**INLINE_OPTIONS)
def activate(code, z):
    """Elementwise activation ``f(z)`` for every code but softmax (which is row-wise)."""
    t = type(z)
    if code == RELU:
        return z if z > 0 else t(0.0)
    if code == SIGMOID:
        return sigmoid(z)
    if code == TANH:
        return np.tanh(z)
    if code == LEAKY_RELU:
        return z if z > 0 else t(LEAKY_SLOPE) * z
    if code == ELU:
        return z if z > 0 else np.expm1(z)
    if code == GELU:
        u = t(GELU_C) * (z + t(GELU_A) * z * z * z)
        return t(0.5) * z * (t(1.0) + np.tanh(u))
    if code == SOFTPLUS:
        return softplus(z)
    return z


@njit(**INLINE_OPTIONS)
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
        th = np.tanh(t(GELU_C) * (z + t(GELU_A) * z2 * z))
        du = t(GELU_C) * (one + t(3.0 * GELU_A) * z2)
        return t(0.5) * (one + th) + t(0.5) * z * (one - th * th) * du
    if code == SOFTPLUS:
        return sigmoid(z)
    return one


@njit(**JIT_OPTIONS)
def softmax_rows(Z, A):
    """Row-wise softmax of ``Z`` into ``A`` by the max-shifted (log-sum-exp) form."""
    n, m = Z.shape
    for i in range(n):
        shift = Z[i, 0]
        for j in range(1, m):
            shift = max(shift, Z[i, j])
        total = Z.dtype.type(0.0)
        for j in range(m):
            e = np.exp(Z[i, j] - shift)
            A[i, j] = e
            total += e
        inv = Z.dtype.type(1.0) / total
        for j in range(m):
            A[i, j] *= inv


@njit(**JIT_OPTIONS)
def bias_activation(code, bias, Z, A):
    """Add ``bias`` to every row of ``Z`` in place, then write the activation into ``A``.

    ``Z`` keeps the pre-activation, which the backward pass needs for some derivatives.
    """
    if code == SOFTMAX:
        bias_add(bias, Z)
        softmax_rows(Z, A)
        return
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            z = Z[i, j] + bias[j]
            Z[i, j] = z
            A[i, j] = activate(code, z)


@njit(**JIT_OPTIONS)
def bias_add(bias, Z):
    """Add ``bias`` to every row of ``Z`` in place (the output layer, whose activation is fused
    with the loss)."""
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            Z[i, j] += bias[j]


@njit(**JIT_OPTIONS)
def scale_by_derivative(code, Z, A, D):
    """``D *= f'(Z)`` in place: turns the gradient w.r.t. a layer's output into its delta."""
    n, m = Z.shape
    if code == LINEAR:
        return
    for i in range(n):
        for j in range(m):
            D[i, j] *= derivative(code, Z[i, j], A[i, j])
