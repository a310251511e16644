"""Saving and loading models: a versioned ``.npz`` archive that never executes code.

Format (``FORMAT_VERSION`` 1). An uncompressed NumPy ``.npz`` read with ``allow_pickle=False``:

- ``__fastdnn__``: a 0-d unicode array holding JSON: ``{"format": "fastdnn", "version": 1,
  "kind": <class name>, "meta": {...}, "checksums": {array name: sha256 hex}}``.
  ``meta`` is the class's own description (architecture, hyper-parameters, training state).
- every other entry: a numeric array named by the class (for ``Sequential``: ``params``, the flat
  parameter buffer; ``state``, the optimizer state; ``step``, the update count).

Writes are atomic: the archive goes to a temporary file beside the target, is flushed to disk,
then renamed over the target, so a crash mid-save leaves the previous file intact.
"""

import hashlib
import importlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "fastdnn"
FORMAT_VERSION = 1
_HEADER = "__fastdnn__"
_LOADERS = {}
# Modules that register loaders when imported; ``load`` imports them on demand because they pull
# in scikit-learn, which ``import fastdnn`` avoids.
_LAZY_PROVIDERS = ("fastdnn.decomposition", "fastdnn.estimators")


class ModelFileError(ValueError):
    """A file is not a readable fastdnn model (foreign, truncated, corrupted or too new)."""


def register(kind, loader, devices=("cpu", "cuda")):
    """Make ``load`` build objects of ``kind`` with ``loader(meta, arrays, device)``.

    ``devices`` are the ``device`` values ``load`` accepts for this kind; the loader receives
    one of them, or None for the device recorded in the file.
    """
    _LOADERS[kind] = (loader, tuple(devices))


def encode_value(value):
    """Make ``value`` JSON-safe while keeping tuples and non-string dict keys (decode with
    :func:`decode_value`). Raises ``TypeError`` for anything but plain data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return encode_value(value.item())
    if isinstance(value, tuple):
        return {"__tuple__": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    raise TypeError(f"cannot save a value of type {type(value).__name__}: {value!r}")


def decode_value(value):
    """Inverse of :func:`encode_value`."""
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(decode_value(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {decode_value(k): decode_value(v) for k, v in value["__dict__"]}
        raise ValueError(f"unexpected object in saved parameters: {value!r}")
    return value


def _checksum(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def save_archive(path, kind, meta, arrays):
    """Write ``meta`` (JSON-serialisable) and ``arrays`` (name to ndarray) atomically to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; ``.npz`` is conventional but not required (no suffix is appended).
    kind : str
        Registered class name used by :func:`load` to rebuild the object.
    meta : dict
        JSON-serialisable description.
    arrays : dict of str to ndarray
        Numeric arrays; names must not start with ``__``.
    """
    path = Path(path)
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "meta": meta,
        "checksums": {name: _checksum(array) for name, array in arrays.items()},
    }
    payload = {_HEADER: np.array(json.dumps(header))}
    payload.update(arrays)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_archive(path):
    """Read and verify an archive written by :func:`save_archive`.

    Returns
    -------
    kind : str
    meta : dict
    arrays : dict of str to ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        If the file is not a fastdnn archive, is truncated or corrupted (checksum mismatch), or
        was written by a newer format version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if _HEADER not in names:
                raise ModelFileError(f"{str(path)!r} is not a fastdnn model file (no header)")
            header = json.loads(str(archive[_HEADER][()]))
            arrays = {name: archive[name] for name in names - {_HEADER}}
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFileError(
            f"{str(path)!r} is not a readable fastdnn model file (truncated or corrupted?): {exc}"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a fastdnn model file")
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ModelFileError(
            f"{str(path)!r} has format version {version!r}; this fastdnn reads versions "
            f"1..{FORMAT_VERSION} (upgrade fastdnn to read newer files)"
        )
    checksums = header.get("checksums", {})
    if set(checksums) != set(arrays):
        raise ModelFileError(f"{str(path)!r} is corrupted: its arrays do not match its header")
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf" or _checksum(array) != checksums[name]:
            raise ModelFileError(f"{str(path)!r} is corrupted: checksum mismatch in {name!r}")
    return header.get("kind"), header.get("meta"), arrays


def load(path, device=None):
    """Load a model saved with ``model.save(path)``.

    Parameters
    ----------
    path : str or os.PathLike
    device : {"cpu", "cuda"} or None, default None
        Where to place the loaded model: None keeps the device it was saved from; ``"cpu"``
        loads a GPU-trained model on a machine without a GPU (like ``map_location`` in
        ``torch.load``). PCA is computed on the CPU only.

    Returns
    -------
    object
        A ``Sequential`` (or other saved fastdnn object) that predicts identically and resumes
        training where it stopped (optimizer state and shuffling included).

    Raises
    ------
    ModelFileError
        The file is not a readable fastdnn model.
    ValueError
        ``device`` is not one this kind of model can use.
    RuntimeError
        The model needs ``device="cuda"`` and CUDA is not usable here.
    """
    if device is not None and device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; expected one of ['cpu', 'cuda'] or None")
    kind, meta, arrays = read_archive(path)
    if kind not in _LOADERS:
        for module in _LAZY_PROVIDERS:
            importlib.import_module(module)
    if kind not in _LOADERS:
        raise ModelFileError(f"{str(path)!r} holds an unknown kind of object {kind!r}")
    loader, devices = _LOADERS[kind]
    if device is not None and device not in devices:
        raise ValueError(f"a {kind} cannot be loaded on device={device!r}; it runs on {devices}")
    try:
        return loader(meta, arrays, device)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{str(path)!r} has an invalid {kind} description: {exc}") from None
    except RuntimeError as exc:
        # Only a model that needs CUDA where CUDA is unusable gets the hint; other errors pass.
        from .engines.cuda import cuda_problem

        if device is not None or cuda_problem() is None:
            raise
        raise RuntimeError(
            f"{exc} (the file was saved from a CUDA device; load it on the CPU with "
            "fastdnn.load(path, device='cpu'))"
        ) from None
