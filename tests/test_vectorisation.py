"""The elementwise kernels compile to SIMD loops.

fastdnn's speed on its elementwise passes rests on LLVM vectorising each loop, and a loop that
silently stays scalar still gives the right answers: an earlier change compiled the optimizer
updates apart and Adam ran 3.5x slower with every test green. These tests read the x86-64
assembly of freshly compiled (uncached) kernels and require packed single-precision arithmetic
on 256- or 512-bit registers (``vmaxps ... %ymm``), which a scalar loop never emits (it works
on ``%xmm`` with ``ss`` instructions).
"""

import platform
import re

import numpy as np
import pytest
from numba import njit

from fastdnn.kernels._options import CALLEE_OPTIONS
from fastdnn.kernels.cpu import activations as act
from fastdnn.kernels.cpu import optimizers as opt
from fastdnn.kernels.cpu.checks import all_finite
from fastdnn.kernels.cpu.network import column_sum

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86-64 assembly"
)

PACKED_ARITHMETIC = re.compile(
    r"\bv(?:add|sub|mul|div|sqrt|max|min|fmadd\w*|fmsub\w*|fnmadd\w*|cmp\w*|blendv|blendm|and|andn)"
    r"ps\s[^\n]*%[yz]mm"
)


def _avx():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return " avx2 " in cpuinfo.read().replace("\n", " ")
    except OSError:
        return False


requires_avx2 = pytest.mark.skipif(not _avx(), reason="needs a CPU with AVX2 (256-bit SIMD)")


def _assembly(function, *args):
    """x86-64 assembly of an uncached copy of the njit ``function`` compiled for ``args``."""
    fresh = njit(**CALLEE_OPTIONS)(function.py_func if hasattr(function, "py_func") else function)
    fresh(*args)
    (assembly,) = fresh.inspect_asm().values()
    return assembly


def _packed(assembly):
    return PACKED_ARITHMETIC.findall(assembly)


Z = np.linspace(-3, 3, 8 * 40, dtype=np.float32).reshape(8, 40)
CODES = [act.RELU, act.SIGMOID, act.TANH, act.LEAKY_RELU, act.ELU, act.GELU, act.SOFTPLUS, act.EXP]


@requires_avx2
@pytest.mark.parametrize("code", CODES)
def test_activation_and_derivative_loops_are_vectorised(code):
    forward, derivative = act.LOOPS[code]
    A, D = np.empty_like(Z), np.ones_like(Z)
    assert _packed(_assembly(forward, Z, A)), f"activation {code} stayed scalar"
    assert _packed(_assembly(derivative, Z, A, D)), f"derivative {code} stayed scalar"


@requires_avx2
def test_bias_column_sum_and_finiteness_passes_are_vectorised():
    bias = np.zeros(Z.shape[1], np.float32)
    # the bias fill only copies: packed (256/512-bit) moves rather than arithmetic
    assert re.search(r"\bvmovup[sd]\s[^\n]*%[yz]mm", _assembly(act.bias_fill, bias, Z.copy()))
    assert _packed(_assembly(column_sum, Z, bias))
    assert _packed(_assembly(all_finite, Z.ravel()))


@requires_avx2
@pytest.mark.parametrize("code", [opt.SGD, opt.ADAM, opt.RMSPROP])
def test_optimizer_updates_are_vectorised(code):
    n = 64
    params, grads = np.ones(n, np.float32), np.full(n, 0.1, np.float32)
    state = np.zeros((2, n), np.float32)
    hyper = np.array([1e-3, 0.9, 0.999, 1e-8, 0.0], np.float32)
    zero = np.float32(0)

    def step(params, grads, state, hyper):
        opt.optimizer_step(code, params, grads, state, hyper, 1, 32, zero, zero)

    assembly = _assembly(step, params, grads, state, hyper)
    assert _packed(assembly)
    if code != opt.SGD:
        # Adam and RMSprop divide by a square root: scalar loops use vsqrtss
        assert re.search(r"\bvsqrtps\s[^\n]*%[yz]mm", assembly)
