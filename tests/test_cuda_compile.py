"""Every CUDA kernel the engine launches compiles for a real GPU, with no float64 in float32.

The CUDA simulator runs kernels as Python: it type-checks nothing that Numba's CUDA compiler
would, so a kernel can pass every simulator test and still fail to compile on a GPU. This test
records the argument types of every launch that a short run of the engine makes (training,
evaluation, prediction, gradients and parameter statistics, for each loss, float32 and float64;
under the simulator here, natively on a GPU), then compiles each kernel for those types to PTX
through libNVVM in a child process (``tests/cuda_ptx.py``), for every production tile and
thread count. Skipped where libNVVM is not installed (it comes with ``fastdnn[cuda]``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA tests need numba-cuda (fastdnn[cuda])")

import fastdnn as fd  # noqa: E402
from fastdnn.engines import cuda as backend  # noqa: E402

HERE = Path(__file__).resolve().parent

CASES = [  # every loss kernel and every optimizer code
    ("cross_entropy", "softmax", fd.Adam(lr=0.01)),
    ("binary_cross_entropy", "sigmoid", fd.RMSprop(lr=0.01)),
    ("mse", "linear", fd.SGD(lr=0.1, momentum=0.9)),
    ("mse", "sigmoid", fd.AdamW(lr=0.01)),
]


def _type_name(value):
    array = getattr(value, "_ary", None)  # the simulator's device array wraps a NumPy array
    if array is not None:
        value = array
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, int):
        return "int64"  # how Numba's dispatcher types a Python int argument
    if isinstance(value, float):
        return "float64"
    return str(numba.typeof(value))


def _record_launches(monkeypatch):
    launches = set()
    original = backend.CudaEngine._launch

    def recording_launch(self, kernel, griddim, blockdim):
        launcher = original(self, kernel, griddim, blockdim)
        function = getattr(kernel, "py_func", None) or kernel.fn  # real or simulated kernel

        def launch(*args):
            types = tuple(_type_name(a) for a in args)
            launches.add((function.__module__, function.__qualname__, types))
            return launcher(*args)

        return launch

    monkeypatch.setattr(backend.CudaEngine, "_launch", recording_launch)
    return launches


def _exercise_engine(loss, output, optimizer, dtype, layers=False):
    hidden = [fd.Dense(4, 5, activation="tanh")]
    if layers:  # every other layer kind, and clipping
        hidden = [fd.Dense(4, 5), fd.BatchNorm(5, activation="tanh"), fd.Dropout(0.25),
                  fd.Dense(5, 5), fd.LayerNorm(5, activation="relu")]  # fmt: skip
    model = fd.Sequential([*hidden, fd.Dense(5, 3, activation=output)], dtype=dtype, seed=0)
    model.compile(loss, optimizer, l1=1e-3, l2=1e-3, clipnorm=0.5 if layers else None)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 4))
    y = rng.integers(0, 3, 6) if loss == "cross_entropy" else rng.random((6, 3))
    X, Y, weight = model._data(X, (y > 0.5) * 1.0 if loss == "binary_cross_entropy" else y, None)
    engine = backend.new_engine(model)
    engine.upload(model._params, model._state, model._step, model._running)
    hyper = model.optimizer.hyperparameters(model.dtype)
    for resident in (True, False):
        data = engine.dataset(X, Y, weight, resident=resident)
        engine.train_epoch(data, np.arange(6), 4, hyper)
        engine.evaluate(data, batch_size=4)
        engine.predict(data, batch_size=4)
    engine.gradients(X, Y, weight)
    engine.gradients(X, Y, weight, training=True)
    engine.penalty()


def _compile_child(arg):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    return subprocess.run(
        [sys.executable, str(HERE / "cuda_ptx.py"), arg],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_every_launched_kernel_compiles_for_a_gpu(monkeypatch, tmp_path):
    probe = _compile_child("--probe")
    if probe.returncode == 77:
        pytest.skip(probe.stdout.strip())
    assert probe.returncode == 0, probe.stdout + probe.stderr
    launches = _record_launches(monkeypatch)
    for loss, output, optimizer in CASES:
        for dtype in ("float32", "float64"):
            _exercise_engine(loss, output, optimizer, dtype)
    for dtype in ("float32", "float64"):
        _exercise_engine(*CASES[0], dtype, layers=True)
    names = {qualname.rsplit(".", 1)[-1] for _, qualname, _ in launches}
    # The run reached every kernel of the device path.
    assert names == {
        "gather_batch", "forward", "weight_grad", "backward", "cross_entropy", "elementwise",
        "optimizer_step", "output_activation", "stats", "batch_norm_forward",
        "batch_norm_backward", "layer_norm_forward", "layer_norm_backward_rows",
        "layer_norm_backward_params", "dropout_forward", "dropout_identity", "dropout_backward",
        "squared_norm", "clip_by_norm",
    }  # fmt: skip
    path = tmp_path / "launches.json"
    path.write_text(json.dumps(sorted(launches)))
    result = _compile_child(str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compiled" in result.stdout
