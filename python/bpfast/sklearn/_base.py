"""What MLPClassifier and MLPRegressor share: parameters, initialisation, the
solvers and the native engine behind them.

The estimator's fitted weights live in coefs_ (n_in, n_out) and intercepts_,
as in scikit-learn; a native network (`bpfast._core.f32/f64.Network`, whose
W is the transpose of a coef) does the math. Every fit or partial_fit writes
coefs_ into the engine first and reads them back at the end, so that
assigning coefs_ between calls works as it does in scikit-learn. The engine
keeps the solver's state (SGD's velocity, Adam's moments and step count)
between partial_fit calls; a pickle carries it.

Stochastic solvers run one native call per epoch (train_epoch, or
train_epoch_csr for sparse X, whose batches are made dense one at a time: the
batches in scikit-learn's order, scikit-learn's update forms and objective, see
cpp/model/network.h Objective and UpdateForm); everything per epoch
(shuffling with the estimator's RandomState, the learning-rate schedule,
early stopping, tol) is Python, in scikit-learn's order of random draws.
lbfgs runs scipy's L-BFGS-B on one native loss-and-gradient call per
evaluation over the whole data (compute_gradients_csr for sparse X, which
makes a chunk of rows dense at a time).
"""

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import scipy
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .. import _core, _precision, optim

try:  # scikit-learn ≥ 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn: the estimator's own method
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

STOCHASTIC_SOLVERS = ("sgd", "adam")

# scikit-learn's activation names → the core's.
HIDDEN_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}

# out_activation_ → (the core's output activation, its loss). The log-losses
# report scikit-learn's clipped values. A Poisson regressor's engine outputs
# the log-rate; predict takes its exp.
ENGINE_OUTPUTS = {
    "softmax": ("softmax", "softmax_clipped_log_loss"),
    "logistic": ("sigmoid", "sigmoid_clipped_log_loss"),
    "identity": ("identity", "squared_error"),
    "exp": ("identity", "poisson"),
}

THREADS_CONSTRAINT = [Interval(Integral, 1, 256, closed="both"), None]


PREDICT_CHUNK = 1024  # sparse rows made dense at a time for the forward pass


def as_engine_input(X, dtype=None):
    """X for the engine: a C-contiguous array, or a CSR matrix with int64 indices (kept sparse)."""
    if not scipy.sparse.issparse(X):
        return np.ascontiguousarray(X, dtype=dtype)
    X = scipy.sparse.csr_matrix(X, dtype=dtype if dtype is not None else X.dtype)
    X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    return X


def shuffled(order, random_state):
    """order permuted as sklearn.utils.shuffle permutes it, from the same draws
    (RandomState.shuffle of arange(n)), without its per-call overhead."""
    permutation = np.arange(len(order))
    random_state.shuffle(permutation)
    return order[permutation]


# scikit-learn 1.9's messages, word for word.
NON_FINITE_WEIGHTS = ("Solver produced non-finite parameter weights. The input data may contain large values "
                      "and need to be preprocessed.")
VALIDATION_TOO_SMALL = ("The validation set is too small. Increase 'validation_fraction' or the size of your "
                        "dataset.")


def lbfgs_iterations(result, max_iter):
    """The iterations L-BFGS-B ran (at most max_iter), with scikit-learn's ConvergenceWarning when it
    did not converge (scikit-learn's own check, so that the message is its own)."""
    return _check_optimize_result("lbfgs", result, max_iter)


class SolverState:
    """The stochastic solver of a fit: the bpfast.optim optimizer and the current learning rate
    (``learning_rate``, the attribute scikit-learn's optimizer objects have, which the schedules
    change between epochs)."""

    def __init__(self, optimizer, learning_rate):
        self.optimizer = optimizer
        self.learning_rate = learning_rate



@dataclass(frozen=True, kw_only=True)
class _SklearnSGD(optim.SGD):
    """optim.SGD as scikit-learn bounds its sgd solver: a momentum of 1 is allowed too."""

    _momentum_may_be_one = True

class BaseMLP(BaseEstimator):
    """The solvers and engine shared by the two estimators (not for direct use)."""

    # ------------------------------------------------------------ engine
    def _output_activation(self):
        raise NotImplementedError

    def _new_engine(self, units, dtype):
        output, loss = ENGINE_OUTPUTS[self.out_activation_]
        core = _precision.of(dtype).core
        activations = [HIDDEN_ACTIVATIONS[self.activation]] * (len(units) - 2) + [output]
        engine = core.Network(list(units), activations, loss, "mean")
        value_scale = 1.0 / units[-1] if self.out_activation_ == "identity" else 1.0
        engine.set_objective(l2=float(self.alpha), value_scale=value_scale)
        return engine

    def _engine_key(self, units, dtype):
        return (tuple(int(u) for u in units), np.dtype(dtype), self.activation, self.out_activation_)

    def _training_engine(self, units, dtype):
        """(engine, created): the engine kept between calls, or a new one when there is none
        or it has another architecture or dtype."""
        key = self._engine_key(units, dtype)
        engine = getattr(self, "_engine", None)
        if engine is not None and getattr(self, "_engine_of", None) == key:
            engine.set_objective(l2=float(self.alpha), value_scale=engine.objective[1])
            return engine, False
        self._engine, self._engine_of = self._new_engine(units, dtype), key
        return self._engine, True

    def _units(self):
        return [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]

    def _load_weights(self, engine):
        """coefs_ and intercepts_ into the engine."""
        views = engine.parameters()
        for l, (coef, intercept) in enumerate(zip(self.coefs_, self.intercepts_)):
            views[2 * l][...] = np.asarray(coef).T
            views[2 * l + 1][...] = intercept

    def _engine_weights(self, engine):
        """Copies of the engine's weights as (coefs, intercepts), coefs (n_in, n_out) C-contiguous."""
        views = engine.parameters()
        coefs = [np.array(W.T, order="C") for W in views[0::2]]
        intercepts = [b.copy() for b in views[1::2]]
        return coefs, intercepts

    def _engine_output(self, engine, X):
        """The engine's output for X of its dtype (dense, or CSR made dense a chunk of rows at a
        time), out_activation_ applied."""
        out = np.empty((X.shape[0], engine.parameters()[-1].shape[0]), dtype=X.dtype)
        if scipy.sparse.issparse(X):
            for start in range(0, X.shape[0], PREDICT_CHUNK):
                stop = min(start + PREDICT_CHUNK, X.shape[0])
                engine.forward(X[start:stop].toarray(), out[start:stop])
        else:
            engine.forward(X, out)
        if self.out_activation_ == "exp":
            np.exp(out, out=out)
        return out

    def _forward(self, X, check_input=True):
        """The output layer's values for X from coefs_ and intercepts_."""
        if check_input:
            X = _validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        dtype = np.result_type(X.dtype, self.coefs_[0].dtype)
        dtype = dtype if dtype in _precision.BY_STORAGE else _precision.WIDEST
        units = self._units()
        engine = getattr(self, "_engine", None)
        if engine is None or getattr(self, "_engine_of", None) != self._engine_key(units, dtype):
            engine = self._new_engine(units, dtype)
        self._load_weights(engine)
        with self._threads():
            return self._engine_output(engine, as_engine_input(X, dtype))

    @contextmanager
    def _threads(self):
        """n_threads for the native calls of this Python thread for the duration (unchanged when None);
        other threads, another estimator's fit among them, keep their own."""
        if self.n_threads is None:
            yield
            return
        before = _core.get_local_num_threads()
        _core.set_local_num_threads(self.n_threads)
        try:
            yield
        finally:
            _core.set_local_num_threads(before)

    # ------------------------------------------------------------ fit
    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        units = [X.shape[1]] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, units, X.dtype)
        with self._threads():
            # sparse X stays sparse: the engine makes a batch (or, for lbfgs, a chunk of rows) dense at a time
            if self.solver in STOCHASTIC_SOLVERS:
                self._fit_stochastic(as_engine_input(X), y, sample_weight, units, incremental)
            else:
                self._fit_lbfgs(as_engine_input(X), y, sample_weight, units)
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError(NON_FINITE_WEIGHTS)
        return self

    def _initialize(self, y, units, dtype):
        """Fresh weights and records, drawn as scikit-learn draws them: per layer a uniform
        (fan_in, fan_out) coef then a uniform intercept, bound √(f / (fan_in + fan_out)) with
        f = 2 for logistic hidden units and 6 otherwise, from the estimator's RandomState."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(units)
        self.out_activation_ = self._output_activation()
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            self.coefs_.append(coef.astype(dtype, copy=False))
            self.intercepts_.append(intercept.astype(dtype, copy=False))
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [b.copy() for b in self.intercepts_]
        self._engine = self._optimizer = self._saved_optimizer_state = None
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _targets(self, y, dtype):
        """(dense targets or None, int64 labels or None) for the engine."""
        if self.out_activation_ == "softmax":
            return None, np.ascontiguousarray(np.argmax(y, axis=1), dtype=np.int64)
        if self.out_activation_ == "logistic" and y.shape[1] == 1:
            return None, np.ascontiguousarray(y[:, 0], dtype=np.int64)
        return np.ascontiguousarray(y, dtype=dtype), None

    # ------------------------------------------------------------ stochastic solvers
    def _solver_optimizer(self):
        """The stochastic solver as a bpfast.optim optimizer (run in scikit-learn's update form)."""
        if self.solver == "sgd":
            momentum = float(self.momentum)  # Nesterov's term is μ·velocity: nothing when μ = 0
            return _SklearnSGD(float(self.learning_rate_init), momentum=momentum,
                             nesterov=bool(self.nesterovs_momentum) and momentum > 0)
        return optim.Adam(float(self.learning_rate_init), betas=(float(self.beta_1), float(self.beta_2)),
                          eps=float(self.epsilon))

    def _start_optimizer(self, engine, incremental, created):
        """A fresh solver state, as fit starts one, or the one kept for partial_fit."""
        saved = getattr(self, "_saved_optimizer_state", None)
        if incremental and getattr(self, "_optimizer", None) is not None:
            if not created:
                return
            if saved is not None:  # an engine rebuilt after unpickling: its state comes back
                engine.set_optimizer(self._optimizer.optimizer.settings(form="sklearn"))
                m, v, steps, epochs = saved
                first, second = engine.optimizer_state()
                if first.shape == m.shape and second.shape == v.shape:
                    first[...], second[...] = m, v
                    engine.set_counters(steps, epochs)
                    self._saved_optimizer_state = None
                    return
        optimizer = self._solver_optimizer()
        engine.set_optimizer(optimizer.settings(form="sklearn"))
        self._optimizer = SolverState(optimizer, float(self.learning_rate_init))
        self._saved_optimizer_state = None

    def _fit_stochastic(self, X, y, sample_weight, units, incremental):
        engine, created = self._training_engine(units, X.dtype)
        self._start_optimizer(engine, incremental, created)
        self._load_weights(engine)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
            arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
            parts = train_test_split(*arrays, random_state=self._random_state,
                                     test_size=self.validation_fraction, stratify=stratify)
            X_train, X_val, y_train, y_val = parts[:4]
            sw_train, sw_val = parts[4:] if sample_weight is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError(VALIDATION_TOO_SMALL)
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            X_val = as_engine_input(X_val)
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            X_val = y_val = sw_val = None
        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        X_train = as_engine_input(X_train)
        if scipy.sparse.issparse(X_train):
            csr = (X_train.data, X_train.indices, X_train.indptr)
            train_epoch = lambda *args: engine.train_epoch_csr(*csr, *args)  # noqa: E731
        else:
            train_epoch = lambda *args: engine.train_epoch(X_train, *args)  # noqa: E731
        T, labels = self._targets(y_train, X_train.dtype)
        sample_idx = np.arange(n_samples, dtype=int)
        sgd = self.solver == "sgd"
        diverged = False
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                order = None
                if self.shuffle:
                    sample_idx = shuffled(sample_idx, self._random_state)
                    order = sample_idx.astype(np.int64, copy=False)
                lr = self._optimizer.learning_rate if sgd else None
                pending = None
                if diverged:
                    loss = np.nan
                else:
                    loss, finite, batch, _, pending = train_epoch(T, labels, order, batch_size, lr, sw_train)
                    if not finite:
                        diverged = True
                        self._diverge(engine)
                        # scikit-learn's epoch loss: NaN after the step that diverged; when that step is
                        # the epoch's last, the mean that its non-finite loss (inf or NaN) makes
                        last = batch == (n_samples - 1) // batch_size
                        loss = loss if last and not np.isfinite(loss) else np.nan
                self.n_iter_ += 1
                self.loss_ = loss
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(engine, early_stopping, X_val, y_val, sw_val)
                if pending is not None:
                    raise pending
                if sgd and self.learning_rate == "invscaling":
                    self._optimizer.learning_rate = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
                if self._no_improvement_count > self.n_iter_no_change:
                    watched = "Validation score" if early_stopping else "Training loss"
                    message = (f"{watched} did not improve more than tol={self.tol:f} for "
                               f"{self.n_iter_no_change} consecutive epochs.")
                    if self._stop_or_slow_down(message):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        self.coefs_, self.intercepts_ = self._engine_weights(engine)
        if early_stopping:
            self.coefs_, self.intercepts_ = self._best_coefs, self._best_intercepts

    def _diverge(self, engine):
        """The engine refused a step whose loss, gradient or update was not finite (its weights are
        those before it). scikit-learn takes that step and trains on: its weights become NaN (a
        non-finite value reaches every output and gradient within a step or two) and every loss
        after it is NaN. The engine's weights are set to NaN so that what follows (the validation
        scores of early stopping, the weights kept, the error at the end) is scikit-learn's."""
        for view in engine.parameters():
            view[...] = np.nan

    def _stop_or_slow_down(self, message):
        """After n_iter_no_change epochs without progress: whether to stop (the adaptive
        schedule divides SGD's learning rate by 5 instead, down to 1e-6)."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(message + " Stopping.")
            return True
        if self._optimizer.learning_rate <= 1e-6:
            if self.verbose:
                print(message + " Learning rate too small. Stopping.")
            return True
        self._optimizer.learning_rate /= 5.0
        if self.verbose:
            print(message + " Setting learning rate to %f" % self._optimizer.learning_rate)
        return False

    def _update_no_improvement_count(self, engine, early_stopping, X_val, y_val, sw_val):
        if early_stopping:
            score = self._score_engine(engine, X_val, y_val, sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs, self._best_intercepts = self._engine_weights(engine)
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _score_engine(self, engine, X, y, sample_weight):
        """The validation score of the engine's current weights, as scikit-learn computes it: nan
        when a prediction is a float and not finite (a regressor's), else the score of the
        predictions (a classifier's labels, whatever its outputs were)."""
        y_pred = self._decode(self._engine_output(engine, X))
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred, sample_weight=sample_weight)

    # ------------------------------------------------------------ lbfgs
    def _fit_lbfgs(self, X, y, sample_weight, units):
        engine, _ = self._training_engine(units, X.dtype)
        T, labels = self._targets(y, X.dtype)
        views = engine.parameters()
        shapes = [(a, b) for a, b in zip(units[:-1], units[1:])]
        ends = np.cumsum([a * b for a, b in shapes] + [b for _, b in shapes])
        starts = np.concatenate([[0], ends[:-1]])
        n_layers = len(shapes)

        def unpack(packed):
            coefs = [packed[starts[l]:ends[l]].reshape(shapes[l]) for l in range(n_layers)]
            intercepts = [packed[starts[n_layers + l]:ends[n_layers + l]] for l in range(n_layers)]
            return coefs, intercepts

        if scipy.sparse.issparse(X):
            csr = (X.data, X.indices, X.indptr)
            evaluate = lambda: engine.compute_gradients_csr(*csr, T, labels, sample_weight)  # noqa: E731
        else:
            evaluate = lambda: engine.compute_gradients(X, T, labels, sample_weight)  # noqa: E731

        def loss_and_gradient(packed):
            coefs, intercepts = unpack(packed)
            for l in range(n_layers):
                views[2 * l][...] = coefs[l].T
                views[2 * l + 1][...] = intercepts[l]
            value = evaluate()
            grads = engine.gradients()
            return value, np.concatenate([g.T.ravel() for g in grads[0::2]] + list(grads[1::2]))

        packed = np.hstack([c.ravel() for c in self.coefs_ + self.intercepts_])
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        scipy_version = tuple(int(part) for part in scipy.__version__.split(".")[:2])
        if scipy_version < (1, 15):  # later versions dropped iprint
            options["iprint"] = 1 if self.verbose is True or self.verbose >= 1 else -1
        result = scipy.optimize.minimize(loss_and_gradient, packed, method="L-BFGS-B", jac=True, options=options)
        self.n_iter_ = lbfgs_iterations(result, self.max_iter)
        self.loss_ = result.fun
        coefs, intercepts = unpack(result.x)
        self.coefs_, self.intercepts_ = list(coefs), list(intercepts)

    # ------------------------------------------------------------ ONNX
    def to_onnx(self, path=None, opset=None):
        """The fitted estimator as an ONNX model (needs the onnx package); returns the onnx.ModelProto
        and writes it to path when given (a str, an os.PathLike or a binary file object).

        Input "X" [batch, n_features_in_] in the dtype of coefs_ (float64 after a float64 fit:
        cast X to it). Outputs: a classifier's "label" (predict) and "probabilities"
        (predict_proba), a regressor's "variable" [batch, n_outputs_] (predict). opset: from
        bpfast.onnx.MIN_OPSET (13) to the newest the installed onnx knows, bpfast.onnx.DEFAULT_OPSET
        (17) by default. Raises NotFittedError before fit, TypeError for a path of another type,
        ValueError for a bad opset.
        """
        from ._onnx import export

        return export(self, path, opset)

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        state = super().__getstate__()
        engine = state.pop("_engine", None)
        state.pop("_engine_of", None)
        if engine is not None and state.get("_optimizer") is not None:
            m, v = engine.optimizer_state()
            state["_saved_optimizer_state"] = (m.copy(), v.copy(), engine.steps, engine.epochs)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} "
                                 "is not stochastic.")
        return True

    def _check_fitted(self):
        check_is_fitted(self)
