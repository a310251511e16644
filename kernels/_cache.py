"""Precompiled kernels shipped with the package: a Numba cache that serves any CPU of a level.

Numba keys its on-disk cache on the host CPU (LLVM's CPU name and feature string) and on the
source files' modification times, so a cache never moves to another machine, nor survives a
reinstall: a new machine compiles every kernel it calls (a first fit: 10-20 s). fastdnn's
cached kernels (:func:`~fastdnn.kernels._options.kernel`) therefore use :class:`KernelCache`,
which looks in two places:

1. Numba's own cache, as every ``cache=True`` function (compiled for this host);
2. when that misses, the *precompiled* cache: kernels compiled for an x86-64 micro-architecture
   level (``x86-64-v3``: AVX2 and FMA; ``x86-64-v4``: AVX-512) rather than for one CPU, keyed
   on the sources' contents rather than their times. Any CPU with the level's instructions runs
   them; the highest level present that the host supports is used.

``python -m fastdnn warmup --portable`` builds the precompiled cache (the generic drivers for
every level given) into ``_precompiled/`` beside this module, or the folder that
``FASTDNN_PRECOMPILED`` names; a wheel built after it ships the cache. Each level's folder holds
a ``manifest.json`` with the Python, Numba and llvmlite versions it was compiled by and a hash
of the kernel sources; a level whose manifest does not match the running ones is not used.
``FASTDNN_PRECOMPILED=off`` turns the precompiled cache off; a process that sets
``NUMBA_CPU_NAME`` itself (its own portable cache) never uses it.

While building, the environment sets ``FASTDNN_PRECOMPILE_LEVEL`` and Numba's
``NUMBA_CPU_NAME`` to the level, and ``NUMBA_CPU_FEATURES`` to the empty string (the level's
own instructions only): compiled kernels are then saved into the level's folder instead of
Numba's cache.
"""

import functools
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm
import numba
from numba.core import config
from numba.core.caching import FunctionCache, IndexDataCacheFile

DEFAULT_ROOT = Path(__file__).resolve().parent / "_precompiled"
# The instructions each level adds to the one before (the x86-64 psABI levels, in LLVM's
# feature names); a level is usable when the host has all of its own and the lower levels'.
LEVELS = {
    "x86-64-v2": ("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3"),
    "x86-64-v3": ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"),
    "x86-64-v4": ("avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"),
}
MANIFEST = "manifest.json"


def root():
    """The folder of the precompiled cache, or None when ``FASTDNN_PRECOMPILED=off``."""
    value = os.environ.get("FASTDNN_PRECOMPILED")
    if value == "off":
        return None
    return Path(value) if value else DEFAULT_ROOT


def building_level():
    """The level being built (``FASTDNN_PRECOMPILE_LEVEL``), or None in a normal process."""
    return os.environ.get("FASTDNN_PRECOMPILE_LEVEL") or None


@functools.cache
def _kernel_sources():
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def versions():
    """What a precompiled cache must have been compiled by to be loaded here: the Python, Numba
    and llvmlite versions, the target triple and a hash of the kernel sources (a kernel edited
    since the build turns the whole level off, rather than leave the process to compile the
    generic drivers in place of its own specialised ones)."""
    return {
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "machine": llvm.get_process_triple(),
        "kernels": _kernel_sources(),
    }


def host_supports(level):
    """Whether this CPU has every instruction of ``level`` (one of :data:`LEVELS`)."""
    if level not in LEVELS:
        return False
    host = {name for name, present in llvm.get_host_cpu_features().items() if present}
    for name, needed in LEVELS.items():
        if not host.issuperset(needed):
            return False
        if name == level:
            return True
    return False


def is_current(folder, level):
    """Whether ``level``'s folder under ``folder`` holds a complete build by the running
    versions (its manifest, written last, equals :func:`versions`)."""
    try:
        return json.loads((Path(folder) / level / MANIFEST).read_text()) == versions()
    except (OSError, ValueError):
        return False


@functools.cache
def _usable_level(folder):
    if folder is None or os.environ.get("NUMBA_CPU_NAME"):
        return None
    for level in reversed(LEVELS):
        if is_current(folder, level) and host_supports(level):
            return level
    return None


def usable_level():
    """The highest precompiled level this process loads kernels from, or None."""
    if building_level():
        return None
    return _usable_level(root())


def write_manifest(level, folder=None):
    """Record the running versions in ``level``'s folder of the precompiled cache."""
    path = (folder or root()) / level / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(versions(), indent=1) + "\n")


@functools.cache
def _content_stamp(path):
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


class KernelCache(FunctionCache):
    """Numba's cache for this host, then the precompiled cache of :func:`usable_level` (see the
    module docstring); while building a level, the level's folder only."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._level = building_level() or usable_level()
        if building_level() and (config.CPU_NAME, config.CPU_FEATURES) != (self._level, ""):
            raise RuntimeError(
                f"FASTDNN_PRECOMPILE_LEVEL={self._level} needs NUMBA_CPU_NAME={self._level} and "
                "NUMBA_CPU_FEATURES='' (set before Numba is imported)"
            )
        self._precompiled = None
        if self._level is not None:
            source = self._impl.locator._py_file
            self._precompiled = IndexDataCacheFile(
                cache_path=str(root() / self._level / py_func.__module__),
                filename_base=self._impl.filename_base,
                source_stamp=_content_stamp(source),
            )

    def _precompiled_key(self, sig, codegen):
        triple = codegen.magic_tuple()[0]
        key = self._index_key(sig, codegen)
        return (key[0], (triple, self._level, ""), key[2])

    def _load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        data = None
        if not building_level():
            data = super()._load_overload(sig, target_context)
        if data is None and self._precompiled is not None:
            key = self._precompiled_key(sig, target_context.codegen())
            try:
                payload = self._precompiled.load(key)
                if payload is not None:
                    data = self._impl.rebuild(target_context, payload)
            except Exception as error:  # a damaged file must cost a compile, not the call
                warnings.warn(
                    f"fastdnn: ignoring a damaged precompiled kernel in "
                    f"{self._precompiled._cache_path} ({type(error).__name__}: {error}); "
                    "compiling it instead",
                    RuntimeWarning,
                    stacklevel=2,
                )
                data = None
        return data

    def _save_overload(self, sig, data):
        if not building_level():
            return super()._save_overload(sig, data)
        if not self._enabled or not self._impl.check_cachable(data):
            return None
        Path(self._precompiled._cache_path).mkdir(parents=True, exist_ok=True)
        self._precompiled.save(self._precompiled_key(sig, data.codegen), self._impl.reduce(data))
        return None
