"""Data-parallel training over MPI against single-process training on the same global batches."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "mpi"))
import train_shards  # noqa: E402

SCRIPT = Path(__file__).parent / "mpi" / "train_shards.py"


def _mpiexec(tmp_path, mode, timeout=120):
    pytest.importorskip("mpi4py")
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not found (pip install 'fastdnn[mpi]')")
    return subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, str(SCRIPT), str(tmp_path), mode],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["train", "layer_norm"])
def test_two_ranks_match_one_process_on_the_same_global_batches(tmp_path, mode):
    # layer_norm: per-row normalisation and clipnorm of the summed gradient, as one process.
    result = _mpiexec(tmp_path, mode)
    assert result.returncode == 0, result.stderr
    saved = np.load(tmp_path / "weights.npz")

    X, y = train_shards.data()
    shards = [(X[r::2], y[r::2]) for r in range(2)]
    b = train_shards.PER_RANK_BATCH
    # Global batch k is rank 0's batch k followed by rank 1's batch k.
    blocks = [(s[0][k : k + b], s[1][k : k + b]) for k in range(0, 50, b) for s in shards]
    X_global = np.concatenate([blk[0] for blk in blocks])
    y_global = np.concatenate([blk[1] for blk in blocks])
    single = train_shards.model(seed=0, mode=mode)
    history = single.fit(
        X_global, y_global, epochs=3, batch_size=2 * b, shuffle=False, verbose=0,
        validation_data=(X_global, y_global),
    )  # fmt: skip
    expected = [array for pair in single.get_weights() for array in pair]
    for i, array in enumerate(expected):
        np.testing.assert_allclose(saved[f"arr_{i}"], array, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(saved["loss"], history.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(saved["val_loss"], history.history["val_loss"], rtol=1e-5)


def test_batch_norm_and_dropout_train_alike_on_every_rank(tmp_path):
    # Per-rank batch statistics and dropout masks (as DDP without SyncBatchNorm), one summed
    # gradient: every rank holds the same parameters, and rank 0's running statistics.
    result = _mpiexec(tmp_path, "batch_norm")
    assert result.returncode == 0, result.stderr
    ranks = [np.load(tmp_path / f"weights_rank{r}.npz") for r in range(2)]
    names = [f"arr_{i}" for i in range(len(ranks[0].files) - 2)]
    assert len(names) == 2 + 4 + 2
    for name in names:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name])
    running_mean, running_var = ranks[0]["arr_4"], ranks[0]["arr_5"]
    assert not np.allclose(running_mean, 0) and not np.allclose(running_var, 1)
    assert np.isfinite(ranks[0]["loss"]).all() and ranks[0]["loss"][-1] < ranks[0]["loss"][0]
    np.testing.assert_array_equal(ranks[0]["val_loss"], ranks[1]["val_loss"])


def test_bad_input_on_one_rank_stops_every_rank(tmp_path):
    result = _mpiexec(tmp_path, "bad_input")
    assert result.returncode != 0
    assert "X contains NaN" in result.stderr
    assert "rank 1 rejected its input" in result.stderr


def test_a_crashing_rank_aborts_every_rank_instead_of_hanging(tmp_path):
    result = _mpiexec(tmp_path, "crash")
    assert result.returncode != 0
    assert "rank 1 failed during distributed training" in result.stderr
    assert not (tmp_path / "weights.npz").exists()


def test_distributed_without_mpi_is_single_process():
    X, y = train_shards.data()
    a, b = train_shards.model(seed=0), train_shards.model(seed=0)
    a.fit(X, y, epochs=2, batch_size=8, verbose=0, distributed=True)
    b.fit(X, y, epochs=2, batch_size=8, verbose=0)
    for (wa, ba), (wb, bb) in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
