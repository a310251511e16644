"""BatchNorm, LayerNorm, Dropout and clipnorm on the CPU.

Gradients are checked against central finite differences in float64, in training mode (batch
statistics; the dropout masks of the next update, which stay fixed until the model trains)
and in inference mode (running statistics, no dropout). PyTorch, with the same weights and
fastdnn's dropout masks (rebuilt here in NumPy from the documented hash), is the reference for
the outputs, the training-mode loss and gradients, and fits of several steps.
"""

import numpy as np
import pytest
from test_gradients import RTOL, numeric_gradients

import fastdnn as fd

# ----------------------------------------------------------------------------- helpers
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix64(z):
    z = np.asarray(z, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def dropout_mask(model, layer, step, rows, n):
    """The mask of ``model``'s dropout layer ``layer`` in update number ``step`` (1-based):
    element ``e = i * n + j`` of the batch is dropped when 32 bits of
    ``h = mix64(layer_key + (e // 2) * golden)`` (the top half for an even ``e``, the bottom
    half for an odd one) fall below ``rate * 2**32``."""
    rate = model.layers[layer].rate
    with np.errstate(over="ignore"):
        step_hash = _mix64(np.array([step], np.uint64) * _GOLDEN)
        batch_key = _mix64(np.array([model._mask_key], np.uint64) ^ step_hash)
        layer_key = _mix64(batch_key + np.uint64(layer + 1) * _GOLDEN)
        elements = np.arange(rows * n, dtype=np.uint64)
        h = _mix64(layer_key + (elements // np.uint64(2)) * _GOLDEN)
    odd = (elements % np.uint64(2)).astype(bool)
    bits = np.where(odd, h & np.uint64(0xFFFFFFFF), h >> np.uint64(32))
    keep = bits >= np.uint64(int(rate * 4294967296.0))
    return (keep * (1.0 / (1.0 - rate))).reshape(rows, n)


def mixed_model(dtype="float64", seed=0, rate=0.3, head="softmax"):
    """Every layer kind, smooth activations (finite differences need no kinks)."""
    return fd.Sequential(
        [
            fd.Dense(4, 6),
            fd.BatchNorm(6, momentum=0.2, activation="tanh"),
            fd.Dropout(rate),
            fd.Dense(6, 5, activation="gelu"),
            fd.LayerNorm(5, activation="softplus"),
            fd.Dropout(rate),
            fd.Dense(5, 3, activation=head),
        ],
        dtype=dtype,
        seed=seed,
    )


def problem(loss="cross_entropy", n=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)) * 1.5 + 0.3
    if loss == "cross_entropy":
        return X, rng.integers(0, 3, n)
    if loss == "binary_cross_entropy":
        return X, (rng.random((n, 3)) < 0.5).astype(np.float64)
    return X, rng.standard_normal((n, 3))


HEADS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "linear"}


def randomise(model, seed=1):
    """Non-trivial gamma, beta and running statistics (the initial ones are 1, 0, 0, 1)."""
    rng = np.random.default_rng(seed)
    weights = []
    for layer, values in zip(model.layers, model.get_weights()):
        values = [v.copy() for v in values]
        if isinstance(layer, (fd.BatchNorm, fd.LayerNorm)):
            values[0] = rng.uniform(0.5, 1.5, values[0].shape)
            values[1] = rng.uniform(-0.5, 0.5, values[1].shape)
        if isinstance(layer, fd.BatchNorm):
            values[2] = rng.uniform(-0.5, 0.5, values[2].shape)
            values[3] = rng.uniform(0.5, 2.0, values[3].shape)
        weights.append(tuple(values))
    model.set_weights(weights)


def assert_gradients_match(analytic, numeric):
    scale = max(np.abs(n).max() for layer in numeric for n in layer)
    assert scale > 1e-3, "degenerate check: every gradient is (nearly) zero"
    assert [len(a) for a in analytic] == [len(n) for n in numeric]
    for layer, (a_layer, n_layer) in enumerate(zip(analytic, numeric)):
        for slot, (a, n) in enumerate(zip(a_layer, n_layer)):
            np.testing.assert_allclose(
                a, n, rtol=RTOL, atol=RTOL * scale, err_msg=f"layer {layer} slot {slot}"
            )


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("loss", sorted(HEADS))
def test_gradients_match_finite_differences(loss, training):
    model = mixed_model(head=HEADS[loss])
    randomise(model)
    model.compile(loss, fd.SGD(0.1), l1=1e-3, l2=1e-2)
    X, y = problem(loss)
    before = model.get_weights()
    loss_value, analytic = model.loss_and_gradients(X, y, training=training)
    assert_gradients_match(analytic, numeric_gradients(model, X, y, training))
    # Neither mode moves the running statistics, and the loss is reproducible.
    for a, b in zip(before, model.get_weights()):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    assert model.loss_and_gradients(X, y, training=training)[0] == loss_value


def test_training_and_inference_modes_differ_and_default_is_inference():
    model = mixed_model()
    randomise(model)
    model.compile("cross_entropy", fd.SGD(0.1))
    X, y = problem()
    inference = model.loss_and_gradients(X, y)[0]
    assert model.loss_and_gradients(X, y, training=False)[0] == inference
    assert model.evaluate(X, y)["loss"] == pytest.approx(inference, rel=1e-12)
    assert model.loss_and_gradients(X, y, training=True)[0] != pytest.approx(inference, rel=1e-3)
    np.testing.assert_array_equal(model.predict(X), model.predict(X))


def test_a_single_row_batch_trains():
    # One row: the batch variance is 0, the normalised value 0 (PyTorch raises instead).
    model = mixed_model()
    model.compile("cross_entropy", fd.SGD(0.1))
    X, y = problem(n=5)
    model.fit(X, y, epochs=1, batch_size=1, shuffle=False, verbose=0)
    assert all(np.isfinite(v).all() for vs in model.get_weights() for v in vs)


@pytest.mark.parametrize("clipnorm", [0.05, 1e3])
def test_clipnorm_scales_the_finite_difference_gradient(clipnorm):
    # One SGD step moves the parameters by -lr * g * min(1, clipnorm / ||g||), g the gradient
    # of the loss (here without penalty) in training mode with the first update's masks.
    model = mixed_model()
    randomise(model)
    model.compile("cross_entropy", fd.SGD(0.5), clipnorm=clipnorm)
    X, y = problem()
    numeric = numeric_gradients(model, X, y, training=True)
    norm = np.sqrt(sum((n**2).sum() for layer in numeric for n in layer))
    factor = min(1.0, clipnorm / norm)
    assert (factor < 0.5) == (clipnorm < 1)
    before = model.get_weights()
    model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, verbose=0)
    for layer, (old, new, grads) in enumerate(zip(before, model.get_weights(), numeric)):
        for slot, g in enumerate(grads):
            np.testing.assert_allclose(
                new[slot], old[slot] - 0.5 * factor * g, rtol=1e-6, atol=1e-8,
                err_msg=f"layer {layer} slot {slot}",
            )  # fmt: skip


# ----------------------------------------------------------------------------- dropout
def test_dropout_masks_follow_the_documented_hash_and_rate():
    rate = 0.25
    model = fd.Sequential([fd.Dense(3, 400), fd.Dropout(rate), fd.Dense(400, 1)], seed=3)
    model.compile("mse", fd.SGD(0.1))
    X = np.random.default_rng(0).standard_normal((50, 3))
    y = np.zeros((50, 1))
    # With the output weights 1 and bias 0, d loss / d A of the dropout layer is the mask
    # times a per-row factor; the first layer's db sums it over rows: recover the mask through
    # the gradient of a network whose hidden activations are all 1.
    W0, b0 = np.zeros((400, 3)), np.ones(400)
    model.set_weights([(W0, b0), (), (np.ones((1, 400)), np.zeros(1))])
    _, grads = model.loss_and_gradients(X, y, training=True)
    mask = dropout_mask(model, 1, 1, 50, 400)
    # d/dZ0 of mean((sum_j m_ij)^2) / rows: 2 * s_i * m_ij / rows with s_i = sum_j m_ij.
    s = mask.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(grads[0][1], (2 * s * mask / 50).sum(axis=0), rtol=1e-5)
    dropped = np.mean(mask == 0)
    assert abs(dropped - rate) < 0.01
    np.testing.assert_array_equal(np.unique(mask), [0.0, 1 / (1 - rate)])
    # Every update gets a new mask; the rows of one batch differ from each other.
    assert np.mean(mask != dropout_mask(model, 1, 2, 50, 400)) > 0.2
    assert np.mean(mask[0] != mask[1]) > 0.2
    # Inference: no dropout.
    np.testing.assert_allclose(model.predict(X), np.full((50, 1), 400.0))


def test_dropout_rate_zero_is_the_identity():
    X, y = problem()
    plain = fd.Sequential([fd.Dense(4, 5, "tanh"), fd.Dense(5, 3, "softmax")], "float64", 0)
    dropped = fd.Sequential(
        [fd.Dense(4, 5, "tanh"), fd.Dropout(0.0), fd.Dense(5, 3, "softmax")], "float64", 0
    )
    for m in (plain, dropped):
        m.compile("cross_entropy", fd.Adam(0.01))
        m.fit(X, y, epochs=3, batch_size=4, verbose=0)
    for (W, b), values in zip(plain.get_weights(), [v for v in dropped.get_weights() if v]):
        np.testing.assert_array_equal(W, values[0])
        np.testing.assert_array_equal(b, values[1])


# ----------------------------------------------------------------------------- PyTorch
ACTIVATIONS = {"linear": "Identity", "tanh": "Tanh", "softplus": "Softplus", "relu": "ReLU"}


class _Mask:
    """Multiplies by a mask set before each step (fastdnn's dropout, for the torch twin)."""

    def __init__(self, torch):
        class MaskModule(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.mask = None

            def forward(self, x):
                return x if self.mask is None or not self.training else x * self.mask

        self.module = MaskModule()


def torch_twin(torch, model):
    """A ``torch.nn.Sequential`` with ``model``'s weights; returns it and its mask modules."""
    modules, masks, params = [], {}, []
    weights = model.get_weights()
    for i, (layer, values) in enumerate(zip(model.layers, weights)):
        tensors = [torch.from_numpy(v.copy()) for v in values]
        if isinstance(layer, fd.Dense):
            m = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            names = ("weight", "bias")
        elif isinstance(layer, fd.BatchNorm):
            m = torch.nn.BatchNorm1d(
                layer.num_features, eps=layer.eps, momentum=layer.momentum, dtype=torch.float64
            )
            names = ("weight", "bias", "running_mean", "running_var")
        elif isinstance(layer, fd.LayerNorm):
            m = torch.nn.LayerNorm(layer.num_features, eps=layer.eps, dtype=torch.float64)
            names = ("weight", "bias")
        else:
            masks[i] = _Mask(torch).module
            modules.append(masks[i])
            continue
        with torch.no_grad():
            for name, tensor in zip(names, tensors):
                getattr(m, name).copy_(tensor)
        params.append([m.weight, m.bias])
        modules.append(m)
        if i < len(model.layers) - 1:
            if layer.activation == "gelu":
                modules.append(torch.nn.GELU(approximate="tanh"))
            else:
                modules.append(getattr(torch.nn, ACTIVATIONS[layer.activation])())
    return torch.nn.Sequential(*modules), masks, params


def set_masks(model, masks, step, rows):
    """Give the torch twin's mask modules fastdnn's masks of update number ``step``."""
    import torch

    for i, module in masks.items():
        mask = dropout_mask(model, i, step, rows, int(model._sizes[i]))
        module.mask = torch.from_numpy(mask)


def torch_loss(torch, loss, out, target):
    F = torch.nn.functional
    if loss == "cross_entropy":
        return F.cross_entropy(out, target)
    if loss == "binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(out, target)
    return F.mse_loss(out, target)


def _grads_of(layer_params):
    return [[p.grad.numpy() for p in ps] for ps in layer_params]


@pytest.mark.parametrize("loss", sorted(HEADS))
def test_outputs_loss_and_gradients_match_torch(loss):
    torch = pytest.importorskip("torch")
    model = mixed_model(head=HEADS[loss])
    randomise(model)
    model.compile(loss, fd.SGD(0.1))
    X, y = problem(loss)
    net, masks, layer_params = torch_twin(torch, model)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    # Inference: running statistics, no dropout.
    net.eval()
    with torch.no_grad():
        out = net(Xt)
    head = {"softmax": lambda z: torch.softmax(z, 1), "sigmoid": torch.sigmoid}
    expected = head.get(HEADS[loss], lambda z: z)(out).numpy()
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-10, atol=1e-12)
    # Training mode: batch statistics and the next update's masks.
    net.train()
    set_masks(model, masks, 1, len(X))
    t_loss = torch_loss(torch, loss, net(Xt), yt)
    t_loss.backward()
    fd_loss, grads = model.loss_and_gradients(X, y, training=True)
    assert fd_loss == pytest.approx(t_loss.item(), rel=1e-10)
    fd_grads = [list(g) for g in grads if g]
    for layer, (a, b) in enumerate(zip(fd_grads, _grads_of(layer_params))):
        for slot, (u, v) in enumerate(zip(a, b)):
            np.testing.assert_allclose(
                u, v, rtol=1e-9, atol=1e-12, err_msg=f"layer {layer} slot {slot}"
            )


@pytest.mark.parametrize("optimizer", ["sgd", "adamw_clipnorm"])
def test_fit_matches_torch_steps_with_running_statistics(optimizer):
    torch = pytest.importorskip("torch")
    model = mixed_model(rate=0.2)
    randomise(model)
    net, masks, layer_params = torch_twin(torch, model)
    flat = [p for ps in layer_params for p in ps]
    if optimizer == "sgd":
        t_opt, clipnorm = torch.optim.SGD(flat, lr=0.1, momentum=0.9), None
        model.compile("cross_entropy", fd.SGD(0.1, 0.9))
    else:
        t_opt, clipnorm = torch.optim.AdamW(flat, lr=0.01, weight_decay=0.1), 0.5
        model.compile("cross_entropy", fd.AdamW(0.01, weight_decay=0.1), clipnorm=clipnorm)
    X, y = problem(n=14)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    net.train()
    step, norms = 0, []
    for _ in range(2):
        for start in range(0, len(X), 5):  # batches of 5, 5, 4
            step += 1
            rows = min(5, len(X) - start)
            set_masks(model, masks, step, rows)
            t_opt.zero_grad()
            loss = torch_loss(
                torch, "cross_entropy", net(Xt[start : start + 5]), yt[start : start + 5]
            )
            loss.backward()
            if clipnorm is not None:
                norms.append(float(torch.nn.utils.clip_grad_norm_(flat, clipnorm)))
            t_opt.step()
    model.fit(X, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    if clipnorm is not None:
        assert max(norms) > clipnorm  # the clipping was exercised
    torch_values = []
    for module in net:
        if isinstance(module, torch.nn.Linear):
            torch_values.append([module.weight, module.bias])
        elif isinstance(module, torch.nn.BatchNorm1d):
            torch_values.append(
                [module.weight, module.bias, module.running_mean, module.running_var]
            )
        elif isinstance(module, torch.nn.LayerNorm):
            torch_values.append([module.weight, module.bias])
    fd_values = [v for v in model.get_weights() if v]
    for layer, (a, b) in enumerate(zip(fd_values, torch_values)):
        for slot, (u, v) in enumerate(zip(a, b)):
            np.testing.assert_allclose(
                u, v.detach().numpy(), rtol=1e-8, atol=1e-10, err_msg=f"layer {layer} slot {slot}"
            )


# ----------------------------------------------------------------------------- state
def _fit(model, X, y, epochs=2):
    model.fit(X, y, epochs=epochs, batch_size=4, verbose=0)
    return model.get_weights()


def _assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert len(u) == len(v)
        for p, q in zip(u, v):
            np.testing.assert_array_equal(p, q)


def test_same_seed_same_weights_bit_for_bit_and_seeds_differ():
    X, y = problem(n=12)
    runs = []
    for seed in (5, 5, 6):
        model = mixed_model(dtype="float32", seed=seed)
        model.compile("cross_entropy", fd.AdamW(1e-2), clipnorm=1.0)
        runs.append(_fit(model, X.astype(np.float32), y))
    _assert_same(runs[0], runs[1])
    assert not np.array_equal(runs[0][0][0], runs[2][0][0])


def test_save_load_keeps_everything_and_resumes_identically(tmp_path):
    X, y = problem(n=12)
    model = mixed_model()
    model.compile("cross_entropy", fd.Adam(1e-2), clipnorm=0.5)
    _fit(model, X, y)
    model.save(tmp_path / "m.npz")
    loaded = fd.load(tmp_path / "m.npz")
    assert [type(a) for a in loaded.layers] == [type(a) for a in model.layers]
    assert [repr(a) for a in loaded.layers] == [repr(a) for a in model.layers]
    assert loaded.clipnorm == 0.5
    _assert_same(loaded.get_weights(), model.get_weights())
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # Same optimizer state, step counter and dropout key: the next epochs agree bit for bit.
    _assert_same(_fit(loaded, X, y), _fit(model, X, y))


def test_load_refuses_a_negative_running_variance(tmp_path):
    # A file whose checksums match but whose statistics no BatchNorm can hold.
    from fastdnn import io

    model = mixed_model()
    meta, arrays = model._archive()
    arrays["running"] = -np.ones_like(arrays["running"])
    io.save_archive(tmp_path / "m.npz", "Sequential", meta, arrays)
    with pytest.raises(ValueError, match="layer 1's running_var must be >= 0"):
        fd.load(tmp_path / "m.npz")


def test_running_statistics_move_in_fit_only():
    X, y = problem(n=12)
    model = mixed_model()
    model.compile("cross_entropy", fd.SGD(0.1))
    before = model.get_weights()[1]
    np.testing.assert_array_equal(before[2], 0.0)
    np.testing.assert_array_equal(before[3], 1.0)
    model.predict(X)
    model.evaluate(X, y)
    model.loss_and_gradients(X, y, training=True)
    _assert_same([model.get_weights()[1]], [before])
    _fit(model, X, y, epochs=1)
    after = model.get_weights()[1]
    assert not np.allclose(after[2], 0.0) and not np.allclose(after[3], 1.0)


class _RaiseLearningRate(fd.Callback):
    """Small steps for ``good`` epochs, then huge ones; keeps the weights after each epoch."""

    def __init__(self, good):
        self.good, self.saved = good, []

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.lr = 1e-3 if epoch < self.good else 1e6

    def on_epoch_end(self, epoch, logs=None):
        self.saved.append(_snapshot(self.model))


def test_divergence_restores_running_statistics_too():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 5)) * 100, rng.normal(size=(40, 2))
    model = fd.Sequential(
        [fd.Dense(5, 8), fd.BatchNorm(8, activation="relu"), fd.Dropout(0.2), fd.Dense(8, 2)],
        dtype="float64", seed=0,
    )  # fmt: skip
    model.compile("mse", fd.SGD(1e-3, momentum=0.5))
    callback = _RaiseLearningRate(good=2)
    with pytest.raises(fd.TrainingDivergedError) as info:
        model.fit(X, Y, epochs=8, batch_size=8, verbose=0, callbacks=[callback])
    assert info.value.epoch > 2 and len(callback.saved) >= 2
    # The running statistics moved during the good epochs, and are those of the last one.
    assert not np.allclose(callback.saved[-1][1][2], 0.0)
    _assert_same(model.get_weights(), callback.saved[-1])


def test_set_weights_round_trip_and_dense_only_networks_keep_pairs():
    model = mixed_model()
    randomise(model)
    weights = model.get_weights()
    assert [len(w) for w in weights] == [2, 4, 0, 2, 2, 0, 2]
    other = mixed_model(seed=9)
    other.set_weights(weights)
    _assert_same(other.get_weights(), weights)
    dense = fd.Sequential([fd.Dense(3, 4), fd.Dense(4, 2)])
    assert all(isinstance(w, tuple) and len(w) == 2 for w in dense.get_weights())


# ----------------------------------------------------------------------------- bad input
def _layers(*middle, first=None):
    return [first or fd.Dense(4, 6), *middle, fd.Dense(6, 3, activation="softmax")]


BAD_LAYERS = [
    ("rate_one", lambda: fd.Dropout(1.0), ValueError, r"rate must be a number in \[0, 1\)"),
    ("rate_negative", lambda: fd.Dropout(-0.1), ValueError, "rate"),
    ("rate_nan", lambda: fd.Dropout(float("nan")), ValueError, "rate"),
    ("rate_string", lambda: fd.Dropout("0.5"), ValueError, "rate"),
    ("momentum_zero", lambda: fd.BatchNorm(6, momentum=0.0), ValueError, "momentum"),
    ("momentum_above_one", lambda: fd.BatchNorm(6, momentum=1.5), ValueError, "momentum"),
    ("eps_zero", lambda: fd.BatchNorm(6, eps=0.0), ValueError, "eps"),
    ("eps_inf", lambda: fd.LayerNorm(6, eps=float("inf")), ValueError, "eps"),
    ("size_zero", lambda: fd.BatchNorm(0), ValueError, "num_features"),
    ("softmax_norm", lambda: fd.LayerNorm(6, activation="softmax"), ValueError, "softmax"),
    ("bad_activation", lambda: fd.BatchNorm(6, activation="swish"), ValueError, "activation"),
    ("norm_first", lambda: fd.Sequential(_layers(first=fd.BatchNorm(4))), ValueError,
     "first layer must be Dense"),
    ("dropout_last", lambda: fd.Sequential([fd.Dense(4, 6), fd.Dropout(0.1)]), ValueError,
     "last layer must be Dense"),
    ("width_mismatch", lambda: fd.Sequential(_layers(fd.BatchNorm(5))), ValueError,
     "layer 1 expects 5 inputs but layer 0 gives 6 outputs"),
    ("softmax_hidden", lambda: fd.Sequential(
        [fd.Dense(4, 6, activation="softmax"), fd.LayerNorm(6), fd.Dense(6, 3)]), ValueError,
     "softmax is only allowed on the last layer"),
]  # fmt: skip


@pytest.mark.parametrize("make, error, match", [c[1:] for c in BAD_LAYERS],
                         ids=[c[0] for c in BAD_LAYERS])  # fmt: skip
def test_bad_layers_are_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make()


def _snapshot(model):
    return [[v.copy() for v in vs] for vs in model.get_weights()]


BAD_CALLS = [
    ("set_weights_short_bn", lambda m, w: m.set_weights([w[0], w[1][:2], *w[2:]]), ValueError,
     r"weights\[1\] must be a \(gamma, beta, running_mean, running_var\) tuple for BatchNorm"),
    ("set_weights_dropout_values", lambda m, w: m.set_weights([*w[:2], (np.ones(6),), *w[3:]]),
     ValueError, r"weights\[2\] must be an empty tuple for Dropout"),
    ("set_weights_negative_var", lambda m, w: m.set_weights(
        [w[0], (*w[1][:3], -np.ones(6)), *w[2:]]), ValueError, "running_var"),
    ("set_weights_nan_gamma", lambda m, w: m.set_weights(
        [w[0], (np.full(6, np.nan), *w[1][1:]), *w[2:]]), ValueError, "gamma"),
    ("set_weights_bad_shape", lambda m, w: m.set_weights([*w[:4], (np.ones(4), w[4][1]), *w[5:]]),
     ValueError, r"weights\[4\] gamma must have shape \(5,\)"),
    ("clipnorm_zero", lambda m, w: m.compile("cross_entropy", fd.SGD(0.1), clipnorm=0.0),
     ValueError, "clipnorm"),
    ("clipnorm_nan", lambda m, w: m.compile("cross_entropy", fd.SGD(0.1), clipnorm=float("nan")),
     ValueError, "clipnorm"),
    ("clipnorm_string", lambda m, w: m.compile("cross_entropy", fd.SGD(0.1), clipnorm="1"),
     (TypeError, ValueError), "clipnorm"),
    ("training_not_bool", lambda m, w: m.loss_and_gradients(*problem(), training="yes"),
     TypeError, "training must be True or False"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, match", [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])  # fmt: skip
def test_bad_calls_are_rejected_and_change_nothing(call, error, match):
    model = mixed_model()
    randomise(model)
    model.compile("cross_entropy", fd.SGD(0.1), clipnorm=2.0)
    weights = _snapshot(model)
    with pytest.raises(error, match=match):
        call(model, model.get_weights())
    _assert_same(model.get_weights(), weights)
    assert model.clipnorm == 2.0 and model.loss == "cross_entropy"


# ----------------------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def test_estimator_dropout_and_batch_norm_build_train_and_round_trip(digits, tmp_path):
    X, y = digits
    params = dict(hidden_layer_sizes=(24, 16), max_iter=15, random_state=0,
                  learning_rate_init=0.01)  # fmt: skip
    plain = fd.MLPClassifier(**params).fit(X, y)
    clf = fd.MLPClassifier(dropout=0.2, batch_norm=True, **params).fit(X, y)
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds == ["Dense", "BatchNorm", "Dropout"] * 2 + ["Dense"]
    assert [c.shape for c in clf.coefs_] == [c.shape for c in plain.coefs_]
    assert clf.model_.layers[1].activation == "relu" and clf.model_.layers[0].activation == "linear"
    assert clf.score(X, y) > 0.9
    assert not np.allclose(clf.model_.get_weights()[1][2], 0.0)  # running mean moved
    # Deterministic for a random_state, and predict is deterministic (inference mode).
    again = fd.MLPClassifier(dropout=0.2, batch_norm=True, **params).fit(X, y)
    np.testing.assert_array_equal(again.coefs_[0], clf.coefs_[0])
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))
    # Dropout alone, MLPRegressor too.
    reg = fd.MLPRegressor(hidden_layer_sizes=(8,), dropout=0.1, max_iter=5, random_state=0)
    reg.fit(X, X[:, :2])
    assert [type(layer).__name__ for layer in reg.model_.layers] == ["Dense", "Dropout", "Dense"]
    clf.save(tmp_path / "clf.npz")
    loaded = fd.load(tmp_path / "clf.npz")
    assert loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_estimator_early_stopping_restores_the_best_running_statistics(digits):
    X, y = digits
    clf = fd.MLPClassifier(hidden_layer_sizes=(16,), batch_norm=True, early_stopping=True,
                           max_iter=40, n_iter_no_change=3, random_state=0,
                           learning_rate_init=0.05)  # fmt: skip
    clf.fit(X, y)
    best = int(np.argmax(clf.validation_scores_))
    assert best < clf.n_iter_ - 1  # later epochs moved the statistics on; they were undone
    params, running = clf._best_params
    np.testing.assert_array_equal(clf.model_._params, params)
    np.testing.assert_array_equal(clf.model_._running, running)
    assert not np.allclose(running, np.r_[np.zeros(16), np.ones(16)])


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(dropout=1.0), r"'dropout' parameter of MLPClassifier must be a float in the range"),
        (dict(dropout=-0.1), "'dropout' parameter"),
        (dict(batch_norm="yes"), "'batch_norm' parameter of MLPClassifier must be an instance"),
        (dict(solver="lbfgs", dropout=0.1), "solver='lbfgs' needs a deterministic"),
        (dict(solver="lbfgs", batch_norm=True), "does not support dropout=0.0 or batch_norm=True"),
    ],
)
def test_estimator_bad_layer_parameters(digits, params, match):
    X, y = digits
    clf = fd.MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, **params)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "coefs_")
