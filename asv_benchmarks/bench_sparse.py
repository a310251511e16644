"""Sparse, TF-IDF-like input: 100k columns, 0.1 % stored, a 256-unit ReLU layer, 10 classes.

``SparseKernels`` times the first layer's kernels on one batch of 200 rows (gather, forward
``Z += Xb @ W.T``, weight gradient ``dW = D.T @ Xb``) beside the dense Adam pass over the same
model's parameters, which every step also makes. ``SparseTraining`` times one epoch of fastdnn
and of scikit-learn's ``MLPClassifier`` (same hidden size, Adam, batches of 200, float32, one
``partial_fit`` an epoch) on the same CSR data in one process; ``SparseSpeedup`` times them
interleaved and reports scikit-learn's epoch over fastdnn's (above 1: fastdnn is faster). Run the
comparison directly with ``python -m asv_benchmarks.bench_sparse``.

The stored columns are uniform at random: no column is shared by many rows, the hard case for
caches (real TF-IDF data repeat frequent words). ``FASTDNN_BENCH_SCALE`` scales the rows and the
columns (at least 1000), so that the smoke test runs on tiny data.
"""

import os
import time

import numpy as np
import scipy.sparse as sp
from sklearn.neural_network import MLPClassifier

import fastdnn as fd
from fastdnn.engines import cpu as cpu_engine
from fastdnn.kernels.cpu import optimizers as opt
from fastdnn.kernels.cpu import sparse

N_SAMPLES, N_COLS, DENSITY, HIDDEN, N_CLASSES, BATCH = 2000, 100_000, 0.001, 256, 10, 200
LIBRARIES = ["fastdnn", "sklearn"]


def sizes():
    """``(rows, columns)`` after ``FASTDNN_BENCH_SCALE``."""
    scale = float(os.environ.get("FASTDNN_BENCH_SCALE", "1"))
    return max(BATCH, int(N_SAMPLES * scale)), max(1000, int(N_COLS * scale))


def tfidf_like(n=None, n_cols=None, seed=0):
    """A float32 CSR matrix of non-negative, L2-normalised rows and integer labels."""
    default_n, default_cols = sizes()
    n, n_cols = n or default_n, n_cols or default_cols
    X = sp.random(n, n_cols, density=DENSITY, format="csr", dtype=np.float32, random_state=seed)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-12)) @ X, dtype=np.float32)
    return X, np.random.default_rng(seed).integers(0, N_CLASSES, n)


def fastdnn_model(n_cols):
    model = fd.Sequential(
        [fd.Dense(n_cols, HIDDEN, "relu"), fd.Dense(HIDDEN, N_CLASSES, "softmax")], seed=0
    )
    model.compile("cross_entropy", fd.Adam(1e-3))
    return model


def _learner(library, n_cols):
    if library == "fastdnn":
        return fastdnn_model(n_cols)
    return MLPClassifier(
        hidden_layer_sizes=(HIDDEN,), solver="adam", batch_size=BATCH, learning_rate_init=1e-3,
        random_state=0,
    )  # fmt: skip


def _epoch(learner, X, y):
    if isinstance(learner, MLPClassifier):  # one partial_fit: an epoch over shuffled batches
        learner.partial_fit(X, y, classes=np.arange(N_CLASSES))
    else:
        learner.fit(X, y, epochs=1, batch_size=BATCH, verbose=0)


class SparseKernels:
    """The first layer's kernels on one batch, and the dense Adam pass of the same model."""

    timeout = 300

    def setup(self):
        X, y = tfidf_like()
        n_cols = X.shape[1]
        self.model = model = fastdnn_model(n_cols)
        self.X = model._data(X, y)[0]
        rng = np.random.default_rng(0)
        self.order = rng.permutation(X.shape[0])
        capacity = np.sort(np.diff(self.X.indptr))[-BATCH:].sum()
        self.buf = sparse.CSR(
            np.empty(BATCH + 1, np.int64), np.empty(capacity, np.int64),
            np.empty(capacity, np.float32), n_cols,
        )  # fmt: skip
        self.batch = sparse.gather_rows(self.X, self.order, 0, BATCH, self.buf)
        self.W = model._params[: HIDDEN * n_cols].reshape(HIDDEN, n_cols)
        self.Z = np.zeros((BATCH, HIDDEN), np.float32)
        self.D = np.maximum(rng.standard_normal((BATCH, HIDDEN), dtype=np.float32), 0)
        self.dW = np.empty_like(self.W)
        # The scratch a fit's batches get (a batch of 200 rows holds far fewer values than the
        # layer has inputs: the compact forward, not the transposed one; sparse.FORWARD_FILL).
        self.T = cpu_engine.first_layer_scratch(model, self.X, capacity)
        self.grads = np.zeros_like(model._params)
        self.hyper = model.optimizer.hyperparameters(np.float32)
        for name in ("gather", "forward", "weight_grad", "adam_step"):  # compile
            getattr(self, "time_" + name)()

    def time_gather(self):
        sparse.gather_rows(self.X, self.order, 0, BATCH, self.buf)

    def time_forward(self):
        sparse.matmul_add(self.batch, self.W, self.Z, self.T)

    def time_weight_grad(self):
        sparse.weight_grad(self.batch, self.D, self.dW, self.T)

    def time_adam_step(self):
        m, zero = self.model, np.float32(0)
        opt.optimizer_step(
            opt.ADAM, m._params, self.grads, m._state, self.hyper, 1, m._n_weights, zero, zero
        )


class SparseTraining:
    """One epoch of each library on the same CSR data; compilation happens in setup."""

    params = LIBRARIES
    param_names = ["library"]
    timeout = 600

    def setup(self, library):
        self.X, self.y = tfidf_like()
        self.learner = _learner(library, self.X.shape[1])
        _epoch(self.learner, self.X[: 2 * BATCH], self.y[: 2 * BATCH])

    def time_epoch(self, library):
        _epoch(self.learner, self.X, self.y)


def compare(X, y, rounds=3, pause=0.5):
    """Median epoch seconds of (fastdnn, scikit-learn), timed alternately in this process,
    each after ``pause`` idle seconds (the other library's BLAS threads stop spinning)."""
    learners = {library: _learner(library, X.shape[1]) for library in LIBRARIES}
    for learner in learners.values():
        _epoch(learner, X[: 2 * BATCH], y[: 2 * BATCH])  # compile, allocate
    times = {library: [] for library in LIBRARIES}
    for _ in range(rounds):
        for library, learner in learners.items():
            time.sleep(pause)
            start = time.perf_counter()
            _epoch(learner, X, y)
            times[library].append(time.perf_counter() - start)
    return float(np.median(times["fastdnn"])), float(np.median(times["sklearn"]))


class SparseSpeedup:
    """scikit-learn's epoch time over fastdnn's, interleaved runs (above 1: fastdnn is faster)."""

    timeout = 600
    number = 1
    repeat = 1

    def setup(self):
        self.X, self.y = tfidf_like()
        self.pause = 0.5 if self.X.shape[0] >= N_SAMPLES else 0.0  # no idling on smoke-test data

    def track_speedup(self):
        ours, theirs = compare(self.X, self.y, rounds=2, pause=self.pause)
        return theirs / ours

    track_speedup.unit = "x"


def main():
    X, y = tfidf_like()
    print(f"{X.shape[0]} x {X.shape[1]} CSR, {X.nnz / X.shape[0]:.0f} stored per row, "
          f"{X.shape[1]}-{HIDDEN}-{N_CLASSES}, Adam, batches of {BATCH}")  # fmt: skip
    kernels = SparseKernels()
    kernels.setup()
    names = ("gather", "forward", "weight_grad", "adam_step")
    best = {}
    for name in names:
        runs = []
        for _ in range(7):
            start = time.perf_counter()
            getattr(kernels, "time_" + name)()
            runs.append(time.perf_counter() - start)
        best[name] = min(runs)
    print("per batch, best of 7:")
    for name in names:
        ratio = best[name] / best["adam_step"]
        print(f"  {name:<12}{best[name] * 1e3:>9.2f} ms  {ratio:>6.2f} x the Adam pass")
    del kernels
    ours, theirs = compare(X, y, rounds=5)
    print(f"epoch, median of 5: fastdnn {ours:.2f} s, sklearn MLPClassifier {theirs:.2f} s, "
          f"sklearn/fastdnn {theirs / ours:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
