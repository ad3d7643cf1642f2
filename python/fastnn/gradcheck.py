"""Gradient checks in double precision, on the real C++ kernels (CS231n notes, "Gradient checks").

:func:`gradcheck` compares the analytic gradient of a model's loss (fastnn's C++ backward) with
centred differences ``(f(w + h) - f(w - h)) / 2h`` of its C++ forward, in float64 and with the same
weights (a float32 model is copied to float64 first). For every parameter tensor separately —
weights, biases, batch-norm scale and shift, PReLU slopes — it checks a sample of coordinates (or
all of them), never a random sample of one concatenated vector.

The habits of the notes are options or defaults:

* relative error ``|a - n| / max(|a|, |n|)``; both zero counts as a pass; when both are below
  1e-10 the coordinate is flagged *tiny* (rescale the loss to check it meaningfully);
* the verdicts: > 1e-2 probably wrong, 1e-2..1e-4 uncomfortable, 1e-4..1e-7 fine only for
  objectives with kinks, < 1e-7 good;
* kinks: the forward pass records which side of every max it took (ReLU-type units, maxout
  winners, SVM margins); a coordinate whose f(w + h) and f(w - h) fall on different sides is
  reported as crossing a kink, not as a failure;
* dropout masks and everything random are replayed exactly for f(w + h), f(w - h) and the
  analytic pass (the masks are keyed on the step counter, which a check does not advance);
* check the data loss alone, then the regularisation alone (``component``); after a short burn-in
  of training (``burn_in``); on few data points (``n_samples``);
* :func:`best_step` tries several step sizes; ``fast=True`` compares ``v^T J u`` from one
  directional difference with one backward pass per tensor.

:func:`check_gradients` is the same machinery for any loss/gradient pair (used to show that broken
layers are caught).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["gradcheck", "best_step", "check_gradients", "gradcheck_layer", "GradCheckResult", "TensorCheck",
           "Coord", "relative_error", "verdict"]

GOOD, KINKS_OK, UNCOMFORTABLE, WRONG = "good", "fine for objectives with kinks", "uncomfortable", "probably wrong"


def relative_error(a: float, n: float) -> float:
    """``|a - n| / max(|a|, |n|)``, 0 when both are 0.

    >>> round(relative_error(1.0, 1.001), 6)
    0.000999
    """
    den = max(abs(a), abs(n))
    return 0.0 if den == 0 else abs(a - n) / den


def verdict(rel: float) -> str:
    """The notes' reading of a relative error ``rel``.

    Returns
    -------
    str
        ``"probably wrong"`` above 1e-2, ``"uncomfortable"`` above 1e-4, ``"fine for objectives
        with kinks"`` above 1e-7, else ``"good"``.

    >>> verdict(3e-9), verdict(2e-5)
    ('good', 'fine for objectives with kinks')
    """
    if rel > 1e-2:
        return WRONG
    if rel > 1e-4:
        return UNCOMFORTABLE
    if rel > 1e-7:
        return KINKS_OK
    return GOOD


@dataclass
class Coord:
    """One checked coordinate: its index in the tensor, both gradients, and how it was judged.

    Parameters
    ----------
    index : tuple of int
        Position in the tensor (``()`` for a directional check).
    analytic, numeric : float
        The backward pass's gradient and the centred difference.
    rel_error : float
        :func:`relative_error` of the two.
    kink, tiny, noise : bool
        Not judged because ``w + h`` and ``w - h`` straddle a kink, both gradients are below
        1e-10, or their difference is within the finite difference's rounding error.
    """

    index: tuple[int, ...]
    analytic: float
    numeric: float
    rel_error: float
    kink: bool = False
    tiny: bool = False
    noise: bool = False  # |a - n| within the rounding error of the finite difference itself


@dataclass
class TensorCheck:
    """The check of one parameter tensor.

    Parameters
    ----------
    name : str
        The tensor's name in ``model.params`` (e.g. ``"0.weight"``).
    shape : tuple of int
    coords : list of Coord
        The coordinates checked.
    tol : float
        Pass threshold on the largest judged relative error.
    """

    name: str
    shape: tuple[int, ...]
    coords: list[Coord] = field(default_factory=list)
    tol: float = 1e-6

    @property
    def checked(self) -> int:
        """Coordinates checked."""
        return len(self.coords)

    @property
    def kinks(self) -> int:
        """Coordinates whose ``w + h`` and ``w - h`` fall on different sides of a kink (not judged)."""
        return sum(c.kink for c in self.coords)

    @property
    def tiny(self) -> int:
        """Coordinates where both gradients are below 1e-10 (not judged)."""
        return sum(c.tiny for c in self.coords)

    @property
    def noise(self) -> int:
        """Coordinates whose difference is within the finite difference's rounding error (not judged)."""
        return sum(c.noise for c in self.coords)

    def _judged(self) -> list[Coord]:
        return [c for c in self.coords if not c.kink and not c.tiny and not c.noise]

    @property
    def max_rel_error(self) -> float:
        """Largest relative error over the judged coordinates (0 when none is judged)."""
        return max((c.rel_error for c in self._judged()), default=0.0)

    @property
    def worst(self) -> Coord | None:
        """The judged coordinate with the largest relative error (None when none is judged)."""
        judged = self._judged()
        return max(judged, key=lambda c: c.rel_error) if judged else None

    @property
    def verdict(self) -> str:
        """:func:`verdict` of :attr:`max_rel_error`."""
        return verdict(self.max_rel_error)

    @property
    def passed(self) -> bool:
        """``max_rel_error <= tol``."""
        return self.max_rel_error <= self.tol


@dataclass
class GradCheckResult:
    """Per-tensor checks, with an overall verdict (``passed``) and a readable report.

    Parameters
    ----------
    tensors : dict of str to TensorCheck
    h : float
        The finite-difference step used.
    component : str
        ``"total"``, ``"data"`` or ``"reg"`` (what loss was checked).
    mode : str
        ``"centred differences"`` or ``"directional (v^T J u)"``.
    loss : float
        The loss at the unperturbed weights.
    has_kinks : bool
        Whether kinks were detected (model checks do; :func:`check_gradients` without a
        ``signature_fn`` does not).
    """

    tensors: dict[str, TensorCheck]
    h: float
    component: str
    mode: str
    loss: float
    has_kinks: bool

    @property
    def passed(self) -> bool:
        """True when every tensor passed."""
        return all(t.passed for t in self.tensors.values())

    @property
    def max_rel_error(self) -> float:
        """Largest judged relative error over all tensors."""
        return max((t.max_rel_error for t in self.tensors.values()), default=0.0)

    def report(self) -> str:
        """A table: per tensor the coordinates checked, the largest relative error, kinks, tiny
        and noise counts and the verdict, the worst coordinate of each failing tensor, and notes
        on what the counts mean."""
        lines = [f"gradient check ({self.mode}, component={self.component}, h={self.h:g}, float64): "
                 f"{'PASSED' if self.passed else 'FAILED'}; loss {self.loss:.6g}"]
        lines.append(f"{'tensor':<18} {'shape':<14} {'checked':>7} {'max rel err':>12} {'kinks':>6} {'tiny':>5} "
                     f"{'noise':>6}  verdict")
        for t in self.tensors.values():
            lines.append(f"{t.name:<18} {str(t.shape):<14} {t.checked:>7} {t.max_rel_error:>12.3e} {t.kinks:>6} "
                         f"{t.tiny:>5} {t.noise:>6}  {t.verdict}{'' if t.passed else '  <-- FAIL'}")
            w = t.worst
            if not t.passed and w is not None:
                lines.append(f"    worst at {w.index}: analytic {w.analytic:.8g}, numeric {w.numeric:.8g}")
        if any(t.kinks for t in self.tensors.values()):
            lines.append("kinks: coordinates whose +h and -h evaluations fall on different sides of a max "
                         "(ReLU, maxout, SVM hinge) are not judged; use fewer data points or a smaller h")
        if any(t.tiny for t in self.tensors.values()):
            lines.append("tiny: analytic and numeric gradients both below 1e-10; scale the loss up to check them")
        if any(t.noise for t in self.tensors.values()):
            lines.append("noise: the analytic and numeric gradients differ by less than the rounding error of the "
                         "finite difference itself (about 10 ulp of the loss / h); try a larger h (best_step)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _noise_floor(fp: float, fm: float, h: float) -> float:
    """The resolution of a centred difference: ~10 ulp of the loss divided by 2h."""
    return 10 * np.finfo(np.float64).eps * max(abs(float(fp)), abs(float(fm)), 1e-300) / (2 * h)


def _pick(shape: tuple[int, ...], coords: int | str, rng: np.random.Generator) -> list[tuple[int, ...]]:
    size = int(np.prod(shape)) if shape else 1
    if coords == "all" or (isinstance(coords, int) and coords >= size):
        flat = np.arange(size)
    else:
        if not isinstance(coords, int) or coords < 1:
            raise ValueError(f"coords must be a positive integer or 'all', got {coords!r}")
        flat = np.sort(rng.choice(size, size=coords, replace=False))
    return [tuple(int(v) for v in np.unravel_index(i, shape)) for i in flat]


def check_gradients(
    loss_fn: Callable[[], float],
    grad_fn: Callable[[], dict[str, np.ndarray]],
    params: dict[str, np.ndarray],
    *,
    h: float = 1e-5,
    coords: int | str = 10,
    tol: float = 1e-6,
    seed: int = 0,
    signature_fn: Callable[[], tuple[float, int]] | None = None,
    component: str = "total",
    mode: str = "centred differences",
) -> GradCheckResult:
    """Check ``grad_fn`` against centred differences of ``loss_fn`` for every array in ``params``.

    ``params`` are the arrays the loss reads, perturbed in place (and restored); ``grad_fn()`` is
    called once at the unperturbed point. ``signature_fn()`` (optional) returns ``(loss, kink
    signature)`` and is used instead of ``loss_fn`` to detect kinks.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> float`` at the current values of ``params``.
    grad_fn : callable
        ``grad_fn() -> {name: gradient}`` with the shapes of ``params``.
    params : dict of str to ndarray
        Writable float arrays (float64 for a meaningful check).
    h : float
        Finite-difference step (> 0).
    coords : int or "all"
        Coordinates checked per array (sampled with ``seed``).
    tol : float
        Pass threshold on the largest judged relative error.
    seed : int
        Seed of the coordinate sample.
    signature_fn : callable, optional
        ``signature_fn() -> (loss, signature)``: coordinates whose signatures differ at ``+h`` and
        ``-h`` are counted as kinks.
    component, mode : str
        Labels carried into the result's report.

    Returns
    -------
    GradCheckResult

    Raises
    ------
    ValueError
        A non-positive ``h`` or a bad ``coords``.

    Examples
    --------
    A broken backward pass is caught (the gradient of ``sum(w**3)`` is ``3 w**2``, not ``2 w**2``):

    >>> w = np.array([0.5, -1.0, 2.0])
    >>> check_gradients(lambda: float(np.sum(w**3)), lambda: {"w": 3 * w**2}, {"w": w}).passed
    True
    >>> check_gradients(lambda: float(np.sum(w**3)), lambda: {"w": 2 * w**2}, {"w": w}).passed
    False
    """
    if not (isinstance(h, float | int) and h > 0 and math.isfinite(h)):
        raise ValueError(f"h must be a positive number, got {h!r}")
    rng = np.random.default_rng(seed)
    grads = {k: np.array(v, dtype=np.float64, copy=True) for k, v in grad_fn().items()}
    base = float(signature_fn()[0]) if signature_fn else float(loss_fn())
    out: dict[str, TensorCheck] = {}
    for name, p in params.items():
        tc = TensorCheck(name, tuple(p.shape), tol=tol)
        for idx in _pick(tuple(p.shape), coords, rng):
            old = p[idx]
            p[idx] = old + h
            if signature_fn:
                fp, sp = signature_fn()
            else:
                fp, sp = loss_fn(), 0
            p[idx] = old - h
            if signature_fn:
                fm, sm = signature_fn()
            else:
                fm, sm = loss_fn(), 0
            p[idx] = old
            num = (float(fp) - float(fm)) / (2 * h)
            a = float(grads[name][idx])
            tiny = max(abs(a), abs(num)) < 1e-10
            floor = _noise_floor(fp, fm, h)
            tc.coords.append(Coord(idx, a, num, relative_error(a, num), kink=bool(sp != sm), tiny=tiny,
                                   noise=bool(abs(a - num) <= floor and relative_error(a, num) > tol)))
        out[name] = tc
    return GradCheckResult(out, float(h), component, mode, base, bool(signature_fn))


def _directional(loss_fn, grad_fn, params, h, tol, seed, component) -> GradCheckResult:
    rng = np.random.default_rng(seed)
    grads = {k: np.array(v, dtype=np.float64, copy=True) for k, v in grad_fn().items()}
    base = float(loss_fn())
    out = {}
    for name, p in params.items():
        u = rng.standard_normal(p.shape)
        u /= np.linalg.norm(u) or 1.0
        old = p.copy()
        p[...] = old + h * u
        fp = loss_fn()
        p[...] = old - h * u
        fm = loss_fn()
        p[...] = old
        num = (fp - fm) / (2 * h)
        a = float(np.sum(grads[name] * u))
        tc = TensorCheck(name, tuple(p.shape), tol=tol)
        tc.coords.append(Coord((), a, num, relative_error(a, num), tiny=max(abs(a), abs(num)) < 1e-10,
                               noise=bool(abs(a - num) <= _noise_floor(fp, fm, h) and relative_error(a, num) > tol)))
        out[name] = tc
    return GradCheckResult(out, float(h), component, "directional (v^T J u)", base, False)


def gradcheck(
    model: Any,
    X: Any,
    y: Any,
    *,
    h: float = 1e-5,
    coords: int | str = 10,
    component: str = "total",
    n_samples: int | None = 4,
    burn_in: int = 0,
    optimizer: Any = None,
    train: bool = True,
    tol: float = 1e-6,
    fast: bool = False,
    seed: int = 0,
    tensors: Sequence[str] | None = None,
) -> GradCheckResult:
    """Check a model's gradients against centred differences, in float64.

    Parameters
    ----------
    model : Sequential
        Checked on a float64 copy (same weights, buffers and step counter); the model itself is
        not modified.
    X, y : arrays
        Data; the first ``n_samples`` rows are used (few points = fewer kinks). None uses all.
    h : float
        Finite-difference step.
    coords : int or "all"
        Coordinates checked per parameter tensor (sampled with ``seed``), or every one.
    component : "total", "data" or "reg"
        The whole loss, the data loss alone (penalties off), or the regularisation alone.
    burn_in : int
        Training steps on the copy before checking (``optimizer``, default SGD lr 0.01).
    train : bool
        Training mode (batch statistics, dropout with fixed masks) or evaluation mode.
    tol : float
        A tensor passes when its largest relative error (kinks and tiny gradients excluded) is at
        most ``tol``.
    fast : bool
        One random direction per tensor: ``v^T J u`` from one directional difference against one
        backward pass (2 forward passes per tensor).
    tensors : sequence of str, optional
        Only these parameter tensors.

    Returns
    -------
    GradCheckResult
        ``.passed``, ``.report()``, and per-tensor ``.tensors``.

    Raises
    ------
    ValueError
        An unknown ``component``, ``component="reg"`` on a model without a penalty, bad data (as
        :meth:`Sequential.evaluate <fastnn.model.Sequential.evaluate>`), a bad ``h`` or ``coords``.
    KeyError
        ``tensors`` names a tensor the model does not have.
    """
    from fastnn import optim

    if component not in ("total", "data", "reg"):
        raise ValueError(f"component must be 'total', 'data' or 'reg', got {component!r}")
    m = model.copy(dtype=np.float64)
    Xc = m.preprocess(X)  # raw data through the model's preprocessing, if any
    yc = m._check_y(y, Xc.shape[0])
    if burn_in:
        opt = optimizer if optimizer is not None else optim.SGD(lr=0.01)
        for i in range(int(burn_in)):
            sl = slice((i * 32) % Xc.shape[0], (i * 32) % Xc.shape[0] + 32)
            m.train_step(Xc[sl], yc[sl], opt)
    if n_samples is not None:
        Xc, yc = Xc[:int(n_samples)], yc[:int(n_samples)]
    m._reserve(Xc.shape[0])
    net = m._net
    l2, l1 = m.l2, m.l1
    base_loss = {**m._loss_spec()}
    if component == "data":
        net.set_loss({**base_loss, "l2": 0.0, "l1": 0.0})
    params = {k: v for k, v in m.params.items() if tensors is None or k in tensors}
    if tensors is not None and set(tensors) - set(params):
        raise KeyError(f"unknown tensors {sorted(set(tensors) - set(params))}; the model has {sorted(m.params)}")

    if component == "reg":
        if l2 == 0 and l1 == 0:
            raise ValueError("component='reg' needs a model with l2 or l1 > 0")

        def loss_fn() -> float:
            return float(net.reg_loss())

        def grad_fn() -> dict[str, np.ndarray]:
            net.loss_and_grad(Xc, yc, train)
            total = {k: v.copy() for k, v in m.grads.items()}
            net.set_loss({**base_loss, "l2": 0.0, "l1": 0.0})
            net.loss_and_grad(Xc, yc, train)
            net.set_loss(base_loss)
            return {k: total[k] - m.grads[k] for k in params}

        signature_fn = None
    else:

        def loss_fn() -> float:
            return float(net.loss_and_grad(Xc, yc, train)[0])

        def grad_fn() -> dict[str, np.ndarray]:
            net.loss_and_grad(Xc, yc, train)
            return {k: m.grads[k] for k in params}

        def signature_fn() -> tuple[float, int]:
            loss, sig = net.signature(Xc, yc, train)
            return float(loss), int(sig)

    if fast:
        return _directional(loss_fn, grad_fn, params, h, tol, seed, component)
    return check_gradients(loss_fn, grad_fn, params, h=h, coords=coords, tol=tol, seed=seed,
                           signature_fn=signature_fn, component=component)


def best_step(model: Any, X: Any, y: Any, steps: Sequence[float] = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7),
              **kwargs: Any) -> tuple[float, dict[float, float]]:
    """Run :func:`gradcheck` with each step size; return the one with the smallest maximum
    relative error and every step's error.

    Parameters
    ----------
    model : Sequential
    X, y : array-like
        As for :func:`gradcheck`.
    steps : sequence of float
        The step sizes ``h`` tried.
    **kwargs
        Passed to :func:`gradcheck` (``coords``, ``component``, ``n_samples``, ...).

    Returns
    -------
    best : float
        The step with the smallest maximum relative error (the larger one on ties).
    errors : dict of float to float
        Every step's maximum relative error.
    """
    errors = {float(h): gradcheck(model, X, y, h=h, **kwargs).max_rel_error for h in steps}
    best = min(errors, key=lambda h: (errors[h], -h))
    return best, errors


def gradcheck_layer(layer: Any, in_features: int, *, n: int = 6, seed: int = 0, loss: str = "mse",
                    **kwargs: Any) -> GradCheckResult:
    """Check one layer in isolation: ``Sequential([layer, Dense(out, 3)])`` with an MSE loss on
    random data (float64), every tensor of the layer and of the probe.

    Parameters
    ----------
    layer : Layer
        E.g. ``BatchNorm()`` or ``PReLU(8)``.
    in_features : int
        Input size of the layer.
    n : int
        Rows of random data (standard normal).
    seed : int
        Seed of the data and of the probe's initialisation.
    loss : str
        ``"mse"`` (random targets) or a classification loss (random labels of 3 classes).
    **kwargs
        Passed to :func:`gradcheck` (default ``coords="all"``).

    Returns
    -------
    GradCheckResult
    """
    from fastnn.layers import Dense
    from fastnn.model import Sequential

    rng = np.random.default_rng(seed)
    width = layer.output_size(in_features)
    outputs = 3
    model = Sequential([layer, Dense(width, outputs)], input_dim=in_features, loss=loss, dtype=np.float64, seed=seed)
    X = rng.standard_normal((n, in_features))
    y = rng.standard_normal((n, outputs)) if loss == "mse" else rng.integers(0, outputs, n)
    return gradcheck(model, X, y, n_samples=None, **{"coords": "all", **kwargs})
