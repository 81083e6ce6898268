"""scikit-learn's own MLP tests against bpfast.sklearn: the deselection list and the CI run.

.ci/run runs sklearn/neural_network/tests/test_mlp.py of the installed scikit-learn
with sklearn_mlp_plugin (bpfast.sklearn.patch() before the module is imported). These
tests keep the list of the tests that cannot pass honest: each names a test of the
installed module and gives a reason, and the CI command is the one the plugin documents.
"""

import ast
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

import sklearn_mlp_plugin  # noqa: E402  (tests/scikit_learn, on the path as the tests' folder)

ROOT = Path(__file__).resolve().parents[2]
COMMAND = ("PYTHONPATH=tests/scikit_learn python -m pytest -q -p sklearn_mlp_plugin "
           "--pyargs sklearn.neural_network.tests.test_mlp")


def installed_tests():
    """The test functions of the installed scikit-learn's test_mlp.py, read without importing it."""
    path = Path(importlib.util.find_spec(sklearn_mlp_plugin.TEST_MODULE).origin)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_deselected_test_exists_in_the_installed_sklearn_and_says_why():
    reasons = sklearn_mlp_plugin.deselected()
    assert reasons, "the list is read"
    assert set(reasons) <= installed_tests()
    for name, reason in reasons.items():
        # the reason names the private internal of scikit-learn's implementation that the test uses
        assert len(reason) > 40 and "._" in reason, name


def test_ci_runs_sklearns_mlp_tests_with_the_plugin():
    assert COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
