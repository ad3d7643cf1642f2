"""Weight initialisation schemes (CS231n notes, "Weight Initialization").

A scheme is a name or a callable ``f(rng, shape) -> ndarray``. Weights of a dense layer have
shape ``(fan_in, fan_out)``.

=====================================  ==================================================
name                                   distribution
=====================================  ==================================================
``small_random``                       0.01 * N(0, 1)
``xavier_normal``, ``glorot_normal``    N(0, 2 / (fan_in + fan_out))            (Glorot)
``xavier_uniform``, ``glorot_uniform``  U(+-sqrt(6 / (fan_in + fan_out)))        (Glorot)
``xavier_in_normal``                   N(0, 1 / fan_in)     (the notes' 1/sqrt(n) calibration)
``xavier_in_uniform``                  U(+-sqrt(3 / fan_in))
``xavier``, ``glorot``                 = ``xavier_normal``
``he``, ``kaiming``, ``he_normal``     N(0, 2 / fan_in)      (ReLU networks)
``he_uniform``                         U(+-sqrt(6 / fan_in))
``lecun``, ``lecun_normal``            N(0, 1 / fan_in)
``lecun_uniform``                      U(+-sqrt(3 / fan_in))
=====================================  ==================================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]

__all__ = ["SCHEMES", "initialize", "resolve"]


def _normal(var: Callable[[int, int], float]) -> Initializer:
    def f(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        fan_in, fan_out = _fans(shape)
        return rng.standard_normal(shape) * np.sqrt(var(fan_in, fan_out))

    return f


def _uniform(var: Callable[[int, int], float]) -> Initializer:
    def f(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        fan_in, fan_out = _fans(shape)
        a = np.sqrt(3.0 * var(fan_in, fan_out))  # U(-a, a) has variance a^2 / 3
        return rng.uniform(-a, a, size=shape)

    return f


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    return int(shape[0]), int(np.prod(shape[1:]))


def _glorot(i: int, o: int) -> float:
    return 2.0 / (i + o)


def _in(i: int, o: int) -> float:
    return 1.0 / i


def _he(i: int, o: int) -> float:
    return 2.0 / i


SCHEMES: dict[str, Initializer] = {
    "small_random": lambda rng, shape: 0.01 * rng.standard_normal(shape),
    "xavier_normal": _normal(_glorot),
    "xavier_uniform": _uniform(_glorot),
    "xavier_in_normal": _normal(_in),
    "xavier_in_uniform": _uniform(_in),
    "he_normal": _normal(_he),
    "he_uniform": _uniform(_he),
    "lecun_normal": _normal(_in),
    "lecun_uniform": _uniform(_in),
}
SCHEMES["glorot_normal"] = SCHEMES["xavier"] = SCHEMES["glorot"] = SCHEMES["xavier_normal"]
SCHEMES["glorot_uniform"] = SCHEMES["xavier_uniform"]
SCHEMES["he"] = SCHEMES["kaiming"] = SCHEMES["kaiming_normal"] = SCHEMES["he_normal"]
SCHEMES["kaiming_uniform"] = SCHEMES["he_uniform"]
SCHEMES["lecun"] = SCHEMES["lecun_normal"]


def resolve(scheme: str | Initializer) -> Initializer:
    """The initialiser for a scheme name (case-insensitive) or a callable.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    if callable(scheme):
        return scheme
    if not isinstance(scheme, str) or scheme.lower() not in SCHEMES:
        raise ValueError(f"unknown initialisation {scheme!r}; choose one of {sorted(SCHEMES)} "
                         "or pass a callable f(rng, shape)")
    return SCHEMES[scheme.lower()]


def initialize(scheme: str | Initializer, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Draw an array of ``shape`` from ``scheme`` (float64)."""
    out = np.asarray(resolve(scheme)(rng, tuple(shape)), dtype=np.float64)
    if out.shape != tuple(shape):
        raise ValueError(f"initialiser returned shape {out.shape}, expected {tuple(shape)}")
    if not np.all(np.isfinite(out)):
        raise ValueError("initialiser returned non-finite values")
    return out
