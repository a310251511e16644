"""scikit-learn's own test module for its MLP, run against fastdnn's estimators.

The module is read from the installed scikit-learn (the ``test`` extra pins the version it comes
from) when this file is collected. Its one import of scikit-learn's estimators is replaced by
fastdnn's, nothing else is changed, and its test functions become this module's. Two of them
call private methods of scikit-learn's implementation (``_loss_grad_lbfgs``, the learning rate
of its private optimizer object between two fits) and are skipped with that reason; every other
test must pass as written.
"""

import pathlib
import tempfile

import pytest
import sklearn

SUITE_VERSION = "1.9.1"
ESTIMATOR_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
FASTDNN_IMPORT = "from fastdnn import MLPClassifier, MLPRegressor"
PRIVATE_INTERNALS = {
    "test_gradient": "calls scikit-learn's private MLP._loss_grad_lbfgs with its own buffers",
    "test_learning_rate_warmstart": (
        "reads the learning rate of scikit-learn's private SGDOptimizer across warm starts"
    ),
}

if sklearn.__version__ != SUITE_VERSION:
    pytest.skip(
        f"the suite is pinned to scikit-learn {SUITE_VERSION} (the test extra installs it); "
        f"{sklearn.__version__} is installed",
        allow_module_level=True,
    )


@pytest.fixture(params=[42])
def global_random_seed(request):
    """The seed scikit-learn's own conftest gives its tests by default."""
    return request.param


def _load_suite():
    source = pathlib.Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    text = source.read_text()
    if text.count(ESTIMATOR_IMPORT) != 1:
        raise RuntimeError(f"{source} no longer imports the estimators as {ESTIMATOR_IMPORT!r}")
    text = text.replace(ESTIMATOR_IMPORT, FASTDNN_IMPORT)
    # A real file, so that tracebacks show the suite's lines.
    copy = pathlib.Path(tempfile.gettempdir()) / "fastdnn_sklearn_suite" / "test_mlp.py"
    copy.parent.mkdir(exist_ok=True)
    copy.write_text(text)
    namespace = {"__name__": __name__, "__file__": str(copy)}
    exec(compile(text, str(copy), "exec"), namespace)
    return {name: value for name, value in namespace.items() if name.startswith("test_")}


for _name, _test in _load_suite().items():
    if _name in PRIVATE_INTERNALS:
        _test = pytest.mark.skip(reason=PRIVATE_INTERNALS[_name])(_test)
    globals()[_name] = _test
