"""Compile fastdnn's generic CPU kernels into Numba's on-disk cache ahead of use.

``python -m fastdnn warmup`` is for container images and other machines prepared once and run
many times: it compiles the generic drivers (every layer kind, activation, loss and optimizer;
see ``kernels/cpu/features.py``) for float32 and float64, dense and sparse input, fitting,
evaluation, prediction and gradients (training and inference mode). Processes that set
``FASTDNN_SPECIALIZE=0`` use those drivers for every network, so with the cache warm they
compile nothing. Without it, each network compiles (once, then cached) drivers specialised to
its own features, which is shorter than compiling the generic ones but not free.

``python -m fastdnn warmup --portable`` compiles the same kernels for x86-64 micro-architecture
levels instead of this CPU, into the precompiled cache that ships with the package
(``kernels/_cache.py``): a wheel built afterwards starts without compiling on any machine of
those levels.

The cache is Numba's: beside the installed sources when that folder is writable, else the user
cache folder, or ``NUMBA_CACHE_DIR`` when set. Numba keys it on the CPU: for a cache that
serves other machines of one CPU family, set ``NUMBA_CPU_NAME`` (an LLVM CPU name such as
``x86-64-v3`` or ``znver4``) and ``NUMBA_CPU_FEATURES`` to the same values when warming up and
when running.
"""

import os
import shutil
import subprocess
import sys
import time

import numpy as np

__all__ = ["build_precompiled", "warmup"]


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


def build_precompiled(levels=("x86-64-v3", "x86-64-v4"), dtypes=("float32", "float64"),
                      sparse=True, log=print):  # fmt: skip
    """Compile the generic kernels for each of ``levels`` into the precompiled cache; returns
    the seconds taken.

    Each level is built by a new interpreter whose Numba targets the level
    (``NUMBA_CPU_NAME``, no extra features) and runs :func:`warmup`, so the host must have the
    level's instructions. A level's folder is replaced, then its manifest written last: an
    interrupted build leaves no manifest, and no process uses that level.

    Raises
    ------
    ValueError
        For a level unknown to ``kernels/_cache.py``, or one this CPU cannot run.
    subprocess.CalledProcessError
        When a level's build fails.
    """
    from .kernels import _cache

    for level in levels:
        if level not in _cache.LEVELS:
            raise ValueError(f"unknown level {level!r}; expected one of {list(_cache.LEVELS)}")
        if not _cache.host_supports(level):
            raise ValueError(f"this CPU cannot run {level} code, so it cannot build that level")
    folder = _cache.root()
    if folder is None:
        raise ValueError("FASTDNN_PRECOMPILED=off: no folder to build the precompiled cache in")
    began = time.perf_counter()
    code = (
        "import sys; from fastdnn.warmup import warmup; from fastdnn.kernels import _cache; "
        "warmup(tuple(sys.argv[2].split(',')), sparse=sys.argv[3] == '1', log=None); "
        "_cache.write_manifest(sys.argv[1])"
    )
    for level in levels:
        step = time.perf_counter()
        shutil.rmtree(folder / level, ignore_errors=True)
        env = dict(os.environ, FASTDNN_PRECOMPILE_LEVEL=level, FASTDNN_PRECOMPILED=str(folder),
                   NUMBA_CPU_NAME=level, NUMBA_CPU_FEATURES="")  # fmt: skip
        command = [sys.executable, "-c", code, level, ",".join(dtypes), "1" if sparse else "0"]
        subprocess.run(command, env=env, check=True)
        if log:
            log(f"  {level}: {time.perf_counter() - step:.1f} s into {folder / level}")
    return time.perf_counter() - began
