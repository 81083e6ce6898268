"""The training-step suite: one SGD step (forward, loss, backward, update).

Competitors: bpfast.Network (the C++ kernels), bpfast.reference.Network (the
same class on the pure-numpy kernels), "numpy plain" (numpy_plain.PlainNet:
the step as a careful numpy user writes it, buffers preallocated, in place)
and, when it is importable, PyTorch on the CPU (nn.Sequential of nn.Linear +
torch.optim.SGD). All start from the same initial weights: the two bpfast
classes by sharing the seed, numpy plain and PyTorch by copying the weights
of a bpfast net built with that seed.

Check: on fresh nets, one step with lr=CHECK_LR; the loss it returns and the
gradient implied by the update, (W_before − W_after) / lr over every weight
and bias, must match bpfast's. Timing: fresh nets again, stepping with the
small TIMED_LR on the same batch again and again, so that the weights stay
sane however many steps are timed.
"""

import functools

import numpy as np

import bpfast
from bpfast import _precision, reference

from benchmarks.workers import numpy_plain
from benchmarks.harness import optional
from benchmarks.suites import mixed
from benchmarks.suites.cases import step_cases
from benchmarks.harness.competitor import Competitor, Verdict

torch = optional.torch()

NAME = "steps"
TABLE = "steps"
TITLE = "Training step (forward, loss, backward, SGD update)"
NOTE = ("One call is net.train_step(X, T, lr) on one batch; PyTorch runs model(X), the loss, "
        "backward() and optimizer.step(). GFLOP/s counts 2·batch·(2·Σ n_in·n_out + Σ over the layers after the "
        "first): forward and weight gradient of every layer, input gradient of all but the first (the count "
        "used to include the first layer's input gradient, which nobody computes).")
PLAIN = "numpy plain"
CHECK_LR = 0.1
TIMED_LR = 1e-3
TOLERANCE = {"float32": {"loss": 1e-4, "grad": 1e-3}, "float64": {"loss": 1e-10, "grad": 1e-8}}
MIXED = True  # takes --dtype mixed_bfloat16 (benchmarks/suites/mixed.py)

CHECKS = "bpfast + input checks"
CHECKS_NOTE = (
    f"`{CHECKS}` is bpfast's own step taken through the Python checks of its input (shape, dtype, "
    "finiteness, labels), the path an array that needs a conversion takes; `train_step` skips them for "
    "C-contiguous arrays already of the net's dtype (its fast path). Its ratio to bpfast is what those "
    "checks cost per call: microseconds, visible on small nets, lost in the noise of a long step, where a "
    "ratio under 1 is timing noise, not a faster step.")

EXPLANATION = (
    "One call is one training step, `net.train_step(X, T, lr)`: forward pass, loss, backward pass and SGD "
    "update on one batch. bpfast (`bpfast.Network`, the C++ kernels) is compared with "
    "`bpfast.reference.Network` (the same class running on plain numpy), with `numpy plain` (the step as a "
    "careful numpy user writes it, in `benchmarks/workers/numpy_plain.py`: buffers allocated once and reused, "
    "products and element-wise ops written into them with `out=`, the labels one-hot encoded once, the SGD "
    "update in place) and, when it can be imported, "
    "with PyTorch on the CPU (`nn.Sequential` of `nn.Linear` and `torch.optim.SGD`, with as many threads "
    "as the run uses). " + CHECKS_NOTE + " Before timing, every competitor takes one step from the same initial weights; its "
    "loss and the gradient implied by its update must match bpfast's. A case named `784-128-10 b=32` is "
    "a net with those layer widths on a batch of 32. With `--dtype mixed_bfloat16`, `bpfast` is "
    "`Network(dtype=\"float32\", compute=\"bfloat16\")`, `bpfast float32` the same net computing in float32, "
    "`torch` PyTorch in float32 and `torch autocast` PyTorch with the forward pass and the loss under "
    "`torch.autocast(\"cpu\", dtype=torch.bfloat16)` (float32 weights; backward and update as usual); "
    "every check then allows 2e-2 on the loss and 5e-2 on the gradient (bfloat16 operands).")

cases = step_cases


def notes():
    """The lines under the table: what `bpfast + input checks` measures, and what is missing."""
    found = [CHECKS_NOTE.replace("`", "")]
    return found if torch is not None else found + [optional.missing_note("torch", "no torch column")]


def _data(case, dtype, seed):
    rng = np.random.default_rng([seed, 2])
    X = rng.standard_normal((case.batch, case.sizes[0])).astype(mixed.storage(dtype))
    if case.loss == "cross_entropy":
        T = rng.integers(0, case.sizes[-1], size=case.batch)  # integer labels
    else:
        T = rng.standard_normal((case.batch, case.sizes[-1])).astype(mixed.storage(dtype))
    return X, T


def _new_net(cls, case, dtype, seed):
    return cls(list(case.sizes), activation=case.activation, output=case.output,
               loss=case.loss, seed=seed, **mixed.net_kwargs(dtype))


def _flat(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


class NetTrainer:
    """bpfast.Network or bpfast.reference.Network on one fixed batch; checked=True takes every
    call through the Python validation that train_step's fast path skips for plain arrays."""

    def __init__(self, cls, case, dtype, seed, X, T, lr, checked=False):
        self.net = _new_net(cls, case, dtype, seed)
        self.X, self.T, self.lr = X, T, lr
        self.step = self._checked_step if checked else self._step

    def _step(self):
        return self.net.train_step(self.X, self.T, self.lr)

    def _checked_step(self):
        return self.net._checked_train_step(self.X, self.T, self.lr)

    def parameters(self):
        return [p.copy() for layer in self.net.layers for p in (layer.W, layer.b)]


def torch_twin(sizes, activation, output, loss, dtype, seed):
    """(model, loss_fn, target converter): the bpfast net in PyTorch, weights copied from a
    bpfast net with the same seed."""
    tdtype = getattr(torch, _precision.BY_NAME[dtype].storage.name)
    init = bpfast.Network(list(sizes), activation=activation, output=output, loss=loss, seed=seed,
                          **mixed.net_kwargs(dtype))
    modules = []
    for i, layer in enumerate(init.layers):
        linear = torch.nn.Linear(layer.n_in, layer.n_out, dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.W.copy()))
            linear.bias.copy_(torch.from_numpy(layer.b.copy()))
        modules.append(linear)
        if i < len(init.layers) - 1:
            modules.append(_torch_activation(activation))
    model = torch.nn.Sequential(*modules)
    if loss == "cross_entropy" and output == "softmax":  # softmax output fused into the loss, as in bpfast
        return (model, torch.nn.CrossEntropyLoss(reduction="mean"),
                lambda T: torch.from_numpy(np.asarray(T, dtype=np.int64)))
    if loss == "squared_error" and output == "identity":
        return (model, lambda Y, T: 0.5 * ((Y - T) ** 2).sum() / Y.shape[0],  # ½‖y−t‖², mean over batch
                lambda T: torch.from_numpy(np.array(T, copy=True)))
    raise ValueError(f"no PyTorch twin for output={output!r}, loss={loss!r}")


class PlainTrainer:
    """numpy_plain.PlainNet, weights copied from a bpfast net with the same seed."""

    def __init__(self, case, dtype, seed, X, T, lr):
        init = _new_net(bpfast.Network, case, dtype, seed)
        self.net = numpy_plain.PlainNet([layer.W for layer in init.layers], [layer.b for layer in init.layers],
                                        case.activation, case.output, case.loss, T, mixed.storage(dtype))
        self.X, self.lr = X, lr

    def step(self):
        return self.net.step(self.X, self.lr)

    def parameters(self):
        return self.net.parameters()


class TorchTrainer:
    """The same net in PyTorch, weights copied from a bpfast net with the same seed; autocast=True runs the
    forward pass and the loss under torch.autocast("cpu", dtype=torch.bfloat16)."""

    def __init__(self, case, dtype, seed, X, T, lr, threads, autocast=False):
        torch.set_num_threads(threads)
        self.context = (lambda: mixed.autocast(torch)) if autocast else mixed.nullcontext
        self.model, self.loss_fn, targets = torch_twin(case.sizes, case.activation, case.output, case.loss,
                                                       dtype, seed)
        self.X = torch.from_numpy(X.copy())
        self.T = targets(T)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        with self.context():
            loss = self.loss_fn(self.model(self.X), self.T)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def parameters(self):
        return [p.detach().numpy().copy() for p in self.model.parameters()]


def _torch_activation(name):
    return {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh,
            "identity": torch.nn.Identity}[name]()


def _check(make_trainer):
    """(loss of one step at CHECK_LR, the gradient implied by its update) on a fresh net."""
    trainer = make_trainer(CHECK_LR)
    before = _flat(trainer.parameters())
    loss = float(trainer.step())
    after = _flat(trainer.parameters())
    return loss, (before - after) / CHECK_LR


def _build(make_trainer):
    return make_trainer(TIMED_LR).step


def _competitor(name, make_trainer):
    return Competitor(name, functools.partial(_check, make_trainer), functools.partial(_build, make_trainer))


def competitors(case, dtype, seed, threads):
    X, T = _data(case, dtype, seed)
    found = [
        _competitor("bpfast", lambda lr: NetTrainer(bpfast.Network, case, dtype, seed, X, T, lr)),
        _competitor(CHECKS, lambda lr: NetTrainer(bpfast.Network, case, dtype, seed, X, T, lr, True)),
        _competitor("reference", lambda lr: NetTrainer(reference.Network, case, dtype, seed, X, T, lr)),
        _competitor(PLAIN, lambda lr: PlainTrainer(case, dtype, seed, X, T, lr)),
    ]
    if torch is not None:
        found.append(_competitor("torch", lambda lr: TorchTrainer(case, mixed.float_dtype(dtype), seed, X, T, lr,
                                                                  threads)))
    if mixed.is_mixed(dtype):
        found.insert(1, _competitor(mixed.FLOAT32_TWIN, lambda lr: NetTrainer(
            bpfast.Network, case, mixed.float_dtype(dtype), seed, X, T, lr)))
        if torch is not None:
            found.append(_competitor(mixed.AUTOCAST, lambda lr: TorchTrainer(case, dtype, seed, X, T, lr, threads,
                                                                             autocast=True)))
    return found


def precision_of(name, dtype):
    """The precision competitor `name` computes in (a float32 one in a mixed_bfloat16 run)."""
    return mixed.precision_of(name, dtype)


def compare(case, dtype, base, value):
    """Loss (relative) and implied gradient (relative, normwise) against bpfast's."""
    tol = TOLERANCE.get(dtype, mixed.MIXED_TOLERANCE)
    (loss0, grad0), (loss1, grad1) = base, value
    loss_err = abs(loss1 - loss0) / max(1.0, abs(loss0))
    if grad1.shape != grad0.shape:
        return Verdict(False, f"parameter count {grad1.size} != {grad0.size}", float("inf"))
    grad_err = float(np.linalg.norm(grad1 - grad0) / max(np.linalg.norm(grad0), 1e-30))
    ok = bool(np.isfinite(loss1) and np.isfinite(grad_err)
              and loss_err <= tol["loss"] and grad_err <= tol["grad"])
    detail = (f"loss {loss1:.6g} vs {loss0:.6g} (rel err {loss_err:.1e}), "
              f"gradient rel err {grad_err:.1e}; tol {tol['loss']:.0e}/{tol['grad']:.0e}")
    return Verdict(ok, detail, max(loss_err, grad_err))
