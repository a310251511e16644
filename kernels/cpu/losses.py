"""Losses fused with the output layer's activation.

The output layer hands over its pre-activation ``Z`` (bias included). These kernels compute the
activation, the loss and the loss gradient w.r.t. ``Z`` (the output delta) in numerically stable
forms: log-sum-exp for softmax + cross-entropy, ``max(z, 0) - z*y + log1p(exp(-|z|))`` for
sigmoid + binary cross-entropy, and :func:`poisson_deviance` for exp + Poisson.
"""

import numpy as np
from numba import njit

from .._options import CALLEE_OPTIONS, JIT_OPTIONS
from .activations import activation, scale_by_derivative, softplus
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


@njit(**CALLEE_OPTIONS)
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


@njit(**JIT_OPTIONS)
def output_loss(loss_code, act_code, Z, Y, row_weight, A):
    """Write the output activation into ``A`` and return the weighted summed loss of the batch.

    Row ``i``'s loss is multiplied by ``row_weight[i]`` (sample weights; ones when unweighted).
    The sum is over samples for cross-entropy and over all elements for MSE, binary
    cross-entropy and Poisson; the caller divides by the matching weighted count to get the
    mean.
    """
    n, m = Z.shape
    total = Z.dtype.type(0.0)
    activation(act_code, Z, A)
    if loss_code == CROSS_ENTROPY:
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
    elif loss_code == BINARY_CROSS_ENTROPY:
        for i in range(n):
            row_total = Z.dtype.type(0.0)
            for j in range(m):
                z = Z[i, j]
                row_total += softplus(z) - z * Y[i, j]
            total += row_weight[i] * row_total
    elif loss_code == POISSON:
        for i in range(n):
            row_total = Z.dtype.type(0.0)
            for j in range(m):
                row_total += poisson_deviance(Z[i, j], A[i, j], Y[i, j])
            total += row_weight[i] * row_total
    else:
        for i in range(n):
            row_total = Z.dtype.type(0.0)
            for j in range(m):
                r = A[i, j] - Y[i, j]
                row_total += r * r
            total += row_weight[i] * row_total
    return total


@njit(**JIT_OPTIONS)
def output_delta(loss_code, act_code, Z, A, Y, row_weight, scale, D):
    """Write ``d(loss) / dZ`` into ``D``, row ``i`` multiplied by ``scale * row_weight[i]``.

    ``scale`` is ``loss_weight`` / (summed row weights), divided further by the output width
    for the elementwise losses (MSE, binary cross-entropy, Poisson).

    Softmax + cross-entropy, sigmoid + binary cross-entropy and exp + Poisson all reduce to
    ``(A - Y)`` times that factor (for Poisson, ``d/dz (exp(z) - y z) = mu - y``).
    """
    n, m = Z.shape
    if loss_code == MSE:
        scale = Z.dtype.type(2.0) * scale
    for i in range(n):
        row_scale = scale * row_weight[i]
        for j in range(m):
            D[i, j] = (A[i, j] - Y[i, j]) * row_scale
    if loss_code == MSE:
        scale_by_derivative(act_code, Z, A, D)


@njit(**JIT_OPTIONS)
def count_correct(loss_code, A, Y):
    """Correct predictions: argmax match per row (cross-entropy) or per element at 0.5 (binary).

    Returns 0 for MSE and Poisson, which have no accuracy.
    """
    n, m = A.shape
    correct = 0
    if loss_code == CROSS_ENTROPY:
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
    elif loss_code == BINARY_CROSS_ENTROPY:
        half = A.dtype.type(0.5)
        for i in range(n):
            for j in range(m):
                if (A[i, j] > half) == (Y[i, j] > half):
                    correct += 1
    return correct
