"""PCA fit on 20000 x 784 float32 against scikit-learn in the same run, and PCA transform.

``library`` is a parameter, so asv times both libraries on the same data in one process; the
``track_speedup`` benchmark also times them interleaved and reports scikit-learn's time over
fastdnn's (above 1: fastdnn is faster). ``auto`` is each library's own choice: here both pick
the covariance route (scikit-learn's ``covariance_eigh``). Run the comparison directly with
``python -m asv_benchmarks.bench_decomposition``.

``FASTDNN_BENCH_SCALE`` scales the number of rows, as for the other suites.
"""

import os
import time

import numpy as np
from sklearn.decomposition import PCA as SklearnPCA

from fastdnn.decomposition import PCA

LIBRARIES = {"fastdnn": PCA, "sklearn": SklearnPCA}
SOLVERS = ["full", "randomized", "auto"]
N_SAMPLES, N_FEATURES, N_COMPONENTS = 20000, 784, 50


def image_like(n=None, d=N_FEATURES, seed=0):
    """float32 data in [0, 1] with an MNIST-like spectrum: 60 latent factors of decaying
    strength through a sigmoid, plus pixel noise."""
    scale = float(os.environ.get("FASTDNN_BENCH_SCALE", "1"))
    n = max(200, int(N_SAMPLES * scale)) if n is None else n
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 60)) * (1.0 / np.arange(1, 61)) ** 0.7
    basis = rng.standard_normal((60, d)) * 1.5
    X = 1.0 / (1.0 + np.exp(-(latent @ basis - 1.0))) + 0.05 * rng.standard_normal((n, d))
    return np.clip(X, 0.0, 1.0).astype(np.float32)


def _estimator(library, solver):
    return LIBRARIES[library](N_COMPONENTS, svd_solver=solver, random_state=0)


class PCAFit:
    """``PCA(50, svd_solver=...).fit(X)`` for both libraries; compilation happens in setup."""

    params = (list(LIBRARIES), SOLVERS)
    param_names = ["library", "svd_solver"]
    timeout = 300

    def setup(self, library, solver):
        self.X = image_like()
        _estimator(library, solver).fit(self.X[:500])

    def time_fit(self, library, solver):
        _estimator(library, solver).fit(self.X)

    def peakmem_fit(self, library, solver):
        _estimator(library, solver).fit(self.X)


class PCATransform:
    """``transform`` of the 20000 x 784 data by a fitted PCA(50)."""

    params = list(LIBRARIES)
    param_names = ["library"]

    def setup(self, library):
        self.X = image_like()
        self.pca = _estimator(library, "full").fit(self.X)
        self.pca.transform(self.X[:10])

    def time_transform(self, library):
        self.pca.transform(self.X)


def compare(solver, X, rounds=5, pause=0.5):
    """Median fit seconds of (fastdnn, scikit-learn), timed alternately in this process.

    Numba's BLAS calls go to SciPy's OpenBLAS, NumPy's ``@`` to NumPy's own copy; each copy's
    threads spin for a while after a call and slow the other one down (by ~50 ms here), so every
    timed fit starts after ``pause`` idle seconds, as it would in a process of its own.
    """
    times = {library: [] for library in LIBRARIES}
    for library in LIBRARIES:
        _estimator(library, solver).fit(X[:500])  # compile / warm up
    for _ in range(rounds):
        for library in LIBRARIES:
            time.sleep(pause)
            start = time.perf_counter()
            _estimator(library, solver).fit(X)
            times[library].append(time.perf_counter() - start)
    return float(np.median(times["fastdnn"])), float(np.median(times["sklearn"]))


class PCASpeedup:
    """scikit-learn's fit time over fastdnn's, interleaved runs (above 1: fastdnn is faster)."""

    params = SOLVERS
    param_names = ["svd_solver"]
    timeout = 300
    number = 1
    repeat = 1

    def setup(self, solver):
        self.X = image_like()
        self.pause = 0.5 if self.X.shape[0] >= 5000 else 0.0  # no idling on smoke-test data

    def track_speedup(self, solver):
        ours, theirs = compare(solver, self.X, rounds=3, pause=self.pause)
        return theirs / ours

    track_speedup.unit = "x"


def main():
    X = image_like()
    print(f"PCA({N_COMPONENTS}).fit on {X.shape[0]} x {X.shape[1]} float32, median of 7 each")
    print("(sklearn's 'full' is LAPACK's SVD of X; its 'auto' here is 'covariance_eigh')")
    print(f"{'svd_solver':<12}{'fastdnn s':>11}{'sklearn s':>11}{'sklearn/fastdnn':>17}")
    for solver in SOLVERS:
        ours, theirs = compare(solver, X, rounds=7)
        print(f"{solver:<12}{ours:>11.3f}{theirs:>11.3f}{theirs / ours:>17.2f}")


if __name__ == "__main__":
    main()
