"""Numba kernels of fastdnn, installed as ``fastdnn.kernels``.

Numba's on-disk cache is keyed on each source file's own timestamp and size; it does not notice
an edit to a callee that lives in another file. So before any kernel is imported, each kernel
subpackage (``cpu``, ``cuda``, ...) drops its cached machine code whenever any of its sources, the
CPU sources (whose activation, loss and optimizer codes every target compiles in) or the shared
``_options.py`` differ from what the cache was built from.

Numba caches beside the sources, else in the user's cache folder; where neither is writable (a
read-only install in a container whose home is read-only too) it would refuse to compile a
cached kernel at all, so the cache then goes to a folder under the system's temporary folder.
"""

import hashlib
import os
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
_CACHE_SUFFIXES = (".nbi", ".nbc")


def _drop_stale_cache(package):
    digest = hashlib.sha256((_ROOT / "_options.py").read_bytes())
    # Every package compiles in the integer codes of the CPU modules, so they count too.
    sources = set(package.glob("*.py")) | set((_ROOT / "cpu").glob("*.py"))
    for source in sorted(sources):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    cache = package / "__pycache__"
    stamp = cache / "kernel-sources.sha256"
    current = digest.hexdigest()
    try:
        if stamp.exists() and stamp.read_text() == current:
            return
        for cached in cache.glob("*"):
            if cached.suffix in _CACHE_SUFFIXES:
                cached.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(current)
    except OSError:
        # A read-only install: Numba caches elsewhere, and the sources cannot change anyway.
        pass


def _writable(folder):
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def _ensure_writable_cache():
    from numba.core import config
    from numba.misc.appdirs import AppDirs

    if config.CACHE_DIR or _writable(_ROOT / "cpu" / "__pycache__"):
        return
    if _writable(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        return
    config.CACHE_DIR = os.path.join(tempfile.gettempdir(), f"fastdnn-numba-cache-{os.getuid()}")


for _package in sorted(p for p in _ROOT.iterdir() if (p / "__init__.py").exists()):
    _drop_stale_cache(_package)
_ensure_writable_cache()
