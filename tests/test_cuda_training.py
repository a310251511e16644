"""``Sequential.fit`` with ``device="cuda"`` against the same fit on the CPU, epoch by epoch.

Each case builds one model twice from the same seed, once per device, fits both through the
public API and compares every ``W`` and ``b`` after every epoch (:func:`assert_weights_close`)
and the whole history. The cases combine the factors pairwise: several full batches and a
partial last batch, batch size 1, batches taller than one GEMM tile, shuffling on and off, every
optimizer with and without L1/L2 penalties, every loss and output, data resident on the device
and streamed batch by batch, sample weights, validation data and callbacks between epochs (one
that changes the weights and the learning rate, ``EarlyStopping``, ``StepDecay``) and a fit
resumed one epoch per call.

Issue 16 is why this module exists: under the CUDA simulator the engine kept configured launches
that were all one kernel object with the grid set last, so from an epoch's second batch on a
layer's GEMM ran with another layer's grid. The engine tests missed it with networks narrower
than one "tiny" GEMM tile (8 x 8), where every GEMM had a one-block grid. Every network here has
a layer wider than 8, so that GEMM grids differ between layers (see
:func:`test_networks_have_gemm_grids_that_differ_between_layers`).

The simulator runs about one training batch a second, so the data sets are tiny (3 to 12 rows)
and each case trains 4 to 6 batches. On a GPU the same tests run natively.
"""

from dataclasses import dataclass, field

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA tests need numba-cuda (fastdnn[cuda])")

import fastdnn as fd  # noqa: E402
from fastdnn.engines import cuda as cuda_engines  # noqa: E402
from fastdnn.engines.cuda import CudaEngine  # noqa: E402
from fastdnn.kernels.cuda import dense  # noqa: E402

N_IN, N_OUT = 5, 3

#: Weights may differ from the CPU's by this fraction of the largest CPU weight. The GEMMs sum
#: in another order than BLAS, so float32 results drift apart by a few ulps of the largest
#: terms per step: over these fits the measured drift stays below 1e-6 of the scale, while a
#: launch with a wrong grid (stale columns of a layer) moves weights by 1e-2 of it or more.
WEIGHT_RTOL = 1e-4
#: Per-epoch metrics (loss, accuracy, val_loss, ...): sums of float32 losses, in float64.
HISTORY_RTOL = 1e-5


def assert_weights_close(actual, expected, rtol=WEIGHT_RTOL, what="weights"):
    """Assert ``max |actual - expected| <= rtol * max |expected|`` over every ``W`` and ``b``.

    Parameters
    ----------
    actual, expected : list of (W, b)
        As ``Sequential.get_weights`` returns them; ``expected`` is the CPU's.
    rtol : float, default WEIGHT_RTOL
        Relative to the weights' scale (the largest CPU weight), not to each entry: an entry
        near zero carries the rounding of the large terms summed into it.
    what : str
        Named in the failure message.
    """
    assert len(actual) == len(expected)
    scale = max(float(np.abs(a).max()) for pair in expected for a in pair)
    worst = 0.0
    for layer, (got, want) in enumerate(zip(actual, expected)):
        for name, g, w in zip("Wb", got, want):
            assert g.shape == w.shape, f"{what}: layer {layer} {name} shape"
            worst = max(worst, float(np.abs(g - w).max()))
    assert worst <= rtol * scale, (
        f"{what}: max |cuda - cpu| = {worst:.3g} > {rtol:g} * max |cpu| = {rtol * scale:.3g}"
    )


def assert_history_close(actual, expected):
    """The same metrics for the same epochs, each within ``HISTORY_RTOL``."""
    assert actual.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=HISTORY_RTOL, err_msg=key)


# ----------------------------------------------------------------------------- callbacks
class _Recorder(fd.Callback):
    """Keeps the weights at the end of every epoch (after the callbacks listed before it)."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


class _Nudge(fd.Callback):
    """Changes the first layer's weights and halves the learning rate after every epoch, as a
    user's callback may: the device must train on from the changed weights at the new rate."""

    def on_epoch_end(self, epoch, logs=None):
        weights = self.model.get_weights()
        W, b = weights[0]
        weights[0] = (W * 0.5, b + 0.25)
        self.model.set_weights(weights)
        self.model.optimizer.lr *= 0.5


# ----------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One fit, run on both devices."""

    optimizer: object  # a callable returning a new optimizer (one per model: lr may change)
    loss: str = "cross_entropy"
    output: str = "softmax"
    hidden: tuple = (("tanh", 10),)  # (activation, width) of each hidden layer
    l1: float = 0.0
    l2: float = 0.0
    n: int = 10
    batch_size: int = 4
    shuffle: bool = True
    epochs: int = 2
    streamed: bool = False
    weighted: bool = False
    validation: bool = False
    callbacks: object = list  # a callable returning the callbacks of one fit
    one_fit_per_epoch: bool = False  # fit(epochs=1) again and again, without callbacks
    expected_epochs: int = None  # when a callback stops the fit early
    seed: int = 0

    sizes: tuple = field(init=False)

    def __post_init__(self):
        self.sizes = (N_IN, *(width for _, width in self.hidden), N_OUT)


CASES = [
    pytest.param(
        Case(lambda: fd.SGD(lr=0.2), n=12, weighted=True, validation=True),
        id="sgd-cross_entropy-3_full_batches-shuffled-resident-weighted-validation",
    ),
    pytest.param(
        Case(
            lambda: fd.SGD(lr=0.1, momentum=0.9),
            loss="binary_cross_entropy",
            output="sigmoid",
            hidden=(("elu", 10),),
            l2=1e-2,
            shuffle=False,
            streamed=True,
            validation=True,
        ),
        id="sgd_momentum-l2-binary_cross_entropy-partial_last_batch-in_order-streamed-validation",
    ),
    pytest.param(
        Case(
            lambda: fd.SGD(lr=0.05, momentum=0.9, nesterov=True),
            loss="mse",
            output="linear",
            hidden=(("gelu", 10),),
            l1=1e-3,
            n=3,
            batch_size=1,
            seed=1,
        ),
        id="sgd_nesterov-l1-mse_linear-batch_size_1-shuffled-resident",
    ),
    pytest.param(
        # 9 + 3 rows: a batch taller than one GEMM tile, then a shorter one. EarlyStopping with
        # an improvement it cannot see (min_delta) stops after epoch 2 of 3 and puts back
        # epoch 1's weights; StepDecay halves the rate every epoch.
        Case(
            lambda: fd.Adam(lr=0.01),
            hidden=(("leaky_relu", 10),),
            l1=1e-3,
            l2=1e-2,
            n=12,
            batch_size=9,
            streamed=True,
            validation=True,
            epochs=3,
            expected_epochs=2,
            callbacks=lambda: [
                fd.StepDecay(step_size=1, gamma=0.5),
                fd.EarlyStopping(patience=1, min_delta=10.0),
            ],
        ),
        id="adam-l1_l2-cross_entropy-batch_of_9_and_3-streamed-validation-stepdecay-earlystop",
    ),
    pytest.param(
        Case(
            lambda: fd.AdamW(lr=0.01, weight_decay=0.1),
            loss="mse",
            output="tanh",
            hidden=(("sigmoid", 10),),
            shuffle=False,
            weighted=True,
            callbacks=lambda: [_Nudge()],
            seed=2,
        ),
        id="adamw-mse_tanh-partial_last_batch-in_order-resident-weighted-callback_sets_weights",
    ),
    pytest.param(
        # 6 + 2 rows of 3 outputs: the elementwise loss kernel's grid has 2 blocks, then 1.
        Case(
            lambda: fd.RMSprop(lr=0.01),
            loss="binary_cross_entropy",
            output="sigmoid",
            hidden=(("softplus", 10),),
            n=8,
            batch_size=6,
            streamed=True,
            weighted=True,
            one_fit_per_epoch=True,
            seed=3,
        ),
        id="rmsprop-binary_cross_entropy-batch_of_6_and_2-shuffled-streamed-weighted-fit_per_epoch",
    ),
    pytest.param(
        # 5-4-12-3: the forward grids go 1, 2, 1 column tiles, and the wider hidden layer's
        # backward launch needs more blocks than the narrower one's, which runs after it.
        Case(
            lambda: fd.RMSprop(lr=0.01, momentum=0.5),
            hidden=(("tanh", 4), ("relu", 12)),
            l2=1e-2,
            n=8,
            shuffle=False,
            validation=True,
            seed=4,
        ),
        id="rmsprop_momentum-l2-cross_entropy-3_layers-2_full_batches-in_order-resident-validation",
    ),
]


def _data(case, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_IN))
    if case.loss == "cross_entropy":
        y = rng.integers(0, N_OUT, n)
    elif case.loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (n, N_OUT)).astype(float)
    else:  # mse: targets inside tanh's range
        y = rng.uniform(-0.8, 0.8, (n, N_OUT))
    weight = rng.random(n) + 0.5 if case.weighted else None
    return X, y, weight


def _model(case, device):
    layers, width = [], N_IN
    for activation, out in case.hidden:
        layers.append(fd.Dense(width, out, activation=activation))
        width = out
    layers.append(fd.Dense(width, N_OUT, activation=case.output))
    model = fd.Sequential(layers, seed=case.seed, device=device)
    model.compile(case.loss, case.optimizer(), l1=case.l1, l2=case.l2)
    return model


def _stream_from_the_host(model, monkeypatch):
    """Make every engine of ``model`` keep its data on the host (``max_resident_bytes=0``, the
    engine's own setting), so that each batch is gathered on the host and copied."""
    build = cuda_engines.new_engine

    def streaming_engine(of_model):
        engine = build(of_model)
        if of_model is model:
            engine.max_resident_bytes = 0
        return engine

    monkeypatch.setattr(cuda_engines, "new_engine", streaming_engine)


def _fit(case, device, monkeypatch):
    """Fit ``case`` on ``device``; returns (history, weights after each epoch, final model)."""
    model = _model(case, device)
    if device == "cuda" and case.streamed:
        _stream_from_the_host(model, monkeypatch)
    X, y, weight = _data(case, case.n, case.seed)
    kwargs = {"batch_size": case.batch_size, "shuffle": case.shuffle, "verbose": 0}
    if weight is not None:
        kwargs["sample_weight"] = weight
    if case.validation:
        X_val, y_val, w_val = _data(case, 6, case.seed + 100)  # 6 rows: one GEMM row tile
        kwargs["validation_data"] = (X_val, y_val) if w_val is None else (X_val, y_val, w_val)
    if case.one_fit_per_epoch:
        history, weights = {}, []
        for _ in range(case.epochs):
            for key, values in model.fit(X, y, epochs=1, **kwargs).history.items():
                history.setdefault(key, []).extend(values)
            weights.append(model.get_weights())
        return history, weights, model
    recorder = _Recorder()  # last, so that it sees what the other callbacks did
    fitted = model.fit(X, y, epochs=case.epochs, callbacks=[*case.callbacks(), recorder], **kwargs)
    return fitted.history, recorder.weights, model


@pytest.mark.parametrize("case", CASES)
def test_fit_on_cuda_matches_cpu_after_every_epoch(case, monkeypatch):
    cpu_history, cpu_weights, cpu = _fit(case, "cpu", monkeypatch)

    residency = []
    make_dataset = CudaEngine.dataset

    def recording_dataset(self, *args, **kwargs):
        data = make_dataset(self, *args, **kwargs)
        residency.append(data.resident)
        return data

    monkeypatch.setattr(CudaEngine, "dataset", recording_dataset)
    gpu_history, gpu_weights, gpu = _fit(case, "cuda", monkeypatch)

    # The fit ran as the case says: on the device, with its data where the case puts it.
    assert gpu.device == "cuda" and residency and set(residency) == {not case.streamed}
    epochs = case.expected_epochs or case.epochs
    assert len(cpu_weights) == len(gpu_weights) == len(cpu_history["loss"]) == epochs
    for epoch, (got, want) in enumerate(zip(gpu_weights, cpu_weights), start=1):
        assert_weights_close(got, want, what=f"weights after epoch {epoch}")
    assert_weights_close(gpu.get_weights(), cpu.get_weights(), what="weights after the fit")
    assert_history_close(gpu_history, cpu_history)
    if case.expected_epochs:  # EarlyStopping put back the first epoch's weights
        assert_weights_close(cpu.get_weights(), cpu_weights[0], rtol=0, what="restored")


def test_networks_have_gemm_grids_that_differ_between_layers():
    # What makes the cases above catch a launch with another layer's grid: in every network
    # the forward GEMMs of two layers need different grids under the simulator's tile.
    tile = dense.TILES["tiny"]
    for param in CASES:
        case = param.values[0]
        rows = min(case.batch_size, case.n)
        grids = {dense.grid(tile, rows, width) for width in case.sizes[1:]}
        assert len(grids) > 1, param.id
