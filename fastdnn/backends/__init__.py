"""Compute backends other than the default compiled CPU path.

- :mod:`fastdnn.backends.cuda`: NVIDIA GPUs through numba-cuda (``device="cuda"``).

Backends are imported lazily, so ``import fastdnn`` works without their optional dependencies.
"""
