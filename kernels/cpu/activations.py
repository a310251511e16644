"""Activation functions and their derivatives, fused with the bias add of a dense layer.

Codes are plain integers so that compiled code can branch on them; ``fastdnn.layers`` maps the
public names onto them. Every scalar function is generic over float32/float64: constants are
built with ``type(z)`` casts so that float32 never silently becomes float64.

Each array kernel dispatches on the code once, outside its loops: the loop bodies are inlined
with the code as a constant, so LLVM removes the dispatch and vectorises them (a branch on a
runtime code inside the loop made the ReLU pass 7x slower).
"""

from numba import njit

from .._options import INLINE_OPTIONS, JIT_OPTIONS
from .vecmath import vexp, vexpm1, vlog1p, vtanh

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
    """Logistic function; ``exp(-z)`` overflowing to a huge value still gives 0, not NaN."""
    one = type(z)(1.0)
    return one / (one + vexp(-z))


@njit(**INLINE_OPTIONS)
def softplus(z):
    """``log(1 + exp(z))`` without overflow."""
    return max(z, type(z)(0.0)) + vlog1p(vexp(-abs(z)))


@njit(**INLINE_OPTIONS)
def activate(code, z):
    """Elementwise activation ``f(z)`` for every code but softmax (which is row-wise)."""
    t = type(z)
    if code == RELU:
        return z if z > 0 else t(0.0)
    if code == SIGMOID:
        return sigmoid(z)
    if code == TANH:
        return vtanh(z)
    if code == LEAKY_RELU:
        return z if z > 0 else t(LEAKY_SLOPE) * z
    if code == ELU:
        return z if z > 0 else vexpm1(z)
    if code == GELU:
        u = t(GELU_C) * (z + t(GELU_A) * z * z * z)
        return t(0.5) * z * (t(1.0) + vtanh(u))
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
        th = vtanh(t(GELU_C) * (z + t(GELU_A) * z2 * z))
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
            e = vexp(Z[i, j] - shift)
            A[i, j] = e
            total += e
        inv = Z.dtype.type(1.0) / total
        for j in range(m):
            A[i, j] *= inv


@njit(**JIT_OPTIONS)
def bias_add(bias, Z):
    """Add ``bias`` to every row of ``Z`` in place.

    Kept as its own pass rather than fused into each activation loop: the fused variants
    doubled the cold compile time (about 5 s) to save about 1 % of a training step.
    """
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            Z[i, j] += bias[j]


@njit(**INLINE_OPTIONS)
def _activation_loop(code, Z, A):
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            A[i, j] = activate(code, Z[i, j])


@njit(**JIT_OPTIONS)
def activation(code, Z, A):
    """``A = f(Z)``: softmax row-wise, every other code elementwise."""
    if code == RELU:
        _activation_loop(RELU, Z, A)
    elif code == SIGMOID:
        _activation_loop(SIGMOID, Z, A)
    elif code == TANH:
        _activation_loop(TANH, Z, A)
    elif code == LEAKY_RELU:
        _activation_loop(LEAKY_RELU, Z, A)
    elif code == ELU:
        _activation_loop(ELU, Z, A)
    elif code == GELU:
        _activation_loop(GELU, Z, A)
    elif code == SOFTPLUS:
        _activation_loop(SOFTPLUS, Z, A)
    elif code == SOFTMAX:
        softmax_rows(Z, A)
    else:
        _activation_loop(LINEAR, Z, A)


@njit(**INLINE_OPTIONS)
def _derivative_loop(code, Z, A, D):
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            D[i, j] *= derivative(code, Z[i, j], A[i, j])


@njit(**JIT_OPTIONS)
def scale_by_derivative(code, Z, A, D):
    """``D *= f'(Z)`` in place: turns the gradient w.r.t. a layer's output into its delta."""
    if code == RELU:
        _derivative_loop(RELU, Z, A, D)
    elif code == SIGMOID:
        _derivative_loop(SIGMOID, Z, A, D)
    elif code == TANH:
        _derivative_loop(TANH, Z, A, D)
    elif code == LEAKY_RELU:
        _derivative_loop(LEAKY_RELU, Z, A, D)
    elif code == ELU:
        _derivative_loop(ELU, Z, A, D)
    elif code == GELU:
        _derivative_loop(GELU, Z, A, D)
    elif code == SOFTPLUS:
        _derivative_loop(SOFTPLUS, Z, A, D)
