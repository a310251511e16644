"""scikit-learn estimators backed by ``Sequential``: ``MLPClassifier`` and ``MLPRegressor``.

They follow the estimator contract (keyword-only ``__init__`` that only stores parameters,
fitted attributes ending in ``_``, ``get_params``/``set_params``, ``clone``, pickling) so they
work in ``Pipeline``, ``GridSearchCV`` and ``cross_val_score``, and add what scikit-learn's own
MLP lacks: ``l1``, ``class_weight``, float32 training, AdamW/RMSprop and a ``device``.
"""

import warnings

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import io as _io
from .callbacks import EarlyStopping
from .decomposition import Autoencoder
from .layers import Dense
from .network import Sequential
from .optimizers import SGD, Adam, AdamW, RMSprop

_SOLVERS = ("sgd", "adam", "adamw", "rmsprop")


class _BaseMLP(BaseEstimator):
    """Shared fitting logic; subclasses set the output layer, loss and targets."""

    _loss = None
    _output_activation = None

    def __init__(
        self,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        solver="adam",
        alpha=0.0001,
        l1=0.0,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.01,
        dtype="float32",
        device="cpu",
        verbose=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.l1 = l1
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ set-up
    def _optimizer(self):
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {self.solver!r}")
        lr = self.learning_rate_init
        if self.solver == "sgd":
            return SGD(
                lr, momentum=self.momentum, nesterov=self.nesterovs_momentum and self.momentum > 0
            )
        if self.solver == "rmsprop":
            return RMSprop(lr, eps=self.epsilon, momentum=0.0)
        if self.solver == "adamw":
            return AdamW(lr, self.beta_1, self.beta_2, self.epsilon, self.weight_decay)
        return Adam(lr, self.beta_1, self.beta_2, self.epsilon)

    def _batch_size(self, n_rows):
        if self.batch_size == "auto":
            return min(200, n_rows)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)):
            raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {self.batch_size!r}")
        return min(int(self.batch_size), n_rows)

    def _build(self, n_features, n_outputs, n_rows):
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if np.isscalar(hidden) else list(hidden)
        if any(not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(
                f"hidden_layer_sizes must hold integers >= 1, got {self.hidden_layer_sizes!r}"
            )
        sizes = [n_features, *(int(h) for h in hidden), n_outputs]
        layers = [
            Dense(sizes[i], sizes[i + 1], activation=self.activation) for i in range(len(sizes) - 2)
        ]
        layers.append(Dense(sizes[-2], sizes[-1], activation=self._output_activation))
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        model = Sequential(layers, dtype=self.dtype, seed=seed, device=self.device)
        # scikit-learn's alpha penalises (alpha / 2) * ||W||^2 / batch_size per batch.
        l2 = self.alpha / self._batch_size(n_rows)
        model.compile(loss=self._loss, optimizer=self._optimizer(), l1=self.l1, l2=l2)
        return model

    # ------------------------------------------------------------------ fitting
    def _validate_X(self, X, reset):
        return validate_data(
            self, X, reset=reset, dtype=[np.float32, np.float64], order="C",
            ensure_all_finite=True,
        )  # fmt: skip

    def _fit(self, X, y, sample_weight, incremental, epochs):
        X, y = validate_data(
            self, X, y, reset=not incremental, dtype=[np.float32, np.float64],
            multi_output=self._multi_output, y_numeric=not self._is_classifier,
        )  # fmt: skip
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        targets, sample_weight = self._encode_targets(y, sample_weight, incremental)
        return self._train(X, targets, sample_weight, incremental, epochs)

    def _train(self, X, targets, sample_weight, incremental, epochs):
        n_outputs = self._n_outputs(targets)
        if not incremental:
            self.model_ = self._build(X.shape[1], n_outputs, X.shape[0])
            self.loss_curve_ = []
            self.n_iter_ = 0
        callbacks = []
        validation = None
        if self.early_stopping and not incremental:
            stratify = targets if self._is_classifier else None
            X, X_val, targets, y_val, sample_weight, w_val = train_test_split(
                X, targets, sample_weight, test_size=self.validation_fraction,
                random_state=self.model_.seed, stratify=stratify,
            )  # fmt: skip
            validation = (X_val, y_val, w_val)
            monitor = "val_accuracy" if self._is_classifier else "val_loss"
        else:
            monitor = "loss"
        if epochs > 1:
            callbacks.append(
                EarlyStopping(
                    monitor=monitor, patience=self.n_iter_no_change, min_delta=self.tol,
                    restore_best_weights=validation is not None,
                )
            )  # fmt: skip
        history = self.model_.fit(
            X, targets, epochs=epochs, batch_size=self._batch_size(X.shape[0]),
            shuffle=self.shuffle, validation_data=validation, verbose=1 if self.verbose else 0,
            callbacks=callbacks, sample_weight=sample_weight,
        )  # fmt: skip
        self.loss_curve_.extend(history.history["loss"])
        self.n_iter_ += len(history.epoch)
        if validation is not None:
            self.validation_scores_ = history.history[monitor]
        self.best_loss_ = min(self.loss_curve_)
        if epochs > 1 and len(history.epoch) == epochs:
            warnings.warn(
                f"{type(self).__name__} reached max_iter={self.max_iter} before converging",
                ConvergenceWarning,
                stacklevel=4,  # the caller of fit (fit -> _fit -> _train)
            )
        return self

    def fit(self, X, y, sample_weight=None):
        """Fit the network from scratch for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        self._check_max_iter()
        return self._fit(X, y, sample_weight, incremental=False, epochs=int(self.max_iter))

    def _check_max_iter(self):
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)):
            raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}")

    def _predict_raw(self, X):
        # Outputs in float64 whatever the training dtype, as scikit-learn's estimators return.
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        return self.model_.predict(X).astype(np.float64)

    # ------------------------------------------------------------------ save / load
    def save(self, path):
        """Save parameters, fitted attributes and the network (see ``fastdnn.io``)."""
        check_is_fitted(self, "model_")
        meta, arrays = self.model_._archive()
        fitted = {
            "n_features_in_": int(self.n_features_in_),
            "n_iter_": int(self.n_iter_),
            "loss_curve_": [float(v) for v in self.loss_curve_],
        }
        fitted.update(self._fitted_extra())
        estimator = {"params": _io.encode_value(self.get_params(deep=False)), "fitted": fitted}
        _io.save_archive(path, type(self).__name__, {"model": meta, "estimator": estimator}, arrays)

    @classmethod
    def _from_archive(cls, meta, arrays, device=None):
        estimator = cls(**_io.decode_value(meta["estimator"]["params"]))
        if device is not None:
            estimator.device = device
        estimator.model_ = Sequential._from_archive(meta["model"], arrays, estimator.device)
        for name, value in meta["estimator"]["fitted"].items():
            setattr(estimator, name, np.asarray(value) if name == "classes_" else value)
        estimator.best_loss_ = min(estimator.loss_curve_)
        return estimator

    def _fitted_extra(self):
        return {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: softmax output, cross-entropy loss.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
    activation : str, default "relu"
        Hidden activation: ``relu``, ``tanh``, ``sigmoid``, ``leaky_relu``, ``elu``, ``gelu``,
        ``softplus`` or ``linear``.
    solver : {"sgd", "adam", "adamw", "rmsprop"}, default "adam"
    alpha : float, default 1e-4
        L2 penalty as in scikit-learn (``alpha / batch_size`` per batch on the weights).
    l1 : float, default 0.0
        L1 penalty ``l1 * sum|W|``.
    batch_size : int or "auto", default "auto"
        ``min(200, n_samples)`` when "auto".
    learning_rate_init : float, default 1e-3
    max_iter : int, default 200
        Maximum number of epochs.
    shuffle : bool, default True
    random_state : int, RandomState or None, default None
    tol : float, default 1e-4
        Minimum improvement of the monitored loss/score.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` (stratified) and stop on validation accuracy,
        keeping the best weights.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
        Epochs without an improvement of ``tol`` before stopping.
    momentum, nesterovs_momentum : float, bool
        For ``solver="sgd"``.
    beta_1, beta_2, epsilon : float
        For Adam/AdamW (``epsilon`` also for RMSprop).
    weight_decay : float, default 0.01
        For ``solver="adamw"``.
    class_weight : dict, "balanced" or None, default None
        Multiplies each sample's weight by its class's weight.
    dtype : {"float32", "float64"}, default "float32"
    device : {"cpu", "cuda"}, default "cpu"
    verbose : bool, default False

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    loss_curve_ : list of float
    n_iter_ : int
    best_loss_ : float
    model_ : fastdnn.Sequential
    """

    _loss = "cross_entropy"
    _output_activation = "softmax"
    _is_classifier = True
    _multi_output = False

    def __init__(
        self,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        solver="adam",
        alpha=0.0001,
        l1=0.0,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.01,
        dtype="float32",
        device="cpu",
        verbose=False,
        class_weight=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.l1 = l1
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        self.dtype = dtype
        self.device = device
        self.verbose = verbose
        self.class_weight = class_weight

    def _encode_targets(self, y, sample_weight, incremental):
        check_classification_targets(y)
        if not incremental:
            self.classes_ = np.unique(y)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y holds labels not seen in the first fit: {unknown[:5].tolist()}")
        if self.classes_.size < 2:
            raise ValueError(
                f"MLPClassifier needs at least 2 classes in y, got 1 class: {self.classes_[0]!r}"
            )
        if self.class_weight is not None:
            sample_weight = sample_weight * compute_sample_weight(self.class_weight, y)
        return np.searchsorted(self.classes_, y), sample_weight

    def _n_outputs(self, targets):
        return self.classes_.size

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``; the first call needs ``classes`` (all labels).

        Returns
        -------
        self
        """
        first = not hasattr(self, "model_")
        if first:
            if classes is None:
                raise ValueError("classes must be given on the first call to partial_fit")
            classes = np.unique(np.asarray(classes))
            self.classes_ = classes
            X_checked, y_checked = validate_data(self, X, y, dtype=[np.float32, np.float64])
            sample_weight = _check_sample_weight(sample_weight, X_checked, dtype=np.float64)
            check_classification_targets(y_checked)
            targets, sample_weight = self._encode_targets(y_checked, sample_weight, True)
            self.model_ = self._build(X_checked.shape[1], classes.size, X_checked.shape[0])
            self.loss_curve_, self.n_iter_ = [], 0
        return self._fit(X, y, sample_weight, incremental=True, epochs=1)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``."""
        return self._predict_raw(X)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Most probable class of each sample."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def _fitted_extra(self):
        classes = self.classes_.tolist()
        return {"classes_": classes}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: linear output, mean squared error.

    Parameters are those of :class:`MLPClassifier` without ``class_weight``.

    Attributes
    ----------
    n_features_in_ : int
    n_outputs_ : int
    loss_curve_ : list of float
        Per-epoch MSE (mean over all outputs) plus the penalty.
    n_iter_ : int
    best_loss_ : float
    model_ : fastdnn.Sequential
    """

    _loss = "mse"
    _output_activation = "linear"
    _is_classifier = False
    _multi_output = True

    def _encode_targets(self, y, sample_weight, incremental):
        y = np.asarray(y, dtype=np.float64)
        if not incremental:
            self._y_1d = y.ndim == 1
        return (y.reshape(-1, 1) if y.ndim == 1 else y), sample_weight

    def _n_outputs(self, targets):
        self.n_outputs_ = targets.shape[1]
        return self.n_outputs_

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the current weights.

        Returns
        -------
        self
        """
        first = not hasattr(self, "model_")
        if first:
            X_checked, y_checked = validate_data(
                self, X, y, dtype=[np.float32, np.float64], multi_output=True, y_numeric=True
            )
            targets, _ = self._encode_targets(y_checked, None, False)
            self.model_ = self._build(X_checked.shape[1], self._n_outputs(targets), len(X_checked))
            self.loss_curve_, self.n_iter_ = [], 0
        return self._fit(X, y, sample_weight, incremental=True, epochs=1)

    def predict(self, X):
        """Predicted targets, shaped like the ``y`` given to ``fit``."""
        out = self._predict_raw(X)
        return out.ravel() if self._y_1d else out

    def _fitted_extra(self):
        return {"n_outputs_": int(self.n_outputs_), "_y_1d": bool(self._y_1d)}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _BaseMLP):
    """A dense autoencoder as a scikit-learn transformer: ``transform`` encodes to the bottleneck.

    The encoder is ``n_features -> hidden_layer_sizes[0] -> ... -> hidden_layer_sizes[-1]`` (the
    last entry is the bottleneck width) and the decoder mirrors it; both train together as one
    :class:`fastdnn.Autoencoder` minimising the mean squared reconstruction error.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (64, 8)
        Encoder widths after the input; the last is the number of output features.
    output_activation : str, default "linear"
        Activation of the reconstruction (``"sigmoid"`` for data in [0, 1]).
    bottleneck_activation : str, default "linear"
        Activation of the code layer.
    Other parameters
        As for :class:`MLPRegressor` (``activation``, ``solver``, ``alpha`` (default 0),
        ``l1``, ``batch_size``, ``learning_rate_init``, ``max_iter``, ``early_stopping``,
        ``random_state``, ``dtype``, ...).

    Attributes
    ----------
    autoencoder_ : fastdnn.Autoencoder
    n_features_in_ : int
    n_components_ : int
        Width of the code (``hidden_layer_sizes[-1]``).
    loss_curve_ : list of float
    n_iter_ : int
    """

    _loss = "mse"
    _is_classifier = False
    _multi_output = True

    def __init__(
        self,
        *,
        hidden_layer_sizes=(64, 8),
        activation="relu",
        solver="adam",
        alpha=0.0,
        l1=0.0,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.01,
        dtype="float32",
        device="cpu",
        verbose=False,
        output_activation="linear",
        bottleneck_activation="linear",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.l1 = l1
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        self.dtype = dtype
        self.device = device
        self.verbose = verbose
        self.output_activation = output_activation
        self.bottleneck_activation = bottleneck_activation

    def _build(self, n_features, n_outputs, n_rows):
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if np.isscalar(hidden) else list(hidden)
        if not hidden or any(not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(
                f"hidden_layer_sizes must hold integers >= 1, got {self.hidden_layer_sizes!r}"
            )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.autoencoder_ = Autoencoder(
            [n_features, *(int(h) for h in hidden)], activation=self.activation,
            output_activation=self.output_activation,
            bottleneck_activation=self.bottleneck_activation, optimizer=self._optimizer(),
            l1=self.l1, l2=self.alpha / self._batch_size(n_rows), dtype=self.dtype, seed=seed,
            device=self.device,
        )  # fmt: skip
        self.n_components_ = int(hidden[-1])
        return self.autoencoder_.model

    def _n_outputs(self, targets):
        return targets.shape[1]

    def _fit_X(self, X, sample_weight, incremental, epochs):
        X = validate_data(self, X, reset=not incremental, dtype=[np.float32, np.float64])
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return self._train(X, X, sample_weight, incremental, epochs)

    def fit(self, X, y=None, sample_weight=None):
        """Train the autoencoder on ``X`` for up to ``max_iter`` epochs (``y`` is ignored).

        Returns
        -------
        self
        """
        self._check_max_iter()
        return self._fit_X(X, sample_weight, incremental=False, epochs=int(self.max_iter))

    def partial_fit(self, X, y=None, sample_weight=None):
        """One more epoch over ``X`` (the first call builds the network).

        Returns
        -------
        self
        """
        return self._fit_X(X, sample_weight, incremental=hasattr(self, "model_"), epochs=1)

    def transform(self, X):
        """Encode ``X``: an (n_samples, n_components_) float64 array."""
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        return self.autoencoder_.transform(X).astype(np.float64)

    def inverse_transform(self, X):
        """Decode codes back to the input space."""
        check_is_fitted(self, "model_")
        return self.autoencoder_.inverse_transform(X).astype(np.float64)

    def score(self, X, y=None):
        """Negative mean squared reconstruction error (higher is better, as scikit-learn
        expects of a score)."""
        check_is_fitted(self, "model_")
        return -self.autoencoder_.score(self._validate_X(X, reset=False))

    @property
    def _n_features_out(self):
        return self.n_components_

    def _fitted_extra(self):
        return {"n_components_": self.n_components_}

    @classmethod
    def _from_archive(cls, meta, arrays, device=None):
        estimator = super()._from_archive(meta, arrays, device)
        ae = estimator.autoencoder_ = Autoencoder.__new__(Autoencoder)
        sizes = [estimator.n_features_in_, *np.atleast_1d(estimator.hidden_layer_sizes)]
        ae.layer_sizes = tuple(int(v) for v in sizes)
        ae.activation = estimator.activation
        ae.output_activation = estimator.output_activation
        ae.bottleneck_activation = estimator.bottleneck_activation
        ae.n_encoder_layers = len(sizes) - 1
        ae.model = estimator.model_
        return estimator


_io.register("MLPClassifier", MLPClassifier._from_archive)
_io.register("MLPRegressor", MLPRegressor._from_archive)
_io.register("AutoencoderTransformer", AutoencoderTransformer._from_archive)
