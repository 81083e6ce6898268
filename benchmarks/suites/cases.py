"""The cases each suite measures, and the FLOP count of each.

Every suite picks its cases by mode: "full" (the default run), "quick"
(--quick, a subset) or "tiny" (--tiny, a handful of very small cases that
only the tests use: they check the machinery, not the speed).
"""

import math
import os
from dataclasses import dataclass, replace

MODES = ("full", "quick", "tiny")


def dense_step_flops(sizes, samples):
    """The GEMM flops of one forward and backward pass of a dense net over ``samples`` rows.

    Per layer (n_in -> n_out): 2·samples·n_in·n_out for the forward product and
    as much for the weight gradient; the input gradient, as much again, is
    computed for every layer but the first (nothing needs dX of the input).
    So 6·samples·Σ n_in·n_out − 2·samples·n_0·n_1. Biases, activations and the
    loss are left out (element-wise, a small share).
    """
    products = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * samples * (2 * sum(products) + sum(products[1:]))


@dataclass(frozen=True)
class StepCase:
    """One training step of a net with these layer sizes on one batch."""

    sizes: tuple
    batch: int
    output: str          # output activation
    loss: str
    activation: str = "relu"  # hidden layers

    @property
    def label(self):
        return f"{'-'.join(map(str, self.sizes))} b={self.batch}"

    @property
    def flops(self):
        """dense_step_flops: 6·batch·Σ n_in·n_out less the first layer's input gradient."""
        return dense_step_flops(self.sizes, self.batch)

    def params(self):
        return {"sizes": list(self.sizes), "batch": self.batch, "activation": self.activation,
                "output": self.output, "loss": self.loss}


STEP_CASES = [
    StepCase((32, 64, 64, 1), 16, "identity", "squared_error"),
    StepCase((784, 128, 10), 32, "softmax", "cross_entropy"),
    StepCase((784, 256, 128, 10), 128, "softmax", "cross_entropy"),
    StepCase((784, 1024, 1024, 10), 256, "softmax", "cross_entropy"),
]


TINY_STEP_CASES = [StepCase((8, 16, 3), 4, "softmax", "cross_entropy")]


def step_cases(mode):
    if mode == "quick":  # the largest net is left out: the GEMM cases of --quick cover its layer sizes
        return STEP_CASES[:3]
    return list(TINY_STEP_CASES if mode == "tiny" else STEP_CASES)


# What each GEMM operation computes, in numpy terms.
GEMM_OPS = {
    "square": "A@B",       # (n×n)·(n×n)
    "forward": "X@W.T",    # (batch×n_in)·(n_out×n_in)ᵀ -> batch×n_out
    "weight_grad": "d.T@X",  # (batch×n_out)ᵀ·(batch×n_in) -> n_out×n_in
    "input_grad": "d@W",   # (batch×n_out)·(n_out×n_in) -> batch×n_in
}


@dataclass(frozen=True)
class GemmCase:
    """One matrix product C (m×n) = op(A)·op(B) with inner dimension k."""

    op: str
    m: int
    n: int
    k: int
    batch: int = 0
    n_in: int = 0
    n_out: int = 0

    @property
    def label(self):
        if self.op == "square":
            return f"A@B n={self.m}"
        return f"{GEMM_OPS[self.op]} b={self.batch} {self.n_in}->{self.n_out}"

    @property
    def flops(self):
        return 2 * self.m * self.n * self.k

    def params(self):
        params = {"op": self.op, "expression": GEMM_OPS[self.op], "m": self.m, "n": self.n, "k": self.k}
        if self.op != "square":
            params.update(batch=self.batch, n_in=self.n_in, n_out=self.n_out)
        return params


def square(n):
    return GemmCase("square", n, n, n)


def mlp_gemms(batch, n_in, n_out):
    """The three products of a dense layer: forward, weight gradient, input gradient."""
    shape = dict(batch=batch, n_in=n_in, n_out=n_out)
    return [GemmCase("forward", batch, n_out, n_in, **shape),
            GemmCase("weight_grad", n_out, n_in, batch, **shape),
            GemmCase("input_grad", batch, n_in, n_out, **shape)]


SQUARE_SIZES = (64, 128, 256, 512, 1024, 2048)
MLP_BATCHES = (16, 32, 64, 128, 256)
MLP_LAYERS = ((784, 128), (784, 1024), (1024, 1024))

QUICK_SQUARE_SIZES = (64, 256, 1024)
QUICK_MLP_BATCHES = (256,)
QUICK_MLP_LAYERS = ((784, 1024),)

TINY_SQUARE_SIZES = (32,)
TINY_MLP_BATCHES = (8,)
TINY_MLP_LAYERS = ((32, 16),)


def gemm_cases(mode):
    sizes, batches, layers = {"full": (SQUARE_SIZES, MLP_BATCHES, MLP_LAYERS),
                              "quick": (QUICK_SQUARE_SIZES, QUICK_MLP_BATCHES, QUICK_MLP_LAYERS),
                              "tiny": (TINY_SQUARE_SIZES, TINY_MLP_BATCHES, TINY_MLP_LAYERS)}[mode]
    cases = [square(n) for n in sizes]
    for n_in, n_out in layers:
        for batch in batches:
            cases += mlp_gemms(batch, n_in, n_out)
    return cases


# ------------------------------------------------------------------ activations, softmax, losses

@dataclass(frozen=True)
class ElementwiseCase:
    """One activation (forward or backward), softmax, or loss kernel on a (rows, cols) array.

    kind: "forward" (A = act(Z)), "backward" (dZ from dA and the stored output
    A) or "loss" ((value, gradient) from outputs or logits and dense targets).
    """

    kind: str
    name: str
    rows: int
    cols: int

    @property
    def label(self):
        what = self.name if self.kind == "loss" else f"{self.name} {self.kind}"
        return f"{what} ({self.rows}, {self.cols})"

    @property
    def flops(self):
        return None  # memory-bound element-wise work: no GFLOP/s

    def params(self):
        return {"kind": self.kind, "name": self.name, "shape": [self.rows, self.cols]}


def _elementwise(shape, names=("relu", "sigmoid", "tanh", "softmax"), losses=("softmax_cross_entropy",
                                                                             "squared_error")):
    cases = []
    for name in names:
        cases += [ElementwiseCase("forward", name, *shape), ElementwiseCase("backward", name, *shape)]
    return cases + [ElementwiseCase("loss", name, *shape) for name in losses]


def elementwise_cases(mode):
    if mode == "tiny":
        return _elementwise((4, 8), names=("relu", "softmax"), losses=("softmax_cross_entropy",))
    if mode == "quick":
        return _elementwise((256, 1024), names=("relu", "softmax"), losses=("softmax_cross_entropy",))
    # A 10-class output layer, where the cost of each call dominates.
    return _elementwise((256, 1024)) + [ElementwiseCase("loss", "softmax_cross_entropy", 256, 10)]


# ------------------------------------------------------------------ a full epoch of fit

@dataclass(frozen=True)
class FitCase:
    """One epoch of mini-batch SGD over a data set of n samples (digits, or synthetic blobs)."""

    data: str        # "digits" (scikit-learn's bundled set) or "blobs" (synthetic, same shape)
    n: int
    sizes: tuple
    batch: int
    lr: float
    activation: str = "relu"
    output: str = "softmax"
    loss: str = "cross_entropy"

    @property
    def label(self):
        return f"{self.data} {self.n}x{self.sizes[0]}, {'-'.join(map(str, self.sizes))} b={self.batch}"

    @property
    def flops(self):
        """dense_step_flops over the n samples of an epoch, as for the training step."""
        return dense_step_flops(self.sizes, self.n)

    def params(self):
        return {"data": self.data, "samples": self.n, "sizes": list(self.sizes), "batch": self.batch,
                "lr": self.lr, "activation": self.activation, "output": self.output, "loss": self.loss,
                "epochs_per_call": 1}


DIGITS_SHAPE = (1797, 64, 10)  # samples, features, classes of sklearn.datasets.load_digits


def fit_cases(mode, have_digits):
    data = "digits" if have_digits else "blobs"
    n, features, classes = DIGITS_SHAPE
    if mode == "tiny":
        return [FitCase(data, 200, (features, 16, classes), 32, 0.1)]
    return [FitCase(data, n, (features, 128, classes), 32, 0.1)]


# ------------------------------------------------------------------ scikit-learn estimators

# samples, features and network outputs of each data set of the scikit-learn suite
# (sklearn_suite._raw_data makes them; a binary classifier has one output)
SKLEARN_DATA_SHAPES = {
    "digits": (1797, 64, 10),
    "digits_value": (1797, 64, 1),
    "breast_cancer": (569, 30, 1),
    "diabetes": (442, 10, 1),
    "synthetic": (100_000, 100, 10),
    "synthetic_200k": (200_000, 50, 10),
    "synthetic_regression": (100_000, 100, 1),
}
SKLEARN_TEST_SHARE = 0.25  # of the samples, held out for the test score (train_test_split's test_size)


@dataclass(frozen=True)
class SklearnCase:
    """One fit of bpfast.sklearn's estimator and scikit-learn's on a data set, same parameters."""

    data: str         # a key of SKLEARN_DATA_SHAPES: scikit-learn's bundled digits, breast_cancer and
    #                   diabetes, digits_value (the digit / 9 as a regression target), or a synthetic set
    estimator: str    # "MLPClassifier" or "MLPRegressor"
    settings: tuple   # (name, value) pairs given to both constructors, besides random_state
    what: str         # the settings in words
    n: int = 0        # the first n samples only (0: all)
    loss_rtol: float = 0.0  # > 0: in float32 the final losses must also agree within this share of |loss|

    @property
    def label(self):
        size = f" {self.n}" if self.n else ""
        return f"{self.data}{size}, {self.estimator} {self.what}"

    @property
    def flops(self):
        """The products' flops of a fit that runs a fixed number of epochs of a stochastic solver
        (dense_step_flops over the training samples, per epoch); None where the epochs or lbfgs's
        evaluations depend on convergence."""
        settings = dict(self.settings)
        if settings.get("tol") != 0.0 or settings.get("solver", "adam") == "lbfgs":
            return None
        samples, features, outputs = SKLEARN_DATA_SHAPES[self.data]
        samples = self.n or samples
        train = samples - math.ceil(SKLEARN_TEST_SHARE * samples)
        sizes = (features, *settings.get("hidden_layer_sizes", (100,)), outputs)
        return settings.get("max_iter", 200) * dense_step_flops(sizes, train)

    def params(self):
        return {"data": self.data, "estimator": self.estimator, "settings": dict(self.settings), "samples": self.n}


FIXED_EPOCHS = (("tol", 0.0), ("n_iter_no_change", 10 ** 6))  # exactly max_iter epochs
SKLEARN_CASES = [
    SklearnCase("digits", "MLPClassifier", (), "defaults (adam, (100,))"),
    SklearnCase("digits", "MLPClassifier", (("solver", "sgd"),), "sgd"),
    SklearnCase("digits", "MLPClassifier", (("solver", "lbfgs"),), "lbfgs"),
    SklearnCase("breast_cancer", "MLPClassifier", (), "defaults (adam, (100,))"),
    SklearnCase("diabetes", "MLPRegressor", (), "defaults (adam, (100,))"),
    SklearnCase("synthetic", "MLPClassifier", (("max_iter", 3),) + FIXED_EPOCHS, "adam (100,), 3 epochs"),
    SklearnCase("synthetic_200k", "MLPClassifier", (("max_iter", 3),) + FIXED_EPOCHS, "adam (100,), 3 epochs"),
    SklearnCase("synthetic_regression", "MLPRegressor", (("max_iter", 3),) + FIXED_EPOCHS,
                "adam (100,), 3 epochs"),
]
# A fixed number of epochs on the digits, so that the fit itself is timed rather than where it stops;
# both fits then follow the same steps, and float32 asks the final losses to agree within 1e-3.
FIXED_EPOCH_CASES = [
    SklearnCase("digits", "MLPClassifier", (("max_iter", 20),) + FIXED_EPOCHS, "adam (100,), 20 epochs",
                loss_rtol=1e-3),
    SklearnCase("digits", "MLPClassifier", (("solver", "sgd"), ("max_iter", 20)) + FIXED_EPOCHS,
                "sgd (100,), 20 epochs", loss_rtol=1e-3),
    SklearnCase("digits", "MLPClassifier", (("hidden_layer_sizes", (256, 128)), ("max_iter", 10)) + FIXED_EPOCHS,
                "adam (256, 128), 10 epochs", loss_rtol=1e-3),
    SklearnCase("digits", "MLPClassifier", (("batch_size", 32), ("max_iter", 5)) + FIXED_EPOCHS,
                "adam (100,), batch 32, 5 epochs", loss_rtol=1e-3),
    # lbfgs takes the same number of iterations but not the same steps: its line searches answer
    # float32's rounding, and a loss near 0 after 50 of them differs by more than 1e-3 of itself
    # (6.9e-3 of a loss of about 1e-4 in one run); it keeps the general float32 check
    SklearnCase("digits", "MLPClassifier", (("solver", "lbfgs"), ("max_iter", 50)) + FIXED_EPOCHS,
                "lbfgs (100,), 50 iterations"),
    SklearnCase("digits_value", "MLPRegressor", (("max_iter", 20),) + FIXED_EPOCHS, "adam (100,), 20 epochs",
                loss_rtol=1e-3),
]


def _one_epoch(case, n):
    """The case cut to max_iter=1 on its first n samples (--tiny)."""
    settings = tuple((name, 1 if name == "max_iter" else value) for name, value in case.settings)
    return replace(case, settings=settings, what=case.what.rsplit(",", 1)[0] + ", max_iter=1", n=n)


def sklearn_cases(mode, have_sklearn):
    """The scikit-learn suite's cases: none without scikit-learn (bpfast.sklearn needs it)."""
    if not have_sklearn:
        return []
    if mode == "tiny":
        return [_one_epoch(case, 200) for case in FIXED_EPOCH_CASES]
    if mode == "quick":
        return [SKLEARN_CASES[i] for i in (0, 3, 4)]
    return SKLEARN_CASES + FIXED_EPOCH_CASES


# ------------------------------------------------------------------ thread scaling

@dataclass(frozen=True)
class ThreadCase:
    """A large GEMM (A@B, n×n) or one training step, run on a given number of threads."""

    workload: str    # "gemm" or "step"
    threads: int
    n: int = 0                  # gemm
    step: StepCase = None       # step

    @property
    def work_label(self):
        return f"A@B n={self.n}" if self.workload == "gemm" else f"step {self.step.label}"

    @property
    def label(self):
        return f"{self.work_label}, {self.threads} thread{'s' if self.threads != 1 else ''}"

    @property
    def flops(self):
        return 2 * self.n ** 3 if self.workload == "gemm" else self.step.flops

    def params(self):
        params = {"workload": self.work_label, "threads": self.threads}
        if self.workload == "gemm":
            params.update(op="square", m=self.n, n=self.n, k=self.n)
        else:
            params.update(self.step.params())
        return params


def thread_counts(cores=None):
    """1, 2, 4, ... up to the core count, and the core count itself."""
    cores = max(1, cores or os.cpu_count() or 1)
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return counts + [cores]


def thread_cases(mode, cores=None):
    counts = thread_counts(cores)
    if mode == "tiny":
        return [ThreadCase("gemm", k, 64) for k in counts[:2]]
    # the small step: scikit-learn's defaults on the digits (100 hidden units, batch 200), run in row chunks
    sklearn_step = ("step", 0, StepCase((64, 100, 10), 200, "softmax", "cross_entropy"))
    if mode == "quick":
        workloads = [("gemm", 1024, None), sklearn_step]
    else:
        workloads = [("gemm", 1024, None), sklearn_step,
                     ("step", 0, StepCase((784, 1024, 1024, 10), 256, "softmax", "cross_entropy"))]
    return [ThreadCase(kind, k, n, step) for kind, n, step in workloads for k in counts]


# ------------------------------------------------------------------ peak memory of a fit

@dataclass(frozen=True)
class MemoryCase:
    """fit() of a net on n synthetic samples, measured in a fresh process."""

    sizes: tuple
    n: int
    batch: int = 32
    epochs: int = 2
    lr: float = 0.01

    @property
    def label(self):
        return f"{'-'.join(map(str, self.sizes))} n={self.n} b={self.batch}"

    @property
    def flops(self):
        return None

    def params(self):
        return {"sizes": list(self.sizes), "samples": self.n, "batch": self.batch, "epochs": self.epochs,
                "lr": self.lr, "activation": "relu", "output": "softmax", "loss": "cross_entropy"}


def memory_cases(mode):
    if mode == "tiny":
        return [MemoryCase((8, 16, 3), 100, batch=16, epochs=1)]
    if mode == "quick":
        # The peak comes in the first epoch (the buffers are made then and reused) and, batch by batch,
        # does not grow with the sample count: one epoch on a quarter of the samples measures the same
        # growth in an eighth of the time (the numpy reference's fit takes most of it). Only the "per
        # byte" column, which divides by the data's size too, reads differently.
        return [MemoryCase((784, 256, 10), 2500, epochs=1), MemoryCase((784, 1024, 1024, 10), 500, epochs=1)]
    return [MemoryCase((784, 256, 10), 10000), MemoryCase((784, 1024, 1024, 10), 2000)]


# ------------------------------------------------------------------ fit over MPI ranks

@dataclass(frozen=True)
class DistributedCase:
    """fit over `ranks` MPI ranks, `batch` rows per rank and step, `steps` global steps an epoch.

    scaling: "weak" (batch rows per rank whatever the rank count) or "strong" (a global batch of
    batch·ranks rows fixed across the cases of a net, split over the ranks); overlap: also time
    the ranks with BPFAST_OVERLAP=1 (each layer's sum started as its backward pass ends)."""

    sizes: tuple
    batch: int
    ranks: int
    steps: int = 8
    scaling: str = "weak"
    overlap: bool = False

    @property
    def label(self):
        return f"{'-'.join(map(str, self.sizes))} b={self.batch}/rank, {self.ranks} ranks ({self.scaling})"

    @property
    def flops(self):
        """The GEMM flops of a global step (ranks·batch rows), counted as dense_step_flops counts them."""
        return dense_step_flops(self.sizes, self.batch * self.ranks)

    def params(self):
        return {"sizes": list(self.sizes), "batch": self.batch, "ranks": self.ranks, "steps": self.steps,
                "scaling": self.scaling, "overlap": self.overlap}


def distributed_cases(mode, cores=None):
    cores = cores or os.cpu_count() or 1
    if mode == "tiny":
        return [DistributedCase((8, 16, 3), 4, 2, steps=2)]
    if mode == "quick":
        return [DistributedCase((784, 1024, 1024, 10), 256, 2, steps=4)]
    ranks = range(2, max(2, min(cores, 4)) + 1)
    large = (784, 1024, 1024, 10)
    weak = [DistributedCase(sizes, batch, n, overlap=sizes == large)
            for sizes, batch in ((large, 256), ((784, 256, 10), 64)) for n in ranks]
    # strong scaling: the global batch of 256 rows of the large net split over the ranks
    strong = [DistributedCase(large, 256 // n, n, scaling="strong") for n in ranks]
    return weak + strong
