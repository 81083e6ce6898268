"""A pytest plugin that runs scikit-learn's own MLP tests against bpfast.sklearn's
estimators, as scikit-learn-intelex runs scikit-learn's test suite against its patches:

    python -m pytest -p sklearn_mlp_plugin --pyargs sklearn.neural_network.tests.test_mlp

(with tests/scikit_learn on PYTHONPATH; .ci/run runs it). It patches scikit-learn
(bpfast.sklearn.patch()) when pytest starts, before the test module is imported, so that
the test module's ``from sklearn.neural_network import MLPClassifier, MLPRegressor``
binds bpfast's; checks that it did; and skips the tests listed in
sklearn_mlp_deselected.txt (each with its reason: a private internal of scikit-learn's
implementation). Every other test must pass.
"""

from pathlib import Path

import pytest

import bpfast.sklearn

DESELECTED_FILE = Path(__file__).with_name("sklearn_mlp_deselected.txt")
TEST_MODULE = "sklearn.neural_network.tests.test_mlp"


def deselected():
    """{test name: reason} from sklearn_mlp_deselected.txt."""
    reasons = {}
    for line in DESELECTED_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(":")
            reasons[name.strip()] = reason.strip()
    return reasons


def pytest_configure(config):
    bpfast.sklearn.patch()


def pytest_unconfigure(config):
    bpfast.sklearn.unpatch()


def pytest_collection_modifyitems(config, items):
    reasons = deselected()
    modules = {item.module for item in items if item.module.__name__ == TEST_MODULE}
    for module in modules:  # the tests really do run on bpfast's estimators
        for name in ("MLPClassifier", "MLPRegressor"):
            if getattr(module, name) is not getattr(bpfast.sklearn, name):
                raise pytest.UsageError(f"{TEST_MODULE}.{name} is not bpfast's: it was imported before "
                                        "bpfast.sklearn.patch()")
    for item in items:
        name = getattr(item, "originalname", None) or item.name
        if item.module.__name__ == TEST_MODULE and name in reasons:
            item.add_marker(pytest.mark.skip(reason=f"bpfast: {reasons[name]}"))
