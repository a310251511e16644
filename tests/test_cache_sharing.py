"""A Numba cache filled by several processes, each compiling other kernels in another order,
serves a later process that loads all of them the right code (``kernels/_options.py``: random
function ids; Numba's per-process counter gave two closures of one factory the same symbol in
two processes, and the process loading both libraries ran one body for the other)."""

import json
import os
import subprocess
import sys
import textwrap

# The loop is too large for LLVM to inline into its two call sites, so each kernel's library
# calls it by its symbol, as the network drivers call the activation loops.
MODULE = textwrap.dedent("""
    import math
    from fastdnn.kernels._options import callee, kernel

    def make_loop(f):
        @callee
        def loop(x, out):
            for i in range(x.size):
                v = x[i]
                noise = 0.0
                for k in range(1, 24):
                    noise += math.sin(v * k) / k + math.cos(v / k) * k
                out[i] = f(v) + 0.0 * noise
        return loop

    @callee
    def negate(v):
        return -v

    @callee
    def square(v):
        return v * v

    NEGATE_LOOP = make_loop(negate)
    SQUARE_LOOP = make_loop(square)

    @kernel
    def apply_negate(x, out):
        NEGATE_LOOP(x[:2], out[:2])
        NEGATE_LOOP(x[2:], out[2:])

    @kernel
    def apply_square(x, out):
        SQUARE_LOOP(x[:2], out[:2])
        SQUARE_LOOP(x[2:], out[2:])
""")

CALL = textwrap.dedent("""
    import json, sys
    import numpy as np
    import shared_loops
    x = np.arange(1.0, 5.0)
    result = {}
    for name in sys.argv[1:]:
        out = np.zeros_like(x)
        kernel = getattr(shared_loops, "apply_" + name)
        kernel(x, out)
        loop = getattr(shared_loops, name.upper() + "_LOOP")
        result[name] = {
            "out": out.tolist(),
            "cached": bool(kernel.stats.cache_hits),
            "loop_symbols": [o.fndesc.mangled_name for o in loop.overloads.values()],
        }
    print(json.dumps(result))
""")


def _run(tmp_path, cache, *names):
    # One hash seed: Numba's symbol names also carry its fast-math flags as a set, in the order
    # of the process's string hashes, which alone kept most processes' names apart.
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / cache),
               PYTHONHASHSEED="0")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", CALL, *names], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_one_kernel_compiled_by_two_processes_gets_two_symbols(tmp_path):
    # With Numba's counter, two fresh processes that compile the same kernels in the same
    # order name them alike, and a closure of another body compiled at that point elsewhere
    # would share the name too.
    (tmp_path / "shared_loops.py").write_text(MODULE)
    first = _run(tmp_path, "a", "negate")["negate"]
    second = _run(tmp_path, "b", "negate")["negate"]
    assert first["out"] == second["out"] == [-1.0, -2.0, -3.0, -4.0]
    assert first["loop_symbols"] and second["loop_symbols"]
    assert set(first["loop_symbols"]).isdisjoint(second["loop_symbols"])


def test_a_cache_filled_by_several_processes_serves_each_kernel_its_own_loop(tmp_path):
    (tmp_path / "shared_loops.py").write_text(MODULE)
    _run(tmp_path, "cache", "negate")
    _run(tmp_path, "cache", "square")
    both = _run(tmp_path, "cache", "negate", "square")
    assert both["negate"] == {"out": [-1.0, -2.0, -3.0, -4.0], "cached": True, "loop_symbols": []}
    assert both["square"] == {"out": [1.0, 4.0, 9.0, 16.0], "cached": True, "loop_symbols": []}
