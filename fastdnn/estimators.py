"""scikit-learn estimators backed by ``Sequential``: ``MLPClassifier``, ``MLPRegressor`` and
``AutoencoderTransformer``.

``MLPClassifier`` and ``MLPRegressor`` are drop-in replacements for scikit-learn 1.9's classes of
the same names: the same parameters with the same defaults and meaning, the same fitted
attributes (``coefs_[i]`` is ``(n_in, n_out)``, a view of the network's ``W.T``), the same
initialisation (Glorot uniform drawn from ``random_state`` in scikit-learn's order), losses
(log-loss, binary log-loss summed over labels, half squared error, half Poisson deviance),
L2 penalty (``alpha / 2 * ||W||^2`` divided by the batch's sample count), learning-rate
schedules, stopping rules, early-stopping split, warnings, verbose lines and error messages.
The work runs in the compiled epoch of ``Sequential`` (one compiled call per epoch) and, for
``solver="lbfgs"``, in SciPy's L-BFGS-B over the flat parameter buffer with the loss and its
gradient from the compiled kernels. They add what scikit-learn's MLP lacks: ``l1``,
``class_weight``, the ``adamw`` and ``rmsprop`` solvers, float32 training, and a ``device``.

dtype: as in scikit-learn, float32 data trains in float32 and anything else in float64, and
``coefs_`` and predictions carry that dtype; ``dtype="float32"`` trains float64 data in float32
(about twice as fast, with float32's 7 significant digits), ``dtype="float64"`` the reverse.
"""

import numbers
import warnings

import numpy as np
import scipy.optimize
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import io as _io
from .callbacks import Callback
from .decomposition import Autoencoder
from .errors import TrainingDivergedError
from .layers import ACTIVATIONS, BatchNorm, Dense, Dropout
from .network import Sequential
from .optimizers import SGD, Adam, AdamW, RMSprop

_STOCHASTIC_SOLVERS = ("sgd", "adam", "adamw", "rmsprop")
_SOLVERS = ("lbfgs", *_STOCHASTIC_SOLVERS)
#: scikit-learn's activation names and the network's; fastdnn's own names are accepted too.
_SKLEARN_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_HIDDEN_ACTIVATIONS = tuple(
    sorted(set(_SKLEARN_ACTIVATIONS) | (set(ACTIVATIONS) - {"softmax", "exp"}))
)
_OUTPUT_ACTIVATIONS = {"softmax": "softmax", "logistic": "sigmoid", "identity": "linear",
                       "exp": "exp"}  # fmt: skip
_NON_FINITE_MESSAGE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and "
    "need to be preprocessed."
)


def _network_activation(name):
    """The network's name of a hidden activation given in scikit-learn's or fastdnn's terms."""
    return _SKLEARN_ACTIVATIONS.get(name, name)


# ------------------------------------------------------------------------ parameter checks
def _param_error(estimator, name, expected, value):
    return ValueError(
        f"The {name!r} parameter of {type(estimator).__name__} must be {expected}. "
        f"Got {value!r} instead."
    )


def _check_number(estimator, name, low=None, high=None, closed="left", integer=False,
                  allow_inf=False):  # fmt: skip
    value = getattr(estimator, name)
    if allow_inf and isinstance(value, numbers.Real) and value == np.inf:
        return
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and not np.isfinite(value):
        ok = False
    if ok and low is not None:
        ok = value >= low if closed in ("left", "both") else value > low
    if ok and high is not None:
        ok = value <= high if closed in ("right", "both") else value < high
    if not ok:
        left = "[" if closed in ("left", "both") else "("
        right = "]" if closed in ("right", "both") else ")"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        what = "an int" if integer else "a float"
        extra = " or inf" if allow_inf else ""
        raise _param_error(estimator, name, f"{what} in the range {span}{extra}", value)


def _check_options(estimator, name, options):
    value = getattr(estimator, name)
    if not isinstance(value, str) or value not in options:
        raise _param_error(estimator, name, f"a str among {sorted(options)}", value)


def _check_bool(estimator, name):
    value = getattr(estimator, name)
    if not isinstance(value, (bool, np.bool_)):
        raise _param_error(estimator, name, "an instance of 'bool'", value)


def _hidden_sizes(estimator):
    hidden = estimator.hidden_layer_sizes
    hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
    for size in hidden:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
    return [int(size) for size in hidden]


def _store_arguments(estimator, arguments):
    """Keep every ``__init__`` argument as the attribute of its name, unchanged (scikit-learn's
    estimator contract: ``__init__`` does nothing else)."""
    for name, value in arguments.items():
        if name != "self":
            setattr(estimator, name, value)


# ------------------------------------------------------------------------ the epoch loop
class _SklearnEpochs(Callback):
    """scikit-learn's per-iteration bookkeeping, run by ``Sequential.fit`` after each epoch.

    It records ``loss_``, ``loss_curve_``, ``t_`` and ``n_iter_``, prints the verbose lines,
    scores the validation split, keeps the best parameters, applies the SGD learning-rate
    schedule and stops the fit by scikit-learn's rules.
    """

    def __init__(self, estimator, n_train, validation, incremental):
        self.estimator = estimator
        self.n_train = n_train
        self.validation = validation
        self.incremental = incremental

    def on_epoch_end(self, epoch, logs=None):
        est = self.estimator
        est._end_iteration(float(logs["loss"]), self.n_train, self.validation)
        if est._stop_requested or self.incremental:
            self.model.stop_training = True


class _SklearnShuffle:
    """scikit-learn's epoch orders: each epoch shuffles the previous epoch's order as
    ``sklearn.utils.shuffle(order, random_state=random_state)`` does (``random_state.shuffle``
    of an ``arange``, which then indexes the order), starting from ``arange(n)`` at every
    ``fit``/``partial_fit`` call. Done here directly: ``sklearn.utils.shuffle`` validates its
    arguments at each call, a quarter of a digits fit."""

    def __init__(self, random_state):
        self.random_state = random_state
        self.order = None

    def __call__(self, n_rows):
        if self.order is None or self.order.size != n_rows:
            self.order = np.arange(n_rows)
        indices = np.arange(n_rows)
        self.random_state.shuffle(indices)
        self.order = self.order[indices]
        return self.order


class _BaseMLP(BaseEstimator):
    """What every fastdnn estimator shares: parameters, the optimizer, the stochastic loop."""

    _is_classifier = False

    # ------------------------------------------------------------------ parameters
    def _check_params(self):
        _hidden_sizes(self)
        _check_options(self, "activation", _HIDDEN_ACTIVATIONS)
        _check_options(self, "solver", self._solvers)
        _check_number(self, "alpha", 0)
        _check_number(self, "l1", 0)
        if self.batch_size != "auto":
            _check_number(self, "batch_size", 1, integer=True)
        _check_number(self, "learning_rate_init", 0, closed="neither")
        _check_number(self, "max_iter", 1, integer=True)
        _check_bool(self, "shuffle")
        _check_number(self, "tol", 0)
        _check_number(self, "momentum", 0, 1, closed="both")
        _check_bool(self, "nesterovs_momentum")
        _check_bool(self, "early_stopping")
        _check_number(self, "validation_fraction", 0, 1)
        _check_number(self, "beta_1", 0, 1)
        _check_number(self, "beta_2", 0, 1)
        _check_number(self, "epsilon", 0, closed="neither")
        _check_number(self, "n_iter_no_change", 1, integer=True, allow_inf=True)
        _check_number(self, "weight_decay", 0)
        if self.dtype not in (None, "float32", "float64", np.float32, np.float64):
            raise _param_error(self, "dtype", "None, 'float32' or 'float64'", self.dtype)
        _check_options(self, "device", ("cpu", "cuda"))

    _solvers = _STOCHASTIC_SOLVERS
    learning_rate = "constant"  # the schedules exist for MLPClassifier/MLPRegressor only
    power_t = 0.5

    def _training_dtype(self, X):
        """float32 for float32 data, float64 otherwise, unless ``dtype`` says which."""
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32 if X.dtype == np.float32 else np.float64)

    def _new_optimizer(self):
        lr = float(self.learning_rate_init)
        if self.solver == "sgd":
            momentum = float(self.momentum)
            # fastdnn's SGD takes momentum in [0, 1): 1 is a never-decaying velocity.
            momentum = min(momentum, float(np.nextafter(1.0, 0.0)))
            return SGD(
                lr, momentum=momentum, nesterov=bool(self.nesterovs_momentum) and momentum > 0
            )
        if self.solver == "rmsprop":
            return RMSprop(lr, eps=self.epsilon)
        if self.solver == "adamw":
            return AdamW(lr, self.beta_1, self.beta_2, self.epsilon, self.weight_decay)
        return Adam(lr, self.beta_1, self.beta_2, self.epsilon)

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be "
                "clipped",
                stacklevel=4,
            )
        return int(np.clip(self.batch_size, 1, n_samples))

    # ------------------------------------------------------------------ stochastic loop
    def _reset_progress(self):
        """The attributes of scikit-learn's ``_initialize`` for the stochastic solvers."""
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._best_params = None
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _split_validation(self, X, Y, sample_weight, stratify, random_state):
        """scikit-learn's early-stopping split: the same rows for the same ``random_state``."""
        index = np.arange(X.shape[0])
        train, val = train_test_split(
            index, random_state=random_state, test_size=self.validation_fraction,
            stratify=stratify,
        )  # fmt: skip
        if val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of "
                "your dataset."
            )
        weight = (
            (None, None) if sample_weight is None else (sample_weight[train], sample_weight[val])
        )
        return (X[train], Y[train], weight[0]), (X[val], Y[val], weight[1], val)

    def _end_iteration(self, loss, n_train, validation):
        """One of scikit-learn's iterations ends with this training loss."""
        self.n_iter_ += 1
        self.loss_ = loss
        self.t_ += n_train
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
        self._update_no_improvement_count(validation)
        optimizer = self.model_.optimizer
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            optimizer.lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
        self._stop_requested = False
        if self._no_improvement_count > self.n_iter_no_change:
            if validation is not None:
                msg = (
                    f"Validation score did not improve more than tol={self.tol:f} for "
                    f"{int(self.n_iter_no_change)} consecutive epochs."
                )
            else:
                msg = (
                    f"Training loss did not improve more than tol={self.tol:f} for "
                    f"{int(self.n_iter_no_change)} consecutive epochs."
                )
            if self.solver == "sgd" and self.learning_rate == "adaptive":
                if optimizer.lr <= 1e-6:
                    if self.verbose:
                        print(msg + " Learning rate too small. Stopping.")
                    self._stop_requested = True
                else:
                    optimizer.lr = optimizer.lr / 5.0
                    if self.verbose:
                        print(f"{msg} Setting learning rate to {optimizer.lr:f}")
                    self._no_improvement_count = 0
            else:
                if self.verbose:
                    print(msg + " Stopping.")
                self._stop_requested = True

    def _update_no_improvement_count(self, validation):
        if validation is not None:
            score = self._validation_score(validation)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = (self.model_._params.copy(), self.model_._running.copy())
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_stochastic(self, train, validation, incremental):
        """Up to ``max_iter`` epochs (one when ``incremental``) of the stochastic solver."""
        X, Y, sample_weight = train
        model = self.model_
        self.n_iter_ = 0
        batch_size = self._batch_size(X.shape[0])
        epochs = 1 if incremental else int(self.max_iter)
        loop = _SklearnEpochs(self, X.shape[0], validation, incremental)
        self._stop_requested = False
        try:
            order = _SklearnShuffle(self._random_state) if self.shuffle else False
            model.fit(
                X, Y, epochs=epochs, batch_size=batch_size, shuffle=order, verbose=0,
                callbacks=[loop], sample_weight=sample_weight,
            )  # fmt: skip
        except TrainingDivergedError as error:
            # The network is back at the end of the last good epoch; this one's loss is NaN.
            self.n_iter_ += 1
            self.loss_ = np.nan
            self.loss_curve_.append(np.nan)
            if validation is None or getattr(self, "_best_params", None) is None:
                raise ValueError(_NON_FINITE_MESSAGE) from error
            self.validation_scores_.append(np.nan)
        if validation is not None and getattr(self, "_best_params", None) is not None:
            model._params[:], model._running[:] = self._best_params
        if not incremental and self.n_iter_ == self.max_iter and not self._stop_requested:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _fit_lbfgs(self, X, Y, sample_weight):
        """L-BFGS-B over the flat parameter buffer, as scikit-learn's ``_fit_lbfgs``."""
        model = self.model_
        X, Y, weight = model._data(X, Y, sample_weight)
        gradient = np.empty_like(model._params)

        def loss_and_gradient(theta):
            model._params[:] = theta
            loss = model._loss_and_flat_gradient(X, Y, weight, gradient)
            return loss, gradient.astype(np.float64)

        iterations = []

        def report(intermediate_result):
            iterations.append(intermediate_result.fun)
            if self.verbose:
                print(f"Iteration {len(iterations)}, loss = {intermediate_result.fun:.8f}")

        result = scipy.optimize.minimize(
            loss_and_gradient, model._params.astype(np.float64), method="L-BFGS-B", jac=True,
            callback=report,
            options={"maxfun": int(self.max_fun), "maxiter": int(self.max_iter), "gtol": self.tol},
        )  # fmt: skip
        model._params[:] = result.x
        if result.status != 0:
            message = result.message
            message = message.decode("latin1") if isinstance(message, bytes) else message
            warnings.warn(
                f"lbfgs failed to converge after {result.nit} iteration(s) (status="
                f"{result.status}): {message}. Increase the number of iterations (max_iter="
                f"{self.max_iter}) or function evaluations (max_fun={self.max_fun}), or scale "
                "the data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.n_iter_ = min(int(result.nit), int(self.max_iter))
        self.loss_ = float(result.fun)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.sparse = True
        return tags


class _SklearnMLP(_BaseMLP):
    """scikit-learn's ``BaseMultilayerPerceptron``: ``coefs_``/``intercepts_`` over a
    ``Sequential``, the stochastic solvers and L-BFGS."""

    _solvers = _SOLVERS

    def _check_params(self):
        super()._check_params()
        _check_options(self, "learning_rate", ("constant", "invscaling", "adaptive"))
        _check_number(self, "power_t", 0)
        _check_bool(self, "warm_start")
        _check_number(self, "max_fun", 1, integer=True)
        _check_number(self, "dropout", 0, 1)
        _check_bool(self, "batch_norm")
        if self.solver == "lbfgs" and (self.dropout > 0 or self.batch_norm):
            raise ValueError(
                "solver='lbfgs' needs a deterministic full-batch loss: it does not support "
                f"dropout={self.dropout!r} or batch_norm={self.batch_norm!r} (use a stochastic "
                "solver, or dropout=0.0 and batch_norm=False)"
            )

    # ------------------------------------------------------------------ network and weights
    def _initialize(self, n_outputs, layer_units, dtype):
        """Fresh attributes and scikit-learn's initial weights (Glorot uniform from
        ``random_state``, biases too, drawn in the same order)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._out_activation()
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units, layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            self.coefs_.append(coef.astype(dtype, copy=False))
            self.intercepts_.append(intercept.astype(dtype, copy=False))
        if self.solver in _STOCHASTIC_SOLVERS:
            self._reset_progress()
        self.__dict__.pop("model_", None)

    def _network_key(self, dtype):
        sizes = [np.shape(self.coefs_[0])[0]] + [np.shape(c)[1] for c in self.coefs_]
        output = _OUTPUT_ACTIVATIONS[self.out_activation_]
        hidden = _network_activation(self.activation)
        return (
            tuple(int(s) for s in sizes), hidden, output, np.dtype(dtype).name,
            float(self.dropout), bool(self.batch_norm), self.device,
        )  # fmt: skip

    def _ensure_network(self, dtype):
        """``model_`` holding ``coefs_``/``intercepts_`` (built when missing or when the
        architecture, dtype or device changed); returns whether it was built."""
        key = self._network_key(dtype)
        built = getattr(self, "_network", None) != key or not hasattr(self, "model_")
        if built:
            sizes, hidden, output, dtype_name, dropout, batch_norm, device = key
            layers = []
            for a, b in zip(sizes[:-2], sizes[1:-1]):
                if batch_norm:
                    layers += [Dense(a, b), BatchNorm(b, activation=hidden)]
                else:
                    layers.append(Dense(a, b, hidden))
                if dropout > 0:
                    layers.append(Dropout(dropout))
            layers.append(Dense(sizes[-2], sizes[-1], output))
            # A seed that draws nothing from random_state, whose stream gives scikit-learn's
            # initial weights, split and epoch orders.
            seed = int(self._random_state.get_state()[1][0])
            self.model_ = Sequential(layers, dtype=dtype_name, seed=seed, device=device)
            self._network = key
            self._bound = ([], [])
        self._push_weights()
        return built

    def _push_weights(self):
        """Copy any ``coefs_``/``intercepts_`` entry that is not the network's own view into
        the network (a user assigned it), then make the attributes views again."""
        model = self.model_
        coef_views, intercept_views = getattr(self, "_bound", ([], []))
        if (
            len(self.coefs_) == len(coef_views)
            and all(a is b for a, b in zip(self.coefs_, coef_views))
            and len(self.intercepts_) == len(intercept_views)
            and all(a is b for a, b in zip(self.intercepts_, intercept_views))
        ):
            return
        views = model._dense_views(model._params)
        if len(self.coefs_) != len(views) or len(self.intercepts_) != len(views):
            raise ValueError(
                f"coefs_ and intercepts_ must hold {len(views)} arrays each, one per layer"
            )
        staged = []
        for i, (W, b) in enumerate(views):
            for name, value, target in (
                ("coefs_", self.coefs_[i], W.T),
                ("intercepts_", self.intercepts_[i], b),
            ):
                value = np.asarray(value)
                if value.shape != target.shape:
                    raise ValueError(
                        f"{name}[{i}] must have shape {target.shape}, got {value.shape}"
                    )
                if not np.isfinite(value).all():
                    raise ValueError(f"{name}[{i}] holds NaN or infinity")
                staged.append((target, value))
        for target, value in staged:  # nothing changes unless every array is valid
            target[...] = value
        self._bind_weights()

    def _bind_weights(self):
        views = self.model_._dense_views(self.model_._params)
        self.coefs_ = [W.T for W, _ in views]
        self.intercepts_ = [b for _, b in views]
        self._bound = (list(self.coefs_), list(self.intercepts_))

    def __getstate__(self):
        # The attributes are views of the network's buffer: pickle the buffer once, and
        # rebuild the views on unpickling.
        if "model_" in self.__dict__ and "coefs_" in self.__dict__:
            self._push_weights()
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself
        for name in ("coefs_", "intercepts_", "_bound"):
            if "model_" in state:
                state.pop(name, None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "model_" in self.__dict__:
            self._bind_weights()

    def _compile(self, n_samples_or_weight):
        """Loss, optimizer and penalty of the network; resets the optimizer state."""
        loss, loss_weight = self._network_loss()
        # scikit-learn adds alpha / 2 * ||W||^2 divided by the batch's sample count.
        self.model_.compile(
            loss, self._new_optimizer(), l1=self.l1, l2=self.alpha / n_samples_or_weight,
            loss_weight=loss_weight,
        )  # fmt: skip
        # As scikit-learn's estimators, the optimizer in use (with its learning_rate) is kept
        # as ``_optimizer``: code written against them reads it.
        self._optimizer = self.model_.optimizer

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._check_params()
        hidden = _hidden_sizes(self)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental and self.solver in _STOCHASTIC_SOLVERS:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, Y, labels = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        sample_weight = self._class_sample_weight(labels, sample_weight)
        dtype = self._training_dtype(X)
        self.n_outputs_ = Y.shape[1]
        layer_units = [X.shape[1], *hidden, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(self.n_outputs_, layer_units, dtype)
        elif [np.shape(self.coefs_[0])[0]] + [np.shape(c)[1] for c in self.coefs_] != layer_units:
            raise ValueError(
                f"the network has layer sizes {self._network_key(dtype)[0]}, the data and "
                f"hidden_layer_sizes need {tuple(layer_units)}; fit with warm_start=False"
            )
        if self.solver == "lbfgs":
            self._ensure_network(dtype)
            weight_sum = X.shape[0] if sample_weight is None else float(sample_weight.sum())
            self._compile(weight_sum)
            self._fit_lbfgs(X, Y, sample_weight)
        else:
            validation = None
            train = (X, Y, sample_weight)
            if self.early_stopping:
                stratify = Y.astype(bool) if self._is_classifier and self.n_outputs_ == 1 else None
                train, (X_val, Y_val, w_val, rows) = self._split_validation(
                    X, Y, sample_weight, stratify, self._random_state
                )
                validation = (X_val, labels[rows], w_val)
            built = self._ensure_network(dtype)
            if built or not incremental or not hasattr(self, "_optimizer"):
                self._compile(self._batch_size(train[0].shape[0]))
            if not hasattr(self, "loss_curve_"):
                self._reset_progress()  # a network given as coefs_ by hand
            self._fit_stochastic(train, validation, incremental)
        if not np.isfinite(self.model_._params).all():
            raise ValueError(_NON_FINITE_MESSAGE)
        return self

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix ``X`` and targets ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (a label-indicator matrix for multilabel classification) or targets.
        sample_weight : array-like of shape (n_samples,), default None

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is "
                "not stochastic."
            )
        return True

    def _class_sample_weight(self, labels, sample_weight):
        return sample_weight

    def _validation_score(self, validation):
        X_val, y_val, w_val = validation
        prediction = self._decode(self.model_.predict(X_val))
        if (
            np.issubdtype(np.asarray(prediction).dtype, np.floating)
            and not np.isfinite(prediction).all()
        ):
            return np.nan
        return float(self._score_function(y_val, prediction, sample_weight=w_val))

    # ------------------------------------------------------------------ prediction
    def _forward(self, X):
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        if not hasattr(self, "model_"):
            self._random_state = check_random_state(self.random_state)
            self._ensure_network(np.asarray(self.coefs_[0]).dtype)
        else:
            self._push_weights()
        return self.model_.predict(X)

    # ------------------------------------------------------------------ save / load
    def save(self, path):
        """Save the network (weights, optimizer state) and the fitted attributes to ``path``;
        ``fastdnn.load(path)`` gives the estimator back (see ``fastdnn.io``)."""
        check_is_fitted(self, "coefs_")
        self._push_weights()
        meta, arrays = self.model_._archive()
        fitted = {}
        for name in self._saved_attributes:
            if hasattr(self, name):
                value = getattr(self, name)
                fitted[name] = value.tolist() if isinstance(value, np.ndarray) else value
        fitted["_network"] = list(self._network)
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(v) for v in self.feature_names_in_]
        estimator = {
            "params": _io.encode_value(self.get_params(deep=False)),
            "fitted": _io.encode_value(fitted),
        }
        _io.save_archive(path, type(self).__name__, {"model": meta, "estimator": estimator}, arrays)

    _saved_attributes = (
        "n_features_in_", "n_iter_", "t_", "n_outputs_", "n_layers_", "out_activation_",
        "loss_", "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_",
        "_no_improvement_count",
    )  # fmt: skip

    @classmethod
    def _from_archive(cls, meta, arrays, device=None):
        estimator = cls(**_io.decode_value(meta["estimator"]["params"]))
        if device is not None:
            estimator.device = device
        fitted = _io.decode_value(meta["estimator"]["fitted"])
        network = fitted.pop("_network")
        for name, value in fitted.items():
            if name == "feature_names_in_":
                value = np.asarray(value, dtype=object)
            setattr(estimator, name, value)
        estimator._restore_labels(fitted)
        estimator.model_ = Sequential._from_archive(meta["model"], arrays, estimator.device)
        network[0] = tuple(network[0])
        if len(network) == 5:  # saved before dropout and batch_norm existed
            network[4:4] = [0.0, False]
        network[-1] = estimator.device
        estimator._network = tuple(network)
        estimator._optimizer = estimator.model_.optimizer
        estimator._bind_weights()
        return estimator

    def _restore_labels(self, fitted):
        pass


class MLPClassifier(ClassifierMixin, _SklearnMLP):
    """Multi-layer perceptron classifier, a drop-in for ``sklearn.neural_network.MLPClassifier``.

    Multiclass targets train a softmax output with log-loss; binary targets one logistic
    output; a label-indicator ``y`` (multilabel) one logistic output per label with the binary
    log-loss summed over labels, as in scikit-learn.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default (100,)
        Width of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        Hidden activation; fastdnn's names (``linear``, ``sigmoid``, ``leaky_relu``, ``elu``,
        ``gelu``, ``softplus``) are accepted too.
    solver : {"lbfgs", "sgd", "adam", "adamw", "rmsprop"}, default "adam"
        ``lbfgs``: SciPy's L-BFGS-B on the full-batch loss (best for small data). ``sgd``:
        SGD with (Nesterov) momentum and the ``learning_rate`` schedule. ``adam``; fastdnn's
        ``adamw`` (with ``weight_decay``) and ``rmsprop``.
    alpha : float, default 1e-4
        L2 strength: ``alpha / 2 * ||W||^2`` divided by the batch's sample count (the data's
        summed sample weight for ``lbfgs``).
    batch_size : int or "auto", default "auto"
        ``min(200, n_samples)`` when "auto"; clipped to ``[1, n_samples]``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        SGD schedule: constant; ``learning_rate_init / (t + 1) ** power_t`` after each epoch
        (``t`` the samples seen); or divided by 5 whenever ``n_iter_no_change`` epochs fail to
        improve by ``tol`` (stopping once it is below 1e-6).
    learning_rate_init : float, default 1e-3
    power_t : float, default 0.5
    max_iter : int, default 200
        Epochs for the stochastic solvers; iterations for ``lbfgs``.
    shuffle : bool, default True
    random_state : int, RandomState instance or None, default None
        Initial weights (scikit-learn's draws), the early-stopping split and the shuffling.
    tol : float, default 1e-4
        Minimum improvement of the loss (or validation score) over ``n_iter_no_change``
        epochs; for ``lbfgs`` the projected-gradient tolerance.
    verbose : bool or int, default False
        Print ``Iteration k, loss = ...`` lines (and validation scores) as scikit-learn does.
    warm_start : bool, default False
        ``fit`` continues from the current weights (with a fresh optimizer state).
    momentum : float, default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out ``validation_fraction`` (stratified for binary targets, as in scikit-learn),
        stop on its accuracy and keep the best weights.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's (``epsilon`` also RMSprop's).
    n_iter_no_change : int or inf, default 10
    max_fun : int, default 15000
        Loss evaluations allowed to ``lbfgs``.
    l1 : float, default 0.0
        fastdnn: L1 penalty ``l1 * sum|W|``.
    dropout : float in [0, 1), default 0.0
        fastdnn: the rate of a :class:`~fastdnn.Dropout` after every hidden layer (not with
        ``solver="lbfgs"``, whose loss must be deterministic).
    batch_norm : bool, default False
        fastdnn: a :class:`~fastdnn.BatchNorm` between every hidden layer's product and its
        activation (not with ``solver="lbfgs"``, which evaluates the network in inference
        mode). ``coefs_``/``intercepts_`` stay the dense layers'; the normalisations'
        parameters and running statistics live in ``model_``.
    weight_decay : float, default 0.01
        fastdnn: decoupled weight decay of ``solver="adamw"``.
    class_weight : dict, "balanced" or None, default None
        fastdnn: multiplies each sample's weight by its class's weight.
    dtype : {None, "float32", "float64"}, default None
        fastdnn: None trains in the data's precision (float32 for float32 data, else float64).
    device : {"cpu", "cuda"}, default "cpu"
        fastdnn: where the network trains and predicts.

    Attributes
    ----------
    classes_ : ndarray
    loss_ : float
    best_loss_ : float or None
    loss_curve_ : list of float
    validation_scores_ : list of float or None
    best_validation_score_ : float or None
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (n_in, n_out): a view of layer ``i``'s ``W.T``. Assigning new
        arrays is honoured by the next ``fit``, ``partial_fit`` or ``predict``.
    intercepts_ : list of ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
    model_ : fastdnn.Sequential
        The network.
    """

    _is_classifier = True
    _score_function = staticmethod(accuracy_score)

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        l1=0.0,
        dropout=0.0,
        batch_norm=False,
        weight_decay=0.01,
        class_weight=None,
        dtype=None,
        device="cpu",
    ):
        _store_arguments(self, locals())

    # ------------------------------------------------------------------ targets
    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
            dtype=(np.float64, np.float32), reset=reset,
        )  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        Y = self._label_binarizer.transform(y).astype(np.float64)
        return X, Y, y

    def _class_sample_weight(self, labels, sample_weight):
        if self.class_weight is None:
            return sample_weight
        weights = compute_sample_weight(self.class_weight, labels)
        return weights if sample_weight is None else sample_weight * weights

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _network_loss(self):
        if self.out_activation_ == "softmax":
            return "cross_entropy", 1.0
        # scikit-learn's binary log-loss is summed over the labels of a multilabel target.
        return "binary_cross_entropy", float(self.n_outputs_)

    def _decode(self, proba):
        if self.n_outputs_ == 1:
            proba = proba.ravel()
        return self._label_binarizer.inverse_transform(proba)

    def _restore_labels(self, fitted):
        binarizer = LabelBinarizer()
        if self.out_activation_ == "logistic" and self.n_outputs_ > 1:
            binarizer.fit(np.eye(self.n_outputs_, dtype=int))
        else:
            binarizer.fit(self.classes_)
        self._label_binarizer = binarizer
        self.classes_ = binarizer.classes_

    _saved_attributes = (*_SklearnMLP._saved_attributes, "classes_")

    # ------------------------------------------------------------------ public
    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One iteration (epoch) over ``(X, y)``, continuing from the current weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), default None
        classes : array of shape (n_classes,), default None
            Every class of every call; required on the first call only.

        Returns
        -------
        self
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted class of each sample (label-indicator rows for multilabel targets).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self._decode(self._forward(X))

    def predict_proba(self, X):
        """Probability of each class, columns ordered as ``classes_``, in the training dtype.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        proba = self._forward(X)
        if self.n_outputs_ == 1:
            proba = proba.ravel()
            return np.vstack([1 - proba, proba]).T
        return proba

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _SklearnMLP):
    """Multi-layer perceptron regressor, a drop-in for ``sklearn.neural_network.MLPRegressor``.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default "squared_error"
        Half squared error with an identity output, or half Poisson deviance with an
        exponential output (log link; targets must be >= 0).
    Other parameters
        As :class:`MLPClassifier`, without ``class_weight``.

    Attributes
    ----------
    As :class:`MLPClassifier`, without ``classes_``.
    """

    _score_function = staticmethod(r2_score)

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        l1=0.0,
        dropout=0.0,
        batch_norm=False,
        weight_decay=0.01,
        dtype=None,
        device="cpu",
    ):
        _store_arguments(self, locals())

    def _check_params(self):
        super()._check_params()
        _check_options(self, "loss", ("squared_error", "poisson"))

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
            dtype=(np.float64, np.float32), reset=reset,
        )  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (np.asarray(y) < 0).any():
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for Poisson regression."
            )
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, Y, y

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _network_loss(self):
        if self.loss == "poisson":
            # scikit-learn's half Poisson deviance is summed over the outputs.
            return "poisson", float(self.n_outputs_)
        return "mse", 0.5  # scikit-learn's half squared error, averaged over all outputs

    def _decode(self, prediction):
        return prediction.ravel() if prediction.shape[1] == 1 else prediction

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One iteration (epoch) over ``(X, y)``, continuing from the current weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default None

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets in the training dtype, ``(n_samples,)`` for one output.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        check_is_fitted(self)
        return self._decode(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _check_partial_fit_first_call(estimator, classes):
    """True on the first ``partial_fit`` call (which sets ``classes_``); checks ``classes``."""
    if getattr(estimator, "classes_", None) is None and classes is None:
        raise ValueError("classes must be passed on the first call to partial_fit.")
    if classes is None:
        return False
    if getattr(estimator, "classes_", None) is not None:
        if not np.array_equal(estimator.classes_, unique_labels(classes)):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                f"{estimator.classes_!r}"
            )
        return False
    estimator.classes_ = unique_labels(classes)
    return True


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _BaseMLP):
    """A dense autoencoder as a scikit-learn transformer: ``transform`` encodes to the bottleneck.

    The encoder is ``n_features -> hidden_layer_sizes[0] -> ... -> hidden_layer_sizes[-1]`` (the
    last entry is the bottleneck width) and the decoder mirrors it; both train together as one
    :class:`fastdnn.Autoencoder` minimising the mean squared reconstruction error, with the
    stopping rules of :class:`MLPRegressor`.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (64, 8)
        Encoder widths after the input; the last is the number of output features.
    output_activation : str, default "linear"
        Activation of the reconstruction (``"sigmoid"`` for data in [0, 1]).
    bottleneck_activation : str, default "linear"
        Activation of the code layer.
    Other parameters
        As for :class:`MLPRegressor` (``activation``, ``solver`` (stochastic ones),
        ``alpha`` (default 0), ``l1``, ``batch_size``, ``learning_rate_init``, ``max_iter``,
        ``early_stopping``, ``random_state``, ``dtype``, ...).

    Attributes
    ----------
    autoencoder_ : fastdnn.Autoencoder
    n_features_in_ : int
    n_components_ : int
        Width of the code (``hidden_layer_sizes[-1]``).
    loss_curve_ : list of float
    n_iter_ : int
    """

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
        _store_arguments(self, locals())

    def _build(self, n_features, n_rows, random_state):
        hidden = _hidden_sizes(self)
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        self.autoencoder_ = Autoencoder(
            [n_features, *hidden], activation=_network_activation(self.activation),
            output_activation=self.output_activation,
            bottleneck_activation=self.bottleneck_activation, optimizer=self._new_optimizer(),
            l1=self.l1, l2=self.alpha / self._batch_size(n_rows), dtype=self.dtype, seed=seed,
            device=self.device,
        )  # fmt: skip
        self.n_components_ = hidden[-1]
        self.model_ = self.autoencoder_.model

    def _validation_score(self, validation):
        X_val, _, w_val = validation
        return float(self.model_.evaluate(X_val, X_val, sample_weight=w_val)["loss"]) * -1.0

    def _fit_X(self, X, sample_weight, incremental):
        self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not incremental or not hasattr(self, "model_")
        X = validate_data(self, X, reset=first, dtype=[np.float32, np.float64])
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self._random_state = random_state = check_random_state(self.random_state)
        train, validation = (X, X, sample_weight), None
        if self.early_stopping:
            train, (X_val, _, w_val, _) = self._split_validation(
                X, X, sample_weight, None, random_state
            )
            validation = (X_val, None, w_val)
        if first:
            self._build(X.shape[1], train[0].shape[0], random_state)
            self.n_iter_ = 0
            self.t_ = 0
            self._reset_progress()
        # The autoencoder's targets are its inputs: pass the same array (validated once).
        self._fit_stochastic((train[0], train[0], train[2]), validation, incremental)
        return self

    def fit(self, X, y=None, sample_weight=None):
        """Train the autoencoder on ``X`` for up to ``max_iter`` epochs (``y`` is ignored).

        Returns
        -------
        self
        """
        return self._fit_X(X, sample_weight, incremental=False)

    def partial_fit(self, X, y=None, sample_weight=None):
        """One more epoch over ``X`` (the first call builds the network).

        Returns
        -------
        self
        """
        return self._fit_X(X, sample_weight, incremental=True)

    def transform(self, X):
        """Encode ``X``: an (n_samples, n_components_) float64 array."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return self.autoencoder_.transform(X).astype(np.float64)

    def inverse_transform(self, X):
        """Decode codes back to the input space."""
        check_is_fitted(self, "model_")
        return self.autoencoder_.inverse_transform(X).astype(np.float64)

    def score(self, X, y=None):
        """Negative mean squared reconstruction error (higher is better, as scikit-learn
        expects of a score)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return -self.autoencoder_.score(X)

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    def save(self, path):
        """Save parameters, fitted attributes and the network (see ``fastdnn.io``)."""
        check_is_fitted(self, "model_")
        meta, arrays = self.model_._archive()
        fitted = {
            "n_features_in_": int(self.n_features_in_),
            "n_iter_": int(self.n_iter_),
            "loss_curve_": [float(v) for v in self.loss_curve_],
            "n_components_": int(self.n_components_),
        }
        estimator = {"params": _io.encode_value(self.get_params(deep=False)), "fitted": fitted}
        _io.save_archive(path, type(self).__name__, {"model": meta, "estimator": estimator}, arrays)

    @classmethod
    def _from_archive(cls, meta, arrays, device=None):
        estimator = cls(**_io.decode_value(meta["estimator"]["params"]))
        if device is not None:
            estimator.device = device
        estimator.model_ = Sequential._from_archive(meta["model"], arrays, estimator.device)
        for name, value in meta["estimator"]["fitted"].items():
            setattr(estimator, name, value)
        ae = estimator.autoencoder_ = Autoencoder.__new__(Autoencoder)
        sizes = [estimator.n_features_in_, *_hidden_sizes(estimator)]
        ae.layer_sizes = tuple(int(v) for v in sizes)
        ae.activation = _network_activation(estimator.activation)
        ae.output_activation = estimator.output_activation
        ae.bottleneck_activation = estimator.bottleneck_activation
        ae.n_encoder_layers = len(sizes) - 1
        ae.model = estimator.model_
        return estimator


_io.register("MLPClassifier", MLPClassifier._from_archive)
_io.register("MLPRegressor", MLPRegressor._from_archive)
_io.register("AutoencoderTransformer", AutoencoderTransformer._from_archive)
