"""Sparse (scipy.sparse) input: the same results as its dense form, without densifying it.

The data have empty rows (the first, one inside, the last), columns out of order and duplicate
entries (which their dense form sums), so that the gather, the row blocks and the validation's
canonicalisation are all exercised. Dense and sparse first layers sum in different orders: the
results agree to float32 rounding, not bit for bit.
"""

import re

import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit
from test_gradients import check_gradients

import fastdnn as fd
from fastdnn.engines.cpu import EpochRunner as _EpochRunner
from fastdnn.kernels._options import CALLEE_OPTIONS
from fastdnn.kernels.cpu import sparse

N, N_IN, N_OUT = 23, 10, 3
TOL = {"rtol": 1e-5, "atol": 1e-6}  # float32, two summation orders
FORMATS = {
    "csr_matrix": sp.csr_matrix,
    "csr_array": sp.csr_array,
    "csc_matrix": sp.csc_matrix,
    "csc_array": sp.csc_array,
    "coo_array": sp.coo_array,  # any other format: converted to CSR
}


def messy_csr(n=N, n_cols=N_IN, seed=0, dtype=np.float64):
    """A CSR matrix with empty rows, unsorted column indices and duplicate entries."""
    rng = np.random.default_rng(seed)
    indptr, indices = [0], []
    for i in range(n):
        k = 0 if i in (0, 7, n - 1) else int(rng.integers(1, 6))
        cols = rng.choice(n_cols, k, replace=False)  # in random order
        if k >= 2 and i % 3 == 0:
            cols = np.append(cols, cols[0])  # a duplicate: the dense form holds the sum
        indices.extend(cols)
        indptr.append(len(indices))
    data = rng.normal(size=len(indices)).astype(dtype)
    X = sp.csr_matrix((data, np.array(indices), np.array(indptr)), shape=(n, n_cols))
    assert not X.has_canonical_format
    return X


def labels(n=N, seed=1):
    return np.random.default_rng(seed).integers(0, N_OUT, n)


def classifier(dtype="float32", hidden="relu"):
    model = fd.Sequential(
        [fd.Dense(N_IN, 8, hidden), fd.Dense(8, N_OUT, "softmax")], dtype=dtype, seed=0
    )
    model.compile("cross_entropy", fd.Adam(0.01), l2=1e-3)
    # Non-zero biases, so that an empty row's output is not the trivial one.
    model.set_weights([(W, np.linspace(-0.2, 0.2, b.size)) for W, b in model.get_weights()])
    return model


def assert_close_weights(a, b, tol=TOL):
    for (Wa, ba), (Wb, bb) in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(Wa, Wb, **tol)
        np.testing.assert_allclose(ba, bb, **tol)


# ----------------------------------------------------------------------------- Sequential
@pytest.mark.parametrize("fmt", FORMATS)
def test_fit_matches_dense(fmt):
    X, y = messy_csr(), labels()
    X_val, y_val = messy_csr(9, seed=2), labels(9, seed=3)
    dense, sparse_model = classifier(), classifier()
    kwargs = {"epochs": 2, "batch_size": 5, "shuffle": True, "verbose": 0}
    h_dense = dense.fit(X.toarray(), y, validation_data=(X_val.toarray(), y_val), **kwargs)
    h_sparse = sparse_model.fit(
        FORMATS[fmt](X), y, validation_data=(FORMATS[fmt](X_val), y_val), **kwargs
    )
    assert sparse_model._step[0] == dense._step[0] == 2 * 5
    assert_close_weights(sparse_model, dense)
    np.testing.assert_allclose(sparse_model._state, dense._state, **TOL)
    for key, values in h_dense.history.items():
        np.testing.assert_allclose(h_sparse.history[key], values, rtol=1e-5)


def test_fit_with_sample_weights_and_mse_matches_dense():
    X, rng = messy_csr(), np.random.default_rng(4)
    y, weight = rng.normal(size=(N, 2)), rng.random(N) + 0.5

    def regressor():
        model = fd.Sequential(
            [fd.Dense(N_IN, 6, "tanh"), fd.Dense(6, 5, "gelu"), fd.Dense(5, 2)], seed=1
        )
        model.compile("mse", fd.SGD(0.05, momentum=0.9), l1=1e-4)
        return model

    dense, sparse_model = regressor(), regressor()
    dense.fit(X.toarray(), y, epochs=2, batch_size=8, sample_weight=weight, verbose=0)
    sparse_model.fit(X, y, epochs=2, batch_size=8, sample_weight=weight, verbose=0)
    assert_close_weights(sparse_model, dense)


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_array"])
def test_predict_evaluate_and_gradients_match_dense(fmt):
    X, y = messy_csr(), labels()
    weight = np.random.default_rng(5).random(N) + 0.1
    Xs, Xd = FORMATS[fmt](X), X.toarray()
    model = classifier()
    # batches of 4: several row blocks, the last one partial
    np.testing.assert_allclose(model.predict(Xs, batch_size=4), model.predict(Xd), **TOL)
    got = model.evaluate(Xs, y, batch_size=4, sample_weight=weight)
    expected = model.evaluate(Xd, y, batch_size=4, sample_weight=weight)
    assert got["accuracy"] == expected["accuracy"]
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    loss, grads = model.loss_and_gradients(Xs, y)
    loss_dense, grads_dense = model.loss_and_gradients(Xd, y)
    assert loss == pytest.approx(loss_dense, rel=1e-6)
    for (dW, db), (dW_dense, db_dense) in zip(grads, grads_dense):
        np.testing.assert_allclose(dW, dW_dense, **TOL)
        np.testing.assert_allclose(db, db_dense, **TOL)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_first_layer_paths_match_dense(dtype):
    # Batches of all 23 rows hold more than GRADIENT_FILL stored values per column, so the
    # network takes the transposed kernels (training, evaluation, prediction, the full-batch
    # gradient); batches of 3 rows hold fewer than FORWARD_FILL: the compact forward and the
    # by-unit gradient.
    X, y = messy_csr(), labels()
    canonical = _csr(X)
    lengths = np.sort(np.diff(canonical.indptr))
    assert canonical.indptr[-1] >= sparse.GRADIENT_FILL * N_IN
    assert lengths[-3:].sum() < sparse.FORWARD_FILL * N_IN
    for batch_size in (3, N):
        dense, sparse_model = classifier(dtype), classifier(dtype)
        kwargs = {"epochs": 2, "batch_size": batch_size, "shuffle": True, "verbose": 0}
        dense.fit(X.toarray(), y, **kwargs)
        sparse_model.fit(X, y, **kwargs)
        assert_close_weights(sparse_model, dense)
        got = sparse_model.predict(X, batch_size=batch_size)
        np.testing.assert_allclose(got, dense.predict(X.toarray()), **TOL)
        assert got.dtype == dtype
        # The transposed forward leaves W.T in the model's scratch; the compact one leaves the
        # column slots released.
        scratch = sparse_model._scratch._arrays
        W = sparse_model.get_weights()[0][0]
        if batch_size == N:
            assert np.array_equal(scratch["first layer"][: W.size], W.T.ravel())
        assert (scratch["first layer slot"] == -1).all()
        got = sparse_model.evaluate(X, y, batch_size=batch_size)
        assert got["loss"] == pytest.approx(dense.evaluate(X.toarray(), y)["loss"], rel=1e-5)
        loss, grads = sparse_model.loss_and_gradients(X, y)
        loss_dense, grads_dense = dense.loss_and_gradients(X.toarray(), y)
        assert loss == pytest.approx(loss_dense, rel=1e-6)
        for (dW, db), (dW_dense, db_dense) in zip(grads, grads_dense):
            np.testing.assert_allclose(dW, dW_dense, **TOL)
            np.testing.assert_allclose(db, db_dense, **TOL)


def test_finite_difference_gradients_with_sparse_input():
    X, y = messy_csr(9, seed=6), labels(9)
    model = classifier(dtype="float64", hidden="tanh")
    check_gradients(model, X, y)
    loss, grads = model.loss_and_gradients(X, y)
    loss_dense, grads_dense = model.loss_and_gradients(X.toarray(), y)
    assert loss == pytest.approx(loss_dense, rel=1e-13)
    for (dW, db), (dW_dense, db_dense) in zip(grads, grads_dense):
        np.testing.assert_allclose(dW, dW_dense, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, db_dense, rtol=1e-12, atol=1e-15)


def test_validation_converts_once_and_leaves_the_callers_matrix_alone():
    X = messy_csr()
    indices, data = X.indices.copy(), X.data.copy()
    model = classifier()
    inputs = model._data(X, labels())[0]
    assert isinstance(inputs, sparse.CSR) and inputs.shape == X.shape
    assert inputs.indptr.dtype == inputs.indices.dtype == np.int64
    assert inputs.data.dtype == np.float32
    canonical = X.copy()
    canonical.sum_duplicates()
    np.testing.assert_array_equal(inputs.indices, canonical.indices)  # sorted, summed
    np.testing.assert_array_equal(X.indices, indices)
    np.testing.assert_array_equal(X.data, data)
    # Arrays of the right types in canonical order are used as they are, not copied.
    ready = sp.csr_array(
        (canonical.data.astype(np.float32), canonical.indices.astype(np.int64),
         canonical.indptr.astype(np.int64)), shape=X.shape,
    )  # fmt: skip
    if ready.indices.dtype == np.int64:  # scipy may choose int32 indices for small matrices
        assert np.shares_memory(model._data(ready, labels())[0].data, ready.data)


def test_sparse_targets_are_refused_even_for_an_autoencoder():
    model = fd.Sequential([fd.Dense(N_IN, 4, "relu"), fd.Dense(4, N_IN)], seed=0)
    model.compile("mse")
    X = messy_csr()
    with pytest.raises(TypeError, match=r"y is the sparse X.*toarray"):
        model.fit(X, X, verbose=0)
    with pytest.raises(TypeError, match="y must be a dense array"):
        model.fit(X.toarray(), X, verbose=0)


def test_batch_buffers_hold_the_largest_batch():
    X, y = messy_csr(), labels()
    model = classifier()
    inputs, Y, weight = model._data(X, y)
    runner = _EpochRunner(model, inputs, Y, weight, batch_size=4)
    lengths = np.sort(np.diff(inputs.indptr))
    assert runner.Xbuf.indptr.size == 5
    assert runner.Xbuf.data.size == runner.Xbuf.indices.size == lengths[-4:].sum()
    # No batch of 4 rows holds FORWARD_FILL values per column: room for the columns such a
    # batch can use (8 units each), not for the transposed kernels. A batch of all rows does: the
    # first layer's size. One slot per column.
    assert lengths[-4:].sum() < sparse.FORWARD_FILL * N_IN
    assert runner.Tbuf.values.size == min(lengths[-4:].sum(), N_IN) * 8
    assert runner.Tbuf.slot.size == runner.Tbuf.columns.size == N_IN
    assert (runner.Tbuf.slot == -1).all()
    assert _EpochRunner(model, inputs, Y, weight, batch_size=N).Tbuf.values.size == N_IN * 8
    dense = _EpochRunner(model, X.toarray().astype(np.float32), Y, weight, batch_size=N)
    assert dense.Tbuf.values.size == dense.Tbuf.slot.size == 0


# ----------------------------------------------------------------------------- kernels
def _csr(X, dtype=np.float32):
    X = X.copy()
    X.sum_duplicates()
    return sparse.CSR(
        X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data.astype(dtype), X.shape[1]
    )


def _scratch(values):
    """A first-layer scratch around ``values`` for ``N_IN`` columns, slots released."""
    return sparse.FirstLayerScratch(values, np.full(N_IN, -1, np.int64), np.empty(N_IN, np.int64))


# The two ways of each product, and each product as the networks call it (choosing one by the
# batch's stored values per column; with no room for W in the scratch, never transposed).
MATMUL_ADD = {
    "compact": sparse.matmul_add_compact,
    "transposed": lambda X, W, Z, S: sparse.matmul_add_transposed(X, W, Z, S.values),
    "chosen": sparse.matmul_add,
}
WEIGHT_GRAD = {
    "by unit": lambda X, D, dW, S: sparse.weight_grad_by_unit(X, D, dW),
    "transposed": lambda X, D, dW, S: sparse.weight_grad_transposed(X, D, dW, S.values),
    "chosen": sparse.weight_grad,
    "chosen, no scratch": lambda X, D, dW, S: sparse.weight_grad(X, D, dW, _scratch(S.values[:0])),
}


# n_out: tiles of 8 (the transposes and the compact gather): partial, full, and a full tile
# with a partial one; the 10 columns are one full tile and a partial one.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_out", [1, 6, 8, 13])
@pytest.mark.parametrize("path", MATMUL_ADD)
def test_matmul_add_and_row_block_against_numpy(path, n_out, dtype):
    X = messy_csr()
    rng = np.random.default_rng(7)
    W = rng.normal(size=(n_out, N_IN)).astype(dtype)
    scratch = _scratch(np.full(W.size + 3, np.nan, dtype))  # room for all of W
    for start, rows in ((5, 5), (0, N), (6, 2)):  # indptr not from 0; all rows; empty row 7
        Z = rng.normal(size=(rows, n_out)).astype(dtype)
        block = sparse.row_block(_csr(X, dtype), start, rows)
        dense = X.toarray()[start : start + rows].astype(dtype)
        expected = Z + dense @ W.T
        MATMUL_ADD[path](block, W, Z, scratch)
        np.testing.assert_allclose(Z, expected, **TOL)
        assert Z.dtype == dtype
        assert (scratch.slot == -1).all()


def test_compact_forward_refuses_a_scratch_too_small_for_the_batch():
    X = sparse.row_block(_csr(messy_csr()), 0, N)  # uses all 10 columns
    W = np.ones((3, N_IN), np.float32)
    scratch = _scratch(np.empty(W.size - 1, np.float32))
    with pytest.raises(ValueError, match="scratch is smaller than the batch needs"):
        sparse.matmul_add_compact(X, W, np.zeros((N, 3), np.float32), scratch)
    assert (scratch.slot == -1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_out", [1, 6, 13])
@pytest.mark.parametrize("path", WEIGHT_GRAD)
def test_weight_grad_writes_every_entry_against_numpy(path, n_out, dtype):
    X = messy_csr()
    D = np.random.default_rng(8).normal(size=(N, n_out)).astype(dtype)
    D[::4] = 0  # rows of zero deltas (the by-unit kernel skips them)
    scratch = _scratch(np.full(n_out * N_IN, np.nan, dtype))
    for start, rows in ((5, 5), (0, N), (6, 2)):
        block = sparse.row_block(_csr(X, dtype), start, rows)
        dW = np.full((n_out, N_IN), np.nan, dtype)
        WEIGHT_GRAD[path](block, D[start : start + rows], dW, scratch)
        dense = X.toarray()[start : start + rows].astype(dtype)
        np.testing.assert_allclose(dW, D[start : start + rows].T @ dense, **TOL)


def test_products_choose_the_transposed_path_by_stored_values_per_column():
    # The transposed kernels leave W.T (forward) or dW.T (gradient) in the scratch; the compact
    # forward leaves the used columns of W there, the by-unit gradient nothing. All 23 rows
    # hold more than GRADIENT_FILL values per column, the five rows 5..9 fewer than
    # FORWARD_FILL.
    X = _csr(messy_csr())
    W = np.random.default_rng(10).normal(size=(6, N_IN)).astype(np.float32)
    D = np.random.default_rng(11).normal(size=(N, 6)).astype(np.float32)
    few = sparse.row_block(X, 5, 5)
    assert X.indptr[-1] >= sparse.GRADIENT_FILL * N_IN >= sparse.FORWARD_FILL * N_IN
    assert few.indptr[-1] - few.indptr[0] < sparse.FORWARD_FILL * N_IN
    for batch, transposed in ((X, True), (few, False)):
        rows = batch.indptr.size - 1
        used = np.unique(batch.indices[batch.indptr[0] : batch.indptr[-1]])
        assert transposed or used.size < N_IN
        scratch = _scratch(np.full(W.size, np.nan, np.float32))
        T = scratch.values
        sparse.matmul_add(batch, W, np.zeros((rows, 6), np.float32), scratch)
        if transposed:
            assert np.array_equal(T, W.T.ravel())
        else:
            assert np.array_equal(T[: used.size * 6], W[:, used].T.ravel())
            assert np.isnan(T[used.size * 6 :]).all()
        T[:] = np.nan
        dW = np.empty_like(W)
        sparse.weight_grad(batch, D[:rows], dW, scratch)
        assert np.array_equal(T, dW.T.ravel()) == transposed and np.isnan(T).all() != transposed
    assert sparse.transposes(X, W, T, 1) and not sparse.transposes(X, W, T[:-1], 1)


@pytest.mark.parametrize("n", [7, 8, 13])
def test_transpose_against_numpy(n):
    A = np.arange(n * 21, dtype=np.float64).reshape(n, 21)  # full and partial 8x8 tiles
    out = np.full((21, n), np.nan)
    sparse.transpose(A, out)
    np.testing.assert_array_equal(out, A.T)


def test_gather_and_densify_rows_against_numpy():
    X, dense = _csr(messy_csr()), messy_csr().toarray().astype(np.float32)
    order = np.random.default_rng(9).permutation(N)
    lengths = np.sort(np.diff(X.indptr))
    capacity = lengths[-6:].sum()
    buf = sparse.CSR(np.empty(7, np.int64), np.empty(capacity, np.int64),
                     np.empty(capacity, np.float32), N_IN)  # fmt: skip
    for start in (0, 18):  # a full batch and the partial last one
        rows = min(6, N - start)
        batch = sparse.gather_rows(X, order, start, rows, buf)
        assert batch.indptr[0] == 0 and batch.indptr.size == rows + 1
        batch_dense = np.full((rows, N_IN), np.nan, np.float32)
        sparse.densify_rows(batch, np.arange(rows), 0, rows, batch_dense)
        np.testing.assert_array_equal(batch_dense, dense[order[start : start + rows]])


def test_float32_kernels_compute_in_float32():
    # A float64 constant or argument would promote the loops (NUMBA_NOTES.md): look for double
    # arithmetic in the LLVM IR of fresh, uncached float32 instances.
    X = _csr(messy_csr())
    W = np.ones((4, N_IN), np.float32)
    D = np.ones((N, 4), np.float32)
    T = np.zeros(W.size, np.float32)
    calls = [
        (sparse.matmul_add_compact, (X, W, np.zeros((N, 4), np.float32), _scratch(T))),
        (sparse.weight_grad_by_unit, (X, D, np.zeros((4, N_IN), np.float32))),
        (sparse.matmul_add_transposed, (X, W, np.zeros((N, 4), np.float32), T)),
        (sparse.weight_grad_transposed, (X, D, np.zeros((4, N_IN), np.float32), T)),
        (sparse.densify_rows, (X, np.arange(N), 0, N, np.zeros((N, N_IN), np.float32))),
    ]
    for kernel, args in calls:
        fresh = njit(**CALLEE_OPTIONS)(kernel.py_func)
        fresh(*args)
        llvm = "\n".join(fresh.inspect_llvm().values())
        promoted = re.findall(r"\b(?:fadd|fmul|fsub|fpext)\b[^\n]*double[^\n]*", llvm)
        assert not promoted, (kernel.__name__, promoted[:3])
