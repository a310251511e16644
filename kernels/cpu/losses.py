"""Losses fused with the output layer's activation.

The output layer hands over its pre-activation ``Z`` (bias included). These kernels compute the
activation, the loss and the loss gradient w.r.t. ``Z`` (the output delta) in numerically stable
forms: log-sum-exp for softmax + cross-entropy, ``max(z, 0) - z*y + log1p(exp(-|z|))`` for
sigmoid + binary cross-entropy, and :func:`poisson_deviance` for exp + Poisson.
"""

import numpy as np
from numba import njit

from .._options import INLINE_OPTIONS, callee, kernel
from .activations import activation_for, scale_by_derivative_for, softplus
from .features import ALL, loss_bit, switch
from .vecmath import vexp

MSE = 0
CROSS_ENTROPY = 1
BINARY_CROSS_ENTROPY = 2
POISSON = 3
#: ``Sequential.compile``'s loss names and their codes.
LOSS_CODES = {
    "mse": MSE,
    "cross_entropy": CROSS_ENTROPY,
    "binary_cross_entropy": BINARY_CROSS_ENTROPY,
    "poisson": POISSON,
}


@callee
def poisson_deviance(z, mu, y):
    """Half Poisson deviance ``y * log(y / mu) - y + mu`` of one element, ``mu = exp(z)``.

    Equal to ``mu - y * z + (y * log(y) - y)`` with ``0 * log(0) = 0``, in the dtype of ``z``.
    Near the fit (``|mu - y| < y / 2``) it is ``d - y * log1p(d / y)`` with ``d = mu - y`` (exact
    there): the two terms nearly cancel, and the direct form would lose ``y * log(y)`` ulps of
    ``log`` (0.05 per element at y = 1e5 in float32, beside a typical deviance of 0.5). Away
    from it the direct form ``d + y * (log(y) - z)`` is accurate and stays finite where ``mu``
    underflows (``d / y`` would round to -1 there and ``log1p`` give -inf).
    """
    t = type(z)
    if y <= 0:
        return mu
    d = mu - y
    if abs(d) < t(0.5) * y:
        return d - y * np.log1p(d / y)
    return d + y * (np.log(y) - z)


@callee
def _cross_entropy_sum(Z, Y, row_weight, A):
    n, m = Z.shape
    total = Z.dtype.type(0.0)
    for i in range(n):
        shift = Z[i, 0]
        for j in range(1, m):
            shift = max(shift, Z[i, j])
        sum_exp = Z.dtype.type(0.0)
        y_sum = Z.dtype.type(0.0)
        yz = Z.dtype.type(0.0)
        for j in range(m):
            sum_exp += vexp(Z[i, j] - shift)
            y_sum += Y[i, j]
            yz += Y[i, j] * Z[i, j]
        total += row_weight[i] * ((shift + np.log(sum_exp)) * y_sum - yz)
    return total


def _elementwise_sum(element):
    """The kernel ``loss_sum(Z, Y, row_weight, A)``: ``sum_i row_weight[i] * sum_j element(Z[i,
    j], A[i, j], Y[i, j])``, for the losses summed over every output element."""

    @callee
    def loss_sum(Z, Y, row_weight, A):
        n, m = Z.shape
        total = Z.dtype.type(0.0)
        for i in range(n):
            row_total = Z.dtype.type(0.0)
            for j in range(m):
                row_total += element(Z[i, j], A[i, j], Y[i, j])
            total += row_weight[i] * row_total
        return total

    return loss_sum


@njit(**INLINE_OPTIONS)
def _binary_cross_entropy(z, a, y):
    return softplus(z) - z * y


@njit(**INLINE_OPTIONS)
def _squared_error(z, a, y):
    r = a - y
    return r * r


_binary_cross_entropy_sum = _elementwise_sum(_binary_cross_entropy)
_poisson_sum = _elementwise_sum(poisson_deviance)
_squared_error_sum = _elementwise_sum(_squared_error)


@callee
def _argmax_matches(A, Y):
    n, m = A.shape
    correct = 0
    for i in range(n):
        best_a = 0
        best_y = 0
        for j in range(1, m):
            if A[i, j] > A[i, best_a]:
                best_a = j
            if Y[i, j] > Y[i, best_y]:
                best_y = j
        if best_a == best_y:
            correct += 1
    return correct


@callee
def _threshold_matches(A, Y):
    n, m = A.shape
    correct = 0
    half = A.dtype.type(0.5)
    for i in range(n):
        for j in range(m):
            if (A[i, j] > half) == (Y[i, j] > half):
                correct += 1
    return correct


@callee
def _no_accuracy(A, Y):
    return 0


@callee
def _elementwise_derivative(act_features, act_code, Z, A, D):
    scale_by_derivative_for(act_features, act_code, Z, A, D)


@callee
def _fused_derivative(act_features, act_code, Z, A, D):
    pass


_BITS = {code: loss_bit(code) for code in LOSS_CODES.values()}
_loss_sum = switch(
    _BITS,
    {
        CROSS_ENTROPY: _cross_entropy_sum,
        BINARY_CROSS_ENTROPY: _binary_cross_entropy_sum,
        POISSON: _poisson_sum,
        MSE: _squared_error_sum,
    },
)
_correct = switch(
    _BITS,
    {
        CROSS_ENTROPY: _argmax_matches,
        BINARY_CROSS_ENTROPY: _threshold_matches,
        POISSON: _no_accuracy,
        MSE: _no_accuracy,
    },
)
# Only MSE leaves the output activation's derivative to apply: the other losses are fused.
_output_derivative = switch(
    _BITS,
    {
        CROSS_ENTROPY: _fused_derivative,
        BINARY_CROSS_ENTROPY: _fused_derivative,
        POISSON: _fused_derivative,
        MSE: _elementwise_derivative,
    },
)


@callee
def output_loss_for(features, loss_code, act_code, Z, Y, row_weight, A):
    """:func:`output_loss` compiled for the losses and activations in ``features``."""
    activation_for(features, act_code, Z, A)
    return _loss_sum(features, loss_code, Z, Y, row_weight, A)


@callee
def output_delta_for(features, loss_code, act_code, Z, A, Y, row_weight, scale, D):
    """:func:`output_delta` compiled for the losses and activations in ``features``."""
    n, m = Z.shape
    if loss_code == MSE:
        scale = Z.dtype.type(2.0) * scale
    for i in range(n):
        row_scale = scale * row_weight[i]
        for j in range(m):
            D[i, j] = (A[i, j] - Y[i, j]) * row_scale
    _output_derivative(features, loss_code, features, act_code, Z, A, D)


@callee
def count_correct_for(features, loss_code, A, Y):
    """:func:`count_correct` compiled for the losses in ``features``."""
    return _correct(features, loss_code, A, Y)


@kernel
def output_loss(loss_code, act_code, Z, Y, row_weight, A):
    """Write the output activation into ``A`` and return the weighted summed loss of the batch.

    Row ``i``'s loss is multiplied by ``row_weight[i]`` (sample weights; ones when unweighted).
    The sum is over samples for cross-entropy and over all elements for MSE, binary
    cross-entropy and Poisson; the caller divides by the matching weighted count to get the
    mean.
    """
    return output_loss_for(ALL, loss_code, act_code, Z, Y, row_weight, A)


@kernel
def output_delta(loss_code, act_code, Z, A, Y, row_weight, scale, D):
    """Write ``d(loss) / dZ`` into ``D``, row ``i`` multiplied by ``scale * row_weight[i]``.

    ``scale`` is ``loss_weight`` / (summed row weights), divided further by the output width
    for the elementwise losses (MSE, binary cross-entropy, Poisson).

    Softmax + cross-entropy, sigmoid + binary cross-entropy and exp + Poisson all reduce to
    ``(A - Y)`` times that factor (for Poisson, ``d/dz (exp(z) - y z) = mu - y``).
    """
    output_delta_for(ALL, loss_code, act_code, Z, A, Y, row_weight, scale, D)


@kernel
def count_correct(loss_code, A, Y):
    """Correct predictions: argmax match per row (cross-entropy) or per element at 0.5 (binary).

    Returns 0 for MSE and Poisson, which have no accuracy.
    """
    return count_correct_for(ALL, loss_code, A, Y)
