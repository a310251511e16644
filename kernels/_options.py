"""Compilation options shared by every CPU kernel.

Kept in one place so that the fast-math policy cannot drift between kernels. The flag set leaves
out ``nnan`` and ``ninf``: with them LLVM may fold ``np.isnan`` to False, and fastdnn relies on
NaN/inf detection to stop diverging training.
"""

FASTMATH = {"contract", "arcp", "reassoc", "nsz", "afn"}

# ``error_model="numpy"`` lets division loops vectorise (no ZeroDivisionError checks);
# ``cache=True`` lets a new process load compiled kernels instead of compiling them again.
JIT_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": FASTMATH}
INLINE_OPTIONS = dict(JIT_OPTIONS, inline="always")
