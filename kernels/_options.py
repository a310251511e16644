"""Compilation options shared by every CPU kernel.

Kept in one place so that the fast-math policy cannot drift between kernels. The flag set leaves
out ``nnan`` and ``ninf``: with them LLVM may fold ``np.isnan`` to False, and fastdnn relies on
NaN/inf detection to stop diverging training.
"""

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
