"""Shared test set-up.

Without a GPU the CUDA kernels run under Numba's CUDA simulator, which must be enabled before
Numba is first imported; on a machine with an NVIDIA driver the same tests run natively.
"""

import os
import shutil

if not (shutil.which("nvidia-smi") or os.path.exists("/dev/nvidia0")):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
