"""BatchNorm, LayerNorm, Dropout and clipnorm on ``device="cuda"`` against the CPU.

Under the CUDA simulator in CI (natively on a GPU): the same model built on both devices from
one seed gives the same training-mode and inference-mode loss and gradients, the same
predictions from running statistics, and the same weights, running statistics and history
after fits of several batches (the dropout masks are the CPU's: a different mask moves the
weights by far more than the tolerance).
"""

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA tests need numba-cuda (fastdnn[cuda])")

import fastdnn as fd  # noqa: E402

N_IN, N_OUT = 5, 3

# The dropout hash wraps around 2**64 by design; the simulator's NumPy scalars warn about it.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


def _layers(rate=0.3, batch_norm=True):
    # Widths above 8 (the simulator's GEMM tile) so that GEMM grids differ between layers.
    if batch_norm:
        first = [fd.Dense(N_IN, 10), fd.BatchNorm(10, momentum=0.2, activation="tanh")]
    else:
        first = [fd.Dense(N_IN, 10, activation="tanh"), fd.LayerNorm(10)]
    return [
        *first,
        fd.Dropout(rate),
        fd.Dense(10, 9, activation="gelu"),
        fd.LayerNorm(9, activation="relu"),
        fd.Dropout(rate),
        fd.Dense(9, N_OUT, activation="softmax"),
    ]


def _pair(dtype, optimizer, clipnorm=None, batch_norm=True):
    models = []
    for device in ("cpu", "cuda"):
        model = fd.Sequential(_layers(batch_norm=batch_norm), dtype=dtype, seed=3, device=device)
        model.compile("cross_entropy", optimizer(), l2=1e-3, clipnorm=clipnorm)
        models.append(model)
    return models


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, N_IN)) * 1.5, rng.integers(0, N_OUT, n)


def _randomise(models, seed=1):
    """The same non-trivial gamma, beta and running statistics on both models."""
    rng = np.random.default_rng(seed)
    weights = [list(v) for v in models[0].get_weights()]
    weights[1] = [rng.uniform(0.5, 1.5, 10), rng.normal(size=10) * 0.3, rng.normal(size=10) * 0.3,
                  rng.uniform(0.5, 2.0, 10)]  # fmt: skip
    weights[4] = [rng.uniform(0.5, 1.5, 9), rng.normal(size=9) * 0.3]
    for model in models:
        model.set_weights(weights)


def _assert_close(actual, expected, rtol, what):
    """``max |actual - expected| <= rtol * max |expected|`` over every array of every layer."""
    scale = max(float(np.abs(a).max()) for layer in expected for a in layer)
    for i, (got, want) in enumerate(zip(actual, expected)):
        assert len(got) == len(want), f"{what}: layer {i}"
        for j, (g, w) in enumerate(zip(got, want)):
            worst = float(np.abs(g - w).max())
            assert worst <= rtol * scale, f"{what}: layer {i} array {j}: {worst:.3g}"


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
def test_loss_gradients_and_predictions_match_the_cpu(training):
    cpu, gpu = _pair("float64", lambda: fd.SGD(0.1))
    _randomise([cpu, gpu])
    X, y = _data(7)
    loss_cpu, grads_cpu = cpu.loss_and_gradients(X, y, training=training)
    loss_gpu, grads_gpu = gpu.loss_and_gradients(X, y, training=training)
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-10)
    _assert_close(grads_gpu, grads_cpu, 1e-10, "gradients")
    np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), rtol=1e-10, atol=1e-12)
    assert gpu.evaluate(X, y)["loss"] == pytest.approx(cpu.evaluate(X, y)["loss"], rel=1e-10)


# A dense bias right before a BatchNorm has a zero gradient up to rounding (the normalisation
# removes the batch mean); Adam's and RMSprop's normalised steps turn that rounding into
# steps of +-lr whose signs differ between devices, so their case has no BatchNorm.
@pytest.mark.parametrize(
    "dtype, optimizer, clipnorm, batch_norm, rtol",
    [
        ("float64", lambda: fd.SGD(0.1, momentum=0.9), None, True, 1e-9),
        ("float32", lambda: fd.SGD(0.1, momentum=0.9), 0.3, True, 1e-4),
        ("float32", lambda: fd.AdamW(0.01), 0.3, False, 1e-4),
    ],
    ids=["sgd_float64", "sgd_clipnorm_float32", "adamw_clipnorm_layer_norm_float32"],
)
def test_fit_matches_the_cpu_after_every_epoch(dtype, optimizer, clipnorm, batch_norm, rtol):
    cpu, gpu = _pair(dtype, optimizer, clipnorm, batch_norm)
    X, y = _data(8)
    X_val, y_val = _data(5, seed=1)
    weights = {"cpu": [], "cuda": []}
    histories = {}
    for model in (cpu, gpu):
        for _ in range(2):  # one fit per epoch: weights and statistics compared in between
            history = model.fit(X, y, epochs=1, batch_size=4, validation_data=(X_val, y_val),
                                verbose=0)  # fmt: skip
            weights[model.device].append(model.get_weights())
            for key, values in history.history.items():
                histories.setdefault(model.device, {}).setdefault(key, []).extend(values)
    for epoch, (got, want) in enumerate(zip(weights["cuda"], weights["cpu"]), start=1):
        _assert_close(got, want, rtol, f"after epoch {epoch}")
    for key, values in histories["cpu"].items():
        np.testing.assert_allclose(
            histories["cuda"][key], values, rtol=max(rtol, 1e-6), err_msg=key
        )
    assert int(gpu._step[0]) == int(cpu._step[0]) == 4
    if batch_norm:  # the running statistics moved on the device and came back
        assert not np.allclose(gpu.get_weights()[1][2], 0.0)


def test_other_dropout_masks_fail_the_tolerance():
    # A control for the test above (on the CPU, where it is fast): the same fit with another
    # model's masks parts from it by far more than the tolerance, so weights that match there
    # mean masks that match.
    X, y = _data(8)
    a = fd.Sequential(_layers(), seed=3)
    b = fd.Sequential(_layers(), seed=3)
    b._mask_key = np.uint64(12345)
    for m in (a, b):
        m.compile("cross_entropy", fd.SGD(0.1, momentum=0.9))
        m.fit(X, y, epochs=2, batch_size=4, verbose=0)
    with pytest.raises(AssertionError):
        _assert_close(b.get_weights(), a.get_weights(), 1e-4, "other masks")
