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


class ModelFileError(ValueError):
    """A file is not a readable fastdnn model (foreign, truncated, corrupted or too new)."""


def register(kind, loader):
    """Make ``load`` build objects of ``kind`` with ``loader(meta, arrays)``."""
    _LOADERS[kind] = loader


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


def load(path):
    """Load a model saved with ``model.save(path)``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    object
        A ``Sequential`` (or other saved fastdnn object) that predicts identically and resumes
        training where it stopped (optimizer state and shuffling included).
    """
    kind, meta, arrays = read_archive(path)
    if kind not in _LOADERS:
        raise ModelFileError(f"{str(path)!r} holds an unknown kind of object {kind!r}")
    try:
        return _LOADERS[kind](meta, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{str(path)!r} has an invalid {kind} description: {exc}") from None
