"""Weight initialisation schemes (CS231n notes, "Weight Initialization").

A scheme is a name or a callable ``f(rng, shape) -> ndarray``. Weights of a dense layer have
shape ``(fan_in, fan_out)``.

======================================  ===================================================
name                                    distribution
======================================  ===================================================
``small_random``                        0.01 * N(0, 1)
``xavier_normal``, ``glorot_normal``    N(0, 2 / (fan_in + fan_out))  (Glorot)
``xavier_uniform``, ``glorot_uniform``  U(+-sqrt(6 / (fan_in + fan_out)))  (Glorot)
``xavier_in_normal``                    N(0, 1 / fan_in)  (the notes' 1/sqrt(n) calibration)
``xavier_in_uniform``                   U(+-sqrt(3 / fan_in))
``xavier``, ``glorot``                  = ``xavier_normal``
``he``, ``kaiming``, ``he_normal``      N(0, 2 / fan_in)  (ReLU networks)
``kaiming_normal``                      = ``he_normal``
``he_uniform``, ``kaiming_uniform``     U(+-sqrt(6 / fan_in))
``lecun``, ``lecun_normal``             N(0, 1 / fan_in)
``lecun_uniform``                       U(+-sqrt(3 / fan_in))
======================================  ===================================================

Names are case-insensitive. For a 1-D shape both fans are its length; for a shape
``(d0, d1, ..., dk)`` ``fan_in = d0`` and ``fan_out = d1 * ... * dk``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
"""A custom scheme: ``f(rng, shape) -> ndarray`` of that shape with finite values (any float dtype)."""

__all__ = ["SCHEMES", "initialize", "initialize_into", "resolve"]


class _Scheme:
    """A built-in scheme: a distribution whose variance depends on the fans of the full shape."""

    def __init__(self, dist: str, var: Callable[[int, int], float], name: str) -> None:
        self.dist, self.var, self.__name__ = dist, var, name

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...], fans: tuple[int, int]) -> np.ndarray:
        v = self.var(*fans)
        if self.dist == "normal":
            return rng.standard_normal(shape) * np.sqrt(v)
        a = np.sqrt(3.0 * v)  # U(-a, a) has variance a^2 / 3
        return rng.uniform(-a, a, size=shape)

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self.sample(rng, tuple(shape), _fans(tuple(shape)))

    def __repr__(self) -> str:
        return f"<scheme {self.__name__}>"


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


#: The built-in schemes by lower-case name (aliases map to the same scheme).
SCHEMES: dict[str, Initializer] = {
    "small_random": _Scheme("normal", lambda i, o: 1e-4, "small_random"),  # 0.01 * N(0, 1)
    "xavier_normal": _Scheme("normal", _glorot, "xavier_normal"),
    "xavier_uniform": _Scheme("uniform", _glorot, "xavier_uniform"),
    "xavier_in_normal": _Scheme("normal", _in, "xavier_in_normal"),
    "xavier_in_uniform": _Scheme("uniform", _in, "xavier_in_uniform"),
    "he_normal": _Scheme("normal", _he, "he_normal"),
    "he_uniform": _Scheme("uniform", _he, "he_uniform"),
    "lecun_normal": _Scheme("normal", _in, "lecun_normal"),
    "lecun_uniform": _Scheme("uniform", _in, "lecun_uniform"),
}
SCHEMES["glorot_normal"] = SCHEMES["xavier"] = SCHEMES["glorot"] = SCHEMES["xavier_normal"]
SCHEMES["glorot_uniform"] = SCHEMES["xavier_uniform"]
SCHEMES["he"] = SCHEMES["kaiming"] = SCHEMES["kaiming_normal"] = SCHEMES["he_normal"]
SCHEMES["kaiming_uniform"] = SCHEMES["he_uniform"]
SCHEMES["lecun"] = SCHEMES["lecun_normal"]


def resolve(scheme: str | Initializer) -> Initializer:
    """The initialiser for a scheme name (case-insensitive) or a callable.

    Parameters
    ----------
    scheme : str or callable
        A name from the table above, or ``f(rng, shape) -> ndarray`` (returned unchanged).

    Returns
    -------
    callable
        ``f(rng, shape) -> ndarray`` (float64 for the built-in schemes).

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
    """Draw an array of ``shape`` from ``scheme``.

    Parameters
    ----------
    scheme : str or callable
        See :func:`resolve`.
    shape : tuple of int
        E.g. ``(fan_in, fan_out)`` for a Dense weight.
    rng : numpy.random.Generator
        The source of randomness (e.g. ``np.random.default_rng(0)``).

    Returns
    -------
    ndarray, float64, shape ``shape``

    Raises
    ------
    ValueError
        An unknown scheme name, or a callable that returns the wrong shape or non-finite values.
    """
    out = np.empty(tuple(shape), dtype=np.float64)
    initialize_into(out, scheme, rng)
    return out


def initialize_into(out: np.ndarray, scheme: str | Initializer, rng: np.random.Generator,
                    chunk_elems: int = 1 << 20) -> None:
    """Fill ``out`` (any float dtype, e.g. a view into a model's parameters) from ``scheme``.

    Built-in schemes are drawn in row chunks of about ``chunk_elems`` values, so initialising a
    large layer needs no full-size float64 temporary; the values equal a single draw's
    (:func:`initialize` with the same ``rng`` state), rounded to ``out``'s dtype.

    Parameters
    ----------
    out : ndarray
        Written in place; its shape gives the fans.
    scheme : str or callable
        See :func:`resolve`.
    rng : numpy.random.Generator
        The source of randomness.
    chunk_elems : int
        Values drawn per chunk (built-in schemes).

    Raises
    ------
    ValueError
        An unknown scheme name, or a callable that returns the wrong shape or non-finite values.
    """
    f = resolve(scheme)
    shape = tuple(out.shape)
    if isinstance(f, _Scheme):
        fans = _fans(shape)
        rows = shape[0] if shape else 1
        per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        step = max(1, chunk_elems // max(1, per_row))
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            out[r0:r1] = f.sample(rng, (r1 - r0, *shape[1:]), fans)
        return
    arr = np.asarray(f(rng, shape), dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"initialiser returned shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("initialiser returned non-finite values")
    out[...] = arr
