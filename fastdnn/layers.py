"""Layer descriptions. A layer holds no arrays: ``Sequential`` owns one flat parameter buffer.

Each layer kind describes itself as a row of the layer table the compiled passes walk
(``kernels/cpu/network.py``'s ``Net``): its kind code, its output width for a given input
width, the shapes of its parameters (penalised dense weights, or unpenalised vectors) and of
its running statistics, and its constants. ``Sequential`` lays every layer's rows out in its
buffers without knowing the kinds.
"""

import numbers

import numpy as np

from ._validation import choice, positive_int
from .kernels.cpu import activations as _act
from .kernels.cpu import network as _net

ACTIVATIONS = {
    "linear": _act.LINEAR,
    "relu": _act.RELU,
    "sigmoid": _act.SIGMOID,
    "tanh": _act.TANH,
    "leaky_relu": _act.LEAKY_RELU,
    "elu": _act.ELU,
    "gelu": _act.GELU,
    "softplus": _act.SOFTPLUS,
    "exp": _act.EXP,
    "softmax": _act.SOFTMAX,
}

# He initialisation suits activations that zero or shrink half the input range; Glorot the rest.
RELU_FAMILY = frozenset({"relu", "leaky_relu", "elu", "gelu"})


def _positive_float(value, name, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value <= 0 or (upper is not None and value > upper):
        bound = f" and <= {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be > 0{bound}, got {value!r}")
    return float(value)


class Layer:
    """Base of the layer kinds: what ``Sequential`` needs to lay a layer out.

    Attributes
    ----------
    kind : int
        The layer table's kind code.
    activation : str
        The fused activation (``"linear"`` for none).
    """

    kind = None
    activation = "linear"
    #: A layer that transforms a previous layer's output (cannot be a network's first layer).
    needs_previous = False

    @property
    def activation_code(self):
        """Integer code of the activation, as the kernels read it."""
        return ACTIVATIONS[self.activation]

    def output_width(self, n_in, index):
        """The layer's output width for an input of ``n_in`` features; raises ``ValueError``
        naming layer ``index`` when the layer does not take that input."""
        width = self.in_features
        if width is not None and width != n_in:
            raise ValueError(
                f"layer {index} expects {width} inputs but layer {index - 1} gives {n_in} "
                f"outputs ({type(self).__name__}({width}) after a width of {n_in})"
            )
        return self.out_features

    def parameter_shapes(self, n_in, n_out):
        """``[(name, shape, penalised), ...]`` of the layer's trainable arrays, in table
        order: the first is at the table's ``p_off``, the second at ``q_off``."""
        return []

    def state_shapes(self, n_out):
        """``[(name, shape), ...]`` of the layer's running statistics (not trained)."""
        return []

    def initialise(self, name, view, rng):
        """Fill the new parameter or statistic ``name`` (a view into a model buffer)."""
        view[...] = 0

    def constants(self):
        """``(eps, momentum, rate)`` of the layer table (0 where unused)."""
        return (0.0, 0.0, 0.0)

    def get_config(self):
        """Constructor arguments as a dict."""
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """A fully connected layer ``y = f(x @ W.T + b)`` with ``W`` of shape (out, in).

    Parameters
    ----------
    in_features : int
        Width of the input.
    out_features : int
        Width of the output.
    activation : str, default "linear"
        One of ``linear``, ``relu``, ``sigmoid``, ``tanh``, ``leaky_relu`` (slope 0.01), ``elu``,
        ``gelu`` (tanh form), ``softplus``, ``exp`` (the inverse of the log link: a positive
        output, the one ``loss="poisson"`` needs) or ``softmax`` (output layer only).
    """

    kind = _net.DENSE

    def __init__(self, in_features, out_features, activation="linear"):
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.activation = choice(activation, "activation", ACTIVATIONS)

    def parameter_shapes(self, n_in, n_out):
        return [("W", (n_out, n_in), True), ("b", (n_out,), False)]

    def initialise(self, name, view, rng):
        if name == "b":
            view[...] = 0
            return
        fan_out, fan_in = view.shape
        # Uniform(-limit, limit) has variance limit**2 / 3: He gives 2 / fan_in, Glorot
        # 2 / (fan_in + fan_out).
        denominator = fan_in / 2 if self.activation in RELU_FAMILY else (fan_in + fan_out) / 2
        limit = np.sqrt(3.0 / denominator)
        view[...] = rng.uniform(-limit, limit, size=view.shape)

    def get_config(self):
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": self.activation,
        }

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features}, activation={self.activation!r})"


class _Normalization(Layer):
    needs_previous = True

    def __init__(self, num_features, eps, activation):
        self.num_features = positive_int(num_features, "num_features")
        self.eps = _positive_float(eps, "eps")
        self.activation = choice(activation, "activation", ACTIVATIONS)
        if self.activation == "softmax":
            raise ValueError(
                f"{type(self).__name__} cannot use activation 'softmax' (output layer only)"
            )

    @property
    def in_features(self):
        """Width of the input (and of the output)."""
        return self.num_features

    out_features = in_features

    def parameter_shapes(self, n_in, n_out):
        return [("gamma", (n_out,), False), ("beta", (n_out,), False)]

    def initialise(self, name, view, rng):
        view[...] = 1 if name in ("gamma", "running_var") else 0


class BatchNorm(_Normalization):
    """Batch normalisation of each feature, ``torch.nn.BatchNorm1d``'s semantics, with an
    optional fused activation: ``y = f(gamma * (x - mean) / sqrt(var + eps) + beta)``.

    While training (``fit``, ``loss_and_gradients(training=True)``) the mean and the biased
    variance are the batch's, over its rows, and ``fit`` moves the running mean and running
    (unbiased) variance by ``momentum`` towards them: ``running = (1 - momentum) * running +
    momentum * batch``. ``predict``, ``evaluate`` and the default ``loss_and_gradients`` use the
    running statistics. ``gamma`` (ones) and ``beta`` (zeros) are trained, not penalised by
    L1/L2; the running statistics are model state, saved with the model.

    Parameters
    ----------
    num_features : int
        Width of the input and output.
    momentum : float, default 0.1
        In (0, 1].
    eps : float, default 1e-5
        Added to the variance.
    activation : str, default "linear"
        Any of :class:`Dense`'s but ``softmax``.

    Notes
    -----
    A batch of one row has no unbiased variance; its biased variance (0) updates the running
    variance, where PyTorch raises an error. The statistics ignore sample weights.
    """

    kind = _net.BATCH_NORM

    def __init__(self, num_features, momentum=0.1, eps=1e-5, activation="linear"):
        super().__init__(num_features, eps, activation)
        self.momentum = _positive_float(momentum, "momentum", upper=1.0)

    def state_shapes(self, n_out):
        return [("running_mean", (n_out,)), ("running_var", (n_out,))]

    def constants(self):
        return (self.eps, self.momentum, 0.0)

    def get_config(self):
        return {
            "num_features": self.num_features,
            "momentum": self.momentum,
            "eps": self.eps,
            "activation": self.activation,
        }


class LayerNorm(_Normalization):
    """Layer normalisation of each row, ``torch.nn.LayerNorm(num_features)``, with an optional
    fused activation: ``y = f(gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta)``, the mean and
    biased variance over the row's features, the same in training and inference.

    Parameters
    ----------
    num_features : int
        Width of the input and output.
    eps : float, default 1e-5
    activation : str, default "linear"
        Any of :class:`Dense`'s but ``softmax``.
    """

    kind = _net.LAYER_NORM

    def __init__(self, num_features, eps=1e-5, activation="linear"):
        super().__init__(num_features, eps, activation)

    def constants(self):
        return (self.eps, 0.0, 0.0)

    def get_config(self):
        return {"num_features": self.num_features, "eps": self.eps, "activation": self.activation}


class Dropout(Layer):
    """Inverted dropout: while training, each element of the previous layer's output is zeroed
    with probability ``rate`` and the kept ones are scaled by ``1 / (1 - rate)``.

    A new mask for every element of every batch, drawn from the model's seed (the same seed and
    data give bit-identical training); ``predict``, ``evaluate`` and the default
    ``loss_and_gradients`` pass the input through unchanged. The width is the previous layer's.

    Parameters
    ----------
    rate : float
        Drop probability, in [0, 1).
    """

    kind = _net.DROPOUT
    needs_previous = True
    in_features = out_features = None

    def __init__(self, rate):
        if (
            isinstance(rate, bool)
            or not isinstance(rate, numbers.Real)
            or not np.isfinite(rate)
            or not 0 <= rate < 1
        ):
            raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def output_width(self, n_in, index):
        return n_in

    def constants(self):
        return (0.0, 0.0, self.rate)

    def get_config(self):
        return {"rate": self.rate}


LAYER_KINDS = {cls.__name__: cls for cls in (Dense, BatchNorm, LayerNorm, Dropout)}


def layer_from_config(config):
    """A layer from its saved description: ``{"kind": name, **get_config()}``, or a dense
    layer's bare config (files written before the other kinds existed)."""
    config = dict(config)
    kind = LAYER_KINDS.get(config.pop("kind", "Dense"))
    if kind is None:
        raise ValueError(f"unknown layer kind in {config!r}")
    return kind(**config)
