"""bpfast.sklearn as a scikit-learn estimator: scikit-learn's own estimator
checks, the model-selection tools, persistence, input types and errors.

Where behaviour is compared with scikit-learn's MLP it is compared exactly
(labels, messages' parameter names, printed lines) or at 1e-9 relative
(numbers), as in test_sklearn.py.
"""

import io
import pickle
import subprocess
import sys
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

import joblib  # noqa: E402
import scipy.sparse  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import bpfast  # noqa: E402
from bpfast.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from conftest import relative_error  # noqa: E402

RTOL = 1e-9


@pytest.fixture(autouse=True)
def quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def digits(n=240):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16, y[:n]


# ---------------------------------------------------------------- scikit-learn's checks

@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- parameters

def test_same_constructor_as_sklearn():
    for ours, theirs in ((MLPClassifier, sk.MLPClassifier), (MLPRegressor, sk.MLPRegressor)):
        mine, expected = ours().get_params(), theirs().get_params()
        assert mine.pop("n_threads") is None
        assert mine == expected


def test_clone_and_params_round_trip():
    est = MLPClassifier(hidden_layer_sizes=(7, 3), solver="sgd", alpha=0.5, n_threads=1)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    copy.set_params(alpha=2.0, hidden_layer_sizes=(4,))
    assert copy.alpha == 2.0 and copy.hidden_layer_sizes == (4,) and est.alpha == 0.5


@pytest.mark.parametrize("params,name", [
    (dict(solver="newton"), "solver"), (dict(activation="gelu"), "activation"), (dict(alpha=-1.0), "alpha"),
    (dict(batch_size=0), "batch_size"), (dict(learning_rate="cosine"), "learning_rate"),
    (dict(learning_rate_init=0.0), "learning_rate_init"), (dict(max_iter=0), "max_iter"),
    (dict(momentum=1.5), "momentum"), (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(beta_1=1.0), "beta_1"), (dict(epsilon=0.0), "epsilon"), (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(max_fun=0), "max_fun"), (dict(shuffle="yes"), "shuffle"), (dict(n_threads=0), "n_threads"),
])
def test_bad_parameters_name_themselves(params, name):
    X, y = digits(60)
    with pytest.raises(InvalidParameterError, match=name):
        MLPClassifier(**params).fit(X, y)


def test_bad_regressor_loss():
    with pytest.raises(InvalidParameterError, match="loss"):
        MLPRegressor(loss="absolute_error").fit(np.ones((4, 2)), np.ones(4))


def test_bad_hidden_layer_sizes():
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(5, 0)).fit(*digits(60))


def test_bad_input_is_refused():
    X, y = digits(60)
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(np.where(X == 0, np.nan, X), y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MLPClassifier().fit(X, y[:-1])
    fitted = MLPClassifier(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :10])
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with pytest.raises(ValueError, match="sample_weight"):
        MLPClassifier(max_iter=2).fit(X, y, sample_weight=np.ones(3))


# ---------------------------------------------------------------- model selection

def test_grid_search_cross_val_and_pipeline():
    X, y = digits()
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    pipe_theirs = make_pipeline(StandardScaler(), sk.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20,
                                                                   random_state=0))
    assert scores.shape == (3,)
    assert relative_error(scores, cross_val_score(pipe_theirs, X, y, cv=3)) <= RTOL
    search = GridSearchCV(MLPClassifier(max_iter=10, random_state=0), {"hidden_layer_sizes": [(4,), (12,)]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["hidden_layer_sizes"] in [(4,), (12,)]
    theirs = GridSearchCV(sk.MLPClassifier(max_iter=10, random_state=0),
                          {"hidden_layer_sizes": [(4,), (12,)]}, cv=2).fit(X, y)
    assert relative_error(search.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]) <= RTOL


# ---------------------------------------------------------------- persistence

@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_round_trip_keeps_solver_state(dump, tmp_path):
    X, y = digits()
    est = MLPClassifier(hidden_layer_sizes=(8,), solver="adam", random_state=0).partial_fit(X, y, classes=np.unique(y))
    if dump == "pickle":
        copy = pickle.loads(pickle.dumps(est))
    else:
        joblib.dump(est, tmp_path / "mlp.joblib")
        copy = joblib.load(tmp_path / "mlp.joblib")
    np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
    est.partial_fit(X, y)
    copy.partial_fit(X, y)  # Adam's moments and step count came along
    for a, b in zip(copy.coefs_, est.coefs_):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- inputs

def test_lists_pandas_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = digits(120)
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    est = MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(frame, pd.Series(y))
    np.testing.assert_array_equal(est.feature_names_in_, frame.columns.to_numpy())
    from_lists = MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(X.tolist(), y.tolist())
    np.testing.assert_array_equal(from_lists.coefs_[0], est.coefs_[0])
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(X)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("options", [dict(solver="adam"), dict(solver="sgd", early_stopping=True),
                                     dict(solver="sgd", shuffle=False), dict(solver="lbfgs")],
                         ids=["adam", "sgd-early-stopping", "sgd-in-order", "lbfgs"])
def test_sparse_equals_dense(fmt, options):
    """Sparse X trains on the same dense batches (made one at a time), so the weights are
    equal; predictions are made a chunk of rows at a time (equal to rounding)."""
    X, y = load_digits(return_X_y=True)
    X = X / 16
    params = dict(hidden_layer_sizes=(6,), max_iter=4, random_state=0, **options)
    dense = MLPClassifier(**params).fit(X, y)
    sparse = MLPClassifier(**params).fit(scipy.sparse.csr_matrix(X).asformat(fmt), y)
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sparse.loss_curve_ if options["solver"] != "lbfgs" else sparse.loss_,
                               dense.loss_curve_ if options["solver"] != "lbfgs" else dense.loss_, rtol=0)
    proba = sparse.predict_proba(scipy.sparse.csc_matrix(X))
    assert relative_error(proba, dense.predict_proba(X)) <= 1e-12
    theirs = sk.MLPClassifier(**params).fit(scipy.sparse.csr_matrix(X).asformat(fmt), y)
    for a, b in zip(sparse.coefs_, theirs.coefs_):
        assert relative_error(a, b) <= RTOL


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_sparse_training_never_makes_x_dense(solver):
    """A sparse X whose dense copy would take 160 MB trains while Python allocates a small
    fraction of that (the engine makes one batch, or for lbfgs 256 rows, dense at a time),
    and gives scikit-learn's model."""
    import tracemalloc
    rng = np.random.RandomState(0)
    X = scipy.sparse.random(2000, 10000, density=0.001, format="csr", random_state=rng)
    y = rng.randint(0, 2, 2000)
    params = dict(hidden_layer_sizes=(4,), solver=solver, max_iter=2 if solver == "sgd" else 15, batch_size=50,
                  random_state=0)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = MLPClassifier(**params).fit(X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6, f"{peak / 1e6:.0f} MB"
    assert est.predict(X[:5]).shape == (5,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = sk.MLPClassifier(**params).fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert relative_error(a, b) <= RTOL


@pytest.mark.parametrize("labels", [
    np.array(["cat", "dog", "eel"]), np.array([True, False]), np.array([-1.0, 0.0, 2.0]), np.array([3, 7])])
def test_label_types(labels):
    X, _ = digits(90)
    y = labels[np.arange(90) % len(labels)]
    ours = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    theirs = sk.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.predict(X).dtype == theirs.predict(X).dtype
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.predict_proba(X).shape == (90, len(labels))
    assert relative_error(ours.predict_log_proba(X), theirs.predict_log_proba(X)) <= RTOL
    assert ours.score(X, y) == theirs.score(X, y)


def test_continuous_labels_are_refused_like_sklearn():
    X, _ = digits(30)
    y = np.linspace(-1, 1, 30)
    for cls in (MLPClassifier, sk.MLPClassifier):
        with pytest.raises(ValueError, match="Unknown label type"):
            cls(max_iter=2).fit(X, y)


def test_column_vector_y_warns_like_sklearn():
    X, y = digits(60)
    with pytest.warns(Warning, match="column-vector y"):
        MLPRegressor(max_iter=2).fit(X, y.reshape(-1, 1).astype(float))


# ---------------------------------------------------------------- behaviour

def test_convergence_warning_and_verbose_lines():
    X, y = digits(100)
    params = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0, verbose=True, early_stopping=True)
    printed = {}
    for name, cls in (("ours", MLPClassifier), ("theirs", sk.MLPClassifier)):
        out = io.StringIO()
        with warnings.catch_warnings(record=True) as caught, redirect_stdout(out):
            warnings.simplefilter("always")
            cls(**params).fit(X, y)
        assert any(issubclass(w.category, ConvergenceWarning) for w in caught), name
        printed[name] = out.getvalue().splitlines()
    assert len(printed["ours"]) == len(printed["theirs"]) == 6
    for mine, expected in zip(printed["ours"], printed["theirs"]):
        assert mine.split("=")[0].split(":")[0] == expected.split("=")[0].split(":")[0]
        assert abs(float(mine.split()[-1]) - float(expected.split()[-1])) <= 1e-7


def test_tol_stops_training_like_sklearn():
    X, y = digits()
    params = dict(hidden_layer_sizes=(8,), max_iter=200, random_state=0, tol=0.05, n_iter_no_change=2)
    ours, theirs = MLPClassifier(**params).fit(X, y), sk.MLPClassifier(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 200


def test_partial_fit_rules():
    X, y = digits(60)
    with pytest.raises(AttributeError, match="partial_fit"):
        MLPClassifier(solver="lbfgs").partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.unique(y))
    est = MLPClassifier(max_iter=3).partial_fit(X, y, classes=np.arange(12))
    assert est.n_iter_ == 1 and est.t_ == 60 and len(est.classes_) == 12


def test_n_threads_is_restored():
    before = bpfast.get_num_threads()
    ours = MLPClassifier(max_iter=2, n_threads=1, random_state=0).fit(*digits(60))
    assert bpfast.get_num_threads() == before and bpfast._core.get_local_num_threads() == 0
    for threads in (2, 3):  # the same model for any count
        other = MLPClassifier(max_iter=2, n_threads=threads, random_state=0).fit(*digits(60))
        for a, b in zip(ours.coefs_, other.coefs_):
            np.testing.assert_array_equal(a, b)


def test_plain_bpfast_imports_without_sklearn():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('sklearn', 'scipy'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import bpfast\n"
            "assert 'sklearn' not in sys.modules and 'scipy' not in sys.modules\n"
            "print(bpfast.Network([2, 1]).forward([[1.0, 2.0]]).shape)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 1)"


def test_sklearn_fit_benchmark_runs():
    """benchmarks/sklearn_fit.py checks both models agree before it times them; --tiny runs it in seconds."""
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(root, "benchmarks", "sklearn_fit.py")
    for dtype in ("float64", "float32"):
        done = subprocess.run([sys.executable, script, "--tiny", "--threads", "1", "--dtype", dtype], cwd=root,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert done.stdout.count("x\n") == 6, done.stdout  # one line with a speed-up per case
