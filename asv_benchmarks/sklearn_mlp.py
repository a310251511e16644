"""fastdnn's MLPClassifier against scikit-learn's, the same parameters on the same data.

Run ``python -m asv_benchmarks.sklearn_mlp [--datasets digits,tabular,tfidf]
[--solvers adam,sgd,lbfgs] [--quick]`` (unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the
command, see NUMBA_NOTES). For every data set, solver and data dtype (float64, float32) both
estimators fit the same training split in this one process, alternately, each for exactly
``max_iter`` iterations (``tol=0`` and ``n_iter_no_change=max_iter``, so that neither stops
early), and score the same test split; with ``--repeats N`` each fits N times, interleaved, and
its fastest fit counts. ``--threads N`` limits both libraries' BLAS (NumPy's OpenBLAS for
scikit-learn, SciPy's for fastdnn) to N threads through threadpoolctl; ``--settle S`` idles S
seconds before each fit. On this project's 2-core VMs threaded OpenBLAS stalls erratically,
100-1250 ms a call for some products, worst in the first calls after its threads went to sleep:
two-thread timings vary by several times between runs, one-thread timings are steady. fastdnn's
kernels are compiled before the first timed fit.
Prints a Markdown table of fit seconds, the speed-up (scikit-learn's time / fastdnn's) and both
test accuracies, then the geometric mean speed-up per data dtype.

Data sets (all generated or bundled, no download):

- ``digits``: scikit-learn's 8x8 digits (1797 x 64, 10 classes), hidden (100,);
- ``tabular``: ``make_classification`` 50000 x 100, 10 classes, hidden (256, 128);
- ``tfidf``: a TF-IDF-like CSR matrix 20000 x 20000 at 0.5 % non-zeros (L2-normalised rows of
  word counts drawn from per-class Zipf-like vocabularies), 5 classes, hidden (64,).
"""

import argparse
import math
import os
import platform
import sys
import time
import warnings

import numpy as np

DATASETS = ("digits", "tabular", "tfidf")
SOLVERS = ("adam", "sgd", "lbfgs")
#: Iterations per solver: epochs for adam/sgd, L-BFGS iterations for lbfgs.
MAX_ITER = {
    "digits": {"adam": 60, "sgd": 60, "lbfgs": 200},
    "tabular": {"adam": 8, "sgd": 8, "lbfgs": 40},
    "tfidf": {"adam": 6, "sgd": 6, "lbfgs": 40},
}
HIDDEN = {"digits": (100,), "tabular": (256, 128), "tfidf": (64,)}


def dataset(name, quick=False, seed=0):
    """``(X_train, X_test, y_train, y_test)`` of data set ``name`` in float64."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    elif name == "tabular":
        from sklearn.datasets import make_classification

        n = 5000 if quick else 50000
        X, y = make_classification(
            n_samples=n, n_features=100, n_informative=40, n_classes=10, n_clusters_per_class=2,
            random_state=seed,
        )  # fmt: skip
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    elif name == "tfidf":
        X, y = _tfidf(2000 if quick else 20000, 20000, 100, 5, rng)
    else:
        raise ValueError(f"unknown data set {name!r}; choose from {DATASETS}")
    return train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)


def _tfidf(n_docs, n_words, words_per_doc, n_classes, rng):
    """Word counts from per-class vocabularies (a shared Zipf-like background plus a class's
    own frequent words), TF-IDF weighted, rows L2-normalised, as a CSR matrix."""
    import scipy.sparse as sp

    background = 1.0 / np.arange(1, n_words + 1) ** 1.1
    y = rng.integers(0, n_classes, n_docs)
    rows, cols = [], []
    for c in range(n_classes):
        topical = background.copy()
        own = rng.choice(n_words, 300, replace=False)
        topical[own] += background[:300] * 4
        p = topical / topical.sum()
        docs = np.flatnonzero(y == c)
        words = rng.choice(n_words, size=(docs.size, words_per_doc), p=p)
        rows.append(np.repeat(docs, words_per_doc))
        cols.append(words.ravel())
    counts = sp.csr_matrix(
        (np.ones(n_docs * words_per_doc), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_docs, n_words),
    )
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=n_words)
    idf = np.log((1 + n_docs) / (1 + df)) + 1
    tfidf = counts.multiply(idf.reshape(1, -1)).tocsr()
    norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1))).ravel()
    tfidf = sp.diags(1 / np.maximum(norms, 1e-12)) @ tfidf
    return tfidf.tocsr(), y


def _params(name, solver, iteration_scale=1.0):
    max_iter = max(1, round(MAX_ITER[name][solver] * iteration_scale))
    return dict(
        hidden_layer_sizes=HIDDEN[name], solver=solver, max_iter=max_iter, random_state=0,
        tol=0.0, n_iter_no_change=max_iter, learning_rate_init=0.01 if solver == "sgd" else 0.001,
    )  # fmt: skip


def _fit_and_score(cls, params, data):
    X_train, X_test, y_train, y_test = data
    estimator = cls(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        estimator.fit(X_train, y_train)
        seconds = time.perf_counter() - start
    return seconds, float(estimator.score(X_test, y_test))


def _as_dtype(data, dtype):
    X_train, X_test, y_train, y_test = data
    return X_train.astype(dtype), X_test.astype(dtype), y_train, y_test


def warm_up(datasets):
    """Compile fastdnn's kernels for every path the timed fits take."""
    from fastdnn import MLPClassifier

    for name in datasets:
        X_train, X_test, y_train, y_test = dataset(name, quick=True)
        for dtype in (np.float64, np.float32):
            for solver in SOLVERS:
                params = {**_params(name, solver), "max_iter": 1, "hidden_layer_sizes": (3,)}
                _fit_and_score(MLPClassifier, params, _as_dtype((X_train[:64], X_test[:64],
                               y_train[:64], y_test[:64]), dtype))  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of the data and of the iterations"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="fits per estimator, interleaved; the fastest counts"
    )
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads of both libraries")
    parser.add_argument(
        "--settle", type=float, default=0.0,
        help="idle seconds before each fit, so that the other library's BLAS threads sleep",
    )  # fmt: skip
    args = parser.parse_args(argv)
    datasets = args.datasets.split(",")
    solvers = args.solvers.split(",")

    from sklearn.neural_network import MLPClassifier as SklearnMLP
    from threadpoolctl import threadpool_info

    from fastdnn import MLPClassifier as FastMLP

    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if variable in os.environ:
            print(f"warning: {variable}={os.environ[variable]} holds OpenBLAS to older kernels "
                  "(unset it for this command)", file=sys.stderr)  # fmt: skip
    kernels = sorted(
        {f"{p.get('internal_api')}:{p.get('architecture')}" for p in threadpool_info()}
    )
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; BLAS {kernels}")
    warm_up(datasets)
    print("| data | solver | data dtype | scikit-learn s | fastdnn s | speed-up | "
          "scikit-learn accuracy | fastdnn accuracy |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    speedups = {"float64": [], "float32": []}
    for name in datasets:
        data64 = dataset(name, quick=args.quick)
        for solver in solvers:
            params = _params(name, solver, 0.1 if args.quick else 1.0)
            for dtype in ("float64", "float32"):
                data = _as_dtype(data64, dtype)
                runs = {SklearnMLP: [], FastMLP: []}
                for _ in range(args.repeats):
                    for cls, results in runs.items():
                        time.sleep(args.settle)
                        results.append(_fit_and_score(cls, params, data))
                theirs, ours = (min(runs[cls]) for cls in (SklearnMLP, FastMLP))
                speedup = theirs[0] / ours[0]
                speedups[dtype].append(speedup)
                cells = [name, solver, dtype, f"{theirs[0]:.2f}", f"{ours[0]:.2f}",
                         f"{speedup:.1f}x", f"{theirs[1]:.3f}", f"{ours[1]:.3f}"]  # fmt: skip
                print("| " + " | ".join(cells) + " |", flush=True)
    for dtype, values in speedups.items():
        if values:
            geomean = math.exp(sum(math.log(v) for v in values) / len(values))
            print(f"geometric mean speed-up, {dtype} data: {geomean:.2f}x over {len(values)} fits")


if __name__ == "__main__":
    main()
