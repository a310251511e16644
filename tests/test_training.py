"""Training behaviour: batching, history, determinism, dtypes, divergence, threads, the demo."""

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import reference as ref

import fastdnn as fd
from fastdnn.kernels.cpu.fpmode import HAS_MXCSR


def classification(n=40, n_in=5, n_classes=3, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    return X, rng.integers(0, n_classes, n)


def classifier(seed=0, dtype="float32", optimizer=None):
    model = fd.Sequential(
        [fd.Dense(5, 8, "relu"), fd.Dense(8, 3, "softmax")], dtype=dtype, seed=seed
    )
    model.compile("cross_entropy", optimizer or fd.Adam(0.01))
    return model


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for (Wa, ba), (Wb, bb) in zip(a, b):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)


def differs(a, b):
    return any(not np.array_equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


# ----------------------------------------------------------------------------- batching
@pytest.mark.parametrize(
    "n, batch_size, steps",
    [(23, 5, 5), (20, 5, 4), (7, 50, 1), (7, 7, 1), (7, 1, 7)],
    ids=["partial_last", "exact", "batch_larger_than_data", "one_batch", "single_rows"],
)
def test_batches_per_epoch_and_partial_batches(n, batch_size, steps):
    X, y = classification(n, dtype="float64")
    model = classifier(dtype="float64", optimizer=fd.SGD(0.3))
    params = [[W.copy(), b.copy()] for W, b in model.get_weights()]
    model.fit(X, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
    assert model._step[0] == 2 * steps
    ref.train(params, ["relu", "softmax"], "cross_entropy", X, ref.one_hot(y, 3), ref.SGD(0.3),
              batch_size, 2)  # fmt: skip
    for (W, b), (rW, rb) in zip(model.get_weights(), params):
        np.testing.assert_allclose(W, rW, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(b, rb, rtol=1e-10, atol=1e-13)


def test_batch_size_larger_than_data_equals_full_batch():
    X, y = classification(9)
    a, b = classifier(), classifier()
    a.fit(X, y, epochs=3, batch_size=9, shuffle=False, verbose=0)
    b.fit(X, y, epochs=3, batch_size=1000, shuffle=False, verbose=0)
    assert_same_weights(a.get_weights(), b.get_weights())


def test_fit_continues_from_previous_fit():
    # Two fits of one epoch each equal one fit of two epochs (optimizer state carries over).
    X, y = classification(20, dtype="float64")
    a, b = classifier(dtype="float64"), classifier(dtype="float64")
    a.fit(X, y, epochs=2, batch_size=6, shuffle=False, verbose=0)
    b.fit(X, y, epochs=1, batch_size=6, shuffle=False, verbose=0)
    b.fit(X, y, epochs=1, batch_size=6, shuffle=False, verbose=0)
    assert_same_weights(a.get_weights(), b.get_weights())


# ----------------------------------------------------------------------------- history
@pytest.mark.parametrize("with_validation", [False, True])
def test_history_classification(with_validation):
    X, y = classification(30)
    Xv, yv = classification(11, seed=1)
    model = classifier()
    history = model.fit(
        X, y, epochs=4, batch_size=8, verbose=0,
        validation_data=(Xv, yv) if with_validation else None,
    )  # fmt: skip
    expected = {"loss", "accuracy"} | ({"val_loss", "val_accuracy"} if with_validation else set())
    assert set(history.history) == expected
    assert all(len(values) == 4 for values in history.history.values())
    assert history.epoch == [0, 1, 2, 3]
    assert len(history.epoch_seconds) == 4
    for key, values in history.history.items():
        assert all(isinstance(v, float) and np.isfinite(v) for v in values), key
        if "accuracy" in key:
            assert all(0 <= v <= 1 for v in values)
            # accuracies are fractions of the rows: multiples of 1/30 (or 1/11)
            rows = 11 if key.startswith("val") else 30
            assert all(abs(v * rows - round(v * rows)) < 1e-9 for v in values)
    assert history.history["loss"][-1] < history.history["loss"][0]
    if with_validation:
        # the last validation metrics are those of the final weights
        final = model.evaluate(Xv, yv)
        assert history.history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-6)
        assert history.history["val_accuracy"][-1] == final["accuracy"]


def test_history_regression_has_no_accuracy():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    model = fd.Sequential([fd.Dense(3, 4, "tanh"), fd.Dense(4, 2)], seed=0)
    model.compile("mse", fd.SGD(0.05))
    history = model.fit(X, Y, epochs=3, batch_size=5, validation_data=(X[:4], Y[:4]), verbose=0)
    assert set(history.history) == {"loss", "val_loss"}
    assert [len(v) for v in history.history.values()] == [3, 3]


def test_verbose_modes_print_epoch_lines(capsys):
    X, y = classification(12)
    model = classifier()
    model.fit(X, y, epochs=2, batch_size=4, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "loss=" in lines[0] and "samples/s" in lines[0]
    model.fit(X, y, epochs=2, batch_size=4, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_data_gives_identical_weights():
    X, y = classification(50)
    runs = []
    for _ in range(2):
        model = classifier(seed=7)
        initial = model.get_weights()
        model.fit(X, y, epochs=3, batch_size=8, shuffle=True, verbose=0)
        runs.append((initial, model.get_weights(), model.predict(X)))
    assert_same_weights(runs[0][0], runs[1][0])
    assert_same_weights(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert differs(runs[0][0], runs[0][1])  # training did change the weights


def test_different_seeds_give_different_initial_weights():
    weights = [classifier(seed=s).get_weights() for s in (0, 1, 2)]
    for i in range(3):
        for j in range(i + 1, 3):
            for (Wa, _), (Wb, _) in zip(weights[i], weights[j]):
                assert not np.array_equal(Wa, Wb)
    # biases start at zero whatever the seed
    assert all(not b.any() for w in weights for _, b in w)


def test_seed_drives_the_shuffle():
    X, y = classification(50)
    a, b, c = classifier(seed=1), classifier(seed=2), classifier(seed=1)
    b.set_weights(a.get_weights())  # same start, different shuffling stream
    for model, shuffle in ((a, True), (b, True), (c, False)):
        model.fit(X, y, epochs=2, batch_size=8, shuffle=shuffle, verbose=0)
    assert differs(a.get_weights(), b.get_weights())
    assert differs(a.get_weights(), c.get_weights())


def test_initialisation_he_and_glorot():
    model = fd.Sequential([fd.Dense(200, 150, "relu"), fd.Dense(150, 100, "tanh")], seed=0)
    (W1, b1), (W2, b2) = model.get_weights()
    # Uniform(-limit, limit): He limit sqrt(6 / fan_in), Glorot sqrt(6 / (fan_in + fan_out)).
    assert np.abs(W1).max() <= np.sqrt(6 / 200)
    assert W1.std() == pytest.approx(np.sqrt(2 / 200), rel=0.05)
    assert np.abs(W2).max() <= np.sqrt(6 / 250)
    assert W2.std() == pytest.approx(np.sqrt(2 / 250), rel=0.05)
    assert not b1.any() and not b2.any()


# ----------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [None, "float32", "float64", np.float64])
def test_dtype_end_to_end(dtype):
    expected = np.dtype(np.float32 if dtype in (None, "float32") else np.float64)
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = fd.Sequential([fd.Dense(5, 4, "gelu"), fd.Dense(4, 3, "softmax")], seed=0, **kwargs)
    model.compile("cross_entropy", fd.RMSprop(0.01))
    assert model.dtype == expected
    X, y = classification(12, dtype="float64")  # input dtype is converted, not kept
    model.fit(X, y, epochs=1, batch_size=4, verbose=0)
    for W, b in model.get_weights():
        assert W.dtype == expected and b.dtype == expected
    for X_in in (X, X.astype(np.float32), np.rint(X).astype(np.int64)):
        assert model.predict(X_in).dtype == expected
    _, grads = model.loss_and_gradients(X, y)
    assert all(dW.dtype == expected and db.dtype == expected for dW, db in grads)
    assert model._state.dtype == expected


def test_float32_and_float64_models_agree():
    X, y = classification(24, dtype="float64")
    m32, m64 = classifier(dtype="float32"), classifier(dtype="float64")
    rounded = [(W.astype(np.float32), b.astype(np.float32)) for W, b in m64.get_weights()]
    assert_same_weights(m32.get_weights(), rounded)
    m32.set_weights(m64.get_weights())
    for model in (m32, m64):
        model.fit(X, y, epochs=2, batch_size=6, shuffle=False, verbose=0)
    for (W32, _), (W64, _) in zip(m32.get_weights(), m64.get_weights()):
        np.testing.assert_allclose(W32, W64, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- divergence
def regression_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 5)) * 100, rng.normal(size=(40, 2))


def regressor(dtype="float32"):
    model = fd.Sequential([fd.Dense(5, 8, "relu"), fd.Dense(8, 2)], dtype=dtype, seed=0)
    model.compile("mse", fd.SGD(1e6, momentum=0.5))
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_divergence_in_first_epoch_restores_initial_state(dtype):
    X, Y = regression_data()
    model = regressor(dtype)
    before, state, step = model.get_weights(), model._state.copy(), model._step.copy()
    with pytest.raises(fd.TrainingDivergedError, match="diverged at epoch 1") as info:
        model.fit(X, Y, epochs=3, batch_size=8, verbose=0)
    assert info.value.epoch == 1 and 0 <= info.value.batch < 5
    assert isinstance(info.value, FloatingPointError)
    assert_same_weights(model.get_weights(), before)
    np.testing.assert_array_equal(model._state, state)
    np.testing.assert_array_equal(model._step, step)
    assert all(np.isfinite(a).all() for pair in model.get_weights() for a in pair)


class _RaiseLearningRate(fd.Callback):
    """Trains ``good`` epochs at a small learning rate, then switches to a huge one; records
    the weights, optimizer state and step at the end of every completed epoch."""

    def __init__(self, good):
        self.good, self.saved = good, []

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.lr = 1e-5 if epoch < self.good else 1e6

    def on_epoch_end(self, epoch, logs=None):
        m = self.model
        self.saved.append((m.get_weights(), m._state.copy(), m._step.copy()))


def test_divergence_restores_last_good_epoch():
    X, Y = regression_data()
    model = regressor("float64")
    callback = _RaiseLearningRate(good=2)
    with pytest.raises(fd.TrainingDivergedError) as info:
        model.fit(X, Y, epochs=5, batch_size=8, shuffle=True, verbose=0, callbacks=[callback])
    assert info.value.epoch == 3
    assert len(callback.saved) == 2
    weights, state, step = callback.saved[-1]
    assert step[0] == 2 * 5
    assert all(np.isfinite(a).all() for pair in model.get_weights() for a in pair)
    assert_same_weights(model.get_weights(), weights)
    np.testing.assert_array_equal(model._state, state)
    np.testing.assert_array_equal(model._step, step)
    # the model still works: predictions are finite and training can resume
    assert np.isfinite(model.predict(X)).all()
    model.optimizer.lr = 1e-6
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)


# ----------------------------------------------------------------------------- threads
def test_predict_from_threads_matches_single_thread():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 12)).astype(np.float32)
    model = fd.Sequential(
        [fd.Dense(12, 16, "gelu"), fd.Dense(16, 8, "tanh"), fd.Dense(8, 3, "softmax")], seed=0
    )
    chunks = [X[i::4] for i in range(4)]
    expected = [model.predict(chunk, batch_size=16) for chunk in chunks]
    expected_full = model.predict(X, batch_size=16)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            results = list(pool.map(lambda c: model.predict(c, batch_size=16), chunks * 2))
            for got, want in zip(results, expected * 2):
                np.testing.assert_array_equal(got, want)
        results = list(pool.map(lambda _: model.predict(X, batch_size=16), range(8)))
    for got in results:
        np.testing.assert_array_equal(got, expected_full)


def test_reused_inference_workspace_gives_the_results_of_a_fresh_model():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 6)).astype(np.float32)

    def build():
        model = fd.Sequential([fd.Dense(6, 9, "relu"), fd.Dense(9, 4, "sigmoid")], seed=3)
        model.compile("mse", fd.SGD(0.1))
        return model

    def run(model, method, rows, batch):
        if method == "predict":
            return model.predict(X[:rows], batch_size=batch)
        return model.evaluate(X[:rows], X[:rows, :4], batch_size=batch)

    model = build()
    # predict keeps one buffer, evaluate two: grow, shrink and grow the batch in between, so
    # that a kept buffer is once larger and once smaller than the batch needs
    calls = [("predict", 5, 5), ("evaluate", 5, 5), ("predict", 50, 16), ("evaluate", 3, 2),
             ("predict", 50, 50), ("evaluate", 20, 20), ("evaluate", 50, 50),
             ("predict", 50, 7), ("evaluate", 50, 50)]  # fmt: skip
    for method, rows, batch in calls:
        got, want = run(model, method, rows, batch), run(build(), method, rows, batch)
        if method == "predict":
            np.testing.assert_array_equal(got, want)
        else:
            assert got == want
    assert "_scratch" in vars(model)
    assert "_scratch" not in vars(pickle.loads(pickle.dumps(model)))


def test_work_buffers_are_reused_and_kept_only_up_to_the_cap(monkeypatch):
    from fastdnn.engines import Scratch

    X = np.random.default_rng(2).normal(size=(40, 5)).astype(np.float32)
    model = fd.Sequential([fd.Dense(5, 8, "relu"), fd.Dense(8, 3, "softmax")], seed=0)
    model.compile("cross_entropy", fd.Adam(1e-3))
    model.fit(X, np.arange(40) % 3, epochs=1, batch_size=8, verbose=0)
    gradient = model._scratch._arrays["gradient"]
    model.fit(X, np.arange(40) % 3, epochs=1, batch_size=8, verbose=0)
    assert model._scratch._arrays["gradient"] is gradient  # no new allocation
    model.predict(X)
    monkeypatch.setattr(Scratch, "KEEP_BYTES", 1024)
    model.predict(X)
    assert model._scratch is None  # over the cap: freed after the call
    expected = model.predict(X)
    np.testing.assert_array_equal(model.predict(X), expected)


# ----------------------------------------------------------------------------- denormals
@pytest.mark.skipif(not HAS_MXCSR, reason="flushing denormals is implemented for x86-64 only")
def test_training_flushes_denormal_moments_and_restores_the_fp_mode():
    tiny = np.float32(1e-39)  # below float32's smallest normal number, 1.2e-38
    assert 0 < tiny < np.finfo(np.float32).tiny
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 3)).astype(np.float32)
    X[:, 0] = 0  # the weights from feature 0 get exactly zero gradient
    model = fd.Sequential([fd.Dense(3, 2, "sigmoid")], seed=0)
    model.compile("mse", fd.Adam(1e-3))
    model.fit(X, X[:, :2], epochs=1, batch_size=16, verbose=0)
    model._state[0][:] = tiny
    model.fit(X, X[:, :2], epochs=1, batch_size=16, verbose=0)
    first_moment_w = model._state[0][:6].reshape(2, 3)
    # IEEE arithmetic would leave 0.9 * 1e-39 (denormal) there; flushed, it is 0
    np.testing.assert_array_equal(first_moment_w[:, 0], 0)
    assert (first_moment_w[:, 1:] != 0).all()
    # the thread's floating-point mode is back to IEEE after the fit: NumPy sees denormals
    assert np.float32(1e-38) * np.float32(0.5) > 0


@pytest.mark.skipif(not HAS_MXCSR, reason="flushing denormals is implemented for x86-64 only")
def test_optimizer_step_alone_flushes_denormal_state():
    # the distributed fit calls optimizer_step from Python, outside train_epoch
    from fastdnn.kernels.cpu import optimizers as kernels

    n = 8
    params = np.ones(n, np.float32)
    grads = np.zeros(n, np.float32)
    state = np.full((2, n), np.float32(1e-39))
    hyper = fd.Adam(1e-3).hyperparameters(np.float32)
    zero = np.float32(0)
    kernels.optimizer_step(kernels.ADAM, params, grads, state, hyper, 1, n, zero, zero)
    np.testing.assert_array_equal(state, 0)
    assert np.float32(1e-38) * np.float32(0.5) > 0


# ----------------------------------------------------------------------------- the demo
def test_digits_demo_reaches_97_percent():
    from fastdnn.demo import run_demo

    result = run_demo(verbose=0)
    assert result["test_accuracy"] >= 0.97
    assert result["samples_per_second"] > 0
    assert len(result["history"].history["val_accuracy"]) == 80
