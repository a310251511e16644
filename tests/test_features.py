"""Feature sets: the compiled drivers include only the kernels a network uses (the rest of
the suite runs the generic drivers, see ``tests/conftest.py``).

A fit compiles its drivers for the feature set of its network (layer kinds, activations, loss,
optimizer, clipping; ``kernels/cpu/features.py``); ``FASTDNN_SPECIALIZE=0`` gives every call
the generic drivers (every feature). Both must train identically, and the specialised fit must
leave the kernels it does not need uncompiled.
"""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import fastdnn as fd
from fastdnn.engines import cpu as cpu_engine
from fastdnn.kernels.cpu import features as F
from fastdnn.kernels.cpu import network as net
from fastdnn.kernels.cpu.activations import RELU, SOFTMAX, TANH
from fastdnn.kernels.cpu.losses import CROSS_ENTROPY, MSE
from fastdnn.kernels.cpu.optimizers import ADAM, SGD

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 6))
Y_CLASS = rng.integers(0, 3, 40)
Y_REG = rng.normal(size=(40, 2))


def _mlp(dtype):
    return fd.Sequential([fd.Dense(6, 8, "relu"), fd.Dense(8, 3, "softmax")], dtype=dtype, seed=1)


def _deep(dtype):
    return fd.Sequential(
        [
            fd.Dense(6, 8),
            fd.BatchNorm(8, activation="tanh"),
            fd.Dropout(0.25),
            fd.Dense(8, 8, "gelu"),
            fd.LayerNorm(8),
            fd.Dense(8, 2),
        ],
        dtype=dtype,
        seed=1,
    )


CASES = {
    "relu-softmax-adam": (_mlp, "cross_entropy", lambda: fd.Adam(1e-2), None, Y_CLASS),
    "bn-dropout-ln-sgd-clip": (_deep, "mse", lambda: fd.SGD(0.05, momentum=0.9), 0.5, Y_REG),
}


def _fit(case, dtype):
    build, loss, optimizer, clipnorm, y = CASES[case]
    model = build(dtype)
    model.compile(loss, optimizer(), l2=1e-3, clipnorm=clipnorm)
    model.fit(X.astype(dtype), y, epochs=2, batch_size=16, verbose=0)
    return model


# float32 only: each dtype compiles the generic drivers once more (about 25 s).
@pytest.mark.parametrize("dtype", ["float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_specialised_and_generic_drivers_train_alike(monkeypatch, case, dtype):
    monkeypatch.delenv("FASTDNN_SPECIALIZE", raising=False)  # tests/conftest.py sets it
    specialised = _fit(case, dtype)
    monkeypatch.setenv("FASTDNN_SPECIALIZE", "0")
    generic = _fit(case, dtype)
    assert cpu_engine.features(generic, loss=True, optimizer=True) is F.ALL
    # Same arithmetic, only the branches not taken left out.
    np.testing.assert_array_equal(specialised._params, generic._params)
    np.testing.assert_array_equal(specialised._running, generic._running)
    Xc = X.astype(dtype)
    np.testing.assert_array_equal(specialised.predict(Xc), generic.predict(Xc))


def test_feature_set_of_a_network_has_its_parts_only(monkeypatch):
    monkeypatch.delenv("FASTDNN_SPECIALIZE", raising=False)
    model = _mlp("float32")
    model.compile("cross_entropy", fd.Adam())
    layers = cpu_engine.features(model)
    expected = F.kind_bit(net.DENSE) | F.activation_bit(RELU) | F.activation_bit(SOFTMAX)
    assert layers.mask == expected
    full = cpu_engine.features(model, loss=True, optimizer=True)
    assert full.mask == expected | F.loss_bit(CROSS_ENTROPY) | F.optimizer_bit(ADAM)
    assert full is cpu_engine.features(model, loss=True, optimizer=True)  # interned

    deep = _deep("float32")
    deep.compile("mse", fd.SGD(0.1), clipnorm=1.0)
    mask = cpu_engine.features(deep, loss=True, optimizer=True).mask
    for bit in (
        F.kind_bit(net.BATCH_NORM), F.kind_bit(net.DROPOUT), F.kind_bit(net.LAYER_NORM),
        F.activation_bit(TANH), F.loss_bit(MSE), F.optimizer_bit(SGD), F.CLIP,
    ):  # fmt: skip
        assert mask & bit
    assert not mask & F.optimizer_bit(ADAM)
    assert not mask & F.activation_bit(RELU)


def test_a_dense_fit_compiles_no_other_layer_optimizer_or_loss():
    # In a new process with an empty cache: what a Dense/ReLU/Adam fit compiled.
    code = textwrap.dedent("""
        import numpy as np, fastdnn as fd
        from fastdnn.kernels.cpu import layers, losses, optimizers, activations
        X = np.random.default_rng(0).random((64, 5), dtype=np.float32)
        y = np.arange(64) % 3
        model = fd.Sequential([fd.Dense(5, 8, "relu"), fd.Dense(8, 3, "softmax")])
        model.compile("cross_entropy", fd.Adam())
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
        model.predict(X)
        unused = [layers.batch_norm_forward, layers.batch_norm_backward,
                  layers.layer_norm_forward, layers.layer_norm_backward,
                  layers.dropout_forward, optimizers._sgd_step, optimizers._rmsprop_step,
                  optimizers._adamw_step, losses._squared_error_sum, losses._poisson_sum,
                  losses._binary_cross_entropy_sum, activations.LOOPS[activations.TANH][0],
                  activations.LOOPS[activations.GELU][1]]
        print(sum(len(k.signatures) for k in unused),
              len(optimizers._adam_no_decay.signatures), len(losses._cross_entropy_sum.signatures))
    """)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env.pop("FASTDNN_SPECIALIZE", None)
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
    assert result.returncode == 0, result.stderr
    unused, adam, cross_entropy = map(int, result.stdout.split())
    assert (unused, adam, cross_entropy) == (0, 1, 1)


def test_warmup_leaves_nothing_to_compile_for_a_generic_process():
    # Warm an empty cache, then fit, evaluate, predict and differentiate a network unlike the
    # warm-up's (sigmoid, SGD, MSE) with FASTDNN_SPECIALIZE=0: every driver must come from the
    # cache.
    code = textwrap.dedent("""
        import numpy as np, fastdnn as fd
        from fastdnn.kernels.cpu import network
        X = np.random.default_rng(0).random((32, 4), dtype=np.float32)
        model = fd.Sequential([fd.Dense(4, 6, "sigmoid"), fd.Dense(6, 2)])
        model.compile("mse", fd.SGD(0.1, momentum=0.5))
        model.fit(X, X[:, :2], epochs=1, batch_size=8, verbose=0)
        model.evaluate(X, X[:, :2])
        model.predict(X)
        model.loss_and_gradients(X, X[:, :2])
        model.loss_and_gradients(X, X[:, :2], training=True)
        drivers = [network.train_epoch, network.evaluate, network.predict,
                   network.blocked_gradients, network.forward_backward]
        print(sum(len(d.stats.cache_misses) for d in drivers),
              sum(len(d.stats.cache_hits) for d in drivers))
    """)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env.pop("FASTDNN_SPECIALIZE", None)
        warm = subprocess.run(
            [sys.executable, "-m", "fastdnn", "warmup", "--dtypes", "float32", "--no-sparse"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert warm.returncode == 0, warm.stderr
        assert "FASTDNN_SPECIALIZE=0" in warm.stdout
        env["FASTDNN_SPECIALIZE"] = "0"
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "5"]


def test_cache_goes_to_the_temporary_folder_when_nothing_else_is_writable(monkeypatch):
    # A read-only install whose user cache folder is read-only too: Numba would refuse to
    # compile any cached kernel ("no locator available"), failing ``import fastdnn``.
    from numba.core import config

    import fastdnn.kernels as kernels

    monkeypatch.setattr(config, "CACHE_DIR", "")
    monkeypatch.setattr(kernels, "_writable", lambda folder: False)
    kernels._ensure_writable_cache()
    assert config.CACHE_DIR.startswith(tempfile.gettempdir())
    monkeypatch.setattr(config, "CACHE_DIR", "")
    monkeypatch.setattr(kernels, "_writable", lambda folder: True)
    kernels._ensure_writable_cache()
    assert config.CACHE_DIR == ""  # Numba's own folders serve


def test_a_callee_is_compiled_without_wrappers_and_still_runs_from_python():
    from numba import njit

    from fastdnn.kernels._options import callee

    @callee
    def add_one(a):
        for i in range(a.size):
            a[i] += 1

    @njit
    def caller(a):
        add_one(a)

    a = np.zeros(3)
    caller(a)  # compiles add_one for compiled callers: no CPython entry point
    (compiled,) = add_one.overloads.values()
    assert compiled.fndesc.llvm_cpython_wrapper_name not in compiled.library.get_llvm_str()
    add_one(a)  # from Python: the twin, with its wrapper
    np.testing.assert_array_equal(a, 2.0)
    assert len(add_one.overloads) == 1
