"""Bad input: a clear ValueError/TypeError naming the problem, and the model left unchanged.

"Unchanged" means the weights, the optimizer (its state, step count and settings), the loss and
penalty, and the shuffling random state are all exactly what they were before the failed call.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import fastdnn as fd

N, N_IN, N_OUT = 10, 3, 4
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, N_IN))
Y = RNG.integers(0, N_OUT, N)


def with_value(array, index, value):
    out = np.array(array, dtype=np.float64)
    out[index] = value
    return out


def fitted_model():
    """A compiled model that has trained one epoch, so its optimizer state is non-zero."""
    model = fd.Sequential([fd.Dense(N_IN, 5, "relu"), fd.Dense(5, N_OUT, "softmax")], seed=0)
    model.compile("cross_entropy", fd.Adam(0.01), l2=1e-3)
    model.fit(X, Y, epochs=1, batch_size=4, verbose=0)
    return model


def snapshot(model):
    return {
        "weights": model.get_weights(),
        "state": None if model._state is None else model._state.copy(),
        "step": model._step.copy(),
        "compiled": (model.loss, model.optimizer, model.l1, model.l2, model.loss_weight),
        "optimizer_config": None if model.optimizer is None else model.optimizer.get_config(),
        "rng": model._rng.bit_generator.state,
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    for (W0, b0), (W1, b1) in zip(before["weights"], after["weights"]):
        np.testing.assert_array_equal(W0, W1)
        np.testing.assert_array_equal(b0, b1)
    if before["state"] is None:
        assert after["state"] is None
    else:
        np.testing.assert_array_equal(before["state"], after["state"])
    np.testing.assert_array_equal(before["step"], after["step"])
    assert before["compiled"][0] == after["compiled"][0]
    assert before["compiled"][1] is after["compiled"][1]
    assert before["compiled"][2:] == after["compiled"][2:]
    assert before["optimizer_config"] == after["optimizer_config"]
    assert before["rng"] == after["rng"]


# Each is a ValueError, non-numbers included: the estimators forward a computed loss_weight.
BAD_LOSS_WEIGHTS = {
    "zero": 0.0,
    "negative": -1,
    "nan": float("nan"),
    "inf": np.inf,
    "string": "1.0",
    "none": None,
    "bool": True,
    "array": np.ones(2),
}


def fit(**kwargs):
    kwargs = {"X": X, "y": Y, "verbose": 0, **kwargs}
    return lambda m: m.fit(**kwargs)


def wrong_weights(i, what, value):
    def call(model):
        weights = [[W, b] for W, b in model.get_weights()]
        weights[i][what] = value
        model.set_weights(weights)

    return call


# (call on a fitted model, exception, message pattern)
MODEL_CASES = [
    # --- X
    ("wrong_feature_count", fit(X=X[:, :2]), ValueError, "X has 2 features.*expects 3"),
    ("x_y_length_mismatch", fit(y=Y[:-1]), ValueError, "y has 9 samples but X has 10"),
    ("nan_in_x", fit(X=with_value(X, (2, 1), np.nan)), ValueError, "X contains NaN"),
    ("inf_in_x", fit(X=with_value(X, (0, 0), np.inf)), ValueError, "X contains infinity"),
    ("neg_inf_in_x", fit(X=with_value(X, (0, 0), -np.inf)), ValueError, "X contains infinity"),
    ("empty_x", fit(X=X[:0], y=Y[:0]), ValueError, "X is empty"),
    ("one_dimensional_x", fit(X=X[:, 0]), ValueError, r"X must be 2-D.*shape \(10,\)"),
    ("three_dimensional_x", fit(X=X[:, :, None]), ValueError, "X must be 2-D"),
    ("object_x", fit(X=X.astype(object)), TypeError, "X must hold real numbers.*object"),
    ("complex_x", fit(X=X.astype(complex)), TypeError, "X must hold real numbers.*complex"),
    ("string_x", fit(X=X.astype(str)), TypeError, "X must hold real numbers"),
    (
        "x_overflows_float32",
        fit(X=with_value(X, (1, 2), -1e39)),
        ValueError,
        "X holds values too large for float32",
    ),  # fmt: skip
    (
        "predict_x_overflows_float32",
        lambda m: m.predict(with_value(X, (0, 0), 1e39)),
        ValueError,
        "too large for float32",
    ),  # fmt: skip
    ("ragged_x", fit(X=[[1.0, 2.0, 3.0], [1.0]] * 5), TypeError, "X must be an array of numbers"),
    # --- sparse X (validated as dense X is, and never densified)
    ("sparse_nan", fit(X=sp.csr_matrix(with_value(X, (2, 1), np.nan))), ValueError, "X .*NaN"),
    ("sparse_features", fit(X=sp.csc_array(X[:, :2])), ValueError, "X has 2 features.*expects 3"),
    ("sparse_1d", fit(X=sp.coo_array(X[:, 0])), ValueError, r"X must be 2-D.*sparse.*\(10,\)"),
    ("sparse_empty", fit(X=sp.csr_matrix((0, N_IN)), y=Y[:0]), ValueError, "X is empty"),
    ("sparse_complex", fit(X=sp.csr_matrix(X.astype(complex))), TypeError, "X must hold real"),
    (
        "sparse_overflows_float32",
        fit(X=sp.csr_matrix(with_value(X, (1, 2), 1e39))),
        ValueError,
        "X holds values too large for float32",
    ),  # fmt: skip
    (
        "sparse_index_out_of_range",
        fit(X=sp.csr_matrix((np.ones(N), np.full(N, N_IN), np.arange(N + 1)), shape=(N, N_IN))),
        ValueError,
        "X is not a valid CSR matrix",
    ),  # fmt: skip
    (
        "sparse_validation_inf",
        fit(validation_data=(sp.csr_array(with_value(X, (0, 0), np.inf)), Y)),
        ValueError,
        "X_val contains infinity",
    ),  # fmt: skip
    ("sparse_y", fit(y=sp.csr_matrix(np.eye(N_OUT)[Y])), TypeError, "y must be a dense array"),
    ("sparse_weight", fit(sample_weight=sp.csr_matrix(np.ones((1, N)))), TypeError, "dense"),
    ("sparse_predict_1d", lambda m: m.predict(sp.coo_array(X[0])), ValueError, "X must be 2-D"),
    (
        "sparse_gradients_nan",
        lambda m: m.loss_and_gradients(sp.csc_matrix(with_value(X, (3, 0), np.nan)), Y),
        ValueError,
        "X contains NaN",
    ),  # fmt: skip
    # --- y
    ("nan_in_y", fit(y=with_value(Y, 3, np.nan)), ValueError, "y contains NaN"),
    ("inf_in_y", fit(y=with_value(Y, 3, np.inf)), ValueError, "y contains infinity"),
    ("label_too_large", fit(y=with_value(Y, 4, N_OUT)), ValueError, r"outside 0\.\.3.*\[4\]"),
    ("negative_label", fit(y=with_value(Y, 4, -1)), ValueError, r"outside 0\.\.3.*\[-1\]"),
    ("non_integer_labels", fit(y=Y + 0.5), ValueError, "integer class labels"),
    ("string_labels", fit(y=Y.astype(str)), TypeError, "y must hold real numbers"),
    ("one_hot_wrong_width", fit(y=np.eye(3)[Y % 3]), ValueError, r"y must have shape \(10, 4\)"),
    ("rows_not_one_hot", fit(y=np.full((N, N_OUT), 0.5)), ValueError, "one-hot"),
    ("probability_outside_0_1", fit(y=np.eye(N_OUT)[Y] * 2 - 0.5), ValueError, r"\[0, 1\]"),
    ("nan_in_one_hot", fit(y=with_value(np.eye(N_OUT)[Y], (1, 1), np.nan)), ValueError, "NaN"),
    # --- fit arguments
    ("batch_size_zero", fit(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    ("batch_size_negative", fit(batch_size=-3), ValueError, "batch_size must be an integer >= 1"),
    ("batch_size_float", fit(batch_size=2.5), ValueError, "batch_size"),
    ("batch_size_bool", fit(batch_size=True), ValueError, "batch_size"),
    ("epochs_zero", fit(epochs=0), ValueError, "epochs must be an integer >= 1"),
    ("epochs_none", fit(epochs=None), ValueError, "epochs"),
    ("verbose_bad", fit(verbose=3), ValueError, "verbose"),
    ("callback_not_callback", fit(callbacks=[print]), TypeError, "callbacks"),
    # --- validation_data
    ("validation_not_tuple", fit(validation_data=X), ValueError, "validation_data must be"),
    ("validation_one_item", fit(validation_data=(X,)), ValueError, "validation_data must be"),
    ("validation_four_items", fit(validation_data=(X, Y, None, 1)), ValueError, "validation_data"),
    ("validation_features", fit(validation_data=(X[:, :2], Y)), ValueError, "X_val has 2 features"),
    ("validation_length", fit(validation_data=(X, Y[:5])), ValueError, "y_val has 5 samples"),
    ("validation_nan", fit(validation_data=(X * np.nan, Y)), ValueError, "X_val contains NaN"),
    ("validation_labels", fit(validation_data=(X, Y + N_OUT)), ValueError, "y_val holds labels"),
    ("validation_empty", fit(validation_data=(X[:0], Y[:0])), ValueError, "X_val is empty"),
    # --- evaluate / predict / loss_and_gradients
    ("evaluate_features", lambda m: m.evaluate(X[:, 1:], Y), ValueError, "X has 2 features"),
    ("evaluate_labels", lambda m: m.evaluate(X, Y + 1), ValueError, "outside 0..3"),
    ("evaluate_batch_size", lambda m: m.evaluate(X, Y, batch_size=0), ValueError, "batch_size"),
    ("predict_features", lambda m: m.predict(X[:, :1]), ValueError, "X has 1 features"),
    ("predict_nan", lambda m: m.predict(with_value(X, (0, 0), np.nan)), ValueError, "X .*NaN"),
    ("predict_empty", lambda m: m.predict(X[:0]), ValueError, "X is empty"),
    ("predict_1d", lambda m: m.predict(X[0]), ValueError, "X must be 2-D"),
    ("predict_batch_size", lambda m: m.predict(X, batch_size=0), ValueError, "batch_size"),
    ("gradients_labels", lambda m: m.loss_and_gradients(X, Y - 1), ValueError, r"\[-1\]"),
    # --- compile (the previous compile settings and optimizer state survive)
    ("unknown_loss", lambda m: m.compile("hinge"), ValueError, "unknown loss 'hinge'"),
    (
        "unknown_optimizer",
        lambda m: m.compile("cross_entropy", "adagrad"),
        ValueError,
        "unknown optimizer 'adagrad'",
    ),  # fmt: skip
    (
        "optimizer_wrong_type",
        lambda m: m.compile("cross_entropy", 0.1),
        ValueError,
        "unknown optimizer",
    ),  # fmt: skip
    ("mse_with_softmax", lambda m: m.compile("mse"), ValueError, "'mse' does not fit a 'softmax'"),
    (
        "bce_without_sigmoid",
        lambda m: m.compile("binary_cross_entropy"),
        ValueError,
        "'binary_cross_entropy' needs a 'sigmoid' output",
    ),  # fmt: skip
    ("negative_l1", lambda m: m.compile("cross_entropy", l1=-0.1), ValueError, "l1"),
    ("nan_l2", lambda m: m.compile("cross_entropy", l2=float("nan")), ValueError, "l2"),
    ("string_l2", lambda m: m.compile("cross_entropy", l2="0.1"), TypeError, "l2"),
    *[
        (
            f"loss_weight_{name}",
            lambda m, value=value: m.compile("cross_entropy", loss_weight=value),
            ValueError,
            "loss_weight must be a finite number > 0",
        )
        for name, value in BAD_LOSS_WEIGHTS.items()
    ],
    # --- set_weights (nothing is written unless every array is valid)
    (
        "set_weights_wrong_shape",
        wrong_weights(1, 0, np.zeros((N_OUT, 4))),
        ValueError,
        r"weights\[1\] W must have shape \(4, 5\), got \(4, 4\)",
    ),  # fmt: skip
    (
        "set_weights_bias_shape",
        wrong_weights(0, 1, np.zeros(6)),
        ValueError,
        r"weights\[0\] b must have shape \(5,\)",
    ),  # fmt: skip
    (
        "set_weights_nan",
        wrong_weights(1, 0, np.full((N_OUT, 5), np.nan)),
        ValueError,
        r"weights\[1\] W contains NaN",
    ),  # fmt: skip
    (
        "set_weights_inf_bias",
        wrong_weights(1, 1, np.full(N_OUT, -np.inf)),
        ValueError,
        r"weights\[1\] b contains infinity",
    ),  # fmt: skip
    (
        "set_weights_strings",
        wrong_weights(0, 0, np.full((5, N_IN), "a")),
        TypeError,
        r"weights\[0\] W must hold real numbers",
    ),  # fmt: skip
    (
        "set_weights_too_few",
        lambda m: m.set_weights(m.get_weights()[:1]),
        ValueError,
        "list of 2",
    ),  # fmt: skip
    (
        "set_weights_not_pairs",
        lambda m: m.set_weights([(W,) for W, _ in m.get_weights()]),
        ValueError,
        r"weights\[0\] must be a \(W, b\) pair",
    ),  # fmt: skip
    ("set_weights_not_list", lambda m: m.set_weights(np.zeros(3)), ValueError, "list of 2"),
]


def test_case_ids_are_unique():
    ids = [case[0] for case in MODEL_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "call, error, match", [case[1:] for case in MODEL_CASES], ids=[case[0] for case in MODEL_CASES]
)
def test_bad_input_raises_and_leaves_model_unchanged(call, error, match):
    model = fitted_model()
    before = snapshot(model)
    with pytest.raises(error, match=match):
        call(model)
    assert_unchanged(model, before)
    # ... and the model still trains and predicts as before
    assert np.isfinite(model.predict(X)).all()


def test_partially_valid_set_weights_writes_nothing():
    model = fitted_model()
    before = snapshot(model)
    good = [(W + 1, b + 1) for W, b in model.get_weights()]
    bad = [good[0], (good[1][0], np.full(N_OUT, np.nan))]  # the first pair alone would be fine
    with pytest.raises(ValueError, match="NaN"):
        model.set_weights(bad)
    assert_unchanged(model, before)


def test_validation_length_mismatch_names_x_val():
    model = fitted_model()
    with pytest.raises(ValueError, match="y_val has 5 samples but X_val has 10"):
        model.fit(X, Y, verbose=0, validation_data=(X, Y[:5]))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_targets_overflowing_float32_are_rejected():
    model = fd.Sequential([fd.Dense(N_IN, 2)], seed=0)
    model.compile("mse", fd.SGD(0.01))
    with pytest.raises(ValueError, match="y"):
        model.fit(X, with_value(np.zeros((N, 2)), (0, 0), 1e39), verbose=0)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_set_weights_overflowing_float32_is_rejected():
    model = fitted_model()
    before = snapshot(model)
    weights = [[W.astype(np.float64), b] for W, b in model.get_weights()]
    weights[0][0][0, 0] = 1e39
    with pytest.raises(ValueError, match=r"weights\[0\] W"):
        model.set_weights(weights)
    assert_unchanged(model, before)


def test_numpy_unsigned_batch_size_is_accepted():
    a, b = fitted_model(), fitted_model()
    a.fit(X, Y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    b.fit(X, Y, epochs=1, batch_size=np.uint64(4), shuffle=False, verbose=0)
    for (Wa, _), (Wb, _) in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(Wa, Wb)


# ----------------------------------------------------------------------------- before compile
BEFORE_COMPILE = [
    ("fit", lambda m: m.fit(X, Y, verbose=0)),
    ("evaluate", lambda m: m.evaluate(X, Y)),
    ("loss_and_gradients", lambda m: m.loss_and_gradients(X, Y)),
]


def uncompiled_model():
    return fd.Sequential([fd.Dense(N_IN, 5, "relu"), fd.Dense(5, N_OUT, "softmax")], seed=0)


@pytest.mark.parametrize("name, call", BEFORE_COMPILE, ids=[c[0] for c in BEFORE_COMPILE])
def test_calls_before_compile_fail_clearly(name, call):
    model = uncompiled_model()
    before = snapshot(model)
    with pytest.raises(Exception, match=rf"call compile\(.*\) before {name}"):
        call(model)
    assert_unchanged(model, before)
    assert model.predict(X).shape == (N, N_OUT)  # predict needs no compile


@pytest.mark.parametrize("name, call", BEFORE_COMPILE, ids=[c[0] for c in BEFORE_COMPILE])
def test_calls_before_compile_raise_value_error(name, call):
    with pytest.raises((ValueError, TypeError), match="compile"):
        call(uncompiled_model())


# ----------------------------------------------------------------------------- construction
def sequential(*layers, **kwargs):
    return lambda: fd.Sequential(list(layers), **kwargs)


CONSTRUCTION_CASES = [
    (
        "unknown_activation",
        lambda: fd.Dense(3, 4, "swish"),
        ValueError,
        "unknown activation 'swish'",
    ),  # fmt: skip
    ("activation_not_string", lambda: fd.Dense(3, 4, None), ValueError, "unknown activation"),
    ("zero_units", lambda: fd.Dense(3, 0), ValueError, "out_features must be an integer >= 1"),
    ("float_units", lambda: fd.Dense(3.0, 4), ValueError, "in_features"),
    (
        "softmax_first_of_two",
        sequential(fd.Dense(3, 4, "softmax"), fd.Dense(4, 2)),
        ValueError,
        "softmax is only allowed on the last layer; layer 0",
    ),  # fmt: skip
    (
        "softmax_middle",
        sequential(fd.Dense(3, 4), fd.Dense(4, 4, "softmax"), fd.Dense(4, 2)),
        ValueError,
        "softmax is only allowed on the last layer; layer 1",
    ),  # fmt: skip
    (
        "layer_sizes_mismatch",
        sequential(fd.Dense(3, 4), fd.Dense(5, 2)),
        ValueError,
        "layer 1 expects 5 inputs but layer 0 gives 4",
    ),  # fmt: skip
    ("no_layers", sequential(), TypeError, "non-empty list"),
    ("not_a_layer", sequential(fd.Dense(3, 4), "dense"), TypeError, "fastdnn.Dense"),
    ("bad_dtype", sequential(fd.Dense(3, 4), dtype="float16"), ValueError, "dtype"),
    ("int_dtype", sequential(fd.Dense(3, 4), dtype="int32"), ValueError, "dtype"),
    ("negative_seed", sequential(fd.Dense(3, 4), seed=-1), ValueError, "seed"),
    ("float_seed", sequential(fd.Dense(3, 4), seed=1.5), ValueError, "seed"),
    ("sgd_zero_lr", lambda: fd.SGD(0.0), ValueError, "lr must be > 0"),
    ("sgd_negative_lr", lambda: fd.SGD(-0.1), ValueError, "lr"),
    ("adam_zero_lr", lambda: fd.Adam(lr=0), ValueError, "lr must be > 0"),
    ("adamw_negative_lr", lambda: fd.AdamW(lr=-1e-3), ValueError, "lr"),
    ("rmsprop_nan_lr", lambda: fd.RMSprop(lr=float("nan")), ValueError, "lr"),
    ("rmsprop_inf_lr", lambda: fd.RMSprop(lr=float("inf")), ValueError, "lr"),
    ("string_lr", lambda: fd.Adam(lr="0.1"), TypeError, "lr must be a real number"),
    ("momentum_one", lambda: fd.SGD(0.1, momentum=1.0), ValueError, "momentum"),
    ("nesterov_without_momentum", lambda: fd.SGD(0.1, nesterov=True), ValueError, "nesterov"),
    ("beta1_one", lambda: fd.Adam(beta1=1.0), ValueError, "beta1"),
    ("beta2_negative", lambda: fd.Adam(beta2=-0.5), ValueError, "beta2"),
    ("negative_eps", lambda: fd.RMSprop(eps=-1e-8), ValueError, "eps"),
    ("negative_weight_decay", lambda: fd.AdamW(weight_decay=-0.1), ValueError, "weight_decay"),
    ("rho_one", lambda: fd.RMSprop(rho=1.0), ValueError, "rho"),
]


@pytest.mark.parametrize(
    "build, error, match",
    [case[1:] for case in CONSTRUCTION_CASES],
    ids=[case[0] for case in CONSTRUCTION_CASES],
)
def test_bad_construction_raises(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    "loss, output, match",
    [
        ("cross_entropy", "sigmoid", "'cross_entropy' needs a 'softmax' output"),
        ("cross_entropy", "linear", "'cross_entropy' needs a 'softmax' output"),
        ("binary_cross_entropy", "softmax", "'binary_cross_entropy' needs a 'sigmoid' output"),
        ("binary_cross_entropy", "tanh", "'binary_cross_entropy' needs a 'sigmoid' output"),
        ("mse", "softmax", "'mse' does not fit a 'softmax' output"),
        ("poisson", "linear", "'poisson' needs a 'exp' output"),
        ("poisson", "softplus", "'poisson' needs a 'exp' output"),
        ("poisson", "softmax", "'poisson' needs a 'exp' output"),
    ],
)
def test_loss_that_does_not_fit_the_output(loss, output, match):
    model = fd.Sequential([fd.Dense(N_IN, N_OUT, output)], seed=0)
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        model.compile(loss)
    assert_unchanged(model, before)
    assert model.loss is None
    with pytest.raises(Exception, match="compile"):
        model.fit(X, Y, verbose=0)  # still not compiled


@pytest.mark.parametrize(
    "loss, output, y, match",
    [
        ("binary_cross_entropy", "sigmoid", np.full((N, N_OUT), 2.0), r"\[0, 1\]"),
        ("binary_cross_entropy", "sigmoid", Y, r"y must have shape \(10, 4\)"),
        ("mse", "linear", np.zeros((N, 3)), r"y must have shape \(10, 4\)"),
        ("mse", "linear", np.zeros(N), r"y must have shape \(10, 4\)"),
        ("poisson", "exp", with_value(np.ones((N, N_OUT)), (4, 2), -0.5), "y must be >= 0"),
        ("poisson", "exp", with_value(np.ones((N, N_OUT)), (4, 2), np.nan), "y contains NaN"),
        ("poisson", "exp", with_value(np.ones((N, N_OUT)), (0, 0), np.inf), "y contains infin"),
        ("poisson", "exp", np.ones((N, 3)), r"y must have shape \(10, 4\)"),
    ],
)
def test_targets_must_fit_the_loss(loss, output, y, match):
    model = fd.Sequential([fd.Dense(N_IN, N_OUT, output)], seed=0)
    model.compile(loss, fd.SGD(0.1, momentum=0.9))
    model.fit(X, np.zeros((N, N_OUT)), epochs=1, batch_size=3, verbose=0)
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, verbose=0)
    assert_unchanged(model, before)


# ----------------------------------------------------------------------------- finiteness check
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_is_finite_finds_a_single_bad_value_anywhere(dtype, layout, value):
    from fastdnn._validation import is_finite

    base = np.random.default_rng(0).normal(size=(37, 21)).astype(dtype)
    arrays = {"C": base, "F": np.asfortranarray(base), "strided": base[::2, ::3]}
    array = arrays[layout]
    assert is_finite(array)
    # first, a middle and the last element: the compiled pass has a vector body and a tail
    for index in (0, array.size // 2, array.size - 1):
        bad = array.copy(order="K") if layout != "strided" else base.copy()[::2, ::3]
        bad[np.unravel_index(index, bad.shape)] = value
        assert not is_finite(bad), (index, value)


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_mse_targets_with_nan_or_inf_are_named(value, word):
    model = fd.Sequential([fd.Dense(N_IN, 2)], seed=0)
    model.compile("mse", fd.SGD(0.01))
    before = snapshot(model)
    with pytest.raises(ValueError, match=f"y contains {word}"):
        model.fit(X, with_value(np.zeros((N, 2)), (3, 1), value), verbose=0)
    assert_unchanged(model, before)


def test_targets_that_are_the_inputs_train_like_a_copy_and_are_checked():
    def autoencoder():
        model = fd.Sequential([fd.Dense(N_IN, 2, "relu"), fd.Dense(2, N_IN)], seed=0)
        model.compile("mse", fd.Adam(0.01))
        return model

    same, copied = autoencoder(), autoencoder()
    same.fit(X, X, epochs=2, batch_size=4, verbose=0)
    copied.fit(X, X.copy(), epochs=2, batch_size=4, verbose=0)
    for (W1, b1), (W2, b2) in zip(same.get_weights(), copied.get_weights()):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)
    bad = with_value(X, (2, 1), np.nan)
    before = snapshot(same)
    with pytest.raises(ValueError, match="X contains NaN"):
        same.fit(bad, bad, verbose=0)
    assert_unchanged(same, before)
