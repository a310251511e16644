"""Synchronous data-parallel training over MPI (optional extra ``fastdnn[mpi]``).

Every rank runs the same script and calls ``model.fit(X_shard, y_shard, batch_size=per_rank,
distributed=True)``. At the start of the fit rank 0's parameters, optimizer state and step count
are broadcast. Each step, every rank computes the gradient of its own batch into one buffer
that also carries the batch's loss sum, weight sum and correct count; one ``Allreduce`` adds
them up; every rank divides by the global weight sum (so the update is the gradient of the mean
loss over the global batch, the concatenation of every rank's batch) and applies the same
fused optimizer kernel (after clipping the reduced gradient's norm, with ``clipnorm``). Ranks
with fewer batches contribute zero weight to the last steps.

Batch normalisation uses each rank's own batch statistics (as PyTorch's DistributedDataParallel
without ``SyncBatchNorm``); after every epoch rank 0's running statistics are broadcast, so that
every rank holds the same model. Dropout masks differ between ranks (each rank's key is the
model's key moved by its rank; rank 0 draws the masks a single process would).

A single process needs no MPI: without ``mpi4py``, or with one rank, ``distributed=True`` is
ordinary training. A rank that fails during training aborts every rank (``MPI.Abort``), so that
none waits forever in a collective; bad input is agreed on first, so every rank raises it.
"""

import sys
import time

import numpy as np

from ..kernels.cpu import layers as _layer_kernels
from ..kernels.cpu import network as _net
from ..kernels.cpu import optimizers as _opt_kernels
from ..kernels.cpu.losses import LOSS_CODES
from .cpu import EpochRunner, features

# Moves each rank's dropout key away from the others' (the 64-bit golden ratio).
_RANK_STRIDE = 0x9E3779B97F4A7C15


def communicator():
    """``MPI.COMM_WORLD`` when running under MPI with more than one rank, else ``None``."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def agree(comm, error):
    """Collective check before training: raise on every rank if any rank failed validation.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    error : Exception or None
        This rank's validation error, if any.
    """
    errors = comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
    failed = [(rank, text) for rank, text in enumerate(errors) if text is not None]
    if error is not None:
        raise error
    if failed:
        rank, text = failed[0]
        raise RuntimeError(f"rank {rank} rejected its input, so every rank stops: {text}")


class DistributedEpochRunner(EpochRunner):
    """An epoch runner whose every step all-reduces the gradient over ``comm``.

    Attributes
    ----------
    comm_seconds : float
        Time spent in ``Allreduce`` during the last epoch (the communication share).
    """

    def __init__(self, model, X, Y, weight, batch_size, comm):
        from mpi4py import MPI

        super().__init__(model, X, Y, weight, batch_size)
        self.comm, self._mpi, self.rank = comm, MPI, comm.Get_rank()
        n_params = model._params.size
        # Gradient, then loss sum, weight sum and correct count of this rank's batch.
        self.buffer = np.zeros(n_params + 3, dtype=model.dtype)
        self.grads = self.buffer[:n_params]
        self.width = 1 if model.loss == "cross_entropy" else model.n_outputs
        self.n_batches = comm.allreduce(self.n_batches, op=MPI.MAX)
        self.comm_seconds = 0.0
        # the optimizer step runs here, between the ranks' Allreduce and the next batch
        self.fb_features = features(model, loss=True)
        comm.Bcast(model._params, root=0)
        comm.Bcast(model._running, root=0)
        self.rank_key = np.uint64((int(model._mask_key) + self.rank * _RANK_STRIDE) % 2**64)
        comm.Bcast(model._state, root=0)
        comm.Bcast(model._step, root=0)

    def reduce(self, values):
        totals = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self._mpi.IN_PLACE, totals, op=self._mpi.SUM)
        return totals.tolist()

    def abort(self, error):
        """Stop every rank: the others would otherwise wait forever in the next collective."""
        print(
            f"fastdnn: rank {self.rank} failed during distributed training ({error!r}); "
            "aborting every rank",
            file=sys.stderr,
            flush=True,
        )
        self.comm.Abort(1)

    def train(self, order, hyper):
        m = self.model
        n_local, n_params = order.size, m._params.size
        stats = self.buffer[n_params:]
        loss_total, correct_total = 0.0, 0.0
        self.comm_seconds = 0.0
        for batch in range(self.n_batches):
            start = batch * self.batch_size
            rows = min(self.batch_size, n_local - start)
            if rows > 0:
                Xb, Yb, Wb = _net.gather_batch(
                    self.X, self.Y, self.weight, order, start, rows, self.Xbuf, self.Ybuf,
                    self.Wbuf,
                )  # fmt: skip
                key = np.uint64(_layer_kernels.batch_mask_key(self.rank_key, m._step[0] + 1))
                loss, correct = _net.forward_backward(
                    self.fb_features, Xb, Yb, Wb, m._net, LOSS_CODES[m.loss], self.loss_weight,
                    m._params, self.grads, m._running, self.moments, True, True, key, self.ws_off,
                    self.Zbuf, self.Abuf, self.Dbuf, self.Tbuf,
                )  # fmt: skip
                batch_weight = float(Wb.sum()) * self.width
                # forward_backward divided by this rank's weight: undo it for the global mean.
                self.grads *= m.dtype.type(batch_weight)
                stats[:] = (loss, batch_weight, correct)
            else:
                self.buffer[:] = 0
            began = time.perf_counter()
            self.comm.Allreduce(self._mpi.IN_PLACE, self.buffer, op=self._mpi.SUM)
            self.comm_seconds += time.perf_counter() - began
            loss, batch_weight, correct = (float(v) for v in stats)
            if not np.isfinite(loss):
                return loss_total, correct_total, batch
            if batch_weight > 0:
                self.grads *= m.dtype.type(1.0 / batch_weight)
            if self.clipnorm > 0:
                _opt_kernels.clip_by_global_norm(self.grads, self.clipnorm)
            m._step[0] += 1
            _opt_kernels.optimizer_step(
                m.optimizer.code, m._params, self.grads, m._state, hyper, m._step[0],
                m._n_weights, self.l1, self.l2,
            )  # fmt: skip
            loss_total += loss
            correct_total += correct
        if m._running.size:
            self.comm.Bcast(m._running, root=0)
        return loss_total, correct_total, -1
