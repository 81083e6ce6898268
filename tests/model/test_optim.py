"""Optimizers, clipping and schedules against PyTorch's documented formulas.

The oracle is `Torch` below: a numpy transcription, written for this file, of
torch.optim.SGD (dampening 0), torch.optim.Adam, torch.optim.AdamW,
torch.nn.utils.clip_grad_norm_ and the schedules StepLR (StepDecay) and
scikit-learn's invscaling (InverseScaling). It shares no code with
bpfast.optim or bpfast.reference. Weights and biases are two torch parameter
groups: the biases' group has weight_decay 0 unless decay_bias=True.

Each step: copy the weights, take the gradients from net.gradients(X, T),
apply the transcription, then net.train_step(X, T) and compare every W and b.
Tolerances, relative to max(1, max|expected|): 1e-12 per step in float64,
1e-10 for a whole native-vs-reference trajectory in float64, 1e-5 per step
in float32 (the float32 net against the float64 transcription of the same
step from the same float32 weights and gradients).
"""

import dataclasses
import math

import numpy as np
import pytest

import bpfast
from bpfast import _core, optim, reference
from conftest import assert_close, assert_unchanged, precision, snapshot, tolerance, trajectory_tolerance

F64 = np.float64
STEP_RTOL = tolerance(np.float64)
TRAJECTORY_RTOL = trajectory_tolerance(np.float64)
FLOAT32_RTOL = tolerance(np.float32)
SIZES = [5, 8, 6, 3]
NET_KW = dict(activation=["tanh", "relu"], output="softmax", loss="cross_entropy")


# ---------------------------------------------------------------- the oracle

class Torch:
    """torch.optim.{SGD, Adam, AdamW} + clip_grad_norm_ + a schedule, in float64 numpy.

    kind: "sgd", "adam" or "adamw". schedule: ("constant",), ("step", step_size,
    gamma) or ("invscaling", power_t). Parameters come as a flat list
    [W_0, b_0, W_1, b_1, ...]; odd entries are biases.
    """

    def __init__(self, kind, lr, momentum=0.0, nesterov=False, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, decay_bias=False, clip_norm=None, schedule=("constant",)):
        self.kind, self.lr, self.momentum, self.nesterov = kind, lr, momentum, nesterov
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        self.weight_decay, self.decay_bias, self.clip_norm = weight_decay, decay_bias, clip_norm
        self.schedule = schedule
        self.state = {}      # per parameter index: momentum_buffer, or exp_avg / exp_avg_sq / step
        self.steps = 0       # optimizer steps taken
        self.epochs = 0      # whole epochs finished (StepLR's last_epoch)
        self.clipped = 0     # how many steps clip_grad_norm_ actually scaled

    def scheduled_lr(self, base):
        if self.schedule[0] == "step":
            _, step_size, gamma = self.schedule
            return base * gamma ** (self.epochs // step_size)
        if self.schedule[0] == "invscaling":
            return base / (1.0 + self.steps) ** self.schedule[1]
        return base

    def clip_grad_norm_(self, grads):
        """torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=2)."""
        total_norm = np.linalg.norm([np.linalg.norm(g.ravel()) for g in grads])
        clip_coef = self.clip_norm / (total_norm + 1e-6)
        clip_coef_clamped = min(clip_coef, 1.0)
        if clip_coef < 1.0:
            self.clipped += 1
        return [g * clip_coef_clamped for g in grads]

    def step(self, params, grads, lr=None):
        """New parameters after one step; lr (when given) replaces the base lr for this step."""
        params = [np.array(p, dtype=F64) for p in params]
        grads = [np.array(g, dtype=F64) for g in grads]
        if self.clip_norm is not None:
            grads = self.clip_grad_norm_(grads)
        lr = self.scheduled_lr(self.lr if lr is None else lr)
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            is_bias = i % 2 == 1
            wd = 0.0 if is_bias and not self.decay_bias else self.weight_decay
            state = self.state.setdefault(i, {})
            out.append(self._sgd(p, g, state, lr, wd) if self.kind == "sgd"
                       else self._adam(p, g, state, lr, wd))
        self.steps += 1
        return out

    def _sgd(self, p, g, state, lr, wd):
        # torch.optim.SGD, dampening=0, maximize=False
        if wd != 0:
            g = g + wd * p
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = g.copy()
            else:
                buf = self.momentum * buf + g
            state["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return p - lr * g

    def _adam(self, p, g, state, lr, wd):
        # torch.optim.Adam / AdamW, amsgrad=False, maximize=False
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        state["step"] += 1
        t = state["step"]
        if self.kind == "adamw":
            p = p * (1 - lr * wd)
        elif wd != 0:
            g = g + wd * p
        state["exp_avg"] = self.beta1 * state["exp_avg"] + (1 - self.beta1) * g
        state["exp_avg_sq"] = self.beta2 * state["exp_avg_sq"] + (1 - self.beta2) * g * g
        bias_correction1 = 1 - self.beta1 ** t
        bias_correction2 = 1 - self.beta2 ** t
        step_size = lr / bias_correction1
        denom = np.sqrt(state["exp_avg_sq"]) / math.sqrt(bias_correction2) + self.eps
        return p - step_size * state["exp_avg"] / denom


# Each case: (bpfast optimizer, the same settings for the transcription). Built
# by hand on both sides, so that a mistake in bpfast.optim's config cannot cancel out.
CASES = {
    "sgd": lambda: (optim.SGD(lr=0.3), dict(kind="sgd", lr=0.3)),
    "sgd-momentum": lambda: (optim.SGD(lr=0.1, momentum=0.9),
                             dict(kind="sgd", lr=0.1, momentum=0.9)),
    "sgd-nesterov": lambda: (optim.SGD(lr=0.1, momentum=0.8, nesterov=True),
                             dict(kind="sgd", lr=0.1, momentum=0.8, nesterov=True)),
    "sgd-weight-decay": lambda: (optim.SGD(lr=0.2, weight_decay=0.1),
                                 dict(kind="sgd", lr=0.2, weight_decay=0.1)),
    "sgd-weight-decay-bias": lambda: (optim.SGD(lr=0.2, weight_decay=0.1, decay_bias=True),
                                      dict(kind="sgd", lr=0.2, weight_decay=0.1, decay_bias=True)),
    "sgd-nesterov-weight-decay": lambda: (
        optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
        dict(kind="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    "adam": lambda: (optim.Adam(lr=0.01), dict(kind="adam", lr=0.01)),
    "adam-betas-eps": lambda: (optim.Adam(lr=0.02, betas=(0.5, 0.9), eps=1e-3),
                               dict(kind="adam", lr=0.02, betas=(0.5, 0.9), eps=1e-3)),
    "adam-weight-decay": lambda: (optim.Adam(lr=0.01, weight_decay=0.1),
                                  dict(kind="adam", lr=0.01, weight_decay=0.1)),
    "adam-weight-decay-bias": lambda: (optim.Adam(lr=0.01, weight_decay=0.1, decay_bias=True),
                                       dict(kind="adam", lr=0.01, weight_decay=0.1, decay_bias=True)),
    "adamw": lambda: (optim.AdamW(lr=0.01, weight_decay=0.3),
                      dict(kind="adamw", lr=0.01, weight_decay=0.3)),
    "adamw-default-decay": lambda: (optim.AdamW(lr=0.01), dict(kind="adamw", lr=0.01, weight_decay=1e-2)),
    "adamw-decay-bias": lambda: (optim.AdamW(lr=0.01, weight_decay=0.3, decay_bias=True),
                                 dict(kind="adamw", lr=0.01, weight_decay=0.3, decay_bias=True)),
    "sgd-invscaling": lambda: (optim.SGD(lr=0.3, schedule=optim.InverseScaling(0.5)),
                               dict(kind="sgd", lr=0.3, schedule=("invscaling", 0.5))),
    "sgd-momentum-invscaling": lambda: (
        optim.SGD(lr=0.2, momentum=0.5, schedule=optim.InverseScaling(power_t=1.25)),
        dict(kind="sgd", lr=0.2, momentum=0.5, schedule=("invscaling", 1.25))),
    "adam-invscaling": lambda: (optim.Adam(lr=0.02, schedule=optim.InverseScaling(0.7)),
                                dict(kind="adam", lr=0.02, schedule=("invscaling", 0.7))),
    "adamw-invscaling": lambda: (optim.AdamW(lr=0.02, weight_decay=0.2, schedule=optim.InverseScaling(0.5)),
                                 dict(kind="adamw", lr=0.02, weight_decay=0.2, schedule=("invscaling", 0.5))),
}
CLIP_CASES = {
    "sgd": lambda c: (optim.SGD(lr=0.3, clip_norm=c), dict(kind="sgd", lr=0.3, clip_norm=c)),
    "sgd-momentum-decay": lambda c: (optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.1, clip_norm=c),
                                     dict(kind="sgd", lr=0.1, momentum=0.9, weight_decay=0.1, clip_norm=c)),
    "adam-decay": lambda c: (optim.Adam(lr=0.01, weight_decay=0.1, clip_norm=c),
                             dict(kind="adam", lr=0.01, weight_decay=0.1, clip_norm=c)),
    "adamw": lambda c: (optim.AdamW(lr=0.01, weight_decay=0.3, clip_norm=c),
                        dict(kind="adamw", lr=0.01, weight_decay=0.3, clip_norm=c)),
}


# ---------------------------------------------------------------- helpers

def make_net(cls=bpfast.Network, dtype="float64", optimizer=None, seed=7):
    """The test net, with non-zero biases so that bias decay is visible from the first step."""
    net = cls(SIZES, dtype=dtype, seed=seed, optimizer=optimizer, **NET_KW)
    rng = np.random.default_rng(seed + 100)
    for layer in net.layers:
        layer.b = rng.uniform(-0.5, 0.5, layer.n_out)
    return net


def batches(n_steps, seed=0, batch=10):
    """n_steps (X, labels) batches; every third one has an odd size."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_steps):
        rows = batch if s % 3 else 3
        out.append((rng.standard_normal((rows, SIZES[0])), rng.integers(0, SIZES[-1], rows)))
    return out


def flat_gradients(net, X, T):
    return [g for pair in net.gradients(X, T) for g in pair]


def assert_params(net, expected, rtol, dtype=F64):
    params = net.parameters()
    assert len(params) == len(expected)
    for p, e in zip(params, expected):
        assert_close(p, e, dtype, rtol)


def drive(net, oracle, data, rtol=STEP_RTOL, lr=None):
    """Step net and the transcription together, comparing after every step; returns the losses."""
    dtype = net.dtype
    losses = []
    for X, T in data:
        before = [p.copy() for p in net.parameters()]
        expected = oracle.step(before, flat_gradients(net, X, T), lr=lr)
        losses.append(net.train_step(X, T, lr=lr))
        assert_params(net, expected, rtol, dtype)
        # The step really moved the weights (well beyond the tolerance).
        moved = max(float(np.max(np.abs(p.astype(F64) - b))) for p, b in zip(net.parameters(), before))
        assert moved > max(1e-6, 10 * rtol)
    return losses


# ---------------------------------------------------------------- against the transcription

@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
def test_steps_follow_the_pytorch_formulas(cls, case):
    optimizer, settings = CASES[case]()
    net = make_net(cls, optimizer=optimizer)
    drive(net, Torch(**settings), batches(8))


@pytest.mark.parametrize("case", list(CLIP_CASES))
def test_tiny_clip_norm_clips_every_step(case):
    optimizer, settings = CLIP_CASES[case](1e-3)
    net = make_net(optimizer=optimizer)
    oracle = Torch(**settings)
    drive(net, oracle, batches(6))
    assert oracle.clipped == 6


@pytest.mark.parametrize("case", list(CLIP_CASES))
def test_huge_clip_norm_never_clips(case):
    optimizer, settings = CLIP_CASES[case](1e6)
    net = make_net(optimizer=optimizer)
    oracle = Torch(**settings)
    drive(net, oracle, batches(6))
    assert oracle.clipped == 0
    # Same trajectory as with no clipping at all.
    twin = make_net(optimizer=dataclasses.replace(optimizer, clip_norm=None))
    drive(twin, Torch(**dict(settings, clip_norm=None)), batches(6))
    assert_params(twin, net.parameters(), STEP_RTOL)


def test_clipping_matters_for_the_comparison():
    # The clipped and unclipped transcriptions disagree by far more than the tolerance on this
    # data, so test_tiny_clip_norm_clips_every_step could not pass with clipping ignored.
    net = make_net()
    X, T = batches(1)[0]
    params, grads = [p.copy() for p in net.parameters()], flat_gradients(net, X, T)
    clipped = Torch("sgd", 0.3, clip_norm=1e-3).step(params, grads)
    plain = Torch("sgd", 0.3).step(params, grads)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(clipped, plain)) > 1e-3


@pytest.mark.parametrize("kind", ["sgd", "sgd-momentum", "adam"])
def test_step_decay_counts_fit_epochs(kind):
    # Full-batch fit without shuffling: every epoch is one step on (X, labels). The weights
    # after each epoch are captured by a callback; the gradients at the start of each epoch
    # come from a scratch network holding that epoch's starting weights.
    make = {
        "sgd": lambda: (optim.SGD(lr=0.4, schedule=optim.StepDecay(step_size=2, gamma=0.5)),
                        dict(kind="sgd", lr=0.4, schedule=("step", 2, 0.5))),
        "sgd-momentum": lambda: (optim.SGD(lr=0.2, momentum=0.9, schedule=optim.StepDecay(3, 0.3)),
                                 dict(kind="sgd", lr=0.2, momentum=0.9, schedule=("step", 3, 0.3))),
        "adam": lambda: (optim.Adam(lr=0.05, weight_decay=0.01, schedule=optim.StepDecay(1, 0.5)),
                         dict(kind="adam", lr=0.05, weight_decay=0.01, schedule=("step", 1, 0.5))),
    }[kind]
    optimizer, settings = make()
    net = make_net(optimizer=optimizer)
    rng = np.random.default_rng(3)
    X, labels = rng.standard_normal((24, SIZES[0])), rng.integers(0, SIZES[-1], 24)
    start = [p.copy() for p in net.parameters()]
    captured = []
    net.fit(X, labels, epochs=7, batch_size=24, shuffle=False,
            callbacks=[lambda epoch, logs: captured.append([p.copy() for p in net.parameters()])])
    scratch = make_net()
    oracle = Torch(**settings)
    params = start
    for epoch, after in enumerate(captured):
        for p, value in zip(scratch.parameters(), params):
            p[...] = value
        expected = oracle.step(params, flat_gradients(scratch, X, labels))
        oracle.epochs += 1
        for a, e in zip(after, expected):
            assert_close(a, e, F64, STEP_RTOL)
        params = after
    assert len(captured) == 7
    # A second fit call continues the epoch count; train_step does not advance it.
    grads = flat_gradients(net, X, labels)
    expected = oracle.step([p.copy() for p in net.parameters()], grads)
    net.fit(X, labels, epochs=1, batch_size=24, shuffle=False)
    oracle.epochs += 1
    assert_params(net, expected, STEP_RTOL)
    drive(net, oracle, batches(3))
    assert oracle.scheduled_lr(1.0) < 0.1  # the decay really was applied


def test_step_decay_closed_form_learning_rates():
    # Plain SGD, one full-batch step per epoch: θ_{k+1} = θ_k − lr·γ^(k // s)·g_k exactly.
    net = make_net(optimizer=optim.SGD(lr=0.5, schedule=optim.StepDecay(step_size=2, gamma=0.1)))
    rng = np.random.default_rng(4)
    X, labels = rng.standard_normal((12, SIZES[0])), rng.integers(0, SIZES[-1], 12)
    for epoch in range(5):
        lr = 0.5 * 0.1 ** (epoch // 2)
        expected = [p - lr * g for p, g in zip(net.parameters(), flat_gradients(net, X, labels))]
        net.fit(X, labels, epochs=1, batch_size=12, shuffle=False)
        assert_params(net, expected, STEP_RTOL)


def test_inverse_scaling_closed_form_learning_rates():
    net = make_net(optimizer=optim.SGD(lr=0.5, schedule=optim.InverseScaling(power_t=0.5)))
    for t, (X, T) in enumerate(batches(5)):
        lr = 0.5 / math.sqrt(1 + t)
        expected = [p - lr * g for p, g in zip(net.parameters(), flat_gradients(net, X, T))]
        net.train_step(X, T)
        assert_params(net, expected, STEP_RTOL)


def test_inverse_scaling_counts_fit_steps():
    # Steps taken inside fit advance the schedule just as train_step does.
    net = make_net(optimizer=optim.SGD(lr=0.5, schedule=optim.InverseScaling(power_t=1.0)))
    rng = np.random.default_rng(5)
    X, labels = rng.standard_normal((30, SIZES[0])), rng.integers(0, SIZES[-1], 30)
    net.fit(X, labels, epochs=2, batch_size=8)  # 4 batches per epoch: 8 steps
    Xb, Tb = batches(1)[0]
    expected = [p - 0.5 / 9 * g for p, g in zip(net.parameters(), flat_gradients(net, Xb, Tb))]
    net.train_step(Xb, Tb)
    assert_params(net, expected, STEP_RTOL)


# ---------------------------------------------------------------- native against reference

@pytest.mark.parametrize("case", list(CASES) + [f"clip-{c}" for c in CLIP_CASES])
def test_native_and_reference_trajectories_agree(case):
    def build():
        if case.startswith("clip-"):
            return CLIP_CASES[case[5:]](0.5)[0]
        return CASES[case]()[0]
    net, ref = make_net(optimizer=build()), make_net(reference.Network, optimizer=build())
    ours = [net.train_step(X, T) for X, T in batches(10, seed=1)]
    theirs = [ref.train_step(X, T) for X, T in batches(10, seed=1)]
    assert_close(np.array(ours), np.array(theirs), F64, TRAJECTORY_RTOL)
    assert_params(net, ref.parameters(), TRAJECTORY_RTOL)
    rng = np.random.default_rng(6)
    X, labels = rng.standard_normal((37, SIZES[0])), rng.integers(0, SIZES[-1], 37)
    h = net.fit(X, labels, epochs=3, batch_size=8)
    rh = ref.fit(X, labels, epochs=3, batch_size=8)
    assert_close(np.array(h), np.array(rh), F64, TRAJECTORY_RTOL)
    assert_params(net, ref.parameters(), TRAJECTORY_RTOL)


def test_native_and_reference_agree_under_step_decay_fit():
    def build():
        return optim.SGD(lr=0.2, momentum=0.9, nesterov=True, weight_decay=0.01,
                         schedule=optim.StepDecay(2, 0.5))
    net, ref = make_net(optimizer=build()), make_net(reference.Network, optimizer=build())
    rng = np.random.default_rng(7)
    X, labels = rng.standard_normal((41, SIZES[0])), rng.integers(0, SIZES[-1], 41)
    h = net.fit(X, labels, epochs=6, batch_size=10)
    rh = ref.fit(X, labels, epochs=6, batch_size=10)
    assert_close(np.array(h), np.array(rh), F64, TRAJECTORY_RTOL)
    assert_params(net, ref.parameters(), TRAJECTORY_RTOL)


# ---------------------------------------------------------------- float32

@pytest.mark.parametrize("case", ["sgd-nesterov-weight-decay", "adam-weight-decay", "adamw", "adam-invscaling"])
def test_float32_steps_follow_the_pytorch_formulas(case):
    optimizer, settings = CASES[case]()
    net = make_net(dtype="float32", optimizer=optimizer)
    assert net.parameters()[0].dtype == np.float32
    data = [(X.astype(np.float32), T) for X, T in batches(8)]
    drive(net, Torch(**settings), data, rtol=FLOAT32_RTOL)


def test_float32_clipping_follows_the_pytorch_formula():
    optimizer, settings = CLIP_CASES["adam-decay"](1e-2)
    net = make_net(dtype="float32", optimizer=optimizer)
    oracle = Torch(**settings)
    drive(net, oracle, [(X.astype(np.float32), T) for X, T in batches(6)], rtol=FLOAT32_RTOL)
    assert oracle.clipped == 6


# ---------------------------------------------------------------- lr override and state

@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("case", ["sgd-momentum", "adam-weight-decay", "adamw"])
def test_train_step_lr_overrides_that_call_only(cls, case):
    optimizer, settings = CASES[case]()
    net = make_net(cls, optimizer=optimizer)
    oracle = Torch(**settings)
    data = batches(6)
    drive(net, oracle, data[:2])
    drive(net, oracle, data[2:3], lr=0.5 * settings["lr"])  # state carries through the override
    drive(net, oracle, data[3:4], lr=3.0 * settings["lr"])
    drive(net, oracle, data[4:])                            # back to the optimizer's lr
    assert net.optimizer is optimizer and net.optimizer.lr == settings["lr"]


def test_train_step_lr_override_closed_form():
    net = make_net(optimizer=optim.SGD(lr=0.1))
    (X1, T1), (X2, T2) = batches(2)
    expected = [p - 0.7 * g for p, g in zip(net.parameters(), flat_gradients(net, X1, T1))]
    net.train_step(X1, T1, lr=0.7)
    assert_params(net, expected, STEP_RTOL)
    expected = [p - 0.1 * g for p, g in zip(net.parameters(), flat_gradients(net, X2, T2))]
    net.train_step(X2, T2)
    assert_params(net, expected, STEP_RTOL)


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("case", ["sgd-momentum", "sgd-nesterov", "adam", "adamw-invscaling"])
def test_assigning_an_optimizer_resets_its_state(cls, case):
    optimizer, settings = CASES[case]()
    net = make_net(cls, optimizer=optimizer)
    data = batches(8)
    drive(net, Torch(**settings), data[:4])
    fresh, _ = CASES[case]()
    net.optimizer = fresh
    assert net.optimizer is fresh
    drive(net, Torch(**settings), data[4:])  # zero momentum / moments, step count from 0 again


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
def test_assigning_an_optimizer_restarts_its_step_decay_schedule(cls):
    # A newly assigned optimizer starts at epoch 0 of its schedule, as a new torch StepLR
    # does: its first epoch runs at its base lr, whatever the net trained before.
    net = make_net(cls)
    rng = np.random.default_rng(8)
    X, labels = rng.standard_normal((16, SIZES[0])), rng.integers(0, SIZES[-1], 16)
    net.fit(X, labels, epochs=3, batch_size=16, shuffle=False)
    net.optimizer = optim.SGD(lr=0.4, schedule=optim.StepDecay(step_size=1, gamma=0.5))
    expected = [p - 0.4 * g for p, g in zip(net.parameters(), flat_gradients(net, X, labels))]
    net.fit(X, labels, epochs=1, batch_size=16, shuffle=False)
    assert_params(net, expected, STEP_RTOL)


def test_fit_with_an_optimizer_assigns_it():
    net = make_net(optimizer=optim.SGD(lr=0.1, momentum=0.9))
    for X, T in batches(3):
        net.train_step(X, T)
    adam = optim.Adam(lr=0.01)
    rng = np.random.default_rng(9)
    X, labels = rng.standard_normal((12, SIZES[0])), rng.integers(0, SIZES[-1], 12)
    oracle = Torch("adam", 0.01)
    expected = oracle.step([p.copy() for p in net.parameters()], flat_gradients(net, X, labels))
    net.fit(X, labels, epochs=1, batch_size=12, shuffle=False, optimizer=adam)
    assert net.optimizer is adam
    assert_params(net, expected, STEP_RTOL)


def test_default_optimizer_is_sgd_with_lr_0_1():
    net = make_net()
    assert net.optimizer == optim.SGD(lr=0.1)
    drive(net, Torch("sgd", 0.1), batches(2))


# ---------------------------------------------------------------- invalid arguments

INVALID = {  # name: (constructor call, the argument the message must name)
    "lr=0": (lambda: optim.SGD(lr=0), "lr"),
    "lr<0": (lambda: optim.Adam(lr=-1e-3), "lr"),
    "lr=nan": (lambda: optim.SGD(lr=float("nan")), "lr"),
    "lr=inf": (lambda: optim.AdamW(lr=float("inf")), "lr"),
    "lr=str": (lambda: optim.SGD(lr="0.1"), "lr"),
    "momentum=1": (lambda: optim.SGD(momentum=1.0), "momentum"),
    "momentum>1": (lambda: optim.SGD(momentum=1.5), "momentum"),
    "momentum<0": (lambda: optim.SGD(momentum=-0.1), "momentum"),
    "nesterov-no-momentum": (lambda: optim.SGD(nesterov=True), "nesterov"),
    "beta1=1": (lambda: optim.Adam(betas=(1.0, 0.999)), "betas[0]"),
    "beta1<0": (lambda: optim.Adam(betas=(-0.1, 0.999)), "betas[0]"),
    "beta2=1": (lambda: optim.AdamW(betas=(0.9, 1.0)), "betas[1]"),
    "beta2>1": (lambda: optim.Adam(betas=(0.9, 1.5)), "betas[1]"),
    "betas-not-a-pair": (lambda: optim.Adam(betas=(0.9,)), "betas"),
    "eps=0": (lambda: optim.Adam(eps=0.0), "eps"),
    "eps<0": (lambda: optim.AdamW(eps=-1e-8), "eps"),
    "weight_decay<0 sgd": (lambda: optim.SGD(weight_decay=-0.1), "weight_decay"),
    "weight_decay<0 adam": (lambda: optim.Adam(weight_decay=-1e-4), "weight_decay"),
    "weight_decay<0 adamw": (lambda: optim.AdamW(weight_decay=-1e-2), "weight_decay"),
    "clip_norm=0": (lambda: optim.SGD(clip_norm=0.0), "clip_norm"),
    "clip_norm<0": (lambda: optim.Adam(clip_norm=-1.0), "clip_norm"),
    "schedule=str": (lambda: optim.SGD(schedule="step"), "schedule"),
    "schedule=class": (lambda: optim.SGD(schedule=optim.StepDecay), "schedule"),
    "step_size=0": (lambda: optim.StepDecay(step_size=0), "step_size"),
    "step_size=float": (lambda: optim.StepDecay(step_size=2.5), "step_size"),
    "gamma=0": (lambda: optim.StepDecay(gamma=0.0), "gamma"),
    "gamma<0": (lambda: optim.StepDecay(gamma=-0.5), "gamma"),
    "power_t<0": (lambda: optim.InverseScaling(power_t=-0.5), "power_t"),
    "decay_bias=str": (lambda: optim.SGD(decay_bias="yes"), "decay_bias"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_optimizer_arguments_raise_value_error_naming_them(case):
    make, name = INVALID[case]
    with pytest.raises(ValueError) as info:
        make()
    assert name in str(info.value)


def test_valid_edge_arguments_are_accepted():
    optim.SGD(momentum=0.0)
    optim.SGD(lr=1e-12, momentum=0.999, nesterov=True, weight_decay=0.0, clip_norm=1e-9)
    optim.Adam(betas=(0.0, 0.0), eps=1e-30)
    optim.StepDecay(step_size=1, gamma=2.0)
    optim.InverseScaling(power_t=0.0)


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("value", ["adam", None, optim.Adam, {"kind": "sgd"}, 0.1])
def test_assigning_a_non_optimizer_raises_type_error(cls, value):
    net = make_net(cls, optimizer=optim.SGD(lr=0.1, momentum=0.9))
    oracle = Torch("sgd", 0.1, momentum=0.9)
    data = batches(4)
    drive(net, oracle, data[:1])
    before, kept = snapshot(net), net.optimizer
    with pytest.raises(TypeError, match="optimizer"):
        net.optimizer = value
    if value is not None:  # fit(optimizer=None) means: keep the current one
        with pytest.raises(TypeError, match="optimizer"):
            net.fit(*data[1], epochs=1, optimizer=value)
    assert net.optimizer is kept
    assert_unchanged(net, before)
    # The momentum buffer survived the refused assignments: the next steps still follow torch.
    drive(net, oracle, data[1:])


@pytest.mark.parametrize("value", ["sgd", 0.1, object()])
def test_constructing_with_a_non_optimizer_raises_type_error(value):
    with pytest.raises(TypeError, match="optimizer"):
        bpfast.Network(SIZES, optimizer=value, **NET_KW)


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
def test_clipping_finite_gradients_whose_norm_overflows_scales_them_to_zero(cls):
    # Every gradient is finite but Σ g² overflows a double: torch's factor
    # max_norm / (∞ + 1e-6) is 0, so the step is taken with zero gradients
    # (the weights stay put under plain SGD) and counted, on both engines alike.
    net = cls([3, 4, 2], dtype="float64", seed=0, optimizer=optim.SGD(lr=0.1, clip_norm=1.0))
    X, T = np.ones((5, 3)), np.zeros((5, 2))
    before = snapshot(net)
    engine = net._engine
    loss = engine.compute_gradients(X, T, None)
    for g in engine.gradients():
        g[...] = 1e200
    assert engine.apply_update(loss)[1:] == (True, -1)
    assert_unchanged(net, before)
    assert engine.steps == 1


@pytest.mark.parametrize("core", ["f32", "f64"])
def test_the_core_refuses_a_malformed_architecture(core):
    from bpfast import _core
    Network = getattr(_core, core).Network
    with pytest.raises(ValueError, match="one activation per layer"):
        Network([2, 3, 4], [], "squared_error", "mean")
    with pytest.raises(ValueError, match="two sizes"):
        Network([], [], "squared_error", "mean")
    with pytest.raises(ValueError, match="positive"):
        Network([2, 0], ["identity"], "squared_error", "mean")
    with pytest.raises(ValueError, match="step_size"):
        Network([2, 1], ["identity"], "squared_error", "mean").set_optimizer(
            _core.OptimizerConfig(schedule="step", step_size=0))


# ---------------------------------------------------------------- keyword-only settings

@pytest.mark.parametrize("make", [lambda: optim.SGD(0.05, 0.9), lambda: optim.Adam(1e-3, (0.9, 0.99)),
                                  lambda: optim.AdamW(1e-3, (0.9, 0.99))], ids=["SGD", "Adam", "AdamW"])
def test_only_lr_is_positional(make):
    # SGD(0.05, 0.9) once meant weight_decay=0.9: a TypeError now, not a silent decay
    with pytest.raises(TypeError, match="positional"):
        make()


def test_lr_positional_means_lr():
    assert optim.SGD(0.05).config()["lr"] == 0.05
    assert optim.Adam(0.002).config()["lr"] == 0.002
    assert optim.AdamW(0.003, weight_decay=0.1).config() == {**optim.AdamW(lr=0.003, weight_decay=0.1).config()}


# Without clipping, every optimizer takes its step inside the backward pass,
# each layer's rows as soon as their gradients are done (stateless SGD in
# the kernels' registers, the others by blocks of rows on the thread that
# computed them); with clipping (a clip_norm too large to clip) it is the
# separate pass over every parameter after the backward pass. The two must
# write the same bits.
FUSABLE = {
    "plain": (optim.SGD, dict(lr=0.3)),
    "decay": (optim.SGD, dict(lr=0.1, weight_decay=0.05)),
    "decay-bias": (optim.SGD, dict(lr=0.1, weight_decay=0.05, decay_bias=True)),
    "invscaling": (optim.SGD, dict(lr=0.2, schedule=optim.InverseScaling(power_t=0.5))),
    "nesterov": (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam": (optim.Adam, dict(lr=0.01, weight_decay=0.01)),
    "adamw": (optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes,batch", [([12, 40, 33, 3], 16), ([12, 40, 33, 3], 300), ([300, 257, 10], 64)],
                         ids=["small-net", "gemm", "small-net-split"])
@pytest.mark.parametrize("case", list(FUSABLE))
def test_the_step_in_the_backward_pass_writes_what_the_separate_pass_writes(case, sizes, batch, dtype):
    rng = np.random.default_rng(3)
    X, labels = rng.standard_normal((batch, sizes[0])), rng.integers(0, sizes[-1], batch)
    kind, settings = FUSABLE[case]
    fused = bpfast.Network(sizes, output="softmax", dtype=dtype, seed=2, optimizer=kind(**settings))
    separate = bpfast.Network(sizes, output="softmax", dtype=dtype, seed=2,
                              optimizer=kind(**settings, clip_norm=1e30))
    for _ in range(3):
        assert fused.train_step(X, labels) == separate.train_step(X, labels)
    assert all(np.array_equal(a, b) for a, b in zip(fused.parameters(), separate.parameters()))
    fused.fit(X, labels, epochs=2, batch_size=batch // 4)
    separate.fit(X, labels, epochs=2, batch_size=batch // 4)
    assert all(np.array_equal(a, b) for a, b in zip(fused.parameters(), separate.parameters()))
    for a, b in zip(fused._engine.optimizer_state(), separate._engine.optimizer_state()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [16, 200, 300], ids=["small-net", "small-net-split", "gemm"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_the_fused_step_with_the_l2_term_writes_what_the_separate_pass_writes(solver, batch, dtype):
    """scikit-learn's objective (the L2 term α·W/N joins each block of dW before its step) and
    update forms: the fused step and the separate pass (clipping that never clips) write the same bits."""
    core = precision(dtype).core
    rng = np.random.default_rng(4)
    sizes = [300, 257, 10]
    X, labels = rng.standard_normal((batch, sizes[0])).astype(dtype), rng.integers(0, 10, batch)
    nets = [core.Network(sizes, ["relu", "softmax"], "softmax_clipped_log_loss", "mean") for _ in range(2)]
    for p, q in zip(*(n.parameters() for n in nets)):
        p[...] = q[...] = rng.normal(scale=0.05, size=p.shape)
    for net, clip in zip(nets, (0.0, 1e30)):
        net.set_optimizer(_core.OptimizerConfig(
            kind=solver, lr=0.01, momentum=0.9 if solver == "sgd" else 0.0, nesterov=True, beta1=0.9, beta2=0.999,
            eps=1e-8, weight_decay=0.0, decay_bias=False, clip_norm=clip, schedule="constant", step_size=1,
            gamma=1.0, power_t=0.0, form="sklearn"))
        net.set_objective(l2=0.5)
    for _ in range(3):
        assert nets[0].train_step(X, None, labels) == nets[1].train_step(X, None, labels)
    assert nets[0].train_epoch(X, None, labels, None, batch // 3)[:2] == \
        nets[1].train_epoch(X, None, labels, None, batch // 3)[:2]
    for a, b in zip(nets[0].parameters() + list(nets[0].optimizer_state()),
                    nets[1].parameters() + list(nets[1].optimizer_state())):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------- one description of the settings

@pytest.mark.parametrize("make", [lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, clip_norm=2.0),
                                  lambda: optim.Adam(2e-3, betas=(0.8, 0.99), schedule=optim.StepDecay(3, 0.5)),
                                  lambda: optim.AdamW(schedule=optim.InverseScaling(0.25))],
                         ids=["SGD", "Adam", "AdamW"])
def test_settings_are_the_cores_config_and_the_saved_record_is_its_fields(make):
    from bpfast import _core
    optimizer = make()
    settings = optimizer.settings()
    assert isinstance(settings, _core.OptimizerConfig) and settings.form == "pytorch"
    assert optimizer.settings(form="sklearn").form == "sklearn"
    record = optimizer.config()
    assert list(record) == [name for name in _core.OptimizerConfig.fields if name != "form"]
    assert record == {name: getattr(settings, name) for name in record}
    assert optim.from_config(record) == optimizer
    with pytest.raises(TypeError, match="momentom"):
        _core.OptimizerConfig(momentom=0.9)
    with pytest.raises(ValueError, match="schedule must be one of constant, step, inverse_scaling"):
        _core.OptimizerConfig(schedule="cosine")


@pytest.mark.parametrize("make", [optim.SGD, lambda: optim.SGD(momentum=0.5), optim.Adam, optim.AdamW])
def test_each_engine_sizes_the_state_it_says(make):
    from bpfast import _core
    settings = make().settings()
    for engine in (_core.f32.Network([3, 4, 2], ["relu", "identity"], "squared_error", "mean"),
                   reference.Engine([3, 4, 2], ["relu", "identity"], "squared_error", "mean", np.float32)):
        engine.set_optimizer(settings)
        shapes = type(engine).optimizer_state_shapes(settings, 3 * 4 + 4 + 4 * 2 + 2)
        assert tuple(s.shape for s in engine.optimizer_state()) == shapes
        momentum = make().__dict__.get("momentum", 1.0)
        assert shapes == ((26 if momentum else 0,), (0 if make().kind == "sgd" else 26,))


def test_lr_is_checked_by_the_core_and_none_means_the_configured_rate():
    from bpfast import _core
    assert _core.base_rate(None) is None
    assert _core.base_rate(2) == 2.0 and _core.base_rate(np.float32(0.5)) == 0.5
    for bad in (0, -1.0, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ValueError, match=r"lr must be a finite positive number; got "):
            _core.base_rate(bad)


def test_the_losses_that_take_logits_agree_with_the_reference():
    from bpfast import _core
    assert "squared_error" in _core.names["loss"] and "softmax_cross_entropy" in _core.LOGIT_LOSSES
    for loss in _core.names["loss"]:
        engine = reference.Engine([2, 2], ["identity"], loss, "mean", np.float64)
        assert engine.takes_logits == (loss in _core.LOGIT_LOSSES), loss
