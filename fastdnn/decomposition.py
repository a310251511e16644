"""Dimensionality reduction: :class:`PCA` (classical) and :class:`Autoencoder` (learned).

``PCA`` is a scikit-learn transformer whose numeric work runs in the Numba kernels of
``fastdnn.kernels.cpu.decomposition``; ``Autoencoder`` is a mirrored stack of ``Dense`` layers
trained as one :class:`~fastdnn.network.Sequential` to reproduce its input. Both put a compact
representation in front of a network (``transform``) and map it back (``inverse_transform``).
"""

import functools
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import io as _io
from ._validation import as_matrix, choice, positive_int
from .kernels.cpu import decomposition as _kernels
from .layers import ACTIVATIONS, Dense
from .network import Sequential
from .optimizers import Adam

SVD_SOLVERS = ("auto", "full", "randomized")


def _restore_on_error(method):
    """Run ``method`` so that an exception leaves the estimator's attributes as they were."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        saved = dict(self.__dict__)
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    return wrapper


class PCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Principal component analysis: project centred data on its directions of largest variance.

    A drop-in for the dense-data part of ``sklearn.decomposition.PCA`` (same parameters, fitted
    attributes and sign convention) computed by Numba kernels with BLAS/LAPACK inside.

    Parameters
    ----------
    n_components : int, float or None, default None
        Number of components to keep. ``None`` keeps ``min(n_samples, n_features)``; an int
        must lie in ``[1, min(n_samples, n_features)]``; a float in (0, 1) keeps the fewest
        components whose explained variance ratio adds up to more than it (exact solver only).
    whiten : bool, default False
        Divide the projections by the square root of the explained variance, so that each
        output column has unit variance on the training data.
    svd_solver : {"auto", "full", "randomized"}, default "auto"
        ``"full"``: every component, exactly. For ``n_samples >= n_features`` the covariance
        matrix is built from centred row blocks by BLAS ``?syrk`` and eigendecomposed
        (scikit-learn's ``"covariance_eigh"``); otherwise the centred data goes to LAPACK's SVD.
        ``"randomized"``: the leading ``n_components`` by Halko et al.'s randomized SVD with
        ``iterated_power`` power iterations. ``"auto"``: scikit-learn's policy: ``"full"`` for
        ``n_features <= 1000`` and ``n_samples >= 10 * n_features`` or when both dimensions are
        at most 500 or ``n_components`` is a float, ``None`` or at least 80 % of
        ``min(n_samples, n_features)``; ``"randomized"`` otherwise.
    iterated_power : int >= 0 or "auto", default "auto"
        Power iterations of the randomized solver; ``"auto"`` uses 7 when ``n_components`` is
        below 10 % of ``min(n_samples, n_features)``, else 4 (as scikit-learn).
    n_oversamples : int, default 10
        Extra random directions sampled by the randomized solver.
    random_state : int, RandomState instance or None, default None
        Seeds the randomized solver's Gaussian test matrix (drawn as scikit-learn draws it).

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
        Principal axes (unit rows), by decreasing explained variance. In each row the entry of
        largest magnitude is positive (scikit-learn's ``svd_flip``).
    explained_variance_ : ndarray of shape (n_components_,)
        Variance along each axis (``n_samples - 1`` in the denominator).
    explained_variance_ratio_ : ndarray of shape (n_components_,)
        Fraction of the total variance along each axis.
    singular_values_ : ndarray of shape (n_components_,)
        Singular values of the centred training data.
    mean_ : ndarray of shape (n_features,)
        Per-feature mean of the training data.
    n_components_ : int
        Number of components kept.
    noise_variance_ : float
        Mean variance of the discarded directions (probabilistic PCA's noise estimate).
    n_samples_ : int
        Training rows.
    n_features_in_ : int
        Training columns.
    feature_names_in_ : ndarray of str
        Column names, when fitted on a DataFrame with string column names.

    Notes
    -----
    float32 input is fitted and transformed in float32 (other input in float64); fitted
    arrays have the dtype of the training data. With float32 data the exact solver's
    covariance route determines small eigenvalues (below about 1e-6 of the largest) less
    precisely than an SVD of the data would; fit float64 data where those matter.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastdnn.decomposition import PCA
    >>> X, _ = load_digits(return_X_y=True)
    >>> pca = PCA(n_components=0.9).fit(X)
    >>> pca.n_components_
    21
    """

    def __init__(
        self,
        n_components=None,
        *,
        whiten=False,
        svd_solver="auto",
        iterated_power="auto",
        n_oversamples=10,
        random_state=None,
    ):
        self.n_components = n_components
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _check_params(self):
        choice(self.svd_solver, "svd_solver", SVD_SOLVERS)
        if not isinstance(self.whiten, (bool, np.bool_)):
            raise TypeError(f"whiten must be True or False, got {self.whiten!r}")
        k = self.n_components
        if k is not None:
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Real):
                raise TypeError(
                    f"n_components must be None, an int >= 1 or a float in (0, 1), got {k!r}"
                )
            if isinstance(k, numbers.Integral):
                if k < 1:
                    raise ValueError(f"n_components must be >= 1, got {k!r}")
            elif not 0 < k < 1:
                raise ValueError(
                    f"n_components must be an int >= 1 or a float in (0, 1), got {k!r}"
                )
            elif self.svd_solver == "randomized":
                raise ValueError(
                    f"n_components={k!r} (a fraction of the variance) needs the exact solver: "
                    "use svd_solver='full' or 'auto', or pass a number of components"
                )
        power = self.iterated_power
        if not (isinstance(power, str) and power == "auto"):
            if isinstance(power, bool) or not isinstance(power, numbers.Integral) or power < 0:
                raise ValueError(f"iterated_power must be 'auto' or an int >= 0, got {power!r}")
        positive_int(self.n_oversamples, "n_oversamples")
        return check_random_state(self.random_state)

    def _resolve_solver(self, n_samples, n_features):
        if self.svd_solver != "auto":
            return self.svd_solver
        k = self.n_components
        if n_features <= 1000 and n_samples >= 10 * n_features:
            return "full"
        if max(n_samples, n_features) <= 500 or k is None or not isinstance(k, numbers.Integral):
            return "full"
        return "randomized" if k < 0.8 * min(n_samples, n_features) else "full"

    # ------------------------------------------------------------------ fitting
    def _fit(self, X):
        """Validate, fit and set the fitted attributes; returns the validated ``X``."""
        rng = self._check_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", ensure_min_samples=2)
        n_samples, n_features = X.shape
        rank = min(n_samples, n_features)
        k = self.n_components
        if isinstance(k, numbers.Integral) and k > rank:
            raise ValueError(
                f"n_components={k} must be between 1 and min(n_samples, n_features)={rank}: "
                f"X has shape {X.shape}"
            )
        solver = self._resolve_solver(n_samples, n_features)
        mean = np.empty(n_features, dtype=X.dtype)
        if solver == "full":
            S, components, total_ss = _kernels.fit_exact(
                X, _kernels.COVARIANCE_BLOCK_ROWS, _kernels.SYRK[X.dtype], mean
            )
            variance = S**2 / (n_samples - 1)
            total_var = variance.sum()
            ratio = variance / total_var if total_var > 0 else np.zeros_like(variance)
            if k is None:
                k = rank
            elif not isinstance(k, numbers.Integral):
                k = int(np.searchsorted(np.cumsum(ratio), k, side="right")) + 1
                k = min(k, rank)
            k = int(k)
            noise = float(variance[k:].mean()) if k < rank else 0.0
        else:
            k = rank if k is None else int(k)
            power = self.iterated_power
            if power == "auto":
                power = 7 if k < 0.1 * rank else 4
            # The same Gaussian draw as scikit-learn's randomized_range_finder.
            # (n_features, l) for tall data; wide data is handled as its transpose.
            omega = rng.normal(size=(rank, k + self.n_oversamples)).astype(X.dtype)
            omega = np.ascontiguousarray(omega[:, : min(k + self.n_oversamples, rank)])
            eps = np.finfo(X.dtype).eps
            rtol = 100 * max(eps * eps, np.finfo(np.float64).eps)
            S, components, total_ss = _kernels.fit_randomized(X, omega, int(power), rtol, k, mean)
            variance = S**2 / (n_samples - 1)
            total_var = total_ss / (n_samples - 1)
            ratio = variance / total_var if total_var > 0 else np.zeros_like(variance)
            noise = (total_var - variance.sum()) / (rank - k) if k < rank else 0.0
            noise = max(float(noise), 0.0)

        dtype = X.dtype
        self._fit_svd_solver = solver
        self.mean_ = mean
        self.components_ = np.ascontiguousarray(components[:k])
        self.explained_variance_ = variance[:k].astype(dtype)
        self.explained_variance_ratio_ = ratio[:k].astype(dtype)
        self.singular_values_ = S[:k].astype(dtype)
        self.n_components_ = k
        self.n_samples_ = n_samples
        self.noise_variance_ = dtype.type(noise)
        return X

    @_restore_on_error
    def fit(self, X, y=None):
        """Fit the model to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (at least 2 rows, finite).
        y : ignored

        Returns
        -------
        self : PCA
        """
        self._fit(X)
        return self

    @_restore_on_error
    def fit_transform(self, X, y=None):
        """Fit the model to ``X`` and return its projection.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        ndarray of shape (n_samples, n_components_)
        """
        return self._project(self._fit(X))

    # ------------------------------------------------------------------ transforms
    def _params_as(self, dtype):
        return self.mean_.astype(dtype, copy=False), self.components_.astype(dtype, copy=False)

    def _project(self, X):
        mean, components = self._params_as(X.dtype)
        if self.whiten:
            std = np.sqrt(self.explained_variance_.astype(np.float64))
            scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
        else:
            scale = np.ones(self.n_components_)
        out = np.empty((X.shape[0], self.n_components_), dtype=X.dtype)
        _kernels.project(X, mean, components, scale.astype(X.dtype), out)
        return out

    def transform(self, X):
        """Project ``X`` on the principal axes: ``(X - mean_) @ components_.T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        ndarray of shape (n_samples, n_components_)
            Divided by ``sqrt(explained_variance_)`` when ``whiten``. float32 when both ``X``
            and the fitted model are float32, else float64.
        """
        check_is_fitted(self, "components_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        dtype = np.promote_types(X.dtype, self.components_.dtype)
        return self._project(np.ascontiguousarray(X, dtype=dtype))

    def inverse_transform(self, X):
        """Map projections back to feature space: ``X @ components_ + mean_`` (un-whitened).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_)
            The rank-``n_components_`` reconstruction of the data that was projected.
        """
        check_is_fitted(self, "components_")
        Z = check_array(X, dtype=[np.float64, np.float32], order="C", input_name="X")
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} columns, but this PCA has {self.n_components_} components"
            )
        dtype = np.promote_types(Z.dtype, self.components_.dtype)
        Z = np.ascontiguousarray(Z, dtype=dtype)
        mean, basis = self._params_as(dtype)
        if self.whiten:
            basis = basis * np.sqrt(self.explained_variance_.astype(dtype))[:, None]
        out = np.empty((Z.shape[0], basis.shape[1]), dtype=dtype)
        _kernels.reconstruct(Z, np.ascontiguousarray(basis), mean, out)
        return out

    @property
    def _n_features_out(self):
        """Number of output columns, for ``get_feature_names_out``."""
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    _ARRAYS = (
        "mean_", "components_", "explained_variance_", "explained_variance_ratio_",
        "singular_values_",
    )  # fmt: skip

    def save(self, path):
        """Save the parameters and fitted attributes (see :mod:`fastdnn.io`); ``fd.load`` reads
        them back into a PCA that transforms identically."""
        check_is_fitted(self)
        fitted = {
            "n_components_": int(self.n_components_),
            "n_samples_": int(self.n_samples_),
            "n_features_in_": int(self.n_features_in_),
            "noise_variance_": float(self.noise_variance_),
            "_fit_svd_solver": self._fit_svd_solver,
        }
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(name) for name in self.feature_names_in_]
        meta = {"params": _io.encode_value(self.get_params()), "fitted": fitted}
        _io.save_archive(path, "PCA", meta, {name: getattr(self, name) for name in self._ARRAYS})

    @classmethod
    def _from_archive(cls, meta, arrays, device=None):
        pca = cls(**_io.decode_value(meta["params"]))
        for name, value in meta["fitted"].items():
            if name == "feature_names_in_":
                value = np.asarray(value, dtype=object)
            setattr(pca, name, value)
        for name in cls._ARRAYS:
            setattr(pca, name, arrays[name])
        pca.noise_variance_ = pca.mean_.dtype.type(pca.noise_variance_)
        if pca.components_.shape != (pca.n_components_, pca.n_features_in_):
            raise ValueError("components_ does not match n_components_ and n_features_in_")
        return pca


class Autoencoder:
    """A dense autoencoder: an encoder stack and its mirror image, trained to reproduce ``X``.

    The encoder maps ``layer_sizes[0]`` features through ``layer_sizes[1:-1]`` to a bottleneck
    of ``layer_sizes[-1]``; the decoder mirrors it (the sizes reversed) back to
    ``layer_sizes[0]``. Encoder and decoder are one :class:`~fastdnn.network.Sequential`
    (``model``), trained by ``Sequential.fit(X, X)``: the same compiled engine as any network.

    Parameters
    ----------
    layer_sizes : sequence of int, default (784, 256, 32)
        Input width, hidden widths, bottleneck width (at least two entries).
    activation : str, default "relu"
        Activation of every hidden layer (any :class:`~fastdnn.layers.Dense` activation but
        ``softmax``).
    output_activation : str, default "sigmoid"
        Activation of the reconstruction: ``"sigmoid"`` for data in [0, 1] (e.g. pixels
        scaled by 1/255), ``"linear"`` for unbounded data, or another elementwise activation.
    loss : {"mse", "binary_cross_entropy"}, default "mse"
        Reconstruction loss. ``binary_cross_entropy`` needs the sigmoid output and ``X`` in
        [0, 1].
    optimizer : Optimizer, str or None, default None
        As for ``Sequential.compile``; ``None`` means ``Adam()``.
    l1, l2 : float, default 0.0
        Weight penalties, as for ``Sequential.compile``.
    dtype : {"float32", "float64"}, default "float32"
    seed : int or None, default None
        Seeds the initial weights and the shuffling.
    bottleneck_activation : str, default "linear"
        Activation of the bottleneck layer (the last encoder layer). Linear by default, as is
        usual: the code is then not clipped or squashed, and a fully linear autoencoder
        (``activation="linear"``, ``output_activation="linear"``) learns the PCA subspace.
    device : {"cpu", "cuda"}, default "cpu"
        Where the network trains and runs (see ``Sequential``).

    Attributes
    ----------
    model : Sequential
        Encoder and decoder layers in one network.
    n_encoder_layers : int
        Number of leading layers of ``model`` that form the encoder.

    Examples
    --------
    >>> import fastdnn as fd
    >>> from fastdnn.decomposition import Autoencoder
    >>> ae = Autoencoder([64, 32, 8], optimizer=fd.Adam(lr=1e-3), seed=0)
    >>> [layer.out_features for layer in ae.model.layers]
    [32, 8, 32, 64]
    """

    def __init__(
        self,
        layer_sizes=(784, 256, 32),
        activation="relu",
        output_activation="sigmoid",
        loss="mse",
        optimizer=None,
        l1=0.0,
        l2=0.0,
        dtype="float32",
        seed=None,
        bottleneck_activation="linear",
        device="cpu",
    ):
        if not isinstance(layer_sizes, (list, tuple, np.ndarray)) or len(layer_sizes) < 2:
            raise ValueError(
                "layer_sizes must be a list of at least two ints (input width, ..., "
                f"bottleneck width), got {layer_sizes!r}"
            )
        sizes = tuple(positive_int(size, f"layer_sizes[{i}]") for i, size in enumerate(layer_sizes))
        for name, value in (
            ("activation", activation),
            ("output_activation", output_activation),
            ("bottleneck_activation", bottleneck_activation),
        ):
            choice(value, name, ACTIVATIONS)
            if value == "softmax":
                raise ValueError(f"{name} 'softmax' is not supported by an autoencoder")
        n_enc = len(sizes) - 1
        acts = [activation] * (n_enc - 1) + [bottleneck_activation]
        acts += [activation] * (n_enc - 1) + [output_activation]
        widths = sizes + sizes[-2::-1]
        layers = [Dense(a, b, act) for a, b, act in zip(widths, widths[1:], acts)]
        self.layer_sizes = sizes
        self.activation = activation
        self.output_activation = output_activation
        self.bottleneck_activation = bottleneck_activation
        self.n_encoder_layers = n_enc
        self.model = Sequential(layers, dtype=dtype, seed=seed, device=device)
        self.model.compile(
            loss=loss, optimizer=Adam() if optimizer is None else optimizer, l1=l1, l2=l2
        )

    # ------------------------------------------------------------------ properties
    @property
    def loss(self):
        """Reconstruction loss name."""
        return self.model.loss

    @property
    def optimizer(self):
        """The optimizer object."""
        return self.model.optimizer

    @property
    def dtype(self):
        """NumPy dtype of the parameters and outputs."""
        return self.model.dtype

    @property
    def seed(self):
        """Seed of the initial weights and shuffling."""
        return self.model.seed

    @property
    def n_features(self):
        """Input (and reconstruction) width."""
        return self.layer_sizes[0]

    @property
    def n_components(self):
        """Bottleneck width."""
        return self.layer_sizes[-1]

    def _submodel(self, start, stop):
        layers = [Dense(**layer.get_config()) for layer in self.model.layers[start:stop]]
        model = Sequential(layers, dtype=self.dtype.name, seed=self.seed, device=self.model.device)
        model.set_weights(self.model.get_weights()[start:stop])
        return model

    @property
    def encoder(self):
        """A new ``Sequential`` holding a copy of the current encoder weights (input to code)."""
        return self._submodel(0, self.n_encoder_layers)

    @property
    def decoder(self):
        """A new ``Sequential`` holding a copy of the current decoder weights (code to output)."""
        return self._submodel(self.n_encoder_layers, len(self.model.layers))

    def __repr__(self):
        return (
            f"Autoencoder(layer_sizes={list(self.layer_sizes)}, activation={self.activation!r}, "
            f"output_activation={self.output_activation!r}, loss={self.loss!r}, "
            f"dtype={self.dtype.name!r}, seed={self.seed!r})"
        )

    # ------------------------------------------------------------------ training
    def _check_X(self, X, name="X"):
        X = as_matrix(X, name, self.n_features, self.dtype)
        if self.loss == "binary_cross_entropy" and ((X < 0).any() or (X > 1).any()):
            raise ValueError(
                f"{name} must lie in [0, 1] for loss 'binary_cross_entropy' (the autoencoder "
                "reconstructs it through a sigmoid); scale it or use loss='mse'"
            )
        return X

    def fit(
        self, X, epochs=1, batch_size=32, validation_data=None, verbose=1, shuffle=True,
        callbacks=None,
    ):  # fmt: skip
        """Train the network to reconstruct ``X`` (``Sequential.fit(X, X, ...)``).

        Parameters
        ----------
        X : array-like of shape (n_samples, layer_sizes[0])
        epochs : int, default 1
        batch_size : int, default 32
        validation_data : array-like of shape (n_val, layer_sizes[0]), optional
            Held-out data, reconstructed after every epoch into ``val_loss``. A tuple
            ``(X_val,)`` or ``(X_val, X_val)`` is accepted too (the target is always the
            input, so a second element is not read).
        verbose : {0, 1, 2}, default 1
        shuffle : bool, default True
        callbacks : list of Callback, optional
            As for ``Sequential.fit`` (early stopping, checkpoints, schedules).

        Returns
        -------
        History
            Per-epoch ``loss`` (and ``val_loss``).
        """
        X = self._check_X(X)
        validation = None
        if validation_data is not None:
            if isinstance(validation_data, tuple) and len(validation_data) in (1, 2):
                validation_data = validation_data[0]
            X_val = self._check_X(validation_data, "validation_data")
            validation = (X_val, X_val)
        return self.model.fit(
            X, X, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
            validation_data=validation, verbose=verbose, callbacks=callbacks,
        )  # fmt: skip

    # ------------------------------------------------------------------ inference
    def transform(self, X, batch_size=4096):
        """Encode ``X`` to the bottleneck.

        Parameters
        ----------
        X : array-like of shape (n_samples, layer_sizes[0])
        batch_size : int, default 4096

        Returns
        -------
        ndarray of shape (n_samples, layer_sizes[-1]), the model dtype
        """
        return self.encoder.predict(X, batch_size=batch_size)

    def inverse_transform(self, Z, batch_size=4096):
        """Decode bottleneck codes ``Z`` to reconstructions.

        Parameters
        ----------
        Z : array-like of shape (n_samples, layer_sizes[-1])
        batch_size : int, default 4096

        Returns
        -------
        ndarray of shape (n_samples, layer_sizes[0]), the model dtype
        """
        return self.decoder.predict(as_matrix(Z, "Z", self.n_components, self.dtype), batch_size)

    def reconstruct(self, X, batch_size=4096):
        """Encode then decode ``X`` (one pass through ``model``).

        Returns
        -------
        ndarray of shape (n_samples, layer_sizes[0]), the model dtype
        """
        return self.model.predict(X, batch_size=batch_size)

    def score(self, X, batch_size=4096):
        """Mean squared reconstruction error over all entries of ``X`` (lower is better).

        Whatever the training loss, this is ``mean((reconstruct(X) - X) ** 2)``, computed in
        float64: comparable with :class:`PCA` reconstructions.

        Returns
        -------
        float
        """
        X = as_matrix(X, "X", self.n_features, self.dtype)
        error = self.model.predict(X, batch_size=batch_size).astype(np.float64) - X
        return float(np.mean(error * error))

    # ------------------------------------------------------------------ save / load
    def save(self, path):
        """Save the architecture, weights and optimizer state (see :mod:`fastdnn.io`)."""
        model_meta, arrays = self.model._archive()
        config = {
            "layer_sizes": list(self.layer_sizes),
            "activation": self.activation,
            "output_activation": self.output_activation,
            "bottleneck_activation": self.bottleneck_activation,
        }
        _io.save_archive(path, "Autoencoder", {"config": config, "model": model_meta}, arrays)

    @classmethod
    def _from_archive(cls, meta, arrays, device=None):
        model = Sequential._from_archive(meta["model"], arrays, device)
        autoencoder = cls(
            **meta["config"], loss=model.loss, optimizer=model.optimizer, l1=model.l1,
            l2=model.l2, dtype=model.dtype.name, seed=model.seed, device=model.device,
        )  # fmt: skip
        autoencoder.model = model
        return autoencoder


_io.register("PCA", PCA._from_archive, devices=("cpu",))
_io.register("Autoencoder", Autoencoder._from_archive)

__all__ = ["PCA", "Autoencoder"]
