"""Datasets and splits: scikit-learn's bundled digits, .npz and .csv files, stratified splits.

Nothing is downloaded: digits ships with scikit-learn (``pip install 'fastnn[data]'``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_digits", "load_npz", "load_csv", "train_val_test_split", "Standardizer"]


def load_digits(images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digit images: X (1797, 64) floats 0..16 (or (1797, 8, 8) with
    ``images``), y (1797,) int64 labels 0..9."""
    try:
        from sklearn.datasets import load_digits as _ld
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("digits needs scikit-learn's bundled data: pip install 'fastnn[data]'") from exc
    d = _ld()
    X = d.images if images else d.data
    return np.asarray(X, dtype=np.float64), np.asarray(d.target, dtype=np.int64)


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """X and y from an .npz file holding arrays ``X`` and ``y`` (loaded without pickle)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            if not {"X", "y"} <= keys:
                raise ValueError(f"{path} must contain arrays 'X' and 'y', has {sorted(keys)}")
            return np.asarray(f["X"]), np.asarray(f["y"])
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and "must contain" in str(exc):
            raise
        raise ValueError(f"{path} is not a readable .npz file: {exc}") from None


def load_csv(path: str | Path, label_column: int = -1, delimiter: str = ",") -> tuple[np.ndarray, np.ndarray]:
    """Numeric CSV (an optional header row is skipped); ``label_column`` holds the targets."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    try:
        [float(v) for v in first.strip().split(delimiter)]
        skip = 0
    except ValueError:
        skip = 1
    try:
        data = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: every value must be numeric ({exc})") from None
    y = data[:, label_column]
    X = np.delete(data, label_column % data.shape[1], axis=1)
    if np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return X, y


def train_val_test_split(X: np.ndarray, y: np.ndarray, val: float = 0.2, test: float = 0.2,
                         seed: int = 0, stratify: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Shuffled splits (per class when ``stratify`` and y holds labels); returns
    ``{"train": (X, y), "val": (X, y), "test": (X, y)}``."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError("val and test must be fractions with val + test < 1")
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    rng = np.random.default_rng(seed)
    if stratify and y.dtype.kind in "iub":
        groups = [np.flatnonzero(y == c) for c in np.unique(y)]
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


class Standardizer:
    """Per-feature standardisation fitted on the training split only (constant features keep
    std 1, so they stay finite)."""

    def fit(self, X: np.ndarray) -> Standardizer:
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_

    def to_dict(self) -> dict:
        return {"kind": "standardize", "mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        s = cls()
        s.mean_, s.scale_ = np.asarray(d["mean"]), np.asarray(d["scale"])
        return s
