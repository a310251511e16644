"""Property-based tests (hypothesis): random small architectures, batch sizes and dtypes."""

import numpy as np
import pytest
import reference as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastdnn as fd

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
OUTPUTS = [*ref.HIDDEN_ACTIVATIONS, "softmax"]
LOSS_FOR_OUTPUT = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}


@st.composite
def networks(draw):
    """``(model, X, y, loss)``: a random small network, data and matching targets."""
    n_hidden = draw(st.integers(0, 2))
    sizes = draw(st.lists(st.integers(1, 7), min_size=n_hidden + 2, max_size=n_hidden + 2))
    hidden = draw(st.lists(st.sampled_from(ref.HIDDEN_ACTIVATIONS), min_size=n_hidden,
                           max_size=n_hidden))  # fmt: skip
    output = draw(st.sampled_from(OUTPUTS))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 25))
    layers = [fd.Dense(a, b, act) for a, b, act in zip(sizes, sizes[1:], [*hidden, output])]
    model = fd.Sequential(layers, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, sizes[0]))
    loss = LOSS_FOR_OUTPUT.get(output, "mse")
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (n, sizes[-1])).astype(np.float64)
    else:
        y = rng.normal(size=(n, sizes[-1]))
    return model, X, y, loss


@SETTINGS
@given(net=networks(), batch_size=st.integers(1, 30))
def test_predict_shape_dtype_and_range(net, batch_size):
    model, X, _, _ = net
    out = model.predict(X, batch_size=batch_size)
    assert out.shape == (X.shape[0], model.n_outputs)
    assert out.dtype == model.dtype
    assert np.isfinite(out).all()
    output = model.layers[-1].activation
    if output == "softmax":
        assert (out >= 0).all()
        np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    elif output == "sigmoid":
        assert ((out >= 0) & (out <= 1)).all()
    elif output in ("relu", "softplus"):
        assert (out >= 0).all()
    # rows do not depend on how they are batched
    whole = model.predict(X, batch_size=X.shape[0])
    tol = 1e-5 if model.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, whole, rtol=tol, atol=tol)
    # and agree with the float64 reference
    params = [[W.astype(np.float64), b.astype(np.float64)] for W, b in model.get_weights()]
    expected = ref.predict(params, [layer.activation for layer in model.layers], X)
    tol = 1e-4 if model.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


@SETTINGS
@given(
    net=networks(),
    batch_size=st.integers(1, 30),
    optimizer=st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]),
    l2=st.sampled_from([0.0, 1e-3]),
)
def test_training_keeps_everything_finite_and_typed(net, batch_size, optimizer, l2):
    model, X, y, loss = net
    make = {
        "sgd": lambda: fd.SGD(0.01, momentum=0.5),
        "adam": lambda: fd.Adam(1e-2),
        "adamw": lambda: fd.AdamW(1e-2),
        "rmsprop": lambda: fd.RMSprop(1e-3),
    }[optimizer]
    model.compile(loss, make(), l2=l2)
    history = model.fit(X, y, epochs=2, batch_size=batch_size, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(v) for values in history.history.values() for v in values)
    n_batches = -(-X.shape[0] // batch_size)
    assert model._step[0] == 2 * n_batches
    for (W, b), layer in zip(model.get_weights(), model.layers):
        assert W.shape == (layer.out_features, layer.in_features)
        assert b.shape == (layer.out_features,)
        assert W.dtype == model.dtype and b.dtype == model.dtype
        assert np.isfinite(W).all() and np.isfinite(b).all()
    scores = model.evaluate(X, y)
    assert np.isfinite(scores["loss"]) and scores["loss"] >= 0
    if loss != "mse":
        assert 0 <= scores["accuracy"] <= 1


@SETTINGS
@given(net=networks())
def test_gradients_have_weight_shapes_and_match_reference(net):
    model, X, y, loss = net
    model.compile(loss)
    value, grads = model.loss_and_gradients(X, y)
    params = [[W.astype(np.float64), b.astype(np.float64)] for W, b in model.get_weights()]
    acts = [layer.activation for layer in model.layers]
    Y = ref.one_hot(y, model.n_outputs) if loss == "cross_entropy" else y
    ref_value, ref_grads, _ = ref.loss_and_grads(params, acts, loss, X.astype(model.dtype), Y)
    tol = 2e-4 if model.dtype == np.float32 else 1e-9
    assert value == pytest.approx(ref_value, rel=tol, abs=tol)
    for (dW, db), (rW, rb) in zip(grads, ref_grads):
        assert dW.dtype == model.dtype and dW.shape == rW.shape and db.shape == rb.shape
        # gradients are small here; compare relative to the largest entry of the layer
        scale = max(np.abs(rW).max(), np.abs(rb).max(), 1.0)
        np.testing.assert_allclose(dW, rW, rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(db, rb, rtol=tol, atol=tol * scale)


@SETTINGS
@given(net=networks(), wrong=st.integers(1, 9))
def test_wrong_feature_count_is_rejected_without_change(net, wrong):
    model, X, y, loss = net
    model.compile(loss)
    before = model.get_weights()
    n_in = model.n_features_in
    bad = np.ones((X.shape[0], n_in + wrong))
    with pytest.raises(ValueError, match=f"{n_in + wrong} features per sample.*expects {n_in}"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="features per sample"):
        model.predict(bad)
    for (W0, b0), (W1, b1) in zip(before, model.get_weights()):
        np.testing.assert_array_equal(W0, W1)
        np.testing.assert_array_equal(b0, b1)
    assert model._step[0] == 0


@SETTINGS
@given(
    dtype=st.sampled_from(["float32", "float64"]),
    n=st.integers(1, 12),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    data=st.data(),
)
def test_non_finite_input_anywhere_is_rejected(dtype, n, bad, data):
    model = fd.Sequential([fd.Dense(3, 2, "sigmoid")], dtype=dtype, seed=0)
    model.compile("binary_cross_entropy", fd.Adam())
    X = np.zeros((n, 3))
    Y = np.zeros((n, 2))
    target = data.draw(st.sampled_from(["X", "y"]))
    array = X if target == "X" else Y
    index = (data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, array.shape[1] - 1)))
    array[index] = bad
    with pytest.raises(ValueError, match=f"{target} contains (NaN|infinity)"):
        model.fit(X, Y, verbose=0)
    assert model._step[0] == 0 and not model._state.any()
