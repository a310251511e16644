"""The vectorisable float32 transcendental functions against float64 NumPy, in ulps."""

import numpy as np
import pytest
from numba import njit

from fastdnn.kernels.cpu.vecmath import vexp, vexpm1, vlog1p, vtanh


@njit
def _apply(code, x, out):
    for i in range(x.size):
        if code == 0:
            out[i] = vexp(x[i])
        elif code == 1:
            out[i] = vtanh(x[i])
        elif code == 2:
            out[i] = vexpm1(x[i])
        else:
            out[i] = vlog1p(x[i])


def _grid(low, high):
    tiny = np.logspace(-30, 0, 3001)
    return np.concatenate([np.linspace(low, high, 200001), tiny, -tiny]).clip(low, high)


CASES = [
    (0, np.exp, _grid(-87.0, 88.0), 2.0),
    (1, np.tanh, _grid(-20.0, 20.0), 2.0),
    (2, np.expm1, _grid(-80.0, 80.0), 2.0),
    (3, np.log1p, _grid(0.0, 1e4), 3.0),
]


@pytest.mark.parametrize(
    "code, reference, x, max_ulp", CASES, ids=["exp", "tanh", "expm1", "log1p"]
)
def test_float32_within_ulps_of_float64(code, reference, x, max_ulp):
    x32 = x.astype(np.float32)
    out = np.empty_like(x32)
    _apply(code, x32, out)
    exact = reference(x32.astype(np.float64))
    ulp = np.spacing(np.maximum(np.abs(exact), np.finfo(np.float32).tiny).astype(np.float32))
    error = np.abs(out.astype(np.float64) - exact) / ulp
    assert out.dtype == np.float32
    assert error.max() <= max_ulp, x32[np.argmax(error)]


def test_float32_exp_saturates_instead_of_overflowing():
    x = np.array([-1e4, -100.0, 100.0, 1e4, np.inf, -np.inf], dtype=np.float32)
    out = np.empty_like(x)
    _apply(0, x, out)
    assert np.isfinite(out).all()
    assert out[0] < 1e-37 and out[3] > 1e38


@pytest.mark.parametrize(
    "code, reference", [(0, np.exp), (1, np.tanh), (2, np.expm1), (3, np.log1p)]
)
def test_float64_uses_libm(code, reference):
    x = np.linspace(0.0, 3.0, 1001)
    out = np.empty_like(x)
    _apply(code, x, out)
    # libm and NumPy's own SIMD routines may differ in the last bit.
    np.testing.assert_allclose(out, reference(x), rtol=1e-15, atol=0)


def test_nan_propagates():
    x = np.array([np.nan], dtype=np.float32)
    for code in range(4):
        out = np.zeros_like(x)
        _apply(code, x, out)
        assert np.isnan(out[0]), code
