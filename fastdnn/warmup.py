"""Compile fastdnn's generic CPU kernels into Numba's on-disk cache ahead of use.

``python -m fastdnn warmup`` is for container images and other machines prepared once and run
many times: it compiles the generic drivers (every layer kind, activation, loss and optimizer;
see ``kernels/cpu/features.py``) for float32 and float64, dense and sparse input, fitting,
evaluation, prediction and gradients (training and inference mode). Processes that set
``FASTDNN_SPECIALIZE=0`` use those drivers for every network, so with the cache warm they
compile nothing. Without it, each network compiles (once, then cached) drivers specialised to
its own features, which is shorter than compiling the generic ones but not free.

The cache is Numba's: beside the installed sources when that folder is writable, else the user
cache folder, or ``NUMBA_CACHE_DIR`` when set. Numba keys it on the CPU: for a cache that
serves other machines of one CPU family, set ``NUMBA_CPU_NAME`` (an LLVM CPU name such as
``x86-64-v3`` or ``znver4``) and ``NUMBA_CPU_FEATURES`` to the same values when warming up and
when running.
"""

import os
import time

import numpy as np

__all__ = ["warmup"]


def _network(fd, n_in, dtype):
    return fd.Sequential(
        [
            fd.Dense(n_in, 8),
            fd.BatchNorm(8, activation="relu"),
            fd.Dropout(0.1),
            fd.Dense(8, 8, activation="tanh"),
            fd.LayerNorm(8),
            fd.Dense(8, 3, activation="softmax"),
        ],
        dtype=dtype,
        seed=0,
    )


def warmup(dtypes=("float32", "float64"), sparse=True, log=print):
    """Compile (or load) the generic kernels for ``dtypes``; returns the seconds taken.

    Parameters
    ----------
    dtypes : sequence of str
        Parameter dtypes to prepare.
    sparse : bool
        Also prepare the kernels for scipy.sparse input.
    log : callable or None
        Called with a line of progress per step.
    """
    import scipy.sparse

    import fastdnn as fd

    began = time.perf_counter()
    previous = os.environ.get("FASTDNN_SPECIALIZE")
    os.environ["FASTDNN_SPECIALIZE"] = "0"
    try:
        rng = np.random.default_rng(0)
        for dtype in dtypes:
            X = rng.normal(size=(24, 5)).astype(dtype)
            y = np.arange(24) % 3
            inputs = [("dense", X)]
            if sparse:
                inputs.append(("sparse", scipy.sparse.csr_matrix(np.where(X > 0.5, X, 0))))
            for name, data in inputs:
                step = time.perf_counter()
                model = _network(fd, 5, dtype)
                model.compile("cross_entropy", fd.Adam(), l2=1e-4, clipnorm=1.0)
                model.fit(data, y, epochs=1, batch_size=8, verbose=0)
                model.evaluate(data, y)
                model.predict(data)
                model.loss_and_gradients(data, y, training=True)
                model.loss_and_gradients(data, y)  # inference mode: the L-BFGS solver's
                if log:
                    log(f"  {dtype} {name}: {time.perf_counter() - step:.1f} s")
    finally:
        if previous is None:
            os.environ.pop("FASTDNN_SPECIALIZE")
        else:
            os.environ["FASTDNN_SPECIALIZE"] = previous
    return time.perf_counter() - began
