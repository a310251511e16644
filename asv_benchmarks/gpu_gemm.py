"""Every CUDA GEMM tile on every product of a training step, against PyTorch's matmul.

Run ``python -m asv_benchmarks.gpu_gemm [--workloads M,L] [--repeats 20]`` on a machine with a
GPU. For each layer of each workload at its batch size it times the three dense-layer kernels
(forward, weight gradient with the bias column, input gradient) with each production tile of
``fastdnn.kernels.cuda.dense.TILES``, and the same product through ``torch.matmul`` on the GPU
where PyTorch has CUDA. Prints a Markdown table of GFLOP/s per product: the tile that
``choose_tile`` picks is marked ``*``, the fastest is named in the last column. One run shows
whether the static choice holds on this GPU; fix ``FMA_SHARE`` or the tiles when it does not.

Every timed result is also checked against NumPy; a wrong one is reported and the exit status
is 1. Without a usable GPU it says why and exits 0. ``--simulate`` runs it under the CUDA simulator
on tiny shapes (a smoke test of the code path; its times mean nothing).
"""

import argparse
import sys
import time

import numpy as np

from fastdnn.kernels.cpu.activations import RELU

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--workloads", default="M,L")
PARSER.add_argument("--repeats", type=int, default=20, help="timed launches per kernel")
PARSER.add_argument("--simulate", action="store_true", help="tiny shapes on the CUDA simulator")


def products(sizes, batch):
    """``(kernel, layer, m, n, k)`` of one training step: the output is m x n, k the depth."""
    out = []
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        out.append(("forward", layer, batch, n_out, n_in))
        out.append(("weight_grad", layer, n_out, n_in + 1, batch))
        if layer > 0:
            out.append(("input_grad", layer, batch, n_in, n_out))
    return out


def _time_launches(cuda, launch, repeats):
    """Seconds per launch of ``repeats`` back-to-back launches after one, timed like
    :func:`torch_seconds` (wall clock between device synchronisations)."""
    launch()
    cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        launch()
    cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def fastdnn_seconds(cuda, dense, kernel, m, n, k, tile, repeats, rng):
    """Seconds per launch of ``kernel`` for an m x n output of depth k with ``tile``, and the
    largest error of its result against NumPy relative to the result's largest magnitude
    (ReLU and its derivative in the epilogues; random data in [0, 1))."""
    launcher = getattr(dense.gemm_kernels("float32", tile), kernel)[
        dense.grid(tile, m, n), dense.threads_per_block(tile)
    ]
    f32 = np.float32
    if kernel == "forward":  # rows=m, n_out=n, n_in=k
        X, P = rng.random((m, k), dtype=f32), rng.random(n * k + n, dtype=f32)
        W, b = P[: n * k].reshape(n, k).astype(np.float64), P[n * k :]
        expected = X.astype(np.float64) @ W.T + b
        out = cuda.device_array(m * n, f32)
        args = (cuda.to_device(X.ravel()), 0, cuda.to_device(P), 0, n * k, out, 0,
                cuda.device_array(m * n, f32), 0, m, k, n, RELU, 1)  # fmt: skip
    elif kernel == "weight_grad":  # n_out=m, n_in=n-1, rows=k: [dW | db]
        D, A_prev = rng.random((k, m), dtype=f32), rng.random((k, n - 1), dtype=f32)
        dW = D.T.astype(np.float64) @ A_prev
        expected = np.concatenate([dW.ravel(), D.sum(axis=0, dtype=np.float64)])
        out = cuda.device_array(m * n, f32)
        args = (cuda.to_device(D.ravel()), 0, cuda.to_device(A_prev.ravel()), 0, out, 0,
                m * (n - 1), k, n - 1, m)  # fmt: skip
    else:  # rows=m, n_in=n, n_out=k
        D, W = rng.random((m, k), dtype=f32), rng.random((k, n), dtype=f32)
        Z_prev = rng.random((m, n), dtype=f32) - f32(0.5)
        expected = (D.astype(np.float64) @ W) * (Z_prev > 0)
        out = cuda.device_array(m * n, f32)
        d_Z = cuda.to_device(Z_prev.ravel())
        args = (cuda.to_device(D.ravel()), 0, cuda.to_device(W.ravel()), 0, out, 0, d_Z, d_Z,
                m, n, k, RELU)  # fmt: skip
    seconds = _time_launches(cuda, lambda: launcher(*args), repeats)
    result = out.copy_to_host().astype(np.float64).ravel()
    expected = np.asarray(expected).ravel()
    error = np.abs(result - expected).max() / max(np.abs(expected).max(), 1e-30)
    return seconds, error


def torch_operands(torch, kernel, m, n, k, device):
    """The two ``torch.matmul`` operands of a product, laid out as fastdnn's kernel reads them:
    ``X @ W.T`` (forward), ``D.T @ A_prev`` (weight gradient), ``D @ W`` (input gradient)."""
    if kernel == "forward":
        return torch.rand(m, k, device=device), torch.rand(n, k, device=device).t()
    if kernel == "weight_grad":
        return torch.rand(k, m, device=device).t(), torch.rand(k, n, device=device)
    return torch.rand(m, k, device=device), torch.rand(k, n, device=device)


def torch_seconds(kernel, m, n, k, repeats, device="cuda"):
    """Seconds per ``torch.matmul`` of the same product on ``device``, or None where PyTorch
    or the device is missing (``device="cpu"`` for a check of this function without a GPU)."""
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    a, b = torch_operands(torch, kernel, m, n, k, device)
    if torch.matmul(a, b).shape != (m, n):
        raise AssertionError(f"{kernel}: torch product is not {m} x {n}")
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    synchronize()
    return (time.perf_counter() - start) / repeats


def main(argv=None):
    """Run the sweep and print its table; returns the exit status (1 on a wrong result)."""
    args = PARSER.parse_args(argv)
    if args.simulate:
        from fastdnn.engines.cuda import simulator_enabled

        if not simulator_enabled():
            print("--simulate needs NUMBA_ENABLE_CUDASIM=1 in the environment")
            return 2
    else:
        from .peers import gpu_problem

        problem = gpu_problem()
        if problem is not None:
            print(f"No GPU GEMM comparison: {problem}")
            return 0
    from fastdnn.engines.cuda import cuda
    from fastdnn.kernels.cuda import dense

    from .workloads import WORKLOADS

    if args.simulate:
        device, n_sm, tiles = "the CUDA simulator", 2, {"tiny": dense.TILES["tiny"]}
        shapes = {"tiny": ((12, 9, 5), 6)}
    else:
        gpu = cuda.get_current_device()
        device, n_sm = (
            gpu.name.decode() if isinstance(gpu.name, bytes) else gpu.name,
            gpu.MULTIPROCESSOR_COUNT,
        )
        tiles = {name: dense.TILES[name] for name in dense.FMA_SHARE}
        shapes = {name: (WORKLOADS[name].sizes, WORKLOADS[name].batch_size)
                  for name in args.workloads.split(",")}  # fmt: skip
    rng = np.random.default_rng(0)
    wrong = []
    print(f"{device}, {n_sm} multiprocessors; GFLOP/s per product\n")
    names = list(tiles)
    print("| workload | kernel | layer | m x n x k | " + " | ".join(names) + " | torch | best |")
    print("|---" * (len(names) + 6) + "|")
    for wname, (sizes, batch) in shapes.items():
        for kernel, layer, m, n, k in products(sizes, batch):
            flops = 2.0 * m * n * k
            chosen = dense.choose_tile(m, n, n_sm)
            rates = {}
            for name, tile in tiles.items():
                seconds, error = fastdnn_seconds(
                    cuda, dense, kernel, m, n, k, tile, args.repeats, rng
                )
                rates[name] = flops / seconds / 1e9
                if error > 1e-4:
                    wrong.append(f"{wname} {kernel} {layer} {name}: relative error {error:.1e}")
            torch_s = None if args.simulate else torch_seconds(kernel, m, n, k, args.repeats)
            cells = [f"{rates[name]:,.0f}{'*' if tiles[name] == chosen else ''}" for name in names]
            torch_cell = "-" if torch_s is None else f"{flops / torch_s / 1e9:,.0f}"
            best = max(rates, key=rates.get)
            print(f"| {wname} | {kernel} | {layer} | {m} x {n} x {k} | " + " | ".join(cells)
                  + f" | {torch_cell} | {best} |")  # fmt: skip
    for line in wrong:
        print(f"WRONG RESULT: {line}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
