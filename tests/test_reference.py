"""Training steps, predictions and evaluation against the plain-NumPy reference (and PyTorch)."""

import numpy as np
import pytest
import reference as ref

import fastdnn as fd

OPTIMIZERS = [
    (fd.SGD(0.1), ("sgd", {"lr": 0.1})),
    (fd.SGD(0.1, momentum=0.9), ("sgd", {"lr": 0.1, "momentum": 0.9})),
    (
        fd.SGD(0.1, momentum=0.9, nesterov=True),
        ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ),
    (fd.Adam(0.01), ("adam", {"lr": 0.01})),
    (fd.AdamW(0.01, weight_decay=0.1), ("adamw", {"lr": 0.01, "weight_decay": 0.1})),
    (fd.RMSprop(0.01), ("rmsprop", {"lr": 0.01})),
    (fd.RMSprop(0.01, momentum=0.5), ("rmsprop", {"lr": 0.01, "momentum": 0.5})),
]  # fmt: skip
IDS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "rmsprop_momentum"]


def _problem(dtype, loss="cross_entropy", n=23, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(dtype)
    if loss == "cross_entropy":
        labels = rng.integers(0, 3, n)
        return X, labels, np.eye(3)[labels]
    Y = rng.normal(size=(n, 3))
    return X, Y, Y


def _model(dtype, output="softmax", loss="cross_entropy", optimizer=None, l1=0.0, l2=0.0):
    model = fd.Sequential(
        [fd.Dense(4, 6, "tanh"), fd.Dense(6, 5, "relu"), fd.Dense(5, 3, output)],
        dtype=dtype,
        seed=0,
    )
    model.compile(loss, optimizer, l1=l1, l2=l2)
    return model


@pytest.mark.parametrize("fd_opt, ref_opt", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (1e-3, 1e-2)])
def test_training_matches_reference_float64(fd_opt, ref_opt, l1, l2):
    X, y, Y = _problem("float64")
    model = _model("float64", optimizer=fd_opt, l1=l1, l2=l2)
    params = [[W.copy(), b.copy()] for W, b in model.get_weights()]
    # batch 5 over 23 rows: four full batches and a last partial batch of 3, three epochs.
    history = model.fit(X, y, epochs=3, batch_size=5, shuffle=False, verbose=0)
    optimizer = ref.Optimizer(ref_opt[0], **ref_opt[1])
    ref_losses = ref.train(
        params, ["tanh", "relu", "softmax"], "cross_entropy", X, Y, optimizer,
        batch_size=5, epochs=3, l1=l1, l2=l2,
    )  # fmt: skip
    for (W, b), (rW, rb) in zip(model.get_weights(), params):
        np.testing.assert_allclose(W, rW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, rb, rtol=1e-10, atol=1e-12)
    if l1 == l2 == 0:
        np.testing.assert_allclose(history.history["loss"], ref_losses, rtol=1e-10)


@pytest.mark.parametrize(
    "fd_opt, ref_opt",
    [OPTIMIZERS[1], OPTIMIZERS[3], OPTIMIZERS[6]],
    ids=["momentum", "adam", "rmsprop_momentum"],
)
def test_training_matches_reference_float32(fd_opt, ref_opt):
    X, y, Y = _problem("float32")
    model = _model("float32", optimizer=fd_opt)
    params = [[W.astype(np.float64), b.astype(np.float64)] for W, b in model.get_weights()]
    model.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    ref.train(params, ["tanh", "relu", "softmax"], "cross_entropy", X.astype(np.float64), Y,
              ref.Optimizer(ref_opt[0], **ref_opt[1]), batch_size=8, epochs=2)  # fmt: skip
    for (W, b), (rW, rb) in zip(model.get_weights(), params):
        assert W.dtype == np.float32
        np.testing.assert_allclose(W, rW, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b, rb, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "loss, output", [("mse", "linear"), ("mse", "sigmoid"), ("binary_cross_entropy", "sigmoid")]
)
def test_other_losses_train_like_reference(loss, output):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(17, 4))
    Y = rng.integers(0, 2, (17, 3)).astype(float) if loss != "mse" else rng.normal(size=(17, 3))
    model = _model("float64", output=output, loss=loss, optimizer=fd.Adam(0.01))
    params = [[W.copy(), b.copy()] for W, b in model.get_weights()]
    model.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    ref.train(params, ["tanh", "relu", output], loss, X, Y, ref.Optimizer("adam", lr=0.01),
              batch_size=4, epochs=2)  # fmt: skip
    for (W, b), (rW, rb) in zip(model.get_weights(), params):
        np.testing.assert_allclose(W, rW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, rb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_predict_and_evaluate_match_reference(dtype, tol):
    X, y, Y = _problem(dtype, n=50)
    model = _model(dtype)
    params = [[W.astype(np.float64), b.astype(np.float64)] for W, b in model.get_weights()]
    loss, _, proba = ref.loss_and_grads(params, ["tanh", "relu", "softmax"], "cross_entropy",
                                        X.astype(np.float64), Y)  # fmt: skip
    predicted = model.predict(X, batch_size=7)  # several batches and a partial one
    assert predicted.dtype == np.dtype(dtype) and predicted.shape == (50, 3)
    np.testing.assert_allclose(predicted, proba, rtol=tol, atol=tol)
    scores = model.evaluate(X, y, batch_size=16)
    assert scores["loss"] == pytest.approx(loss, rel=tol * 10)
    assert scores["accuracy"] == pytest.approx(np.mean(proba.argmax(1) == y))


def test_same_seed_same_weights_different_seed_different():
    X, y, _ = _problem("float32", n=64)

    def trained(seed):
        model = fd.Sequential([fd.Dense(4, 8, "relu"), fd.Dense(8, 3, "softmax")], seed=seed)
        initial = model.get_weights()
        model.compile("cross_entropy", fd.Adam(0.01))
        model.fit(X, y, epochs=3, batch_size=8, verbose=0)  # shuffled, seeded
        return initial, model.get_weights()

    (init_a, final_a), (init_b, final_b), (init_c, _) = trained(7), trained(7), trained(8)
    for (Wa, ba), (Wb, bb) in zip(final_a + init_a, final_b + init_b):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    assert not np.array_equal(init_a[0][0], init_c[0][0])


def test_initialisation_he_and_glorot_ranges():
    model = fd.Sequential([fd.Dense(400, 300, "relu"), fd.Dense(300, 100, "tanh")], seed=0)
    (W1, b1), (W2, b2) = model.get_weights()
    assert np.abs(W1).max() <= np.sqrt(6 / 400) and W1.std() == pytest.approx(
        np.sqrt(2 / 400), rel=0.05
    )
    assert np.abs(W2).max() <= np.sqrt(6 / 400) and W2.std() == pytest.approx(
        np.sqrt(2 / 400), rel=0.05
    )
    assert not b1.any() and not b2.any()
    assert W1.dtype == np.float32


def test_torch_optimizers_agree():
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    X, y, _ = _problem("float64")
    cases = [
        (
            fd.SGD(0.1, momentum=0.9, nesterov=True),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        ),
        (fd.Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
        (fd.AdamW(0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
        (fd.RMSprop(0.01, momentum=0.5), lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5)),
    ]  # fmt: skip
    for fd_opt, make in cases:
        model = _model("float64", optimizer=fd_opt)
        layers = []
        for (W, b), act in zip(model.get_weights(), [torch.nn.Tanh(), torch.nn.ReLU(), None]):
            linear = torch.nn.Linear(W.shape[1], W.shape[0])
            linear.weight.data = torch.from_numpy(W.copy())
            linear.bias.data = torch.from_numpy(b.copy())
            layers += [linear] + ([act] if act is not None else [])
        net = torch.nn.Sequential(*layers)
        optimizer = make(net.parameters())
        for start in range(0, len(X), 5):
            optimizer.zero_grad()
            logits = net(torch.from_numpy(X[start : start + 5]))
            torch.nn.functional.cross_entropy(
                logits, torch.from_numpy(y[start : start + 5])
            ).backward()
            optimizer.step()
        model.fit(X, y, epochs=1, batch_size=5, shuffle=False, verbose=0)
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for (W, b), linear in zip(model.get_weights(), linears):
            np.testing.assert_allclose(W, linear.weight.detach().numpy(), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(b, linear.bias.detach().numpy(), rtol=1e-9, atol=1e-12)
    torch.set_default_dtype(torch.float32)
