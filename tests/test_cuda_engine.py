"""``CudaEngine``: whole training epochs, evaluation and prediction on the device against the
CPU kernels from the same initial parameters, to float32 tolerance, step for step.

Under the CUDA simulator (no GPU) the networks are tiny (5-10-3, batches of 4) so that the whole
file runs in under two minutes; on a GPU the same tests run natively. The hidden layer is wider
than the simulator's 8 x 8 GEMM tile, so the two layers' GEMMs have different grids: with a
network narrower than one tile every GEMM had a one-block grid, and launches with another
layer's grid (issue 16) went unnoticed.
"""

import inspect

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA tests need numba-cuda (fastdnn[cuda])")

import fastdnn as fd  # noqa: E402
from fastdnn.engines import cpu as cpu_engine  # noqa: E402
from fastdnn.engines import cuda as backend  # noqa: E402
from fastdnn.engines.cpu import EpochRunner as _EpochRunner  # noqa: E402
from fastdnn.engines.cuda import CudaEngine, DeviceDataset, require_cuda  # noqa: E402
from fastdnn.kernels.cpu import network as cpu_net  # noqa: E402
from fastdnn.kernels.cpu import optimizers as cpu_opt  # noqa: E402
from fastdnn.kernels.cpu.features import ALL  # noqa: E402
from fastdnn.network import LOSSES  # noqa: E402

N_IN, N_HIDDEN, N_OUT = 5, 10, 3  # 10 > 8: two column tiles in the first layer
TOL = {"rtol": 2e-5, "atol": 2e-6}


def _model(loss, optimizer, hidden="tanh", output="softmax", l1=0.0, l2=0.0, dtype="float32"):
    model = fd.Sequential(
        [fd.Dense(N_IN, N_HIDDEN, activation=hidden), fd.Dense(N_HIDDEN, N_OUT, activation=output)],
        dtype=dtype,
        seed=1,
    )
    model.compile(loss, optimizer, l1=l1, l2=l2)
    return model


def _data(model, n=10, seed=0, weighted=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_IN))
    if model.loss == "cross_entropy":
        y = rng.integers(0, N_OUT, n)
    elif model.loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (n, N_OUT))
    else:
        y = rng.standard_normal((n, N_OUT))
    weight = rng.random(n) + 0.5 if weighted else None
    return model._data(X, y, weight)


def _engine(model, **kwargs):
    engine = CudaEngine(
        model._net, LOSSES[model.loss], model.optimizer.code, model.optimizer.n_slots, model.l1,
        model.l2, model.dtype, loss_weight=model.loss_weight, **kwargs,
    )  # fmt: skip
    engine.upload(model._params, model._state, model._step)
    return engine


def _assert_same_state(engine, model, tol=TOL):
    params, state, step = engine.download()
    np.testing.assert_allclose(params, model._params, **tol)
    # atol is meant for values of order 1, and each state row is compared at its own scale:
    # RMSprop's momentum row sums steps g / sqrt(v) of order 1 / sqrt(1 - rho) = 10, where
    # float32 rounding of a small, cancelling g gave 6e-6 (2.6e-6 of the row's largest value).
    for got, want in zip(state, model._state):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale)
    assert step == model._step[0]


CASES = [
    # loss, optimizer, hidden, output, l1, l2, resident
    ("cross_entropy", fd.Adam(lr=0.01), "relu", "softmax", 1e-3, 1e-2, True),
    ("cross_entropy", fd.SGD(lr=0.1, momentum=0.9, nesterov=True), "gelu", "softmax", 0, 0, False),
    ("binary_cross_entropy", fd.AdamW(lr=0.01), "elu", "sigmoid", 0, 1e-2, True),
    ("mse", fd.RMSprop(lr=0.01, momentum=0.5), "softplus", "tanh", 1e-3, 0, True),
    ("mse", fd.SGD(lr=0.05), "leaky_relu", "linear", 0, 0, False),
]


@pytest.mark.parametrize(
    "loss, optimizer, hidden, output, l1, l2, resident",
    CASES,
    ids=[f"{c[0]}-{type(c[1]).__name__}-{'resident' if c[6] else 'streamed'}" for c in CASES],
)
def test_training_epochs_match_cpu(loss, optimizer, hidden, output, l1, l2, resident):
    model = _model(loss, optimizer, hidden, output, l1, l2)
    X, Y, weight = _data(model, n=6)
    engine = _engine(model)
    data = engine.dataset(X, Y, weight, resident=resident)
    assert data.resident is resident
    runner = _EpochRunner(model, X, Y, weight, 4)  # the CPU path Sequential.fit runs
    rng = np.random.default_rng(3)
    for _ in range(2):  # 2 epochs of 2 batches (4, 2 rows): longer ones in test_cuda_training
        order = rng.permutation(X.shape[0])
        hyper = model.optimizer.hyperparameters(model.dtype)
        loss_gpu, correct_gpu, bad_gpu = engine.train_epoch(data, order, 4, hyper)
        loss_cpu, correct_cpu, bad_cpu = runner.train(order, hyper)
        np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
        assert (correct_gpu, bad_gpu) == (correct_cpu, bad_cpu) and bad_cpu == -1
        _assert_same_state(engine, model)
    penalty = cpu_opt.penalty(
        model._params, model._n_weights, model.dtype.type(l1), model.dtype.type(l2)
    )
    np.testing.assert_allclose(engine.penalty(), penalty, rtol=1e-5, atol=1e-12)


def test_float64_training_matches_cpu_closely():
    model = _model("cross_entropy", fd.Adam(lr=0.01), dtype="float64", l2=1e-2)
    X, Y, weight = _data(model, n=6)
    engine = _engine(model)
    assert engine.dtype == np.float64
    order = np.arange(6)
    hyper = model.optimizer.hyperparameters(model.dtype)
    loss_gpu, _, _ = engine.train_epoch((X, Y, weight), order, 3, hyper)
    loss_cpu, _, _ = _EpochRunner(model, X, Y, weight, 3).train(order, hyper)
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-12)
    _assert_same_state(engine, model, {"rtol": 1e-10, "atol": 1e-12})


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_evaluate_predict_and_gradients_match_cpu(loss):
    output = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "sigmoid"}
    model = _model(loss, fd.SGD(lr=0.1), "tanh", output[loss])
    X, Y, weight = _data(model, n=9, seed=5)
    engine = _engine(model)
    for resident in (True, False):
        data = engine.dataset(X, Y, weight, resident=resident)
        loss_gpu, correct_gpu = engine.evaluate(data, batch_size=4)
        ws_off, Zbuf, Abuf = cpu_engine.workspace(model, 4, ("Z", "A"))
        loss_cpu, correct_cpu = cpu_net.evaluate(
            ALL, X, Y, weight, 4, model._net, LOSSES[loss], model._params, model._running,
            np.empty(0, model.dtype), ws_off, Zbuf, Abuf, np.empty(0, model.dtype),
        )  # fmt: skip
        np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
        assert correct_gpu == correct_cpu
        np.testing.assert_allclose(engine.predict(data, batch_size=4), model.predict(X), **TOL)
    np.testing.assert_allclose(engine.predict(X, batch_size=16), model.predict(X), **TOL)

    loss_gpu, correct_gpu, grads_gpu = engine.gradients(X, Y, weight)
    ws_off, Zbuf, Abuf, Dbuf = cpu_engine.workspace(model, X.shape[0], ("Z", "A", "D"))
    grads_cpu = np.zeros_like(model._params)
    no_stats = np.empty(0, model.dtype)
    loss_cpu, correct_cpu = cpu_net.forward_backward(
        ALL, X, Y, weight, model._net, LOSSES[loss], model.dtype.type(1.0), model._params,
        grads_cpu, model._running, no_stats, False, False, np.uint64(0), ws_off, Zbuf, Abuf, Dbuf,
        cpu_engine.first_layer_scratch(model, X, 0),
    )  # fmt: skip
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
    assert correct_gpu == correct_cpu
    np.testing.assert_allclose(grads_gpu, grads_cpu, **TOL)


@pytest.mark.parametrize("loss, output", [("mse", "linear"), ("poisson", "exp")])
def test_loss_weight_and_poisson_gradients_like_cpu(loss, output):
    # Sequential passes loss_weight to its engine; the loss sums leave it out on both sides.
    rng = np.random.default_rng(6)
    X = rng.standard_normal((6, N_IN))
    y = rng.poisson(1.5, (6, N_OUT)) if loss == "poisson" else rng.standard_normal((6, N_OUT))
    results = []
    for device in ("cpu", "cuda"):
        layers = [fd.Dense(N_IN, N_HIDDEN, "tanh"), fd.Dense(N_HIDDEN, N_OUT, output)]
        model = fd.Sequential(layers, seed=4, device=device)
        model.compile(loss, fd.SGD(lr=0.1), l2=1e-2, loss_weight=3.0)
        results.append(model.loss_and_gradients(X, y))
    (loss_cpu, grads_cpu), (loss_gpu, grads_gpu) = results
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
    for (dW_gpu, db_gpu), (dW_cpu, db_cpu) in zip(grads_gpu, grads_cpu):
        np.testing.assert_allclose(dW_gpu, dW_cpu, **TOL)
        np.testing.assert_allclose(db_gpu, db_cpu, **TOL)


def test_non_finite_batch_stops_updates_like_cpu():
    model = _model("cross_entropy", fd.Adam(lr=0.01), "relu", "softmax")
    X, Y, weight = _data(model, n=10, weighted=False)
    Y[7] = np.nan  # row 7 sits in the second batch of the identity order: a NaN loss
    engine = _engine(model)
    engine.snapshot()
    order = np.arange(10)
    hyper = model.optimizer.hyperparameters(model.dtype)
    loss_gpu, correct_gpu, bad_gpu = engine.train_epoch((X, Y, weight), order, 4, hyper)
    loss_cpu, correct_cpu, bad_cpu = _EpochRunner(model, X, Y, weight, 4).train(order, hyper)
    assert bad_gpu == bad_cpu == 1
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
    assert correct_gpu == correct_cpu
    _assert_same_state(engine, model)  # only batch 0 was applied, as on the CPU
    assert engine.step == 1 and engine.all_finite()
    engine.restore()
    params, _, step = engine.download()
    assert step == 0 and not np.array_equal(params, model._params)


def test_upload_download_round_trip_and_errors():
    model = _model("mse", fd.RMSprop(momentum=0.9), "relu", "linear")
    model._state[...] = np.random.default_rng(0).random(model._state.shape)
    engine = _engine(model)
    params = np.empty_like(model._params)
    state = np.empty_like(model._state)
    out_params, out_state, step = engine.download(params, state)
    assert out_params is params and out_state is state and step == 0
    np.testing.assert_array_equal(params, model._params)
    np.testing.assert_array_equal(state, model._state)
    engine.upload(model._params * 2, None, np.array([5]))
    params, state, step = engine.download()
    np.testing.assert_array_equal(params, model._params * 2)
    assert not state.any() and step == 5
    engine.set_params(model._params)  # parameters only: state and step stay
    params, _, step = engine.download()
    np.testing.assert_array_equal(params, model._params)
    assert step == 5
    with pytest.raises(ValueError, match="params has 3 entries"):
        engine.upload(np.zeros(3))
    with pytest.raises(ValueError, match="X must have shape"):
        engine.dataset(np.zeros((4, N_IN + 1)))
    with pytest.raises(ValueError, match="needs targets"):
        engine.evaluate(engine.dataset(np.zeros((4, N_IN))))
    with pytest.raises(RuntimeError, match="restore"):
        engine.restore()


def test_engine_needs_an_upload_first():
    model = _model("mse", fd.SGD(lr=0.1), "relu", "linear")
    engine = CudaEngine(model._net, LOSSES["mse"], model.optimizer.code, 0)
    with pytest.raises(RuntimeError, match="upload"):
        engine.predict(np.zeros((2, N_IN)))


def test_dataset_residency():
    model = _model("mse", fd.SGD(lr=0.1), "relu", "linear")
    X, Y, weight = _data(model, n=4)
    engine = _engine(model, max_resident_bytes=0)
    data = engine.dataset(X, Y)
    assert isinstance(data, DeviceDataset) and not data.resident and data.d_X is None
    assert (data.weight == 1).all() and "streamed" in repr(data)
    engine.max_resident_bytes = None
    # The simulator reports unlimited memory, and a GPU has room for 4 rows.
    assert engine.dataset(X, Y).resident


# ----------------------------------------------------------------------------- Sequential
needs_device_argument = pytest.mark.skipif(
    "device" not in inspect.signature(fd.Sequential).parameters,
    reason="Sequential does not take device= yet",
)


@needs_device_argument
def test_sequential_fit_on_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, N_IN)), rng.integers(0, N_OUT, 12)
    X_val, y_val = rng.standard_normal((5, N_IN)), rng.integers(0, N_OUT, 5)
    results = {}
    for device in ("cpu", "cuda"):
        model = fd.Sequential(
            [fd.Dense(N_IN, N_HIDDEN, "relu"), fd.Dense(N_HIDDEN, N_OUT, "softmax")],
            seed=3,
            device=device,
        )
        model.compile("cross_entropy", fd.Adam(lr=0.01), l1=1e-3, l2=1e-2)
        history = model.fit(
            X, y, epochs=2, batch_size=5, validation_data=(X_val, y_val), verbose=0,
            callbacks=[fd.EarlyStopping(patience=3)],
        )  # fmt: skip
        results[device] = (
            history.history,
            model._params.copy(),
            model._state.copy(),
            model._step.copy(),
            model.predict(X_val),
            model.evaluate(X_val, y_val),
        )
    cpu, gpu = results["cpu"], results["cuda"]
    assert cpu[0].keys() == gpu[0].keys()
    for key in cpu[0]:
        np.testing.assert_allclose(gpu[0][key], cpu[0][key], rtol=1e-5)
    for got, expected in zip(gpu[1:5], cpu[1:5]):
        np.testing.assert_allclose(got, expected, **TOL)
    np.testing.assert_allclose(gpu[5]["loss"], cpu[5]["loss"], rtol=1e-5)


def test_sparse_input_is_streamed_densified_batch_by_batch():
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(4)
    dense = rng.standard_normal((8, N_IN)) * (rng.random((8, N_IN)) < 0.4)
    dense[2] = 0  # an empty row
    X, y = sparse.csr_matrix(dense), rng.integers(0, N_OUT, 8)
    results = {}
    for device in ("cpu", "cuda"):
        model = fd.Sequential(
            [fd.Dense(N_IN, N_HIDDEN, "tanh"), fd.Dense(N_HIDDEN, N_OUT, "softmax")],
            seed=2,
            device=device,
        )
        model.compile("cross_entropy", fd.Adam(lr=0.01))
        model.fit(X, y, epochs=1, batch_size=4, verbose=0)  # two streamed batches
        loss, grads = model.loss_and_gradients(X.tocsc(), y)
        results[device] = (
            model._params.copy(), model.predict(X, batch_size=5),
            model.evaluate(X, y, batch_size=5)["loss"], loss, grads[0][0],
        )  # fmt: skip
    for got, expected in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(got, expected, **TOL)
    inputs = model._data(X, y)[0]
    assert not backend.new_engine(model).dataset(inputs).resident  # never copied whole
    with pytest.raises(ValueError, match="cannot be resident"):
        backend.new_engine(model).dataset(inputs, resident=True)


@needs_device_argument
def test_sequential_device_cuda_without_numba_cuda_raises_first(monkeypatch):
    monkeypatch.setattr(backend, "cuda", None)
    with pytest.raises(RuntimeError, match="numba-cuda"):
        fd.Sequential([fd.Dense(2, 1)], device="cuda")


# ----------------------------------------------------------------------------- availability
def test_require_cuda_accepts_this_machine():
    require_cuda()  # a GPU, or the simulator that conftest enables without one
    assert backend.cuda_problem() is None


def test_missing_numba_cuda_is_named(monkeypatch):
    monkeypatch.setattr(backend, "cuda", None)
    problem = backend.cuda_problem()
    assert "numba-cuda" in problem and 'pip install "fastdnn[cuda]"' in problem
    with pytest.raises(RuntimeError, match="not installed"):
        backend.require_cuda()
    with pytest.raises(RuntimeError, match="numba-cuda"):
        CudaEngine(None, 0, 0, 0)  # nothing half-initialised: raises before reading the table


@pytest.mark.parametrize(
    "error, expected",
    [
        ("\nCUDA driver library cannot be found.\nEnsure that...", "no NVIDIA driver"),
        ("Error at driver init: CUDA_ERROR_NO_DEVICE (100)", "no CUDA-capable GPU"),
        ("CUDA_ERROR_INSUFFICIENT_DRIVER (35)", "too old"),
        ("CUDA is disabled due to setting NUMBA_DISABLE_CUDA=1", "disabled"),
        ("something else", "failed to initialise"),
    ],
)
def test_driver_errors_are_explained(error, expected):
    what, fix = backend._describe_driver_error(error)
    assert expected in what and fix


def test_autoencoder_and_estimator_pass_the_device_through():
    X = np.random.default_rng(0).random((12, 4))
    autoencoder = fd.Autoencoder([4, 3, 2], device="cuda", seed=0)
    assert autoencoder.model.device == "cuda" and autoencoder.encoder.device == "cuda"
    regressor = fd.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, device="cuda")
    assert regressor.fit(X, X[:, 0]).model_.device == "cuda"


def test_repeated_inference_keeps_one_engine_and_follows_the_weights():
    # Batch scoring calls predict chunk by chunk: the engine and its device buffers are kept
    # between calls; only the current parameters are copied each time.
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((9, N_IN)), rng.integers(0, N_OUT, 9)
    layers = [fd.Dense(N_IN, N_HIDDEN, "relu"), fd.Dense(N_HIDDEN, N_OUT, "softmax")]
    gpu = fd.Sequential(layers, seed=5, device="cuda")
    cpu = fd.Sequential(layers, seed=5)
    np.testing.assert_allclose(gpu.predict(X[:4]), cpu.predict(X[:4]), **TOL)
    engine = gpu._scratch._engine
    np.testing.assert_allclose(gpu.predict(X[4:]), cpu.predict(X[4:]), **TOL)
    assert gpu._scratch._engine is engine
    weights = [(2 * W, b - 1) for W, b in cpu.get_weights()]
    gpu.set_weights(weights)
    cpu.set_weights(weights)
    np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), **TOL)
    assert gpu._scratch._engine is engine
    # compile changes the loss the engine computes: a new engine, and the right loss
    for model in (gpu, cpu):
        model.compile("cross_entropy", fd.SGD(lr=0.1), l2=0.01)
    np.testing.assert_allclose(gpu.evaluate(X, y)["loss"], cpu.evaluate(X, y)["loss"], rtol=1e-5)
    assert gpu._scratch._engine is not engine
    loss_gpu, grads_gpu = gpu.loss_and_gradients(X, y)
    loss_cpu, grads_cpu = cpu.loss_and_gradients(X, y)
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
    for (dW_gpu, db_gpu), (dW_cpu, db_cpu) in zip(grads_gpu, grads_cpu):
        np.testing.assert_allclose(dW_gpu, dW_cpu, **TOL)
        np.testing.assert_allclose(db_gpu, db_cpu, **TOL)
    # The engine is device memory, not state: a pickled model leaves it behind.
    assert "_scratch" not in gpu.__getstate__()


# ----------------------------------------------------------------------------- save / load
def _fitted(device):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, N_IN)), rng.integers(0, N_OUT, 10)
    model = fd.Sequential(
        [fd.Dense(N_IN, N_HIDDEN, "tanh"), fd.Dense(N_HIDDEN, N_OUT, "softmax")],
        seed=2,
        device=device,
    )
    model.compile("cross_entropy", fd.Adam(lr=0.01))
    model.fit(X, y, epochs=1, batch_size=5, verbose=0)
    return model, X, y


def test_load_keeps_the_saved_device_or_moves_the_model(tmp_path):
    model, X, y = _fitted("cuda")
    path = tmp_path / "gpu.npz"
    model.save(path)
    expected = model.predict(X)
    same = fd.load(path)
    assert same.device == "cuda"
    np.testing.assert_allclose(same.predict(X), expected, **TOL)
    moved = fd.load(path, device="cpu")
    assert moved.device == "cpu"
    np.testing.assert_allclose(moved.predict(X), expected, **TOL)
    # training resumes on the new device from the saved optimizer state, as on the old one
    same.fit(X, y, epochs=1, batch_size=5, verbose=0)
    moved.fit(X, y, epochs=1, batch_size=5, verbose=0)
    for (W_cpu, b_cpu), (W_gpu, b_gpu) in zip(moved.get_weights(), same.get_weights()):
        np.testing.assert_allclose(W_cpu, W_gpu, **TOL)
        np.testing.assert_allclose(b_cpu, b_gpu, **TOL)


def test_load_onto_cuda_from_a_cpu_file(tmp_path):
    model, X, _ = _fitted("cpu")
    path = tmp_path / "cpu.npz"
    model.save(path)
    assert fd.load(path).device == "cpu"
    on_gpu = fd.load(path, device="cuda")
    assert on_gpu.device == "cuda"
    # rebuilt whole: the compile settings come along, so training can resume on the device
    assert (on_gpu.loss, on_gpu.optimizer) == (model.loss, model.optimizer)
    np.testing.assert_allclose(on_gpu.predict(X), model.predict(X), **TOL)


def test_estimator_keeps_its_device_through_save_and_load(tmp_path):
    # The estimator's device parameter and its fitted network's device are saved separately
    # (estimator params, model meta): both must come back, and load(device=) must move both.
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((6, N_IN)), rng.integers(0, N_OUT, 6)
    clf = fd.MLPClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0, device="cuda")
    clf.fit(X, y)
    path = tmp_path / "clf.npz"
    clf.save(path)
    expected = clf.predict_proba(X)
    same = fd.load(path)
    assert same.device == "cuda" and same.model_.device == "cuda"
    np.testing.assert_allclose(same.predict_proba(X), expected, **TOL)
    moved = fd.load(path, device="cpu")
    assert moved.device == "cpu" and moved.model_.device == "cpu"
    np.testing.assert_allclose(moved.predict_proba(X), expected, **TOL)


def test_load_device_errors(tmp_path, monkeypatch):
    model, _, _ = _fitted("cuda")
    path = tmp_path / "gpu.npz"
    model.save(path)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        fd.load(path, device="gpu")
    pca = fd.PCA(2).fit(np.random.default_rng(0).random((6, 3)))
    pca.save(tmp_path / "pca.npz")
    with pytest.raises(ValueError, match="PCA cannot be loaded on device='cuda'"):
        fd.load(tmp_path / "pca.npz", device="cuda")
    monkeypatch.setattr(backend, "cuda", None)  # as on a machine without numba-cuda
    with pytest.raises(RuntimeError, match=r"numba-cuda.*device='cpu'"):
        fd.load(path)
    assert fd.load(path, device="cpu").device == "cpu"


def test_load_hint_only_when_cuda_is_unusable(tmp_path, monkeypatch):
    model, _, _ = _fitted("cpu")
    path = tmp_path / "cpu.npz"
    model.save(path)

    def broken(meta, arrays, device=None):
        raise RuntimeError("loader failed")

    monkeypatch.setitem(fd.io._LOADERS, "Sequential", (broken, ("cpu", "cuda")))
    with pytest.raises(RuntimeError, match="^loader failed$"):
        fd.load(path)


def test_gemm_tile_from_the_environment(monkeypatch):
    # For A/B runs of whole trainings on a GPU: FASTDNN_CUDA_TILE forces one tile everywhere.
    from fastdnn.kernels.cuda import dense

    model = _model("cross_entropy", fd.SGD(lr=0.1))
    X, Y, weight = _data(model, n=6)
    monkeypatch.setenv("FASTDNN_CUDA_TILE", "small")
    engine = _engine(model)
    assert engine._tile == dense.TILES["small"]
    loss_gpu, _, _ = engine.train_epoch(
        (X, Y, weight), np.arange(6), 6, model.optimizer.hyperparameters(model.dtype)
    )
    loss_cpu, _, _ = _EpochRunner(model, X, Y, weight, 6).train(
        np.arange(6), model.optimizer.hyperparameters(model.dtype)
    )
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
    _assert_same_state(engine, model)
    assert _engine(model, tile="tiny")._tile == dense.TILES["tiny"]  # the argument wins
    monkeypatch.setenv("FASTDNN_CUDA_TILE", "enormous")
    with pytest.raises(ValueError, match="unknown GEMM tile 'enormous'.*huge, wide"):
        _engine(model)
