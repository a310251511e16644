"""Start-up: a new process that imports fastdnn and trains workload S for one epoch.

``timeraw_cold_start`` compiles every kernel into an empty cache; ``timeraw_cached_start``
loads them from Numba's on-disk cache (warmed in ``setup``).
"""

import os
import subprocess
import sys
import tempfile

TRAIN_S = """
import numpy as np, fastdnn as fd
rng = np.random.default_rng(0)
X = rng.random((4096, 64), dtype=np.float32)
y = rng.integers(0, 10, 4096)
model = fd.Sequential([fd.Dense(64, 128, "relu"), fd.Dense(128, 10, "softmax")], seed=0)
model.compile("cross_entropy", fd.Adam(1e-3))
model.fit(X, y, epochs=1, batch_size=32, verbose=0)
"""

COLD = (
    """
import atexit, os, shutil, tempfile
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], True)
"""
    + TRAIN_S
    + """
model.evaluate(X, y)
model.predict(X)
"""
)


class StartUp:
    """Whole-process start-up times (seconds), measured in fresh interpreters."""

    repeat = (1, 3, 60.0)
    number = 1
    timeout = 300

    def setup(self):
        cache = os.path.join(tempfile.gettempdir(), "fastdnn-asv-numba-cache")
        os.environ["NUMBA_CACHE_DIR"] = cache
        subprocess.run([sys.executable, "-c", TRAIN_S], check=True, env=dict(os.environ))

    def teardown(self):
        os.environ.pop("NUMBA_CACHE_DIR", None)

    def timeraw_cached_start(self):
        return TRAIN_S

    def timeraw_cold_start(self):
        return COLD
