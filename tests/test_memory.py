"""A training step allocates nothing, and a long fit does not grow the process's memory."""

import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np

import fastdnn as fd


def test_numba_allocations_do_not_depend_on_the_number_of_steps():
    # NRT statistics must be switched on before Numba is imported: use a fresh process.
    # The same for a dense X and for a sparse one (gathered into CSR batch buffers).
    script = textwrap.dedent(
        """
        import numpy as np, scipy.sparse as sp, fastdnn as fd
        from numba.core.runtime import rtsys
        rng = np.random.default_rng(0)
        X = rng.random((512, 12), dtype=np.float32)
        y = rng.integers(0, 3, 512)
        model = fd.Sequential([fd.Dense(12, 16, activation="gelu"),
                               fd.Dense(16, 3, activation="softmax")], seed=0)
        model.compile("cross_entropy", fd.AdamW(), l1=1e-4, l2=1e-4)
        for inputs in (X, sp.csr_matrix(X * (X < 0.3))):
            model.fit(inputs, y, epochs=1, batch_size=8, verbose=0)  # compile
            for batch_size in (8, 64, 512):  # 64, 8 and 1 steps per epoch
                before = rtsys.get_allocation_stats().alloc
                model.fit(inputs, y, epochs=3, batch_size=batch_size, verbose=0)
                print(rtsys.get_allocation_stats().alloc - before)
        """
    )
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    counts = [int(v) for v in out]
    # Only the per-call boxing of array arguments allocates; 64 steps cost what 1 step does.
    assert len(counts) == 6, counts
    dense, sparse = counts[:3], counts[3:]
    assert dense[0] == dense[1] == dense[2] and sparse[0] == sparse[1] == sparse[2], counts


def test_long_fit_does_not_grow_python_memory():
    rng = np.random.default_rng(0)
    X = rng.random((256, 10), dtype=np.float32)
    y = rng.integers(0, 4, 256)
    model = fd.Sequential(
        [fd.Dense(10, 32, activation="relu"), fd.Dense(32, 4, activation="softmax")], seed=0
    )
    model.compile("cross_entropy", fd.Adam())
    model.fit(X, y, epochs=2, verbose=0)
    usage = []

    class Measure(fd.Callback):
        def on_epoch_end(self, epoch, logs=None):
            usage.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        model.fit(X, y, epochs=60, batch_size=16, verbose=0, callbacks=[Measure()])
    finally:
        tracemalloc.stop()
    # The history grows by a few floats per epoch; anything per-step or per-array would be KBs.
    growth_per_epoch = (usage[-1] - usage[5]) / (len(usage) - 6)
    assert growth_per_epoch < 1024, usage
