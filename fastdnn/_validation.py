"""Input checks shared by every public entry point.

Each check either returns a converted array or raises ``TypeError``/``ValueError`` with a message
that names the argument, what was expected and what was received. None of them modifies state.
"""

import numbers
import sys

import numpy as np

from .kernels.cpu.checks import all_finite
from .kernels.cpu.sparse import CSR

DTYPES = {"float32": np.float32, "float64": np.float64}


def resolve_dtype(dtype):
    """Map ``"float32"``/``"float64"`` (or the NumPy types) to a NumPy scalar type."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return DTYPES[name]


def is_sparse(value):
    """Whether ``value`` is a ``scipy.sparse`` matrix or array (without importing scipy.sparse:
    if it was never imported, nothing can be sparse)."""
    scipy_sparse = sys.modules.get("scipy.sparse")
    return scipy_sparse is not None and scipy_sparse.issparse(value)


def as_numeric_array(value, name):
    """``value`` as a NumPy array of real numbers (bool and integers allowed)."""
    if is_sparse(value):
        # np.asarray would wrap it in a 0-d object array and blame the dtype
        raise TypeError(f"{name} must be a dense array, got a scipy.sparse {type(value).__name__}")
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of numbers: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def is_finite(array):
    """Whether every element of ``array`` is finite (integer and bool arrays always are)."""
    if array.dtype.kind != "f":
        return True
    if array.dtype in (np.float32, np.float64) and array.flags.c_contiguous:
        return bool(all_finite(array.reshape(-1)))
    return bool(np.isfinite(array).all())  # other float types and layouts


def check_finite(array, name):
    """Raise ``ValueError`` if ``array`` holds NaN or infinity."""
    if not is_finite(array):
        bad = "NaN" if np.isnan(array).any() else "infinity"
        raise ValueError(f"{name} contains {bad}; clean or impute the data first")


def _check_shape(shape, name, n_features, what):
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got {what} of shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: it has shape {shape}, need at least one row")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"{name} has {shape[1]} features per sample, the model expects {n_features}"
        )


def as_matrix(value, name, n_features, dtype):
    """``value`` as a finite, non-empty, C-contiguous (rows, n_features) array of ``dtype``."""
    array = as_numeric_array(value, name)
    _check_shape(array.shape, name, n_features, "an array")
    return as_finite(array, name, dtype)


def as_inputs(value, name, n_features, dtype):
    """A network's input: :func:`as_csr` for a ``scipy.sparse`` matrix or array, else
    :func:`as_matrix`."""
    if is_sparse(value):
        return as_csr(value, name, n_features, dtype)
    return as_matrix(value, name, n_features, dtype)


def as_csr(value, name, n_features, dtype):
    """A ``scipy.sparse`` matrix or array as a :class:`~fastdnn.kernels.cpu.sparse.CSR` with
    finite ``dtype`` values and int64 ``indptr``/``indices``, never densified.

    Other formats than CSR are converted to it; unsorted or duplicate column indices are sorted
    and summed (in a copy), so that every row holds each column at most once, as its dense form
    would. The arrays are the caller's own when nothing needed converting.
    """
    _check_shape(value.shape, name, n_features, "a sparse matrix")
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    csr = value.tocsr()
    n_rows, n_cols = csr.shape
    indptr = np.ascontiguousarray(csr.indptr, dtype=np.int64)
    nnz = int(indptr[-1])
    indices = csr.indices[:nnz]
    # The kernels read and write through these indices unchecked: a malformed matrix must stop here.
    if (
        indptr.size != n_rows + 1 or indptr[0] != 0 or indices.size != nnz
        or csr.data.size < nnz or (indptr[1:] < indptr[:-1]).any()
        or (nnz and (indices.min() < 0 or indices.max() >= n_cols))
    ):  # fmt: skip
        raise ValueError(f"{name} is not a valid CSR matrix: indptr or indices out of range")
    if not csr.has_canonical_format:
        csr = csr.copy()  # sorted and summed in place: never in the caller's arrays
        csr.sum_duplicates()
        indptr = np.ascontiguousarray(csr.indptr, dtype=np.int64)
        nnz = int(indptr[-1])
    indices = np.ascontiguousarray(csr.indices[:nnz], dtype=np.int64)
    return CSR(indptr, indices, as_finite(csr.data[:nnz], name, dtype), n_cols)


def as_finite(array, name, dtype):
    """``array`` as a C-contiguous array of ``dtype``; ``ValueError`` if it holds NaN/inf, or
    finite values that overflow ``dtype`` (1e39 becomes inf in float32)."""
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(array, dtype=dtype)
    # One pass over the converted data in the common case; the original is inspected only to
    # say which problem it has.
    if is_finite(converted):
        return converted
    check_finite(array, name)
    raise ValueError(
        f"{name} holds values too large for {converted.dtype} (magnitude above "
        f"{np.finfo(converted.dtype).max:.4g})"
    )


def positive_int(value, name):
    """``value`` as an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def non_negative_float(value, name):
    """``value`` as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def positive_float(value, name):
    """``value`` as a finite float > 0."""
    value = non_negative_float(value, name)
    if value == 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def positive_finite_scalar(value, name):
    """``value`` as a finite float > 0; ``ValueError`` for anything else, non-numbers included
    (``loss_weight``: callers such as the scikit-learn estimators catch one exception type)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def unit_interval(value, name):
    """``value`` as a float in [0, 1)."""
    value = non_negative_float(value, name)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def choice(value, name, options):
    """``value`` if it is one of ``options`` (names), else a ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(options)}")
    return value
