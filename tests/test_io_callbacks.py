"""Save/load (format, atomicity, corruption) and the Keras-style callbacks."""

import os

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import io as fio


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)


def _model(optimizer=None, seed=1):
    model = fd.Sequential(
        [fd.Dense(5, 8, activation="tanh"), fd.Dense(8, 3, activation="softmax")], seed=seed
    )
    model.compile("cross_entropy", optimizer or fd.Adam(1e-2), l2=1e-3)
    return model


def _weights_equal(a, b):
    return all(np.array_equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


@pytest.mark.parametrize(
    "optimizer", [fd.Adam(1e-2), fd.SGD(0.1, momentum=0.9, nesterov=True), fd.RMSprop(1e-2)]
)
def test_save_load_resumes_exactly(tmp_path, optimizer):
    X, y = _data()
    straight = _model(optimizer)
    straight.fit(X, y, epochs=4, batch_size=16, verbose=0)
    first = _model(optimizer)
    first.fit(X, y, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "m.npz")
    resumed = fd.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(resumed.predict(X), first.predict(X))
    resumed.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert _weights_equal(resumed.get_weights(), straight.get_weights())


def test_uncompiled_model_round_trips(tmp_path):
    model = fd.Sequential([fd.Dense(3, 2, activation="sigmoid")], dtype="float64", seed=4)
    model.save(tmp_path / "m.npz")
    loaded = fd.load(tmp_path / "m.npz")
    assert loaded.loss is None and loaded.dtype == np.float64
    assert _weights_equal(loaded.get_weights(), model.get_weights())


def test_loss_weight_round_trips_and_defaults_to_one_for_older_files(tmp_path):
    X, y = _data(n=12)
    model = fd.Sequential([fd.Dense(5, 3, activation="softmax")], dtype="float64", seed=2)
    model.compile("cross_entropy", fd.SGD(0.1), l2=1e-2, loss_weight=0.25)
    model.save(tmp_path / "m.npz")
    loaded = fd.load(tmp_path / "m.npz")
    assert loaded.loss_weight == 0.25
    assert loaded.loss_and_gradients(X, y)[0] == model.loss_and_gradients(X, y)[0]
    # A file written before loss_weight existed has no such key: it trained with 1.0.
    meta, arrays = model._archive()
    del meta["compile"]["loss_weight"]
    fio.save_archive(tmp_path / "old.npz", "Sequential", meta, arrays)
    assert fd.load(tmp_path / "old.npz").loss_weight == 1.0


def _saved_bytes(tmp_path):
    model = _model()
    model.save(tmp_path / "good.npz")
    return (tmp_path / "good.npz").read_bytes()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "not a readable"),
        (lambda b: b[:100], "not a readable"),
        (lambda b: bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)), ""),
        (lambda b: b"", "not a readable"),
    ],
)
def test_damaged_files_are_rejected(tmp_path, damage, message):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(damage(_saved_bytes(tmp_path)))
    with pytest.raises(fd.ModelFileError, match=message):
        fd.load(bad)


def test_every_flipped_byte_is_detected_or_harmless(tmp_path):
    good = _saved_bytes(tmp_path)
    reference = fd.load(tmp_path / "good.npz").get_weights()
    rng = np.random.default_rng(1)
    for position in rng.choice(len(good), size=40, replace=False):
        damaged = bytearray(good)
        damaged[position] ^= 0xFF
        (tmp_path / "flip.npz").write_bytes(bytes(damaged))
        try:
            loaded = fd.load(tmp_path / "flip.npz")
        except fd.ModelFileError:
            continue
        # A flip in zip padding or metadata that no reader uses may load: then it must be intact.
        assert _weights_equal(loaded.get_weights(), reference)


def test_foreign_and_future_files_are_rejected(tmp_path):
    np.savez(tmp_path / "foreign.npz", a=np.arange(3))
    with pytest.raises(fd.ModelFileError, match="not a fastdnn model"):
        fd.load(tmp_path / "foreign.npz")
    fio.save_archive(tmp_path / "x.npz", "Sequential", {}, {"params": np.zeros(2)})
    with pytest.raises(fd.ModelFileError, match="invalid Sequential"):
        fd.load(tmp_path / "x.npz")
    fio.save_archive(tmp_path / "y.npz", "Unknown", {}, {})
    with pytest.raises(fd.ModelFileError, match="unknown kind"):
        fd.load(tmp_path / "y.npz")
    with pytest.raises(FileNotFoundError):
        fd.load(tmp_path / "missing.npz")


def test_future_version_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(fio, "FORMAT_VERSION", 99)
    _model().save(tmp_path / "new.npz")
    monkeypatch.setattr(fio, "FORMAT_VERSION", 1)
    with pytest.raises(fd.ModelFileError, match="version 99"):
        fd.load(tmp_path / "new.npz")


def test_pickled_object_arrays_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __fastdnn__=np.array("{}"), params=np.array([object()], dtype=object))
    with pytest.raises(fd.ModelFileError):
        fd.load(path)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = _model()
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_early_stopping_restores_best_weights():
    X, y = _data()
    model = _model(fd.SGD(5.0))  # a rate high enough that the loss bounces
    seen = {}

    class Record(fd.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = (logs["loss"], self.model.get_weights())

    stopper = fd.EarlyStopping(monitor="loss", patience=2)
    model.fit(X, y, epochs=40, verbose=0, callbacks=[Record(), stopper])
    assert stopper.stopped_epoch is not None and stopper.stopped_epoch < 39
    best = min(seen, key=lambda e: seen[e][0])
    assert stopper.best_epoch == best
    assert _weights_equal(model.get_weights(), seen[best][1])


def test_early_stopping_needs_the_metric():
    X, y = _data()
    with pytest.raises(ValueError, match="val_loss"):
        _model().fit(X, y, epochs=2, verbose=0, callbacks=[fd.EarlyStopping()])


def test_model_checkpoint_writes_loadable_files(tmp_path):
    X, y = _data()
    model = _model()
    pattern = str(tmp_path / "ck-{epoch:02d}.npz")
    model.fit(X, y, epochs=3, verbose=0, callbacks=[fd.ModelCheckpoint(pattern)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck-01.npz", "ck-02.npz", "ck-03.npz"]
    assert _weights_equal(fd.load(tmp_path / "ck-03.npz").get_weights(), model.get_weights())


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (fd.StepDecay(2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
        (fd.ExponentialDecay(0.5), [0.1, 0.05, 0.025, 0.0125, 0.00625]),
        (
            fd.CosineDecay(4),
            [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05, 0.1 * (1 - np.cos(np.pi / 4)) / 2],
        ),
    ],
)
def test_learning_rate_schedules(schedule, expected):
    X, y = _data()
    model = _model(fd.SGD(0.1))
    rates = []

    class Record(fd.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            rates.append(self.model.optimizer.lr)

    # Record runs after the schedule, so it sees the rate the epoch trains with.
    model.fit(X, y, epochs=len(expected), verbose=0, callbacks=[schedule, Record()])
    np.testing.assert_allclose(rates, expected, rtol=1e-12)


def test_keyboard_interrupt_leaves_a_consistent_model():
    X, y = _data()
    model = _model()
    reference = _model()
    reference.fit(X, y, epochs=2, batch_size=16, verbose=0)

    class Interrupt(fd.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=5, batch_size=16, verbose=0, callbacks=[Interrupt()])
    assert _weights_equal(model.get_weights(), reference.get_weights())
    model.fit(X, y, epochs=1, batch_size=16, verbose=0)  # still usable
    assert np.isfinite(model.predict(X)).all()


def test_plot_history_writes_png(tmp_path):
    X, y = _data()
    model = _model()
    history = model.fit(X, y, epochs=3, verbose=0, validation_data=(X, y))
    path = fd.plot_history(history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="history"):
        fd.plot_history({}, tmp_path / "empty.png")


def test_pca_and_autoencoder_round_trip(tmp_path):
    X, _ = _data(n=80)
    pca = fd.PCA(n_components=3, whiten=True).fit(X)
    pca.save(tmp_path / "pca.npz")
    loaded = fd.load(tmp_path / "pca.npz")
    assert type(loaded) is fd.PCA and loaded.get_params() == pca.get_params()
    np.testing.assert_array_equal(loaded.transform(X), pca.transform(X))
    np.testing.assert_array_equal(loaded.inverse_transform(pca.transform(X)),
                                  pca.inverse_transform(pca.transform(X)))  # fmt: skip

    straight = fd.Autoencoder([5, 4, 2], seed=0)
    straight.fit(X, epochs=4, batch_size=16, verbose=0)
    first = fd.Autoencoder([5, 4, 2], seed=0)
    first.fit(X, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "ae.npz")
    resumed = fd.load(tmp_path / "ae.npz")
    np.testing.assert_array_equal(resumed.transform(X), first.transform(X))
    resumed.fit(X, epochs=2, batch_size=16, verbose=0)
    assert _weights_equal(resumed.model.get_weights(), straight.model.get_weights())
