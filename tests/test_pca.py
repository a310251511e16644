"""PCA: kernels against NumPy references, agreement with scikit-learn, the estimator contract
and bad input."""

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SklearnPCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastdnn.decomposition import PCA
from fastdnn.kernels.cpu import decomposition as K

TOL = {np.float32: 2e-4, np.float64: 1e-9}


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X / 16.0


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_mean_and_center(dtype):
    X = (_rng().standard_normal((37, 5)) * 3 + 10).astype(dtype)
    mean = np.empty(5, dtype=dtype)
    K.column_mean(X, mean)
    np.testing.assert_allclose(mean, X.astype(np.float64).mean(axis=0), rtol=TOL[dtype])
    out = np.empty_like(X)
    total = K.center(X, mean, out)
    np.testing.assert_allclose(out, X - mean, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(total, ((X - mean).astype(np.float64) ** 2).sum(), rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_syrk_upper_accumulates_on_the_upper_triangle(dtype):
    A = _rng().standard_normal((9, 4)).astype(dtype)
    C0 = _rng(1).standard_normal((4, 4)).astype(dtype)
    C = C0.copy()
    K.syrk_upper(K.SYRK[np.dtype(dtype)], A, dtype(2.0), C)
    expected = A.T.astype(np.float64) @ A + 2.0 * C0
    upper = np.triu_indices(4)
    np.testing.assert_allclose(C[upper], expected[upper], rtol=TOL[dtype], atol=TOL[dtype])
    lower = np.tril_indices(4, -1)
    np.testing.assert_array_equal(C[lower], C0[lower])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_rows", [1, 7, 50, 1000])
def test_covariance_sum_matches_numpy(dtype, block_rows):
    # A mean far from zero: the centred blocks must not lose the spread to cancellation.
    X = (_rng().standard_normal((50, 6)) + 1000).astype(dtype)
    mean = X.astype(np.float64).mean(axis=0).astype(dtype)
    C = np.empty((6, 6), dtype=dtype)
    K.covariance_sum(X, mean, block_rows, K.SYRK[np.dtype(dtype)], C)
    Xc = X.astype(np.float64) - mean
    np.testing.assert_allclose(C, Xc.T @ Xc, rtol=50 * TOL[dtype], atol=50 * TOL[dtype])
    np.testing.assert_array_equal(C, C.T)


def _naive_svd_flip(V):
    V = V.copy()
    for row in V:
        row *= np.sign(row[np.argmax(np.abs(row))]) or 1
    return V


def test_svd_flip_rows_matches_reference():
    V = _rng().standard_normal((6, 9))
    V[2] = -np.abs(V[2])  # largest entry negative
    V[3] = 0.0  # left alone
    expected = _naive_svd_flip(V)
    K.svd_flip_rows(V)
    np.testing.assert_array_equal(V, expected)
    assert (V[[0, 1, 2, 4, 5]][np.arange(5), np.abs(V[[0, 1, 2, 4, 5]]).argmax(1)] > 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_orthonormalize_spans_the_same_space(dtype):
    Y = _rng().standard_normal((200, 6)) @ np.diag([1e3, 10, 1, 1, 0.1, 0.01])
    Y = Y.astype(dtype)
    Q1, Q = np.empty_like(Y), np.empty_like(Y)
    K.orthonormalize(Y, Q1, 1e-12)
    K.orthonormalize(Q1, Q, 1e-12)
    np.testing.assert_allclose(Q.T @ Q, np.eye(6), atol=10 * TOL[dtype])
    assert np.max(subspace_angles(Q.astype(np.float64), Y.astype(np.float64))) < 1e-3


def test_orthonormalize_zeroes_directions_outside_the_range():
    rng = _rng()
    Y = rng.standard_normal((100, 2)) @ rng.standard_normal((2, 5))  # rank 2, 5 columns
    Q = np.empty_like(Y)
    K.orthonormalize(Y, Q, 1e-12)
    norms = np.linalg.norm(Q, axis=0)
    assert np.sum(norms > 0.5) == 2 and np.sum(norms < 1e-6) == 3
    kept = Q[:, norms > 0.5]
    np.testing.assert_allclose(kept.T @ kept, np.eye(2), atol=1e-8)
    assert np.max(subspace_angles(kept, Y)) < 1e-8


def test_range_finder_captures_a_low_rank_range():
    rng = _rng()
    A = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 40))
    omega = rng.standard_normal((40, 8))
    Q = K.range_finder(A, omega, 2, 1e-14)
    assert np.linalg.norm(A - Q @ (Q.T @ A)) < 1e-9 * np.linalg.norm(A)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_project_and_reconstruct_match_numpy(dtype):
    rng = _rng()
    X = (rng.standard_normal((30, 7)) + 5).astype(dtype)
    mean = X.mean(axis=0)
    V = np.linalg.qr(rng.standard_normal((7, 3)))[0].T.astype(dtype).copy()
    scale = np.array([1.0, 0.5, 2.0], dtype=dtype)
    out = np.empty((30, 3), dtype=dtype)
    K.project(X, mean, V, scale, out)
    np.testing.assert_allclose(out, (X - mean) @ V.T * scale, rtol=TOL[dtype], atol=TOL[dtype])
    back = np.empty_like(X)
    K.reconstruct(out, V, mean, back)
    np.testing.assert_allclose(back, out @ V + mean, rtol=TOL[dtype], atol=TOL[dtype])


# ----------------------------------------------------------------------------- vs scikit-learn
def _assert_matches(ours, ref, X, tol, n_check=None):
    n = n_check or ours.n_components_
    assert ours.n_components_ == ref.n_components_
    # Up to sign; the sign convention is the same, so the flips found must all be +1.
    signs = np.sign(np.sum(ours.components_[:n] * ref.components_[:n], axis=1))
    np.testing.assert_array_equal(signs, 1)
    np.testing.assert_allclose(ours.components_[:n], ref.components_[:n], atol=tol)
    for name in ("explained_variance_", "explained_variance_ratio_", "singular_values_"):
        np.testing.assert_allclose(getattr(ours, name)[:n], getattr(ref, name)[:n], rtol=tol)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.noise_variance_, ref.noise_variance_, rtol=10 * tol)
    Z, Z_ref = ours.transform(X)[:, :n], ref.transform(X)[:, :n]
    np.testing.assert_allclose(Z, Z_ref, atol=tol * np.abs(Z_ref).max())
    back = ours.inverse_transform(ours.transform(X))
    np.testing.assert_allclose(back, ref.inverse_transform(ref.transform(X)), atol=10 * tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "solver, n_components", [("full", 10), ("full", 0.9), ("randomized", 10), ("auto", 20)]
)
def test_matches_sklearn_on_digits(digits, dtype, solver, n_components):
    X = digits.astype(dtype)
    ours = PCA(n_components, svd_solver=solver, random_state=0).fit(X)
    ref = SklearnPCA(n_components, svd_solver=solver, random_state=0).fit(X)
    _assert_matches(ours, ref, X, TOL[dtype] if dtype == np.float32 else 1e-7)
    assert ours.components_.dtype == dtype and ours.transform(X).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_randomized_solver_is_as_accurate_as_sklearns(digits, dtype, seed):
    X = digits.astype(dtype)
    exact = SklearnPCA(8, svd_solver="full").fit(X).components_.T.astype(np.float64)
    ours = PCA(8, svd_solver="randomized", random_state=seed).fit(X)
    ref = SklearnPCA(8, svd_solver="randomized", random_state=seed).fit(X)
    angle = np.degrees(subspace_angles(ours.components_.T.astype(np.float64), exact)).max()
    angle_ref = np.degrees(subspace_angles(ref.components_.T.astype(np.float64), exact)).max()
    assert angle < 1.0 and angle <= 1.01 * angle_ref + 1e-3
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-4)


def test_whiten_matches_sklearn_and_gives_unit_variance(digits):
    ours = PCA(12, whiten=True).fit(digits)
    ref = SklearnPCA(12, whiten=True).fit(digits)
    Z = ours.transform(digits)
    np.testing.assert_allclose(Z, ref.transform(digits), atol=1e-8)
    np.testing.assert_allclose(Z.var(axis=0, ddof=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(ours.inverse_transform(Z), ref.inverse_transform(Z), atol=1e-8)
    plain = PCA(12).fit(digits)
    np.testing.assert_allclose(
        ours.inverse_transform(Z), plain.inverse_transform(plain.transform(digits)), atol=1e-8
    )


@pytest.mark.parametrize("solver", ["full", "randomized"])
def test_wide_data_matches_sklearn(digits, solver):
    X = digits[:40]  # 40 samples, 64 features: handled through the transpose / the data's SVD
    k = 5 if solver == "randomized" else None
    ours = PCA(k, svd_solver=solver, random_state=0).fit(X)
    ref = SklearnPCA(k, svd_solver=solver, random_state=0).fit(X)
    _assert_matches(ours, ref, X, 1e-7, n_check=min(ours.n_components_, 30))


def test_all_components_reconstruct_exactly(digits):
    pca = PCA().fit(digits)
    assert pca.n_components_ == 64 and pca.noise_variance_ == 0
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(digits)), digits, atol=1e-10)
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(64), atol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio_.sum(), 1.0)


def test_fit_transform_equals_fit_then_transform(digits):
    a = PCA(7, svd_solver="randomized", random_state=0)
    b = clone(a)
    np.testing.assert_allclose(a.fit_transform(digits), b.fit(digits).transform(digits))


def test_sign_convention_and_determinism(digits):
    a = PCA(15, random_state=3).fit(digits)
    b = PCA(15, random_state=3).fit(digits[::-1])  # row order must not matter
    rows = np.arange(15)
    assert (a.components_[rows, np.abs(a.components_).argmax(axis=1)] > 0).all()
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-10)


@pytest.mark.parametrize(
    "shape, n_components, expected",
    [
        ((1000, 64), 10, "full"),  # tall and narrow: covariance route
        ((300, 400), 10, "full"),  # small
        ((60, 1001), 10, "randomized"),
        ((60, 1001), 0.5, "full"),  # a variance fraction needs the whole spectrum
        ((60, 1001), 48, "full"),  # 80 % of the components or more
        ((60, 1001), None, "full"),
    ],
)
def test_auto_solver_policy(shape, n_components, expected):
    X = _rng().standard_normal(shape).astype(np.float32)
    pca = PCA(n_components, random_state=0).fit(X)
    assert pca._fit_svd_solver == expected


def test_dtypes():
    X = _rng().integers(0, 5, size=(30, 4))
    pca = PCA(2).fit(X)
    assert pca.components_.dtype == np.float64 and pca.transform(X).dtype == np.float64
    pca32 = PCA(2).fit(X.astype(np.float32))
    assert pca32.mean_.dtype == np.float32 and pca32.explained_variance_.dtype == np.float32
    assert pca32.transform(X.astype(np.float32)).dtype == np.float32
    assert pca32.transform(X.astype(np.float64)).dtype == np.float64  # no silent downcast
    assert pca32.inverse_transform(np.zeros((3, 2), np.float32)).dtype == np.float32


# ----------------------------------------------------------------------------- estimator contract
@parametrize_with_checks(
    [
        PCA(random_state=0),
        PCA(n_components=2, svd_solver="randomized", random_state=0),
        PCA(n_components=2, whiten=True),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_pipeline_and_feature_names(digits):
    _, y = load_digits(return_X_y=True)
    pipe = make_pipeline(PCA(0.95), LogisticRegression(max_iter=500))
    pipe.fit(digits[:1200], y[:1200])
    assert pipe.score(digits[1200:], y[1200:]) > 0.9
    pca = PCA(3).fit(digits)
    assert list(pca.get_feature_names_out()) == ["pca0", "pca1", "pca2"]
    assert pca.get_params()["n_components"] == 3


# ----------------------------------------------------------------------------- bad input
X_GOOD = np.random.default_rng(0).standard_normal((20, 6))


@pytest.mark.parametrize(
    "params, X, error, match",
    [
        ({"n_components": 7}, X_GOOD, ValueError, r"n_components=7 must be between 1 and .*=6"),
        ({"n_components": 25}, X_GOOD.T, ValueError, r"min\(n_samples, n_features\)=6"),
        ({"n_components": 0}, X_GOOD, ValueError, "n_components must be >= 1"),
        ({"n_components": 1.5}, X_GOOD, ValueError, r"float in \(0, 1\)"),
        ({"n_components": "3"}, X_GOOD, TypeError, "n_components"),
        ({"n_components": True}, X_GOOD, TypeError, "n_components"),
        ({"n_components": 0.5, "svd_solver": "randomized"}, X_GOOD, ValueError, "exact solver"),
        ({"svd_solver": "arpack"}, X_GOOD, ValueError, "unknown svd_solver 'arpack'"),
        ({"whiten": "yes"}, X_GOOD, TypeError, "whiten"),
        ({"iterated_power": -1}, X_GOOD, ValueError, "iterated_power"),
        ({"n_oversamples": 0}, X_GOOD, ValueError, "n_oversamples"),
        ({}, np.where(np.eye(20, 6) > 0, np.nan, 1.0), ValueError, "NaN"),
        ({}, np.where(np.eye(20, 6) > 0, np.inf, 1.0), ValueError, "infinity"),
        ({}, X_GOOD[:, 0], ValueError, "Expected 2D array, got 1D"),
        ({}, X_GOOD[None], ValueError, "dim 3"),
        ({}, np.empty((0, 6)), ValueError, "0 sample"),
        ({}, X_GOOD[:1], ValueError, "1 sample"),
        ({}, np.array([["a", "b"], ["c", "d"]]), ValueError, "string"),
    ],
)
def test_bad_fit_input(params, X, error, match):
    pca = PCA(**params)
    with pytest.raises(error, match=match):
        pca.fit(X)
    assert not hasattr(pca, "components_")


def test_rejected_fit_leaves_the_estimator_unchanged():
    pca = PCA(3).fit(X_GOOD)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(pca).items()}
    for bad in (X_GOOD[:2], X_GOOD * np.nan, X_GOOD[:, :2]):  # 2 rows < 3 components; NaN; 2 cols
        with pytest.raises(ValueError):
            pca.fit(bad)
        with pytest.raises(ValueError):
            pca.fit_transform(bad)
    after = vars(pca)
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)


def test_transform_before_fit_and_wrong_widths():
    pca = PCA(2)
    with pytest.raises(NotFittedError, match="not fitted"):
        pca.transform(X_GOOD)
    with pytest.raises(NotFittedError):
        pca.inverse_transform(np.zeros((2, 2)))
    pca.fit(X_GOOD)
    with pytest.raises(ValueError, match="X has 5 features, but PCA is expecting 6"):
        pca.transform(X_GOOD[:, :5])
    with pytest.raises(ValueError, match="X has 3 columns, but this PCA has 2 components"):
        pca.inverse_transform(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        pca.transform(np.full((2, 6), np.nan))
