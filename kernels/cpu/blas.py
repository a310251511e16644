"""Matrix products of the network kernels, through a BLAS chosen when fastdnn is imported.

``gemm(a, b, out)`` computes ``out = a @ b`` for C- or F-contiguous (transposed) float32 or
float64 matrices by calling the Fortran-interface ``sgemm``/``dgemm`` behind the symbols
``fastdnn_sgemm`` and ``fastdnn_dgemm``. The compiled (and cached) kernels name only these
symbols; :func:`use_blas` binds them to a library's functions at import, so switching library
needs no recompilation:

- ``"scipy"`` (default): SciPy's BLAS (OpenBLAS in the wheels), what Numba's ``np.dot`` uses;
- ``"mkl"``: Intel MKL's ``libmkl_rt`` when the ``mkl`` package is installed
  (``pip install fastdnn[mkl]``). On an AVX-512 Intel VM it ran these GEMMs 10-40 % faster than
  OpenBLAS (341 against 272 GFLOP/s at 512x2048x2048 on two threads).

The environment variable ``FASTDNN_BLAS`` (``scipy``, ``mkl`` or ``auto``, the default) picks
the library for the process. ``auto`` binds MKL when it is installed and the CPU is Intel's, and
SciPy's OpenBLAS otherwise: on AMD CPUs MKL runs its generic kernels (on this project's Zen 5
host, MKL-based PyTorch reached 42 % of the sgemm ceiling where OpenBLAS reached 87 %).
"""

import ctypes
import os
import sys
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from .._options import OVERLOAD_OPTIONS, callee

LIBRARIES = ("scipy", "mkl")
_SYMBOLS = {np.dtype(np.float32): "fastdnn_sgemm", np.dtype(np.float64): "fastdnn_dgemm"}
# Products of at most this many multiply-adds go to SciPy's OpenBLAS whatever is bound: it runs
# them on the calling thread (its own threshold, 65536 * 4), so its worker threads stay asleep
# beside MKL's, and MKL was slower there (workload S: 0.80M against 0.99M samples/s).
SMALL_GEMM = 65536 * 4
_SMALL_SYMBOLS = {np.dtype(np.float32): "fastdnn_sgemm_small",
                  np.dtype(np.float64): "fastdnn_dgemm_small"}  # fmt: skip
_NO_TRANSPOSE, _TRANSPOSE = ord("N"), ord("T")
# Products with a small output (at most SKINNY_OUTPUT elements) over a long inner dimension (at
# least SKINNY_DEPTH) are summed here on the calling thread: a weight gradient of a full batch
# (L-BFGS) through a narrow layer. Threaded OpenBLAS stalled on them on these VMs: 10 x 128 over
# 40000 rows took 100-1250 ms a call on two threads against 10 ms on one (5 x 64 over 16000:
# 200-500 ms against 1.5 ms); this loop takes 2-6 ms.
SKINNY_OUTPUT = 16384
SKINNY_DEPTH = 2048
_in_use = None


def _mkl_library():
    """``ctypes`` handle of MKL's single dynamic library, or None when it is not installed."""
    for folder in (Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"):
        for path in sorted(folder.glob("libmkl_rt.so*")):
            try:
                return ctypes.CDLL(str(path))
            except OSError:
                continue
    return None


def cpu_vendor():
    """The CPU's vendor string (``"GenuineIntel"``, ``"AuthenticAMD"``, ...), or ``""`` when
    the system does not say (``/proc/cpuinfo`` is Linux's)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def use_blas(library="auto"):
    """Bind the kernels' GEMM symbols to ``library`` (``"scipy"``, ``"mkl"`` or ``"auto"``:
    MKL when it is installed and :func:`cpu_vendor` is Intel, else SciPy's OpenBLAS).

    Returns the library bound. Call it before the first kernel runs: LLVM resolves the symbols
    when a kernel is loaded, and a loaded kernel keeps the functions it found.

    Raises
    ------
    ValueError
        For an unknown name, or ``"mkl"`` when MKL is not installed.
    """
    if library not in (*LIBRARIES, "auto"):
        raise ValueError(f"unknown BLAS {library!r}; expected one of {[*LIBRARIES, 'auto']}")
    wants_mkl = library == "mkl" or (library == "auto" and cpu_vendor() == "GenuineIntel")
    mkl = _mkl_library() if wants_mkl else None
    if library == "mkl" and mkl is None:
        raise ValueError("FASTDNN_BLAS=mkl but MKL is not installed: pip install fastdnn[mkl]")
    return _bind("scipy" if mkl is None else "mkl", mkl)


def _bind(library, mkl):
    """Point the GEMM symbols at ``library``'s functions (``mkl``: MKL's ctypes handle)."""
    global _in_use
    scipy_addresses = [get_cython_function_address("scipy.linalg.cython_blas", name)
                       for name in ("sgemm", "dgemm")]  # fmt: skip
    addresses = scipy_addresses
    if library == "mkl":
        addresses = [ctypes.cast(mkl.sgemm, ctypes.c_void_p).value,
                     ctypes.cast(mkl.dgemm, ctypes.c_void_p).value]  # fmt: skip
    for symbol, address in zip(_SYMBOLS.values(), addresses):
        llvm.add_symbol(symbol, address)
    for symbol, address in zip(_SMALL_SYMBOLS.values(), scipy_addresses):
        llvm.add_symbol(symbol, address)
    _in_use = library
    return library


def blas_in_use():
    """The BLAS the GEMM symbols are bound to: ``"scipy"`` or ``"mkl"``."""
    return _in_use


def _gemm_intrinsic(symbols):
    """An intrinsic calling the Fortran-interface GEMM named ``symbols[dtype]``."""

    @intrinsic
    def call(typingctx, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
        return _gemm_call_signature(symbols, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc)

    return call


def _gemm_call_signature(symbols, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc):
    """``c = op(a) @ op(b) + beta * c`` in BLAS's column-major terms, arguments passed by
    reference."""
    dtype = c.dtype
    signature = types.void(
        types.intc, types.intc, types.intc, types.intc, types.intc, a, types.intc, b,
        types.intc, dtype, c, types.intc,
    )  # fmt: skip

    def codegen(context, builder, sig, args):
        ta, tb, m_, n_, k_, a_, lda_, b_, ldb_, beta_, c_, ldc_ = args
        int_t = ir.IntType(32)
        char_t = ir.IntType(8)
        float_t = context.get_value_type(dtype)
        char_p, int_p, float_p = char_t.as_pointer(), int_t.as_pointer(), float_t.as_pointer()
        fnty = ir.FunctionType(
            ir.VoidType(),
            [char_p, char_p, int_p, int_p, int_p, float_p, float_p, int_p, float_p, int_p,
             float_p, float_p, int_p],
        )  # fmt: skip
        name = symbols[np.dtype(str(dtype))]
        gemm = cgutils.get_or_insert_function(builder.module, fnty, name)

        def by_reference(value, typ):
            slot = cgutils.alloca_once(builder, typ)
            builder.store(value, slot)
            return slot

        def data(array_type, value):
            return builder.bitcast(context.make_array(array_type)(context, builder, value).data,
                                   float_p)  # fmt: skip

        def as_int(value):
            return builder.trunc(value, int_t) if value.type.width > 32 else value

        def as_char(value):
            return builder.trunc(value, char_t)

        builder.call(gemm, [
            by_reference(as_char(ta), char_t), by_reference(as_char(tb), char_t),
            by_reference(as_int(m_), int_t), by_reference(as_int(n_), int_t),
            by_reference(as_int(k_), int_t), by_reference(ir.Constant(float_t, 1.0), float_t),
            data(sig.args[5], a_), by_reference(as_int(lda_), int_t),
            data(sig.args[7], b_), by_reference(as_int(ldb_), int_t),
            by_reference(beta_, float_t),
            data(sig.args[10], c_), by_reference(as_int(ldc_), int_t),
        ])  # fmt: skip
        return context.get_dummy_value()

    return signature, codegen


_call_gemm = _gemm_intrinsic(_SYMBOLS)
_call_gemm_small = _gemm_intrinsic(_SMALL_SYMBOLS)


@callee
def gemm(a, b, out):
    """``out = a @ b`` for 2-D arrays, each C-contiguous or a transposed (F-contiguous) view;
    ``out`` C-contiguous. Like ``np.dot(a, b, out)``, through the bound BLAS."""
    _gemm(a, b, out, out.dtype.type(0.0))


@callee
def gemm_add(a, b, out):
    """``out += a @ b``, otherwise as :func:`gemm`.

    The forward pass fills ``out`` with the bias rows and adds the product: OpenBLAS zeroes
    ``out`` in a pass of its own when asked to overwrite it, so the bias then costs nothing.
    """
    _gemm(a, b, out, out.dtype.type(1.0))


def _operand(a):
    """``(a, trans, ld)``: ``a`` as a BLAS operand of the row-major product (see
    :func:`_gemm`); a strided view is copied, as ``np.dot`` would."""
    raise NotImplementedError("called from compiled kernels only")


# Chosen by the array type's layout when it is known (C or F), so that no copy or run-time
# layout test is compiled for the views the network kernels pass.
@overload(_operand, inline="always", jit_options=OVERLOAD_OPTIONS)
def _operand_impl(a):
    if a.layout == "C":
        return lambda a: (a, _NO_TRANSPOSE, a.shape[1])
    if a.layout == "F":
        return lambda a: (a, _TRANSPOSE, a.shape[0])

    def any_layout(a):
        if a.flags.c_contiguous:
            return a, _NO_TRANSPOSE, a.shape[1]
        if a.flags.f_contiguous:
            return a, _TRANSPOSE, a.shape[0]
        copy = np.ascontiguousarray(a)
        return copy, _NO_TRANSPOSE, copy.shape[1]

    return any_layout


@callee
def _gemm(a, b, out, beta):
    # Row-major out = a @ b is column-major out.T = b.T @ a.T: a row-major matrix is, read
    # column-major, its own transpose, so C-contiguous operands go in untransposed ("N") and
    # F-contiguous (transposed) views go in as "T" of the matrix they view, with the leading
    # dimension of that matrix.
    a, trans_a, lda = _operand(a)
    b, trans_b, ldb = _operand(b)
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        if beta == 0:
            out[:] = 0
        return
    if m * n * k <= SMALL_GEMM:
        _call_gemm_small(trans_b, trans_a, n, m, k, b, ldb, a, lda, beta, out, n)
    elif not _summed_if_skinny(a, b, out, beta, trans_b):
        _call_gemm(trans_b, trans_a, n, m, k, b, ldb, a, lda, beta, out, n)


def _summed_if_skinny(a, b, out, beta, trans_b):
    """Whether :func:`_skinny_gemm` took the product (a small output over a long inner
    dimension, ``b`` row-major); compiled to False when ``b``'s type is a transposed view."""
    raise NotImplementedError("called from compiled kernels only")


@overload(_summed_if_skinny, inline="always", jit_options=OVERLOAD_OPTIONS)
def _summed_if_skinny_impl(a, b, out, beta, trans_b):
    if b.layout == "F":
        return lambda a, b, out, beta, trans_b: False

    def impl(a, b, out, beta, trans_b):
        m, k = a.shape
        if m * b.shape[1] <= SKINNY_OUTPUT and k >= SKINNY_DEPTH and trans_b == _NO_TRANSPOSE:
            _skinny_gemm(a, b, out, beta)
            return True
        return False

    return impl


@callee
def _skinny_gemm(a, b, out, beta):
    """``out = a @ b + beta * out`` for a small ``out`` and a long inner dimension, row by row
    of ``b`` (C-contiguous): each row adds ``a[o, r] * b[r]`` into row ``o`` of ``out``, which
    stays in cache; the inner loop is one contiguous multiply-add over ``out``'s columns."""
    m, k = a.shape
    n = b.shape[1]
    if beta == 0:
        out[:] = 0
    for r in range(k):
        row = b[r]
        for o in range(m):
            coefficient = a[o, r]
            target = out[o]
            for j in range(n):
                target[j] += coefficient * row[j]


use_blas(os.environ.get("FASTDNN_BLAS", "auto"))
