"""The kernels' matrix product, ``kernels.cpu.blas.gemm``, against NumPy in float64.

Every layout the network kernels pass (C-contiguous, transposed views, and strided views copied
first), both dtypes, degenerate shapes, and products on both sides of ``SMALL_GEMM`` (which
take different BLAS symbols), and small outputs over a long inner dimension (``SKINNY_OUTPUT``,
``SKINNY_DEPTH``: summed by fastdnn's own loop). With MKL installed the same checks run again in
a process bound to MKL (``FASTDNN_BLAS=mkl``); SciPy's BLAS is always checked.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

from fastdnn.kernels.cpu import blas
from fastdnn.kernels.cpu.blas import SMALL_GEMM, gemm, gemm_add

SHAPES = [(3, 4, 5), (1, 7, 2), (6, 1, 3), (5, 8, 1), (0, 3, 2), (3, 0, 2), (2, 3, 0), (70, 60, 80),
          (5, 6000, 9), (1, 70000, 4)]  # fmt: skip


@njit
def _product(a, b, out):
    gemm(a, b, out)


def check_every_layout(dtype):
    """``gemm`` against float64 NumPy for every layout of both operands (used in children)."""
    assert 70 * 60 * 80 > SMALL_GEMM >= 33 * 17 * 9
    assert 5 * 9 <= blas.SKINNY_OUTPUT and 6000 >= blas.SKINNY_DEPTH and 5 * 6000 * 9 > SMALL_GEMM
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for m, k, n in SHAPES:
        A = rng.normal(size=(m, k)).astype(dtype)
        B = rng.normal(size=(k, n)).astype(dtype)
        wide_A = np.repeat(A, 2, axis=1)
        for a in (A, np.ascontiguousarray(A.T).T, wide_A[:, ::2]):
            for b in (B, np.ascontiguousarray(B.T).T):
                out = np.full((m, n), np.nan, dtype)
                _product(a, b, out)
                expected = A.astype(np.float64) @ B.astype(np.float64)
                np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * max(k, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_matches_numpy_for_every_layout(dtype):
    check_every_layout(dtype)


@njit
def _product_add(a, b, out):
    gemm_add(a, b, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_skinny_products_add_like_blas(dtype):
    # A weight gradient's layout (a transposed view times a row-major batch), adding to out.
    rng = np.random.default_rng(1)
    D = rng.normal(size=(5000, 6)).astype(dtype)
    A = rng.normal(size=(5000, 11)).astype(dtype)
    out = np.ones((6, 11), dtype)
    _product_add(D.T, A, out)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    expected = 1 + D.T.astype(np.float64) @ A.astype(np.float64)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * 100)


def _libraries():
    return ["scipy", "mkl"] if blas._mkl_library() is not None else ["scipy"]


@pytest.mark.parametrize("library", _libraries())
def test_each_installed_blas_gives_the_same_products(library):
    code = textwrap.dedent(f"""
        import numpy as np
        from fastdnn.kernels.cpu.blas import blas_in_use
        from tests.test_blas import check_every_layout
        assert blas_in_use() == {library!r}, blas_in_use()
        check_every_layout(np.float32)
        check_every_layout(np.float64)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, FASTDNN_BLAS=library)
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()


def test_unknown_or_missing_blas_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown BLAS 'openblas'"):
        blas.use_blas("openblas")
    if blas._mkl_library() is None:
        with pytest.raises(ValueError, match=r"pip install fastdnn\[mkl\]"):
            blas.use_blas("mkl")
    assert blas.blas_in_use() in ("scipy", "mkl")


@pytest.mark.parametrize(
    ("vendor", "installed", "expected"),
    [
        ("AuthenticAMD", True, "scipy"),
        ("GenuineIntel", True, "mkl"),
        ("GenuineIntel", False, "scipy"),
        ("", True, "scipy"),
    ],
)
def test_auto_binds_mkl_only_on_intel_cpus(monkeypatch, vendor, installed, expected):
    # Which library ``auto`` picks, with the vendor and MKL's presence faked: the binding
    # itself is checked by test_each_installed_blas_gives_the_same_products.
    asked = []

    def fake_mkl():
        asked.append(True)
        return object() if installed else None

    bound = {}
    monkeypatch.setattr(blas, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(blas, "_mkl_library", fake_mkl)
    monkeypatch.setattr(blas, "_bind", lambda library, mkl: bound.setdefault("library", library))
    assert blas.use_blas("auto") == expected
    assert bound["library"] == expected
    assert bool(asked) == (vendor == "GenuineIntel")  # AMD never even loads MKL
