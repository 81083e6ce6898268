"""MLPClassifier and MLPRegressor: scikit-learn's constructors and methods over bpfast's engine."""

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPClassifier as _SklearnClassifier
from sklearn.neural_network import MLPRegressor as _SklearnRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels

from ._base import THREADS_CONSTRAINT, BaseMLP, _validate_data

FLOAT_DTYPES = (np.float64, np.float32)


def _keep_arguments(estimator, arguments):
    """Each constructor argument as the attribute of its name, unchanged: what scikit-learn's
    get_params reads back (the parameters themselves stay explicit in each __init__'s signature)."""
    for name, value in arguments.items():
        if name != "self":
            setattr(estimator, name, value)


class MLPClassifier(ClassifierMixin, BaseMLP):
    """scikit-learn's MLPClassifier on bpfast's native core: the same parameters, methods,
    fitted attributes and (in float64, for the same random_state) the same model.

    n_threads (keyword-only, bpfast's own): the native thread count of this
    estimator's fit and predict, for the thread that calls them only (estimators
    fitted side by side in other threads keep their own); None: bpfast's
    setting (all cores unless set).
    """

    # scikit-learn's own constraints, so that every parameter is validated as it validates it.
    _parameter_constraints: dict = {**_SklearnClassifier._parameter_constraints, "n_threads": THREADS_CONSTRAINT}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, n_threads=None):
        _keep_arguments(self, locals())

    loss = "log_loss"  # scikit-learn's attribute (not a parameter of its classifier)

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                              dtype=FLOAT_DTYPES, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._binarized(y)

    def _binarized(self, y):
        """LabelBinarizer.transform(y) as booleans. For single-label targets whose labels are all
        known (the first fit's, or checked against classes_ above), the one-hot rows are made
        here, as label_binarize makes them: one column for two classes (the second's), one per
        class otherwise. Its own checks cost a small fit a millisecond."""
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if (binarizer.y_type_ in ("binary", "multiclass") and y.ndim == 1 and len(classes) >= 2
                and y.dtype.kind in "biufUS" and classes.dtype.kind == y.dtype.kind):
            index = np.searchsorted(classes, y)
            if index.size and index.max() < len(classes) and np.array_equal(classes[index], y):
                if len(classes) == 2:
                    return (index == 1).reshape(-1, 1)
                one_hot = np.zeros((len(y), len(classes)), dtype=bool)
                one_hot[np.arange(len(y)), index] = True
                return one_hot
        return binarizer.transform(y).astype(bool)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and the labels y; returns self."""
        self._validate_params()
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); classes is needed on the first call. Returns self."""
        self._validate_params()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _decode(self, output):
        if self.n_outputs_ == 1:
            output = output.ravel()
        binarizer = self._label_binarizer
        if binarizer.y_type_ == "multiclass" and not binarizer.sparse_input_:
            # LabelBinarizer.inverse_transform's own rule for multiclass outputs (the class of the
            # largest, clipped to the classes), without its checks: early stopping decodes every epoch
            return binarizer.classes_.take(output.argmax(axis=1), mode="clip")
        return binarizer.inverse_transform(output)

    def _score_function(self, y, y_pred, sample_weight=None):
        if y.ndim == 1 and y_pred.ndim == 1 and y.shape == y_pred.shape:
            # accuracy_score's value for single-label targets (the share of equal labels, weighted
            # when sample_weight is given), without its target-type checks, which cost an early-stopping
            # epoch more than its training (about 0.5 ms against 0.4 ms on digits)
            return float(np.average(y == y_pred, weights=sample_weight))
        return accuracy_score(y, y_pred, sample_weight=sample_weight)

    def predict(self, X):
        """The predicted class labels of X."""
        self._check_fitted()
        return self._decode(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities of X, (n_samples, n_classes)."""
        self._check_fitted()
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """The log of predict_proba."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    """scikit-learn's MLPRegressor on bpfast's native core: the same parameters, methods,
    fitted attributes and (in float64, for the same random_state) the same model.

    n_threads (keyword-only, bpfast's own): the native thread count of this
    estimator's fit and predict, for the thread that calls them only (estimators
    fitted side by side in other threads keep their own); None: bpfast's
    setting (all cores unless set).
    """

    _parameter_constraints: dict = {**_SklearnRegressor._parameter_constraints, "n_threads": THREADS_CONSTRAINT}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, n_threads=None):
        _keep_arguments(self, locals())

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                              dtype=FLOAT_DTYPES, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and the targets y; returns self."""
        self._validate_params()
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y); returns self. As in scikit-learn 1.9's MLPRegressor it is
        there for every solver (with lbfgs it runs lbfgs on (X, y) from the current weights)."""
        self._validate_params()
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _decode(self, output):
        return output.ravel() if output.shape[1] == 1 else output

    def _score_function(self, y, y_pred, sample_weight=None):
        return r2_score(y, y_pred, sample_weight=sample_weight)

    def predict(self, X):
        """The predicted targets of X: (n_samples,) or (n_samples, n_outputs)."""
        self._check_fitted()
        return self._decode(self._forward(X))
