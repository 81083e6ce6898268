"""bpfast.sklearn.patch() / unpatch() and `python -m bpfast.sklearn`: bpfast's
estimators in scikit-learn's place and scikit-learn's back, checked against the
classes scikit-learn's own modules define."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

import sklearn.neural_network  # noqa: E402
from sklearn.neural_network import _multilayer_perceptron as sklearn_mlp  # noqa: E402

import bpfast.sklearn  # noqa: E402

PYTHON_DIR = Path(bpfast.__file__).resolve().parent.parent


@pytest.fixture
def patched():
    bpfast.sklearn.patch()
    try:
        yield
    finally:
        bpfast.sklearn.unpatch()


def test_patch_puts_bpfast_estimators_in_place_and_unpatch_restores_sklearn(patched):
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    assert MLPClassifier is bpfast.sklearn.MLPClassifier
    assert MLPRegressor is bpfast.sklearn.MLPRegressor
    assert sklearn.neural_network.MLPClassifier is bpfast.sklearn.MLPClassifier
    assert sklearn.neural_network.MLPRegressor is bpfast.sklearn.MLPRegressor
    assert bpfast.sklearn.is_patched()
    # scikit-learn's own module keeps its implementation
    assert sklearn_mlp.MLPClassifier is not bpfast.sklearn.MLPClassifier

    bpfast.sklearn.unpatch()
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    assert MLPClassifier is sklearn_mlp.MLPClassifier
    assert MLPRegressor is sklearn_mlp.MLPRegressor
    assert sklearn.neural_network.MLPClassifier.__module__ == "sklearn.neural_network._multilayer_perceptron"
    assert not bpfast.sklearn.is_patched()


def test_patch_and_unpatch_are_idempotent():
    before = (sklearn.neural_network.MLPClassifier, sklearn.neural_network.MLPRegressor)
    bpfast.sklearn.unpatch()  # not patched: nothing to do
    assert (sklearn.neural_network.MLPClassifier, sklearn.neural_network.MLPRegressor) == before
    try:
        bpfast.sklearn.patch()
        bpfast.sklearn.patch()  # a second call must not record bpfast's class as the original
        assert sklearn.neural_network.MLPClassifier is bpfast.sklearn.MLPClassifier
    finally:
        bpfast.sklearn.unpatch()
        bpfast.sklearn.unpatch()
    assert (sklearn.neural_network.MLPClassifier, sklearn.neural_network.MLPRegressor) == before
    assert before == (sklearn_mlp.MLPClassifier, sklearn_mlp.MLPRegressor)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_patched_estimator_gives_sklearns_model(patched):
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    X, y = load_iris(return_X_y=True)
    ours = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    theirs = sklearn_mlp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    assert type(ours) is bpfast.sklearn.MLPClassifier
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _run(args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_DIR)] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-m", "bpfast.sklearn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


SCRIPT = textwrap.dedent("""
    import sys
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    import helper  # a module beside the script: sys.path[0] is the script's folder
    print(MLPClassifier.__module__, MLPRegressor.__module__, __name__, sys.argv[1:], helper.VALUE)
""")


@pytest.mark.slow
def test_python_m_bpfast_sklearn_runs_a_script_patched(tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "show.py").write_text(SCRIPT)
    (folder / "helper.py").write_text("VALUE = 'helper'\n")
    result = _run([str(folder / "show.py"), "a", "--b"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["bpfast.sklearn._estimators", "bpfast.sklearn._estimators", "__main__",
                                     "['a',", "'--b']", "helper"]


@pytest.mark.slow
def test_python_m_bpfast_sklearn_runs_a_module_and_refuses_a_missing_script(tmp_path):
    (tmp_path / "showmod.py").write_text(SCRIPT.replace("import helper  #", "helper = type('h', (), {'VALUE': 1})  #"))
    result = _run(["-m", "showmod", "x"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["bpfast.sklearn._estimators", "bpfast.sklearn._estimators", "__main__"]
    assert "['x']" in result.stdout

    missing = _run(["no_such_script.py"], cwd=tmp_path)
    assert missing.returncode == 2
    assert "no_such_script.py" in missing.stderr
    usage = _run([], cwd=tmp_path)
    assert usage.returncode == 2 and "usage: python -m bpfast.sklearn" in usage.stderr
