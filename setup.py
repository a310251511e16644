"""Wheel tag: a wheel that ships precompiled kernels (``python -m fastdnn warmup --portable``,
``kernels/_cache.py``) holds machine code for one Python version and platform, so it is tagged
for them; without them the wheel is pure Python. Everything else is in ``pyproject.toml``."""

from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel


class Wheel(bdist_wheel):
    """``bdist_wheel``, platform-specific when the precompiled cache is present."""

    def finalize_options(self):
        super().finalize_options()
        if any(Path(__file__).parent.glob("kernels/_precompiled/*/manifest.json")):
            self.root_is_pure = False


setup(cmdclass={"bdist_wheel": Wheel})
