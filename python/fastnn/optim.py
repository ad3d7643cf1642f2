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


def _float(v: Any, what: str) -> float:
    if isinstance(v, bool | str | bytes):  # float("1e-3") would work, float(True) is 1.0: neither is meant
        raise TypeError(f"{what} must be a number, got {type(v).__name__}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {type(v).__name__}") from None


def _unit_interval(v: float, what: str) -> float:
    v = _float(v, what)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{what} must be in [0, 1), got {v!r}")
    return v


def _positive(v: float, what: str, allow_zero: bool = False) -> float:
    v = _float(v, what)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return v


def _schedule_or_number(v, what: str, momentum: bool = False) -> float | Schedule:
    if isinstance(v, Schedule) or callable(v):
        return as_schedule(v)
    return _unit_interval(v, what) if momentum else _positive(v, what, allow_zero=True)


@dataclass
class Optimizer:
    """Base class. ``kind`` is the C++ update; ``hyper()`` its fixed hyperparameters.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch).

    Raises
    ------
    ValueError
        A negative or non-finite learning rate, a momentum outside [0, 1), or another
        hyperparameter out of its range (the message names it).
    """

    lr: float | Schedule = 0.01
    kind: str = field(init=False, default="sgd")
    full_batch: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.lr = _schedule_or_number(self.lr, f"{type(self).__name__}: lr")

    @property
    def momentum_value(self) -> float | Schedule:
        """The momentum (a number or a schedule); 0 for optimizers without one."""
        return getattr(self, "momentum", 0.0)

    def hyper(self) -> dict[str, float]:
        """The fixed hyperparameters handed to the C++ update (names as in ``StepHyper``)."""
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
        """The learning rate at each global step in ``steps`` (int array), float64, same shape."""
        return as_schedule(self.lr).values(steps, steps_per_epoch)

    def momentum_values(self, steps: np.ndarray, steps_per_epoch: int) -> np.ndarray:
        """The momentum at each global step in ``steps`` (int array), float64, same shape."""
        return as_schedule(self.momentum_value).values(steps, steps_per_epoch)


@dataclass
class SGD(Optimizer):
    """Stochastic gradient descent; with ``momentum > 0`` momentum SGD, with ``nesterov`` Nesterov's.

    ``w -= lr * g``; with momentum the CS231n form ``v = mu * v - lr * g; w += v``; with Nesterov
    ``v_prev = v; v = mu * v - lr * g; w += -mu * v_prev + (1 + mu) * v``. At a constant learning
    rate these take exactly the steps of ``torch.optim.SGD(lr, momentum, nesterov)``.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch).
    momentum : float or Schedule
        ``mu`` in [0, 1) (or a schedule, e.g. ``schedules.linear(0.5, 0.99, 20)``); 0 is plain SGD.
    nesterov : bool
        Nesterov's momentum (needs ``momentum > 0``).
    """

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
    """SGD with (CS231n-form) momentum: :class:`SGD` (same ``lr``, ``momentum``, ``nesterov``) with
    ``momentum=0.9`` by default."""

    momentum: float | Schedule = 0.9


@dataclass
class Nesterov(SGD):
    """Nesterov momentum in the CS231n form: :class:`SGD` (same ``lr``, ``momentum``, ``nesterov``) with
    ``momentum=0.9, nesterov=True`` by default."""

    momentum: float | Schedule = 0.9
    nesterov: bool = True


@dataclass
class Adagrad(Optimizer):
    """Adagrad: ``c += g**2; w -= lr * g / (sqrt(c) + eps)`` (``torch.optim.Adagrad`` with
    ``initial_accumulator_value=0`` and this ``eps``).

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch).
    eps : float
        Added to the root of the accumulated squares (> 0).
    """

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
    """RMSProp: ``c = decay * c + (1 - decay) * g**2; w -= lr * g / (sqrt(c) + eps)``
    (``torch.optim.RMSprop(alpha=decay)``, not centred, no momentum).

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch).
    decay : float
        Decay rate of the squared-gradient average, in [0, 1) (CS231n's ``decay_rate``).
    eps : float
        Added to the root (> 0).
    """

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
    """Adam with bias correction (``torch.optim.Adam``): ``m = b1 m + (1 - b1) g``,
    ``v = b2 v + (1 - b2) g**2``, ``w -= lr * m_hat / (sqrt(v_hat) + eps)`` with
    ``m_hat = m / (1 - b1**t)``, ``v_hat = v / (1 - b2**t)`` and ``t`` the 1-based step.

    The model's ``l2`` penalty is added to the gradient (coupled, like PyTorch's
    ``Adam(weight_decay=...)``); use :class:`AdamW` for decoupled decay.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch).
    betas : (float, float)
        ``(b1, b2)``, each in [0, 1).
    eps : float
        Added to the root (> 0).
    """

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
    """Adam with decoupled weight decay (``w *= 1 - lr * weight_decay`` on weights each step).

    The decay applies to Dense weights only (``Dense(decay=True)``), never to biases, batch-norm
    parameters or PReLU slopes: PyTorch's ``AdamW`` with two parameter groups, the weights with
    ``weight_decay`` and the rest with 0.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch).
    betas, eps
        As :class:`Adam`.
    weight_decay : float
        Decoupled decay rate, >= 0 (default 0.01).
    """

    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "adamw"
        self.weight_decay = _positive(self.weight_decay, "AdamW: weight_decay", allow_zero=True)

    def hyper(self) -> dict[str, float]:
        return {**super().hyper(), "weight_decay": self.weight_decay}


@dataclass
class Adadelta(Optimizer):
    """Adadelta (Zeiler; ``torch.optim.Adadelta``): ``a = rho a + (1 - rho) g**2``,
    ``d = sqrt(u + eps) / sqrt(a + eps) * g``, ``u = rho u + (1 - rho) d**2``, ``w -= lr * d``.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch) (1 in the paper).
    rho : float
        Decay of both running averages, in [0, 1).
    eps : float
        Added inside both roots (> 0).
    """

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
    """Resilient backpropagation (full-batch): per-weight steps grown on sign agreement.

    Each weight keeps a step size (starting at ``lr``) multiplied by ``eta_plus`` when its gradient
    keeps its sign and by ``eta_minus`` when it flips (that step then skips the weight), clipped to
    ``step_sizes``; the weight moves by ``-sign(g) * step`` (``torch.optim.Rprop``). The trainer
    hands it the whole training set every step.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch): the initial step size.
    etas : (float, float)
        ``(eta_minus, eta_plus)`` with ``0 < eta_minus <= 1 <= eta_plus``.
    step_sizes : (float, float)
        ``(min, max)`` step size, ``0 < min <= max``.
    """

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
    factor ``gain_mul`` when it flips, clipped to ``gain_range``; then
    ``v = momentum * v - lr * gain * g; w += v``.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a :mod:`fastnn.schedules` schedule (or a callable of the epoch).
    momentum : float or Schedule
        In [0, 1).
    gain_add : float
        Additive gain increase (>= 0).
    gain_mul : float
        Multiplicative gain decrease, in (0, 1].
    gain_range : (float, float)
        ``(min, max)`` gain, ``0 < min <= max``.
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
    (float64 parameters handed to SciPy; the model may be float32). One trainer epoch is one
    ``minimize`` call. Needs SciPy (``pip install 'fastnn[scipy]'``; an ``ImportError`` says so).

    Parameters
    ----------
    lr : float
        Unused by L-BFGS (kept for a uniform interface).
    max_iter : int
        L-BFGS iterations per epoch (>= 1).
    history : int
        Correction pairs kept (SciPy's ``maxcor``, >= 1).
    tol : float
        SciPy's ``gtol`` and ``ftol``.
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
    """An optimizer from a name (with keyword hyperparameters) or an optimizer as given.

    Parameters
    ----------
    opt : str or Optimizer
        ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``,
        ``"adamw"``, ``"adadelta"``, ``"rprop"``, ``"gains"`` (:class:`AdaptiveGains`), ``"lbfgs"``
        (case-insensitive), or an :class:`Optimizer` (returned unchanged).
    **kwargs
        The named optimizer's constructor arguments, e.g. ``resolve_optimizer("adam", lr=3e-3)``.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        An unknown name, or a bad hyperparameter.
    TypeError
        Keyword arguments together with an Optimizer object.
    """
    if isinstance(opt, Optimizer):
        if kwargs:
            raise TypeError("hyperparameters go to the optimizer's constructor, not here")
        return opt
    if not isinstance(opt, str) or opt.lower() not in _NAMES:
        raise ValueError(f"unknown optimizer {opt!r}; choose one of {sorted(_NAMES)}")
    return _NAMES[opt.lower()](**kwargs)
