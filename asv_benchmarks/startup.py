"""Start-up times of the checked-out fastdnn, each in a new interpreter, printed in one line.

Run ``python -m asv_benchmarks.startup [--label NAME] [--repeats 3]``: the cold start (workload
S for one epoch plus evaluate and predict, compiling every kernel into an empty Numba cache),
the cached start (the same training in a new process, kernels loaded from a warm cache) and a
bare ``import fastdnn``. It times the scripts of ``bench_compile.py`` from outside the child
processes, so runs at two commits (check one out, run, check out the other, run, repeat; for a
commit older than this script, run a copy kept outside the tree) give an A/B comparison on the
same host; asv's ``timeraw_`` benchmarks report the same quantities for one commit.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from .bench_compile import COLD, TRAIN_S


def _seconds(code, env):
    """Wall-clock seconds of ``python -c code`` in a new process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - start


def main(argv=None):
    """Print ``label: cold S, cached S, import S`` (cached and import: best of the repeats)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="fastdnn")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = _seconds(COLD, dict(os.environ))  # COLD picks its own empty cache directory
        _seconds(TRAIN_S, env)
        cached = min(_seconds(TRAIN_S, env) for _ in range(args.repeats))
        bare = min(_seconds("import fastdnn", env) for _ in range(args.repeats))
    print(f"{args.label}: cold {cold:.1f} s, cached {cached:.2f} s, import {bare:.2f} s")


if __name__ == "__main__":
    main()
