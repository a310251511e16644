"""Start-up times of an installed fastdnn, each in a new interpreter, printed as a table.

Run ``python -m asv_benchmarks.startup [--python PATH] [--label NAME] [--repeats 3]``: for each
scenario of ``bench_compile.py`` (first S fit, load + predict, first ``MLPClassifier`` fit), the
cold start (an empty Numba cache, the first run on a new machine) and the warm start (kernels
in the cache; best of the repeats), plus a bare ``import fastdnn``. ``--python`` runs the
scenarios with another interpreter, e.g. a virtual environment holding a wheel of another
commit, so that two builds are compared on the same host in one run (``--python`` given twice
interleaves them). Times are whole-process wall clock, measured from outside the child.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from .bench_compile import EMPTY_CACHE, TRAIN_S, saved_model, scenarios

__all__ = ["TRAIN_S", "main"]


def _seconds(code, env, python=sys.executable):
    """Wall-clock seconds of ``python -c code`` in a new process."""
    start = time.perf_counter()
    subprocess.run([python, "-c", code], check=True, env=env)
    return time.perf_counter() - start


def measure(python, repeats):
    """``{scenario: (cold s, warm s)}`` and the bare import's seconds for ``python``."""
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, "cache"))
        scripts = scenarios(saved_model(folder, python, env))
        for name, script in scripts.items():
            cold = _seconds(EMPTY_CACHE + script, dict(os.environ), python)
            _seconds(script, env, python)  # fill the cache
            warm = min(_seconds(script, env, python) for _ in range(repeats))
            results[name] = (cold, warm)
        bare = min(_seconds("import fastdnn", env, python) for _ in range(repeats))
    return results, bare


def main(argv=None):
    """Print one row per scenario and interpreter."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="interpreter(s) to time")
    parser.add_argument("--label", action="append", help="a name per --python")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    pythons = args.python or [sys.executable]
    labels = args.label or [os.path.basename(os.path.dirname(os.path.dirname(p))) or p
                            for p in pythons]  # fmt: skip
    print("| build | scenario | cold (empty cache) s | warm s |")
    print("|---|---|---|---|")
    for label, python in zip(labels, pythons):
        results, bare = measure(python, args.repeats)
        for name, (cold, warm) in results.items():
            print(f"| {label} | {name} | {cold:.1f} | {warm:.2f} |", flush=True)
        print(f"| {label} | import fastdnn | | {bare:.2f} |", flush=True)


if __name__ == "__main__":
    main()
