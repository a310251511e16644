"""Optimizer updates as single fused passes over the flat parameter buffer.

Each pass reads the gradient, folds in the L1/L2 penalty gradient (weights only), updates the
optimizer state and writes the parameters, once per element. The update rules and defaults are
those of ``torch.optim``. ``hyper`` holds the hyper-parameters in the parameters' dtype, in the
order documented by each optimizer class in ``fastdnn.optimizers``.
"""

import numpy as np
from numba import njit

from .._options import INLINE_OPTIONS, callee, kernel
from .features import ALL, optimizer_bit, switch
from .fpmode import flush_denormals, restore_fp_mode

SGD = 0
ADAM = 1
ADAMW = 2
RMSPROP = 3


# Inlined by Numba into ``optimizer_step``: compiled apart, these loops stayed scalar (see
# ``kernels/_options.py``).
@njit(**INLINE_OPTIONS)
def _sgd(p, g, state, hyper, lo, hi, l1, l2):
    lr, momentum, nesterov = hyper[0], hyper[1], hyper[2]
    if momentum == 0:
        for i in range(lo, hi):
            p[i] -= lr * (g[i] + l1 * np.sign(p[i]) + l2 * p[i])
        return
    buf = state[0]
    for i in range(lo, hi):
        gi = g[i] + l1 * np.sign(p[i]) + l2 * p[i]
        b = momentum * buf[i] + gi
        buf[i] = b
        p[i] -= lr * (gi + momentum * b if nesterov != 0 else b)


@njit(**INLINE_OPTIONS)
def _adam(p, g, state, hyper, lo, hi, l1, l2, step_size, inv_sqrt_bc2, decay):
    beta1, beta2, eps = hyper[1], hyper[2], hyper[3]
    one = p.dtype.type(1.0)
    m, v = state[0], state[1]
    for i in range(lo, hi):
        gi = g[i] + l1 * np.sign(p[i]) + l2 * p[i]
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps)


@njit(**INLINE_OPTIONS)
def _rmsprop(p, g, state, hyper, lo, hi, l1, l2):
    lr, rho, eps, momentum = hyper[0], hyper[1], hyper[2], hyper[3]
    one = p.dtype.type(1.0)
    sq = state[0]
    # Two loops rather than a branch on momentum inside one: the branch blocked vectorisation.
    if momentum == 0:
        for i in range(lo, hi):
            gi = g[i] + l1 * np.sign(p[i]) + l2 * p[i]
            s = rho * sq[i] + (one - rho) * gi * gi
            sq[i] = s
            p[i] -= lr * gi / (np.sqrt(s) + eps)
        return
    buf = state[1]
    for i in range(lo, hi):
        gi = g[i] + l1 * np.sign(p[i]) + l2 * p[i]
        s = rho * sq[i] + (one - rho) * gi * gi
        sq[i] = s
        b = momentum * buf[i] + gi / (np.sqrt(s) + eps)
        buf[i] = b
        p[i] -= lr * b


@callee
def _sgd_step(params, grads, state, hyper, step, n_weights, l1, l2):
    zero = params.dtype.type(0.0)
    _sgd(params, grads, state, hyper, 0, n_weights, l1, l2)
    _sgd(params, grads, state, hyper, n_weights, params.size, zero, zero)


@callee
def _rmsprop_step(params, grads, state, hyper, step, n_weights, l1, l2):
    zero = params.dtype.type(0.0)
    _rmsprop(params, grads, state, hyper, 0, n_weights, l1, l2)
    _rmsprop(params, grads, state, hyper, n_weights, params.size, zero, zero)


@njit(**INLINE_OPTIONS)
def _adam_step(params, grads, state, hyper, step, n_weights, l1, l2, decay):
    # Bias corrections in float64, as torch computes them from a Python float step.
    zero = params.dtype.type(0.0)
    lr = hyper[0]
    bc1 = 1.0 - float(hyper[1]) ** step
    bc2 = 1.0 - float(hyper[2]) ** step
    step_size = params.dtype.type(lr / bc1)
    inv_sqrt_bc2 = params.dtype.type(1.0 / np.sqrt(bc2))
    n = params.size
    _adam(params, grads, state, hyper, 0, n_weights, l1, l2, step_size, inv_sqrt_bc2, decay)
    _adam(params, grads, state, hyper, n_weights, n, zero, zero, step_size, inv_sqrt_bc2, decay)


@callee
def _adam_no_decay(params, grads, state, hyper, step, n_weights, l1, l2):
    _adam_step(params, grads, state, hyper, step, n_weights, l1, l2, params.dtype.type(1.0))


@callee
def _adamw_step(params, grads, state, hyper, step, n_weights, l1, l2):
    decay = params.dtype.type(1.0 - hyper[0] * hyper[4])
    _adam_step(params, grads, state, hyper, step, n_weights, l1, l2, decay)


_step = switch(
    {code: optimizer_bit(code) for code in (SGD, RMSPROP, ADAMW, ADAM)},
    {SGD: _sgd_step, RMSPROP: _rmsprop_step, ADAMW: _adamw_step, ADAM: _adam_no_decay},
)


@callee
def optimizer_step_for(features, code, params, grads, state, hyper, step, n_weights, l1, l2):
    """:func:`optimizer_step` compiled for the optimizers in ``features``."""
    fp_mode = flush_denormals()  # decaying moment estimates must not turn denormal
    _step(features, code, params, grads, state, hyper, step, n_weights, l1, l2)
    restore_fp_mode(fp_mode)


@kernel
def optimizer_step(code, params, grads, state, hyper, step, n_weights, l1, l2):
    """Apply one update to ``params`` in place; ``step`` is the 1-based step number.

    ``params[:n_weights]`` are weights (penalised by ``l1 * sign(w) + l2 * w`` in the gradient),
    ``params[n_weights:]`` are biases (not penalised). Denormal results are flushed to zero
    (see ``fpmode.py``). Every optimizer is compiled (see :func:`optimizer_step_for`).
    """
    optimizer_step_for(ALL, code, params, grads, state, hyper, step, n_weights, l1, l2)


@kernel
def penalty(params, n_weights, l1, l2):
    """``l1 * sum|W| + (l2 / 2) * sum W**2`` over the weights (the first ``n_weights`` entries)."""
    abs_sum = 0.0
    sq_sum = 0.0
    for i in range(n_weights):
        w = float(params[i])
        abs_sum += abs(w)
        sq_sum += w * w
    return float(l1) * abs_sum + 0.5 * float(l2) * sq_sum


@kernel
def add_penalty_gradient(params, grads, n_weights, l1, l2):
    """``grads[:n_weights] += l1 * sign(W) + l2 * W``: the penalty's gradient, for reporting
    gradients of the full loss (the optimizer passes fold it in themselves)."""
    for i in range(n_weights):
        grads[i] += l1 * np.sign(params[i]) + l2 * params[i]


@kernel
def clip_by_global_norm(grads, max_norm):
    """Scale ``grads`` by ``max_norm / (norm + 1e-6)`` when that is below 1, ``norm`` the L2
    norm of the whole buffer (summed in float64): ``torch.nn.utils.clip_grad_norm_``."""
    sq_sum = 0.0
    for i in range(grads.size):
        g = float(grads[i])
        sq_sum += g * g
    coef = max_norm / (np.sqrt(sq_sum) + 1e-6)
    if coef < 1.0:
        factor = grads.dtype.type(coef)
        for i in range(grads.size):
            grads[i] *= factor
    return np.sqrt(sq_sum)
