"""The precompiled cache (``kernels/_cache.py``): kernels compiled for an x86-64 level in one
process load, without compiling, in a process of another Numba cache, whatever the sources'
modification times; changed sources, other versions or ``FASTDNN_PRECOMPILED=off`` compile."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from fastdnn.kernels import _cache
from fastdnn.kernels.cpu import features

LEVEL = "x86-64-v3"
pytestmark = pytest.mark.skipif(
    not _cache.host_supports(LEVEL), reason=f"this CPU cannot run {LEVEL} code"
)

MODULE = textwrap.dedent("""
    from fastdnn.kernels._options import kernel

    @kernel
    def scaled_sum(x, factor):
        total = 0.0
        for value in x:
            total += value * factor
        return total
""")


def _run(tmp_path, code, **env):
    """Run ``code`` with ``tmp_path`` importable, its precompiled cache and a Numba cache of
    its own, plus ``env``; returns the JSON of its last line."""
    environment = dict(os.environ, PYTHONPATH=str(tmp_path))
    environment["FASTDNN_PRECOMPILED"] = str(tmp_path / "pre")
    environment["NUMBA_CACHE_DIR"] = str(tmp_path / "numba")
    for name in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "FASTDNN_PRECOMPILE_LEVEL"):
        environment.pop(name, None)
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", code], env=environment, cwd=tmp_path,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


CALL = textwrap.dedent("""
    import json
    import numpy as np
    from numba.core import event
    from fastdnn.kernels import _cache
    import tiny_precompiled

    class Count(event.Listener):
        compiled = 0
        def on_start(self, ev):
            Count.compiled += 1
        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", Count()):
        value = tiny_precompiled.scaled_sum(np.arange(4.0), 2.0)
    print(json.dumps({"value": value, "compiled": Count.compiled,
                      "level": _cache.usable_level()}))
""")

BUILD = CALL + f"\n_cache.write_manifest({LEVEL!r})\n"


@pytest.fixture
def built(tmp_path):
    """A tiny kernel module, built into a precompiled cache of :data:`LEVEL` under
    ``tmp_path / "pre"``."""
    (tmp_path / "tiny_precompiled.py").write_text(MODULE)
    out = _run(tmp_path, BUILD, FASTDNN_PRECOMPILE_LEVEL=LEVEL, NUMBA_CPU_NAME=LEVEL,
               NUMBA_CPU_FEATURES="", NUMBA_CACHE_DIR=str(tmp_path / "numba-build"))  # fmt: skip
    assert out["value"] == 12.0 and out["compiled"] >= 1
    return tmp_path


def test_a_built_level_loads_in_a_new_cache_without_compiling(built):
    level_dir = built / "pre" / LEVEL
    assert list((level_dir / "tiny_precompiled").glob("*.nbi"))
    assert json.loads((level_dir / _cache.MANIFEST).read_text()) == _cache.versions()
    assert not (built / "numba-build").exists() or not any((built / "numba-build").rglob("*.nbi"))
    out = _run(built, CALL)
    assert out == {"value": 12.0, "compiled": 0, "level": LEVEL}
    # A reinstall gives the sources new times: the contents still match.
    os.utime(built / "tiny_precompiled.py", (1, 1))
    assert _run(built, CALL)["compiled"] == 0


def test_changed_sources_other_versions_or_off_compile(built):
    assert _run(built, CALL, FASTDNN_PRECOMPILED="off") == {
        "value": 12.0, "compiled": 1, "level": None
    }  # fmt: skip
    manifest = built / "pre" / LEVEL / _cache.MANIFEST
    recorded = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(recorded, numba="0.0.0")))
    assert _run(built, CALL, NUMBA_CACHE_DIR=str(built / "numba-2"))["level"] is None
    manifest.write_text(json.dumps(recorded))
    # A process that chose its own CPU target keeps Numba's own caching.
    out = _run(built, CALL, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(built / "numba-3"))
    assert out["level"] is None and out["compiled"] == 1
    with open(built / "tiny_precompiled.py", "a") as source:
        source.write("# changed\n")
    out = _run(built, CALL, NUMBA_CACHE_DIR=str(built / "numba-4"))
    assert out == {"value": 12.0, "compiled": 1, "level": LEVEL}


def test_a_damaged_precompiled_file_compiles_with_a_warning(built):
    for data in (built / "pre" / LEVEL / "tiny_precompiled").glob("*.nbc"):
        data.write_bytes(data.read_bytes()[:40])
    code = "import warnings; warnings.simplefilter('error', RuntimeWarning)\n" + CALL
    environment = dict(os.environ, PYTHONPATH=str(built), FASTDNN_PRECOMPILED=str(built / "pre"),
                       NUMBA_CACHE_DIR=str(built / "numba-5"))  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], env=environment, cwd=built,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode != 0 and "damaged precompiled kernel" in result.stderr
    out = _run(built, CALL, NUMBA_CACHE_DIR=str(built / "numba-6"))
    assert out == {"value": 12.0, "compiled": 1, "level": LEVEL}


def test_building_needs_the_level_as_numbas_target(tmp_path):
    (tmp_path / "tiny_precompiled.py").write_text(MODULE)
    environment = dict(os.environ, PYTHONPATH=str(tmp_path), FASTDNN_PRECOMPILE_LEVEL=LEVEL,
                       FASTDNN_PRECOMPILED=str(tmp_path / "pre"))  # fmt: skip
    environment.pop("NUMBA_CPU_NAME", None)
    result = subprocess.run([sys.executable, "-c", "import tiny_precompiled"], env=environment,
                            cwd=tmp_path, capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode != 0 and "NUMBA_CPU_NAME=x86-64-v3" in result.stderr


def test_unknown_or_unrunnable_levels_are_refused(monkeypatch):
    from fastdnn.warmup import build_precompiled

    with pytest.raises(ValueError, match="unknown level 'x86-64-v9'"):
        build_precompiled(("x86-64-v9",), log=None)
    monkeypatch.setattr(_cache, "host_supports", lambda level: False)
    with pytest.raises(ValueError, match="cannot run x86-64-v4 code"):
        build_precompiled(("x86-64-v4",), log=None)


def test_generic_drivers_are_the_default_only_where_a_precompiled_level_serves(monkeypatch):
    monkeypatch.delenv("FASTDNN_SPECIALIZE", raising=False)
    monkeypatch.setattr(features, "usable_level", lambda: None)
    assert features.specializing()
    monkeypatch.setattr(features, "usable_level", lambda: LEVEL)
    assert not features.specializing()
    assert features.features(features.activation_bit(0)) is features.ALL
    monkeypatch.setenv("FASTDNN_SPECIALIZE", "1")
    assert features.specializing()
    monkeypatch.setenv("FASTDNN_SPECIALIZE", "0")
    assert not features.specializing()
