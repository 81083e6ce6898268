"""The fit suite: one full training epoch (mini-batch SGD over a whole data set).

Data: scikit-learn's bundled digits (sklearn.datasets.load_digits: 1797
8×8 images, 64 features scaled to [0, 1] by dividing by 16, 10 classes) when
scikit-learn is installed. Without it, a synthetic set of the same shape,
"blobs": 10 class centres drawn uniformly in [0, 1]^64, each sample its
class centre plus Gaussian noise (σ = 0.15) clipped to [0, 1], labels in
turn 0..9, all from a Generator seeded by --seed.

Competitors, all training the same net ([64, 128, 10], relu, softmax with
cross-entropy, batch 32, plain SGD at lr 0.1, no momentum, no weight decay)
from the same initial weights:
  bpfast        net.fit(X, y, epochs=1, ...): the whole epoch in one native call
  train_step    a Python loop over net.train_step on the same batches (what
                fit saves: one Python round trip and one batch copy per batch)
  reference     bpfast.reference.Network.fit (the numpy twin)
  sklearn       MLPClassifier(solver="sgd", batch_size=32,
                learning_rate_init=0.1, momentum=0, nesterovs_momentum=False,
                alpha=0), one partial_fit(X, y) (one epoch) per call
  torch         nn.Sequential + torch.optim.SGD, a loop over the batches of a
                torch.randperm order
Every timed call is one epoch with shuffling on. Each competitor shuffles
with its own generator, so the batches differ but their count and sizes are
the same.

Check: from the same initial weights (copied into the PyTorch model, and into
scikit-learn's coefs_ and intercepts_, which are Wᵀ and b), one epoch without
shuffling, so every competitor sees the same batches in the same order. The
epoch's loss (the mean of the batch losses, weighted by batch size, each taken
before its update) and all weights after the epoch must match bpfast's:
relative error of the loss, and normwise relative error of the weights, at
most TOLERANCE. scikit-learn gets the looser LOOSE_TOLERANCE: it is a
different implementation (its own log-loss clipping, float64 sums in places),
and what the check must catch is a different computation, not rounding.
"""

import functools

import numpy as np

import bpfast
from bpfast import reference

from benchmarks.harness import optional
from benchmarks.suites import mixed
from benchmarks.suites.cases import DIGITS_SHAPE, fit_cases
from benchmarks.harness.competitor import Competitor, Verdict

NAME = "fit"
MARKDOWN_LAYOUT = "long"
TABLE = "fit"
TITLE = "Training epoch (fit)"
NOTE = ("One call is one epoch of mini-batch SGD over the whole data set, shuffled. train_step is a Python loop "
        "over net.train_step; sklearn is MLPClassifier.partial_fit. GFLOP/s counts the training step's flops per sample "
        "(no input gradient for the first layer) times n per epoch.")
EXPLANATION = (
    "One call is one training epoch: mini-batch SGD over the whole data set, shuffled. The data set is "
    "scikit-learn's bundled digits (1797 samples, 64 features scaled to [0, 1], 10 classes) when scikit-learn "
    "is installed, otherwise synthetic Gaussian blobs of the same shape (the case name says which). The net "
    "is 64-128-10, relu, softmax with cross-entropy, batch 32, SGD with lr 0.1. Competitors: `bpfast` is "
    "`net.fit(X, y, epochs=1)`, which runs the whole epoch in one native call; `train_step` is a Python loop "
    "over `net.train_step` on the same batches, which is what fit saves; `reference` is "
    "`bpfast.reference.Network.fit`; `sklearn` is scikit-learn's `MLPClassifier` (solver sgd, the same batch "
    "size and learning rate, no momentum, no L2 penalty), one `partial_fit` per epoch; `torch` is a PyTorch "
    "loop over the batches. Check: from the same initial weights and without shuffling, the epoch's loss and "
    "the weights after the epoch must match bpfast's (relative error at most 1e-4 for the loss and 1e-3 for "
    "the weights in float32; 1e-2 for scikit-learn). With `--dtype mixed_bfloat16`, `bpfast`, `train_step` "
    "and `reference` compute in bfloat16 (float32 weights), `bpfast float32` is the same fit in float32, "
    "`torch` PyTorch in float32 and `torch autocast` PyTorch with the forward pass and the loss under "
    "`torch.autocast(\"cpu\", dtype=torch.bfloat16)`; every check then allows 2e-2 (bfloat16 operands).")

TOLERANCE = {"float32": {"loss": 1e-4, "params": 1e-3}, "float64": {"loss": 1e-10, "params": 1e-8}}
LOOSE_TOLERANCE = {"loss": 1e-2, "params": 1e-2}
MIXED = True  # takes --dtype mixed_bfloat16 (benchmarks/suites/mixed.py)
BLOB_NOISE = 0.15


def _have_digits():
    return optional.load("sklearn") is not None


def cases(mode):
    return fit_cases(mode, _have_digits())


def notes():
    out = []
    if optional.load("sklearn") is None:
        out.append(optional.missing_note("sklearn", "no sklearn column, and the data set is synthetic "
                                                    "blobs of the digits' shape instead of the digits"))
    if optional.torch() is None:
        out.append(optional.missing_note("torch", "no torch column"))
    return out


def load_data(case, dtype, seed):
    """(X, labels): the first case.n samples of the digits, or of the seeded blobs."""
    n, features, classes = DIGITS_SHAPE
    digits = optional.load_digits() if case.data == "digits" else None
    if digits is not None:
        X, labels = digits
        X = X / 16.0  # pixel values 0..16 -> [0, 1]
    else:
        rng = np.random.default_rng([seed, 4])
        centres = rng.uniform(0, 1, size=(classes, features))
        labels = np.arange(n) % classes
        X = np.clip(centres[labels] + BLOB_NOISE * rng.standard_normal((n, features)), 0, 1)
    return (np.ascontiguousarray(X[:case.n], dtype=mixed.storage(dtype)),
            np.asarray(labels[:case.n], dtype=np.int64))


def _new_net(cls, case, dtype, seed):
    return cls(list(case.sizes), activation=case.activation, output=case.output, loss=case.loss,
               seed=seed, **mixed.net_kwargs(dtype))


def _flat(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def _batches(n, batch, order=None):
    for start in range(0, n, batch):
        yield slice(start, min(start + batch, n)) if order is None else order[start:start + batch]


# ------------------------------------------------------------------ competitors
# Each trainer has epoch(shuffle) -> the epoch's mean loss, and parameters() -> [W0, b0, W1, b1, ...]
# in bpfast's layout (W is n_out × n_in).

class FitTrainer:
    """bpfast.Network or bpfast.reference.Network, one fit() call per epoch."""

    def __init__(self, cls, case, dtype, seed, X, y):
        self.net, self.case, self.X, self.y = _new_net(cls, case, dtype, seed), case, X, y

    def epoch(self, shuffle):
        return self.net.fit(self.X, self.y, epochs=1, batch_size=self.case.batch, lr=self.case.lr,
                            shuffle=shuffle)[0]

    def parameters(self):
        return [p.copy() for p in self.net.parameters()]


class StepLoopTrainer(FitTrainer):
    """bpfast.Network driven from Python: one train_step per batch."""

    def __init__(self, case, dtype, seed, X, y):
        super().__init__(bpfast.Network, case, dtype, seed, X, y)
        self.rng = np.random.default_rng([seed, 5])

    def epoch(self, shuffle):
        X, y, n = self.X, self.y, self.X.shape[0]
        order = self.rng.permutation(n) if shuffle else None
        total = 0.0
        for rows in _batches(n, self.case.batch, order):
            Xb, yb = X[rows], y[rows]
            total += self.net.train_step(Xb, yb, self.case.lr) * yb.shape[0]
        return total / n


class SklearnTrainer:
    """MLPClassifier with bpfast's initial weights, one partial_fit (one epoch) per call."""

    def __init__(self, case, dtype, seed, X, y, shuffle):
        import warnings
        neural_network = optional.sklearn_neural_network()
        if case.activation != "relu" or case.output != "softmax" or case.loss != "cross_entropy":
            raise ValueError("the scikit-learn twin covers relu hidden layers with a softmax cross-entropy output")
        self.X, self.y = X, y
        self.model = neural_network.MLPClassifier(
            hidden_layer_sizes=tuple(case.sizes[1:-1]), activation="relu", solver="sgd",
            batch_size=case.batch, learning_rate="constant", learning_rate_init=case.lr, momentum=0.0,
            nesterovs_momentum=False, alpha=0.0, max_iter=1, shuffle=shuffle, random_state=seed)
        # partial_fit on one batch builds coefs_ and intercepts_ (and trains on it); then bpfast's
        # initial weights replace them, in place, so the optimizer keeps the same arrays.
        classes = np.arange(case.sizes[-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(X[:case.batch], y[:case.batch], classes=classes)
        init = _new_net(bpfast.Network, case, dtype, seed)
        for layer, coef, intercept in zip(init.layers, self.model.coefs_, self.model.intercepts_):
            if coef.shape != layer.W.T.shape:
                raise ValueError(f"scikit-learn's coefs_ has shape {coef.shape}; expected {layer.W.T.shape}")
            coef[...] = layer.W.T
            intercept[...] = layer.b

    def epoch(self, shuffle):
        self.model.partial_fit(self.X, self.y)
        return float(self.model.loss_)

    def parameters(self):
        out = []
        for coef, intercept in zip(self.model.coefs_, self.model.intercepts_):
            out += [coef.T, intercept]
        return out


class TorchFitTrainer:
    """The same net in PyTorch, a loop over the batches of one epoch; autocast=True runs each forward pass
    and loss under torch.autocast("cpu", dtype=torch.bfloat16)."""

    def __init__(self, case, dtype, seed, X, y, threads, autocast=False):
        from benchmarks.suites import step_suite
        torch = optional.torch()
        torch.set_num_threads(threads)
        self.torch, self.case = torch, case
        self.model, self.loss_fn, targets = step_suite.torch_twin(case.sizes, case.activation, case.output,
                                                                  case.loss, dtype, seed)
        self.X, self.T = torch.from_numpy(X.copy()), targets(y)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=case.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.context = (lambda: mixed.autocast(torch)) if autocast else mixed.nullcontext

    def epoch(self, shuffle):
        torch, n = self.torch, self.X.shape[0]
        order = torch.randperm(n, generator=self.generator) if shuffle else None
        total = 0.0
        for rows in _batches(n, self.case.batch, order):
            Xb, Tb = self.X[rows], self.T[rows]
            self.optimizer.zero_grad(set_to_none=True)
            with self.context():
                loss = self.loss_fn(self.model(Xb), Tb)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * Xb.shape[0]
        return total / n

    def parameters(self):
        return [p.detach().numpy().copy() for p in self.model.parameters()]


def _check(make_trainer, loose):
    """(loss of one unshuffled epoch, the weights after it, loose?) from the initial weights."""
    trainer = make_trainer(False)
    loss = float(trainer.epoch(False))
    return loss, _flat(trainer.parameters()), loose


def _build(make_trainer):
    trainer = make_trainer(True)
    return functools.partial(trainer.epoch, True)


def _competitor(name, make_trainer, loose=False):
    return Competitor(name, functools.partial(_check, make_trainer, loose), functools.partial(_build, make_trainer))


def competitors(case, dtype, seed, threads):
    X, y = load_data(case, dtype, seed)
    found = [
        _competitor("bpfast", lambda shuffle: FitTrainer(bpfast.Network, case, dtype, seed, X, y)),
        _competitor("train_step", lambda shuffle: StepLoopTrainer(case, dtype, seed, X, y)),
        _competitor("reference", lambda shuffle: FitTrainer(reference.Network, case, dtype, seed, X, y)),
    ]
    floats = mixed.float_dtype(dtype)
    if mixed.is_mixed(dtype):
        found.insert(1, _competitor(mixed.FLOAT32_TWIN,
                                    lambda shuffle: FitTrainer(bpfast.Network, case, floats, seed, X, y)))
    if optional.sklearn_neural_network() is not None:
        found.append(_competitor("sklearn", lambda shuffle: SklearnTrainer(case, floats, seed, X, y, shuffle),
                                 loose=True))
    if optional.torch() is not None:
        found.append(_competitor("torch", lambda shuffle: TorchFitTrainer(case, floats, seed, X, y, threads)))
        if mixed.is_mixed(dtype):
            found.append(_competitor(mixed.AUTOCAST, lambda shuffle: TorchFitTrainer(case, dtype, seed, X, y,
                                                                                     threads, autocast=True)))
    return found


def precision_of(name, dtype):
    """The precision competitor `name` computes in (a float32 one in a mixed_bfloat16 run)."""
    return mixed.precision_of(name, dtype)


def compare(case, dtype, base, value):
    """Epoch loss (relative) and the weights after the epoch (relative, normwise) against bpfast's."""
    (loss0, params0, _), (loss1, params1, loose) = base, value
    tol = LOOSE_TOLERANCE if loose else TOLERANCE.get(dtype, mixed.MIXED_TOLERANCE)
    if mixed.is_mixed(dtype):
        tol = {key: max(tol[key], mixed.MIXED_TOLERANCE[key]) for key in tol}
    if params1.shape != params0.shape:
        return Verdict(False, f"parameter count {params1.size} != {params0.size}", float("inf"))
    loss_err = abs(loss1 - loss0) / max(1.0, abs(loss0))
    params_err = float(np.linalg.norm(params1 - params0) / max(np.linalg.norm(params0), 1e-30))
    ok = bool(np.isfinite(loss1) and np.isfinite(params_err)
              and loss_err <= tol["loss"] and params_err <= tol["params"])
    detail = (f"epoch loss {loss1:.6g} vs {loss0:.6g} (rel err {loss_err:.1e}), weights after the epoch "
              f"rel err {params_err:.1e}; tol {tol['loss']:.0e}/{tol['params']:.0e}"
              + (" (loose)" if loose else ""))
    return Verdict(ok, detail, max(loss_err, params_err))
