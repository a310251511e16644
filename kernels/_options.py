"""Compilation options shared by every CPU kernel, and the :func:`kernel` and :func:`callee`
decorators.

Kept in one place so that the fast-math policy cannot drift between kernels. The flag set leaves
out ``nnan`` and ``ninf``: with them LLVM may fold ``np.isnan`` to False, and fastdnn relies on
NaN/inf detection to stop diverging training.
"""

import secrets

from numba import config, njit
from numba.core.bytecode import FunctionIdentity
from numba.core.registry import CPUDispatcher

from ._cache import KernelCache


class _RandomIds:
    """Endless random 63-bit function ids, in place of Numba's counter from 1."""

    def __iter__(self):
        return self

    def __next__(self):
        return secrets.randbits(63)


# Numba names a compiled function by its qualified name and a per-process counter (its "uid"),
# and a cached library carries its own copy of every callee under those names. Two processes
# that compiled different functions of one qualified name (the activation loops are closures
# of one factory) in different orders give the same name to different bodies; a third that
# loads both libraries runs one body in place of the other: seen here, an ELU pass that ran
# ReLU, and wrong trained weights (Numba issue 10486). Random ids keep every compiled body's
# name unique across processes.
FunctionIdentity._unique_ids = _RandomIds()

FASTMATH = {"contract", "arcp", "reassoc", "nsz", "afn"}

# ``error_model="numpy"`` lets division loops vectorise (no ZeroDivisionError checks);
# ``cache=True`` lets a new process load compiled kernels instead of compiling them again.
JIT_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": FASTMATH}
# For functions called only from other kernels (and ``@overload`` implementations): they are
# compiled into, and cached with, their callers, and LLVM inlines the small ones. Numba-level
# ``inline="always"`` re-types the callee at every call site: it made the activation kernels
# twice as slow to compile, so it is kept where a loop only vectorises once it sits in its
# caller: softplus and the GELU derivative (LLVM declines to inline them) and the optimizer
# updates (compiled apart, Adam's loop stayed scalar and ran 3.5x slower).
CALLEE_OPTIONS = {k: v for k, v in JIT_OPTIONS.items() if k != "cache"}
INLINE_OPTIONS = dict(CALLEE_OPTIONS, inline="always")
# Numba wraps every compiled function in a CPython entry point and a C callback, each lowered,
# optimised and turned into machine code of its own: dead code for a function only called from
# compiled code, and ~0.05 s of a cold compile each (a cold first fit of workload S compiles
# some 60 of them: 11.6 -> 9.6 s without). Without the CPython wrapper a call from Python
# crashes, so ``@overload`` implementations (never called from Python) take these options and
# njit callees go through :func:`callee`.
_NO_WRAPPERS = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}
OVERLOAD_OPTIONS = dict(CALLEE_OPTIONS, **_NO_WRAPPERS)


class CalleeDispatcher(CPUDispatcher):
    """An njit function compiled without wrappers for the kernels that call it; a call from
    Python (a test, a benchmark, the model layer) runs a twin compiled with them on first use
    (``njit(**CALLEE_OPTIONS)`` of the same function)."""

    _twin = None

    def __call__(self, *args, **kwargs):
        if self._twin is None:
            self._twin = njit(**CALLEE_OPTIONS)(self.py_func)
        return self._twin(*args, **kwargs)


def callee(function):
    """Decorate a kernel that other kernels call: ``njit(**CALLEE_OPTIONS)`` without Numba's
    Python and C wrappers, callable from Python all the same (see :class:`CalleeDispatcher`).

    ``signatures``, ``inspect_llvm`` and the other dispatcher attributes describe what compiled
    callers compiled; calls from Python compile and run the twin.
    """
    if config.DISABLE_JIT:
        return function
    options = dict(CALLEE_OPTIONS, nopython=True, **_NO_WRAPPERS)
    return CalleeDispatcher(function, locals={}, targetoptions=options)


class KernelDispatcher(CPUDispatcher):
    """An njit function cached by :class:`~fastdnn.kernels._cache.KernelCache`: Numba's cache,
    then the precompiled one shipped with the package."""

    def enable_caching(self):
        self._cache = KernelCache(self.py_func)


def kernel(function=None, **options):
    """Decorate a kernel called from Python: ``njit(**JIT_OPTIONS, **options)``, cached in
    Numba's cache and looked up in the precompiled cache (``kernels/_cache.py``) too.

    Use as ``@kernel`` or ``@kernel(inline="always")``.
    """
    if function is None:
        return lambda function: kernel(function, **options)
    if config.DISABLE_JIT:
        return function
    # Numba's ``njit(cache=True)`` takes ``cache`` apart and calls ``enable_caching``; so here.
    dispatcher = KernelDispatcher(
        function, locals={}, targetoptions=dict(CALLEE_OPTIONS, nopython=True, **options)
    )
    dispatcher.enable_caching()
    return dispatcher
