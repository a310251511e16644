"""Numba kernels of fastdnn, installed as ``fastdnn.kernels``.

Numba's on-disk cache is keyed on each source file's own timestamp and size; it does not notice
an edit to a callee that lives in another file. Before any kernel module is imported, the cached
machine code is dropped whenever any kernel source differs from the one it was built from.
"""

import hashlib
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
_CACHE_SUFFIXES = (".nbi", ".nbc")


def _drop_stale_cache():
    sources = sorted(_ROOT.rglob("*.py"))
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.relative_to(_ROOT).as_posix().encode())
        digest.update(source.read_bytes())
    stamp = _ROOT / "__pycache__" / "kernel-sources.sha256"
    current = digest.hexdigest()
    try:
        if stamp.exists() and stamp.read_text() == current:
            return
        for cached in _ROOT.rglob("__pycache__/*"):
            if cached.suffix in _CACHE_SUFFIXES:
                cached.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(current)
    except OSError:
        # A read-only install: Numba then caches elsewhere and the sources cannot change anyway.
        pass


_drop_stale_cache()
