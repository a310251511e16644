"""Engines: where a ``Sequential`` trains and runs.

Each engine module has one interface, which ``fastdnn.network`` calls and nothing else:

- ``EpochRunner(model, X, Y, weight, batch_size, scratch)``: the epochs of one fit, with
  ``train(order, hyper)``, ``snapshot``/``restore``, ``params_finite``, ``penalty``,
  ``evaluate``, ``sync``/``reload`` (the model's arrays from/to where training runs),
  ``reduce`` and ``abort``;
- ``predict(model, X, batch_size, scratch)``, ``evaluate(model, X, Y, weight, batch_size,
  scratch)`` and ``gradients(model, X, Y, weight, grads, training, scratch)``.

Modules: :mod:`~fastdnn.engines.cpu` (the compiled CPU epoch), :mod:`~fastdnn.engines.cuda`
(the only ``numba.cuda`` import; loaded on first use, so ``import fastdnn`` needs no
numba-cuda) and :mod:`~fastdnn.engines.mpi` (data parallel over the CPU engine). No engine
imports ``fastdnn.network``.
"""

import importlib

import numpy as np

__all__ = ["Scratch", "engine_module"]


def engine_module(device):
    """The engine module of ``device`` ("cpu" or "cuda")."""
    return importlib.import_module(f"{__name__}.{device}")


class Scratch:
    """Named work buffers of one model, kept between calls.

    New memory costs a page fault at every first touch: 3-6 ms of an 80 ms ``predict`` of 16k
    rows, 4-7 ms of a one-epoch ``fit`` of the AE workload (workspace, gradient and the
    divergence snapshot). Each buffer grows to the largest request seen and is reused. A model
    keeps at most ``KEEP_BYTES`` of them between calls (:meth:`kept`): beyond that the page
    faults are small beside the work, and the memory matters more.
    """

    KEEP_BYTES = 128 * 2**20

    def __init__(self):
        self._arrays = {}
        self._engine_key = self._engine = None

    def kept(self):
        """This scratch if it holds at most ``KEEP_BYTES``, else None (let it be freed)."""
        held = sum(array.nbytes for array in self._arrays.values())
        return self if held <= self.KEEP_BYTES else None

    def cuda_engine(self, key, build):
        """The CUDA engine kept for ``key``, or a new one from ``build()`` (kept instead) when
        the key differs. Its device memory does not count towards ``KEEP_BYTES``."""
        if self._engine is None or self._engine_key != key:
            self._engine, self._engine_key = build(), key
        return self._engine

    def get(self, name, size, dtype):
        """A 1-D buffer of ``size`` elements of ``dtype`` named ``name`` (contents undefined)."""
        array = self._arrays.get(name)
        if array is None or array.size < size or array.dtype != dtype:
            array = self._arrays[name] = np.empty(size, dtype=dtype)
        return array[:size]
