"""Every gradient against central finite differences, in float64."""

import numpy as np
import pytest
from reference import loss_and_grads

import fastdnn as fd

HIDDEN = ["linear", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "softplus"]
EPS = 1e-6


def _data(loss, n=7, n_in=3, n_out=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        return X, rng.integers(0, n_out, n)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (n, n_out)).astype(float)
    return X, rng.normal(size=(n, n_out))


def _check(model, X, y, tol=1e-7):
    loss, grads = model.loss_and_gradients(X, y)
    weights = model.get_weights()
    for layer, ((W, b), (dW, db)) in enumerate(zip(weights, grads)):
        for array, analytic, kind in ((W, dW, 0), (b, db, 1)):
            numeric = np.zeros_like(array)
            for index in np.ndindex(array.shape):
                values = []
                for sign in (1, -1):
                    trial = [(w.copy(), c.copy()) for w, c in weights]
                    trial[layer][kind][index] += sign * EPS
                    model.set_weights(trial)
                    values.append(model.loss_and_gradients(X, y)[0])
                numeric[index] = (values[0] - values[1]) / (2 * EPS)
            model.set_weights(weights)
            scale = max(np.abs(numeric).max(), 1e-3)
            np.testing.assert_allclose(analytic, numeric, rtol=0, atol=tol * scale)
    return loss


@pytest.mark.parametrize("activation", HIDDEN)
def test_every_hidden_activation(activation):
    model = fd.Sequential(
        [fd.Dense(3, 5, activation), fd.Dense(5, 4, "softmax")], dtype="float64", seed=1
    )
    model.compile("cross_entropy")
    _check(model, *_data("cross_entropy"))


@pytest.mark.parametrize(
    "loss, output",
    [
        ("cross_entropy", "softmax"),
        ("binary_cross_entropy", "sigmoid"),
        ("mse", "linear"),
        ("mse", "sigmoid"),
        ("mse", "tanh"),
        ("mse", "softplus"),
        ("mse", "gelu"),
    ],
)
def test_every_loss(loss, output):
    model = fd.Sequential([fd.Dense(3, 5, "tanh"), fd.Dense(5, 4, output)], dtype="float64", seed=2)
    model.compile(loss)
    _check(model, *_data(loss))


def test_cross_entropy_with_one_hot_rows_equals_integer_labels():
    model = fd.Sequential([fd.Dense(3, 4, "softmax")], dtype="float64", seed=3)
    model.compile("cross_entropy")
    X, labels = _data("cross_entropy")
    loss_labels, grads_labels = model.loss_and_gradients(X, labels)
    loss_rows = _check(model, X, np.eye(4)[labels])
    assert loss_rows == pytest.approx(loss_labels, rel=1e-14)
    soft = np.full((len(X), 4), 0.25)  # probability rows are accepted too
    _check(model, X, soft)


@pytest.mark.parametrize("l1, l2", [(0.01, 0.0), (0.0, 0.1), (0.01, 0.1)])
def test_l1_and_l2_penalties(l1, l2):
    model = fd.Sequential(
        [fd.Dense(3, 5, "sigmoid"), fd.Dense(5, 4, "softmax")], dtype="float64", seed=4
    )
    model.compile("cross_entropy", l1=l1, l2=l2)
    X, y = _data("cross_entropy")
    loss = _check(model, X, y)
    plain = fd.Sequential(
        [fd.Dense(3, 5, "sigmoid"), fd.Dense(5, 4, "softmax")], dtype="float64", seed=4
    )
    plain.compile("cross_entropy")
    weights = np.concatenate([W.ravel() for W, _ in model.get_weights()])
    penalty = l1 * np.abs(weights).sum() + 0.5 * l2 * (weights**2).sum()
    assert loss == pytest.approx(plain.loss_and_gradients(X, y)[0] + penalty, rel=1e-12)


def test_three_layer_network_and_numpy_reference():
    model = fd.Sequential(
        [fd.Dense(3, 6, "relu"), fd.Dense(6, 5, "gelu"), fd.Dense(5, 4, "softmax")],
        dtype="float64",
        seed=5,
    )
    model.compile("cross_entropy", l1=1e-3, l2=1e-2)
    X, y = _data("cross_entropy", n=9)
    loss = _check(model, X, y)
    params = [[W, b] for W, b in model.get_weights()]
    ref_loss, ref_grads, _ = loss_and_grads(
        params, ["relu", "gelu", "softmax"], "cross_entropy", X, np.eye(4)[y], l1=1e-3, l2=1e-2
    )
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for (dW, db), (rW, rb) in zip(model.loss_and_gradients(X, y)[1], ref_grads):
        np.testing.assert_allclose(dW, rW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, rb, rtol=1e-10, atol=1e-14)


def test_sample_weights_gradient():
    model = fd.Sequential([fd.Dense(3, 4, "softmax")], dtype="float64", seed=6)
    model.compile("cross_entropy")
    X, y = _data("cross_entropy")
    w = np.random.default_rng(0).uniform(0.1, 3.0, len(X))
    # evaluate's weighted loss equals the reference's weighted mean
    ref, _, _ = loss_and_grads([[W, b] for W, b in model.get_weights()], ["softmax"],
                               "cross_entropy", X, np.eye(4)[y], weight=w)  # fmt: skip
    assert model.evaluate(X, y, sample_weight=w)["loss"] == pytest.approx(ref, rel=1e-12)
