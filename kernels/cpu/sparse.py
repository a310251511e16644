"""A sparse (CSR) network input: batch gathering and the first layer's two products.

The rows of a CSR matrix ``X`` with ``n_cols`` columns are ``indptr`` (rows + 1,), ``indices``
and ``data`` (one entry per stored value): row ``i`` holds ``data[p]`` at column ``indices[p]``
for ``p`` in ``indptr[i]:indptr[i + 1]``. ``indptr`` need not start at 0, so a block of rows is
a slice of ``indptr`` alone (:func:`row_block`), sharing ``indices`` and ``data``.

The first layer's weight ``W`` is (out, in) row-major in the flat parameter buffer. Its two
products (:func:`matmul_add`, :func:`weight_grad`) take one of two paths per batch, in the
first layer's scratch (:class:`FirstLayerScratch`):

- transposed (:func:`matmul_add_transposed`, :func:`weight_grad_transposed`): ``W`` is copied
  once into an (in, out) scratch ``T`` (or the gradient accumulated in it and copied out), and
  each stored value is one contiguous ``out``-wide multiply-add. The copy costs as much as
  ``W`` is large, so this pays when the batch holds many values per input column (a
  full-batch L-BFGS evaluation, large ``predict`` blocks): see :data:`FORWARD_FILL`.
- for a batch with fewer values per column (mini-batches), the forward product copies only
  the columns of ``W`` the batch uses, numbered in ascending order, into a compact (used, out)
  block and then goes as the transposed one (:func:`matmul_add_compact`); the weight gradient
  goes one output unit (row of ``dW``) at a time over the batch's values
  (:func:`weight_grad_by_unit`): a row of ``dW`` stays in cache while the scattered columns
  are added into it.
"""

from typing import NamedTuple

import numpy as np

from .._options import callee, kernel

#: A batch's forward product takes the transposed path when its stored values number at least
#: this many times the layer's inputs (and the scratch has room for all of ``W``), its weight
#: gradient when at least ``GRADIENT_FILL`` times. The transposed kernels' fixed cost is a copy
#: as large as ``W`` (the gradient's also zeroes ``T``); the compact forward copies only the
#: columns in use but looks each value's column up. Break-even of the forward, in stored values
#: per column, for 20000 columns (the TF-IDF data of ``asv_benchmarks/sklearn_mlp.py``): about
#: 2.4 (float32, 64 units) to 9 (float64, 256 units); of the gradient against the by-unit
#: kernel about 3 and 5.5 (64 units), 3.5-4 for 100k columns and 256 units. At 47 values per
#: column (the first data's full-batch L-BFGS evaluation) the transposed forward ran 1.5x
#: faster than the compact one and 4.5-5.7x faster than by unit, the gradient 4-6.7x. A
#: mini-batch of 200 rows (0.6 values per column) goes compact (3-5x faster than by unit).
FORWARD_FILL = 4
GRADIENT_FILL = 5


class FirstLayerScratch(NamedTuple):
    """Scratch of the first layer's sparse products (Numba types it as a named tuple).

    Attributes
    ----------
    values : ndarray of float32 or float64
        ``W.T`` or ``dW.T`` of the transposed path (the size of ``W``), or the compact forward's
        (used columns, out) block (at least ``min(values in a batch, in) * out`` elements).
    slot : ndarray of int64 (in,)
        -1 for every column between calls; a used column's row in the compact block during
        one.
    columns : ndarray of int64 (in,)
        The used columns in ascending order, during a compact product.

    A dense input passes empty arrays.
    """

    values: np.ndarray
    slot: np.ndarray
    columns: np.ndarray


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


@kernel
def row_block(X, start, rows):
    """Rows ``start:start + rows`` of ``X`` as a CSR view (no copy)."""
    return CSR(X.indptr[start : start + rows + 1], X.indices, X.data, X.n_cols)


@kernel
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


@callee
def transposes(X, W, T, fill):
    """Whether a product of the batch ``X`` with ``W`` (out, in) (or with ``dW``) takes the
    transposed path: at least ``fill`` stored values per input column, and a scratch ``T`` of
    at least ``W.size`` elements (the engine sizes it so only when some batch may use it, and
    else for the compact forward's columns)."""
    nnz = X.indptr[-1] - X.indptr[0]
    return T.size >= W.size and nnz >= fill * W.shape[1]


@kernel
def matmul_add(X, W, Z, scratch):
    """``Z += X @ W.T`` for a CSR batch ``X`` (rows, in), ``W`` (out, in), ``Z`` (rows, out),
    by the path :func:`transposes` chooses at ``FORWARD_FILL`` (``scratch``: a
    :class:`FirstLayerScratch`)."""
    if transposes(X, W, scratch.values, FORWARD_FILL):
        matmul_add_transposed(X, W, Z, scratch.values)
    else:
        matmul_add_compact(X, W, Z, scratch)


@kernel
def weight_grad(X, D, dW, scratch):
    """``dW = D.T @ X`` for a CSR batch ``X`` (rows, in) and ``D`` (rows, out), by the path
    :func:`transposes` chooses at ``GRADIENT_FILL``: every entry of ``dW`` (out, in) is
    written, most of them zeros."""
    if transposes(X, dW, scratch.values, GRADIENT_FILL):
        weight_grad_transposed(X, D, dW, scratch.values)
    else:
        weight_grad_by_unit(X, D, dW)


@callee
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


@kernel
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


@kernel
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


@callee
def number_columns(X, slot, columns):
    """Number the columns the batch ``X`` uses in ascending order: ``columns[:n]`` are they,
    ``slot[k]`` is the number of column ``k``; returns ``n``. ``slot`` must be -1 for every
    column on entry; :func:`release_columns` makes it so again."""
    for p in range(X.indptr[0], X.indptr[-1]):
        slot[X.indices[p]] = 0
    n = 0
    for k in range(slot.size):
        if slot[k] == 0:
            slot[k] = n
            columns[n] = k
            n += 1
    return n


@callee
def release_columns(slot, columns, n):
    """Undo :func:`number_columns`: ``slot`` is -1 for every column again."""
    for c in range(n):
        slot[columns[c]] = -1


@callee
def gather_columns(W, columns, n, out):
    """``out[c] = W[:, columns[c]]`` for ``c < n``: the used columns of ``W`` (out, in) as rows
    of ``out`` (n, out), in 8 x 8 tiles as :func:`transpose` (ascending columns keep a tile's
    reads on a few cache lines of each row of ``W``)."""
    n_out = W.shape[0]
    o8, c8 = n_out - n_out % 8, n - n % 8
    for c0 in range(0, c8, 8):
        for o0 in range(0, o8, 8):
            for a in range(8):
                k = columns[c0 + a]
                for b in range(8):
                    out[c0 + a, o0 + b] = W[o0 + b, k]
        for o in range(o8, n_out):
            for a in range(8):
                out[c0 + a, o] = W[o, columns[c0 + a]]
    for c in range(c8, n):
        k = columns[c]
        for o in range(n_out):
            out[c, o] = W[o, k]


@kernel
def matmul_add_compact(X, W, Z, scratch):
    """:func:`matmul_add` by copying the columns of ``W`` the batch uses into a compact block
    (:func:`number_columns`, :func:`gather_columns`), then adding one contiguous row of it per
    stored value into the row of ``Z``. On the TF-IDF data's mini-batches of 200 rows (64 and
    256 units) 3-5x faster than going over the values once per group of four units."""
    n_out = W.shape[0]
    slot, columns = scratch.slot, scratch.columns
    n = number_columns(X, slot, columns)
    if scratch.values.size < n * n_out:
        release_columns(slot, columns, n)
        raise ValueError("the first layer's sparse scratch is smaller than the batch needs")
    WT = scratch.values[: n * n_out].reshape((n, n_out))
    gather_columns(W, columns, n, WT)
    indptr, indices, data = X.indptr, X.indices, X.data
    for i in range(indptr.size - 1):
        z = Z[i]
        p, end = indptr[i], indptr[i + 1]
        while p + 4 <= end:  # four values per pass over ``z``, as the transposed path
            v0, v1, v2, v3 = data[p], data[p + 1], data[p + 2], data[p + 3]
            w0, w1 = WT[slot[indices[p]]], WT[slot[indices[p + 1]]]
            w2, w3 = WT[slot[indices[p + 2]]], WT[slot[indices[p + 3]]]
            for o in range(n_out):
                z[o] += (v0 * w0[o] + v1 * w1[o]) + (v2 * w2[o] + v3 * w3[o])
            p += 4
        while p < end:
            v, w = data[p], WT[slot[indices[p]]]
            for o in range(n_out):
                z[o] += v * w[o]
            p += 1
    release_columns(slot, columns, n)


@kernel
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


@kernel
def densify_rows(X, order, start, rows, out):
    """Rows ``order[start:start + rows]`` of ``X`` as dense rows of ``out`` (rows, n_cols):
    the host side of a streamed batch for a device that takes dense input."""
    for i in range(rows):
        src = order[start + i]
        out[i, :] = 0
        for p in range(X.indptr[src], X.indptr[src + 1]):
            out[i, X.indices[p]] += X.data[p]
