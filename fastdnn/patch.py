"""Run unchanged scikit-learn code on fastdnn's estimators.

After :func:`patch_sklearn`, ``sklearn.neural_network.MLPClassifier`` and ``MLPRegressor`` (and
the same names in ``sklearn.neural_network._multilayer_perceptron``) are fastdnn's, so code that
imports them afterwards runs on fastdnn; :func:`unpatch_sklearn` puts scikit-learn's back.

A name imported before the patch (``from sklearn.neural_network import MLPClassifier`` at the
top of an already imported module) keeps scikit-learn's class: rebinding it would mean
rewriting other modules' globals, or redirecting the class's constructor, which would also turn
unpickled scikit-learn models (``joblib.load`` of a model trained with scikit-learn) into broken
fastdnn objects. Patch first, or run the unchanged script with
``python -m fastdnn.patch script.py [args ...]``, which patches before the script imports
anything, as ``python script.py [args ...]`` would run it.
"""

import runpy
import sys

__all__ = ["is_patched", "main", "patch_sklearn", "unpatch_sklearn"]

_NAMES = ("MLPClassifier", "MLPRegressor")
_MODULES = ("sklearn.neural_network", "sklearn.neural_network._multilayer_perceptron")
_saved = {}  # (module name, attribute) -> original value, while patched


def _replacements():
    from . import estimators

    return {name: getattr(estimators, name) for name in _NAMES}


def patch_sklearn():
    """Make scikit-learn's ``MLPClassifier`` and ``MLPRegressor`` names fastdnn's.

    Idempotent. Code that imports them afterwards gets fastdnn's estimators; names imported
    earlier keep scikit-learn's classes (see the module docstring).
    """
    if _saved:
        return
    import importlib

    replacements = _replacements()
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        for name in _NAMES:
            _saved[(module_name, name)] = getattr(module, name)
            setattr(module, name, replacements[name])


def unpatch_sklearn():
    """Undo :func:`patch_sklearn` (a no-op when not patched)."""
    import importlib

    for (module_name, name), value in _saved.items():
        setattr(importlib.import_module(module_name), name, value)
    _saved.clear()


def is_patched():
    """Whether :func:`patch_sklearn` is in effect."""
    return bool(_saved)


def main(argv=None):
    """``python -m fastdnn.patch script.py [args ...]``: run a script with the patch applied."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m fastdnn.patch script.py [args ...]", file=sys.stderr)
        return 0 if argv else 2
    patch_sklearn()
    sys.argv = argv
    runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
