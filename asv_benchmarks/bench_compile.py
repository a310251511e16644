"""Start-up: whole new processes, as a new user, a CI job or a batch-scoring container meets
fastdnn, with an empty Numba cache (``timeraw_cold_*``) and with the kernels cached
(``timeraw_warm_*``).

The three scenarios of the start-up issue, each a script run in a fresh interpreter:

- ``fit_s``: ``import fastdnn`` and the first fit of workload S (64-128-10, Adam, batch 32,
  one epoch);
- ``load_predict``: ``import fastdnn``, ``fd.load`` of a saved S model, ``predict`` of 1000
  rows;
- ``sklearn_fit``: ``import fastdnn``, ``MLPClassifier(hidden_layer_sizes=(128,),
  max_iter=5).fit`` on scikit-learn's digits.

``StartUpPrecompiled`` times the same scenarios cold on a precompiled cache
(``timeraw_precompiled_*``, ``kernels/_cache.py``).
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

SAVE_S = TRAIN_S + "\nimport sys\nmodel.save(sys.argv[1])\n"

LOAD_PREDICT = """
import numpy as np, fastdnn as fd
model = fd.load({path!r})
model.predict(np.random.default_rng(1).random((1000, 64), dtype=np.float32))
"""

SKLEARN_FIT = """
import warnings
from sklearn.datasets import load_digits
from fastdnn import MLPClassifier
X, y = load_digits(return_X_y=True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # max_iter=5 stops before convergence
    MLPClassifier(hidden_layer_sizes=(128,), max_iter=5, random_state=0).fit(X, y)
"""

# An empty cache of its own, removed at exit: prepended to a scenario for a cold start.
EMPTY_CACHE = """
import atexit, os, shutil, tempfile
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], True)
"""

COLD = EMPTY_CACHE + TRAIN_S  # kept for the earlier name


def saved_model(folder, python=sys.executable, env=None):
    """Train and save an S model into ``folder`` with ``python``; returns the file's path."""
    path = os.path.join(folder, "s_model.npz")
    subprocess.run([python, "-c", SAVE_S, path], check=True, env=env, cwd=folder)
    return path


def scenarios(model_path):
    """Scenario name -> script (``load_predict`` loads ``model_path``)."""
    return {
        "fit_s": TRAIN_S,
        "load_predict": LOAD_PREDICT.format(path=model_path),
        "sklearn_fit": SKLEARN_FIT,
    }


class StartUp:
    """Whole-process start-up times (seconds), measured in fresh interpreters."""

    repeat = (1, 3, 60.0)
    number = 1
    timeout = 300

    def setup(self):
        self.folder = tempfile.mkdtemp()
        cache = os.path.join(tempfile.gettempdir(), "fastdnn-asv-numba-cache")
        os.environ["NUMBA_CACHE_DIR"] = cache
        env = dict(os.environ)
        self.scripts = scenarios(saved_model(self.folder, env=env))
        for script in self.scripts.values():  # warm the cache for the warm scenarios
            subprocess.run([sys.executable, "-c", script], check=True, env=env)

    def teardown(self):
        os.environ.pop("NUMBA_CACHE_DIR", None)

    def timeraw_warm_fit_s(self):
        return self.scripts["fit_s"]

    def timeraw_cold_fit_s(self):
        return EMPTY_CACHE + self.scripts["fit_s"]

    def timeraw_warm_load_predict(self):
        return self.scripts["load_predict"]

    def timeraw_cold_load_predict(self):
        return EMPTY_CACHE + self.scripts["load_predict"]

    def timeraw_warm_sklearn_fit(self):
        return self.scripts["sklearn_fit"]

    def timeraw_cold_sklearn_fit(self):
        return EMPTY_CACHE + self.scripts["sklearn_fit"]


class StartUpPrecompiled:
    """The cold scenarios on a precompiled cache (``kernels/_cache.py``): a new machine's first
    run of a wheel built after ``python -m fastdnn warmup --portable``, with an empty Numba
    cache. The highest x86-64 level this CPU runs is built once (minutes) into the temporary
    folder and reused while its manifest matches."""

    repeat = (1, 3, 60.0)
    number = 1
    timeout = 900

    def setup(self):
        from fastdnn.kernels import _cache

        levels = [level for level in _cache.LEVELS if _cache.host_supports(level)]
        if not levels:
            raise NotImplementedError("this CPU runs no x86-64 level of the precompiled cache")
        level = levels[-1]
        folder = os.path.join(tempfile.gettempdir(), "fastdnn-asv-precompiled")
        env = dict(os.environ, FASTDNN_PRECOMPILED=folder)
        env.pop("FASTDNN_SPECIALIZE", None)
        if not _cache.is_current(folder, level):
            command = [sys.executable, "-m", "fastdnn", "warmup", "--portable", "--levels",
                       level, "--no-sparse"]  # fmt: skip
            subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        self.saved = os.environ.copy()
        os.environ.update(env)
        os.environ.pop("FASTDNN_SPECIALIZE", None)
        self.folder = tempfile.mkdtemp()
        self.scripts = scenarios(saved_model(self.folder, env=dict(os.environ)))

    def teardown(self):
        os.environ.clear()
        os.environ.update(self.saved)

    def timeraw_precompiled_fit_s(self):
        return EMPTY_CACHE + self.scripts["fit_s"]

    def timeraw_precompiled_load_predict(self):
        return EMPTY_CACHE + self.scripts["load_predict"]

    def timeraw_precompiled_sklearn_fit(self):
        return EMPTY_CACHE + self.scripts["sklearn_fit"]
