"""Run under ``mpiexec -n 2``: train on this rank's shard; rank 0 saves the final weights.

Usage: ``python train_shards.py OUT_DIR MODE`` with MODE ``train``, ``bad_input`` (rank 1 gets
NaN), ``crash`` (rank 1 raises in a callback during the second epoch), ``layer_norm`` (a
LayerNorm network with clipnorm, which global batches reproduce exactly) or ``batch_norm``
(BatchNorm and Dropout, per-rank statistics; every rank saves its weights).
"""

import sys

import numpy as np

import fastdnn as fd
from fastdnn.engines.mpi import communicator

PER_RANK_BATCH = 8


def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


def model(seed, mode="train"):
    if mode == "layer_norm":
        layers = [fd.Dense(6, 12), fd.LayerNorm(12, activation="tanh"), fd.Dense(12, 3, "softmax")]
    elif mode == "batch_norm":
        layers = [fd.Dense(6, 12), fd.BatchNorm(12, activation="relu"), fd.Dropout(0.3),
                  fd.Dense(12, 3, "softmax")]  # fmt: skip
    else:
        layers = [fd.Dense(6, 12, activation="tanh"), fd.Dense(12, 3, activation="softmax")]
    net = fd.Sequential(layers, seed=seed)
    clipnorm = 0.05 if mode == "layer_norm" else None
    net.compile("cross_entropy", fd.Adam(1e-2), l2=1e-3, clipnorm=clipnorm)
    return net


def main(out_dir, mode):
    comm = communicator()
    rank, size = comm.Get_rank(), comm.Get_size()
    X, y = data()
    X_shard, y_shard = X[rank::size].copy(), y[rank::size]
    if mode == "bad_input" and rank == 1:
        X_shard[0, 0] = np.nan

    class Crash(fd.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if rank == 1 and epoch == 1:
                raise RuntimeError("rank 1 crashed on purpose")

    net = model(seed=rank, mode=mode)  # different seeds: rank 0's weights must be broadcast
    history = net.fit(
        X_shard, y_shard, epochs=3, batch_size=PER_RANK_BATCH, shuffle=False, verbose=0,
        validation_data=(X_shard, y_shard), distributed=True,
        callbacks=[Crash()] if mode == "crash" else None,
    )  # fmt: skip
    if rank == 0 or mode == "batch_norm":
        weights = [array for pair in net.get_weights() for array in pair]
        name = f"weights_rank{rank}" if mode == "batch_norm" else "weights"
        np.savez(f"{out_dir}/{name}.npz", *weights, loss=history.history["loss"],
                 val_loss=history.history["val_loss"])  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
