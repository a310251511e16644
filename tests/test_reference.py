"""Training, prediction and evaluation against the plain-NumPy reference (and PyTorch, if present).

Training runs with ``shuffle=False`` so both sides see the same batches: 23 rows in batches of 5
(four full batches and a partial one of 3) for several epochs.
"""

import numpy as np
import pytest
import reference as ref

import fastdnn as fd

ACTS = ["tanh", "relu", "softmax"]

# (fastdnn optimizer, reference optimizer); the same hyper-parameters on both sides.
OPTIMIZERS = {
    "sgd": (lambda: fd.SGD(0.1), lambda: ref.SGD(0.1)),
    "sgd_momentum": (lambda: fd.SGD(0.1, momentum=0.9), lambda: ref.SGD(0.1, momentum=0.9)),
    "sgd_nesterov": (
        lambda: fd.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: ref.SGD(0.1, momentum=0.9, nesterov=True),
    ),
    "adam": (lambda: fd.Adam(0.01), lambda: ref.Adam(0.01)),
    "adam_custom": (
        lambda: fd.Adam(0.02, beta1=0.8, beta2=0.95, eps=1e-6),
        lambda: ref.Adam(0.02, beta1=0.8, beta2=0.95, eps=1e-6),
    ),
    "adamw": (
        lambda: fd.AdamW(0.01, weight_decay=0.1),
        lambda: ref.AdamW(0.01, weight_decay=0.1),
    ),
    "rmsprop": (lambda: fd.RMSprop(0.01), lambda: ref.RMSprop(0.01)),
    "rmsprop_momentum": (
        lambda: fd.RMSprop(0.01, rho=0.9, momentum=0.5),
        lambda: ref.RMSprop(0.01, rho=0.9, momentum=0.5),
    ),
}
PENALTIES = {"none": (0.0, 0.0), "l1": (1e-2, 0.0), "l2": (0.0, 5e-2), "l1_l2": (1e-3, 1e-2)}


def problem(dtype="float64", n=23, n_in=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    labels = rng.integers(0, n_classes, n)
    return X, labels, ref.one_hot(labels, n_classes)


def model_and_params(dtype="float64", acts=ACTS, loss="cross_entropy", optimizer=None, **penalty):
    sizes = [4, 6, 5, 3]
    model = fd.Sequential(
        [fd.Dense(a, b, act) for a, b, act in zip(sizes, sizes[1:], acts)], dtype=dtype, seed=0
    )
    model.compile(loss, optimizer, **penalty)
    params = [[W.astype(np.float64), b.astype(np.float64)] for W, b in model.get_weights()]
    return model, params


def assert_weights_close(model, params, rtol, atol):
    for layer, ((W, b), (rW, rb)) in enumerate(zip(model.get_weights(), params)):
        assert W.dtype == model.dtype and b.dtype == model.dtype
        np.testing.assert_allclose(W, rW, rtol=rtol, atol=atol, err_msg=f"layer {layer} W")
        np.testing.assert_allclose(b, rb, rtol=rtol, atol=atol, err_msg=f"layer {layer} b")


@pytest.mark.parametrize("penalty", PENALTIES, ids=list(PENALTIES))
@pytest.mark.parametrize("name", OPTIMIZERS, ids=list(OPTIMIZERS))
def test_training_matches_reference_float64(name, penalty):
    make_fd, make_ref = OPTIMIZERS[name]
    l1, l2 = PENALTIES[penalty]
    X, y, Y = problem()
    model, params = model_and_params(optimizer=make_fd(), l1=l1, l2=l2)
    history = model.fit(X, y, epochs=3, batch_size=5, shuffle=False, verbose=0)
    ref_losses = ref.train(params, ACTS, "cross_entropy", X, Y, make_ref(), 5, 3, l1=l1, l2=l2)
    assert_weights_close(model, params, rtol=1e-10, atol=1e-13)
    # The epoch loss is the mean over its batches (each before its update) plus the penalty of
    # the weights at the end of the epoch.
    end_penalty = ref.penalty(params, l1, l2)
    assert history.history["loss"][-1] == pytest.approx(ref_losses[-1] + end_penalty, rel=1e-10)
    if l1 == l2 == 0:
        np.testing.assert_allclose(history.history["loss"], ref_losses, rtol=1e-10)
    assert model._step[0] == 3 * 5  # ceil(23 / 5) updates per epoch


@pytest.mark.parametrize("name", ["adam", "sgd_momentum"])
def test_training_matches_reference_float32(name):
    make_fd, make_ref = OPTIMIZERS[name]
    X, y, Y = problem("float32")
    model, params = model_and_params("float32", optimizer=make_fd(), l2=1e-2)
    model.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    ref.train(params, ACTS, "cross_entropy", X, Y, make_ref(), 8, 2, l2=1e-2)
    assert_weights_close(model, params, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss, output, optimizer",
    [
        ("mse", "linear", "sgd_momentum"),
        ("mse", "sigmoid", "adam"),
        ("mse", "softplus", "rmsprop"),
        ("binary_cross_entropy", "sigmoid", "adamw"),
        ("poisson", "exp", "adam"),
    ],
)
def test_other_losses_train_like_reference(loss, output, optimizer):
    make_fd, make_ref = OPTIMIZERS[optimizer]
    rng = np.random.default_rng(1)
    X = rng.normal(size=(17, 4))
    if loss == "mse":
        Y = rng.normal(size=(17, 3))
    elif loss == "poisson":
        Y = rng.poisson(2.0, (17, 3)).astype(np.float64)
    else:
        Y = rng.integers(0, 2, (17, 3)).astype(np.float64)
    acts = ["tanh", "relu", output]
    model, params = model_and_params(acts=acts, loss=loss, optimizer=make_fd(), l1=1e-3)
    history = model.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    ref_losses = ref.train(params, acts, loss, X, Y, make_ref(), 4, 2, l1=1e-3)
    assert_weights_close(model, params, rtol=1e-10, atol=1e-13)
    end_penalty = ref.penalty(params, 1e-3)
    assert history.history["loss"][-1] == pytest.approx(ref_losses[-1] + end_penalty, rel=1e-10)


@pytest.mark.parametrize(
    "loss, output, dtype, rtol",
    [
        ("cross_entropy", "softmax", "float64", 1e-12),
        ("mse", "linear", "float64", 1e-12),
        ("mse", "sigmoid", "float32", 1e-5),
    ],
)
def test_loss_weight_two_trains_like_twice_the_learning_rate(loss, output, dtype, rtol):
    # Plain SGD, no penalty: the update lr * loss_weight * gradient is the same either way.
    X, y, Y = problem(dtype)
    y = y if loss == "cross_entropy" else Y
    acts = ["tanh", "relu", output]
    weighted, _ = model_and_params(dtype, acts, loss, fd.SGD(0.05), loss_weight=2.0)
    doubled, _ = model_and_params(dtype, acts, loss, fd.SGD(0.1))
    history_w = weighted.fit(X, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    history_d = doubled.fit(X, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    for (W1, b1), (W2, b2) in zip(weighted.get_weights(), doubled.get_weights()):
        np.testing.assert_allclose(W1, W2, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(b1, b2, rtol=rtol, atol=rtol)
    # The reported losses carry the factor.
    np.testing.assert_allclose(
        history_w.history["loss"], 2 * np.array(history_d.history["loss"]), rtol=rtol
    )
    assert weighted.evaluate(X, y)["loss"] == pytest.approx(
        2 * doubled.evaluate(X, y)["loss"], rel=rtol
    )


def test_full_batch_sgd_is_plain_gradient_descent():
    X, y, Y = problem()
    model, params = model_and_params(optimizer=fd.SGD(0.5))
    model.fit(X, y, epochs=4, batch_size=len(X), shuffle=True, verbose=0)  # order is irrelevant
    for _ in range(4):
        _, grads, _ = ref.loss_and_grads(params, ACTS, "cross_entropy", X, Y)
        for pair, grad_pair in zip(params, grads):
            for p, g in zip(pair, grad_pair):
                p -= 0.5 * g
    assert_weights_close(model, params, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-12, 1e-14), ("float32", 1e-5, 1e-6)])
def test_predict_and_evaluate_cross_entropy(dtype, rtol, atol):
    X, y, Y = problem(dtype, n=50)
    model, params = model_and_params(dtype, l1=1e-3, l2=1e-2)
    predicted = model.predict(X, batch_size=7)  # seven full batches and a partial one
    proba = ref.predict(params, ACTS, X)
    assert predicted.dtype == np.dtype(dtype) and predicted.shape == (50, 3)
    np.testing.assert_allclose(predicted, proba, rtol=rtol, atol=atol)
    loss, _, _ = ref.loss_and_grads(params, ACTS, "cross_entropy", X, Y, l1=1e-3, l2=1e-2)
    scores = model.evaluate(X, y, batch_size=16)
    assert set(scores) == {"loss", "accuracy"}
    assert scores["loss"] == pytest.approx(loss, rel=10 * rtol)
    assert scores["accuracy"] == ref.accuracy("cross_entropy", proba, Y)
    # one-hot rows give the same scores as integer labels
    assert model.evaluate(X, Y)["loss"] == pytest.approx(scores["loss"], rel=10 * rtol)


@pytest.mark.parametrize(
    "loss, output", [("binary_cross_entropy", "sigmoid"), ("mse", "tanh"), ("poisson", "exp")]
)
def test_evaluate_other_losses(loss, output):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4))
    Y = rng.integers(0, 2, (30, 3)).astype(np.float64)
    acts = ["tanh", "elu", output]
    model, params = model_and_params(acts=acts, loss=loss)
    scores = model.evaluate(X, Y, batch_size=8)
    value, _, out = ref.loss_and_grads(params, acts, loss, X, Y)
    assert scores["loss"] == pytest.approx(value, rel=1e-12)
    if loss in ("mse", "poisson"):
        assert set(scores) == {"loss"}  # no accuracy for regression losses
    else:
        assert scores["accuracy"] == ref.accuracy(loss, out, Y)


@pytest.mark.parametrize("activation", [*ref.ELEMENTWISE_ACTIVATIONS, "softmax"])
def test_float32_activations_match_float64_reference(activation):
    # float32 uses the vectorised exp/tanh/expm1/log1p; compare with exact float64 math,
    # over inputs wide enough to reach both branches of each.
    X = np.linspace(-6, 6, 60 * 4).reshape(60, 4).astype(np.float32)
    model = fd.Sequential([fd.Dense(4, 5, activation)], seed=3)
    model.set_weights([(np.eye(5, 4) * 2 - 0.3, np.linspace(-1, 1, 5))])
    params = [[W.astype(np.float64), b.astype(np.float64)] for W, b in model.get_weights()]
    expected = ref.predict(params, [activation], X)
    predicted = model.predict(X)
    assert predicted.dtype == np.float32
    np.testing.assert_allclose(predicted, expected, rtol=2e-6, atol=2e-6)


def test_float32_gradients_match_float64_reference():
    X, y, Y = problem("float32")
    model, params = model_and_params("float32", l1=1e-3, l2=1e-2)
    loss, grads = model.loss_and_gradients(X, y)
    ref_loss, ref_grads, _ = ref.loss_and_grads(params, ACTS, "cross_entropy", X, Y, 1e-3, 1e-2)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for (dW, db), (rW, rb) in zip(grads, ref_grads):
        assert dW.dtype == np.float32 and db.dtype == np.float32
        np.testing.assert_allclose(dW, rW, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(db, rb, rtol=1e-4, atol=1e-6)


def test_weighted_evaluate_matches_reference():
    X, y, Y = problem()
    model, params = model_and_params()
    weight = np.random.default_rng(0).uniform(0.1, 3.0, len(X))
    expected, _, _ = ref.loss_and_grads(params, ACTS, "cross_entropy", X, Y, weight=weight)
    assert model.evaluate(X, y, sample_weight=weight)["loss"] == pytest.approx(expected, rel=1e-12)
    assert model.evaluate(X, y)["loss"] != pytest.approx(expected, rel=1e-3)


# ----------------------------------------------------------------------------- PyTorch
TORCH_CASES = ["sgd_momentum", "sgd_nesterov_l2", "adam", "adam_l1_l2", "adamw", "rmsprop",
               "rmsprop_momentum"]  # fmt: skip


def torch_optimizer(torch, name, weights, biases):
    """The torch.optim twin of a case; fastdnn's l2 is torch's weight_decay on weights only."""
    optim = torch.optim
    if name == "sgd_momentum":
        return optim.SGD(weights + biases, lr=0.1, momentum=0.9), fd.SGD(0.1, 0.9), {}
    if name == "sgd_nesterov_l2":
        groups = [{"params": weights, "weight_decay": 0.05}, {"params": biases}]
        opt = optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True)
        return opt, fd.SGD(0.1, 0.9, nesterov=True), {"l2": 0.05}
    if name == "adam":
        return optim.Adam(weights + biases, lr=0.01), fd.Adam(0.01), {}
    if name == "adam_l1_l2":
        # L1 goes into torch's loss (gradient l1 * sign(W)); L2 is Adam's coupled weight decay.
        groups = [{"params": weights, "weight_decay": 0.05}, {"params": biases}]
        return optim.Adam(groups, lr=0.01), fd.Adam(0.01), {"l1": 0.01, "l2": 0.05}
    if name == "adamw":
        opt = optim.AdamW(weights + biases, lr=0.01, weight_decay=0.1)
        return opt, fd.AdamW(0.01, weight_decay=0.1), {}
    if name == "rmsprop":
        return optim.RMSprop(weights + biases, lr=0.01), fd.RMSprop(0.01), {}
    if name == "rmsprop_momentum":
        opt = optim.RMSprop(weights + biases, lr=0.01, alpha=0.9, momentum=0.5)
        return opt, fd.RMSprop(0.01, rho=0.9, momentum=0.5), {}
    raise ValueError(name)


@pytest.mark.parametrize("name", TORCH_CASES)
def test_optimizers_match_torch(name):
    torch = pytest.importorskip("torch")
    X, y, _ = problem()
    model, _ = model_and_params()
    linears = []
    for W, b in model.get_weights():
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        linears.append(linear)
    net = torch.nn.Sequential(linears[0], torch.nn.Tanh(), linears[1], torch.nn.ReLU(), linears[2])
    weights = [linear.weight for linear in linears]
    optimizer, fd_optimizer, penalty = torch_optimizer(
        torch, name, weights, [linear.bias for linear in linears]
    )
    model.compile("cross_entropy", fd_optimizer, **penalty)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(2):
        for start in range(0, len(X), 5):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                net(Xt[start : start + 5]), yt[start : start + 5]
            )
            loss = loss + penalty.get("l1", 0.0) * sum(w.abs().sum() for w in weights)
            loss.backward()
            optimizer.step()
    model.fit(X, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    for (W, b), linear in zip(model.get_weights(), linears):
        np.testing.assert_allclose(W, linear.weight.detach().numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, linear.bias.detach().numpy(), rtol=1e-9, atol=1e-12)
