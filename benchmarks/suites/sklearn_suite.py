"""The scikit-learn suite: bpfast.sklearn's estimators against scikit-learn's MLP.

Each case fits MLPClassifier or MLPRegressor from bpfast.sklearn and from
scikit-learn with the same parameters and random_state, on three quarters of
a data set (train_test_split, stratified for classifiers, seeded by --seed),
and scores both on the held-out quarter: accuracy for a classifier, R² for a
regressor. One timed call is one whole fit(), convergence checks included.

Data, all scaled as a user would scale it:
  digits         scikit-learn's bundled 1797 8×8 images, pixels divided by 16
  digits_value   the same images, the digit / 9 as a regression target
  breast_cancer  569 samples, 30 features, standardised
  diabetes       442 samples, 10 features, standardised; the target standardised too
  synthetic      make_classification: 100,000 samples, 100 features (40
                 informative), 10 classes, standardised
  synthetic_200k make_classification: 200,000 samples, 50 features (30
                 informative), 10 classes, standardised
  synthetic_regression  make_regression: 100,000 samples, 100 features (40
                 informative, noise 1), X and the target standardised
X has the run's dtype; scikit-learn and bpfast both train in that dtype.

Check: in float64 the two fits must give the same model (coefs_ and
intercepts_ within 1e-9 relative to max(1, max |value|)) after the same number
of iterations; that is bpfast.sklearn's promise. In float32 the two round
differently, and Adam's per-weight scaling lets the difference grow over
hundreds of epochs, so the check asks for the same final training loss within
2% (of max(1, |loss|)) and test scores within 0.02.

The fixed-epoch cases (cases.FIXED_EPOCH_CASES: tol=0, n_iter_no_change above
max_iter) time the fit itself on the digits rather than where it stops; with
the same number of steps, float32 also asks their final losses to agree within
1e-3 of |loss|. --tiny runs each of them for one epoch on 200 samples. Every
case with a fixed number of epochs of adam or sgd counts its products' flops
(cases.SklearnCase.flops), so the table gives each fit's GFLOP/s and its share
of the machine's FMA peak.
"""

import functools
import warnings

import numpy as np

from benchmarks.harness import optional
from benchmarks.suites.cases import SKLEARN_DATA_SHAPES, SKLEARN_TEST_SHARE, sklearn_cases
from benchmarks.harness.competitor import Competitor, Verdict

NAME = "sklearn"
MARKDOWN_LAYOUT = "long"
TABLE = "sklearn"
TITLE = "scikit-learn estimators (fit)"
NOTE = ("One call is one fit() of bpfast.sklearn's estimator or scikit-learn's, same parameters and random_state, "
        "on 3/4 of the data; test score = accuracy (classifier) or R² (regressor) on the other quarter.")
EXPLANATION = (
    "One call is a whole `fit()` of `bpfast.sklearn.MLPClassifier` or `MLPRegressor` (bpfast) or the scikit-learn "
    "estimator of the same name (sklearn), with the same parameters and `random_state`, on three quarters of the "
    "data; the test score is the estimator's `score()` on the held-out quarter (accuracy, or R² for the "
    "regressor). Data: scikit-learn's bundled digits (pixels / 16), breast_cancer and diabetes (standardised, "
    "the diabetes target too), synthetic `make_classification` sets of 100,000 × 100 and 200,000 × 50 with 10 "
    "classes, and a `make_regression` set of 100,000 × 100. "
    "Fits at the defaults stop where scikit-learn's tol and n_iter_no_change stop them (at most 200 "
    "iterations); the cases named `N epochs` run exactly N (tol=0). Check: in float64 both fits give the same "
    "coefs_ and intercepts_ (within 1e-9 relative) after "
    "the same number of iterations; in float32 the final training loss agrees within 2% (of max(1, |loss|)) and "
    "the test scores within 0.02, and in the fixed-epoch cases the final loss within 1e-3 of |loss|.")
EXTRA_COLUMNS = [("test score", "score")]

TOLERANCE = {"coefs": 1e-9, "loss": 2e-2, "score": 0.02}
INFORMATIVE = {"synthetic": 40, "synthetic_200k": 30, "synthetic_regression": 40}  # informative features

_data = {}
_scores = {}  # (case label, competitor) -> test score, from the check fits


def cases(mode):
    return sklearn_cases(mode, optional.load("sklearn") is not None)


def notes():
    if optional.load("sklearn") is None:
        return [optional.missing_note("sklearn", "no scikit-learn suite (bpfast.sklearn needs scikit-learn too)")]
    return []


def _standardised(values):
    values = np.asarray(values, dtype=np.float64)
    return (values - values.mean(axis=0)) / values.std(axis=0)


def _raw_data(name, seed):
    datasets = optional.load("sklearn.datasets")
    if name in ("digits", "digits_value"):
        X, y = datasets.load_digits(return_X_y=True)
        return X / 16.0, (y if name == "digits" else y / 9.0)
    if name == "breast_cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        return _standardised(X), y
    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
        return _standardised(X), _standardised(y)
    n, features, outputs = SKLEARN_DATA_SHAPES[name]
    if name == "synthetic_regression":
        X, y = datasets.make_regression(n_samples=n, n_features=features, n_informative=INFORMATIVE[name],
                                        noise=1.0, random_state=seed)
        return _standardised(X), _standardised(y)
    X, y = datasets.make_classification(n_samples=n, n_features=features, n_informative=INFORMATIVE[name],
                                        n_classes=outputs, random_state=seed)
    return _standardised(X), y


def load_data(case, dtype, seed):
    """(X_train, X_test, y_train, y_test), X in dtype, the first case.n samples when n is set."""
    key = (case.data, case.n, dtype, seed)
    if key not in _data:
        X, y = _raw_data(case.data, seed)
        if case.n:
            X, y = X[:case.n], y[:case.n]
        model_selection = optional.load("sklearn.model_selection")
        classifier = case.estimator == "MLPClassifier"
        parts = model_selection.train_test_split(np.ascontiguousarray(X, dtype=dtype), y,
                                                 test_size=SKLEARN_TEST_SHARE,
                                                 random_state=seed, stratify=y if classifier else None)
        _data[key] = tuple(parts)
    return _data[key]


def _fit(module, case, seed, X, y):
    exceptions = optional.load("sklearn.exceptions")
    estimator = getattr(module, case.estimator)(**dict(case.settings), random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
        return estimator.fit(X, y)


def _check(module, name, case, dtype, seed):
    X_train, X_test, y_train, y_test = load_data(case, dtype, seed)
    fitted = _fit(module, case, seed, X_train, y_train)
    score = float(fitted.score(X_test, y_test))
    _scores[(case.label, name)] = score
    return {"coefs": [np.asarray(c, dtype=np.float64) for c in fitted.coefs_ + fitted.intercepts_],
            "loss": float(fitted.loss_), "n_iter": int(fitted.n_iter_), "score": score}


def _build(module, case, dtype, seed):
    X_train, _, y_train, _ = load_data(case, dtype, seed)
    return functools.partial(_fit, module, case, seed, X_train, y_train)


def competitors(case, dtype, seed, threads):
    from bpfast import sklearn as ours
    theirs = optional.load("sklearn.neural_network")
    return [Competitor(name, functools.partial(_check, module, name, case, dtype, seed),
                       functools.partial(_build, module, case, dtype, seed))
            for name, module in (("bpfast", ours), ("sklearn", theirs))]


def compare(case, dtype, base, value):
    """The same model in float64; the same loss and score, within the float32 tolerances, in float32."""
    if len(value["coefs"]) != len(base["coefs"]) or any(
            a.shape != b.shape for a, b in zip(value["coefs"], base["coefs"])):
        return Verdict(False, "the fitted coefs_ and intercepts_ have other shapes", float("inf"))
    coefs = max(float(np.abs(a - b).max()) / max(1.0, float(np.abs(b).max()))
                for a, b in zip(value["coefs"], base["coefs"]))
    # relative to max(1, |loss|): a converged loss near 0 differs by more than 2% in float32
    loss = abs(value["loss"] - base["loss"]) / max(abs(base["loss"]), 1.0)
    score = abs(value["score"] - base["score"])
    iterations = f"{value['n_iter']} iterations (bpfast {base['n_iter']})"
    scores = f"test score {value['score']:.4f} (bpfast {base['score']:.4f})"
    if dtype == "float64":
        ok = bool(coefs <= TOLERANCE["coefs"] and value["n_iter"] == base["n_iter"])
        detail = f"coefs rel err {coefs:.1e} (tol {TOLERANCE['coefs']:.0e}), {iterations}, {scores}"
        return Verdict(ok, detail, coefs)
    ok = bool(np.isfinite(loss) and loss <= TOLERANCE["loss"] and score <= TOLERANCE["score"])
    detail = (f"final loss rel err {loss:.1e} (tol {TOLERANCE['loss']:.0e}), {scores} (tol "
              f"{TOLERANCE['score']}), {iterations}, coefs rel err {coefs:.1e}")
    if case.loss_rtol:  # a fixed-epoch case: the same steps, so the same loss within loss_rtol of |loss|
        close = abs(value["loss"] - base["loss"]) / abs(base["loss"])
        ok = bool(ok and close <= case.loss_rtol)
        detail += f", loss within {close:.1e} of |loss| (tol {case.loss_rtol:.0e})"
    return Verdict(ok, detail, max(loss, score))


def finish(rows):
    """Each competitor's test score from its check fit (none for the injected wrong one)."""
    for row in rows:
        row["score"] = _scores.get((row["case"], row["competitor"]))
    return rows
