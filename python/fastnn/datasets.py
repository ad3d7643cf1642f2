"""Datasets, splits and class-balanced sampling.

Nothing here downloads anything:

* :func:`load_digits` — scikit-learn's bundled 8x8 digits (``pip install 'fastnn[data]'``);
* :func:`make_spiral` — the CS231n spiral toy data, generated in code;
* :func:`load_mnist1d` — MNIST-1D generated offline by the optional ``mnist1d`` package
  (``pip install 'fastnn[data]'``);
* :func:`load_npz`, :func:`load_csv` — your own files;
* :func:`train_val_test_split` — shuffled, stratified train/validation/test splits;
* :func:`balanced_order` and :class:`BalancedSampler` — class-balanced mini-batches (the same
  function serves ``Trainer.fit(balanced=True)``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "load_digits",
    "make_spiral",
    "load_mnist1d",
    "load_npz",
    "load_csv",
    "train_val_test_split",
    "balanced_order",
    "BalancedSampler",
    "Standardizer",
]


def _int_arg(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def _float_arg(value: Any, name: str, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < lo:
        raise ValueError(f"{name} must be a finite number >= {lo}, got {value!r}")
    return v


# ----------------------------------------------------------------------------------------------
# bundled and generated data
# ----------------------------------------------------------------------------------------------
def load_digits(images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 handwritten digits (8x8 grey images, values 0..16).

    Parameters
    ----------
    images : bool
        False: flat vectors; True: images in (N, H, W, C) layout with one channel.

    Returns
    -------
    X : ndarray of float64
        Shape (1797, 64), or (1797, 8, 8, 1) with ``images``.
    y : ndarray of int64, shape (1797,)
        Labels 0..9.

    Raises
    ------
    ImportError
        scikit-learn (which ships the data) is not installed.
    """
    try:
        from sklearn.datasets import load_digits as _ld
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("digits needs scikit-learn's bundled data: pip install 'fastnn[data]'") from exc
    d = _ld()
    X = d.images[..., None] if images else d.data
    return np.ascontiguousarray(X, dtype=np.float64), np.asarray(d.target, dtype=np.int64)


def make_spiral(n_per_class: int = 100, classes: int = 3, dims: int = 2, noise: float = 0.2,
                seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """The CS231n spiral toy data: ``classes`` interleaved arms, not linearly separable.

    Arm ``j`` has ``n_per_class`` points at radii ``linspace(0, 1)`` and angles
    ``linspace(4j, 4(j+1)) + noise * N(0, 1)`` (radians), exactly as in the CS231n case study. With
    ``dims > 2`` the 2-D spiral is embedded in a random ``dims``-dimensional plane (an orthonormal
    2-frame drawn from ``seed``), so the data keep the same geometry in a higher-dimensional input.

    Parameters
    ----------
    n_per_class : int
        Points per class, >= 1.
    classes : int
        Number of arms (classes), >= 2.
    dims : int
        Input dimension, >= 2.
    noise : float
        Standard deviation of the angle noise (>= 0).
    seed : int or None
        Seed of NumPy's ``default_rng`` (None: fresh entropy).

    Returns
    -------
    X : ndarray of float64, shape (n_per_class * classes, dims)
    y : ndarray of int64, shape (n_per_class * classes,)
        Class ``j`` occupies rows ``j * n_per_class`` to ``(j + 1) * n_per_class - 1``.
    """
    n = _int_arg(n_per_class, "n_per_class", 1)
    k = _int_arg(classes, "classes", 2)
    d = _int_arg(dims, "dims", 2)
    noise = _float_arg(noise, "noise")
    rng = np.random.default_rng(seed)
    X2 = np.zeros((n * k, 2))
    y = np.zeros(n * k, dtype=np.int64)
    r = np.linspace(0.0, 1.0, n)
    for j in range(k):
        t = np.linspace(j * 4.0, (j + 1) * 4.0, n) + rng.standard_normal(n) * noise
        X2[j * n:(j + 1) * n] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[j * n:(j + 1) * n] = j
    if d == 2:
        return X2, y
    frame, _ = np.linalg.qr(rng.standard_normal((d, 2)))  # (d, 2), orthonormal columns
    return np.ascontiguousarray(X2 @ frame.T), y


_MNIST1D_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def load_mnist1d(*, num_samples: int = 5000, seed: int = 42, split: bool = False, train_split: float = 0.8,
                 final_seq_length: int = 40, template_len: int = 12, padding: tuple[int, int] = (36, 60),
                 scale_coeff: float = 0.4, max_translation: int = 48, corr_noise_scale: float = 0.25,
                 iid_noise_scale: float = 2e-2, shear_scale: float = 0.75, shuffle_seq: bool = False,
                 ) -> tuple[np.ndarray, np.ndarray] | dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST-1D (Greydanus 2020): 10 classes of 1-D signals, generated offline in code.

    Calls ``mnist1d.data.make_dataset`` of the optional ``mnist1d`` package, which builds the data
    from ten templates with random padding, scaling, translation, correlated and i.i.d. noise and
    shear; it never downloads (fastnn does not call the package's ``get_dataset``, the function
    that may). The defaults are the package's (and the paper's): 5000 samples of length 40, seed
    42, a 4000/1000 train/test split. The package seeds NumPy's and Python's global generators;
    fastnn saves and restores both, so calling this leaves global random state untouched.
    Results are cached per argument set in memory (copies are returned).

    Parameters
    ----------
    num_samples : int
        Total samples (rounded down to a multiple of 10: equal counts per class), >= 10.
    seed : int
        Generator seed (the package's default is 42).
    split : bool
        False: return all samples, the package's training part first. True: return the package's
        split as ``{"train": (X, y), "test": (X, y)}``.
    train_split : float
        Fraction of samples in the training part, in (0, 1).
    final_seq_length, template_len, padding, scale_coeff : optional
        The package's generation arguments (see ``mnist1d.data.get_dataset_args``).
    max_translation, corr_noise_scale, iid_noise_scale, shear_scale, shuffle_seq : optional
        The package's generation arguments, likewise.

    Returns
    -------
    (X, y) or dict
        X float64 (N, final_seq_length), standardised over the whole set by the package; y int64
        (N,) labels 0..9.

    Raises
    ------
    ImportError
        The ``mnist1d`` package is not installed (``pip install 'fastnn[data]'``).
    ValueError / TypeError
        Bad arguments, named.
    """
    num_samples = _int_arg(num_samples, "num_samples", 10)
    seed = _int_arg(seed, "seed", 0)
    final_seq_length = _int_arg(final_seq_length, "final_seq_length", 2)
    template_len = _int_arg(template_len, "template_len", 2)
    max_translation = _int_arg(max_translation, "max_translation", 1)
    train_split = _float_arg(train_split, "train_split")
    if not 0.0 < train_split < 1.0:
        raise ValueError(f"train_split must be in (0, 1), got {train_split!r}")
    if not (isinstance(padding, tuple | list) and len(padding) == 2):
        raise TypeError(f"padding must be a pair (low, high), got {padding!r}")
    pad = (_int_arg(padding[0], "padding[0]", 0), _int_arg(padding[1], "padding[1]", 0))
    if pad[0] > pad[1]:
        raise ValueError(f"padding must satisfy low <= high, got {padding!r}")
    scales = {name: _float_arg(v, name) for name, v in (("scale_coeff", scale_coeff),
                                                         ("corr_noise_scale", corr_noise_scale),
                                                         ("iid_noise_scale", iid_noise_scale),
                                                         ("shear_scale", shear_scale))}
    key = (num_samples, seed, final_seq_length, template_len, pad, max_translation, bool(shuffle_seq),
           tuple(sorted(scales.items())))
    if key not in _MNIST1D_CACHE:
        _MNIST1D_CACHE[key] = _make_mnist1d(num_samples=num_samples, seed=seed, final_seq_length=final_seq_length,
                                            template_len=template_len, padding=list(pad),
                                            max_translation=max_translation, shuffle_seq=bool(shuffle_seq),
                                            **scales)
    X, y = (a.copy() for a in _MNIST1D_CACHE[key])
    if not split:
        return X, y
    cut = int(len(y) * train_split)
    return {"train": (X[:cut], y[:cut]), "test": (X[cut:], y[cut:])}


def _make_mnist1d(**kw: Any) -> tuple[np.ndarray, np.ndarray]:
    import random

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError("load_mnist1d needs the optional 'mnist1d' package (it generates the data offline): "
                          "pip install 'fastnn[data]' (or pip install mnist1d)") from exc
    args = get_dataset_args()
    for k, v in kw.items():
        setattr(args, k, v)
    args.train_split = 1.0  # everything in 'x'/'y'; the split is taken here
    args.url = None  # make_dataset never downloads; make sure nothing could
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002 - the package's global seeding
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    return np.ascontiguousarray(d["x"], dtype=np.float64), np.asarray(d["y"], dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def load_npz(path: str | Path, x_key: str = "X", y_key: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """X and y from an ``.npz`` file (loaded without pickle: object arrays are refused).

    Parameters
    ----------
    path : str or Path
    x_key, y_key : str
        Names of the arrays in the file.

    Returns
    -------
    X : ndarray, shape (N, ...)
    y : ndarray, shape (N,) or (N, outputs)

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a readable .npz file, the arrays are missing, or X and y have different lengths.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_npz: no such file: {path}")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz file: {exc}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):  # a single .npy array, not an archive
        raise ValueError(f"{path} is a single .npy array, not an .npz archive holding {x_key!r} and {y_key!r}")
    with f:
        keys = set(f.files)
        if not {x_key, y_key} <= keys:
            raise ValueError(f"{path} must contain arrays {x_key!r} and {y_key!r}, has {sorted(keys)}")
        try:
            X, y = np.asarray(f[x_key]), np.asarray(f[y_key])
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{path} is not a readable .npz file: {exc}") from None
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ValueError(f"{path}: {x_key!r} has shape {X.shape} but {y_key!r} has shape {y.shape}; "
                         "they need the same number of rows")
    return X, y


def load_csv(path: str | Path, label_column: int = -1, delimiter: str = ",") -> tuple[np.ndarray, np.ndarray]:
    """A numeric CSV file: one sample per row, one column holds the targets.

    An optional header row (any non-numeric first line) is skipped.

    Parameters
    ----------
    path : str or Path
    label_column : int
        Column of the targets (negative counts from the end).
    delimiter : str

    Returns
    -------
    X : ndarray of float64, shape (N, columns - 1)
    y : ndarray, shape (N,)
        int64 when every target is a whole number, else float64.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        No data rows, non-numeric values, ragged rows, fewer than 2 columns, or ``label_column``
        outside the table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_csv: no such file: {path}")
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    try:
        [float(v) for v in first.strip().split(delimiter)]
        skip = 0
    except ValueError:
        skip = 1
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns (instead of failing) on an empty file
            data = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2)
    except (ValueError, UserWarning) as exc:
        if isinstance(exc, UserWarning) or "empty" in str(exc).lower():
            raise ValueError(f"{path}: no data rows") from None
        raise ValueError(f"{path}: every value must be numeric and every row must have the same number of "
                         f"columns ({exc})") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path}: no data rows")
    ncol = data.shape[1]
    if ncol < 2:
        raise ValueError(f"{path}: needs at least 2 columns (features and a label), has {ncol}")
    if isinstance(label_column, bool) or not isinstance(label_column, int | np.integer):
        raise TypeError(f"label_column must be an integer, got {label_column!r}")
    if not -ncol <= label_column < ncol:
        raise ValueError(f"label_column={label_column} is outside the {ncol} columns of {path}")
    y = data[:, label_column]
    X = np.delete(data, label_column % ncol, axis=1)
    if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return np.ascontiguousarray(X), y


# ----------------------------------------------------------------------------------------------
# splits and sampling
# ----------------------------------------------------------------------------------------------
def train_val_test_split(X: np.ndarray, y: np.ndarray, val: float = 0.2, test: float = 0.2,
                         seed: int | None = 0, stratify: bool | np.ndarray = True,
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Shuffled train/validation/test splits, stratified by class.

    With stratification each class is split separately (``round(test * n_c)`` rows of class ``c``
    to test, ``round(val * n_c)`` to validation, the rest to train), so every split keeps the class
    proportions; rows are then shuffled within each split.

    Parameters
    ----------
    X : array, shape (N, ...)
    y : array, shape (N,) or (N, outputs)
    val, test : float
        Fractions in [0, 1) with ``val + test < 1``.
    seed : int or None
        Seed of NumPy's ``default_rng``.
    stratify : bool or array of shape (N,)
        True: stratify on ``y`` when it holds discrete labels (integers, booleans or strings; float
        targets are split without stratification). An array: stratify on those group labels.
        False: plain shuffled split.

    Returns
    -------
    dict
        ``{"train": (X, y), "val": (X, y), "test": (X, y)}`` (copies, rows shuffled).

    Raises
    ------
    ValueError
        Bad fractions or X, y (or the stratify array) of different lengths.
    """
    for name, v in (("val", val), ("test", test)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not 0 <= v < 1:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {v!r}")
    if val + test >= 1:
        raise ValueError(f"val + test must be < 1, got {val} + {test}")
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ValueError(f"X has {len(X) if X.ndim else 0} rows but y has {len(y) if y.ndim else 0}")
    rng = np.random.default_rng(seed)
    groups_of: np.ndarray | None = None
    if isinstance(stratify, np.ndarray | list | tuple):
        groups_of = np.asarray(stratify)
        if groups_of.shape != (len(y),):
            raise ValueError(f"stratify must have shape ({len(y)},), got {groups_of.shape}")
    elif stratify and y.ndim == 1 and y.dtype.kind in "iubUSO":
        groups_of = y
    if groups_of is not None:
        _, inverse = np.unique(groups_of, return_inverse=True)
        groups = [np.flatnonzero(inverse == c) for c in range(int(inverse.max()) + 1)] if len(y) else []
    else:
        groups = [np.arange(len(y))]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for g in groups:
        g = rng.permutation(g)
        n_te, n_va = int(round(test * len(g))), int(round(val * len(g)))
        parts["test"].append(g[:n_te])
        parts["val"].append(g[n_te:n_te + n_va])
        parts["train"].append(g[n_te + n_va:])
    out = {}
    for k, v in parts.items():
        idx = rng.permutation(np.concatenate(v)) if v else np.zeros(0, np.int64)
        out[k] = (X[idx], y[idx])
    return out


def balanced_order(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` row indices drawn so that every class appears equally often, shuffled.

    Each class contributes ``n // classes`` rows (one more for ``n % classes`` randomly chosen
    classes, so counts differ by at most one): its rows in random order, repeated (each repetition
    reshuffled) when the class is smaller than that; the concatenation is shuffled. Used by
    ``Trainer.fit(balanced=True)`` and :class:`BalancedSampler`.

    Parameters
    ----------
    y : array, shape (N,)
        Class labels (any discrete values).
    n : int
        Number of indices to draw, >= 1.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int64, shape (n,)
        Row indices into ``y``.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y must be a non-empty 1-D array of class labels, got shape {y.shape}")
    n = _int_arg(n, "n", 1)
    _, inverse = np.unique(y, return_inverse=True)
    k = int(inverse.max()) + 1
    per = np.full(k, n // k)
    per[rng.choice(k, n % k, replace=False)] += 1  # the remainder goes to randomly chosen classes
    parts = []
    for c in range(k):
        idx = np.flatnonzero(inverse == c)
        reps = -(-int(per[c]) // len(idx))
        pool = np.concatenate([rng.permutation(idx) for _ in range(reps)])
        parts.append(pool[:per[c]])
    return rng.permutation(np.concatenate(parts)).astype(np.int64)


class BalancedSampler:
    """Class-balanced mini-batches of row indices, for hand-written training loops.

    Every epoch draws :func:`balanced_order` (a pure function of ``(seed, epoch)``) and cuts it
    into batches; each class appears equally often (minority rows repeat, majority rows are
    sub-sampled).

    Parameters
    ----------
    y : array, shape (N,)
        Class labels.
    batch_size : int
    samples_per_epoch : int, optional
        Indices per epoch (default N).
    seed : int
    drop_last : bool
        Drop a final batch smaller than ``batch_size``.

    Examples
    --------
    Ninety examples of class 0 and ten of class 1 give batches with both classes equally often:

    >>> y_train = np.array([0] * 90 + [1] * 10)
    >>> sampler = BalancedSampler(y_train, batch_size=20, seed=0)
    >>> batches = list(sampler.epoch(0))
    >>> len(batches), np.bincount(y_train[np.concatenate(batches)]).tolist()
    (5, [50, 50])

    In a training loop: ``for idx in sampler.epoch(epoch): model.train_step(X_train[idx],
    y_train[idx], optimizer)``.
    """

    def __init__(self, y: np.ndarray, batch_size: int, *, samples_per_epoch: int | None = None, seed: int = 0,
                 drop_last: bool = False) -> None:
        self.y = np.asarray(y)
        if self.y.ndim != 1 or self.y.size == 0:
            raise ValueError(f"y must be a non-empty 1-D array of class labels, got shape {self.y.shape}")
        self.batch_size = _int_arg(batch_size, "batch_size", 1)
        self.samples_per_epoch = len(self.y) if samples_per_epoch is None else _int_arg(
            samples_per_epoch, "samples_per_epoch", 1)
        self.seed = _int_arg(seed, "seed", 0)
        self.drop_last = bool(drop_last)
        self._next_epoch = 0

    def order(self, epoch: int = 0) -> np.ndarray:
        """All indices of epoch ``epoch``, shape (samples_per_epoch,)."""
        rng = np.random.default_rng([self.seed, _int_arg(epoch, "epoch", 0)])
        return balanced_order(self.y, self.samples_per_epoch, rng)

    def epoch(self, epoch: int = 0) -> Iterator[np.ndarray]:
        """The batches of epoch ``epoch`` (arrays of int64 row indices)."""
        order = self.order(epoch)
        stop = len(order) - (len(order) % self.batch_size if self.drop_last else 0)
        for i in range(0, stop, self.batch_size):
            yield order[i:i + self.batch_size]

    def __len__(self) -> int:
        full, rest = divmod(self.samples_per_epoch, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        """The next epoch's batches (epoch 0 on the first iteration, then 1, 2, ...)."""
        e, self._next_epoch = self._next_epoch, self._next_epoch + 1
        return self.epoch(e)


# The stopgap ``Standardizer`` is now :class:`fastnn.preprocessing.StandardScaler` (same
# ``fit``/``transform``/``to_dict``/``from_dict``, ``mean_``/``scale_``); the name stays as an alias.
from fastnn.preprocessing import StandardScaler as Standardizer  # noqa: E402
