"""bpfast.sklearn against scikit-learn's own MLP as the oracle.

Every case fits scikit-learn's estimator and bpfast's with the same
parameters and random_state in float64 and compares what a fit leaves:
coefs_, intercepts_, loss_, loss_curve_, best_loss_, validation_scores_,
n_iter_, t_ and the predictions. Tolerance: 1e-9 relative to max(1,
max|expected|) for every array and number (the two agree to about 1e-15 on
these cases; the margin covers the amplification of rounding over epochs).
Counters and labels must be equal. float32 fits are compared at 1e-4 (both
compute in float32, in different orders).

The second half tests bpfast.sklearn as a scikit-learn estimator:
scikit-learn's own estimator checks, the model-selection tools, persistence,
input types and errors. Where behaviour is compared with scikit-learn's MLP
there it is compared exactly (labels, messages' parameter names, printed
lines) or at RTOL (numbers).
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
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import bpfast  # noqa: E402
from bpfast import sklearn as bp  # noqa: E402
from bpfast.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from conftest import ROOT, relative_error, trajectory_tolerance  # noqa: E402

RTOL = 1e-9
FLOAT32_RTOL = trajectory_tolerance(np.float32)


@pytest.fixture(autouse=True)
def quiet_convergence():
    """Every test of this file: no ConvergenceWarning noise (pytest.warns still sees them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def data(kind):
    rng = np.random.RandomState(0)
    if kind == "multiclass":
        X, y = load_digits(return_X_y=True)
        return X[:300] / 16, y[:300]
    if kind == "binary":
        X, _ = make_regression(160, 6, random_state=0)
        return X, np.where(X[:, 0] + 0.3 * X[:, 1] > 0, "yes", "no")
    if kind == "multilabel":
        return make_multilabel_classification(150, 10, n_classes=4, random_state=0)
    X, Y = make_regression(180, 8, n_targets=3, random_state=0)
    if kind == "regression":
        return X, Y[:, 0] / 100
    if kind == "multioutput":
        return X, Y / 100
    if kind == "poisson":
        return X / 5, rng.poisson(np.exp(X[:, 0] / 4)).astype(float)
    raise ValueError(kind)


def assert_same_fit(ours, theirs, X, rtol=RTOL):
    """Every fitted attribute and the predictions agree."""
    for name in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    if hasattr(theirs, "classes_"):
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    for name in ("coefs_", "intercepts_"):
        mine, expected = getattr(ours, name), getattr(theirs, name)
        assert len(mine) == len(expected)
        for a, b in zip(mine, expected):
            assert a.shape == b.shape and a.dtype == b.dtype, name
            assert relative_error(a, b) <= rtol, f"{name}: {relative_error(a, b):.2e}"
    assert relative_error(ours.loss_, theirs.loss_) <= rtol
    for name in ("loss_curve_", "validation_scores_"):
        if getattr(theirs, name, None) is not None:
            assert len(getattr(ours, name)) == len(getattr(theirs, name)), name
            assert relative_error(getattr(ours, name), getattr(theirs, name)) <= rtol, name
        else:
            assert getattr(ours, name, None) is None, name
    for name in ("best_loss_", "best_validation_score_"):
        expected = getattr(theirs, name, None)
        if expected is None:
            assert getattr(ours, name, None) is None, name
        else:
            assert relative_error(getattr(ours, name), expected) <= rtol, name
    predicted, expected = ours.predict(X), theirs.predict(X)
    if expected.dtype.kind in "fc":
        assert relative_error(predicted, expected) <= rtol
    else:
        np.testing.assert_array_equal(predicted, expected)
    if hasattr(theirs, "predict_proba"):
        assert relative_error(ours.predict_proba(X), theirs.predict_proba(X)) <= rtol


def calls_agree(ours, theirs, method, X, y, times):
    """Calls method(X, y) on both estimators `times` times; after each call every fitted attribute agrees."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(times):
            getattr(ours, method)(X, y)
            getattr(theirs, method)(X, y)
            assert_same_fit(ours, theirs, X)


def fit_both(estimator, kind, fit_kw=None, **params):
    X, y = data(kind)
    fit_kw = fit_kw or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = getattr(sk, estimator)(**params).fit(X, y, **fit_kw)
        ours = getattr(bp, estimator)(**params).fit(X, y, **fit_kw)
    return ours, theirs, X


SOLVERS = [
    dict(solver="sgd"),
    dict(solver="sgd", nesterovs_momentum=False),
    dict(solver="sgd", momentum=0.0),
    dict(solver="sgd", learning_rate="invscaling", power_t=0.3),
    dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=2, tol=10.0),
    dict(solver="adam"),
    dict(solver="adam", beta_1=0.5, beta_2=0.9, epsilon=1e-4),
    dict(solver="lbfgs"),
]


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
@pytest.mark.parametrize("estimator,kind", [("MLPClassifier", "multiclass"), ("MLPRegressor", "multioutput")])
def test_solvers(estimator, kind, solver):
    params = dict(hidden_layer_sizes=(16, 8), activation="tanh", random_state=3, max_iter=8,
                  learning_rate_init=0.01, **solver)
    assert_same_fit(*fit_both(estimator, kind, **params))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("estimator,kind", [("MLPClassifier", "multiclass"), ("MLPClassifier", "binary"),
                                            ("MLPRegressor", "regression")])
def test_early_stopping(estimator, kind, solver):
    params = dict(hidden_layer_sizes=(12,), random_state=5, max_iter=30, solver=solver, early_stopping=True,
                  validation_fraction=0.2, n_iter_no_change=3, learning_rate_init=0.05)
    ours, theirs, X = fit_both(estimator, kind, **params)
    assert_same_fit(ours, theirs, X)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_activations(activation, solver):
    params = dict(hidden_layer_sizes=(10,), activation=activation, solver=solver, random_state=0, max_iter=6,
                  alpha=0.01, learning_rate_init=0.02)
    assert_same_fit(*fit_both("MLPClassifier", "multiclass", **params))


@pytest.mark.parametrize("kind", ["binary", "multilabel"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sigmoid_outputs(kind, solver):
    params = dict(hidden_layer_sizes=(9,), solver=solver, random_state=2, max_iter=6, learning_rate_init=0.02)
    assert_same_fit(*fit_both("MLPClassifier", kind, **params))


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("kind", ["regression", "poisson"])
def test_regression_losses(kind, solver):
    params = dict(hidden_layer_sizes=(10,), solver=solver, random_state=1, max_iter=6, learning_rate_init=0.01,
                  loss="poisson" if kind == "poisson" else "squared_error")
    assert_same_fit(*fit_both("MLPRegressor", kind, **params))


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("estimator,kind", [("MLPClassifier", "multiclass"), ("MLPRegressor", "multioutput")])
def test_sample_weight(estimator, kind, solver):
    n = len(data(kind)[1])
    weights = np.random.RandomState(7).uniform(0.1, 3.0, n)
    params = dict(hidden_layer_sizes=(10,), solver=solver, random_state=4, max_iter=5, learning_rate_init=0.01)
    assert_same_fit(*fit_both(estimator, kind, fit_kw={"sample_weight": weights}, **params))


def test_sample_weight_with_early_stopping():
    n = len(data("binary")[1])
    weights = np.random.RandomState(8).uniform(0.1, 3.0, n)
    params = dict(hidden_layer_sizes=(10,), solver="adam", random_state=4, max_iter=12, early_stopping=True,
                  learning_rate_init=0.01)
    assert_same_fit(*fit_both("MLPClassifier", "binary", fit_kw={"sample_weight": weights}, **params))


@pytest.mark.parametrize("options", [dict(batch_size=37), dict(shuffle=False), dict(batch_size=1000),
                                     dict(alpha=0.0), dict(alpha=1.0), dict(hidden_layer_sizes=7)])
def test_batching_and_penalty(options):
    params = dict(hidden_layer_sizes=(10,), solver="sgd", random_state=6, max_iter=4, learning_rate_init=0.05)
    params.update(options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # batch_size larger than the data is clipped
        assert_same_fit(*fit_both("MLPClassifier", "multiclass", **params))


def test_random_state_instance_draws_the_same_stream():
    X, y = data("multiclass")
    ours = bp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=np.random.RandomState(11))
    theirs = sk.MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=np.random.RandomState(11))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert_same_fit(ours.fit(X, y), theirs.fit(X, y), X)
        assert_same_fit(ours.fit(X, y), theirs.fit(X, y), X)  # the instances advanced alike


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_warm_start(solver):
    X, y = data("multiclass")
    params = dict(hidden_layer_sizes=(10,), solver=solver, random_state=0, max_iter=3, warm_start=True)
    calls_agree(bp.MLPClassifier(**params), sk.MLPClassifier(**params), "fit", X, y, times=3)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit(solver):
    X, y = data("multiclass")
    params = dict(hidden_layer_sizes=(10,), solver=solver, random_state=0, learning_rate_init=0.01)
    ours, theirs = bp.MLPClassifier(**params), sk.MLPClassifier(**params)
    classes = np.unique(y)
    for start in range(0, 300, 60):
        ours.partial_fit(X[start:start + 60], y[start:start + 60], classes=classes)
        theirs.partial_fit(X[start:start + 60], y[start:start + 60], classes=classes)
        assert_same_fit(ours, theirs, X)


def test_partial_fit_regressor_and_assigned_coefs():
    """Assigning coefs_ and intercepts_ between partial_fit calls steers both alike."""
    X, y = data("multioutput")
    params = dict(hidden_layer_sizes=(6,), solver="sgd", random_state=0, learning_rate_init=0.01)
    ours, theirs = bp.MLPRegressor(**params), sk.MLPRegressor(**params)
    ours.partial_fit(X, y)
    theirs.partial_fit(X, y)
    rng = np.random.RandomState(1)
    new_coefs = [rng.normal(scale=0.3, size=c.shape) for c in theirs.coefs_]
    new_intercepts = [rng.normal(scale=0.3, size=b.shape) for b in theirs.intercepts_]
    for est in (ours, theirs):
        est.coefs_ = [c.copy() for c in new_coefs]
        est.intercepts_ = [b.copy() for b in new_intercepts]
        est.partial_fit(X, y)
    assert_same_fit(ours, theirs, X)


def test_float32_trains_in_float32():
    X, y = data("multiclass")
    X = X.astype(np.float32)
    params = dict(hidden_layer_sizes=(10,), solver="adam", random_state=0, max_iter=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = bp.MLPClassifier(**params).fit(X, y)
        theirs = sk.MLPClassifier(**params).fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.dtype == b.dtype == np.float32
        assert relative_error(a, b) <= FLOAT32_RTOL
    proba = ours.predict_proba(X)
    assert proba.dtype == theirs.predict_proba(X).dtype == np.float32
    assert relative_error(ours.loss_curve_, theirs.loss_curve_) <= FLOAT32_RTOL


def test_lbfgs_float32_keeps_scipys_float64_weights():
    """scikit-learn's lbfgs hands back scipy's float64 vector; the dtypes match it."""
    X, y = data("regression")
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = bp.MLPRegressor(**params).fit(X.astype(np.float32), y)
        theirs = sk.MLPRegressor(**params).fit(X.astype(np.float32), y)
    assert [c.dtype for c in ours.coefs_] == [c.dtype for c in theirs.coefs_]
    assert ours.predict(X[:3].astype(np.float32)).dtype == theirs.predict(X[:3].astype(np.float32)).dtype


def test_a_wrong_oracle_is_noticed():
    """The comparison can fail: another random_state gives other weights."""
    ours, theirs, X = fit_both("MLPClassifier", "multiclass", hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    other = bp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        other.fit(*data("multiclass"))
    with pytest.raises(AssertionError):
        assert_same_fit(other, theirs, X)


def test_regressor_partial_fit_with_lbfgs_runs_lbfgs_like_sklearn():
    X, y = data("regression")
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, max_iter=4)
    calls_agree(bp.MLPRegressor(**params), sk.MLPRegressor(**params), "partial_fit", X, y, times=2)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_saturated_outputs_report_sklearns_clipped_loss(solver, n_classes):
    """Large inputs and a high learning rate drive probabilities past eps: the reported
    losses (and so tol's decisions) follow scikit-learn's clipped log-loss."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5) * 30
    y = (X[:, 0] > 0).astype(int) + (2 * (X[:, 1] > 0) if n_classes == 4 else 0)
    params = dict(hidden_layer_sizes=(20,), max_iter=6, random_state=0, solver=solver, learning_rate_init=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = bp.MLPClassifier(**params).fit(X, y), sk.MLPClassifier(**params).fit(X, y)
    assert max(theirs.loss_curve_) > 5  # saturated: some samples sit at the clip
    scale = max(1.0, max(np.abs(c).max() for c in theirs.coefs_))
    assert relative_error(ours.loss_curve_, theirs.loss_curve_) <= RTOL
    for a, b in zip(ours.coefs_, theirs.coefs_):
        assert np.abs(a - b).max() / scale <= RTOL


class _ReferenceCore:
    """Stands in for bpfast._core: its Network is the numpy engine of bpfast.reference."""

    def __init__(self, dtype):
        self.dtype = dtype

    def Network(self, sizes, activations, loss, reduction):
        from bpfast import reference
        return reference.Engine(sizes, activations, loss, reduction, self.dtype)


@pytest.mark.parametrize("case", [
    ("MLPClassifier", "multiclass", dict(solver="sgd", learning_rate="invscaling")),
    ("MLPClassifier", "multilabel", dict(solver="adam", early_stopping=True)),
    ("MLPRegressor", "multioutput", dict(solver="lbfgs")),
    ("MLPRegressor", "poisson", dict(solver="adam", loss="poisson")),
], ids=lambda c: f"{c[0]}-{c[1]}-{c[2]['solver']}")
def test_reference_engine_gives_sklearns_model_too(monkeypatch, case):
    """The numpy engine of bpfast.reference mirrors the core's scikit-learn conventions
    (objective, sample weights, update forms): the estimators on it give scikit-learn's model."""
    from bpfast import _precision
    row_of = _precision.of  # each precision's row, its core replaced by the reference's engine
    monkeypatch.setattr(_precision, "of", lambda dtype: row_of(dtype)._replace(core=_ReferenceCore(np.dtype(dtype))))
    estimator, kind, options = case
    n = len(data(kind)[1])
    weights = np.random.RandomState(3).uniform(0.2, 2.0, n)
    params = dict(hidden_layer_sizes=(6,), random_state=0, max_iter=4, learning_rate_init=0.01, **options)
    ours, theirs, X = fit_both(estimator, kind, fit_kw={"sample_weight": weights}, **params)
    from bpfast import reference
    assert isinstance(ours._engine, reference.Engine)
    assert_same_fit(ours, theirs, X)


# ================================================================ bpfast.sklearn as a scikit-learn estimator

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_sklearn_fit_benchmark_runs(tmp_path):
    """The scikit-learn suite checks both models agree before it times them; --tiny runs its six fixed-epoch cases."""
    import json
    script = str(ROOT / "benchmarks" / "run.py")
    for dtype in ("float64", "float32"):
        out = tmp_path / f"{dtype}.json"
        done = subprocess.run([sys.executable, script, "--tiny", "--only", "sklearn", "--threads", "1",
                               "--dtype", dtype, "--json", str(out)], cwd=str(ROOT),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        with open(out) as f:
            rows = json.load(f)["suites"][0]["results"]
        theirs = [row for row in rows if row["competitor"] == "sklearn"]
        # one case with a speed-up per case, each with models that agree
        assert len(theirs) == 6 and all(row["status"] == "ok" and row["ratio"] for row in theirs), theirs
