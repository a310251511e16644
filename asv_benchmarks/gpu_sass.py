"""Static figures of the CUDA GEMM kernels from their sm_90 machine code, without a GPU.

Run ``python -m asv_benchmarks.gpu_sass`` where libNVVM, NVRTC, ``ptxas`` and ``cuobjdump`` are
installed (the CUDA toolkit, or the pip wheels ``cuda-toolkit[nvvm,nvcc,nvrtc,cuobjdump]``
with their ``bin`` on ``PATH``); no GPU or driver is needed, and the CUDA simulator must be off.
For each production tile and each float32 GEMM kernel it compiles the kernel to PTX
(Numba/NVVM, with its launch bounds), assembles it with ``ptxas -v`` and disassembles it with
``cuobjdump -sass``, then prints registers, spills and shared memory, and the share of FMAs
among the instructions of one K step: the multiply loop (the innermost loop with FMAs) run
``BK / (FMAs per iteration / (TM * TN))`` times plus the rest of the K loop around it. This is
where ``kernels/cuda/dense.py``'s ``FMA_SHARE`` comes from; a static count, not a timing.

Without the tools it says what is missing and exits 0.
"""

import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SIGNATURES = {  # argument types of each kernel, as the engine launches it (float32)
    "forward": "a i a i i a i a i i i i i i",
    "weight_grad": "a i a i a i i i i i",
    "input_grad": "a i a i a i a a i i i i",
}
TOOLS = ("ptxas", "cuobjdump")


def sass_instructions(cubin):
    """``[(address, instruction text)]`` of a cubin's machine code."""
    text = subprocess.run(
        ["cuobjdump", "-sass", str(cubin)], capture_output=True, text=True, check=True
    ).stdout
    instructions = []
    for line in text.splitlines():
        match = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if match:
            instructions.append((int(match.group(1), 16), match.group(2).strip()))
    return instructions


def loops(instructions):
    """Every loop (a backward branch) as ``(instruction count, opcode counts)``."""
    found = []
    for address, text in instructions:
        match = re.search(r"BRA (?:`\(\.L_x_\d+\) )?0x([0-9a-f]+)", text)
        if match and int(match.group(1), 16) < address:
            start = int(match.group(1), 16)
            body = [t for a, t in instructions if start <= a <= address]
            ops = collections.Counter(
                re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0] for t in body
            )
            found.append((len(body), ops))
    return found


def k_step_fma_share(instructions, tile):
    """FMAs over all instructions of one K step (see the module docstring)."""
    _, _, bk, tm, tn = tile
    with_shared_loads = sorted(
        (n, ops) for n, ops in loops(instructions) if ops.get("FFMA", 0) and ops.get("LDS", 0)
    )
    (inner_n, inner_ops), (outer_n, _) = with_shared_loads[0], with_shared_loads[1]
    steps_per_iteration = inner_ops["FFMA"] // (tm * tn)
    per_k_step = inner_n * (bk // steps_per_iteration) + (outer_n - inner_n)
    return tm * tn * bk / per_k_step


def toolchain_problem():
    """What is missing for this script, or None."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not on PATH"
    from fastdnn.engines.cuda import ptx_compiler_problem

    return ptx_compiler_problem()


def main():
    """Print the table; returns the exit status."""
    problem = toolchain_problem()
    if problem is not None:
        print(f"No SASS figures: {problem}")
        return 0
    import numba
    from numba import cuda, types

    from fastdnn.kernels.cuda import dense

    codes = {"a": numba.float32[::1], "i": types.int64}
    print("| tile | kernel | FMA share of a K step | registers | spill bytes | shared bytes |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in dense.FMA_SHARE:
            tile = dense.TILES[name]
            kernels = dense.gemm_kernels("float32", tile)
            for kernel_name, signature in SIGNATURES.items():
                kernel = getattr(kernels, kernel_name)
                ptx, _ = cuda.compile_ptx(
                    kernel.py_func, tuple(codes[c] for c in signature.split()), cc=(9, 0),
                    launch_bounds=kernel.targetoptions.get("launch_bounds"),
                )  # fmt: skip
                ptx_path, cubin = Path(tmp, "k.ptx"), Path(tmp, "k.cubin")
                ptx_path.write_text(ptx)
                log = subprocess.run(
                    ["ptxas", "-v", "--gpu-name", "sm_90", str(ptx_path), "-o", str(cubin)],
                    capture_output=True, text=True, check=True,
                ).stderr  # fmt: skip
                registers = re.search(r"Used (\d+) registers", log).group(1)
                spills = sum(int(v) for v in re.findall(r"(\d+) bytes spill", log))
                shared = re.search(r"(\d+) bytes smem", log)
                share = k_step_fma_share(sass_instructions(cubin), tile)
                print(
                    f"| {name} | {kernel_name} | {share:.0%} | {registers} | {spills} | "
                    f"{shared.group(1) if shared else 0} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
