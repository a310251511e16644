"""Scaling of data-parallel training from 1 to 2 MPI ranks (one BLAS thread per rank).

Run ``python -m asv_benchmarks.mpi_scaling``. It launches ``mpiexec -n 1`` and ``mpiexec -n 2``
on workload M (784-512-256-10, ReLU, softmax cross-entropy, Adam) with a global batch of 128
(64 per rank with two ranks), and prints samples/s, the speed-up, and the share of each step
spent in the gradient ``Allreduce``.
"""

import json
import os
import subprocess
import sys
import time

GLOBAL_BATCH = 128
N_SAMPLES = 16384


def worker():
    """One rank's part: train two epochs on its shard, report the second from rank 0."""
    import numpy as np

    import fastdnn as fd
    from fastdnn.engines.mpi import communicator

    comm = communicator()
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    rng = np.random.default_rng(0)
    X = rng.random((N_SAMPLES, 784), dtype=np.float32)
    y = rng.integers(0, 10, N_SAMPLES)
    model = fd.Sequential(
        [
            fd.Dense(784, 512, activation="relu"),
            fd.Dense(512, 256, activation="relu"),
            fd.Dense(256, 10, activation="softmax"),
        ],
        seed=0,
    )
    model.compile("cross_entropy", fd.Adam(1e-3))
    shard = slice(rank, None, size)
    history = model.fit(
        X[shard], y[shard], epochs=3, batch_size=GLOBAL_BATCH // size, verbose=0,
        distributed=True,
    )  # fmt: skip
    seconds = min(history.epoch_seconds[1:])
    comm_share = history.comm_seconds[1] / history.epoch_seconds[1]
    if rank == 0:
        print(json.dumps({"ranks": size, "samples_per_s": N_SAMPLES / seconds, "comm": comm_share}))


def main():
    """Launch 1 and 2 ranks and print the comparison."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = {}
    for ranks in (1, 2):
        command = ["mpiexec", "-n", str(ranks), sys.executable, "-m", __spec__.name, "--worker"]
        started = time.perf_counter()
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        results[ranks] = json.loads(out.stdout.strip().splitlines()[-1])
        results[ranks]["wall"] = time.perf_counter() - started
    one = results[1]["samples_per_s"]
    two = results[2]["samples_per_s"]
    print("| ranks | samples/s | speed-up | Allreduce share of an epoch |")
    print("|---|---|---|---|")
    for ranks, result in results.items():
        print(
            f"| {ranks} | {result['samples_per_s']:,.0f} | "
            f"{result['samples_per_s'] / one:.2f}x | {result['comm']:.1%} |"
        )
    print(f"\nworkload M, global batch {GLOBAL_BATCH}, one BLAS thread per rank")
    print(f"2 ranks / 1 rank: {two / one:.2f}x")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker()
    else:
        main()
