"""Optimizers and learning-rate schedules for Network.fit and Network.train_step.

The update formulas are PyTorch's, as documented for torch.optim.SGD,
torch.optim.Adam and torch.optim.AdamW; gradient clipping follows
torch.nn.utils.clip_grad_norm_. With weight decay λ and learning rate lr:

    SGD     g ← g + λθ;  b ← μ·b + g;  g ← g + μ·b (nesterov) or b;  θ ← θ − lr·g
    Adam    g ← g + λθ;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
            θ ← θ − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
    AdamW   θ ← θ·(1 − lr·λ), then Adam's update without the λθ term

Biases are excluded from weight decay unless decay_bias=True. clip_norm
scales all gradients together so that their global L2 norm is at most
clip_norm (by clip_norm / (norm + 1e-6)) before the update.
"""

import math
import numbers
from dataclasses import KW_ONLY, dataclass, field

from . import _core

__all__ = ["SGD", "Adam", "AdamW", "Constant", "StepDecay", "InverseScaling"]


def _number(value, name, low=None, high=None, low_open=False, high_open=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Constant:
    """The learning rate stays at lr."""

    def config(self):
        """The schedule as OptimizerConfig's fields (settings() and save())."""
        return {"schedule": "constant", "step_size": 1, "gamma": 1.0, "power_t": 0.0}


@dataclass(frozen=True)
class StepDecay:
    """lr · gamma^(epoch // step_size): multiply by gamma every step_size epochs (torch StepLR)."""

    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self):
        if isinstance(self.step_size, bool) or not isinstance(self.step_size, numbers.Integral) \
                or self.step_size < 1:
            raise ValueError(f"step_size must be a positive integer; got {self.step_size!r}")
        _number(self.gamma, "gamma", 0, low_open=True, high=None)

    def config(self):
        """The schedule as OptimizerConfig's fields (settings() and save())."""
        return {"schedule": "step", "step_size": int(self.step_size), "gamma": float(self.gamma),
                "power_t": 0.0}


@dataclass(frozen=True)
class InverseScaling:
    """lr / (1 + t)^power_t after t optimizer steps (scikit-learn's "invscaling")."""

    power_t: float = 0.5

    def __post_init__(self):
        _number(self.power_t, "power_t", 0)

    def config(self):
        """The schedule as OptimizerConfig's fields (settings() and save())."""
        return {"schedule": "inverse_scaling", "step_size": 1, "gamma": 1.0,
                "power_t": float(self.power_t)}


_SCHEDULES = (Constant, StepDecay, InverseScaling)


@dataclass(frozen=True)
class _Optimizer:
    lr: float = 0.1
    _: KW_ONLY  # lr is the one positional setting: SGD(0.05, 0.9) is a TypeError, not a weight decay of 0.9
    weight_decay: float = 0.0
    decay_bias: bool = False
    clip_norm: float = None
    schedule: object = field(default_factory=Constant)

    def __post_init__(self):
        _number(self.lr, "lr", 0, low_open=True, high=None)
        _number(self.weight_decay, "weight_decay", 0, high=None)
        if not isinstance(self.decay_bias, bool):
            raise ValueError(f"decay_bias must be True or False; got {self.decay_bias!r}")
        if self.clip_norm is not None:
            _number(self.clip_norm, "clip_norm", 0, low_open=True, high=None)
        if not isinstance(self.schedule, _SCHEDULES):
            raise ValueError("schedule must be Constant(), StepDecay(...) or InverseScaling(...); "
                             f"got {self.schedule!r}")

    def _settings(self):
        """This optimizer's fields as the core's OptimizerConfig names them (each subclass adds its own)."""
        return {"kind": self.kind, "lr": float(self.lr), "momentum": 0.0, "nesterov": False,
                "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                "weight_decay": float(self.weight_decay), "decay_bias": bool(self.decay_bias),
                "clip_norm": float(self.clip_norm or 0.0), **self.schedule.config()}

    def settings(self, form="pytorch"):
        """The settings as the core's _core.OptimizerConfig, what an engine's set_optimizer takes;
        form "sklearn" gives scikit-learn's momentum and Adam updates (bpfast.sklearn's)."""
        return _core.OptimizerConfig(**self._settings(), form=form)

    def config(self):
        """The settings as plain values, for save() and for comparing: the OptimizerConfig fields
        but form (the save format's optimizer record)."""
        settings = self.settings()
        return {name: getattr(settings, name) for name in _core.OptimizerConfig.fields if name != "form"}


@dataclass(frozen=True, kw_only=True)
class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    kind = "sgd"
    _momentum_may_be_one = False  # scikit-learn's solver allows momentum = 1 (bpfast.sklearn)
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self):
        super().__post_init__()
        _number(self.momentum, "momentum", 0, high=1, high_open=not self._momentum_may_be_one)
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be True or False; got {self.nesterov!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")

    def _settings(self):
        return {**super()._settings(), "momentum": float(self.momentum), "nesterov": self.nesterov}


@dataclass(frozen=True, kw_only=True)
class Adam(_Optimizer):
    """Adam with bias correction and L2 weight decay added to the gradient."""

    kind = "adam"
    lr: float = field(default=1e-3, kw_only=False)
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2); got {self.betas!r}")
        _number(self.betas[0], "betas[0]", 0, high=1)
        _number(self.betas[1], "betas[1]", 0, high=1)
        _number(self.eps, "eps", 0, low_open=True, high=None)

    def _settings(self):
        return {**super()._settings(), "beta1": float(self.betas[0]), "beta2": float(self.betas[1]),
                "eps": float(self.eps)}


@dataclass(frozen=True, kw_only=True)
class AdamW(Adam):
    """Adam with weight decay decoupled from the gradient (θ ← θ·(1 − lr·λ) first)."""

    kind = "adamw"
    weight_decay: float = 1e-2


_KINDS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def from_config(config):
    """Rebuild an optimizer from the dict that config() returned (used by Network.load);
    ValueError for anything else (the optimizer checks each value)."""
    schedules = {"constant": lambda c: Constant(),
                 "step": lambda c: StepDecay(c["step_size"], c["gamma"]),
                 "inverse_scaling": lambda c: InverseScaling(c["power_t"])}
    if not isinstance(config, dict):
        raise ValueError(f"an optimizer config must be a dict; got {type(config).__name__}")
    missing = [key for key in SGD().config() if key not in config]
    if missing:
        raise ValueError(f"the optimizer config lacks {', '.join(missing)}")
    if not isinstance(config["kind"], str) or config["kind"] not in _KINDS:
        raise ValueError(f"the optimizer kind must be one of {', '.join(_KINDS)}; got {config['kind']!r:.80}")
    if not isinstance(config["schedule"], str) or config["schedule"] not in schedules:
        raise ValueError(f"the schedule must be one of {', '.join(schedules)}; got {config['schedule']!r:.80}")
    schedule = schedules[config["schedule"]](config)
    common = {"lr": config["lr"], "weight_decay": config["weight_decay"],
              "decay_bias": bool(config["decay_bias"]),
              "clip_norm": config["clip_norm"] or None, "schedule": schedule}
    if config["kind"] == "sgd":
        return SGD(momentum=config["momentum"], nesterov=bool(config["nesterov"]), **common)
    return _KINDS[config["kind"]](betas=(config["beta1"], config["beta2"]), eps=config["eps"], **common)

