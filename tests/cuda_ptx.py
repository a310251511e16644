"""Compile CUDA kernels to PTX for a real GPU, for ``test_cuda_compile.py`` (run as a child).

``python tests/cuda_ptx.py LAUNCHES.json`` reads ``[module, qualname, [argument types]]``
records, compiles each kernel for those types with ``numba.cuda.compile_ptx`` (libNVVM, no GPU
or driver needed) at compute capability 9.0, with every production configuration of the kernel
factories (each GEMM tile of ``FMA_SHARE``, 256-thread reductions), and prints one line per
problem: a compile error, or a float32 kernel whose PTX holds float64 instructions. Exit status:
0 when all compiled cleanly, 1 on a problem, 77 when libNVVM or NVRTC is not installed
(``python tests/cuda_ptx.py --probe`` checks only that: 0 or 77).
It must run without the CUDA simulator (``NUMBA_ENABLE_CUDASIM`` unset).
"""

import json
import re
import sys

SKIP = 77


def _numba_type(text):
    """``"array(float32, 1d, C)"`` or ``"int64"`` as a Numba type."""
    from numba import types

    if text.startswith("array("):
        dtype, ndim, layout = text[len("array(") : -1].split(", ")
        return types.Array(getattr(types, dtype), int(ndim[0]), layout)
    return getattr(types, text)


def _kernels(qualname, dtype):
    """``{configuration: dispatcher}`` of the production kernels behind ``qualname``."""
    from fastdnn.kernels.cuda import activations, batches, dense, layers, losses, optimizers

    name = qualname.rsplit(".", 1)[-1]
    if qualname.startswith("gemm_kernels."):
        return {
            t: getattr(dense.gemm_kernels(dtype, dense.TILES[t]), name) for t in dense.FMA_SHARE
        }
    if qualname.startswith("loss_kernels."):
        return {"256 threads": getattr(losses.loss_kernels(dtype, 256), name)}
    if qualname.startswith("param_kernels."):
        return {"256 threads": getattr(optimizers.param_kernels(dtype, 256), name)}
    for module in (activations, batches, layers, optimizers):
        if hasattr(module, name):
            return {"": getattr(module, name)}
    raise LookupError(f"no CUDA kernel named {qualname}")


def _float_dtype(arg_types):
    floats = {t for t in arg_types if "float" in t}
    return "float64" if any("float64" in t for t in floats) else "float32"


def main(path):
    from fastdnn.engines.cuda import ptx_compiler_problem

    problem = ptx_compiler_problem()
    if problem is not None:
        print(f"no PTX compilation here: {problem}")
        return SKIP
    if path == "--probe":
        return 0
    from numba import cuda

    problems = []
    compiled = 0
    for _module, qualname, arg_types in json.load(open(path)):
        dtype = _float_dtype(arg_types)
        signature = tuple(_numba_type(t) for t in arg_types)
        for config, kernel in _kernels(qualname, dtype).items():
            where = f"{qualname} ({dtype}{', ' + config if config else ''})"
            try:
                ptx, _ = cuda.compile_ptx(
                    kernel.py_func, signature, cc=(9, 0),
                    launch_bounds=kernel.targetoptions.get("launch_bounds"),
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - reported, with the kernel named
                problems.append(f"{where}: {type(exc).__name__}: {exc}")
                continue
            compiled += 1
            if dtype == "float32":
                f64 = [line.strip() for line in ptx.splitlines() if re.search(r"\.f64\b", line)]
                if f64:
                    problems.append(f"{where}: float64 instructions in a float32 kernel: {f64[:3]}")
    print(f"compiled {compiled} kernels")
    for line in problems:
        print(f"PROBLEM {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
