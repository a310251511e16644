"""Autoencoder: architecture, training on the Sequential engine, the PCA subspace of a linear
autoencoder, nonlinear gains over PCA, and bad input."""

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastdnn as fd
from fastdnn.decomposition import PCA, Autoencoder
from fastdnn.network import History, Sequential


@pytest.fixture(scope="module")
def digits_split():
    X, _ = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, test_size=0.25, random_state=0)


def _low_rank(n=512, d=12, k=3, noise=0.05, seed=0):
    """Rank-``k`` data with well separated variances plus isotropic noise and an offset."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, k)) * np.array([3.0, 2.0, 1.5])[:k]
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :k]
    return Z @ basis.T + noise * rng.standard_normal((n, d)) + 1.0


def test_architecture_mirrors_the_encoder():
    ae = Autoencoder([20, 16, 8, 3], activation="tanh", output_activation="sigmoid", seed=0)
    layers = ae.model.layers
    assert [(layer.in_features, layer.out_features) for layer in layers] == [
        (20, 16), (16, 8), (8, 3), (3, 8), (8, 16), (16, 20),
    ]  # fmt: skip
    assert [layer.activation for layer in layers] == [
        "tanh", "tanh", "linear", "tanh", "tanh", "sigmoid",
    ]  # fmt: skip
    assert ae.n_encoder_layers == 3 and ae.model.loss == "mse"
    assert isinstance(ae.model.optimizer, fd.Adam)  # optimizer=None means Adam()
    shallow = Autoencoder([5, 2], activation="relu", output_activation="linear")
    assert [layer.activation for layer in shallow.model.layers] == ["linear", "linear"]
    relu_code = Autoencoder([5, 2], bottleneck_activation="relu")
    assert relu_code.model.layers[0].activation == "relu"


def test_encoder_and_decoder_hold_the_current_weights():
    X = np.random.default_rng(0).random((64, 10)).astype(np.float32)
    ae = Autoencoder([10, 6, 2], seed=1)
    ae.fit(X, epochs=2, verbose=0)
    encoder, decoder = ae.encoder, ae.decoder
    assert isinstance(encoder, Sequential) and isinstance(decoder, Sequential)
    weights = ae.model.get_weights()
    for (W, b), (W_sub, b_sub) in zip(weights, encoder.get_weights() + decoder.get_weights()):
        np.testing.assert_array_equal(W, W_sub)
        np.testing.assert_array_equal(b, b_sub)
    Z = ae.transform(X)
    assert Z.shape == (64, 2) and Z.dtype == np.float32
    np.testing.assert_allclose(Z, encoder.predict(X))
    np.testing.assert_allclose(ae.inverse_transform(Z), ae.reconstruct(X), rtol=1e-5, atol=1e-6)
    # Copies: training the sub-models leaves the autoencoder alone.
    encoder.set_weights([(W * 0, b * 0) for W, b in encoder.get_weights()])
    np.testing.assert_array_equal(ae.model.get_weights()[0][0], weights[0][0])


def test_fit_trains_on_sequential_and_reports_history(monkeypatch):
    X = np.random.default_rng(0).random((128, 8)).astype(np.float32)
    calls = []
    original = Sequential.fit

    def spy(self, X_fit, y_fit, **kwargs):
        calls.append((X_fit, y_fit))
        return original(self, X_fit, y_fit, **kwargs)

    monkeypatch.setattr(Sequential, "fit", spy)
    ae = Autoencoder([8, 4], seed=0, optimizer=fd.Adam(lr=0.01))
    history = ae.fit(X, epochs=20, batch_size=16, validation_data=X[:32], verbose=0)
    assert len(calls) == 1 and calls[0][0] is calls[0][1]  # targets are X itself
    assert isinstance(history, History) and len(history.epoch) == 20
    loss = history.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert history.history["val_loss"][-1] == pytest.approx(ae.score(X[:32]), rel=1e-4)


def test_score_is_the_mean_squared_reconstruction_error():
    X = np.random.default_rng(0).random((50, 6))
    ae = Autoencoder([6, 3], dtype="float64", seed=0)
    expected = np.mean((ae.reconstruct(X) - X) ** 2)
    assert ae.score(X) == pytest.approx(expected, rel=1e-12)


def test_same_seed_same_model():
    X = np.random.default_rng(0).random((96, 8)).astype(np.float32)
    a, b = Autoencoder([8, 3], seed=4), Autoencoder([8, 3], seed=4)
    a.fit(X, epochs=3, verbose=0)
    b.fit(X, epochs=3, verbose=0)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_autoencoder_learns_the_pca_subspace(dtype):
    # Baldi & Hornik (1989): at the optimum the decoder's columns span the principal subspace.
    X = _low_rank()
    k = 3
    ae = Autoencoder(
        [X.shape[1], k], activation="linear", output_activation="linear",
        optimizer=fd.Adam(lr=0.03), dtype=dtype, seed=0,
    )  # fmt: skip
    ae.fit(X, epochs=2000, batch_size=X.shape[0], verbose=0)
    pca = PCA(k).fit(X)
    W_decoder = ae.model.get_weights()[-1][0].astype(np.float64)  # (features, k)
    angles = np.degrees(subspace_angles(W_decoder, pca.components_.T))
    assert angles.max() < 0.1, angles
    pca_error = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    assert pca_error <= ae.score(X) < 1.05 * pca_error


def test_nonlinear_autoencoder_beats_pca_on_held_out_digits(digits_split):
    X_train, X_test = digits_split
    pca = PCA(8).fit(X_train)
    pca_error = float(np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2))
    ae = Autoencoder([64, 64, 8], activation="relu", output_activation="sigmoid", seed=0)
    ae.model.optimizer.lr = 3e-3
    ae.fit(X_train, epochs=40, batch_size=32, verbose=0)
    assert ae.score(X_test) < 0.8 * pca_error


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"layer_sizes": [10]}, ValueError, "at least two"),
        ({"layer_sizes": 10}, ValueError, "layer_sizes must be a list"),
        ({"layer_sizes": [10, 0]}, ValueError, r"layer_sizes\[1\] must be an integer >= 1"),
        ({"layer_sizes": [10, 2.5]}, ValueError, r"layer_sizes\[1\]"),
        ({"activation": "swish"}, ValueError, "unknown activation 'swish'"),
        ({"activation": "softmax"}, ValueError, "activation 'softmax' is not supported"),
        ({"output_activation": "softmax"}, ValueError, "output_activation 'softmax'"),
        ({"bottleneck_activation": "cube"}, ValueError, "unknown bottleneck_activation"),
        ({"loss": "hinge"}, ValueError, "unknown loss 'hinge'"),
        (
            {"loss": "binary_cross_entropy", "output_activation": "linear"},
            ValueError,
            "needs a 'sigmoid' output",
        ),
        ({"optimizer": "lbfgs"}, ValueError, "lbfgs"),
        ({"l2": -1.0}, ValueError, "l2 must be finite and >= 0"),
        ({"dtype": "float16"}, ValueError, "dtype must be 'float32' or 'float64'"),
        ({"seed": -3}, ValueError, "seed must be None or an integer >= 0"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    params = {"layer_sizes": [10, 4]} | kwargs
    with pytest.raises(error, match=match):
        Autoencoder(**params)


X8 = np.random.default_rng(0).random((16, 8))


@pytest.mark.parametrize(
    "method, X, error, match",
    [
        ("fit", X8[:, :5], ValueError, "X has 5 features per sample, the model expects 8"),
        ("fit", np.where(np.eye(16, 8) > 0, np.nan, 0.5), ValueError, "X contains NaN"),
        ("fit", np.where(np.eye(16, 8) > 0, np.inf, 0.5), ValueError, "X contains infinity"),
        ("fit", X8[0], ValueError, "X must be 2-D"),
        ("fit", np.empty((0, 8)), ValueError, "X is empty"),
        ("fit", [["a"] * 8], TypeError, "X must hold real numbers"),
        ("transform", X8[:, :3], ValueError, "X has 3 features per sample, the model expects 8"),
        ("reconstruct", np.full((2, 8), np.nan), ValueError, "X contains NaN"),
        ("score", X8[:, :7], ValueError, "X has 7 features"),
        ("inverse_transform", np.zeros((3, 8)), ValueError, "Z has 8 features per sample"),
        ("inverse_transform", np.zeros(3), ValueError, "Z must be 2-D"),
    ],
)
def test_bad_data(method, X, error, match):
    ae = Autoencoder([8, 3], seed=0)
    before = [W.copy() for W, _ in ae.model.get_weights()]
    with pytest.raises(error, match=match):
        getattr(ae, method)(X) if method != "fit" else ae.fit(X, verbose=0)
    for W, (W_after, _) in zip(before, ae.model.get_weights()):
        np.testing.assert_array_equal(W, W_after)


def test_bad_fit_arguments():
    ae = Autoencoder([8, 3], loss="binary_cross_entropy", seed=0)
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\] for loss 'binary_cross_entropy'"):
        ae.fit(X8 * 2, verbose=0)
    with pytest.raises(ValueError, match="validation_data has 5 features"):
        ae.fit(X8, validation_data=X8[:, :5], verbose=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        ae.fit(X8, epochs=0, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        ae.fit(X8, batch_size=-1, verbose=0)
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2"):
        ae.fit(X8, verbose=5)
