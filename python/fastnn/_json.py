"""Strict JSON for the files fastnn writes (``history.json``, ``monitor.json``, a search's files).

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which are not JSON (RFC 8259):
JavaScript, ``jq`` and most other readers reject the file. fastnn writes a non-finite number as
``null`` instead (e.g. the learning rate under L-BFGS, which has none, or a diverged loss) and
reads ``null`` back as NaN where a number is expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["dumps", "strict", "finite_or_none", "nan_for_none"]


def finite_or_none(values: Iterable[Any]) -> list[float | None]:
    """``values`` as floats, each non-finite one (NaN, +-inf) replaced by None (JSON ``null``)."""
    out: list[float | None] = []
    for v in values:
        f = float(v)
        out.append(f if math.isfinite(f) else None)
    return out


def nan_for_none(values: Iterable[Any]) -> list[float]:
    """The inverse of :func:`finite_or_none`: floats, with None (JSON ``null``) read as NaN."""
    return [math.nan if v is None else float(v) for v in values]


def strict(obj: Any) -> Any:
    """``obj`` (dicts, lists and tuples of JSON values, NumPy scalars and arrays) with every
    non-finite float replaced by None; arrays become lists, tuples lists."""
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict` ``(obj)``: never a ``NaN`` or ``Infinity`` token."""
    return json.dumps(strict(obj), allow_nan=False, **kwargs)
