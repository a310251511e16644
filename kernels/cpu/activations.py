"""Activation functions and their derivatives, as vectorised passes over a layer's output.

Codes are plain integers so that compiled code can branch on them; ``fastdnn.layers`` maps the
public names onto them. Every scalar function is generic over float32/float64: constants are
built with ``type(z)`` casts so that float32 never silently becomes float64.

Each array kernel dispatches on the code once, outside its loops, to a loop compiled for one
activation (``LOOPS``), so LLVM vectorises every loop with no branch on the code inside it; the
dispatch (``activation_for``, ``scale_by_derivative_for``) is compiled only for the codes of a
feature set (``features.py``).
"""

from numba import njit

from .._options import INLINE_OPTIONS, callee, kernel
from .features import ALL, activation_bit, switch
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
EXP = 9

LEAKY_SLOPE = 0.01
GELU_C = 0.7978845608028654  # sqrt(2 / pi)
GELU_A = 0.044715


@callee
def sigmoid(z):
    """Logistic function; ``exp(-z)`` overflowing to a huge value still gives 0, not NaN."""
    one = type(z)(1.0)
    return one / (one + vexp(-z))


# Inlined by Numba: as an LLVM call, softplus grew past LLVM's inlining threshold and its loop
# stopped vectorising (10x slower).
@njit(**INLINE_OPTIONS)
def softplus(z):
    """``log(1 + exp(z))`` without overflow."""
    return max(z, type(z)(0.0)) + vlog1p(vexp(-abs(z)))


@callee
def _linear(z):
    return z


@callee
def _relu(z):
    return z if z > 0 else type(z)(0.0)


@callee
def _tanh(z):
    return vtanh(z)


@callee
def _leaky_relu(z):
    return z if z > 0 else type(z)(LEAKY_SLOPE) * z


@callee
def _elu(z):
    return z if z > 0 else vexpm1(z)


# float32 saturates at exp(88.4) ~ 2.7e38 (vexp clamps its input), float64 overflows to inf
# past 709: a diverging output then shows up as a non-finite loss.
@callee
def _exp(z):
    return vexp(z)


@callee
def _gelu(z):
    t = type(z)
    u = t(GELU_C) * (z + t(GELU_A) * z * z * z)
    return t(0.5) * z * (t(1.0) + vtanh(u))


# Derivatives take ``(z, a)`` with ``a = f(z)`` cached from the forward pass.
@callee
def _d_linear(z, a):
    return type(z)(1.0)


@callee
def _d_relu(z, a):
    return type(z)(1.0) if z > 0 else type(z)(0.0)


@callee
def _d_sigmoid(z, a):
    return a * (type(z)(1.0) - a)


@callee
def _d_tanh(z, a):
    return type(z)(1.0) - a * a


@callee
def _d_leaky_relu(z, a):
    return type(z)(1.0) if z > 0 else type(z)(LEAKY_SLOPE)


@callee
def _d_elu(z, a):
    return type(z)(1.0) if z > 0 else a + type(z)(1.0)


@njit(**INLINE_OPTIONS)
def _d_gelu(z, a):
    t = type(z)
    one = t(1.0)
    z2 = z * z
    th = vtanh(t(GELU_C) * (z + t(GELU_A) * z2 * z))
    du = t(GELU_C) * (one + t(3.0 * GELU_A) * z2)
    return t(0.5) * (one + th) + t(0.5) * z * (one - th * th) * du


@callee
def _d_softplus(z, a):
    return sigmoid(z)


@callee
def _d_exp(z, a):
    return a  # exp is its own derivative: the cached output, no second exp


# code -> (f, f'): the elementwise activations; softmax is row-wise and handled apart.
ELEMENTWISE = {
    LINEAR: (_linear, _d_linear),
    RELU: (_relu, _d_relu),
    SIGMOID: (sigmoid, _d_sigmoid),
    TANH: (_tanh, _d_tanh),
    LEAKY_RELU: (_leaky_relu, _d_leaky_relu),
    ELU: (_elu, _d_elu),
    GELU: (_gelu, _d_gelu),
    SOFTPLUS: (softplus, _d_softplus),
    EXP: (_exp, _d_exp),
}


def _elementwise_loops(f, df):
    """The compiled passes ``A = f(Z)`` and ``D *= f'(Z)`` of one activation: each types one
    scalar function, so LLVM vectorises the loop with no branch on a code inside it (such a
    branch made the ReLU pass 7x slower)."""

    @callee
    def activation_loop(Z, A):
        n, m = Z.shape
        for i in range(n):
            for j in range(m):
                A[i, j] = f(Z[i, j])

    @callee
    def derivative_loop(Z, A, D):
        n, m = Z.shape
        for i in range(n):
            for j in range(m):
                D[i, j] *= df(Z[i, j], A[i, j])

    return activation_loop, derivative_loop


# code -> (activation loop, derivative loop)
LOOPS = {code: _elementwise_loops(f, df) for code, (f, df) in ELEMENTWISE.items()}


@kernel
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


@kernel
def bias_fill(bias, Z):
    """Write ``bias`` into every row of ``Z``; the layer's GEMM then adds ``X @ W.T`` to it.

    BLAS zeroes its output in a pass of its own before overwriting it, so filling it with the
    bias instead costs nothing extra (a separate bias pass after the GEMM did: 3 % of a
    forward at 4096 rows). Fusing the bias into each activation loop instead doubled the cold
    compile time.
    """
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            Z[i, j] = bias[j]


@callee
def _no_pass(Z, A, D):
    pass


_BITS = {code: activation_bit(code) for code in (*ELEMENTWISE, SOFTMAX)}
_NON_LINEAR = [code for code in ELEMENTWISE if code != LINEAR]
# A linear layer's derivative is 1 and softmax's is fused with the loss: neither has a
# derivative pass.
activation_for = switch(
    _BITS,
    {**{c: LOOPS[c][0] for c in _NON_LINEAR}, SOFTMAX: softmax_rows, LINEAR: LOOPS[LINEAR][0]},
)
activation_for.__doc__ = """``activation_for(features, code, Z, A)``: ``A = f(Z)`` (softmax
row-wise, every other code elementwise), compiled for the codes in ``features``."""
scale_by_derivative_for = switch(
    _BITS, {**{c: LOOPS[c][1] for c in _NON_LINEAR}, SOFTMAX: _no_pass, LINEAR: _no_pass}
)
scale_by_derivative_for.__doc__ = """``scale_by_derivative_for(features, code, Z, A, D)``:
``D *= f'(Z)`` in place (a layer's output gradient into its delta), for the codes in
``features``."""


@kernel
def activation(code, Z, A):
    """``A = f(Z)``: softmax row-wise, every other code elementwise (every code compiled)."""
    activation_for(ALL, code, Z, A)


@kernel
def scale_by_derivative(code, Z, A, D):
    """``D *= f'(Z)`` in place: turns the gradient w.r.t. a layer's output into its delta
    (every code compiled)."""
    scale_by_derivative_for(ALL, code, Z, A, D)
