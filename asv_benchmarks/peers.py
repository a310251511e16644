"""fastdnn against PyTorch, JAX and plain NumPy on the performance issue's workloads.

Run ``python -m asv_benchmarks.peers [--workloads S,M,MD,L,AE,INF] [--repeats 4] [--threads 2]``.
With ``--device cuda`` it compares fastdnn's CUDA device with PyTorch on the GPU instead (run it
with ``--workloads M,L`` where a CUDA GPU is present; data resident on the device for both,
eight times the CPU data sizes, fastdnn's epochs those of one long ``fit``).

Every library trains the same network on the same synthetic data, in this one process, with the
same thread count (``torch.set_num_threads``, threadpoolctl for NumPy/SciPy BLAS, XLA flags for
JAX) and a fresh shuffle every epoch. Epochs are interleaved across libraries (A B C A B C ...)
so that host noise hits all alike, each after ``--settle`` idle seconds so that the previous
library's thread pools have stopped spinning; the first epoch of each library (compilation,
warm-up) is not counted. Prints a Markdown table per workload: median samples/s (and the
range), GFLOP/s, the fraction of the sgemm ceiling (NumPy's sgemm rate measured in the same
run, divided by the FLOPs per sample) and fastdnn's ratio to each library. Missing libraries
are reported as such. The MD table also times fastdnn on M's network in the same rounds, and
prints what BatchNorm and Dropout cost an epoch.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--workloads", default="S,M,MD,L,AE,INF")
PARSER.add_argument("--repeats", type=int, default=4, help="timed epochs per library")
PARSER.add_argument("--threads", type=int, default=2)
PARSER.add_argument(
    "--libraries", default="all", help="comma-separated subset of: fastdnn,torch,jit,scan,numpy"
)
PARSER.add_argument("--quick", action="store_true", help="1/8 of the data, 2 repeats")
PARSER.add_argument(
    "--settle",
    type=float,
    default=0.3,
    help="seconds of idle before each timed epoch, so the previous library's pools sleep",
)
PARSER.add_argument(
    "--device", choices=("cpu", "cuda"), default="cpu", help="cuda: fastdnn and PyTorch on the GPU"
)


def _configure_threads(threads):
    # Must happen before NumPy, JAX and PyTorch start their thread pools. Pinning the process
    # to ``threads`` cores bounds every pool, whatever its own settings (XLA's CPU backend has
    # no reliable thread-count flag); threads created later inherit the affinity.
    if hasattr(os, "sched_setaffinity") and threads < len(os.sched_getaffinity(0)):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    # XLA's CPU backend has no thread-count flag: its Eigen pool uses every core (2 here), and
    # one thread is had only by turning the multi-threaded Eigen path off.
    if threads == 1:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
    # Every pool keeps its own idle policy: the ``--settle`` pause, not OMP_WAIT_POLICY=PASSIVE,
    # keeps one library's spinning workers off the next library's epoch. PASSIVE made OpenMP
    # workers sleep between any two calls; MKL's then woke up for every GEMM (fastdnn on MKL,
    # workload M: 2.3 ms per step, 1.6 ms with the workers kept awake).


# ----------------------------------------------------------------------------- libraries
class FastDNN:
    """fastdnn's own ``fit``, one epoch per call (Python overhead included)."""

    name = "fastdnn"
    device = "cpu"

    def __init__(self, workload, X, y):
        self.w, self.X, self.y = workload, X, y
        self.model = workload.fastdnn_model(device=self.device)

    def epoch(self):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.w.batch_size, verbose=0)

    def infer(self, batch):
        import numpy as np

        return np.argmax(self.model.predict(self.X, batch_size=batch), axis=1)


class FastDNNPlain(FastDNN):
    """fastdnn on the regularised workload's network without its BatchNorm and Dropout (M),
    timed in the same interleaved rounds: the new layers' cost, free of the host's drift."""

    name = "fastdnn, M's network"

    def __init__(self, workload, X, y):
        import dataclasses

        super().__init__(dataclasses.replace(workload, regularised=False), X, y)


class TorchEager:
    """PyTorch eager mode: ``nn.Sequential``, ``torch.optim``, a ``randperm`` every epoch."""

    name = "PyTorch eager"
    device = "cpu"

    def __init__(self, workload, X, y):
        import torch

        from .workloads import DROPOUT

        self.torch, self.w = torch, workload
        layers = []
        n = len(workload.sizes) - 1
        for i in range(n):
            layers.append(torch.nn.Linear(workload.sizes[i], workload.sizes[i + 1]))
            if i < n - 1 and workload.regularised:
                layers.append(torch.nn.BatchNorm1d(workload.sizes[i + 1]))
            if i < n - 1:
                layers.append(torch.nn.ReLU())
            if i < n - 1 and workload.regularised:
                layers.append(torch.nn.Dropout(DROPOUT))
        if workload.output == "sigmoid":
            layers.append(torch.nn.Sigmoid())
        self.net = torch.nn.Sequential(*layers).to(self.device)
        opt, kwargs = workload.optimizer_hyper()
        params = self.net.parameters()
        self.opt = (
            torch.optim.SGD(params, **kwargs)
            if opt == "sgd"
            else torch.optim.Adam(params, **kwargs)
        )
        self.loss = torch.nn.MSELoss() if workload.loss == "mse" else torch.nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X).to(self.device)
        targets = y if workload.loss == "mse" else y.astype("int64")
        self.y = torch.from_numpy(targets).to(self.device)

    def _synchronize(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def epoch(self):
        torch, b = self.torch, self.w.batch_size
        self.net.train()
        perm = torch.randperm(self.X.shape[0], device=self.device)
        for start in range(0, self.X.shape[0], b):
            idx = perm[start : start + b]
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.net(self.X[idx]), self.y[idx]).backward()
            self.opt.step()
        self._synchronize()

    def infer(self, batch):
        self.net.eval()
        with self.torch.no_grad():
            out = [self.net(self.X[s : s + batch]).argmax(1) for s in range(0, len(self.X), batch)]
        self._synchronize()
        return out


class _Jax:
    """Shared JAX model: parameters, loss and an optax optimizer.

    A training step maps ``carry = (params, optimizer state, running statistics, key)`` to the
    next; the regularised workload (MD) normalises with the batch statistics, moves the
    running ones (``torch.nn.BatchNorm1d``'s rule) and draws its dropout masks from ``key``.
    """

    def __init__(self, workload, X, y):
        import jax
        import jax.numpy as jnp
        import numpy as np
        import optax

        from .workloads import DROPOUT

        self.jax, self.jnp, self.w = jax, jnp, workload
        rng = np.random.default_rng(0)
        self.params = [
            (jnp.asarray(rng.uniform(-0.05, 0.05, (o, i)).astype("float32")), jnp.zeros(o))
            for i, o in zip(workload.sizes[:-1], workload.sizes[1:])
        ]
        hidden = workload.sizes[1:-1] if workload.regularised else ()
        norms = [(jnp.ones(n), jnp.zeros(n)) for n in hidden]
        stats = [(jnp.zeros(n), jnp.ones(n)) for n in hidden]
        opt, kwargs = workload.optimizer_hyper()
        self.tx = (
            optax.sgd(kwargs["lr"], momentum=kwargs["momentum"])
            if opt == "sgd"
            else optax.adam(kwargs["lr"])
        )
        trainable = (self.params, norms)
        self.X = jnp.asarray(X)
        self.y = jnp.asarray(y if workload.loss == "mse" else y.astype("int32"))
        self.key = jax.random.PRNGKey(0)
        self.carry = (trainable, self.tx.init(trainable), stats, jax.random.PRNGKey(1))

        def forward(params, x):
            for k, (W, b) in enumerate(params):
                x = x @ W.T + b
                if k < len(params) - 1:
                    x = jax.nn.relu(x)
            return x

        def train_forward(trainable, stats, key, x):
            params, norms = trainable
            new_stats = []
            for k, (W, b) in enumerate(params):
                x = x @ W.T + b
                if k == len(params) - 1:
                    break
                if workload.regularised:
                    (gamma, beta), (r_mean, r_var) = norms[k], stats[k]
                    mean, var = x.mean(0), x.var(0)
                    x = gamma * (x - mean) * jax.lax.rsqrt(var + 1e-5) + beta
                    unbiased = var * (x.shape[0] / (x.shape[0] - 1))
                    new_stats.append((0.9 * r_mean + 0.1 * mean, 0.9 * r_var + 0.1 * unbiased))
                x = jax.nn.relu(x)
                if workload.regularised:
                    key, sub = jax.random.split(key)
                    keep = jax.random.bernoulli(sub, 1.0 - DROPOUT, x.shape)
                    x = jnp.where(keep, x / (1.0 - DROPOUT), 0.0)
            return x, new_stats

        def loss(trainable, stats, key, x, t):
            z, new_stats = train_forward(trainable, stats, key, x)
            if workload.loss == "mse":
                value = jnp.mean((jax.nn.sigmoid(z) - t) ** 2)
            else:
                value = optax.softmax_cross_entropy_with_integer_labels(z, t).mean()
            return value, new_stats

        def step(carry, x, t):
            trainable, state, stats, key = carry
            key, sub = jax.random.split(key)
            grads, new_stats = jax.grad(loss, has_aux=True)(trainable, stats, sub, x, t)
            updates, state = self.tx.update(grads, state, trainable)
            return optax.apply_updates(trainable, updates), state, new_stats, key

        self.forward, self.step = forward, step

    def _perm(self):
        self.key, sub = self.jax.random.split(self.key)
        return self.jax.random.permutation(sub, self.X.shape[0])

    def infer(self, batch):
        if not hasattr(self, "_predict"):
            self._predict = self.jax.jit(lambda p, x: self.jnp.argmax(self.forward(p, x), 1))
        params = self.carry[0][0]
        out = [self._predict(params, self.X[s : s + batch]) for s in range(0, len(self.X), batch)]
        return [o.block_until_ready() for o in out]


class JaxJitStep(_Jax):
    """JAX with a jitted training step, called from a Python loop over batches."""

    name = "JAX jit step"

    def __init__(self, workload, X, y):
        super().__init__(workload, X, y)
        X_all, y_all = self.X, self.y

        def batch_step(carry, idx):
            return self.step(carry, X_all[idx], y_all[idx])

        self.jit_step = self.jax.jit(batch_step)

    def epoch(self):
        perm, b = self._perm(), self.w.batch_size
        carry = self.carry
        for start in range(0, self.X.shape[0], b):
            carry = self.jit_step(carry, perm[start : start + b])
        self.carry = self.jax.block_until_ready(carry)


class JaxScanEpoch(_Jax):
    """JAX with the whole epoch compiled (``lax.scan`` over the batches)."""

    name = "JAX scan epoch"

    def __init__(self, workload, X, y):
        super().__init__(workload, X, y)
        jax, b = self.jax, workload.batch_size
        X_all, y_all = self.X, self.y

        def epoch(carry, perm):
            batches = perm[: (perm.shape[0] // b) * b].reshape(-1, b)

            def body(carry, idx):
                return self.step(carry, X_all[idx], y_all[idx]), None

            return jax.lax.scan(body, carry, batches)[0]

        self.jit_epoch = jax.jit(epoch)

    def epoch(self):
        self.carry = self.jax.block_until_ready(self.jit_epoch(self.carry, self._perm()))


class NumpyByHand:
    """A plain NumPy MLP: matmuls, the same fused formulas, Adam/SGD over arrays (dense
    layers only: not for the regularised workload)."""

    name = "NumPy by hand"
    regularised = False

    def __init__(self, workload, X, y):
        import numpy as np

        self.np, self.w, self.X, self.y = np, workload, X, y
        rng = np.random.default_rng(0)
        self.params = [
            [rng.uniform(-0.05, 0.05, (o, i)).astype(np.float32), np.zeros(o, np.float32)]
            for i, o in zip(workload.sizes[:-1], workload.sizes[1:])
        ]
        self.m = [[np.zeros_like(a) for a in p] for p in self.params]
        self.v = [[np.zeros_like(a) for a in p] for p in self.params]
        self.t = 0
        self.opt, self.kwargs = workload.optimizer_hyper()
        self.rng = rng

    def _forward(self, x):
        np, acts = self.np, [x]
        for k, (W, b) in enumerate(self.params):
            z = acts[-1] @ W.T + b
            if k < len(self.params) - 1:
                z = np.maximum(z, 0, out=z)
            acts.append(z)
        return acts

    def epoch(self):
        np, b = self.np, self.w.batch_size
        perm = self.rng.permutation(self.X.shape[0])
        for start in range(0, self.X.shape[0], b):
            idx = perm[start : start + b]
            x, t = self.X[idx], self.y[idx]
            acts = self._forward(x)
            z = acts[-1]
            if self.w.loss == "mse":
                a = 1 / (1 + np.exp(-z))
                delta = 2 * (a - t) * a * (1 - a) / a.size
            else:
                e = np.exp(z - z.max(1, keepdims=True))
                delta = e / e.sum(1, keepdims=True)
                delta[np.arange(len(t)), t] -= 1
                delta /= len(t)
            self.t += 1
            for k in range(len(self.params) - 1, -1, -1):
                W = self.params[k][0]
                grads = (delta.T @ acts[k], delta.sum(0))
                if k > 0:
                    delta = (delta @ W) * (acts[k] > 0)
                self._update(k, grads)

    def _update(self, k, grads):
        np, kw = self.np, self.kwargs
        for j, g in enumerate(grads):
            p = self.params[k][j]
            if self.opt == "sgd":
                m = self.m[k][j]
                m *= kw["momentum"]
                m += g
                p -= kw["lr"] * m
            else:
                m, v = self.m[k][j], self.v[k][j]
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                step = kw["lr"] / (1 - 0.9**self.t)
                p -= step * m / (np.sqrt(v / (1 - 0.999**self.t)) + 1e-8)

    def infer(self, batch):
        return [
            self._forward(self.X[s : s + batch])[-1].argmax(1) for s in range(0, len(self.X), batch)
        ]


class FastDNNCuda(FastDNN):
    """fastdnn with ``device="cuda"``: data, parameters and optimizer state on the GPU.

    One call is one epoch of a long ``fit``: the device work ``fit`` does per epoch (the
    divergence snapshot, the epoch, the parameter statistics) on a training run set up once.
    A ``fit(epochs=1)`` per call, as on the CPU, would also copy the whole data set to the
    device and build the engine every epoch, which a GPU epoch of these sizes (a few ms) does
    not hide and which PyTorch, its data resident, does not pay either.
    """

    device = "cuda"

    def __init__(self, workload, X, y):
        import numpy as np

        from fastdnn.engines.cuda import EpochRunner

        super().__init__(workload, X, y)
        X, Y, weight = self.model._data(X, y)
        self.runner = EpochRunner(self.model, X, Y, weight, workload.batch_size)
        self.rng = np.random.default_rng(0)
        self.n = X.shape[0]

    def epoch(self):
        model, runner = self.model, self.runner
        runner.snapshot()
        runner.train(self.rng.permutation(self.n), model.optimizer.hyperparameters(model.dtype))
        runner.params_finite()
        runner.penalty()


class TorchCuda(TorchEager):
    """PyTorch eager on the GPU, data resident on the device."""

    name = "PyTorch CUDA"
    device = "cuda"


def _torch_has_cuda():
    import torch

    return torch.cuda.is_available()


def gpu_problem():
    """Why the GPU comparison cannot run here, or None when it can."""
    from fastdnn.engines.cuda import cuda_problem, gpu_available

    if not gpu_available():
        return cuda_problem() or "the CUDA simulator is on"
    return None


LIBRARIES = [FastDNN, TorchEager, JaxJitStep, JaxScanEpoch, NumpyByHand]
GPU_LIBRARIES = [FastDNNCuda, TorchCuda]
SHORT_NAMES = dict(zip(["fastdnn", "torch", "jit", "scan", "numpy"], LIBRARIES))
REQUIRES = {TorchEager: "torch", TorchCuda: "torch", JaxJitStep: "jax", JaxScanEpoch: "jax"}


# ----------------------------------------------------------------------------- measurement
def sgemm_gflops(threads):
    """NumPy's float32 GEMM rate at 1024^3 (the 'ceiling')."""
    import numpy as np

    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(5):
            a @ a
        best = min(best, (time.perf_counter() - start) / 5)
    return 2 * 1024**3 / best / 1e9


def measure(workload_name, repeats, scale, threads, libraries=LIBRARIES, settle=0.0):
    """Samples/s per library for one workload, epochs interleaved; returns a dict of lists.

    ``settle`` seconds pass idle before each epoch: a BLAS pool spins for a while after its
    last call (OpenBLAS about 0.1 s), and in one process the previous library's spinning
    workers took a core from the next library (with NumPy in the run, fastdnn's inference
    fell from 200k to 120k samples/s and NumPy's from 190k to 125k).
    """
    import importlib.util

    from .workloads import INFERENCE, INFERENCE_BATCH, WORKLOADS

    inference = workload_name == "INF"
    workload = INFERENCE if inference else WORKLOADS[workload_name]
    n = max(workload.batch_size, int(workload.n_samples * scale))
    n -= n % workload.batch_size
    if inference:
        n = 4 * INFERENCE_BATCH
    X, y = workload.data(n=n)
    runners, rates = [], {}
    if workload.regularised and FastDNN in libraries:
        libraries = [FastDNN, FastDNNPlain, *(c for c in libraries if c is not FastDNN)]
    for cls in libraries:
        if inference and cls is JaxScanEpoch:
            continue
        module = REQUIRES.get(cls)
        if (
            (module and importlib.util.find_spec(module) is None)
            or (cls is TorchCuda and not _torch_has_cuda())
            or (workload.regularised and not getattr(cls, "regularised", True))
        ):
            rates[cls.name] = None
            continue
        runners.append(cls(workload, X, y))
        rates[cls.name] = []
    if any(isinstance(r, TorchEager) for r in runners):
        import torch

        torch.set_num_threads(threads)
    for repeat in range(repeats + 1):  # the first round warms up (compiles)
        for runner in runners:
            time.sleep(settle)
            start = time.perf_counter()
            runner.infer(INFERENCE_BATCH) if inference else runner.epoch()
            seconds = time.perf_counter() - start
            if repeat:
                rates[runner.name].append(n / seconds)
    return workload, rates


def table(workload_name, workload, rates, ceiling):
    """A Markdown table of one workload's results."""
    flops = (2 if workload_name == "INF" else 6) * workload.weights
    lines = [
        f"\n### {workload_name}: {'-'.join(map(str, workload.sizes))}, "
        + ("forward + argmax, batches of 4096" if workload_name == "INF" else
           f"{workload.optimizer}, batch {workload.batch_size}"),
        "",
        "| library | samples/s (median) | range | GFLOP/s | of ceiling | fastdnn / library |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    ours = statistics.median(rates["fastdnn"])
    for name, values in rates.items():
        if values is None:
            lines.append(f"| {name} | not available | | | | |")
            continue
        median = statistics.median(values)
        of_ceiling = f"{median * flops / 1e9 / ceiling:.0%}" if ceiling else "-"
        lines.append(
            f"| {name} | {median:,.0f} | {min(values):,.0f}-{max(values):,.0f} | "
            f"{median * flops / 1e9:.1f} | {of_ceiling} | {ours / median:.2f}x |"
        )
    if ceiling:
        lines.append(f"\nceiling: {ceiling / flops * 1e9:,.0f} samples/s")
    return "\n".join(lines)


OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_report():
    """Lines naming each BLAS loaded in this process (threadpoolctl): library, version and the
    CPU kernel it runs, and a warning for each OpenBLAS override set in the environment (on
    these machines they hold a current OpenBLAS to its AVX2 kernels, handicapping every BLAS
    user against JAX, whose GEMMs they do not touch)."""
    from threadpoolctl import threadpool_info

    lines = []
    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        kernel = info.get("architecture") or "n/a"
        name = os.path.basename(info.get("filepath", "?"))
        lines.append(f"BLAS: {info.get('internal_api')} {info.get('version')} ({name}), "
                     f"kernel {kernel}, {info.get('num_threads')} threads")  # fmt: skip
    for name in OPENBLAS_OVERRIDES:
        if name in os.environ:
            unset = " -u ".join(OPENBLAS_OVERRIDES)
            lines.append(f"WARNING: {name}={os.environ[name]} is set: OpenBLAS may run slower "
                         f"kernels than this CPU has; benchmark with `env -u {unset} python -m "
                         "asv_benchmarks.peers ...`")  # fmt: skip
    return lines


def main(argv=None):
    """Run the comparison and print the tables."""
    args = PARSER.parse_args(argv)
    _configure_threads(args.threads)
    from threadpoolctl import threadpool_limits

    repeats = 2 if args.quick else args.repeats
    scale = 0.125 if args.quick else 1.0
    if args.device == "cuda":
        scale *= 8  # an epoch of the CPU sizes takes a few ms on a GPU: too short to time
    problem = gpu_problem() if args.device == "cuda" else None
    if problem:
        sys.exit(f"--device cuda needs a usable CUDA GPU: {problem}")
    with threadpool_limits(limits=args.threads):
        print(f"## Peer comparison, {date.today()}, {platform.machine()}, "
              f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} cores, "
              f"{args.threads} threads per library, Python {sys.version.split()[0]}")  # fmt: skip
        ceiling = None  # the CPU's sgemm rate says nothing about a GPU
        libraries = GPU_LIBRARIES
        if args.device == "cpu":
            ceiling = sgemm_gflops(args.threads)
            print(f"\nNumPy sgemm (1024^3, float32): {ceiling:.1f} GFLOP/s")
            from fastdnn.kernels.cpu.blas import blas_in_use

            print(f"fastdnn's GEMMs: {blas_in_use()} (FASTDNN_BLAS picks it)")
            for line in blas_report():
                print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout)
            libraries = LIBRARIES
        if args.device == "cpu" and args.libraries != "all":
            libraries = [FastDNN] + [
                SHORT_NAMES[n] for n in args.libraries.split(",") if n != "fastdnn"
            ]
        for name in args.workloads.split(","):
            workload, rates = measure(name, repeats, scale, args.threads, libraries, args.settle)
            print(table(name, workload, rates, ceiling), flush=True)
            plain = rates.get(FastDNNPlain.name)
            if plain:
                cost = statistics.median(plain) / statistics.median(rates["fastdnn"]) - 1
                print(f"\nfastdnn: an epoch of {name} takes {cost:+.1%} the time of one of its "
                      "network without BatchNorm and Dropout, in the same rounds (target at "
                      "most +15%)")  # fmt: skip


if __name__ == "__main__":
    main()
