"""Sanity checks before learning (CS231n notes, "Before learning: sanity checks").

* :func:`loss_at_chance` — with small weights and no regularisation the loss should be the
  chance level: ln(C) for softmax cross-entropy, C - 1 for the multiclass SVM (margin 1).
* :func:`regularization_raises_loss` — a stronger penalty must give a larger loss.
* :func:`overfit_small_subset` — the model must drive a tiny subset (20 examples, no
  regularisation) to ~100 % training accuracy and near-zero loss within a step budget.
* :func:`sanity_check` runs all three and returns a pass/fail report with advice.

Every check works on copies: the model passed in is left untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SanityCheck", "SanityReport", "loss_at_chance", "regularization_raises_loss", "overfit_small_subset",
           "sanity_check"]


@dataclass
class SanityCheck:
    """The outcome of one check: what was expected, what was measured, and advice on failure.

    Parameters
    ----------
    name : str
        E.g. ``"loss at chance"``.
    passed : bool
    expected, actual : str
        What the check wanted and what it measured, as text.
    advice : str
        What to look at when it failed (empty when it passed).
    """

    name: str
    passed: bool
    expected: str
    actual: str
    advice: str = ""

    def line(self) -> str:
        """``[PASS] name: expected ..., got ...`` (plus an ``advice:`` line on failure)."""
        s = f"[{'PASS' if self.passed else 'FAIL'}] {self.name}: expected {self.expected}, got {self.actual}"
        return s if self.passed or not self.advice else f"{s}\n       advice: {self.advice}"


@dataclass
class SanityReport:
    """The checks of :func:`sanity_check`; ``str(report)`` is :meth:`report`."""

    checks: list[SanityCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def report(self) -> str:
        """A ``PASSED``/``FAILED`` header and one line per check, with advice for failures."""
        head = f"sanity checks: {'PASSED' if self.passed else 'FAILED'}"
        return "\n".join([head] + [c.line() for c in self.checks])

    def __str__(self) -> str:
        return self.report()


def _copy_without_penalty(model: Any) -> Any:
    m = model.copy()
    m.l2 = m.l1 = 0.0
    m._net.set_loss(m._loss_spec())
    return m


def _rows(m: Any, X: Any, y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    Xc = m.preprocess(X)  # raw data through the model's preprocessing, if any
    m.preprocessing = None  # the copy then works on network inputs only (evaluate would re-apply it)
    yc = m._check_y(y, Xc.shape[0])
    Xc, yc = Xc[:n], yc[:n]
    m._reserve(len(Xc))
    return Xc, yc


def loss_at_chance(model: Any, X: Any, y: Any, *, rtol: float = 0.05, n: int = 500) -> SanityCheck:
    """Loss with small weights (0.01 N(0, 1)), zero biases and no penalty vs the chance level.

    Parameters
    ----------
    model : Sequential
        Checked on a copy (penalties off, weights re-drawn small).
    X, y : array-like
        Data and labels; the first ``n`` rows are used (training mode).
    rtol : float
        Allowed relative distance from the chance level.
    n : int
        Rows used.

    Returns
    -------
    SanityCheck
        Passed (and skipped) for regression losses.
    """
    kind = model.loss.kind
    if kind == "mse":
        return SanityCheck("loss at chance", True, "n/a for regression", "skipped")
    m = _copy_without_penalty(model)
    from fastnn.init import initialize_into

    rng = np.random.default_rng(0)
    for name, p in m.params.items():
        if p.ndim == 2:
            initialize_into(p, "small_random", rng)
        elif name.endswith(".bias"):
            p[...] = 0.0
    Xc, yc = _rows(m, X, y, n)
    loss = m._net.loss_and_grad(Xc, yc, True)[1]
    C = model.output_dim
    margin = getattr(model.loss, "margin", 1.0)
    expected = math.log(C) if kind == "softmax" else (C - 1) * margin
    ok = abs(loss - expected) <= rtol * expected
    what = f"ln({C}) = {expected:.4f}" if kind == "softmax" else f"C - 1 = {expected:.4f}"
    return SanityCheck("loss at chance", bool(ok), what, f"{loss:.4f}",
                       "" if ok else "check the loss and the labels (are they 0..C-1?), and that the output "
                       "layer starts small; a loss far above chance often means large initial weights")


def regularization_raises_loss(model: Any, X: Any, y: Any, *, l2: float = 1.0, n: int = 500) -> SanityCheck:
    """The loss at the current weights with a strong L2 penalty must exceed the loss without.

    Parameters
    ----------
    model : Sequential
        Checked on a copy.
    X, y : array-like
        The first ``n`` rows are used.
    l2 : float
        The strong penalty.
    n : int
        Rows used.

    Returns
    -------
    SanityCheck
    """
    m = _copy_without_penalty(model)
    Xc, yc = _rows(m, X, y, n)
    plain = m._net.loss_and_grad(Xc, yc, True)[0]
    m.l2 = float(l2)
    m._net.set_loss(m._loss_spec())
    strong = m._net.loss_and_grad(Xc, yc, True)[0]
    ok = strong > plain
    return SanityCheck("regularisation raises the loss", bool(ok), f"> {plain:.4f} with l2={l2:g}", f"{strong:.4f}",
                       "" if ok else "the penalty does not reach the loss: check that some Dense layer has "
                       "decay=True and that l2/l1 are set on the model")


def overfit_small_subset(model: Any, X: Any, y: Any, *, n: int = 20, steps: int = 300, optimizer: Any = None,
                         target_accuracy: float = 1.0, loss_threshold: float = 0.1) -> SanityCheck:
    """Train a fresh copy (no penalty) on ``n`` examples, full batch, for up to ``steps`` steps:
    it must reach ``target_accuracy`` on them (classification) and a loss below
    ``loss_threshold`` times the initial one.

    Parameters
    ----------
    model : Sequential
        A copy is re-initialised from the model's seed and trained.
    X, y : array-like
        The first ``n`` rows are the subset.
    n, steps : int
        Subset size and step budget.
    optimizer : Optimizer, optional
        Default ``optim.Adam(lr=1e-2)``.
    target_accuracy, loss_threshold : float
        What counts as overfitted.

    Returns
    -------
    SanityCheck
    """
    from fastnn import optim

    m = _copy_without_penalty(model)
    m.reset_parameters()
    Xc, yc = _rows(m, X, y, n)
    opt = optimizer if optimizer is not None else optim.Adam(lr=1e-2)
    m.attach_optimizer(opt)
    first = None
    acc = 0.0
    loss = float("nan")
    for _ in range(int(steps)):
        loss = m.train_step(Xc, yc)
        first = loss if first is None else first
        if m.loss.classification:
            acc = m.evaluate(Xc, yc)["accuracy"]
            if acc >= target_accuracy and loss < loss_threshold * first:
                break
        elif loss < loss_threshold * first:
            break
    ok = loss < loss_threshold * first and (not m.loss.classification or acc >= target_accuracy)
    expected = f"~100% accuracy and loss < {loss_threshold:g} x initial on {n} examples within {steps} steps"
    if m.loss.classification:
        actual = f"accuracy {acc:.3f}, loss {first:.4f} -> {loss:.4f}"
    else:
        actual = f"loss {first:.4g} -> {loss:.4g}"
    return SanityCheck("overfit a small subset", bool(ok), expected, actual,
                       "" if ok else "the model cannot fit a handful of examples: check the gradients "
                       "(fastnn.gradcheck), raise the learning rate, or add capacity")


def sanity_check(model: Any, X: Any, y: Any, **kwargs: Any) -> SanityReport:
    """Run :func:`loss_at_chance`, :func:`regularization_raises_loss` and
    :func:`overfit_small_subset`; ``kwargs`` go to the overfitting check (n, steps, optimizer).

    Parameters
    ----------
    model : Sequential
        Left untouched (every check works on a copy).
    X, y : array-like
        Training data (preprocessed as for training).

    Returns
    -------
    SanityReport
        ``.passed`` and ``.report()``.

    Raises
    ------
    ValueError
        Bad data, as :meth:`Sequential.evaluate <fastnn.model.Sequential.evaluate>`.
    TypeError
        Labels of the wrong kind.
    """
    return SanityReport([loss_at_chance(model, X, y), regularization_raises_loss(model, X, y),
                         overfit_small_subset(model, X, y, **kwargs)])
