"""``loss_and_gradients`` against central finite differences of its own loss, in float64.

Each check perturbs one parameter at a time through ``get_weights``/``set_weights`` by
``+-EPS`` and compares ``(L(p + EPS) - L(p - EPS)) / (2 EPS)`` with the analytic gradient.
Data and weights are chosen away from the kinks of ReLU-type activations and of ``|W|``.
"""

import numpy as np
import pytest
import reference as ref

import fastdnn as fd

EPS = 1e-6
RTOL = 1e-6
KINKED = {"relu", "leaky_relu", "elu"}  # f' (or f'') jumps at z = 0


def numeric_gradients(model, X, y, training=False):
    """Central differences of ``model.loss_and_gradients(X, y, training)[0]`` w.r.t. every
    parameter, one list per layer shaped like its gradients (a BatchNorm's running statistics,
    which ``get_weights`` also returns, are left alone)."""
    weights = model.get_weights()
    n_params = [len(g) for g in model.loss_and_gradients(X, y)[1]]
    numeric = []
    try:
        for layer, values in enumerate(weights):
            per_layer = []
            for slot in range(n_params[layer]):
                out = np.zeros_like(values[slot])
                for index in np.ndindex(out.shape):
                    losses = []
                    for sign in (1.0, -1.0):
                        trial = [[v.copy() for v in vs] for vs in weights]
                        trial[layer][slot][index] += sign * EPS
                        model.set_weights(trial)
                        losses.append(model.loss_and_gradients(X, y, training=training)[0])
                    out[index] = (losses[0] - losses[1]) / (2 * EPS)
                per_layer.append(out)
            numeric.append(per_layer)
    finally:
        model.set_weights(weights)
    return numeric


def check_gradients(model, X, y):
    """Assert analytic == numeric gradients to ``RTOL``; returns the loss."""
    assert model.dtype == np.float64
    loss, grads = model.loss_and_gradients(X, y)
    numeric = numeric_gradients(model, X, y)
    scale = max(np.abs(n).max() for pair in numeric for n in pair)
    assert scale > 1e-3, "degenerate check: every gradient is (nearly) zero"
    for layer, ((dW, db), (nW, nb)) in enumerate(zip(grads, numeric)):
        for analytic, num, what in ((dW, nW, "dW"), (db, nb, "db")):
            assert analytic.dtype == np.float64 and analytic.shape == num.shape
            # Relative to each element, with the largest gradient as the floor for tiny ones.
            np.testing.assert_allclose(
                analytic, num, rtol=RTOL, atol=RTOL * scale, err_msg=f"layer {layer} {what}"
            )
    # The FD check above uses the model's own loss; make sure that loss is unchanged by it.
    assert model.loss_and_gradients(X, y)[0] == loss
    return loss


def assert_away_from_kinks(model, X, margin=1e-3):
    """No pre-activation of a kinked activation lies within ``margin`` of 0."""
    params = [[W, b] for W, b in model.get_weights()]
    acts = [layer.activation for layer in model.layers]
    zs, _ = ref.forward(params, acts, X)
    for z, act in zip(zs, acts):
        if act in KINKED:
            assert np.abs(z).min() > margin, f"{act} pre-activation too close to its kink"


def push_weights_from_zero(model, margin=0.05):
    """Move every weight at least ``margin`` away from 0 (``|W|`` has a kink there)."""
    pushed = []
    for W, b in model.get_weights():
        pushed.append((np.where(W >= 0, 1.0, -1.0) * np.maximum(np.abs(W), margin), b))
    model.set_weights(pushed)


def data(loss, n=7, n_in=3, n_out=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        return X, rng.integers(0, n_out, n)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (n, n_out)).astype(np.float64)
    if loss == "poisson":
        y = rng.poisson(1.5, (n, n_out)).astype(np.float64)  # a fifth of them 0
        y[0, :2] = [0.37, 7.5]  # rates, not only counts
        return X, y
    return X, rng.normal(size=(n, n_out))


def net(acts, sizes, seed=1):
    layers = [fd.Dense(a, b, act) for a, b, act in zip(sizes, sizes[1:], acts)]
    return fd.Sequential(layers, dtype="float64", seed=seed)


@pytest.mark.parametrize("activation", ref.ELEMENTWISE_ACTIVATIONS)
def test_hidden_activation_gradients(activation):
    model = net([activation, "softmax"], [3, 5, 4])
    model.compile("cross_entropy")
    X, y = data("cross_entropy")
    # Non-zero biases so that every activation is probed off-centre too.
    model.set_weights([(W, np.linspace(-0.3, 0.3, b.size)) for W, b in model.get_weights()])
    assert_away_from_kinks(model, X)
    check_gradients(model, X, y)


@pytest.mark.parametrize("output", ref.ELEMENTWISE_ACTIVATIONS)
def test_mse_gradients_for_every_output_activation(output):
    model = net(["tanh", output], [3, 5, 4], seed=2)
    model.compile("mse")
    X, y = data("mse")
    assert_away_from_kinks(model, X)
    loss = check_gradients(model, X, y)
    params = [[W, b] for W, b in model.get_weights()]
    assert loss == pytest.approx(ref.loss_and_grads(params, ["tanh", output], "mse", X, y)[0])


def test_cross_entropy_gradients_with_integer_labels():
    model = net(["sigmoid", "softmax"], [3, 5, 4], seed=3)
    model.compile("cross_entropy")
    check_gradients(model, *data("cross_entropy"))


def test_cross_entropy_gradients_with_one_hot_and_probability_rows():
    model = net(["sigmoid", "softmax"], [3, 5, 4], seed=3)
    model.compile("cross_entropy")
    X, labels = data("cross_entropy")
    loss_labels, grads_labels = model.loss_and_gradients(X, labels)
    loss_rows = check_gradients(model, X, np.eye(4)[labels])
    assert loss_rows == pytest.approx(loss_labels, rel=1e-14)
    _, grads_rows = model.loss_and_gradients(X, np.eye(4)[labels])
    for pair_labels, pair_rows in zip(grads_labels, grads_rows):
        for a, b in zip(pair_labels, pair_rows):
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)
    soft = np.random.default_rng(0).dirichlet(np.ones(4), size=len(X))  # soft targets
    check_gradients(model, X, soft)


def test_binary_cross_entropy_gradients():
    model = net(["elu", "sigmoid"], [3, 5, 4], seed=4)
    model.compile("binary_cross_entropy")
    X, y = data("binary_cross_entropy")
    assert_away_from_kinks(model, X)
    check_gradients(model, X, y)


@pytest.mark.parametrize("l1, l2", [(0.02, 0.0), (0.0, 0.1), (0.02, 0.1)])
def test_l1_l2_penalty_gradients(l1, l2):
    model = net(["tanh", "softmax"], [3, 5, 4], seed=5)
    model.compile("cross_entropy", l1=l1, l2=l2)
    push_weights_from_zero(model)
    X, y = data("cross_entropy")
    loss = check_gradients(model, X, y)
    # The penalty is in the loss, on weights only, exactly as issue 2 defines it.
    plain = net(["tanh", "softmax"], [3, 5, 4], seed=5)
    plain.compile("cross_entropy")
    plain.set_weights(model.get_weights())
    weights = np.concatenate([W.ravel() for W, _ in model.get_weights()])
    expected = plain.loss_and_gradients(X, y)[0] + l1 * np.abs(weights).sum()
    expected += 0.5 * l2 * (weights**2).sum()
    assert loss == pytest.approx(expected, rel=1e-13)
    # Biases are not penalised: their gradients equal the unpenalised ones.
    for (_, db), (_, db_plain) in zip(
        model.loss_and_gradients(X, y)[1], plain.loss_and_gradients(X, y)[1]
    ):
        np.testing.assert_array_equal(db, db_plain)


@pytest.mark.parametrize(
    "loss, output",
    [
        ("mse", "tanh"),
        ("binary_cross_entropy", "sigmoid"),
        ("cross_entropy", "softmax"),
        ("poisson", "exp"),
    ],
)
def test_loss_weight_scales_the_data_loss_and_its_gradient_not_the_penalty(loss, output):
    l2, factor = 0.1, 0.5
    model = net(["tanh", output], [3, 5, 4], seed=8)
    model.compile(loss, l2=l2, loss_weight=factor)
    X, y = data(loss)
    value = check_gradients(model, X, y)
    plain = net(["tanh", output], [3, 5, 4], seed=8)
    plain.compile(loss)
    plain_value, plain_grads = plain.loss_and_gradients(X, y)
    weights = model.get_weights()
    expected = factor * plain_value + 0.5 * l2 * sum((W**2).sum() for W, _ in weights)
    assert value == pytest.approx(expected, rel=1e-13)
    assert model.evaluate(X, y)["loss"] == pytest.approx(expected, rel=1e-13)
    for (dW, db), (pW, pb), (W, _) in zip(model.loss_and_gradients(X, y)[1], plain_grads, weights):
        np.testing.assert_allclose(dW, factor * pW + l2 * W, rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(db, factor * pb, rtol=1e-13, atol=1e-16)


def test_poisson_gradients_and_reference():
    acts = ["softplus", "exp"]
    model = net(acts, [3, 5, 4], seed=9)
    model.compile("poisson", l2=0.05)
    X, y = data("poisson")
    assert (y == 0).any()
    loss = check_gradients(model, X, y)
    params = [[W, b] for W, b in model.get_weights()]
    ref_loss, ref_grads, _ = ref.loss_and_grads(params, acts, "poisson", X, y, l2=0.05)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for (dW, db), (rW, rb) in zip(model.loss_and_gradients(X, y)[1], ref_grads):
        np.testing.assert_allclose(dW, rW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, rb, rtol=1e-10, atol=1e-14)


def test_three_layer_network_gradients_and_reference():
    acts = ["relu", "gelu", "softmax"]
    model = net(acts, [3, 6, 5, 4], seed=6)
    model.compile("cross_entropy", l1=1e-3, l2=1e-2)
    push_weights_from_zero(model)
    X, y = data("cross_entropy", n=9)
    assert_away_from_kinks(model, X)
    loss = check_gradients(model, X, y)
    params = [[W, b] for W, b in model.get_weights()]
    ref_loss, ref_grads, _ = ref.loss_and_grads(
        params, acts, "cross_entropy", X, ref.one_hot(y, 4), l1=1e-3, l2=1e-2
    )
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for (dW, db), (rW, rb) in zip(model.loss_and_gradients(X, y)[1], ref_grads):
        np.testing.assert_allclose(dW, rW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, rb, rtol=1e-10, atol=1e-14)


def test_three_layer_mse_network_gradients():
    model = net(["leaky_relu", "softplus", "linear"], [3, 6, 5, 2], seed=7)
    model.compile("mse", l2=0.05)
    X, y = data("mse", n=8, n_out=2)
    assert_away_from_kinks(model, X)
    check_gradients(model, X, y)


def test_loss_and_gradients_changes_nothing():
    model = net(["relu", "softmax"], [3, 5, 4])
    model.compile("cross_entropy", fd.Adam(0.1))
    before = model.get_weights()
    state = model._state.copy()
    X, y = data("cross_entropy")
    model.loss_and_gradients(X, y)
    for (W0, b0), (W1, b1) in zip(before, model.get_weights()):
        np.testing.assert_array_equal(W0, W1)
        np.testing.assert_array_equal(b0, b1)
    np.testing.assert_array_equal(state, model._state)
    assert model._step[0] == 0


@pytest.mark.parametrize("loss, acts", [("cross_entropy", ["tanh", "softmax"]),
                                        ("mse", ["relu", "linear"])])  # fmt: skip
def test_gradients_in_blocks_match_the_reference(monkeypatch, loss, acts):
    """A dense input's inference-mode gradient goes through in row blocks (here of 3 rows,
    the last one short) and still sums to the whole batch's, sample weights included."""
    from fastdnn.engines import cpu

    monkeypatch.setattr(cpu, "GRADIENT_BLOCK", 3)
    n_out = 4 if loss == "cross_entropy" else 2
    model = net(acts, [3, 6, n_out], seed=8)
    model.compile(loss, l2=1e-2)
    push_weights_from_zero(model)
    X, y = data(loss, n=10, n_out=n_out)
    weight = np.random.default_rng(3).uniform(0.5, 2.0, X.shape[0])
    Y = ref.one_hot(y, n_out) if loss == "cross_entropy" else y
    params = [[W, b] for W, b in model.get_weights()]
    ref_loss, ref_grads, _ = ref.loss_and_grads(params, acts, loss, X, Y, l2=1e-2, weight=weight)
    X_, Y_, w_ = model._data(X, y, weight)
    flat = np.empty_like(model._params)
    assert model._loss_and_flat_gradient(X_, Y_, w_, flat) == pytest.approx(ref_loss, rel=1e-12)
    for (dW, db), (rW, rb) in zip(model._layer_views(flat), ref_grads):
        np.testing.assert_allclose(dW, rW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, rb, rtol=1e-10, atol=1e-14)


def test_gradients_in_blocks_of_every_layer_kind(monkeypatch):
    """Normalisation and dropout layers in inference mode: blocks of 4 rows give the gradient
    of one block of all 11 (float64 rounding apart)."""
    from fastdnn.engines import cpu

    model = fd.Sequential([
        fd.Dense(3, 6), fd.BatchNorm(6, activation="relu"), fd.Dropout(0.3),
        fd.Dense(6, 5, activation="gelu"), fd.LayerNorm(5), fd.Dense(5, 4, activation="softmax"),
    ], seed=2, dtype="float64")  # fmt: skip
    model.compile("cross_entropy")
    X, y = data("cross_entropy", n=11)
    model.fit(X, y, epochs=2, batch_size=4, verbose=0)  # running statistics away from 0 and 1
    whole = model.loss_and_gradients(X, y)
    monkeypatch.setattr(cpu, "GRADIENT_BLOCK", 4)
    blocked = model.loss_and_gradients(X, y)
    assert blocked[0] == pytest.approx(whole[0], rel=1e-12)
    for layer_whole, layer_blocked in zip(whole[1], blocked[1]):
        for a, b in zip(layer_whole, layer_blocked):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)
