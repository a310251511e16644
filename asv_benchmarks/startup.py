"""Start-up times of an installed fastdnn, each in a new interpreter, printed as a table.

Run ``python -m asv_benchmarks.startup [--python PATH] [--label NAME] [--repeats 3]``: for each
scenario of ``bench_compile.py`` (first S fit, load + predict, first ``MLPClassifier`` fit), the
cold start (an empty Numba cache, the first run on a new machine), the warm start (kernels
in the cache; best of the repeats) and the start after ``python -m fastdnn warmup`` with
``FASTDNN_SPECIALIZE=0`` (``--warmup no`` for a build without that command), plus a bare
``import fastdnn``. ``--python`` runs the
scenarios with another interpreter, e.g. a virtual environment holding a wheel of another
commit, so that two builds are compared on the same host in one run (``--python`` given twice
interleaves them). Times are whole-process wall clock, measured from outside the child.

A wheel built after ``python -m fastdnn warmup --portable`` ships precompiled kernels
(``kernels/_cache.py``): its "cold" column is then a new machine's first run of that wheel (give
it ``--warmup no``: the generic drivers are already its default).
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
    """Wall-clock seconds of ``python -c code`` in a new process, started in the temporary
    folder: from a checkout, ``-c`` would import the checkout's fastdnn, not ``python``'s."""
    start = time.perf_counter()
    subprocess.run([python, "-c", code], check=True, env=env, cwd=tempfile.gettempdir())
    return time.perf_counter() - start


def measure(python, repeats, warmup=False):
    """``{scenario: (cold s, warm s, after-warmup s or None)}``, the bare import's seconds and
    the seconds of ``python -m fastdnn warmup`` (None unless ``warmup``) for ``python``.

    "After warmup" runs the scenario with ``FASTDNN_SPECIALIZE=0`` on a cache that only
    ``python -m fastdnn warmup`` filled: a container image's first run.
    """
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, "cache"))
        scripts = scenarios(saved_model(folder, python, env))
        warmed = warm_seconds = None
        if warmup:
            warmed = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, "warmed"))
            start = time.perf_counter()
            subprocess.run([python, "-m", "fastdnn", "warmup"], check=True, env=warmed,
                           cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL)  # fmt: skip
            warm_seconds = time.perf_counter() - start
            warmed["FASTDNN_SPECIALIZE"] = "0"
        for name, script in scripts.items():
            cold = _seconds(EMPTY_CACHE + script, dict(os.environ), python)
            _seconds(script, env, python)  # fill the cache
            warm = min(_seconds(script, env, python) for _ in range(repeats))
            after = _seconds(script, warmed, python) if warmed else None
            results[name] = (cold, warm, after)
        bare = min(_seconds("import fastdnn", env, python) for _ in range(repeats))
    return results, bare, warm_seconds


def main(argv=None):
    """Print one row per scenario and interpreter."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="interpreter(s) to time")
    parser.add_argument("--label", action="append", help="a name per --python")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--warmup", action="append", choices=("yes", "no"),
        help="per --python: also time each scenario after `python -m fastdnn warmup`",
    )  # fmt: skip
    args = parser.parse_args(argv)
    pythons = args.python or [sys.executable]
    labels = args.label or [os.path.basename(os.path.dirname(os.path.dirname(p))) or p
                            for p in pythons]  # fmt: skip
    warmups = [w == "yes" for w in args.warmup] if args.warmup else [True] * len(pythons)
    print("| build | scenario | cold (empty cache) s | warm s | after `fastdnn warmup` s |")
    print("|---|---|---|---|---|")
    for label, python, warmup in zip(labels, pythons, warmups):
        results, bare, warm_seconds = measure(python, args.repeats, warmup)
        for name, (cold, warm, after) in results.items():
            after = "" if after is None else f"{after:.2f}"
            print(f"| {label} | {name} | {cold:.1f} | {warm:.2f} | {after} |", flush=True)
        print(f"| {label} | import fastdnn | | {bare:.2f} | |", flush=True)
        if warm_seconds is not None:
            print(f"| {label} | `python -m fastdnn warmup` | {warm_seconds:.1f} | | |", flush=True)


if __name__ == "__main__":
    main()
