"""Layer descriptions. A layer holds no arrays: ``Sequential`` owns one flat parameter buffer."""

from ._validation import choice, positive_int
from .kernels.cpu import activations as _act

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


class Dense:
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

    def __init__(self, in_features, out_features, activation="linear"):
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.activation = choice(activation, "activation", ACTIVATIONS)

    @property
    def activation_code(self):
        """Integer code of the activation, as the kernels read it."""
        return ACTIVATIONS[self.activation]

    def get_config(self):
        """Constructor arguments as a dict."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": self.activation,
        }

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features}, activation={self.activation!r})"
