"""fastdnn's MLPClassifier/MLPRegressor as drop-ins for scikit-learn's, checked against
scikit-learn's own implementation as the reference: the same parameters, initial weights, loss
and gradient, SGD updates, L-BFGS results, dtypes and fitted attributes; and
``fastdnn.patch_sklearn``.

scikit-learn's private ``_loss_grad_lbfgs`` serves as the reference loss and gradient (it is the
function its L-BFGS minimises); everything else compares public behaviour.
"""

import inspect
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk_nn
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer

import fastdnn as fd
from fastdnn.estimators import MLPClassifier, MLPRegressor

PAIRS = [(MLPClassifier, sk_nn.MLPClassifier), (MLPRegressor, sk_nn.MLPRegressor)]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(n_class=3, return_X_y=True)
    return X[:90] / 16.0, y[:90]


def _quiet(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(*args, **kwargs)


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=["classifier", "regressor"])
def test_parameters_match_scikit_learn(ours, theirs):
    ours_sig = inspect.signature(ours).parameters
    theirs_sig = inspect.signature(theirs).parameters
    assert list(ours_sig)[: len(theirs_sig)] == list(theirs_sig)
    for name, param in theirs_sig.items():
        assert ours_sig[name].default == param.default, name
        assert ours_sig[name].kind == param.kind, name


def _fitted_pair(ours, theirs, X, y, **params):
    a = _quiet(ours(**params), X, y)
    b = _quiet(theirs(**params), X, y)
    return a, b


@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_initial_weights_are_scikit_learns(digits, activation):
    # A learning rate of 1e-12 leaves the weights where they started.
    X, y = digits
    params = dict(
        hidden_layer_sizes=(7,), solver="sgd", learning_rate_init=1e-12, max_iter=1,
        random_state=3, activation=activation, momentum=0.0,
    )  # fmt: skip
    a, b = _fitted_pair(MLPClassifier, sk_nn.MLPClassifier, X, y, **params)
    for ours, theirs in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.float64
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


def _reference_loss_and_gradient(theirs, X, Y, sample_weight, coefs, intercepts):
    """scikit-learn's loss and packed gradient at the given weights."""
    theirs.coefs_ = [c.copy() for c in coefs]
    theirs.intercepts_ = [i.copy() for i in intercepts]
    layer_units = [X.shape[1]] + [c.shape[1] for c in coefs]
    theirs._coef_indptr, theirs._intercept_indptr = [], []
    start = 0
    for a, b in zip(layer_units, layer_units[1:]):
        theirs._coef_indptr.append((start, start + a * b, (a, b)))
        start += a * b
    for b in layer_units[1:]:
        theirs._intercept_indptr.append((start, start + b))
        start += b
    n = len(layer_units)
    activations = [X] + [None] * (n - 1)
    deltas = [None] * (n - 1)
    coef_grads = [np.empty((a, b)) for a, b in zip(layer_units, layer_units[1:])]
    intercept_grads = [np.empty(b) for b in layer_units[1:]]
    packed = np.hstack([c.ravel() for c in coefs] + [i.ravel() for i in intercepts])
    return theirs._loss_grad_lbfgs(
        packed, X, Y, sample_weight, activations, deltas, coef_grads, intercept_grads
    )


def _multiclass():
    X, y = load_digits(n_class=3, return_X_y=True)
    return X[:60] / 16.0, y[:60]


def _binary():
    X, y = load_digits(n_class=2, return_X_y=True)
    return X[:60] / 16.0, y[:60]


def _multilabel():
    return make_multilabel_classification(n_samples=40, n_features=6, random_state=0)


def _regression(n_targets=1):
    X, y = make_regression(n_samples=50, n_features=5, n_targets=n_targets, random_state=0)
    return X, y / y.std()


def _counts():
    rng = np.random.default_rng(0)
    X = rng.random((50, 3))
    return X, rng.poisson(np.exp(X @ [0.5, -0.2, 0.3] + 0.5)).astype(float)


GRADIENT_CASES = [
    ("multiclass", MLPClassifier, sk_nn.MLPClassifier, _multiclass, {}),
    ("binary", MLPClassifier, sk_nn.MLPClassifier, _binary, {"activation": "logistic"}),
    ("multilabel", MLPClassifier, sk_nn.MLPClassifier, _multilabel, {"activation": "tanh"}),
    ("squared_error", MLPRegressor, sk_nn.MLPRegressor, _regression, {}),
    ("poisson", MLPRegressor, sk_nn.MLPRegressor, _counts, {"loss": "poisson"}),
]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(
    "ours, theirs, data, extra", [c[1:] for c in GRADIENT_CASES], ids=[c[0] for c in GRADIENT_CASES]
)
def test_loss_and_gradient_match_scikit_learn(ours, theirs, data, extra, weighted):
    # The function L-BFGS minimises: fastdnn's compiled loss and gradient at the fitted weights
    # against scikit-learn's at the same weights, float64.
    X, y = data()
    weight = np.random.default_rng(1).random(len(X)) + 0.5 if weighted else None
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=3, alpha=0.3,
                  random_state=0, **extra)  # fmt: skip
    est = _quiet(ours(**params), X, y, sample_weight=weight)
    reference = theirs(**params)
    _quiet(reference, X, y, sample_weight=weight)
    if ours is MLPClassifier:
        Y = est._label_binarizer.transform(y).astype(float)
    else:
        Y = y.reshape(len(X), -1)
    expected_loss, expected_grad = _reference_loss_and_gradient(
        reference, X, Y, weight, est.coefs_, est.intercepts_
    )
    model = est.model_
    Xv, Yv, wv = model._data(X, Y, weight)
    grads = np.empty_like(model._params)
    loss = model._loss_and_flat_gradient(Xv, Yv, wv, grads)
    views = model._layer_views(grads)
    packed = np.hstack([dW.T.ravel() for dW, _ in views] + [db for _, db in views])
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-10)
    np.testing.assert_allclose(packed, expected_grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(
    "ours, theirs, data, extra", [c[1:] for c in GRADIENT_CASES], ids=[c[0] for c in GRADIENT_CASES]
)
def test_lbfgs_reaches_scikit_learns_solution(ours, theirs, data, extra):
    X, y = data()
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=40, random_state=0, **extra)
    a, b = _fitted_pair(ours, theirs, X, y, **params)
    assert a.n_iter_ <= 40 and a.loss_ == pytest.approx(b.loss_, rel=1e-3, abs=1e-6)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-3, atol=1e-3)


def test_multi_output_squared_error_is_consistent():
    # scikit-learn reports half the squared error averaged over all outputs but steps along the
    # gradient of its sum over outputs; fastdnn reports the same value and steps along its
    # gradient (consistent, which L-BFGS's line search relies on). One output: identical.
    X, y = _regression(2)
    est = _quiet(MLPRegressor(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=5, alpha=0), X, y)
    residual = est.predict(X) - y
    assert est.loss_ == pytest.approx(0.5 * np.mean(residual**2), rel=1e-6)
    loss, grads = est.model_.loss_and_gradients(X, y)
    assert loss == pytest.approx(est.loss_, rel=1e-6)


@pytest.mark.parametrize(
    "learning_rate, momentum, shuffle", [("constant", 0.9, True), ("invscaling", 0.0, False)]
)
def test_sgd_epochs_match_scikit_learn(digits, learning_rate, momentum, shuffle):
    # In scikit-learn's epoch orders, fastdnn's SGD (torch's momentum form, equal to
    # scikit-learn's while the learning rate is constant) takes scikit-learn's steps. The
    # batches divide the data evenly: scikit-learn divides alpha by each batch's own size,
    # fastdnn by batch_size, which differs on a shorter last batch.
    X, y = digits
    params = dict(
        hidden_layer_sizes=(8,), solver="sgd", shuffle=shuffle, batch_size=18, max_iter=4,
        learning_rate=learning_rate, momentum=momentum, learning_rate_init=0.05, alpha=1e-3,
        random_state=0, power_t=0.3,
    )  # fmt: skip
    a, b = _fitted_pair(MLPClassifier, sk_nn.MLPClassifier, X, y, **params)
    for ours, theirs in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-10)
    # scikit-learn adds each batch's penalty at that batch's weights, fastdnn the penalty at
    # the end of the epoch: the reported losses differ in the penalty term only.
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-3)
    assert a.t_ == b.t_ and a.n_iter_ == b.n_iter_


def test_fitted_attributes(digits):
    X, y = digits
    for solver in ("adam", "lbfgs"):
        # random_state: 2 of 200 random initialisations let L-BFGS stop after 4 iterations
        clf = MLPClassifier(hidden_layer_sizes=(5, 4), solver=solver, max_iter=5, random_state=0)
        clf = _quiet(clf, X, y)
        assert clf.n_layers_ == 4 and clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
        assert [c.shape for c in clf.coefs_] == [(64, 5), (5, 4), (4, 3)]
        assert [b.shape for b in clf.intercepts_] == [(5,), (4,), (3,)]
        assert clf.n_features_in_ == 64 and clf.n_iter_ == 5 and np.isfinite(clf.loss_)
    assert clf.t_ == 0 and not hasattr(clf, "loss_curve_")  # as scikit-learn's lbfgs
    binary = _quiet(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2), X, y == 1)
    assert binary.n_outputs_ == 1 and binary.out_activation_ == "logistic"
    assert binary.predict_proba(X).shape == (len(X), 2)
    poisson = _quiet(MLPRegressor(loss="poisson", max_iter=2), *_counts())
    assert poisson.out_activation_ == "exp"


def test_coefs_are_the_network_and_assignments_are_honoured(digits):
    X, y = digits
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0), X, y)
    W0 = clf.model_.get_weights()[0][0]
    np.testing.assert_array_equal(clf.coefs_[0], W0.T)  # (n_in, n_out), as scikit-learn's
    clf.coefs_[1][:] = 0  # in place: a view of the network's buffer
    clf.intercepts_[1][:] = [0.0, 5.0, 0.0]
    assert (clf.predict(X) == 1).all()
    clf.intercepts_ = [clf.intercepts_[0], np.array([5.0, 0.0, 0.0])]  # a new array
    assert (clf.predict(X) == 0).all()
    again = pickle.loads(pickle.dumps(clf))
    assert (again.predict(X) == 0).all() and again.coefs_[0].base is not None
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(5, 3\)"):
        clf.coefs_ = [clf.coefs_[0], np.zeros((4, 3))]
        clf.predict(X)
    clf.coefs_ = [clf.coefs_[0], np.full((5, 3), np.nan)]
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(X)


def test_multilabel_outputs(digits):
    X, Y = _multilabel()
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(20,), solver="lbfgs", random_state=0), X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == Y.shape[1]
    assert clf.predict(X).shape == Y.shape and set(np.unique(clf.predict(X))) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and not np.allclose(proba.sum(axis=1), 1)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_dtype_follows_the_data_unless_told(digits, estimator):
    X, y = digits
    for data_dtype, option, expected in [
        (np.float32, None, np.float32),
        (np.float64, None, np.float64),
        (np.int64, None, np.float64),
        (np.float64, "float32", np.float32),
        (np.float32, "float64", np.float64),
    ]:
        data = (X * 16).astype(int) if data_dtype == np.int64 else X.astype(data_dtype)
        est = _quiet(estimator(hidden_layer_sizes=(4,), max_iter=2, dtype=option), data, y)
        assert est.model_.dtype == expected
        assert all(c.dtype == expected for c in est.coefs_ + est.intercepts_)
        output = est.predict_proba(X) if estimator is MLPClassifier else est.predict(X)
        assert output.dtype == expected


def test_save_and_load_keep_the_scikit_learn_state(digits, tmp_path):
    X, y = digits
    clf = _quiet(
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=4, early_stopping=True, random_state=0),
        X, y.astype(str),
    )  # fmt: skip
    clf.save(tmp_path / "clf.npz")
    loaded = fd.load(tmp_path / "clf.npz")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    for name in ("classes_", "t_", "n_iter_", "loss_curve_", "validation_scores_",
                 "best_validation_score_", "out_activation_", "n_layers_"):  # fmt: skip
        np.testing.assert_array_equal(getattr(loaded, name), getattr(clf, name))
    np.testing.assert_array_equal(loaded.coefs_[0], clf.coefs_[0])
    reg = _quiet(MLPRegressor(hidden_layer_sizes=(5,), solver="sgd", max_iter=3), X, y)
    reg.save(tmp_path / "reg.npz")
    resumed, same = fd.load(tmp_path / "reg.npz"), pickle.loads(pickle.dumps(reg))
    for est in (resumed, same):  # the optimizer state (momentum) is saved too
        est.partial_fit(X, y)
    np.testing.assert_allclose(resumed.predict(X), same.predict(X), rtol=1e-12)


def test_patch_sklearn_swaps_the_classes_and_back():
    fd.patch_sklearn()
    try:
        from sklearn.neural_network import MLPClassifier as Patched

        assert Patched is MLPClassifier and fd.patch.is_patched()
        assert sk_nn._multilayer_perceptron.MLPRegressor is MLPRegressor
    finally:
        fd.unpatch_sklearn()
    assert sk_nn.MLPClassifier is not MLPClassifier and not fd.patch.is_patched()
    assert sk_nn.MLPClassifier.__module__ == "sklearn.neural_network._multilayer_perceptron"


def test_patch_runs_an_unchanged_script(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import sys\n"
        "from sklearn.neural_network import MLPClassifier\n"
        "clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit([[0.0], [1.0]], [0, 1])\n"
        "print(type(clf).__module__, sys.argv[1:])\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "fastdnn.patch", str(script), "x"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["fastdnn.estimators", "['x']"]


def test_bad_input_leaves_the_estimator_as_it_was(digits):
    X, y = digits
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0), X, y)
    before = [c.copy() for c in clf.coefs_]
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.partial_fit(bad, y)
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :5], y)
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y + 7)
    for c, b in zip(clf.coefs_, before):
        np.testing.assert_array_equal(c, b)
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, -np.ones(len(X)))


def test_label_binarizer_encoding_is_scikit_learns(digits):
    X, y = digits
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(3,), max_iter=1), X, y)
    assert isinstance(clf._label_binarizer, LabelBinarizer)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])


def test_lbfgs_and_poisson_on_the_cuda_device_match_the_cpu():
    # L-BFGS evaluates the loss and gradient through the device engine (the CUDA simulator
    # without a GPU: tiny shapes).
    pytest.importorskip("numba_cuda")
    X, y = _counts()
    X, y = X[:12], y[:12]
    params = dict(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=2, loss="poisson",
                  random_state=0)  # fmt: skip
    cpu = _quiet(MLPRegressor(**params), X, y)
    gpu = _quiet(MLPRegressor(**params, device="cuda"), X, y)
    assert gpu.model_.device == "cuda" and gpu.n_iter_ == cpu.n_iter_
    assert gpu.loss_ == pytest.approx(cpu.loss_, rel=1e-10)
    np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), rtol=1e-10)
