"""Learning-rate (and momentum) schedules: pure functions of the training step or epoch.

A schedule maps ``t`` to a value. Its ``unit`` says what ``t`` counts: ``"step"`` (mini-batch
updates) or ``"epoch"`` (fractional: step / steps_per_epoch, so a schedule in epochs still changes
smoothly within an epoch unless it is piecewise constant). Schedules accept NumPy arrays, so the
trainer evaluates a whole epoch's values at once and hands them to the C++ loop; joining schedules
(warm-up then cosine) is a function of functions.

``reduce-on-plateau`` needs the validation metric, so it is a callback
(:class:`fastnn.callbacks.ReduceLROnPlateau`), not a schedule.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Schedule",
    "constant",
    "step_decay",
    "exponential",
    "inverse_time",
    "piecewise",
    "cosine",
    "cosine_restarts",
    "warmup",
    "linear",
    "linear_scaling",
    "as_schedule",
    "by_name",
    "NAMES",
]


@dataclass(frozen=True)
class Schedule:
    """A pure function ``t -> value`` with the unit ``t`` is measured in.

    Calling a schedule evaluates it: ``cosine(0.1, 10)(5.0) == 0.05``; arrays give arrays.

    Parameters
    ----------
    fn : callable
        ``fn(t) -> values`` on a float64 array ``t``, vectorised with NumPy.
    unit : {"epoch", "step"}
        What ``t`` counts.
    description : str
        Shown by ``repr`` (and recorded in checkpoints).

    Raises
    ------
    ValueError
        An unknown unit.
    """

    fn: Callable[[np.ndarray], np.ndarray]
    unit: str = "epoch"
    description: str = ""

    def __post_init__(self) -> None:
        if self.unit not in ("step", "epoch"):
            raise ValueError(f"unit must be 'step' or 'epoch', got {self.unit!r}")

    def __call__(self, t):
        out = np.asarray(self.fn(np.asarray(t, dtype=np.float64)), dtype=np.float64)
        return float(out) if out.ndim == 0 else out

    def values(self, steps: np.ndarray, steps_per_epoch: int) -> np.ndarray:
        """The schedule at global steps ``steps`` (an int array)."""
        t = np.asarray(steps, dtype=np.float64)
        if self.unit == "epoch":
            t = t / float(steps_per_epoch)
        return np.broadcast_to(np.asarray(self(t), dtype=np.float64), t.shape).copy()

    def __repr__(self) -> str:
        return self.description or f"Schedule({self.unit})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A schedule made by this module's functions pickles as that call (its ``fn`` is a closure,
        # which pickle cannot store), so models and optimizers holding one can be pickled and copied.
        recipe = self.__dict__.get("_recipe")
        if recipe is None:
            return super().__reduce_ex__(protocol)
        return _rebuild, recipe


_FACTORIES: dict[str, Callable[..., Schedule]] = {}


def _rebuildable(factory: Callable[..., Schedule]) -> Callable[..., Schedule]:
    """Record the call that made a schedule (see :meth:`Schedule.__reduce_ex__`)."""

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Schedule:
        s = factory(*args, **kwargs)
        object.__setattr__(s, "_recipe", (factory.__name__, args, kwargs))
        return s

    _FACTORIES[factory.__name__] = make
    return make


def _rebuild(name: str, args: tuple, kwargs: dict) -> Schedule:
    return _FACTORIES[name](*args, **kwargs)


def _check_positive(v: float, what: str, allow_zero: bool = False) -> float:
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return v


@_rebuildable
def constant(value: float) -> Schedule:
    """The same ``value`` (>= 0) at every step.

    Raises
    ------
    ValueError
        A negative or non-finite value.
    """
    value = _check_positive(value, "value", allow_zero=True)
    return Schedule(lambda t: np.full_like(t, value), "step", f"constant({value})")


@_rebuildable
def step_decay(initial: float, factor: float = 0.5, every: float = 10, unit: str = "epoch") -> Schedule:
    """``initial * factor ** floor(t / every)`` (the notes' "reduce by half every few epochs").

    Parameters
    ----------
    initial : float
        Value at ``t = 0`` (> 0).
    factor : float
        Multiplier applied every ``every`` units (> 0; < 1 decays).
    every : float
        Period in units (> 0).
    unit : {"epoch", "step"}
        What ``t`` counts: epochs (fractional within an epoch) or optimizer steps.

    Raises
    ------
    ValueError
        Non-positive or non-finite arguments.
    """
    initial = _check_positive(initial, "initial")
    factor = _check_positive(factor, "factor")
    every = _check_positive(every, "every")
    return Schedule(lambda t: initial * factor ** np.floor(t / every), unit,
                    f"step_decay({initial}, factor={factor}, every={every} {unit}s)")


def _decay(name: str, initial: float, k: float, unit: str,
           f: Callable[[float, float, np.ndarray], np.ndarray]) -> Schedule:
    initial = _check_positive(initial, "initial")
    k = _check_positive(k, "k", allow_zero=True)
    return Schedule(lambda t: f(initial, k, t), unit, f"{name}({initial}, k={k}/{unit})")


@_rebuildable
def exponential(initial: float, k: float, unit: str = "epoch") -> Schedule:
    """``initial * exp(-k t)``.

    Parameters
    ----------
    initial : float
        Value at ``t = 0`` (> 0).
    k : float
        Decay rate per unit (>= 0).
    unit : {"epoch", "step"}
        What ``t`` counts: epochs (fractional within an epoch) or optimizer steps.
    """
    return _decay("exponential", initial, k, unit, lambda a, k, t: a * np.exp(-k * t))


@_rebuildable
def inverse_time(initial: float, k: float, unit: str = "epoch") -> Schedule:
    """``initial / (1 + k t)`` (1/t decay): ``initial`` at ``t = 0`` (> 0), decay rate ``k`` per
    ``unit`` (>= 0; ``"epoch"`` or ``"step"``), as in :func:`exponential`."""
    return _decay("inverse_time", initial, k, unit, lambda a, k, t: a / (1.0 + k * t))


@_rebuildable
def piecewise(boundaries: Sequence[float], values: Sequence[float], unit: str = "epoch") -> Schedule:
    """``values[i]`` for ``boundaries[i-1] <= t < boundaries[i]`` (len(values) = len(boundaries) + 1).

    Parameters
    ----------
    boundaries : sequence of float
        Increasing change points, in units.
    values : sequence of float
        One more value than boundaries, each finite and >= 0.
    unit : {"epoch", "step"}
        What ``t`` counts: epochs (fractional within an epoch) or optimizer steps.

    Raises
    ------
    ValueError
        Wrong lengths, boundaries that do not increase, negative or non-finite values.
    """
    b = np.asarray(boundaries, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (b.size + 1,):
        raise ValueError("piecewise needs exactly one more value than boundaries")
    if b.size and np.any(np.diff(b) <= 0):
        raise ValueError("piecewise boundaries must increase")
    if np.any(v < 0) or not np.all(np.isfinite(v)):
        raise ValueError("piecewise values must be finite and >= 0")
    return Schedule(lambda t: v[np.searchsorted(b, t, side="right")], unit,
                    f"piecewise({list(b)}, {list(v)})")


@_rebuildable
def cosine(initial: float, total: float, final: float = 0.0, unit: str = "epoch") -> Schedule:
    """Cosine annealing from ``initial`` to ``final`` over ``total`` units, then ``final``.

    ``final + (initial - final) * (1 + cos(pi * t / total)) / 2``.

    Parameters
    ----------
    initial : float
        Value at ``t = 0`` (> 0).
    total : float
        Length of the annealing in units (> 0), usually the number of epochs.
    final : float
        Value from ``t = total`` on (>= 0).
    unit : {"epoch", "step"}
        What ``t`` counts: epochs (fractional within an epoch) or optimizer steps.
    """
    initial = _check_positive(initial, "initial")
    total = _check_positive(total, "total")
    final = _check_positive(final, "final", allow_zero=True)

    def f(t):
        frac = np.clip(t / total, 0.0, 1.0)
        return final + 0.5 * (initial - final) * (1.0 + np.cos(np.pi * frac))

    return Schedule(f, unit, f"cosine({initial} -> {final} over {total} {unit}s)")


@_rebuildable
def cosine_restarts(initial: float, period: float, mult: float = 1.0, final: float = 0.0,
                    unit: str = "epoch") -> Schedule:
    """SGDR: cosine annealing restarted every period, each period ``mult`` times longer.

    Parameters
    ----------
    initial : float
        Value at the start of every period (> 0).
    period : float
        Length of the first period in units (> 0).
    mult : float
        Each period is ``mult`` (>= 1) times longer than the one before.
    final : float
        Value at the end of every period (>= 0).
    unit : {"epoch", "step"}
        What ``t`` counts: epochs (fractional within an epoch) or optimizer steps.

    Raises
    ------
    ValueError
        ``mult < 1`` or non-positive ``initial`` / ``period``.
    """
    initial = _check_positive(initial, "initial")
    period = _check_positive(period, "period")
    if mult < 1:
        raise ValueError(f"mult must be >= 1, got {mult!r}")
    final = _check_positive(final, "final", allow_zero=True)

    def f(t):
        t = np.asarray(t, dtype=np.float64)
        if mult == 1.0:
            frac = np.mod(t, period) / period
        else:
            # index of the current cycle and the time since it began
            k = np.floor(np.log1p(t * (mult - 1) / period) / np.log(mult))
            start = period * (mult**k - 1) / (mult - 1)
            frac = (t - start) / (period * mult**k)
        return final + 0.5 * (initial - final) * (1.0 + np.cos(np.pi * np.clip(frac, 0, 1)))

    return Schedule(f, unit, f"cosine_restarts({initial}, period={period}, mult={mult})")


@_rebuildable
def linear(start: float, end: float, duration: float, unit: str = "epoch") -> Schedule:
    """From ``start`` to ``end`` linearly over ``duration``, then ``end`` (e.g. momentum 0.5 -> 0.99).

    Parameters
    ----------
    start, end : float
        Values at ``t = 0`` and from ``t = duration`` on.
    duration : float
        Length of the ramp in units (> 0).
    unit : {"epoch", "step"}
        What ``t`` counts: epochs (fractional within an epoch) or optimizer steps.
    """
    duration = _check_positive(duration, "duration")
    return Schedule(lambda t: start + (end - start) * np.clip(t / duration, 0.0, 1.0), unit,
                    f"linear({start} -> {end} over {duration} {unit}s)")


@_rebuildable
def warmup(schedule: Schedule | float, duration: float, start: float = 0.0, unit: str | None = None) -> Schedule:
    """Linear warm-up from ``start`` to the schedule's value over ``duration``, then the schedule.

    The warm-up is measured in the schedule's unit (or ``unit`` for a constant).

    Parameters
    ----------
    schedule : Schedule or float
        What follows the warm-up (a number is a constant schedule).
    duration : float
        Length of the warm-up in units (> 0).
    start : float
        Value at ``t = 0``.
    unit : {"epoch", "step"}, optional
        Must match the wrapped schedule's unit when given.

    Raises
    ------
    ValueError
        A non-positive duration, or a ``unit`` other than the schedule's.
    """
    sched = as_schedule(schedule)
    u = unit or sched.unit
    duration = _check_positive(duration, "duration")
    if u != sched.unit:
        raise ValueError("warmup: unit must match the wrapped schedule's unit")

    def f(t):
        t = np.asarray(t, dtype=np.float64)
        base = np.asarray(sched.fn(t), dtype=np.float64)
        return np.where(t < duration, start + (base - start) * t / duration, base)

    return Schedule(f, u, f"warmup({duration} {u}s) then {sched!r}")


def linear_scaling(base_lr: float, batch_size: int, base_batch_size: int = 256) -> float:
    """The linear scaling rule for large batches: ``base_lr * batch_size / base_batch_size``.

    Raises
    ------
    ValueError
        Batch sizes < 1 or a non-positive ``base_lr``.
    """
    if batch_size < 1 or base_batch_size < 1:
        raise ValueError("batch sizes must be >= 1")
    return _check_positive(base_lr, "base_lr") * batch_size / base_batch_size


def as_schedule(value: float | Schedule | Callable) -> Schedule:
    """A schedule from a number (a constant), a Schedule (as is) or a callable ``f(epoch)`` (in epochs).

    Parameters
    ----------
    value : float, Schedule or callable

    Returns
    -------
    Schedule
    """
    if isinstance(value, Schedule):
        return value
    if callable(value):
        return Schedule(value, "epoch", getattr(value, "__name__", "callable"))
    return constant(value)


#: The schedules :func:`by_name` knows (``fastnn train --schedule``, a search's ``schedule``).
NAMES = ("constant", "cosine", "step", "exponential", "inverse_time", "warmup_cosine", "cosine_restarts")


def by_name(name: str, lr: float, epochs: int) -> float | Schedule:
    """A learning rate ``lr`` under a named schedule spanning a training of ``epochs`` epochs.

    ``"constant"``: ``lr`` itself; ``"cosine"``: :func:`cosine` to 0 at ``epochs``; ``"step"``:
    halved every ``epochs // 4`` epochs; ``"exponential"``: ``exp(-3 t / epochs)``;
    ``"inverse_time"``: ``1 / (1 + 10 t / epochs)``; ``"warmup_cosine"``: a linear warm-up over the
    first tenth, then the cosine; ``"cosine_restarts"``: :func:`cosine_restarts` with a period of
    ``epochs // 4``.

    Parameters
    ----------
    name : str
        One of :data:`NAMES`.
    lr : float
        The initial learning rate (> 0; >= 0 for ``"constant"``).
    epochs : int
        The length of the training (>= 1).

    Returns
    -------
    float or Schedule
        What an optimizer's ``lr`` takes.

    Raises
    ------
    ValueError
        An unknown name (the message lists :data:`NAMES`), ``epochs < 1``, a bad ``lr``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    quarter = max(1, int(epochs) // 4)
    makers: dict[str, Callable[[], float | Schedule]] = {
        "constant": lambda: lr,
        "cosine": lambda: cosine(lr, epochs),
        "step": lambda: step_decay(lr, 0.5, quarter),
        "exponential": lambda: exponential(lr, 3.0 / epochs),
        "inverse_time": lambda: inverse_time(lr, 10.0 / epochs),
        "warmup_cosine": lambda: warmup(cosine(lr, epochs), max(1, int(epochs) // 10)),
        "cosine_restarts": lambda: cosine_restarts(lr, quarter),
    }
    if name not in makers:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(NAMES)}")
    return makers[name]()
