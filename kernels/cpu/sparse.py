"""A sparse (CSR) network input: batch gathering and the first layer's two products.

The rows of a CSR matrix ``X`` with ``n_cols`` columns are ``indptr`` (rows + 1,), ``indices``
and ``data`` (one entry per stored value): row ``i`` holds ``data[p]`` at column ``indices[p]``
for ``p`` in ``indptr[i]:indptr[i + 1]``. ``indptr`` need not start at 0, so a block of rows is
a slice of ``indptr`` alone (:func:`row_block`), sharing ``indices`` and ``data``.

The first layer's weight ``W`` is (out, in) row-major in the flat parameter buffer. Both
products below run over a few output units (rows of ``W`` or ``dW``, contiguous) at a time and
every stored value of the batch: for a wide input (100k columns) a row is a few hundred KB and
stays in cache while the batch's scattered columns are read from or added into it, where
visiting the values one by one would touch a cache line of every row of ``W`` per value.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from .._options import JIT_OPTIONS


class CSR(NamedTuple):
    """A CSR matrix as the kernels take it (Numba types it as a named tuple of arrays).

    Attributes
    ----------
    indptr, indices : ndarray of int64
    data : ndarray of float32 or float64
    n_cols : int
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_cols: int

    @property
    def shape(self):
        """``(rows, columns)``, as for an array (Python side only)."""
        return (self.indptr.size - 1, self.n_cols)


@njit(**JIT_OPTIONS)
def row_block(X, start, rows):
    """Rows ``start:start + rows`` of ``X`` as a CSR view (no copy)."""
    return CSR(X.indptr[start : start + rows + 1], X.indices, X.data, X.n_cols)


@njit(**JIT_OPTIONS)
def gather_rows(X, order, start, rows, buf):
    """Copy rows ``order[start:start + rows]`` of ``X`` into the batch buffers ``buf`` (a CSR
    whose arrays are large enough) and return the batch: views of ``buf`` from 0."""
    indptr, indices, data = buf.indptr, buf.indices, buf.data
    nnz = 0
    indptr[0] = 0
    for i in range(rows):
        src = order[start + i]
        for p in range(X.indptr[src], X.indptr[src + 1]):
            indices[nnz] = X.indices[p]
            data[nnz] = X.data[p]
            nnz += 1
        indptr[i + 1] = nnz
    return CSR(indptr[: rows + 1], indices[:nnz], data[:nnz], X.n_cols)


@njit(**JIT_OPTIONS)
def matmul_add(X, W, Z):
    """``Z += X @ W.T`` for a CSR batch ``X`` (rows, in), ``W`` (out, in), ``Z`` (rows, out)."""
    rows = X.indptr.size - 1
    zero = Z.dtype.type(0.0)
    last = W.shape[0] - 1
    # Four output units at a time: four independent reads per stored value keep more cache
    # misses in flight. At 100k columns, 0.1 % stored, 256 units, batches of 200 this ran 2-3x
    # faster than one unit at a time (two at a time: 1.5x). A last, partial group repeats its
    # final row and keeps only the sums of real units.
    for o in range(0, last + 1, 4):
        w0, w1, w2, w3 = W[o], W[min(o + 1, last)], W[min(o + 2, last)], W[min(o + 3, last)]
        for i in range(rows):
            a0 = a1 = a2 = a3 = zero
            for p in range(X.indptr[i], X.indptr[i + 1]):
                k = X.indices[p]
                v = X.data[p]
                a0 += v * w0[k]
                a1 += v * w1[k]
                a2 += v * w2[k]
                a3 += v * w3[k]
            Z[i, o] += a0
            if o + 1 <= last:
                Z[i, o + 1] += a1
            if o + 2 <= last:
                Z[i, o + 2] += a2
            if o + 3 <= last:
                Z[i, o + 3] += a3


@njit(**JIT_OPTIONS)
def weight_grad(X, D, dW):
    """``dW = D.T @ X`` for a CSR batch ``X`` (rows, in) and ``D`` (rows, out): every entry of
    ``dW`` (out, in) is written, most of them zeros."""
    rows = X.indptr.size - 1
    for o in range(dW.shape[0]):
        g = dW[o]
        g[:] = 0
        for i in range(rows):
            d = D[i, o]
            if d == 0:  # a ReLU family delta is zero for about half its entries
                continue
            for p in range(X.indptr[i], X.indptr[i + 1]):
                g[X.indices[p]] += d * X.data[p]


@njit(**JIT_OPTIONS)
def densify_rows(X, order, start, rows, out):
    """Rows ``order[start:start + rows]`` of ``X`` as dense rows of ``out`` (rows, n_cols):
    the host side of a streamed batch for a device that takes dense input."""
    for i in range(rows):
        src = order[start + i]
        out[i, :] = 0
        for p in range(X.indptr[src], X.indptr[src + 1]):
            out[i, X.indices[p]] += X.data[p]
