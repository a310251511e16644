"""Smoke test of the asv suite: it is well formed, asv can run it, and every benchmark runs.

No timing is asserted: speed is measured by the benchmarks themselves, never by a test.
"""

import importlib
import importlib.util
import inspect
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "bench_kernels",
    "bench_training",
    "bench_inference",
    "bench_memory",
    "bench_decomposition",
    "bench_sklearn",
    "bench_sparse",
]


@pytest.fixture(scope="module")
def asv_env(tmp_path_factory):
    if shutil.which("asv") is None:
        pytest.skip("asv is not installed")
    home = tmp_path_factory.mktemp("home")  # asv's machine file goes to $HOME
    env = dict(os.environ, HOME=str(home), FASTDNN_BENCH_SCALE="0.02")
    subprocess.run(["asv", "machine", "--yes"], cwd=ROOT, env=env, check=True, capture_output=True)
    return env


def test_asv_check(asv_env):
    result = subprocess.run(
        ["asv", "check", "--python=same"], cwd=ROOT, env=asv_env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No problems found" in result.stdout


def test_asv_quick_run_of_one_suite(asv_env):
    result = subprocess.run(
        ["asv", "run", "--python=same", "--quick", "--dry-run", "--show-stderr",
         "--bench", "OptimizerStep"],
        cwd=ROOT, env=asv_env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed" not in result.stdout.lower()
    assert "adamw" in result.stdout


def _cases():
    for module_name in MODULES:
        module = importlib.import_module(f"asv_benchmarks.{module_name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            params = getattr(cls, "params", [])
            if params and not isinstance(params[0], (list, tuple)):
                params = [params]
            for combo in itertools.product(*params) if params else [()]:
                yield pytest.param(cls, combo, id=f"{cls.__name__}{list(combo)}")


@pytest.mark.parametrize("cls, combo", list(_cases()))
def test_every_benchmark_runs_on_tiny_data(monkeypatch, cls, combo):
    monkeypatch.setenv("FASTDNN_BENCH_SCALE", "0.01")
    bench = cls()
    bench.setup(*combo)
    names = [n for n in dir(bench) if n.split("_")[0] in ("time", "track", "peakmem")]
    assert names
    for name in names:
        value = getattr(bench, name)(*combo)
        if name.startswith("track"):
            assert value > 0


def test_mpi_scaling_script_is_importable():
    sys.path.insert(0, str(ROOT))
    module = importlib.import_module("asv_benchmarks.mpi_scaling")
    assert callable(module.main) and callable(module.worker)


def test_startup_script_times_the_asv_start_up_scripts():
    sys.path.insert(0, str(ROOT))
    module = importlib.import_module("asv_benchmarks.startup")
    compile_bench = importlib.import_module("asv_benchmarks.bench_compile")
    assert module.TRAIN_S is compile_bench.TRAIN_S
    assert set(compile_bench.scenarios("m.npz")) == {"fit_s", "load_predict", "sklearn_fit"}
    for name in ("fit_s", "load_predict", "sklearn_fit"):
        for start in ("cold", "warm"):
            assert callable(getattr(compile_bench.StartUp, f"timeraw_{start}_{name}"))
        assert callable(getattr(compile_bench.StartUpPrecompiled, f"timeraw_precompiled_{name}"))
    assert module._seconds("pass", dict(os.environ)) > 0


def test_peer_comparison_prints_a_table_per_workload():
    # In a child process: the script pins its process to the thread count and sets thread
    # variables, which must not leak into the test session.
    result = subprocess.run(
        [sys.executable, "-m", "asv_benchmarks.peers", "--quick", "--workloads", "S,MD,INF",
         "--libraries", "fastdnn,torch,numpy", "--settle", "0", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for heading in ("### S: 64-128-10", "### MD: 784-512-256-10", "### INF: 784-512-256-10"):
        assert heading in result.stdout
    assert result.stdout.count("| fastdnn |") == 3
    assert result.stdout.count("| NumPy by hand |") == 3
    # The regularised workload has no NumPy twin; PyTorch's has BatchNorm1d and Dropout.
    assert result.stdout.count("| NumPy by hand | not available") == 1
    assert "| fastdnn, M's network |" in result.stdout and "without BatchNorm" in result.stdout
    torch_rows = result.stdout.count("| PyTorch eager | not available")
    assert torch_rows == (0 if importlib.util.find_spec("torch") else 3)


def test_sklearn_comparison_prints_its_table():
    result = subprocess.run(
        [sys.executable, "-m", "asv_benchmarks.sklearn_mlp", "--quick", "--datasets", "digits",
         "--solvers", "adam,lbfgs"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| digits |")]
    assert len(rows) == 4 and all(line.count("x |") == 1 for line in rows)
    assert result.stdout.count("geometric mean speed-up") == 2


def test_gpu_gemm_sweep_checks_every_product_on_the_simulator():
    # The timings mean nothing under the simulator; the products, the launches and the check
    # of every result against NumPy run as on a GPU.
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    result = subprocess.run(
        [sys.executable, "-m", "asv_benchmarks.gpu_gemm", "--simulate", "--repeats", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| tiny |")]
    kernels = [row.split("|")[2].strip() for row in rows]
    assert kernels == ["forward", "weight_grad", "forward", "weight_grad", "input_grad"]
    assert "WRONG" not in result.stdout


def test_gpu_checks_script_parses_and_names_existing_files():
    # It runs only on a GPU machine; here: valid bash, and every test file or module it runs exists.
    script = ROOT / "asv_benchmarks" / "gpu_checks.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    for path in ("tests/test_cuda_kernels.py", "tests/test_cuda_engine.py"):
        assert path in text and (ROOT / path).exists()
    for module in ("asv_benchmarks.gpu_gemm", "asv_benchmarks.peers"):
        assert module in text and importlib.util.find_spec(module) is not None


def test_peer_gpu_runner_trains_epochs_of_one_fit():
    # Under the simulator here: the runner sets the fit up once and each call trains an epoch,
    # the same epochs as the CPU's. The hidden layer is wider than the simulator's 8 x 8 GEMM
    # tile, so that a launch with the other layer's grid (issue 16) would change the result.
    from fastdnn.engines.cpu import EpochRunner as _EpochRunner

    sys.path.insert(0, str(ROOT))
    peers = importlib.import_module("asv_benchmarks.peers")
    workloads = importlib.import_module("asv_benchmarks.workloads")
    tiny = workloads.Workload("T", (5, 10, 3), "softmax", "cross_entropy", "adam", 4, 12)
    X, y = tiny.data()
    runner = peers.FastDNNCuda(tiny, X, y)
    assert runner.model.device == "cuda"
    engine = runner.runner.engine
    runner.epoch()
    runner.epoch()
    assert runner.runner.engine is engine and engine.step == 2 * 3  # 3 batches an epoch
    before = runner.model._params.copy()
    runner.runner.sync()
    assert not np.array_equal(runner.model._params, before)
    # The CPU twin: same initial weights, and the runner's visiting orders (its rng's seed 0).
    cpu = tiny.fastdnn_model(device="cpu")
    np.testing.assert_array_equal(cpu._params, before)
    cpu_runner = _EpochRunner(cpu, *cpu._data(X, y), tiny.batch_size)
    rng = np.random.default_rng(0)
    for _ in range(2):
        cpu_runner.train(rng.permutation(len(X)), cpu.optimizer.hyperparameters(cpu.dtype))
    np.testing.assert_allclose(runner.model._params, cpu._params, rtol=2e-5, atol=2e-6)


def test_gpu_gemm_torch_products_have_the_kernels_shapes():
    # The PyTorch side of the sweep runs only on a GPU; on the CPU it checks each product's
    # operands give the m x n output of fastdnn's kernel (it raises otherwise).
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT))
    gpu_gemm = importlib.import_module("asv_benchmarks.gpu_gemm")
    for kernel, _, m, n, k in gpu_gemm.products((6, 5, 3), 4):
        assert gpu_gemm.torch_seconds(kernel, m, n, k, 1, device="cpu") > 0


def test_gpu_sass_figures_or_what_is_missing():
    # CI here has no ptxas/cuobjdump: the script must say so and exit 0; with the CUDA toolkit
    # it prints the table (FMA shares from the sm_90 machine code).
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run(
        [sys.executable, "-m", "asv_benchmarks.gpu_sass"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(("No SASS figures:", "| tile | kernel |"))
