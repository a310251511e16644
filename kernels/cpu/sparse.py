"""A sparse (CSR) network input: batch gathering and the first layer's two products.

The rows of a CSR matrix ``X`` with ``n_cols`` columns are ``indptr`` (rows + 1,), ``indices``
and ``data`` (one entry per stored value): row ``i`` holds ``data[p]`` at column ``indices[p]``
for ``p`` in ``indptr[i]:indptr[i + 1]``. ``indptr`` need not start at 0, so a block of rows is
a slice of ``indptr`` alone (:func:`row_block`), sharing ``indices`` and ``data``.

The first layer's weight ``W`` is (out, in) row-major in the flat parameter buffer. Its two
products (:func:`matmul_add`, :func:`weight_grad`) take one of two paths per batch:

- by unit (:func:`matmul_add_by_unit`, :func:`weight_grad_by_unit`): a few output units (rows
  of ``W`` or ``dW``, contiguous) at a time over every stored value of the batch. For a wide
  input (100k columns) a row is a few hundred KB and stays in cache while the batch's scattered
  columns are read from or added into it, where visiting the values one by one would touch a
  cache line of every row of ``W`` per value. Right for mini-batches, whose stored values are
  few beside the layer's inputs.
- transposed (:func:`matmul_add_transposed`, :func:`weight_grad_transposed`): ``W`` is copied
  once into an (in, out) scratch ``T`` (or the gradient accumulated in it and copied out), and
  each stored value is one contiguous ``out``-wide multiply-add. The copy costs as much as
  ``W`` is large, so this pays when the batch holds many values per input column (a
  full-batch L-BFGS evaluation, large ``predict`` blocks): see :data:`FORWARD_FILL`.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from .._options import CALLEE_OPTIONS, JIT_OPTIONS

#: A batch's forward product takes the transposed path when its stored values number at least
#: this many times the layer's inputs, its weight gradient when at least ``GRADIENT_FILL`` times
#: (and the scratch is there). The transposed kernels' fixed cost, a copy as large as ``W`` (the
#: gradient's also zeroes ``T``), was measured against the by-unit kernels on batches of growing
#: size. Break-even, in stored values per column, for 20000 columns and 64 units (the TF-IDF
#: data of ``asv_benchmarks/sklearn_mlp.py``): forward below 0.6 (float32) and about 1
#: (float64), gradient about 3 and 5.5; for 100k columns and 256 units: forward 1-1.5, gradient
#: 3.5-4. At 47 values per column (the first data's full-batch L-BFGS evaluation) the transposed
#: forward ran 4.5-5.7x faster, the gradient 4-6.7x. The thresholds sit at or above the
#: break-evens, so a mini-batch of 200 rows (0.6 and 0.2 values per column) stays by unit.
FORWARD_FILL = 2
GRADIENT_FILL = 5


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


@njit(**CALLEE_OPTIONS)
def transposes(X, W, T, fill):
    """Whether a product of the batch ``X`` with ``W`` (out, in) (or with ``dW``) takes the
    transposed path: at least ``fill`` stored values per input column, and a scratch ``T`` of
    at least ``W.size`` elements (the caller allocates it only when some batch may use it, and
    else passes an empty one)."""
    nnz = X.indptr[-1] - X.indptr[0]
    return T.size >= W.size and nnz >= fill * W.shape[1]


@njit(**JIT_OPTIONS)
def matmul_add(X, W, Z, T):
    """``Z += X @ W.T`` for a CSR batch ``X`` (rows, in), ``W`` (out, in), ``Z`` (rows, out),
    by the path :func:`transposes` chooses at ``FORWARD_FILL`` (``T``: the transposed path's
    scratch)."""
    if transposes(X, W, T, FORWARD_FILL):
        matmul_add_transposed(X, W, Z, T)
    else:
        matmul_add_by_unit(X, W, Z)


@njit(**JIT_OPTIONS)
def weight_grad(X, D, dW, T):
    """``dW = D.T @ X`` for a CSR batch ``X`` (rows, in) and ``D`` (rows, out), by the path
    :func:`transposes` chooses at ``GRADIENT_FILL``: every entry of ``dW`` (out, in) is
    written, most of them zeros."""
    if transposes(X, dW, T, GRADIENT_FILL):
        weight_grad_transposed(X, D, dW, T)
    else:
        weight_grad_by_unit(X, D, dW)


@njit(**CALLEE_OPTIONS)
def transpose(A, out):
    """``out[:] = A.T`` for C-contiguous ``A`` (n, m) and ``out`` (m, n), in 8x8 tiles.

    A tile reads eight rows of ``A`` and writes eight of ``out``, a few cache lines each, and
    its loops of constant trip count unroll into plain loads and stores. For a 64 x 20000
    ``W`` into ``W.T`` this ran about 3x faster than going down whole columns of ``A`` (and
    than numpy's transposed copy); the way back, about as fast.
    """
    n, m = A.shape
    n8, m8 = n - n % 8, m - m % 8
    for i0 in range(0, n8, 8):
        for j0 in range(0, m8, 8):
            for a in range(8):
                for b in range(8):
                    out[j0 + a, i0 + b] = A[i0 + b, j0 + a]
        for j in range(m8, m):
            for b in range(8):
                out[j, i0 + b] = A[i0 + b, j]
    for i in range(n8, n):
        for j in range(m):
            out[j, i] = A[i, j]


@njit(**JIT_OPTIONS)
def matmul_add_transposed(X, W, Z, T):
    """:func:`matmul_add` by copying ``W`` into ``T`` as ``W.T`` (in, out), then adding one
    contiguous row of it per stored value into the row of ``Z``."""
    n_out, n_in = W.shape
    WT = T[: n_in * n_out].reshape((n_in, n_out))
    transpose(W, WT)
    indptr, indices, data = X.indptr, X.indices, X.data
    for i in range(indptr.size - 1):
        z = Z[i]
        p, end = indptr[i], indptr[i + 1]
        # Four values per pass over ``z``: a quarter of its loads and stores. On the TF-IDF
        # data (64 units) that ran 1.4-2x faster than one value per pass (two: 1-1.7x).
        while p + 4 <= end:
            v0, v1, v2, v3 = data[p], data[p + 1], data[p + 2], data[p + 3]
            w0, w1 = WT[indices[p]], WT[indices[p + 1]]
            w2, w3 = WT[indices[p + 2]], WT[indices[p + 3]]
            for o in range(n_out):
                z[o] += (v0 * w0[o] + v1 * w1[o]) + (v2 * w2[o] + v3 * w3[o])
            p += 4
        while p < end:
            v, w = data[p], WT[indices[p]]
            for o in range(n_out):
                z[o] += v * w[o]
            p += 1


@njit(**JIT_OPTIONS)
def weight_grad_transposed(X, D, dW, T):
    """:func:`weight_grad` by accumulating ``X.T @ D`` (in, out) in ``T``, one contiguous
    multiply-add of a row of ``D`` per stored value, then copying its transpose into ``dW``."""
    n_out, n_in = dW.shape
    GT = T[: n_in * n_out].reshape((n_in, n_out))
    GT[:] = 0
    indptr, indices, data = X.indptr, X.indices, X.data
    for i in range(indptr.size - 1):
        d = D[i]
        p, end = indptr[i], indptr[i + 1]
        while p + 2 <= end:  # two values per load of ``d``: 1.1-1.3x faster than one
            v0, v1 = data[p], data[p + 1]
            g0, g1 = GT[indices[p]], GT[indices[p + 1]]
            for o in range(n_out):
                g0[o] += v0 * d[o]
                g1[o] += v1 * d[o]
            p += 2
        if p < end:
            v, g = data[p], GT[indices[p]]
            for o in range(n_out):
                g[o] += v * d[o]
    transpose(GT, dW)


@njit(**JIT_OPTIONS)
def matmul_add_by_unit(X, W, Z):
    """:func:`matmul_add` four output units (rows of ``W``) at a time."""
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
def weight_grad_by_unit(X, D, dW):
    """:func:`weight_grad` one output unit (row of ``dW``) at a time."""
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
