"""Optimizers: descriptions whose update runs as one fused C++ loop over the model's flat buffer.

Each optimizer names its kind, its hyperparameters, a learning rate and (where it has one) a
momentum, each either a number or a :class:`fastnn.schedules.Schedule` (e.g. momentum rising
from 0.5 to 0.99 with ``schedules.linear(0.5, 0.99, 20)``).

Conventions (see :mod:`fastnn.optim` docs in ``cpp/include/fastnn/optim.h``):

* ``SGD(momentum=...)`` and ``Nesterov`` use the CS231n forms ``v = mu v - lr g; w += v`` and
  ``w += -mu v_prev + (1 + mu) v``. With a constant learning rate they take exactly PyTorch's
  steps (PyTorch keeps ``v' = -v / lr``); when the learning rate changes, fastnn's velocity keeps
  the old learning rate's scale, PyTorch's does not.
* L2/L1 regularisation is the model's (``Sequential(l2=..., l1=...)``) and applies to weights
  only; ``AdamW(weight_decay=...)`` is decoupled and also applies to weights only.
* :class:`Rprop` is a full-batch method: the trainer gives it the whole training set per step.
* :class:`LBFGS` runs SciPy's L-BFGS-B with fastnn's C++ loss-and-gradient as the objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastnn.schedules import Schedule, as_schedule

__all__ = [
    "Optimizer",
    "SGD",
    "Momentum",
    "Nesterov",
    "Adagrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "Adadelta",
    "Rprop",
    "AdaptiveGains",
    "LBFGS",
    "resolve_optimizer",
]


def _unit_interval(v: float, what: str) -> float:
    v = float(v)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{what} must be in [0, 1), got {v!r}")
    return v


def _positive(v: float, what: str, allow_zero: bool = False) -> float:
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return v


def _schedule_or_number(v, what: str, momentum: bool = False) -> float | Schedule:
    if isinstance(v, Schedule) or callable(v):
        return as_schedule(v)
    return _unit_interval(v, what) if momentum else _positive(v, what, allow_zero=True)


@dataclass
class Optimizer:
    """Base class. ``kind`` is the C++ update; ``hyper()`` its fixed hyperparameters."""

    lr: float | Schedule = 0.01
    kind: str = field(init=False, default="sgd")
    full_batch: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.lr = _schedule_or_number(self.lr, f"{type(self).__name__}: lr")

    @property
    def momentum_value(self) -> float | Schedule:
        return getattr(self, "momentum", 0.0)

    def hyper(self) -> dict[str, float]:
        return {}

    def config(self) -> dict[str, Any]:
        """A JSON-able description (schedules are recorded by their description)."""
        out: dict[str, Any] = {"class": type(self).__name__, "kind": self.kind}
        for k, v in self.__dict__.items():
            if k in ("kind", "full_batch"):
                continue
            out[k] = repr(v) if isinstance(v, Schedule) else (list(v) if isinstance(v, tuple) else v)
        return out

    def lr_values(self, steps: np.ndarray, steps_per_epoch: int) -> np.ndarray:
        return as_schedule(self.lr).values(steps, steps_per_epoch)

    def momentum_values(self, steps: np.ndarray, steps_per_epoch: int) -> np.ndarray:
        return as_schedule(self.momentum_value).values(steps, steps_per_epoch)


@dataclass
class SGD(Optimizer):
    """Stochastic gradient descent; with ``momentum > 0`` momentum SGD, with ``nesterov`` Nesterov's."""

    lr: float | Schedule = 0.01
    momentum: float | Schedule = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.momentum = _schedule_or_number(self.momentum, "SGD: momentum", momentum=True)
        has_mu = isinstance(self.momentum, Schedule) or self.momentum > 0
        self.kind = "nesterov" if self.nesterov else ("momentum" if has_mu else "sgd")
        if self.nesterov and not has_mu:
            raise ValueError("SGD: nesterov=True needs momentum > 0")


@dataclass
class Momentum(SGD):
    """SGD with (CS231n-form) momentum."""

    momentum: float | Schedule = 0.9


@dataclass
class Nesterov(SGD):
    """Nesterov momentum in the CS231n form."""

    momentum: float | Schedule = 0.9
    nesterov: bool = True


@dataclass
class Adagrad(Optimizer):
    lr: float | Schedule = 0.01
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "adagrad"
        self.eps = _positive(self.eps, "Adagrad: eps")

    def hyper(self) -> dict[str, float]:
        return {"epsilon": self.eps}


@dataclass
class RMSProp(Optimizer):
    lr: float | Schedule = 0.01
    decay: float = 0.99
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "rmsprop"
        self.decay = _unit_interval(self.decay, "RMSProp: decay")
        self.eps = _positive(self.eps, "RMSProp: eps")

    def hyper(self) -> dict[str, float]:
        return {"decay_rate": self.decay, "epsilon": self.eps}


@dataclass
class Adam(Optimizer):
    lr: float | Schedule = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "adam"
        b1, b2 = self.betas
        self.betas = (_unit_interval(b1, "Adam: beta1"), _unit_interval(b2, "Adam: beta2"))
        self.eps = _positive(self.eps, "Adam: eps")

    def hyper(self) -> dict[str, float]:
        return {"beta1": self.betas[0], "beta2": self.betas[1], "epsilon": self.eps}


@dataclass
class AdamW(Adam):
    """Adam with decoupled weight decay (``w *= 1 - lr * weight_decay`` on weights each step)."""

    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "adamw"
        self.weight_decay = _positive(self.weight_decay, "AdamW: weight_decay", allow_zero=True)

    def hyper(self) -> dict[str, float]:
        return {**super().hyper(), "weight_decay": self.weight_decay}


@dataclass
class Adadelta(Optimizer):
    lr: float | Schedule = 1.0
    rho: float = 0.9
    eps: float = 1e-6

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "adadelta"
        self.rho = _unit_interval(self.rho, "Adadelta: rho")
        self.eps = _positive(self.eps, "Adadelta: eps")

    def hyper(self) -> dict[str, float]:
        return {"rho": self.rho, "epsilon": self.eps}


@dataclass
class Rprop(Optimizer):
    """Resilient backpropagation (full-batch): per-weight steps grown on sign agreement."""

    lr: float | Schedule = 0.01
    etas: tuple[float, float] = (0.5, 1.2)
    step_sizes: tuple[float, float] = (1e-6, 50.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "rprop"
        self.full_batch = True
        lo, hi = self.etas
        if not (0 < lo <= 1 <= hi):
            raise ValueError(f"Rprop: etas must satisfy 0 < eta_minus <= 1 <= eta_plus, got {self.etas}")
        smin, smax = self.step_sizes
        if not (0 < smin <= smax):
            raise ValueError(f"Rprop: step_sizes must satisfy 0 < min <= max, got {self.step_sizes}")

    def hyper(self) -> dict[str, float]:
        return {"eta_minus": self.etas[0], "eta_plus": self.etas[1],
                "step_min": self.step_sizes[0], "step_max": self.step_sizes[1]}


@dataclass
class AdaptiveGains(Optimizer):
    """Per-weight adaptive gains (Jacobs; Hinton's lecture 6) with momentum.

    A weight's gain grows by ``gain_add`` while its gradient keeps its sign and shrinks by the
    factor ``gain_mul`` when it flips, clipped to ``gain_range``.
    """

    lr: float | Schedule = 0.01
    momentum: float | Schedule = 0.9
    gain_add: float = 0.05
    gain_mul: float = 0.95
    gain_range: tuple[float, float] = (0.1, 10.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "gains"
        self.momentum = _schedule_or_number(self.momentum, "AdaptiveGains: momentum", momentum=True)
        self.gain_add = _positive(self.gain_add, "AdaptiveGains: gain_add", allow_zero=True)
        if not 0 < self.gain_mul <= 1:
            raise ValueError(f"AdaptiveGains: gain_mul must be in (0, 1], got {self.gain_mul!r}")
        lo, hi = self.gain_range
        if not 0 < lo <= hi:
            raise ValueError(f"AdaptiveGains: gain_range must satisfy 0 < min <= max, got {self.gain_range}")

    def hyper(self) -> dict[str, float]:
        return {"gain_add": self.gain_add, "gain_mul": self.gain_mul,
                "gain_min": self.gain_range[0], "gain_max": self.gain_range[1]}


@dataclass
class LBFGS(Optimizer):
    """Full-batch L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B")`` (needs SciPy).

    The objective and its gradient are fastnn's C++ forward/backward on the whole training set
    (float64 parameters handed to SciPy; the model may be float32). ``max_iter`` is per epoch.
    """

    lr: float | Schedule = 1.0
    max_iter: int = 50
    history: int = 10
    tol: float = 1e-9

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "lbfgs"
        self.full_batch = True
        if int(self.max_iter) < 1 or int(self.history) < 1:
            raise ValueError("LBFGS: max_iter and history must be >= 1")


_NAMES = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": Adagrad,
          "rmsprop": RMSProp, "adam": Adam, "adamw": AdamW, "adadelta": Adadelta, "rprop": Rprop,
          "gains": AdaptiveGains, "lbfgs": LBFGS}


def resolve_optimizer(opt: str | Optimizer, **kwargs: Any) -> Optimizer:
    """An optimizer from a name (e.g. ``"adam"``, with keyword hyperparameters) or as given."""
    if isinstance(opt, Optimizer):
        if kwargs:
            raise TypeError("hyperparameters go to the optimizer's constructor, not here")
        return opt
    if not isinstance(opt, str) or opt.lower() not in _NAMES:
        raise ValueError(f"unknown optimizer {opt!r}; choose one of {sorted(_NAMES)}")
    return _NAMES[opt.lower()](**kwargs)
