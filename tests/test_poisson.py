"""``loss="poisson"`` with an ``exp`` output: the fused kernels against NumPy (and PyTorch, if
present), and a Poisson regression that recovers its coefficients.

Gradients are checked against finite differences in ``test_gradients.py``, training step by step
against the reference in ``test_reference.py``, the CUDA kernels in ``test_cuda_kernels.py``.
"""

import numpy as np
import pytest
import reference as ref
from scipy.special import xlogy

import fastdnn as fd
from fastdnn.kernels.cpu import activations as act
from fastdnn.kernels.cpu import losses


def _batch(dtype):
    """Pre-activations and targets over every regime of the deviance."""
    rng = np.random.default_rng(0)
    Z = rng.normal(0.5, 1.5, size=(9, 4))
    Y = rng.poisson(np.exp(Z)).astype(np.float64)  # near the fit, zeros where mu is small
    Y[0] = [0.0, 0.25, 3.5, 1e-3]  # rates, and a zero target
    # Large counts at the fit (where the terms y*z and y*log(y) nearly cancel) and far from it.
    Z[1] = np.log([1e5, 1e5, 2e3, 1e4])
    Y[1] = [1e5 + 300.0, 99_000.0, 40.0, 0.0]
    Z[2, :2] = [-30.0, -120.0]  # mu underflows in float32 (-120 is clamped to exp(-87.3))
    Y[2, :2] = [1.0, 2.0]
    return Z.astype(dtype), Y.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_poisson_kernels_match_numpy(dtype):
    Z, Y = _batch(dtype)
    weight = np.linspace(0.5, 2.0, Z.shape[0]).astype(dtype)
    scale = dtype(0.01)
    A, D = np.empty_like(Z), np.empty_like(Z)
    total = losses.output_loss(losses.POISSON, act.EXP, Z, Y, weight, A)
    losses.output_delta(losses.POISSON, act.EXP, Z, A, Y, weight, scale, D)
    assert losses.count_correct(losses.POISSON, A, Y) == 0  # no accuracy
    assert A.dtype == D.dtype == dtype

    z, y, w = (a.astype(np.float64) for a in (Z, Y, weight))
    mu = np.exp(np.maximum(z, -87.33654) if dtype == np.float32 else z)
    expected = (w[:, None] * (mu - y * z + xlogy(y, y) - y)).sum()
    assert np.isfinite(total)
    tight = dtype == np.float64
    assert total == pytest.approx(expected, rel=1e-13 if tight else 2e-6)
    np.testing.assert_allclose(A, mu, rtol=1e-15 if tight else 3e-7)  # vexp: 2 ulp
    D_ref = (mu - y) * (float(scale) * w)[:, None]
    # float32: mu - y at y = 1e5 keeps the 2-ulp error of exp, relative to the largest delta
    np.testing.assert_allclose(
        D, D_ref, rtol=1e-13 if tight else 2e-6, atol=0 if tight else 1e-7 * np.abs(D_ref).max()
    )


def test_poisson_deviance_is_zero_at_the_fit_and_safe_at_zero_targets():
    y = np.array([[0.0, 1.0, 4.0, 1e5]])
    for dtype in (np.float32, np.float64):
        Z = np.log(np.maximum(y, 1e-3)).astype(dtype)
        A = np.empty_like(Z)
        weight = np.ones(1, dtype)
        Y = y.astype(dtype)
        total = losses.output_loss(losses.POISSON, act.EXP, Z[:, 1:], Y[:, 1:], weight, A[:, 1:])
        assert abs(total) < (1e-2 if dtype == np.float32 else 1e-9)
        # y = 0: the y*log(y) term is 0 (not NaN) and the deviance is mu itself
        zero = losses.output_loss(losses.POISSON, act.EXP, Z[:, :1], Y[:, :1], weight, A[:, :1])
        assert zero == pytest.approx(1e-3, rel=1e-6)


def test_poisson_loss_and_gradients_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(11, 3))
    Y = rng.poisson(2.0, (11, 2)).astype(np.float64)
    Y[0, 0] = 0.6
    model = fd.Sequential([fd.Dense(3, 5, "tanh"), fd.Dense(5, 2, "exp")], dtype="float64", seed=2)
    model.compile("poisson", loss_weight=2.0)
    loss, grads = model.loss_and_gradients(X, Y)

    linears = []
    for W, b in model.get_weights():
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        linears.append(linear)
    z = linears[1](torch.tanh(linears[0](torch.from_numpy(X))))
    target = torch.from_numpy(Y)
    # PoissonNLLLoss(log_input=True, full=False) is mean(exp(z) - y z); the deviance adds the
    # constant mean(y log y - y), which has no gradient.
    nll = torch.nn.PoissonNLLLoss(log_input=True, full=False)(z, target)
    constant = torch.mean(torch.xlogy(target, target) - target)
    torch_loss = 2.0 * (nll + constant)
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-13)
    for (dW, db), linear in zip(grads, linears):
        np.testing.assert_allclose(dW, linear.weight.grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, linear.bias.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_poisson_evaluate_is_the_weighted_mean_deviance():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20, 3))
    Y = rng.poisson(1.0, (20, 2)).astype(np.float64)
    weight = rng.uniform(0.2, 2.0, 20)
    model = fd.Sequential([fd.Dense(3, 2, "exp")], dtype="float64", seed=1)
    model.compile("poisson", l1=1e-3)
    params = [[W, b] for W, b in model.get_weights()]
    zs, outs = ref.forward(params, ["exp"], X)
    expected = ref.data_loss("poisson", zs[-1], outs[-1], Y, weight) + ref.penalty(params, 1e-3)
    scores = model.evaluate(X, Y, sample_weight=weight)
    assert set(scores) == {"loss"}
    assert scores["loss"] == pytest.approx(expected, rel=1e-12)


def test_poisson_regression_recovers_the_coefficients():
    # y ~ Poisson(exp(x w + b)): maximum likelihood with an exp output is the Poisson GLM.
    rng = np.random.default_rng(5)
    w, b = np.array([0.6, -0.4, 0.25]), 0.3
    X = rng.normal(size=(4000, 3))
    y = rng.poisson(np.exp(X @ w + b)).astype(np.float64)
    model = fd.Sequential([fd.Dense(3, 1, "exp")], seed=0)  # float32, the default
    model.compile("poisson", fd.Adam(lr=0.01))
    history = model.fit(X, y, epochs=15, batch_size=100, verbose=0)
    assert "accuracy" not in history.history
    ((W, bias),) = model.get_weights()
    np.testing.assert_allclose(W[0], w, atol=0.04)
    assert bias[0] == pytest.approx(b, abs=0.04)
    assert (model.predict(X) > 0).all()
    # At the fit the mean half deviance is about 1/2 per observation (less for small counts).
    assert history.history["loss"][-1] < 0.7
