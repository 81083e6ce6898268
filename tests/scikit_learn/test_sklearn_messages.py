"""bpfast.sklearn's errors, warnings and diverging fits against scikit-learn's own.

Oracle: scikit-learn itself (sklearn.neural_network._multilayer_perceptron, whose
classes bpfast.sklearn.patch() leaves in place): the same call on both estimators
must raise the same exception with the same message, warn the same warnings, and a
diverging fit must end as scikit-learn's does (the error, or with early stopping the
best weights kept, the NaN validation scores and losses, the epochs run).
"""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_diabetes, load_iris  # noqa: E402
from sklearn.neural_network import _multilayer_perceptron as sklearn_mlp  # noqa: E402

import bpfast.sklearn  # noqa: E402

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_DIABETES, Y_DIABETES = load_diabetes(return_X_y=True)


def pair(kind):
    """(scikit-learn's class, bpfast's class) for "Classifier" or "Regressor"."""
    return getattr(sklearn_mlp, "MLP" + kind), getattr(bpfast.sklearn, "MLP" + kind)


def run(call):
    """(exception type and message or None, the warnings' categories and messages, the result)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result, error = call(), None
        except (ValueError, AttributeError) as e:
            result, error = None, (type(e), str(e))
    seen = sorted({(w.category.__name__, str(w.message)) for w in caught
                   if not issubclass(w.category, RuntimeWarning)})  # numpy's overflow warnings: scikit-learn's own
    return error, seen, result


def same_values(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)


def assert_same_outcome(kind, params, calls):
    """Each call of calls (on a new estimator of each library) gives the same error and warnings."""
    outcomes = []
    for Estimator in pair(kind):
        estimator = Estimator(**params)
        outcomes.append([run(lambda c=c: c(estimator))[:2] for c in calls])
    assert outcomes[1] == outcomes[0]
    assert any(error or seen for error, seen in outcomes[0]), "the case must raise or warn"


Y3 = np.array([0] * 50 + [1] * 50 + [2] * 50)


@pytest.mark.parametrize("case", [
    # warm_start with other classes
    ("Classifier", dict(hidden_layer_sizes=2, solver="lbfgs", warm_start=True, random_state=0, max_iter=5),
     [lambda e: e.fit(X_IRIS, Y3), lambda e: e.fit(X_IRIS, np.array([0] * 75 + [3] * 75))]),
    # partial_fit with a class outside classes_
    ("Classifier", dict(hidden_layer_sizes=2, random_state=0),
     [lambda e: e.partial_fit(X_IRIS, Y3, classes=[0, 1, 2]), lambda e: e.partial_fit(X_IRIS, Y3 + 1)]),
    # partial_fit without classes, and with early stopping
    ("Classifier", dict(hidden_layer_sizes=2, early_stopping=True),
     [lambda e: e.partial_fit(X_IRIS, Y3), lambda e: e.partial_fit(X_IRIS, Y3, classes=[0, 1, 2])]),
    # partial_fit of lbfgs
    ("Classifier", dict(solver="lbfgs"), [lambda e: e.partial_fit]),
    # a validation set of one sample
    ("Regressor", dict(early_stopping=True, validation_fraction=0.1), [lambda e: e.fit(X_IRIS[:8], Y3[:8])]),
    # hidden_layer_sizes of zero
    ("Regressor", dict(hidden_layer_sizes=(3, 0)), [lambda e: e.fit(X_IRIS, Y3)]),
    # a batch larger than the data, and the end of max_iter
    ("Regressor", dict(batch_size=500, max_iter=2, random_state=0), [lambda e: e.fit(X_IRIS, Y3)]),
    # lbfgs stopped by max_iter and by max_fun
    ("Regressor", dict(solver="lbfgs", max_iter=3, random_state=0), [lambda e: e.fit(X_IRIS, Y3)]),
    ("Classifier", dict(solver="lbfgs", max_fun=4, random_state=0), [lambda e: e.fit(X_IRIS, Y3)]),
    # weights that overflow: scikit-learn's error at the end of the fit
    ("Regressor", dict(random_state=0, max_iter=3), [lambda e: e.fit(X_IRIS * np.finfo(np.float64).max, Y3)]),
], ids=["warm_start_classes", "partial_fit_classes", "partial_fit_first_call", "partial_fit_lbfgs",
        "validation_too_small", "hidden_layer_sizes", "batch_size_and_max_iter", "lbfgs_max_iter",
        "lbfgs_max_fun", "non_finite_weights"])
def test_errors_and_warnings_are_sklearns_word_for_word(case):
    kind, params, calls = case
    assert_same_outcome(kind, params, calls)


DIVERGING = [
    # (kind, X, y, solver, learning_rate_init, batch_size)
    ("Regressor", X_IRIS, Y_IRIS, "sgd", 1.0, "auto"),       # overflows through inf losses
    ("Regressor", X_IRIS, Y_IRIS, "sgd", 10.0, 32),          # several batches an epoch
    ("Regressor", X_DIABETES, Y_DIABETES * 100, "sgd", 1.0, 40),
    ("Regressor", X_IRIS, Y_IRIS, "adam", 10.0, "auto"),     # large but finite
    ("Classifier", X_IRIS * 1e3, Y_IRIS, "sgd", 10.0, 32),   # NaN outputs still give labels, and a score
    ("Classifier", X_IRIS * 1e5, Y_IRIS, "sgd", 1.0, 40),
]


@pytest.mark.parametrize("early_stopping", [True, False])
@pytest.mark.parametrize("case", DIVERGING, ids=lambda c: f"{c[0]}-{c[3]}-{c[4]}-{c[5]}-{float(c[1].max()):g}")
def test_a_diverging_fit_ends_as_sklearns(case, early_stopping):
    """scikit-learn trains on after a step that is not finite: with early stopping the best
    weights come back and the fit succeeds (validation_scores_ ending in NaN for a regressor);
    without, it raises at the end. bpfast's engine refuses such a step, and bpfast.sklearn
    carries on as scikit-learn does."""
    kind, X, y, solver, lr, batch_size = case
    params = dict(hidden_layer_sizes=50, activation="identity", solver=solver, learning_rate_init=lr,
                  batch_size=batch_size, max_iter=20, early_stopping=early_stopping, random_state=0)
    (theirs_error, theirs_warnings, theirs), (ours_error, ours_warnings, ours) = (
        _fit_keeping(Estimator, params, X, y) for Estimator in pair(kind))
    assert ours_error == theirs_error
    assert ours_warnings == theirs_warnings
    assert ours.n_iter_ == theirs.n_iter_
    assert same_values(ours.loss_curve_, theirs.loss_curve_)
    if early_stopping:
        assert same_values(ours.validation_scores_, theirs.validation_scores_)
        assert all(type(score) is type(expected)
                   for score, expected in zip(ours.validation_scores_, theirs.validation_scores_))
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert same_values(a, b)


def _fit_keeping(Estimator, params, X, y):
    """run() of a fit, with the estimator kept when the fit raises."""
    estimator = Estimator(**params)
    error, seen, _ = run(lambda: estimator.fit(X, y))
    return error, seen, estimator


def test_the_diverging_cases_cover_both_endings():
    endings = set()
    for kind, X, y, solver, lr, batch_size in DIVERGING:
        estimator = pair(kind)[0](hidden_layer_sizes=50, activation="identity", solver=solver,
                                  learning_rate_init=lr, batch_size=batch_size, max_iter=20, random_state=0)
        endings.add(run(lambda: estimator.fit(X, y))[0] is not None)
    assert endings == {True, False}
