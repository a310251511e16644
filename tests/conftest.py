"""Shared test set-up.

Without a GPU the CUDA kernels run under Numba's CUDA simulator, which must be enabled before
Numba is first imported; on a machine with an NVIDIA driver the same tests run natively.

The suite trains hundreds of different networks: compiled per feature set (the default, see
``kernels/cpu/features.py``) it spent most of an hour compiling, so it runs the generic drivers
(``FASTDNN_SPECIALIZE=0``, compiled once per dtype and input format), as a process training many
networks should. ``tests/test_features.py`` checks that the specialised drivers a user's single
fit compiles train bit-identically to them and leave the unused kernels out.
"""

import os
import shutil

os.environ.setdefault("FASTDNN_SPECIALIZE", "0")
# A precompiled cache built in this checkout (``python -m fastdnn warmup --portable``) would
# serve the suite's kernels and change what its compile-counting tests see; the tests of that
# cache (``tests/test_precompiled.py``) turn it on where they need it.
os.environ.setdefault("FASTDNN_PRECOMPILED", "off")

if not (shutil.which("nvidia-smi") or os.path.exists("/dev/nvidia0")):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
