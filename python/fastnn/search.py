"""Hyperparameter search, the CS231n notes' way: random search, coarse to fine, from a laptop to a cluster.

The recipe of the notes, as an API::

    from fastnn.search import Search, loguniform, uniform, randint, choice

    space = {"lr": loguniform(1e-4, 1e-1),        # learning rate and regularisation on a log scale
             "l2": loguniform(1e-6, 1e-2),
             "dropout": uniform(0.0, 0.5),        # dropout on a linear scale
             "width": randint(32, 512, log=True),
             "optimizer": choice(["adam", "momentum"])}
    search = Search(space, "runs/search", stages=[(30, 4), (10, 20)],    # (trials, epochs) per stage
                    fixed={"batchnorm": True, "schedule": "cosine"}, seed=0)
    result = search.run(X_train, y_train, X_val, y_val)                  # add workers=4 or client=...
    print(result.summary())
    for w in result.warnings: print(w)                                   # best value on a border?

* **Random, not grid**: every trial draws each hyperparameter independently (``seed`` makes the
  whole search reproducible); :func:`loguniform` samples ``exp(uniform(log lo, log hi))``.
* **Coarse to fine**: ``stages=[(trials, epochs), ...]``. Stage ``s + 1`` narrows every numeric
  range around the best trials of stage ``s`` (the top ``keep`` fraction; in log space for
  log-scaled ranges; never beyond the original range); choices are kept. The ranges of every
  stage are recorded in ``stages.json`` and shown by the report.
* **Border warnings**: a hyperparameter whose best trial sits in the outer ``edge`` fraction of its
  (original) range is flagged: the best value may lie outside it.
* **The run folder** (``out``)::

      search.json          the search (space, stages, fixed values, seed, data fingerprint)
      stages.json          the ranges each stage sampled from
      trials.jsonl         one JSON line per finished trial: params, status ("ok", "failed",
                           "pruned"), per-epoch validation accuracy, best epoch, checkpoint, seconds
      checkpoints/{val_acc:.4f}_{trial}_{epoch}.safetensors
                           each finished trial's weights at its best epoch (fastnn.io format,
                           written atomically; with the preprocessing when one was given)
      report.html + PNGs   written by :func:`write_report` / ``fastnn report DIR``

  Lines are appended, flushed and fsynced after the trial's checkpoint is durable, so a crash
  loses at most the trials that were running. :meth:`Search.run` on an existing folder resumes:
  finished trials (ok or failed) are skipped, unfinished ones re-run with the same
  hyperparameters and seeds (so they give the same results), and a torn last line is ignored.
* **Failures**: a trial whose loss diverges (:class:`fastnn.NonFiniteLossError`) or that raises is
  recorded as ``"failed"`` with its error, and the search goes on.
* **Where trials run**: in this process (default); on ``workers=N`` local processes (each with
  ``cores // N`` threads, so threads x workers never exceed the cores); or on a **Dask
  distributed** cluster (``client=dask.distributed.Client(...)`` or ``scheduler="tcp://host:8786"``),
  e.g. started with ``dask-scheduler`` and ``dask-worker`` or a cluster manager. The data go to
  each worker once (scattered / a process initialiser), not with every trial; checkpoints come
  back to this process, which alone writes the run folder, so workers need no shared filesystem.
* **Optuna** (optional, ``pip install 'fastnn[search]'``): ``sampler="tpe"`` draws trials with
  Optuna's TPE sampler over the same space and stages, and ``pruner="median"`` (in-process) stops
  trials whose validation accuracy trails the median of earlier trials at the same epoch.

Hyperparameters a trial understands (in ``space`` or ``fixed``): ``hidden`` (a list of widths, an
int or ``"256,128"``) or ``width`` and ``depth``; ``activation``, ``batchnorm``, ``dropout``
(probability of dropping), ``l2``, ``l1``, ``label_smoothing``, ``optimizer`` (a fastnn.optim
name), ``lr``, ``momentum``, ``schedule`` (``constant``, ``cosine``, ``step``, ``exponential``,
``inverse_time``, ``warmup_cosine``, ``cosine_restarts``), ``batch_size``, ``epochs`` (a stage's
epochs override it), ``dtype``.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import html
import json
import math
import os
import re
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastnn._atomic import write_atomic
from fastnn._json import dumps, nan_for_none
from fastnn._threads import available_cpus
from fastnn.callbacks import Callback
from fastnn.plots import _figure
from fastnn.report import png_data_uri

__all__ = [
    "Dist",
    "LogUniform",
    "Uniform",
    "RandInt",
    "Choice",
    "loguniform",
    "uniform",
    "randint",
    "choice",
    "parse_dist",
    "Search",
    "SearchResult",
    "load_search",
    "build_model",
    "build_optimizer",
    "train_config",
    "narrow_space",
    "border_warnings",
    "write_report",
    "load_config",
    "run_config",
    "KNOWN_PARAMS",
]

KNOWN_PARAMS = ("hidden", "width", "depth", "activation", "batchnorm", "dropout", "l2", "l1", "label_smoothing",
                "optimizer", "lr", "momentum", "schedule", "batch_size", "epochs", "dtype")
_MOMENTUM_OPTIMIZERS = ("sgd", "momentum", "nesterov", "gains")
CHECKPOINT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^(?P<acc>\d\.\d{4})_(?P<trial>\d+)_(?P<epoch>\d+)\.safetensors$")


# ==============================================================================================
# The search space
# ==============================================================================================
def _finite(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {v!r}")
    return float(v)


class Dist:
    """A distribution of one hyperparameter. ``numeric`` ones have a range ``[lo, hi]`` and can be
    narrowed; ``log`` ones are sampled, narrowed and plotted in log space."""

    numeric: bool = True
    log: bool = False
    lo: float
    hi: float

    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:  # pragma: no cover - abstract
        """Draw ``n`` independent values.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness (the search seeds it, so a search is reproducible).
        n : int
            How many values to draw (``n >= 0``).

        Returns
        -------
        list
            ``n`` plain Python values (``float`` for :class:`LogUniform` and :class:`Uniform`,
            ``int`` for :class:`RandInt`, one of the options for :class:`Choice`), JSON-serialisable.
        """
        raise NotImplementedError

    # transformed coordinates: log for log-scaled ranges
    def _t(self, v: Any) -> float:
        return math.log(float(v)) if self.log else float(v)

    def _inv(self, u: float) -> float:
        return math.exp(u) if self.log else u

    def position(self, v: Any) -> float:
        """Where ``v`` lies in the range, 0 (low edge) to 1 (high edge), in the sampling scale."""
        a, b = self._t(self.lo), self._t(self.hi)
        return 0.5 if b == a else (self._t(v) - a) / (b - a)

    def with_range(self, lo: float, hi: float) -> Dist:  # pragma: no cover - abstract
        """The same kind of distribution over a new range (how :func:`narrow_space` narrows it).

        Parameters
        ----------
        lo, hi : float
            The new bounds, in the original (not log) scale, ``lo <= hi``. :class:`RandInt` rounds
            them outwards to integers and keeps its ``log`` flag.

        Returns
        -------
        Dist
            A new distribution; ``self`` is unchanged.

        Raises
        ------
        ValueError
            Bounds the distribution does not accept (``lo > hi``, ``lo <= 0`` for a log scale).
        """
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """A JSON-serialisable description, as stored in ``search.json`` and ``stages.json``.

        Returns
        -------
        dict
            ``{"kind": "loguniform" | "uniform", "lo": ..., "hi": ...}``,
            ``{"kind": "randint", "lo": ..., "hi": ..., "log": ...}`` or
            ``{"kind": "choice", "options": [...]}``; two distributions are equal when their
            dictionaries are.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.describe()

    def describe(self, digits: int | None = None) -> str:  # pragma: no cover - abstract
        """The distribution in the config-file spelling, e.g. ``"loguniform(0.0001, 0.1)"`` (also the
        ``repr``): :func:`parse_dist` reads it back to an equal distribution.

        Parameters
        ----------
        digits : int, optional
            Print the bounds with this many significant digits, for display (reports, plot
            titles); the text then may not read back exactly. Default: exact (the shortest text
            that reads back to the same float).

        Returns
        -------
        str
            A :class:`Choice` prints its options as JSON (``true``, ``false``, ``null``, which
            :func:`parse_dist` accepts).
        """
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dist) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


def _g(v: float, digits: int | None = 4) -> str:
    return repr(float(v)) if digits is None else f"{v:.{int(digits)}g}"


class _FloatRange(Dist):
    """What :class:`LogUniform` and :class:`Uniform` share: finite float bounds, narrowing, text."""

    _kind = ""

    def __init__(self, lo: float, hi: float) -> None:
        lo, hi = _finite(lo, f"{self._kind}: lo"), _finite(hi, f"{self._kind}: hi")
        if not (0 < lo <= hi if self.log else lo <= hi):
            raise ValueError(f"{self._kind} needs {'0 < ' if self.log else ''}lo <= hi, got ({lo!r}, {hi!r})")
        self.lo, self.hi = lo, hi

    def with_range(self, lo: float, hi: float) -> _FloatRange:
        """The same kind of distribution over ``[lo, hi]`` (see :meth:`Dist.with_range`)."""
        return type(self)(lo, hi)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "loguniform" | "uniform", "lo": lo, "hi": hi}`` (see :meth:`Dist.to_dict`)."""
        return {"kind": self._kind, "lo": self.lo, "hi": self.hi}

    def describe(self, digits: int | None = None) -> str:
        """``"loguniform(lo, hi)"`` or ``"uniform(lo, hi)"`` (see :meth:`Dist.describe`)."""
        return f"{self._kind}({_g(self.lo, digits)}, {_g(self.hi, digits)})"


class LogUniform(_FloatRange):
    """``exp(uniform(log lo, log hi))``, ``0 < lo <= hi``: for learning rates and regularisation strengths."""

    log = True
    _kind = "loguniform"

    def sample(self, rng: np.random.Generator, n: int) -> list[float]:
        """``n`` floats ``exp(u)``, ``u`` uniform in ``[log lo, log hi)`` (see :meth:`Dist.sample`)."""
        return [float(v) for v in np.exp(rng.uniform(math.log(self.lo), math.log(self.hi), n))]


class Uniform(_FloatRange):
    """``uniform(lo, hi)``, ``lo <= hi``: for dropout and other linear-scale values."""

    _kind = "uniform"

    def sample(self, rng: np.random.Generator, n: int) -> list[float]:
        """``n`` floats uniform in ``[lo, hi)`` (see :meth:`Dist.sample`)."""
        return [float(v) for v in rng.uniform(self.lo, self.hi, n)]


class RandInt(Dist):
    """An integer in ``[lo, hi]`` (both included), uniform, or log-uniform with ``log=True``
    (for layer widths)."""

    def __init__(self, lo: int, hi: int, log: bool = False) -> None:
        for name, v in (("lo", lo), ("hi", hi)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise ValueError(f"randint: {name} must be an integer, got {v!r}")
        if not lo <= hi:
            raise ValueError(f"randint needs lo <= hi, got ({lo!r}, {hi!r})")
        if log and lo < 1:
            raise ValueError(f"randint(log=True) needs lo >= 1, got {lo!r}")
        self.lo, self.hi, self.log = int(lo), int(hi), bool(log)

    def sample(self, rng: np.random.Generator, n: int) -> list[int]:
        """``n`` ints in ``[lo, hi]``: uniform, or with ``log=True`` ``floor(exp(u))`` for ``u``
        uniform in ``[log lo, log(hi + 1))``, so each integer is about as likely as its share of
        the log axis (see :meth:`Dist.sample`)."""
        if self.log:
            u = rng.uniform(math.log(self.lo), math.log(self.hi + 1), n)
            return [int(min(self.hi, max(self.lo, math.floor(math.exp(v))))) for v in u]
        return [int(v) for v in rng.integers(self.lo, self.hi + 1, n)]

    def with_range(self, lo: float, hi: float) -> RandInt:
        """``RandInt(floor(lo), ceil(hi), log)``, never empty (see :meth:`Dist.with_range`)."""
        lo_i, hi_i = int(math.floor(lo + 1e-9)), int(math.ceil(hi - 1e-9))
        return RandInt(lo_i, max(lo_i, hi_i), self.log)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "randint", "lo": lo, "hi": hi, "log": log}`` (see :meth:`Dist.to_dict`)."""
        return {"kind": "randint", "lo": self.lo, "hi": self.hi, "log": self.log}

    def describe(self, digits: int | None = None) -> str:
        """``"randint(lo, hi)"`` or ``"randint(lo, hi, log=True)"`` (see :meth:`Dist.describe`)."""
        return f"randint({self.lo}, {self.hi}{', log=True' if self.log else ''})"


class Choice(Dist):
    """One of ``options`` (numbers, strings, booleans, lists such as hidden sizes), uniformly."""

    numeric = False

    def __init__(self, options: Sequence[Any]) -> None:
        if isinstance(options, str | bytes) or not isinstance(options, Sequence) or len(options) == 0:
            raise ValueError(f"choice needs a non-empty list of options, got {options!r}")
        opts = []
        for o in options:  # kept as they read back from JSON (tuples as lists), as trials.jsonl records them
            try:
                opts.append(json.loads(json.dumps(o, allow_nan=False)))
            except (TypeError, ValueError):
                raise ValueError(f"choice options must be JSON values (finite numbers, strings, booleans, null, "
                                 f"lists, tables with string keys), got {o!r}") from None
        self.options = opts

    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:
        """``n`` options, each drawn uniformly with replacement (see :meth:`Dist.sample`)."""
        return [self.options[int(i)] for i in rng.integers(0, len(self.options), n)]

    def index(self, v: Any) -> int:
        """Position of ``v`` among the options (True is not 1 here)."""
        v = list(v) if isinstance(v, tuple) else v
        for i, o in enumerate(self.options):
            if o == v and isinstance(o, bool) == isinstance(v, bool):
                return i
        raise ValueError(f"{v!r} is not one of {self.options!r}")

    def position(self, v: Any) -> float:
        """``index(v) / (len(options) - 1)``: 0 for the first option, 1 for the last.

        Raises
        ------
        ValueError
            ``v`` is not one of the options.
        """
        return self.index(v) / max(1, len(self.options) - 1)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "choice", "options": [...]}`` (see :meth:`Dist.to_dict`)."""
        return {"kind": "choice", "options": self.options}

    def describe(self, digits: int | None = None) -> str:
        """``'choice([...])'`` with the options as JSON (see :meth:`Dist.describe`)."""
        return f"choice({json.dumps(self.options, ensure_ascii=False)})"


def loguniform(lo: float, hi: float) -> LogUniform:
    """A value ``exp(uniform(log lo, log hi))`` (learning rates, L2 strengths)."""
    return LogUniform(lo, hi)


def uniform(lo: float, hi: float) -> Uniform:
    """A value uniform in ``[lo, hi]`` (dropout)."""
    return Uniform(lo, hi)


def randint(lo: int, hi: int, log: bool = False) -> RandInt:
    """An integer uniform in ``[lo, hi]``, both included (log-uniform with ``log=True``)."""
    return RandInt(lo, hi, log)


def choice(options: Sequence[Any]) -> Choice:
    """One of ``options``, uniformly."""
    return Choice(options)


def dist_from_dict(d: Mapping[str, Any]) -> Dist:
    """Inverse of ``Dist.to_dict``."""
    kind = d.get("kind")
    if kind == "loguniform":
        return LogUniform(d["lo"], d["hi"])
    if kind == "uniform":
        return Uniform(d["lo"], d["hi"])
    if kind == "randint":
        return RandInt(int(d["lo"]), int(d["hi"]), bool(d.get("log", False)))
    if kind == "choice":
        return Choice(d["options"])
    raise ValueError(f"unknown distribution {d!r}")


_DIST_FUNCS = {"loguniform": loguniform, "uniform": uniform, "randint": randint, "choice": choice}
_JSON_NAMES = {"true": True, "false": False, "null": None}


class _JsonNames(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _JSON_NAMES:  # TOML/JSON spelling inside a string: log=true, choice([true, null])
            return ast.copy_location(ast.Constant(_JSON_NAMES[node.id]), node)
        return node


def _literal(node: ast.expr) -> Any:
    """A Python literal (never evaluated as code), also in JSON's spelling (``true``, ``false``, ``null``)."""
    return ast.literal_eval(_JsonNames().visit(node))


def parse_dist(spec: Any, name: str = "value") -> Dist:
    """A distribution from a config value: a :class:`Dist`; a string such as
    ``"loguniform(1e-4, 1e-1)"``, ``"randint(32, 512, log=True)"``, ``"choice([64, 128])"`` (parsed,
    never evaluated); a one-key table ``{loguniform = [1e-4, 1e-1]}``; or a list (a choice).

    Parameters
    ----------
    spec : Dist, str, mapping or list
        The value of one key of a config file's ``[space]`` section (or of :class:`Search`'s
        ``space``). Inside a string, JSON's ``true``/``false``/``null`` are accepted beside
        Python's spellings, so ``parse_dist(d.describe()) == d`` for every distribution ``d``.
    name : str
        The hyperparameter's name, used in error messages.

    Returns
    -------
    Dist
        ``spec`` itself when it already is one, else a new distribution.

    Raises
    ------
    ValueError
        Anything else (an unknown function, arguments that do not parse or that the distribution
        rejects, a plain number), naming the hyperparameter.

    Examples
    --------
    >>> parse_dist("randint(32, 512, log=true)", "width")
    randint(32, 512, log=True)
    >>> parse_dist({"loguniform": [1e-4, 1e-1]}, "lr")
    loguniform(0.0001, 0.1)
    >>> parse_dist([64, 128], "batch_size")
    choice([64, 128])
    """
    if isinstance(spec, Dist):
        return spec
    try:
        if isinstance(spec, str):
            tree = ast.parse(spec.strip(), mode="eval").body
            if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id in _DIST_FUNCS):
                raise ValueError("expected loguniform(lo, hi), uniform(lo, hi), randint(lo, hi[, log=True]) "
                                 "or choice([...])")
            args = [_literal(a) for a in tree.args]
            kwargs = {k.arg: _literal(k.value) for k in tree.keywords}
            return _DIST_FUNCS[tree.func.id](*args, **kwargs)
        if isinstance(spec, Mapping) and len(spec) == 1:
            (kind, args), = spec.items()
            if kind not in _DIST_FUNCS:
                raise ValueError(f"unknown distribution {kind!r}")
            if kind == "choice":
                return choice(args)
            if isinstance(args, Mapping):
                return _DIST_FUNCS[kind](**args)
            return _DIST_FUNCS[kind](*args)
        if isinstance(spec, list):
            return choice(spec)
    except (SyntaxError, TypeError) as exc:
        raise ValueError(f"hyperparameter {name!r}: cannot read {spec!r} ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"hyperparameter {name!r}: {exc}") from None
    raise ValueError(f"hyperparameter {name!r}: {spec!r} is not a distribution; use e.g. "
                     "\"loguniform(1e-4, 1e-1)\" or a list of choices (fixed values go under [fixed])")


def _space_to_dict(space: Mapping[str, Dist]) -> dict[str, Any]:
    return {k: v.to_dict() for k, v in space.items()}


def _space_from_dict(d: Mapping[str, Any]) -> dict[str, Dist]:
    return {k: dist_from_dict(v) for k, v in d.items()}


def _sample_params(space: Mapping[str, Dist], rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    cols = {k: d.sample(rng, n) for k, d in space.items()}  # in the space's (sorted) order
    return [{k: cols[k][i] for k in space} for i in range(n)]


# ==============================================================================================
# Coarse to fine, border warnings
# ==============================================================================================
def _ok(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    ok = [r for r in records if r.get("status") == "ok" and r.get("val_acc") is not None]
    return sorted(ok, key=lambda r: (-float(r["val_acc"]), int(r["trial"])))


def narrow_space(current: Mapping[str, Dist], original: Mapping[str, Dist], records: Sequence[Mapping[str, Any]],
                 keep: float = 0.25) -> dict[str, Dist]:
    """The ranges of the next stage: each numeric range shrinks around the best trials.

    The best ``keep`` fraction (at least 2, when there are) of the ``"ok"`` trials in ``records``
    span ``[lo_t, hi_t]`` per hyperparameter, in the sampling scale (log for log-scaled ranges);
    the new range is that span widened by ``max(25 % of the span, 10 % of the current range)`` on
    each side, clipped to the original range. Choices are kept as they are. With no ``"ok"`` trial
    the ranges do not change.

    Returns
    -------
    dict
        Hyperparameter name -> the narrowed :class:`Dist`.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    ok = _ok(records)
    if not ok:
        return dict(current)
    n_top = min(len(ok), max(2, math.ceil(keep * len(ok))))
    top = ok[:n_top]
    out: dict[str, Dist] = {}
    for name, dist in current.items():
        if not dist.numeric or name not in top[0]["params"]:
            out[name] = dist
            continue
        orig = original.get(name, dist)
        vals = [dist._t(r["params"][name]) for r in top]
        a, b = dist._t(dist.lo), dist._t(dist.hi)
        A, B = orig._t(orig.lo), orig._t(orig.hi)
        lo_t, hi_t = min(vals), max(vals)
        pad = max(0.25 * (hi_t - lo_t), 0.1 * (b - a))
        new_lo, new_hi = max(A, lo_t - pad), min(B, hi_t + pad)
        out[name] = dist.with_range(dist._inv(new_lo), dist._inv(new_hi))
        # keep float round trips of exp(log(x)) inside the original range
        if out[name].lo < orig.lo or out[name].hi > orig.hi:
            out[name] = dist.with_range(max(out[name].lo, orig.lo), min(out[name].hi, orig.hi))
    return out


def border_warnings(space: Mapping[str, Dist], records: Sequence[Mapping[str, Any]], edge: float = 0.1,
                    top: int = 5) -> list[str]:
    """Warnings for hyperparameters whose best value sits near an edge of its range.

    A numeric hyperparameter is flagged when the best ``"ok"`` trial's value lies in the outer
    ``edge`` fraction of ``space``'s range (in the sampling scale, log for log-scaled ranges): the
    best setting may lie beyond the range, which should then be extended (the notes' "check that
    the best value is not on the border"). The message counts how many of the ``top`` best trials
    sit in the same band.

    Parameters
    ----------
    space : mapping of str to Dist
        The ranges to check against (a search checks its original ``space``, not a narrowed stage).
        Choices and zero-width ranges are never flagged.
    records : sequence of dict
        Trial records as in ``trials.jsonl`` (``"status"``, ``"val_acc"``, ``"trial"``, ``"params"``);
        only ``"ok"`` trials count.
    edge : float
        Width of the border band as a fraction of the range, in ``(0, 0.5)``.
    top : int
        How many of the best trials the message reports on.

    Returns
    -------
    list of str
        One message per flagged hyperparameter (empty when nothing is on a border or no trial is
        ``"ok"``).

    Raises
    ------
    ValueError
        ``edge`` outside ``(0, 0.5)``.
    """
    if not 0 < edge < 0.5:
        raise ValueError(f"edge must be in (0, 0.5), got {edge!r}")
    ok = _ok(records)
    if not ok:
        return []
    best, leaders = ok[0], ok[:max(1, int(top))]
    out = []
    for name, dist in space.items():
        if not dist.numeric or name not in best["params"] or dist.lo == dist.hi:
            continue
        pos = dist.position(best["params"][name])
        side = "lower" if pos <= edge else "upper" if pos >= 1 - edge else None
        if side is None:
            continue
        same = sum(1 for r in leaders if name in r["params"] and
                   (dist.position(r["params"][name]) <= edge if side == "lower"
                    else dist.position(r["params"][name]) >= 1 - edge))
        edge_v = dist.lo if side == "lower" else dist.hi
        out.append(f"{name}: the best trial (#{best['trial']}, val_acc {float(best['val_acc']):.4f}) has "
                   f"{name} = {_fmt_value(best['params'][name])}, near the {side} edge {_g(edge_v)} of "
                   f"{dist.describe(4)} ({same} of the top {len(leaders)} within the outer {edge:.0%}); "
                   f"the best value may lie {'below' if side == 'lower' else 'above'} the range: extend it")
    return out


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if (abs(v) >= 1e-3 or v == 0) and abs(v) < 1e4 else f"{v:.2e}"
    return json.dumps(v) if isinstance(v, list | dict) else str(v)


# ==============================================================================================
# One trial: a model and an optimizer from a configuration, trained with per-epoch validation
# ==============================================================================================
def _hidden(cfg: Mapping[str, Any]) -> list[int]:
    h = cfg.get("hidden")
    if h is None:
        width, depth = cfg.get("width", 100), cfg.get("depth", 1)
        return [int(width)] * int(depth)
    if isinstance(h, str):
        return [int(v) for v in h.split(",") if v.strip()]
    if isinstance(h, int | np.integer):
        return [int(h)]
    return [int(v) for v in h]


def build_model(params: Mapping[str, Any], input_dim: int, num_classes: int, seed: int = 0,
                dtype: Any = None):
    """The :func:`fastnn.MLP` a configuration describes.

    Parameters
    ----------
    params : mapping
        Hyperparameters (see the module docstring); missing ones take MLP's defaults.
    input_dim, num_classes : int
    seed : int
        Initialisation, dropout and shuffling seed.
    dtype : float32 or float64, optional
        Overrides ``params["dtype"]`` (default float32).

    Returns
    -------
    Sequential
    """
    import fastnn

    unknown = set(params) - set(KNOWN_PARAMS)
    if unknown:
        raise ValueError(f"unknown hyperparameters {sorted(unknown)}; known: {', '.join(KNOWN_PARAMS)}")
    if dtype is None:
        dtype = params.get("dtype", "float32")
    return fastnn.MLP(int(input_dim), _hidden(params), int(num_classes),
                      activation=str(params.get("activation", "relu")),
                      batchnorm=bool(params.get("batchnorm", False)), dropout=float(params.get("dropout", 0.0)),
                      l2=float(params.get("l2", 0.0)), l1=float(params.get("l1", 0.0)),
                      loss=fastnn.losses.SoftmaxCrossEntropy(label_smoothing=float(params.get("label_smoothing", 0.0))),
                      dtype=dtype, seed=int(seed))


def build_optimizer(params: Mapping[str, Any], epochs: int):
    """The optimizer a configuration describes: ``optimizer`` (default ``"adam"``), ``lr`` (default
    1e-3) under ``schedule`` (default ``"constant"``) over ``epochs``, ``momentum`` (default 0.9 for
    the momentum family).

    Parameters
    ----------
    params : mapping
        Hyperparameters (see the module docstring); only ``optimizer``, ``lr``, ``schedule`` and
        ``momentum`` are read. ``momentum`` goes to ``"momentum"``, ``"nesterov"`` and ``"gains"``
        (default 0.9), and to ``"sgd"`` only when given.
    epochs : int
        The length of the training the schedule spans (see :func:`fastnn.schedules.by_name`).

    Returns
    -------
    fastnn.optim.Optimizer
        A new optimizer, its learning rate a constant or a :mod:`fastnn.schedules` function of the epoch.

    Raises
    ------
    ValueError
        An unknown optimizer or schedule name, or a hyperparameter the optimizer rejects.
    """
    from fastnn import optim, schedules

    name = str(params.get("optimizer", "adam")).lower()
    kwargs: dict[str, Any] = {"lr": schedules.by_name(str(params.get("schedule", "constant")),
                                                      float(params.get("lr", 1e-3)), int(epochs))}
    if name in _MOMENTUM_OPTIMIZERS and name != "sgd":
        kwargs["momentum"] = float(params.get("momentum", 0.9))
    elif name == "sgd" and "momentum" in params:
        kwargs["momentum"] = float(params["momentum"])
    return optim.resolve_optimizer(name, **kwargs)


class _BestEpoch(Callback):
    """The best validation accuracy, its epoch (1-based) and a copy of those weights; ``on_epoch``
    (a pruner) may stop the training."""

    def __init__(self, on_epoch: Callable[[int, float], bool] | None = None) -> None:
        self.on_epoch = on_epoch
        self.best, self.epoch, self.weights, self.pruned = -1.0, 0, None, False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        acc = float((logs or {}).get("val_acc", float("nan")))
        if acc > self.best:
            self.best, self.epoch = acc, epoch + 1
            self.weights = self.trainer.model.get_weights()
        if self.on_epoch is not None and self.on_epoch(epoch + 1, acc):
            self.pruned = True
            self.trainer.stop_training = True


def train_config(params: Mapping[str, Any], X_train: Any, y_train: Any, X_val: Any, y_val: Any, *,
                 seed: int = 0, epochs: int | None = None, callbacks: Sequence | None = None,
                 num_classes: int | None = None):
    """Build the model and optimizer of a configuration and train it with per-epoch validation.

    Parameters
    ----------
    params : mapping
        Hyperparameters (see the module docstring).
    X_train, y_train, X_val, y_val : arrays
        Training and validation data (features already preprocessed).
    seed : int
    epochs : int, optional
        Overrides ``params["epochs"]`` (default 10).
    callbacks : sequence of Callback, optional
    num_classes : int, optional
        Default: ``max(label) + 1`` over both splits.

    Returns
    -------
    (Sequential, History)
        The model after the last epoch and its history.

    Raises
    ------
    fastnn.NonFiniteLossError
        The loss diverged.
    """
    import fastnn

    X_train = np.asarray(X_train)
    X_train = X_train.reshape(len(X_train), -1)
    X_val = np.asarray(X_val)
    X_val = X_val.reshape(len(X_val), -1)
    if num_classes is None:
        num_classes = int(max(np.max(y_train), np.max(y_val))) + 1
    E = int(epochs if epochs is not None else params.get("epochs", 10))
    model = build_model(params, X_train.shape[1], num_classes, seed=seed)
    trainer = fastnn.Trainer(model, build_optimizer(params, E), callbacks=list(callbacks or []), progress=False)
    hist = trainer.fit(X_train, y_train, epochs=E, batch_size=int(params.get("batch_size", 64)),
                       validation_data=(X_val, y_val))
    return model, hist


@dataclass
class _Data:
    """The data every trial trains on (sent to each worker once)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    preprocessing: dict | None = None


def _run_trial(spec: Mapping[str, Any], data: _Data, threads: int | None = None,
               on_epoch: Callable[[int, float], bool] | None = None) -> dict[str, Any]:
    """Train one trial; returns its record (JSON-able) plus ``"_checkpoint"`` (the file's bytes)."""
    import fastnn
    from fastnn.io import save

    if threads:
        fastnn.set_num_threads(int(threads))
    params = {**spec.get("fixed", {}), **spec["params"]}
    t0 = time.perf_counter()
    keeper = _BestEpoch(on_epoch)
    status, error, model, hist = "ok", None, None, None
    try:
        model = build_model(params, data.X_train.shape[1], data.num_classes, seed=int(spec["seed"]))
        E = int(spec["epochs"])
        trainer = fastnn.Trainer(model, build_optimizer(params, E), callbacks=[keeper], progress=False)
        hist = trainer.history
        trainer.fit(data.X_train, data.y_train, epochs=E, batch_size=int(params.get("batch_size", 64)),
                    validation_data=(data.X_val, data.y_val))
        if keeper.pruned:
            status = "pruned"
    except fastnn.NonFiniteLossError as exc:
        status, error = "failed", f"NonFiniteLossError: {exc}"
    except Exception as exc:  # a trial that breaks is recorded, and the search goes on
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    h = hist.history if hist is not None else {}
    rec: dict[str, Any] = {
        "trial": int(spec["trial"]), "stage": int(spec["stage"]), "status": status, "params": dict(spec["params"]),
        "seed": int(spec["seed"]), "epochs": int(spec["epochs"]), "epochs_run": len(h.get("val_acc", [])),
        "val_acc": keeper.best if keeper.best >= 0 else None, "best_epoch": keeper.epoch or None,
        "history": {k: [float(v) for v in h.get(k, [])] for k in ("val_acc", "val_loss", "loss", "train_acc")},
        "seconds": round(time.perf_counter() - t0, 4), "threads": fastnn.get_num_threads(),
        "worker": f"{socket.gethostname()}:{os.getpid()}", "error": error, "checkpoint": None,
    }
    if status == "ok" and keeper.weights is not None:
        model.set_weights(keeper.weights)
        with tempfile.TemporaryDirectory(prefix="fastnn-trial-") as tmp:
            path = Path(tmp) / "trial.safetensors"
            save(model, path, history=hist, preprocessing=data.preprocessing, include_optimizer=False,
                 extra={"trial": rec["trial"], "stage": rec["stage"], "params": rec["params"],
                        "fixed": dict(spec.get("fixed", {})), "val_acc": rec["val_acc"],
                        "epoch": rec["best_epoch"], "seed": rec["seed"]})
            rec["_checkpoint"] = path.read_bytes()
    return rec


# ---- worker entry points (module level: pickled by reference) -------------------------------
_WORKER_DATA: _Data | None = None
_WORKER_THREADS: int | None = None


def _process_init(data: _Data, threads: int) -> None:
    global _WORKER_DATA, _WORKER_THREADS
    _WORKER_DATA, _WORKER_THREADS = data, int(threads)
    import fastnn

    fastnn.set_num_threads(int(threads))


def _process_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    assert _WORKER_DATA is not None, "worker not initialised"
    return _run_trial(spec, _WORKER_DATA, _WORKER_THREADS)


def _dask_threads(threads_map: Mapping[str, int]) -> int:
    """Threads for a trial on this Dask worker: the cores of its host shared by every task slot of
    every worker on that host (computed by the master), else cores // this worker's task slots."""
    try:
        from distributed import get_worker

        w = get_worker()
        if w.address in threads_map:
            return int(threads_map[w.address])
        slots = getattr(getattr(w, "state", None), "nthreads", None) or getattr(w, "nthreads", 1)
    except (ImportError, ValueError):  # pragma: no cover - not on a worker
        slots = 1
    return max(1, _cores() // max(1, int(slots)))


def _dask_trial(spec: Mapping[str, Any], data: _Data, threads_map: Mapping[str, int]) -> dict[str, Any]:
    return _run_trial(spec, data, _dask_threads(threads_map))


def _cores() -> int:
    """CPUs this process may use: its affinity mask capped by its cgroup's CPU quota (fastnn's
    default thread count), so that workers x threads never exceed what a container allows."""
    return max(1, available_cpus())


# ==============================================================================================
# Where trials run
# ==============================================================================================
class _InProcess:
    name = "in-process"
    record_errors = False

    def __init__(self, data: _Data, threads: int | None) -> None:
        self.data, self.threads = data, threads
        self.capacity = 1

    def submit(self, spec: Mapping[str, Any], on_epoch=None):
        return _run_trial(spec, self.data, self.threads, on_epoch)

    def wait(self, pending: list) -> tuple[list, list]:
        return pending[:1], pending[1:]

    def result(self, handle: Any) -> dict[str, Any]:
        return handle

    def close(self) -> None:
        pass


class _Processes:
    record_errors = False  # a dead worker process breaks the pool: stop (resume retries)

    def __init__(self, data: _Data, workers: int, threads: int | None) -> None:
        import concurrent.futures as cf
        import multiprocessing as mp

        cores = _cores()
        if workers > cores:
            warnings.warn(f"workers={workers} exceeds the {cores} cores: using {cores} worker processes",
                          stacklevel=3)
            workers = cores
        per = max(1, cores // workers)
        if threads:
            per = min(int(threads), per)
        self.threads, self.capacity = per, workers
        self.name = f"{workers} local processes x {per} threads"
        # spawn: a forked child of a process that has run OpenMP regions may hang in libgomp
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                           initializer=_process_init, initargs=(data, per))
        self._cf = cf

    def submit(self, spec: Mapping[str, Any], on_epoch=None):
        return self.pool.submit(_process_trial, dict(spec))

    def wait(self, pending: list) -> tuple[list, list]:
        done, rest = self._cf.wait(pending, return_when=self._cf.FIRST_COMPLETED)
        return [f for f in pending if f in done], [f for f in pending if f in rest]

    def result(self, handle: Any) -> dict[str, Any]:
        return handle.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Dask:
    record_errors = True  # Dask retries a task whose worker died, then names it: record it as failed

    def __init__(self, data: _Data, client: Any = None, scheduler: str | None = None) -> None:
        try:
            import distributed
        except ImportError:
            raise ImportError("the Dask backend needs dask.distributed: pip install 'fastnn[dask]'") from None
        self._own = client is None
        self.client = client if client is not None else distributed.Client(scheduler)
        self._wait = distributed.wait
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        if not workers:
            with contextlib.suppress(Exception):
                self.client.wait_for_workers(1, timeout=60)
            workers = self.client.scheduler_info().get("workers", {})
        # threads per task slot: a host's cores shared by every slot of every worker on it
        cores = self.client.run(_cores)
        by_host: dict[str, int] = {}
        for addr, w in workers.items():
            by_host[w.get("host", addr)] = by_host.get(w.get("host", addr), 0) + int(w.get("nthreads", 1))
        self.threads_map = {addr: max(1, int(cores.get(addr, 1)) // max(1, by_host[w.get("host", addr)]))
                            for addr, w in workers.items()}
        self.capacity = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        self.name = f"Dask {self.client.scheduler.address} ({len(workers)} workers, {self.capacity} task slots)"
        self.data = self.client.scatter(data, broadcast=True, hash=False)  # once, not per trial

    def submit(self, spec: Mapping[str, Any], on_epoch=None):
        return self.client.submit(_dask_trial, dict(spec), self.data, self.threads_map, pure=False,
                                  key=f"fastnn-trial-{spec['trial']}-{uuid.uuid4().hex[:8]}")

    def wait(self, pending: list) -> tuple[list, list]:
        done, _ = self._wait(pending, return_when="FIRST_COMPLETED")
        return [f for f in pending if f in done], [f for f in pending if f not in done]

    def result(self, handle: Any) -> dict[str, Any]:
        return handle.result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.cancel([self.data])
        if self._own:
            self.client.close()


# ==============================================================================================
# The run folder
# ==============================================================================================
def _read_trials(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of ``trials.jsonl`` and the byte length of its valid part. A torn last line (a
    crash mid-append) is ignored; a damaged line elsewhere is an error."""
    if not path.exists():
        return [], 0
    raw = path.read_bytes()
    records: list[dict[str, Any]] = []
    pos = good = 0
    lineno = 0
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        if nl < 0:  # every complete line ends with a newline: this is a torn tail
            break
        lineno += 1
        line = raw[pos:nl]
        if line.strip():
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "trial" not in rec:
                    raise ValueError("not a trial record")
            except ValueError:
                if not raw[nl + 1:].strip():
                    break  # the last line is damaged (a crash mid-write): dropped
                raise ValueError(f"{path}: line {lineno} is damaged (not a trial record); fix or remove it") from None
            if isinstance(rec.get("history"), dict):  # null (a non-finite loss) reads back as NaN
                rec["history"] = {k: nan_for_none(v) for k, v in rec["history"].items()}
            records.append(rec)
        pos = good = nl + 1
    return records, good


def _append_line(path: Path, record: Mapping[str, Any]) -> None:
    line = dumps(record, sort_keys=True) + "\n"  # strict JSON: a NaN loss is written as null
    with open(path, "ab") as f:
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    """One search per folder at a time."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    f = open(run_dir / ".lock", "w")  # noqa: SIM115 - held for the duration
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"another search is running in {run_dir}") from None
        yield
    finally:
        f.close()


def _fingerprint(data: _Data) -> str:
    h = hashlib.sha1()
    for a in (data.X_train, data.y_train, data.X_val, data.y_val):
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1).data)
    return h.hexdigest()


def _seed_for(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([int(seed), *keys]).generate_state(1, np.uint32)[0])


# ==============================================================================================
# Search
# ==============================================================================================
@dataclass
class SearchResult:
    """What a search found (also read back from a run folder by :func:`load_search`).

    Attributes
    ----------
    run_dir : Path
    trials : list of dict
        Every finished trial's record (``trial``, ``stage``, ``status``, ``params``, ``val_acc``,
        ``best_epoch``, ``history``, ``checkpoint``, ``seconds``, ...).
    space : dict
        The original search space.
    stages : list of dict
        Per stage: ``trials``, ``epochs``, ``space`` (the ranges it sampled from).
    warnings : list of str
        Border warnings (:func:`border_warnings`).
    fixed : dict
        Hyperparameters held fixed.
    """

    run_dir: Path
    trials: list[dict[str, Any]]
    space: dict[str, Dist]
    stages: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)

    def top(self, k: int | None = None) -> list[dict[str, Any]]:
        """The ``"ok"`` trials, best validation accuracy first (ties: lower trial number)."""
        ok = _ok(self.trials)
        return ok if k is None else ok[:int(k)]

    @property
    def best(self) -> dict[str, Any]:
        """The record of the best ``"ok"`` trial (highest ``val_acc``, ties: lower trial number).

        Raises
        ------
        ValueError
            No trial finished successfully.
        """
        top = self.top(1)
        if not top:
            raise ValueError(f"no trial of {self.run_dir} finished successfully")
        return top[0]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The records of the trials with status ``"failed"`` (in file order), each with its ``error``."""
        return [r for r in self.trials if r.get("status") == "failed"]

    def config(self, trial: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The full configuration (fixed values and the trial's hyperparameters) of a trial
        (default: the best)."""
        return {**self.fixed, **(trial or self.best)["params"]}

    def checkpoint(self, trial: Mapping[str, Any] | None = None) -> Path:
        """The checkpoint file of a trial, holding its weights at its best epoch.

        Parameters
        ----------
        trial : dict, optional
            A record from :attr:`trials` or :meth:`top` (default: :attr:`best`).

        Returns
        -------
        Path
            ``run_dir / "checkpoints" / "{val_acc:.4f}_{trial}_{epoch}.safetensors"`` (read it with
            :func:`fastnn.io.load`, or use :meth:`load_model`).

        Raises
        ------
        ValueError
            The trial has no checkpoint (it failed or was pruned), or no trial finished successfully.
        """
        rec = trial or self.best
        if not rec.get("checkpoint"):
            raise ValueError(f"trial {rec['trial']} has no checkpoint (status {rec.get('status')})")
        return self.run_dir / rec["checkpoint"]

    def load_model(self, trial: Mapping[str, Any] | None = None):
        """The model of a trial (default: the best) at its best epoch."""
        from fastnn.io import load

        return load(self.checkpoint(trial))

    def ensemble(self, k: int = 5):
        """:class:`fastnn.ensemble.Ensemble` of the ``k`` best trials."""
        from fastnn.ensemble import Ensemble

        return Ensemble.from_search(self.run_dir, k)

    def summary(self, k: int = 10) -> str:
        """A text table of the ``k`` best trials, then failures and border warnings."""
        names = list(self.space)
        rows = [["rank", "trial", "stage", "val_acc", "epoch", *names]]
        for i, r in enumerate(self.top(k)):
            rows.append([str(i + 1), str(r["trial"]), str(r["stage"]), f"{float(r['val_acc']):.4f}",
                         f"{r['best_epoch']}/{r['epochs']}", *[_fmt_value(r["params"].get(n)) for n in names]])
        widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        n_fail = len(self.failed)
        lines.append(f"{len(self.trials)} trials: {len(self.top())} ok, {n_fail} failed, "
                     f"{sum(r.get('status') == 'pruned' for r in self.trials)} pruned")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class Search:
    """A random (or TPE) hyperparameter search, coarse to fine, resumable, on any backend.

    Parameters
    ----------
    space : mapping of str to Dist
        Hyperparameters to search (:func:`loguniform`, :func:`uniform`, :func:`randint`,
        :func:`choice`, or config strings such as ``"loguniform(1e-4, 1e-1)"``).
    out : str or Path
        The run folder (created; an existing one is resumed).
    stages : sequence of (trials, epochs)
        E.g. ``[(40, 3), (10, 20)]``: a coarse stage of 40 short trials, then 10 longer ones in
        the narrowed ranges.
    fixed : mapping, optional
        Hyperparameters held fixed (they must not also be in ``space``).
    seed : int
        Seeds the sampling and every trial (trial ``i`` trains with seed ``f(seed, i)``).
    keep : float
        The fraction of a stage's best trials the next stage's ranges are narrowed around.
    edge : float
        Border-warning band (see :func:`border_warnings`).
    sampler : "random" or "tpe"
        ``"tpe"`` needs Optuna (``pip install 'fastnn[search]'``). TPE is adaptive: on resume its
        study is rebuilt from the finished trials and unfinished trials are asked anew (random
        search re-runs them with the very same hyperparameters).
    pruner : None or "median"
        Optuna's MedianPruner on the per-epoch validation accuracy (``sampler="tpe"``, in-process).
    workers : int, optional
        Run trials on this many local processes (threads per process = cores // workers; more
        workers than cores are reduced to the cores). The processes are spawned, so a script that
        runs a search must guard it with ``if __name__ == "__main__":``.
    client : dask.distributed.Client, optional
        Run trials on a Dask cluster.
    scheduler : str, optional
        Address of a Dask scheduler (``"tcp://host:8786"``) to connect a client to.
    threads : int, optional
        Threads per trial (in-process default: fastnn's current setting; capped by the backends).
    preprocessing : dict or fitted transformer, optional
        The preprocessing already applied to the data given to :meth:`run` (e.g. a fitted
        ``fastnn.preprocessing.StandardScaler`` or its ``to_dict()``), stored in every checkpoint's
        metadata so that an ensemble of trials (:meth:`fastnn.ensemble.Ensemble.from_search`)
        applies it to raw inputs.
    verbose : bool
        Print a line per finished trial.

    Raises
    ------
    ValueError
        Bad stages, unknown hyperparameters, overlapping ``space`` and ``fixed``, more than one
        backend.
    """

    def __init__(self, space: Mapping[str, Any], out: str | Path, *, stages: Sequence[Sequence[int]] = ((20, 5),),
                 fixed: Mapping[str, Any] | None = None, seed: int = 0, keep: float = 0.25, edge: float = 0.1,
                 sampler: str = "random", pruner: str | None = None, workers: int | None = None,
                 client: Any = None, scheduler: str | None = None, threads: int | None = None,
                 preprocessing: dict | None = None, verbose: bool = False) -> None:
        if not isinstance(space, Mapping) or not space:
            raise ValueError("space must be a non-empty mapping of hyperparameter names to distributions")
        self.space = {k: parse_dist(v, k) for k, v in sorted(space.items())}
        self.fixed = dict(fixed or {})
        both = set(self.space) & set(self.fixed)
        if both:
            raise ValueError(f"hyperparameters {sorted(both)} are both searched and fixed")
        unknown = (set(self.space) | set(self.fixed)) - set(KNOWN_PARAMS)
        if unknown:
            raise ValueError(f"unknown hyperparameters {sorted(unknown)}; known: {', '.join(KNOWN_PARAMS)}")
        try:
            json.dumps(self.fixed)
        except TypeError as exc:
            raise ValueError(f"fixed values must be JSON values: {exc}") from None
        st = []
        for s in stages:
            if not (isinstance(s, Sequence) and len(s) == 2 and all(isinstance(v, int | np.integer) and
                                                                   not isinstance(v, bool) and v >= 1 for v in s)):
                raise ValueError(f"stages must be (trials, epochs) pairs of positive integers, got {s!r}")
            st.append((int(s[0]), int(s[1])))
        if not st:
            raise ValueError("stages must name at least one (trials, epochs) stage")
        self.stages = st
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {keep!r}")
        if not 0 < edge < 0.5:
            raise ValueError(f"edge must be in (0, 0.5), got {edge!r}")
        self.keep, self.edge = float(keep), float(edge)
        if sampler not in ("random", "tpe"):
            raise ValueError(f"sampler must be 'random' or 'tpe', got {sampler!r}")
        if pruner not in (None, "none", "median"):
            raise ValueError(f"pruner must be None or 'median', got {pruner!r}")
        self.sampler, self.pruner = sampler, (None if pruner == "none" else pruner)
        if self.pruner and sampler != "tpe":
            raise ValueError("pruner='median' works with sampler='tpe' (Optuna)")
        backends = sum(v is not None for v in (workers, client, scheduler))
        if backends > 1:
            raise ValueError("give at most one of workers=, client=, scheduler=")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int | np.integer)
                                    or workers < 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if self.pruner and backends:
            raise ValueError("the median pruner needs the in-process backend (no workers/client/scheduler)")
        if sampler == "tpe":
            _optuna()
        self.workers, self.client, self.scheduler = workers, client, scheduler
        self.threads = threads
        if preprocessing is not None and hasattr(preprocessing, "to_dict"):
            preprocessing = preprocessing.to_dict()  # a fitted fastnn.preprocessing transformer
        if preprocessing is not None:
            try:
                json.dumps(preprocessing)
            except TypeError as exc:
                raise ValueError(f"preprocessing must be JSON-serialisable (a to_dict() result): {exc}") from None
        self.preprocessing = preprocessing
        self.verbose = bool(verbose)
        self.out = Path(out)
        for d in self.space.values():  # every choice must be JSON (recorded in trials.jsonl)
            d.to_dict()

    # ------------------------------------------------------------------------------------------
    def _meta(self, data: _Data) -> dict[str, Any]:
        import fastnn

        return {"format": 1, "fastnn_version": fastnn.__version__, "space": _space_to_dict(self.space),
                "fixed": self.fixed, "stages": [list(s) for s in self.stages], "seed": self.seed,
                "keep": self.keep, "edge": self.edge, "sampler": self.sampler, "pruner": self.pruner,
                "data": {"fingerprint": _fingerprint(data), "train": list(data.X_train.shape),
                         "val": list(data.X_val.shape), "classes": data.num_classes},
                "preprocessing": data.preprocessing}

    def _check_resume(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        diffs = [k for k in ("space", "fixed", "seed", "keep", "sampler") if old.get(k) != new.get(k)]
        if old.get("data", {}).get("fingerprint") != new["data"]["fingerprint"]:
            diffs.append("data")
        o, n = [tuple(s) for s in old.get("stages", [])], [tuple(s) for s in new["stages"]]
        if n[:len(o)] != o and o[:len(n)] != n:
            diffs.append("stages")
        if diffs:
            raise ValueError(f"{self.out} holds a different search ({', '.join(diffs)} differ); "
                             "use another folder, or the same settings to resume it")

    def _backend(self, data: _Data):
        if self.client is not None or self.scheduler is not None:
            return _Dask(data, self.client, self.scheduler)
        if self.workers:
            return _Processes(data, int(self.workers), self.threads)
        return _InProcess(data, self.threads)

    # ------------------------------------------------------------------------------------------
    def run(self, X_train: Any, y_train: Any, X_val: Any, y_val: Any, *, max_trials: int | None = None,
            num_classes: int | None = None) -> SearchResult:
        """Run (or resume) the search.

        Parameters
        ----------
        X_train, y_train, X_val, y_val : arrays
            Preprocessed features (N, ...) and integer labels (N,). The test split stays out.
        max_trials : int, optional
            Stop after this many newly finished trials (the rest runs on the next call).
        num_classes : int, optional
            Default ``max(label) + 1``.

        Returns
        -------
        SearchResult

        Raises
        ------
        ValueError
            An existing folder holding a different search (space, stages, seed or data differ).
        RuntimeError
            Another process is running a search in the same folder.
        """
        data = self._data(X_train, y_train, X_val, y_val, num_classes)
        # fail fast on a configuration that cannot build a model
        probe = _sample_params(self.space, np.random.default_rng(0), 1)[0]
        build_model({**self.fixed, **probe}, data.X_train.shape[1], data.num_classes)
        build_optimizer({**self.fixed, **probe}, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / CHECKPOINT_DIR).mkdir(exist_ok=True)
        with _lock(self.out):
            meta = json.loads(dumps(self._meta(data)))  # as it reads back (tuples -> lists, NaN -> null)
            meta_path = self.out / "search.json"
            if meta_path.exists():
                self._check_resume(json.loads(meta_path.read_text(encoding="utf-8")), meta)
            write_atomic(meta_path, dumps(meta, indent=1))
            trials_path = self.out / "trials.jsonl"
            records, good = _read_trials(trials_path)
            if trials_path.exists() and trials_path.stat().st_size != good:
                with open(trials_path, "r+b") as f:  # drop a torn tail before appending
                    f.truncate(good)
                    os.fsync(f.fileno())
            done = {int(r["trial"]) for r in records}
            self._clean_orphans(done)
            backend = self._backend(data)
            try:
                self._stages(backend, records, done, max_trials)
            finally:
                backend.close()
        return load_search(self.out)

    def _data(self, X_train, y_train, X_val, y_val, num_classes) -> _Data:
        arrs = []
        for name, X in (("X_train", X_train), ("X_val", X_val)):
            X = np.asarray(X)
            if X.ndim < 2 or X.dtype.kind not in "fiu":
                raise ValueError(f"{name} must be a numeric array of shape (N, features), got {X.shape} {X.dtype}")
            arrs.append(np.ascontiguousarray(X.reshape(len(X), -1)))
        ys = []
        for name, y, X in (("y_train", y_train, arrs[0]), ("y_val", y_val, arrs[1])):
            y = np.asarray(y)
            if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != len(X):
                raise ValueError(f"{name} must hold one integer label per row, got {y.shape} {y.dtype}")
            ys.append(np.ascontiguousarray(y, dtype=np.int64))
        k = int(num_classes) if num_classes is not None else int(max(ys[0].max(), ys[1].max())) + 1
        return _Data(arrs[0], ys[0], arrs[1], ys[1], k, self.preprocessing)

    def _clean_orphans(self, done: set[int]) -> None:
        """Checkpoints of trials without a record (a crash between the two writes) and temporary files."""
        ck = self.out / CHECKPOINT_DIR
        for p in ck.iterdir():
            m = _CKPT_RE.match(p.name)
            if (p.name.startswith(".") and ".tmp-" in p.name) or (m and int(m["trial"]) not in done):
                with contextlib.suppress(OSError):
                    p.unlink()

    def _stage_spaces_record(self, spaces: list[dict[str, Dist]], complete: list[bool]) -> None:
        doc = {"stages": [{"stage": i, "trials": self.stages[i][0], "epochs": self.stages[i][1],
                           "space": _space_to_dict(sp), "describe": {k: d.describe() for k, d in sp.items()},
                           "complete": complete[i]} for i, sp in enumerate(spaces)]}
        write_atomic(self.out / "stages.json", dumps(doc, indent=1))

    def _stages(self, backend, records: list[dict], done: set[int], max_trials: int | None) -> None:
        spaces: list[dict[str, Dist]] = []
        complete: list[bool] = []
        budget = [max_trials if max_trials is not None else math.inf]
        first = 0
        for s, (n_trials, epochs) in enumerate(self.stages):
            if s == 0:
                space = dict(self.space)
            else:
                prev = [r for r in records if int(r["stage"]) == s - 1]
                space = narrow_space(spaces[-1], self.space, prev, self.keep)
            spaces.append(space)
            complete.append(False)
            self._stage_spaces_record(spaces, complete)
            ids = list(range(first, first + n_trials))
            first += n_trials
            if self.sampler == "tpe":
                finished = self._run_tpe_stage(backend, s, space, epochs, ids, records, done, budget)
            else:
                finished = self._run_random_stage(backend, s, space, epochs, ids, records, done, budget)
            if not finished:
                return
            complete[-1] = True
            self._stage_spaces_record(spaces, complete)

    def _spec(self, trial: int, stage: int, epochs: int, params: dict[str, Any]) -> dict[str, Any]:
        return {"trial": trial, "stage": stage, "epochs": epochs, "params": params, "fixed": self.fixed,
                "seed": _seed_for(self.seed, 1, trial)}

    def _finish(self, rec: dict[str, Any], records: list[dict], done: set[int]) -> None:
        """Write a finished trial: checkpoint first (atomically), then its line (fsynced)."""
        blob = rec.pop("_checkpoint", None)
        if blob is not None:
            name = f"{float(rec['val_acc']):.4f}_{rec['trial']}_{rec['best_epoch']}.safetensors"
            write_atomic(self.out / CHECKPOINT_DIR / name, blob)
            rec["checkpoint"] = f"{CHECKPOINT_DIR}/{name}"
        rec["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _append_line(self.out / "trials.jsonl", rec)
        records.append(rec)
        done.add(int(rec["trial"]))
        if self.verbose:
            acc = "-" if rec["val_acc"] is None else f"{rec['val_acc']:.4f}"
            params = ", ".join(f"{k}={_fmt_value(v)}" for k, v in rec["params"].items())
            print(f"trial {rec['trial']:4d} (stage {rec['stage']}) {rec['status']:6s} val_acc {acc}  "
                  f"{rec['seconds']:.1f}s  {params}" + (f"  [{rec['error'][:80]}]" if rec["error"] else ""),
                  flush=True)

    def _run_random_stage(self, backend, stage: int, space: dict[str, Dist], epochs: int, ids: list[int],
                          records: list[dict], done: set[int], budget: list) -> bool:
        params = _sample_params(space, np.random.default_rng([self.seed, 2, stage]), len(ids))
        todo = [self._spec(t, stage, epochs, p) for t, p in zip(ids, params, strict=True) if t not in done]
        pending: list = []
        specs: dict[int, dict[str, Any]] = {}
        try:
            while todo or pending:
                while todo and len(pending) < backend.capacity and budget[0] - len(pending) > 0:
                    spec = todo.pop(0)
                    h = backend.submit(spec)
                    pending.append(h)
                    specs[id(h)] = spec
                if not pending:
                    return False
                finished, pending = backend.wait(pending)
                for h in finished:
                    self._finish(_result(backend, h, specs.pop(id(h))), records, done)
                    budget[0] -= 1
        finally:
            for h in pending:  # stopped early (max_trials or an error): the rest runs on resume
                with contextlib.suppress(Exception):
                    h.cancel()
        return all(t in done for t in ids)

    def _run_tpe_stage(self, backend, stage: int, space: dict[str, Dist], epochs: int, ids: list[int],
                       records: list[dict], done: set[int], budget: list) -> bool:
        optuna = _optuna()
        dists = {k: _optuna_dist(d) for k, d in space.items()}
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) if self.pruner else None
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
            seed=_seed_for(self.seed, 3, stage), n_startup_trials=max(2, min(10, len(ids) // 3))),
            pruner=pruner or optuna.pruners.NopPruner())
        for r in records:  # finished trials of this stage go back into the study
            if int(r["stage"]) != stage:
                continue
            try:
                p = {k: _to_optuna(space[k], v) for k, v in r["params"].items()}
                inter = {i + 1: v for i, v in enumerate(r["history"].get("val_acc", []))}
                st = {"ok": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}.get(
                    r["status"], optuna.trial.TrialState.FAIL)
                study.add_trial(optuna.trial.create_trial(
                    params=p, distributions=dists, state=st, intermediate_values=inter,
                    value=float(r["val_acc"]) if st == optuna.trial.TrialState.COMPLETE else None))
            except ValueError:  # a value outside this stage's distributions: leave it out
                continue
        todo = [t for t in ids if t not in done]
        pending: dict[Any, Any] = {}
        while todo or pending:
            while todo and len(pending) < backend.capacity and budget[0] - len(pending) > 0:
                t = todo.pop(0)
                ot = study.ask(dists)
                params = {k: _from_optuna(space[k], ot.params[k]) for k in space}
                spec = self._spec(t, stage, epochs, params)
                on_epoch = None
                if self.pruner:
                    def on_epoch(epoch: int, acc: float, ot=ot) -> bool:
                        ot.report(acc, epoch)
                        return ot.should_prune()
                h = backend.submit(spec, on_epoch)
                pending[id(h)] = (h, ot, spec)
            if not pending:
                return False
            handles = [v[0] for v in pending.values()]
            finished, _ = backend.wait(handles)
            for h in finished:
                _, ot, spec = pending.pop(id(h))
                rec = _result(backend, h, spec)
                if rec["status"] == "ok":
                    study.tell(ot, float(rec["val_acc"]))
                elif rec["status"] == "pruned":
                    study.tell(ot, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(ot, state=optuna.trial.TrialState.FAIL)
                self._finish(rec, records, done)
                budget[0] -= 1
        return all(t in done for t in ids)


def _result(backend: Any, handle: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A finished trial's record; on a cluster, a task that died with its worker (KilledWorker,
    lost connection) is recorded as failed and the search goes on."""
    try:
        return backend.result(handle)
    except Exception as exc:
        if not backend.record_errors:
            raise
        return {"trial": int(spec["trial"]), "stage": int(spec["stage"]), "status": "failed",
                "params": dict(spec["params"]), "seed": int(spec["seed"]), "epochs": int(spec["epochs"]),
                "epochs_run": 0, "val_acc": None, "best_epoch": None,
                "history": {"val_acc": [], "val_loss": [], "loss": [], "train_acc": []}, "seconds": 0.0,
                "threads": None, "worker": None, "error": f"{type(exc).__name__}: {exc}", "checkpoint": None}


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("sampler='tpe' needs Optuna: pip install 'fastnn[search]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _optuna_dist(d: Dist):
    optuna = _optuna()
    if isinstance(d, LogUniform):
        return optuna.distributions.FloatDistribution(d.lo, d.hi, log=True)
    if isinstance(d, Uniform):
        return optuna.distributions.FloatDistribution(d.lo, d.hi)
    if isinstance(d, RandInt):
        return optuna.distributions.IntDistribution(d.lo, d.hi, log=d.log)
    return optuna.distributions.CategoricalDistribution(list(range(len(d.options))))


def _to_optuna(d: Dist, v: Any) -> Any:
    if isinstance(d, Choice):
        return d.index(v)
    if not d.lo <= v <= d.hi:
        raise ValueError("outside")
    return v


def _from_optuna(d: Dist, v: Any) -> Any:
    if isinstance(d, Choice):
        return d.options[int(v)]
    if isinstance(d, RandInt):
        return int(v)
    return float(v)


# ==============================================================================================
# Reading a run folder back
# ==============================================================================================
def load_search(run_dir: str | Path) -> SearchResult:
    """The :class:`SearchResult` of a run folder (finished, interrupted or still running).

    Parameters
    ----------
    run_dir : str or Path
        A folder :meth:`Search.run` writes (``search.json``, ``stages.json``, ``trials.jsonl``).
        A folder with only ``trials.jsonl`` gives a result with an empty space and no warnings.

    Returns
    -------
    SearchResult
        Every finished trial (a torn last line of ``trials.jsonl`` is ignored), the original space,
        the stages and the border warnings.

    Raises
    ------
    FileNotFoundError
        No ``search.json``/``trials.jsonl`` in the folder.
    ValueError
        A damaged ``search.json``, or a damaged line of ``trials.jsonl`` other than the last.
    """
    run = Path(run_dir)
    meta_path = run / "search.json"
    if not meta_path.exists():
        if (run / "trials.jsonl").exists():
            meta = {"space": {}, "fixed": {}, "stages": [], "edge": 0.1}
        else:
            raise FileNotFoundError(f"{run} is not a search folder (no search.json or trials.jsonl)")
    else:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    records, _ = _read_trials(run / "trials.jsonl")
    space = _space_from_dict(meta.get("space", {}))
    stages: list[dict[str, Any]] = []
    sp = run / "stages.json"
    if sp.exists():
        with contextlib.suppress(ValueError):
            for st in json.loads(sp.read_text(encoding="utf-8")).get("stages", []):
                stages.append({**st, "space": _space_from_dict(st["space"])})
    return SearchResult(run_dir=run, trials=records, space=space, stages=stages,
                        warnings=border_warnings(space, records, float(meta.get("edge", 0.1))) if space else [],
                        fixed=dict(meta.get("fixed", {})))


# ==============================================================================================
# The master's view: an HTML report
# ==============================================================================================
_STAGE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def plot_params(result: SearchResult):
    """Validation accuracy against each hyperparameter (log x axes for log-scaled ones), one colour
    per stage, the best trial starred, the original range's edges dashed."""
    names = list(result.space)
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = _figure((4.2 * cols, 3.2 * rows))
    ok = result.top()
    best = ok[0] if ok else None
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        dist = result.space[name]
        for s in sorted({int(r["stage"]) for r in ok}):
            pts = [r for r in ok if int(r["stage"]) == s and name in r["params"]]
            if dist.numeric:
                xs = [float(r["params"][name]) for r in pts]
            else:
                xs = [dist.index(r["params"][name]) + 0.15 * (s - 0.5) for r in pts]
            ax.scatter(xs, [float(r["val_acc"]) for r in pts], s=18, alpha=0.75,
                       color=_STAGE_COLORS[s % len(_STAGE_COLORS)], label=f"stage {s}")
        if dist.numeric:
            if dist.log:
                ax.set_xscale("log")
                if isinstance(dist, RandInt):  # integer values: plain tick labels
                    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

                    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                    ax.xaxis.set_major_formatter(ScalarFormatter())
                    ax.xaxis.set_minor_formatter(NullFormatter())
            for edge in (dist.lo, dist.hi):
                ax.axvline(edge, color="0.5", linestyle="--", linewidth=0.8)
            for st in result.stages[1:]:  # the narrowed ranges of the later stages
                d = st["space"].get(name)
                if d is not None:
                    ax.axvspan(d.lo, d.hi, color=_STAGE_COLORS[int(st["stage"]) % len(_STAGE_COLORS)], alpha=0.08)
        else:
            ax.set_xticks(range(len(dist.options)))
            ax.set_xticklabels([_fmt_value(o) for o in dist.options], rotation=20, fontsize=8)
        if best is not None and name in best["params"]:
            bx = float(best["params"][name]) if dist.numeric else dist.index(best["params"][name])
            ax.scatter([bx], [float(best["val_acc"])], marker="*", s=160, color="gold", edgecolor="k", zorder=5,
                       label="best")
        ax.set_xlabel(name + (" (log scale)" if dist.log else ""))
        ax.set_ylabel("validation accuracy")
        ax.set_title(dist.describe(4), fontsize=9)
        if i == 0 and ok:
            ax.legend(fontsize=7)
    return fig


def plot_learning_curves(result: SearchResult, k: int = 6):
    """Validation accuracy and training loss per epoch of the ``k`` best trials."""
    fig = _figure((11, 3.8))
    a1, a2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for r in result.top(k):
        h = r.get("history", {})
        lab = f"#{r['trial']} ({float(r['val_acc']):.4f})"
        va = h.get("val_acc", [])
        a1.plot(range(1, len(va) + 1), va, marker="o", markersize=3, label=lab)
        lo = h.get("loss", [])
        if lo:
            a2.plot(range(1, len(lo) + 1), lo, label=lab)
    a1.set_xlabel("epoch")
    a1.set_ylabel("validation accuracy")
    a1.set_title(f"learning curves of the top {k} trials")
    a2.set_xlabel("epoch")
    a2.set_ylabel("training loss")
    if any(r.get("history", {}).get("loss") for r in result.top(k)):
        a2.set_yscale("log")
    a1.legend(fontsize=7)
    return fig


def plot_progress(result: SearchResult):
    """Each trial's best validation accuracy in trial order, the running best, stage boundaries."""
    fig = _figure((11, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    recs = sorted(result.trials, key=lambda r: int(r["trial"]))
    ok = [r for r in recs if r.get("status") == "ok"]
    ax.scatter([r["trial"] for r in ok], [r["val_acc"] for r in ok], s=14, label="trial")
    bad = [r for r in recs if r.get("status") != "ok"]
    if ok and bad:
        y0 = min(float(r["val_acc"]) for r in ok)
        ax.scatter([r["trial"] for r in bad], [y0] * len(bad), marker="x", color="red", label="failed / pruned")
    run, xs, ys = -1.0, [], []
    for r in recs:
        if r.get("status") == "ok":
            run = max(run, float(r["val_acc"]))
        if run >= 0:
            xs.append(r["trial"])
            ys.append(run)
    if xs:
        ax.step(xs, ys, where="post", color="k", linewidth=1, label="best so far")
    first = 0
    for st in result.stages[:-1]:
        first += int(st["trials"])
        ax.axvline(first - 0.5, color="0.6", linestyle=":")
    ax.set_xlabel("trial")
    ax.set_ylabel("best validation accuracy")
    ax.legend(fontsize=7)
    return fig


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the search report of a run folder: ``report.html`` (self-contained, figures embedded
    as base64 PNGs) and the figures as PNG files, into ``out_dir`` (default: the run folder).

    The report shows the best trials, the ranges each stage sampled from, validation accuracy
    against each hyperparameter (log axes for log-scaled ones), the learning curves of the top
    trials, the failed trials and the border warnings. It works on a running search too.

    Parameters
    ----------
    run_dir : str or Path
        The search's run folder (read with :func:`load_search`).
    out_dir : str or Path, optional
        Where ``report.html``, ``search_params.png``, ``search_curves.png`` and
        ``search_progress.png`` go (created if needed; default ``run_dir``).

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` is not a search folder.
    ImportError
        matplotlib is missing (``pip install 'fastnn[plot]'``).
    """
    res = load_search(run_dir)
    out = Path(out_dir) if out_dir is not None else res.run_dir
    out.mkdir(parents=True, exist_ok=True)
    names = list(res.space)
    top = res.top(15)
    parts = [f"<h1>fastnn search: {html.escape(str(res.run_dir))}</h1>"]
    n_ok, n_fail = len(res.top()), len(res.failed)
    n_pruned = sum(r.get("status") == "pruned" for r in res.trials)
    planned = sum(int(s["trials"]) for s in res.stages) if res.stages else len(res.trials)
    parts.append(f"<p>{len(res.trials)} of {planned} planned trials finished: {n_ok} ok, {n_fail} failed, "
                 f"{n_pruned} pruned. Written {html.escape(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p>")
    if res.fixed:
        parts.append("<p>Fixed: " + html.escape(", ".join(f"{k}={_fmt_value(v)}" for k, v in res.fixed.items()))
                     + "</p>")
    parts.append("<h2>Border warnings</h2>")
    if res.warnings:
        parts.append("<ul>" + "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in res.warnings) + "</ul>")
    else:
        parts.append("<p>No hyperparameter has its best value near an edge of its range.</p>" if n_ok
                     else "<p>No finished trial yet.</p>")
    parts.append("<h2>Best trials</h2>")
    rows = [[i + 1, r["trial"], r["stage"], f"{float(r['val_acc']):.4f}", f"{r['best_epoch']}/{r['epochs']}",
             *[_fmt_value(r["params"].get(n)) for n in names], f"{float(r.get('seconds', 0)):.1f}",
             r.get("checkpoint") or ""] for i, r in enumerate(top)]
    parts.append(_table(["rank", "trial", "stage", "val_acc", "best epoch", *names, "seconds", "checkpoint"], rows))
    if res.stages:
        parts.append("<h2>Stages: the ranges each stage sampled from</h2>")
        srows = []
        for st in res.stages:
            done = [r for r in res.trials if int(r["stage"]) == int(st["stage"])]
            best = max((float(r["val_acc"]) for r in _ok(done)), default=float("nan"))
            srows.append([st["stage"], f"{len(done)}/{st['trials']}", st["epochs"], f"{best:.4f}",
                          *[st["space"][n].describe(4) if n in st["space"] else "" for n in names]])
        parts.append(_table(["stage", "trials", "epochs", "best val_acc", *names], srows))
    figs = []
    if n_ok:
        figs.append(("Validation accuracy against each hyperparameter", "search_params.png", plot_params(res)))
        figs.append(("Learning curves of the top trials", "search_curves.png", plot_learning_curves(res)))
    if res.trials:
        figs.append(("Trials in order", "search_progress.png", plot_progress(res)))
    for title, fname, fig in figs:
        parts.append(f"<h2>{html.escape(title)}</h2><img src='{png_data_uri(fig, out / fname, dpi=90)}' "
                     f"alt='{html.escape(title)}'>")
    bad = [r for r in res.trials if r.get("status") != "ok"]
    if bad:
        parts.append("<h2>Failed and pruned trials</h2>")
        parts.append(_table(["trial", "stage", "status", "epochs run", *names, "error"],
                            [[r["trial"], r["stage"], r["status"], r.get("epochs_run", ""),
                              *[_fmt_value(r["params"].get(n)) for n in names], (r.get("error") or "")[:300]]
                             for r in sorted(bad, key=lambda r: int(r["trial"]))]))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px} table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right} th{background:#f0f0f0}"
             ".warn{color:#a33} img{max-width:100%}")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>fastnn search report</title>"
           f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    path = out / "report.html"
    write_atomic(path, doc, fsync=False)  # a report can be redrawn
    return path


# ==============================================================================================
# Configuration files (fastnn search CONFIG.toml)
# ==============================================================================================
def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML search configuration (``tomllib`` on Python >= 3.11, else the ``tomli`` package).

    Parameters
    ----------
    path : str or Path
        The TOML file, with the sections ``[data]``, ``[search]``, ``[fixed]`` and ``[space]``
        (only ``[space]`` is required; see ``examples/search.toml`` and :func:`run_config`).

    Returns
    -------
    dict
        The parsed file, section name -> table (values are not checked beyond the section names).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not valid TOML, an unknown section, or no (or an empty) ``[space]``.
    ImportError
        Python 3.10 without the ``tomli`` package (``pip install 'fastnn[search]'``).
    """
    path = Path(path)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ImportError("reading TOML on Python 3.10 needs tomli: pip install 'fastnn[search]'") from None
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    try:
        cfg = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(cfg) - {"data", "search", "space", "fixed"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)} (data, search, space, fixed)")
    if "space" not in cfg or not cfg["space"]:
        raise ValueError(f"{path}: a [space] section with at least one hyperparameter is needed")
    return cfg


def _config_data(d: Mapping[str, Any], base: Path):
    """Train/val/test splits of the configured data, standardised on the training split."""
    from fastnn import datasets
    from fastnn.preprocessing import StandardScaler

    name = str(d.get("name", "digits"))
    seed = int(d.get("seed", 0))
    if name == "digits":
        X, y = datasets.load_digits()
        source = "scikit-learn digits"
    elif name == "mnist1d":
        X, y = datasets.load_mnist1d(**({"num_samples": int(d["samples"])} if "samples" in d else {}))
        source = "MNIST-1D"
    elif name == "spiral":
        X, y = datasets.make_spiral(int(d.get("samples", 100)), int(d.get("classes", 3)), seed=seed)
        source = "spiral"
    else:
        p = Path(name)
        p = p if p.is_absolute() else base / p
        if p.suffix == ".npz":
            X, y = datasets.load_npz(p)
        elif p.suffix == ".csv":
            X, y = datasets.load_csv(p)
        else:
            raise ValueError(f"[data] name must be digits, mnist1d, spiral or a .npz/.csv file, got {name!r}")
        source = str(p)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise ValueError(f"{source}: the labels must be integers (classification), got {y.dtype}")
    splits = datasets.train_val_test_split(X, y, val=float(d.get("val", 0.15)), test=float(d.get("test", 0.2)),
                                           seed=seed)
    prep = None
    if bool(d.get("standardize", True)):
        scaler = StandardScaler().fit(splits["train"][0])  # fitted on the training split only
        splits = {k: (scaler.transform(v[0]), v[1]) for k, v in splits.items()}
        prep = scaler.to_dict()
    return source, splits, prep


def run_config(path: str | Path, *, workers: int | None = None, scheduler: str | None = None,
               out: str | Path | None = None, resume: bool = False, verbose: bool = True,
               max_trials: int | None = None) -> tuple[SearchResult, dict[str, Any]]:
    """Run the search a TOML file describes (what ``fastnn search CONFIG.toml`` does).

    Sections: ``[data]`` (``name`` = digits | mnist1d | spiral | a .npz/.csv path, ``val``,
    ``test``, ``seed``, ``standardize``), ``[search]`` (``out``, ``stages``, ``seed``, ``keep``,
    ``edge``, ``sampler``, ``pruner``, ``workers``, ``scheduler``, ``threads``, ``top_k``),
    ``[fixed]`` and ``[space]`` (see ``examples/search.toml``). Command-line values override the file's.
    The data are split into train/validation/test, standardised on the training split only, the
    search runs on train/validation, and the best trial and the ``top_k`` ensemble are scored on
    the test split.

    Parameters
    ----------
    path : str or Path
        The TOML configuration (relative ``[data]`` paths are relative to its folder).
    workers : int, optional
        Local worker processes (overrides ``[search] workers``; 0 means in-process).
    scheduler : str, optional
        A Dask scheduler address (overrides ``[search] scheduler``).
    out : str or Path, optional
        The run folder (default ``[search] out``, else ``runs/search-<config name>``).
    resume : bool
        Continue a search the run folder already holds (with the same settings).
    verbose : bool
        Print the data and backend, and a line per finished trial.
    max_trials : int, optional
        Stop after this many newly finished trials (the rest runs on a later ``resume``).

    Returns
    -------
    (SearchResult, dict)
        The result and a summary: ``test_acc_best``, ``test_acc_ensemble`` (top-k on the test
        split, when there is one), ``report`` (the HTML path).

    Raises
    ------
    FileExistsError
        The output folder already holds trials and ``resume`` is False.
    ValueError
        A bad configuration (see :func:`load_config`, unknown ``[search]`` keys, bad ``[data]``,
        the checks of :class:`Search`), or a resumed folder that holds a different search.
    """
    path = Path(path)
    cfg = load_config(path)
    sc = dict(cfg.get("search", {}))
    unknown = set(sc) - {"out", "stages", "seed", "keep", "edge", "sampler", "pruner", "workers", "scheduler",
                         "threads", "top_k"}
    if unknown:
        raise ValueError(f"{path}: unknown [search] keys {sorted(unknown)}")
    run_dir = Path(out or sc.get("out") or f"runs/search-{path.stem}")
    if (run_dir / "trials.jsonl").exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a search: pass --resume to continue it, or --out DIR")
    if workers is not None or scheduler is not None:
        sc.pop("workers", None)
        sc.pop("scheduler", None)
    workers = workers if workers is not None else sc.get("workers")
    scheduler = scheduler if scheduler is not None else sc.get("scheduler")
    if workers == 0:
        workers = None
    source, splits, prep = _config_data(cfg.get("data", {}), path.parent)
    stages = [tuple(s) for s in sc.get("stages", [[20, 5]])]
    search = Search(cfg["space"], run_dir, stages=stages, fixed=cfg.get("fixed", {}), seed=int(sc.get("seed", 0)),
                    keep=float(sc.get("keep", 0.25)), edge=float(sc.get("edge", 0.1)),
                    sampler=str(sc.get("sampler", "random")), pruner=sc.get("pruner"), workers=workers,
                    scheduler=scheduler, threads=sc.get("threads"), preprocessing=prep, verbose=verbose)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = splits["train"], splits["val"], splits["test"]
    k = int(max(ytr.max(), yva.max(), yte.max() if len(yte) else 0)) + 1
    if verbose:
        backend = ("Dask " + scheduler if scheduler else f"{workers} local processes" if workers else "in-process")
        print(f"fastnn search: {source}; train {len(Xtr)}, val {len(Xva)}, test {len(Xte)}; "
              f"stages {stages}; {backend} -> {run_dir}", flush=True)
    result = search.run(Xtr, ytr, Xva, yva, num_classes=k, max_trials=max_trials)
    summary: dict[str, Any] = {}
    if result.top() and len(yte):
        from fastnn.ensemble import Ensemble

        top_k = int(sc.get("top_k", 5))
        best = result.load_model()
        summary["test_acc_best"] = float(best.score(Xte, yte))
        ens = Ensemble.from_search(run_dir, top_k, preprocessing=None)  # Xte is already preprocessed
        summary["test_acc_ensemble"] = float(ens.score(Xte, yte))
        summary["ensemble_size"] = len(ens)
    summary["report"] = str(write_report(run_dir))
    return result, summary

