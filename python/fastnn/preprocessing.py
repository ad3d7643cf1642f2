"""Preprocessing fitted on the training split only: mean subtraction, standardisation, min-max
scaling and PCA/whitening, with the statistics computed in C++.

Every transformer follows scikit-learn's conventions without needing scikit-learn: the constructor
only stores its parameters, ``fit`` learns attributes ending in ``_`` and returns ``self``,
``transform`` / ``fit_transform`` / ``inverse_transform`` map arrays, ``get_params`` / ``set_params``
make it usable by ``sklearn.base.clone``, ``sklearn.pipeline.Pipeline`` and ``GridSearchCV``
(``__sklearn_tags__`` answers scikit-learn >= 1.6 when it is installed). ``to_dict`` / ``from_dict``
move a fitted transformer into a checkpoint.

The statistics (count, mean, sum of squared deviations, min, max; per feature, per image channel or
over everything) take one pass over the data in float64: cache-sized tiles get an exact two-pass
mean and variance, shifted by the first row, and are merged with Chan et al.'s pairwise update, so
data like ``1e8 + noise`` keeps its variance to ~15 digits where ``E[x^2] - E[x]^2`` keeps none.
PCA centres the data in float64 and builds the covariance with a float64 GEMM. Applying a fitted
transformer is one fused pass, ``(x - shift) * scale`` (or a GEMM for PCA), written straight into
the output dtype the model needs.

Attach a transformer (or a list of them) to a model, ``model.preprocessing = StandardScaler()``:
``Trainer.fit`` fits it on the training rows only (unless it is already fitted), applies it once to
the training and validation data, and ``predict`` / ``predict_proba`` / ``evaluate`` / ``score``
apply it to raw inputs; ``fastnn.io.save`` stores it inside the checkpoint.

Leakage guard: each transformer keeps a compact fingerprint of the rows it was fitted on (the
smallest 64-bit row hashes, a "bottom-k" sketch). When validation or test rows turn up that were
among them — a scaler fitted on data that contained the test split, the pitfall of the CS231n
notes — :func:`check_leakage` (called by ``Trainer.fit`` for ``validation_data``) warns with a
:class:`LeakageWarning` that says how many.
"""

from __future__ import annotations

import copy as _copy
import inspect
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fastnn import _core

__all__ = [
    "MeanSubtraction",
    "StandardScaler",
    "MinMaxScaler",
    "PCA",
    "Chain",
    "Transformer",
    "LeakageWarning",
    "NotFittedError",
    "RowFingerprint",
    "check_leakage",
    "from_dict",
    "FINGERPRINT_SIZE",
]

FINGERPRINT_SIZE = 16384  # row hashes kept per fitted transformer (128 KiB)
_FORMAT = 1
_U64_MAX = (1 << 64) - 1


class NotFittedError(ValueError, AttributeError):
    """A transformer was used before ``fit`` (the same bases as scikit-learn's)."""


class LeakageWarning(UserWarning):
    """Rows of a validation or test split were among the rows preprocessing was fitted on."""


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------
def _as_float(X: Any, name: str = "X", *, ndim2: bool = True, check_finite: bool = True,
              min_rows: int = 1) -> np.ndarray:
    """X as a C-contiguous float32/float64 array (other numbers become float64), checked."""
    if isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64) and X.flags.c_contiguous:
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array of numbers: {exc}") from None
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        dt = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
        arr = np.ascontiguousarray(arr, dtype=dt)
    if arr.ndim < 2 or (ndim2 and arr.ndim != 2):
        hint = ("; use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for one sample"
                if arr.ndim == 1 else "")
        want = "2-D (samples, features)" if ndim2 else "at least 2-D (samples, ...)"
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}{hint}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} has {arr.shape[0]} samples; at least {min_rows} needed")
    if check_finite and arr.size and _core.first_nonfinite(arr) >= 0:
        _raise_nonfinite(arr, name)
    return arr


def _raise_nonfinite(arr: np.ndarray, name: str) -> None:
    bad = _core.first_nonfinite(arr)
    if bad >= 0:
        row, col = divmod(int(bad), int(np.prod(arr.shape[1:])))
        raise ValueError(f"{name} contains NaN or infinity (first at row {row}, column {col})")
    raise ValueError(f"{name} holds values too large for float64 statistics (squared deviations overflow)")


def _checked(arr: np.ndarray, stats: tuple, name: str = "X") -> tuple:
    """``stats`` (mean, m2, min, max) of ``arr``, checked: a NaN or infinity anywhere in the data
    makes the mean or m2 non-finite, so fits need no separate pass over the data to find one."""
    if not (np.all(np.isfinite(stats[0])) and np.all(np.isfinite(stats[1]))):
        _raise_nonfinite(arr, name)
    return stats


def _flat(arr: np.ndarray) -> np.ndarray:
    return arr.reshape(arr.shape[0], -1)


def _dtype_of(arr: np.ndarray, dtype: Any) -> np.dtype:
    if dtype is None:
        return arr.dtype
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


# ----------------------------------------------------------------------------------------------
# row fingerprints (leakage guard)
# ----------------------------------------------------------------------------------------------
@dataclass
class RowFingerprint:
    """A hash-sampled sketch of the rows a transformer was fitted on.

    Every fitted row whose 64-bit hash is at most ``threshold`` is kept, and only those: with more
    rows than ``FINGERPRINT_SIZE`` the threshold keeps about that many (the same rows are kept or
    skipped wherever they appear, so membership of the kept ones is exact and the overlap with
    another set of rows is estimated from the rows under the threshold).

    Attributes
    ----------
    hashes : ndarray of uint64
        The kept row hashes (any order).
    threshold : int
        ``2**64 - 1`` when every row was kept.
    n_rows : int
        Rows hashed.
    """

    hashes: np.ndarray
    threshold: int
    n_rows: int
    _sorted: np.ndarray | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def _threshold(n: int, size: int) -> int:
        return _U64_MAX if n <= size else (size << 64) // n - 1

    @classmethod
    def of(cls, X2: np.ndarray, size: int = FINGERPRINT_SIZE) -> RowFingerprint:
        """The fingerprint of the rows of ``X2``.

        Parameters
        ----------
        X2 : ndarray (N, D) float32 or float64, C-contiguous
            The rows a transformer is fitted on. Values are rounded to float32 before hashing, so
            the same rows in float32 or float64 give the same hashes.
        size : int
            About how many hashes to keep when ``N > size`` (all ``N`` are kept otherwise).

        Returns
        -------
        RowFingerprint
        """
        h = _core.row_hashes(X2)
        thr = cls._threshold(h.size, size)
        return cls(h if thr == _U64_MAX else h[h <= np.uint64(thr)], thr, int(h.size))

    @property
    def complete(self) -> bool:
        """True when every fitted row's hash was kept, so :meth:`seen` counts exactly (not an estimate)."""
        return self.threshold == _U64_MAX

    def merge(self, other: RowFingerprint, size: int = FINGERPRINT_SIZE) -> RowFingerprint:
        """The fingerprint of both sets of rows (what ``partial_fit`` keeps).

        Parameters
        ----------
        other : RowFingerprint
            The fingerprint of the new rows.
        size : int
            About how many hashes the result keeps: the threshold becomes the lowest of the two
            thresholds and the one for ``n_rows + other.n_rows`` rows.

        Returns
        -------
        RowFingerprint
            A new fingerprint; ``self`` and ``other`` are unchanged.
        """
        n = self.n_rows + other.n_rows
        thr = min(self.threshold, other.threshold, self._threshold(n, size))
        h = np.concatenate([self.hashes, other.hashes])
        return RowFingerprint(h[h <= np.uint64(thr)], thr, n)

    def seen(self, X2: np.ndarray) -> tuple[int, int]:
        """(rows of X2 found among the fitted rows, rows of X2 that could be checked).

        Parameters
        ----------
        X2 : ndarray (M, D) float32 or float64, C-contiguous
            Rows of another split (hashed like :meth:`of`: float32 or float64 alike).

        Returns
        -------
        (int, int)
            With a complete fingerprint every row can be checked (``checked == M``); otherwise only
            the rows whose hash is under the threshold.
        """
        if self._sorted is None:
            self._sorted = np.unique(self.hashes)
        ref = self._sorted
        hv = _core.row_hashes(X2)
        if not self.complete:
            hv = hv[hv <= np.uint64(self.threshold)]
        if hv.size == 0 or ref.size == 0:
            return 0, int(hv.size)
        pos = np.minimum(np.searchsorted(ref, hv), ref.size - 1)
        return int(np.count_nonzero(ref[pos] == hv)), int(hv.size)

    def to_dict(self, arrays: bool = False) -> dict:
        """The fingerprint as stored in a checkpoint. Inverse: :meth:`from_dict`.

        Parameters
        ----------
        arrays : bool
            Keep the hashes as a uint64 array (a tensor in :mod:`fastnn.io` checkpoints); by
            default they become a list of Python ints, JSON-serialisable.

        Returns
        -------
        dict
            ``{"hashes": ..., "threshold": str, "n_rows": int}`` (the threshold as a string: it
            does not fit JSON's doubles).
        """
        h = self.hashes.copy() if arrays else [int(v) for v in self.hashes]
        return {"hashes": h, "threshold": str(self.threshold), "n_rows": self.n_rows}

    @classmethod
    def from_dict(cls, d: dict) -> RowFingerprint:
        """Rebuild a fingerprint from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict
            With ``"hashes"`` (list or array of uint64), ``"threshold"`` and ``"n_rows"``.

        Returns
        -------
        RowFingerprint

        Raises
        ------
        KeyError
            A missing key.
        """
        h = np.ascontiguousarray(np.asarray(d["hashes"], dtype=np.uint64).reshape(-1))
        return cls(h, int(d["threshold"]), int(d["n_rows"]))


# ----------------------------------------------------------------------------------------------
# the base class: scikit-learn manners without scikit-learn
# ----------------------------------------------------------------------------------------------
class Transformer:
    """Base of fastnn's transformers (scikit-learn conventions, no scikit-learn needed)."""

    _kind: ClassVar[str] = ""
    _state: ClassVar[tuple[str, ...]] = ()  # learned attributes saved by to_dict

    # -- parameters --------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, by name (scikit-learn's ``get_params``)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Transformer:
        """Set constructor parameters (scikit-learn's ``set_params``); returns self."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"invalid parameter {k!r} for {type(self).__name__}; valid: {valid}")
            setattr(self, k, v)
        self._cache = {}
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for k in self._param_names():
            v, default = getattr(self, k, None), sig.parameters[k].default
            try:
                same = v == default
                same = bool(same) if not isinstance(same, np.ndarray) else False
            except (TypeError, ValueError):
                same = False
            if not same:
                parts.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __sklearn_tags__(self):
        """scikit-learn >= 1.6 estimator tags (needs scikit-learn, imported here only)."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
                    input_tags=InputTags(allow_nan=False))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")

    def _more_tags(self) -> dict:  # scikit-learn < 1.6
        return {"allow_nan": False, "preserves_dtype": [np.float64, np.float32]}

    # -- fitted state --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X_train) first "
                                 "(on the training split only)")

    def _check_features(self, arr: np.ndarray, name: str = "X") -> None:
        D = int(np.prod(arr.shape[1:]))
        if D != self.n_features_in_:
            raise ValueError(f"{name} has {D} features but {type(self).__name__} was fitted on "
                             f"{self.n_features_in_}")

    def _fingerprint(self, X2: np.ndarray) -> None:
        self.fingerprint_ = RowFingerprint.of(X2)

    def fit_transform(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """``fit(X)`` then ``transform(X)`` (keyword arguments go to ``transform``)."""
        return self.fit(X, y).transform(X, **kwargs)

    # -- checkpoints ---------------------------------------------------------------------------
    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        """Parameters and learned state, for checkpoints. Inverse: :func:`from_dict`.

        Parameters
        ----------
        arrays : bool
            Keep the learned arrays as NumPy arrays (:mod:`fastnn.io` stores them as tensors);
            by default they become lists, so the dict is JSON-serialisable as it is.
        """
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        d: dict[str, Any] = {"kind": self._kind, "class": type(self).__name__, "format": _FORMAT,
                             "params": params, "fitted": self.__sklearn_is_fitted__()}
        if d["fitted"]:
            state = {}
            for k in self._state:
                v = getattr(self, k, None)
                if isinstance(v, tuple):
                    v = list(v)
                elif isinstance(v, np.ndarray) and not arrays:
                    v = v.tolist()
                elif isinstance(v, np.generic):
                    v = v.item()
                state[k] = v
            d["state"] = state
            fp = getattr(self, "fingerprint_", None)
            d["fingerprint"] = fp.to_dict(arrays) if fp is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transformer:
        """Rebuild a transformer of this class from :meth:`to_dict` output."""
        obj = from_dict(d)
        if not isinstance(obj, cls):
            raise TypeError(f"the dict describes a {type(obj).__name__}, not a {cls.__name__}")
        return obj

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Transformer:
        params = dict(d.get("params", {}))
        obj = cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()})
        if d.get("fitted"):
            for k, v in d.get("state", {}).items():
                if isinstance(v, list):
                    v = np.asarray(v, dtype=np.float64)
                elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
                    v = np.asarray(v, dtype=np.float64)
                setattr(obj, k, v)
            if d.get("fingerprint") is not None:
                obj.fingerprint_ = RowFingerprint.from_dict(d["fingerprint"])
            obj._after_load()
        return obj

    def _after_load(self) -> None:
        """Turn loaded state into the exact types fit produces."""


# ----------------------------------------------------------------------------------------------
# per-column affine transformers: out = (x - shift) * scale
# ----------------------------------------------------------------------------------------------
class _Affine(Transformer):
    def _shift_scale(self) -> tuple[np.ndarray, np.ndarray]:  # (D,) float64 each
        raise NotImplementedError

    def _vectors(self) -> tuple[np.ndarray, np.ndarray]:
        cache = self.__dict__.setdefault("_cache", {})
        key = self._fit_id
        if cache.get("key") != key:
            shift, scale = self._shift_scale()
            cache.clear()
            cache.update(key=key, v=(np.ascontiguousarray(shift, np.float64), np.ascontiguousarray(scale, np.float64)))
        return cache["v"]

    @property
    def _fit_id(self) -> int:
        return self.__dict__.get("_fit_count", 0)

    def _fitted_now(self) -> None:
        self._fit_count = self._fit_id + 1
        self._cache = {}

    def _after_load(self) -> None:
        self._fitted_now()

    def _merge_stats(self, X: Any, reset: bool, moments: bool) -> tuple[np.ndarray, np.ndarray]:
        """``fit`` (``reset``) or ``partial_fit`` statistics of the rows of X (N, D): sets the row
        count, feature count, fingerprint, ``data_min_`` and ``data_max_`` (merged with the fitted
        ones unless ``reset``) and returns the (merged, with ``moments``) column mean and sum of
        squared deviations. Raises before any state changes."""
        arr = _as_float(X, check_finite=False)  # NaN/inf show in the statistics
        mean, m2, lo, hi = _stats(arr)
        n = int(arr.shape[0])
        fp = RowFingerprint.of(arr)
        if not reset and self.__sklearn_is_fitted__():
            self._check_features(arr)
            if moments:
                mean, m2 = _merge_moments(self.n_samples_seen_, self.mean_, self.m2_, n, mean, m2)
            lo, hi = np.minimum(lo, self.data_min_), np.maximum(hi, self.data_max_)
            n += self.n_samples_seen_
            fp = self.fingerprint_.merge(fp) if getattr(self, "fingerprint_", None) is not None else fp
        self.data_min_, self.data_max_ = lo, hi
        self.n_samples_seen_, self.n_features_in_, self.fingerprint_ = n, int(arr.shape[1]), fp
        return mean, m2

    def transform(self, X: Any, *, dtype: Any = None, out: np.ndarray | None = None) -> np.ndarray:
        """Apply the fitted statistics.

        Parameters
        ----------
        X : array (N, D) (or (N, ...) images for :class:`MeanSubtraction`)
        dtype : float32 or float64, optional
            Output dtype (default: X's float dtype; integers give float64).
        out : ndarray, optional
            A C-contiguous array of X's shape to write into (may be X itself).

        Returns
        -------
        ndarray
            Same shape as X.

        Raises
        ------
        NotFittedError, ValueError, TypeError
            Not fitted, wrong number of features, NaN/inf, non-numeric or wrongly shaped input.
        """
        self._check_fitted()
        arr = _as_float(X, ndim2=self._needs_2d)
        self._check_features(arr)
        shift, scale = self._vectors()
        dt = np.dtype(out.dtype) if out is not None else _dtype_of(arr, dtype)
        o2 = None if out is None else _flat_out(out, arr.shape)
        res = _core.shift_scale(_flat(arr), shift, scale, out=o2, dtype=dt)
        self._post(res)
        return res.reshape(arr.shape) if out is None else out

    def inverse_transform(self, X: Any, *, dtype: Any = None) -> np.ndarray:
        """Undo :meth:`transform` (same shape; float64 arithmetic)."""
        self._check_fitted()
        arr = _as_float(X, ndim2=self._needs_2d)
        self._check_features(arr)
        shift, scale = self._vectors()
        res = _core.shift_scale(_flat(arr), shift, scale, inverse=True, dtype=_dtype_of(arr, dtype))
        return res.reshape(arr.shape)

    _needs_2d: ClassVar[bool] = True

    def _post(self, res: np.ndarray) -> None:
        pass

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output features (scikit-learn's ``get_feature_names_out``).

        Parameters
        ----------
        input_features : sequence of str, optional
            The input feature names, returned as they are (this transformer keeps its features).

        Returns
        -------
        ndarray (D,) of object (str)
            ``input_features``, or ``"x0"``, ``"x1"``, ... .

        Raises
        ------
        NotFittedError
            Not fitted.
        """
        self._check_fitted()
        if input_features is not None:
            return np.asarray(input_features, dtype=object)
        return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)


def _flat_out(out: np.ndarray, shape: tuple) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writable")
    return out.reshape(shape[0], -1)


def _stats(X2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _checked(X2, _core.column_stats(X2))


def _merge_moments(n_a: int, mean_a: np.ndarray, m2_a: np.ndarray, n_b: int, mean_b: np.ndarray,
                   m2_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise merge of (count, mean, sum of squared deviations)."""
    n = n_a + n_b
    d = mean_b - mean_a
    return mean_a + d * (n_b / n), m2_a + m2_b + d * d * (n_a * n_b / n)


class MeanSubtraction(_Affine):
    """Subtract a mean learned on the training data: per feature, per image channel, or one value.

    Parameters
    ----------
    mode : {"feature", "channel", "global"}
        ``"feature"``: one mean per input feature (column); ``"channel"``: one per image channel
        (images (N, H, W, C) / (N, C, H, W), or flat rows with ``image_shape``); ``"global"``: one
        value for all.
    layout : {"NHWC", "NCHW"}
        Channel position for ``mode="channel"``: last (``"NHWC"``) or first (``"NCHW"``).
    image_shape : tuple of 3 ints, optional
        ``(H, W, C)`` (NHWC) or ``(C, H, W)`` (NCHW) of flat rows; taken from 4-D input otherwise.

    Attributes
    ----------
    mean_ : ndarray of float64
        (D,), (C,) or () by mode.
    n_features_in_, n_samples_seen_ : int
    image_shape_ : tuple or None
        The image shape used (``mode="channel"``).
    fingerprint_ : RowFingerprint
    """

    _kind = "mean_subtraction"
    _state = ("mean_", "n_features_in_", "n_samples_seen_", "image_shape_")
    _needs_2d = False

    def __init__(self, mode: str = "feature", layout: str = "NHWC", image_shape: Sequence[int] | None = None):
        self.mode = mode
        self.layout = layout
        self.image_shape = image_shape

    def _validate(self) -> None:
        if self.mode not in ("feature", "channel", "global"):
            raise ValueError(f"mode must be 'feature', 'channel' or 'global', got {self.mode!r}")
        if self.layout not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {self.layout!r}")

    def _geometry(self, arr: np.ndarray) -> tuple[tuple[int, int, int], int]:
        """(image shape in layout order, channels) for mode='channel'."""
        if arr.ndim == 4:
            shape = tuple(int(s) for s in arr.shape[1:])
        elif self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if len(shape) != 3 or min(shape) < 1:
                raise ValueError(f"image_shape must be 3 positive integers, got {self.image_shape!r}")
        else:
            raise ValueError("mode='channel' needs images: 4-D input (N, H, W, C) / (N, C, H, W), "
                             "or flat rows with image_shape=")
        if math.prod(shape) != int(np.prod(arr.shape[1:])):
            raise ValueError(f"image_shape {shape} holds {math.prod(shape)} values but each row of X has "
                             f"{int(np.prod(arr.shape[1:]))}")
        C = shape[2] if self.layout == "NHWC" else shape[0]
        return shape, C

    def fit(self, X: Any, y: Any = None) -> MeanSubtraction:
        """Learn the mean(s) from X (the training split). Returns self."""
        self._validate()
        arr = _as_float(X, ndim2=False, check_finite=False)  # NaN/inf show in the statistics
        X2 = _flat(arr)
        if self.mode == "channel":
            shape, C = self._geometry(arr)
            mean, _, _, _ = _checked(X2, _core.channel_stats(X2, C, self.layout == "NCHW"))
            self.image_shape_ = shape
        else:
            mean, m2, _, _ = _stats(X2)
            if self.mode == "global":
                mean = np.asarray(float(np.mean(mean)))  # equal counts: the mean of the column means
            self.image_shape_ = None
        self.mean_ = mean
        self.n_features_in_ = int(X2.shape[1])
        self.n_samples_seen_ = int(X2.shape[0])
        self._fingerprint(X2)
        self._fitted_now()
        return self

    def _after_load(self) -> None:
        self.mean_ = np.asarray(self.mean_, dtype=np.float64)
        self.n_features_in_ = int(self.n_features_in_)
        self.n_samples_seen_ = int(self.n_samples_seen_)
        if self.image_shape_ is not None:
            self.image_shape_ = tuple(int(s) for s in self.image_shape_)
        super()._after_load()

    def _shift_scale(self) -> tuple[np.ndarray, np.ndarray]:
        D = self.n_features_in_
        if self.mode == "feature":
            shift = self.mean_
        elif self.mode == "global":
            shift = np.full(D, float(self.mean_))
        else:
            shape = self.image_shape_
            if self.layout == "NHWC":
                shift = np.tile(self.mean_, shape[0] * shape[1])
            else:
                shift = np.repeat(self.mean_, shape[1] * shape[2])
        return shift, np.ones(D)


class StandardScaler(_Affine):
    """Standardise features: ``(x - mean) / std`` per feature, statistics from the training data.

    Features with zero variance (every training value equal) get ``scale_ = 1`` as in
    scikit-learn, so they map to 0 instead of NaN.

    Parameters
    ----------
    with_mean : bool
        Centre the data (subtract ``mean_``).
    with_std : bool
        Divide by the standard deviation (population std, ``ddof=0``, as scikit-learn).

    Attributes
    ----------
    mean_, var_ : ndarray (D,) float64
    scale_ : ndarray (D,) float64 or None
        Standard deviation used (None when ``with_std=False``).
    n_features_in_, n_samples_seen_ : int
    fingerprint_ : RowFingerprint
    """

    _kind = "standardize"
    _state = ("mean_", "var_", "scale_", "n_features_in_", "n_samples_seen_", "m2_", "data_min_", "data_max_")

    def __init__(self, with_mean: bool = True, with_std: bool = True):
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X: Any, y: Any = None) -> StandardScaler:
        """Learn mean and standard deviation of every feature of X (N, D). Returns self."""
        return self._update(X, reset=True)

    def partial_fit(self, X: Any, y: Any = None) -> StandardScaler:
        """Update the statistics with more rows (exact pairwise merge). Returns self."""
        return self._update(X, reset=False)

    def _update(self, X: Any, reset: bool) -> StandardScaler:
        self.mean_, self.m2_ = self._merge_stats(X, reset, moments=True)
        self._finish()
        return self

    def _finish(self) -> None:
        constant = self.data_min_ == self.data_max_  # exact test: no rounding threshold needed
        var = np.where(constant, 0.0, self.m2_ / self.n_samples_seen_)
        self.var_ = var
        self.scale_ = np.where(constant, 1.0, np.sqrt(var)) if self.with_std else None
        self._fitted_now()

    def _after_load(self) -> None:
        for k in ("n_features_in_", "n_samples_seen_"):
            setattr(self, k, int(getattr(self, k)))
        if getattr(self, "m2_", None) is None:  # a legacy {"mean", "scale"} dict
            self.var_ = np.asarray(self.scale_, np.float64) ** 2
            self.m2_ = self.var_ * self.n_samples_seen_
            self.data_min_ = np.where(self.var_ == 0, self.mean_, -np.inf)
            self.data_max_ = np.where(self.var_ == 0, self.mean_, np.inf)
        super()._after_load()

    def _shift_scale(self) -> tuple[np.ndarray, np.ndarray]:
        D = self.n_features_in_
        shift = self.mean_ if self.with_mean else np.zeros(D)
        scale = 1.0 / self.scale_ if self.with_std and self.scale_ is not None else np.ones(D)
        return shift, scale

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> StandardScaler:
        if "class" not in d:  # the stopgap Standardizer's {"kind": "standardize", "mean", "scale"}
            obj = cls()
            obj.mean_ = np.asarray(d["mean"], dtype=np.float64)
            obj.scale_ = np.asarray(d["scale"], dtype=np.float64)
            obj.n_features_in_ = int(obj.mean_.shape[0])
            obj.n_samples_seen_ = int(d.get("n_samples", 0))
            obj.m2_ = None
            obj._after_load()
            return obj
        return super()._from_dict(d)


class MinMaxScaler(_Affine):
    """Scale each feature linearly so the training data spans ``feature_range`` (default [-1, 1]).

    Parameters
    ----------
    feature_range : (min, max)
        Target range of the training data, ``min < max``.
    clip : bool
        Clip transformed values (e.g. of test rows beyond the training range) to the range.

    Attributes
    ----------
    data_min_, data_max_, data_range_ : ndarray (D,) float64
        Per-feature minimum, maximum and range of the training data.
    scale_, min_ : ndarray (D,) float64
        ``out = x * scale_ + min_`` (scikit-learn's names); a constant feature gets range 1.
    n_features_in_, n_samples_seen_ : int
    fingerprint_ : RowFingerprint
    """

    _kind = "minmax"
    _state = ("data_min_", "data_max_", "data_range_", "scale_", "min_", "n_features_in_", "n_samples_seen_")

    def __init__(self, feature_range: tuple[float, float] = (-1.0, 1.0), clip: bool = False):
        self.feature_range = feature_range
        self.clip = clip

    def _range(self) -> tuple[float, float]:
        try:
            lo, hi = (float(v) for v in self.feature_range)
        except (TypeError, ValueError):
            raise ValueError(f"feature_range must be a pair (min, max), got {self.feature_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"feature_range must have finite min < max, got {self.feature_range!r}")
        return lo, hi

    def fit(self, X: Any, y: Any = None) -> MinMaxScaler:
        """Learn each feature's minimum and maximum from X (N, D). Returns self."""
        return self._update(X, reset=True)

    def partial_fit(self, X: Any, y: Any = None) -> MinMaxScaler:
        """Update the minima and maxima with more rows. Returns self."""
        return self._update(X, reset=False)

    def _update(self, X: Any, reset: bool) -> MinMaxScaler:
        self._range()
        self._merge_stats(X, reset, moments=False)
        self._finish()
        return self

    def _finish(self) -> None:
        a, b = self._range()
        self.data_range_ = self.data_max_ - self.data_min_
        rng = np.where(self.data_range_ == 0, 1.0, self.data_range_)
        self.scale_ = (b - a) / rng
        self.min_ = a - self.data_min_ * self.scale_
        self._fitted_now()

    def _after_load(self) -> None:
        for k in ("n_features_in_", "n_samples_seen_"):
            setattr(self, k, int(getattr(self, k)))
        super()._after_load()

    def _shift_scale(self) -> tuple[np.ndarray, np.ndarray]:
        a, _ = self._range()
        # (x - data_min) * scale + a  ==  (x - (data_min - a / scale)) * scale
        return self.data_min_ - a / self.scale_, self.scale_

    def _post(self, res: np.ndarray) -> None:
        if self.clip:
            a, b = self._range()
            np.clip(res, a, b, out=res)


def _eigh(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy.linalg.eigh; NumPy's BLAS limited to one thread for matrices up to 1024 (faster there
    and no contention with fastnn's pool) when threadpoolctl is installed."""
    if cov.shape[0] <= 1024:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            with threadpool_limits(1, user_api="blas"):
                return np.linalg.eigh(cov)
    return np.linalg.eigh(cov)


class PCA(Transformer):
    """Principal component analysis with optional whitening, from a float64 covariance.

    The covariance ``(X - mean)^T (X - mean) / (N - 1)`` is built in C++ (rows centred in float64,
    float64 GEMM) and diagonalised with ``numpy.linalg.eigh``; components are sorted by
    decreasing eigenvalue and signed like scikit-learn's (largest-magnitude entry positive).

    Parameters
    ----------
    n_components : int, float or None
        int k: keep the k components of largest variance; float in (0, 1): keep the fewest
        components explaining at least that fraction of the variance; None: keep
        ``min(N, D) - drop``.
    whiten : bool
        Divide each projected coordinate by ``sqrt(eigenvalue + eps)`` (unit variance).
    eps : float
        Added to the eigenvalues when whitening (keeps tiny ones from blowing up).
    drop : int
        With ``n_components=None``: drop this many components of smallest variance.

    Attributes
    ----------
    components_ : ndarray (k, D) float64
        Principal axes (rows, orthonormal).
    explained_variance_, explained_variance_ratio_, singular_values_ : ndarray (k,)
    mean_ : ndarray (D,)
    n_components_, n_features_in_, n_samples_ : int
    noise_variance_ : float
        Mean of the discarded eigenvalues (0 when none).
    fingerprint_ : RowFingerprint
    """

    _kind = "pca"
    _state = ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_",
              "n_components_", "n_features_in_", "n_samples_", "noise_variance_")

    def __init__(self, n_components: int | float | None = None, *, whiten: bool = False, eps: float = 1e-5,
                 drop: int = 0):
        self.n_components = n_components
        self.whiten = whiten
        self.eps = eps
        self.drop = drop

    def _n_keep(self, ev: np.ndarray, total: float, limit: int) -> int:
        nc, drop = self.n_components, self.drop
        if isinstance(drop, bool) or not isinstance(drop, int | np.integer) or drop < 0:
            raise ValueError(f"drop must be a non-negative integer, got {drop!r}")
        if nc is None:
            k = limit - int(drop)
            if k < 1:
                raise ValueError(f"drop={drop} leaves no component (at most {limit} exist)")
            return k
        if drop:
            raise ValueError("give either n_components or drop, not both")
        if isinstance(nc, bool):
            raise ValueError(f"n_components must be an int, a float in (0, 1) or None, got {nc!r}")
        if isinstance(nc, int | np.integer):
            if not 1 <= nc <= limit:
                raise ValueError(f"n_components={nc} must be between 1 and min(n_samples, n_features)={limit}")
            return int(nc)
        if isinstance(nc, float | np.floating) and 0.0 < nc < 1.0:
            if total <= 0:
                return 1
            ratio = np.cumsum(ev[:limit]) / total
            return int(min(limit, np.searchsorted(ratio, nc, side="right") + 1))
        raise ValueError(f"n_components must be an int, a float in (0, 1) or None, got {nc!r}")

    def fit(self, X: Any, y: Any = None) -> PCA:
        """Learn the principal components of X (N >= 2, D). Returns self."""
        eps = float(self.eps)
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}")
        arr = _as_float(X, min_rows=2, check_finite=False)  # NaN/inf show in the statistics
        N, D = arr.shape
        mean, m2, _, _ = _stats(arr)
        too_big = MemoryError(f"PCA: X has {D} features; their {D} x {D} covariance matrix "
                              f"({8 * D * D / 1e9:.3g} GB) does not fit in memory")
        try:  # refused before allocating (where the OS overcommits, a failed malloc is not a given)
            phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
            phys = 0
        if phys > 0 and 8.0 * D * D > phys:
            raise too_big
        try:
            G = _core.scatter_matrix(arr, mean)
        except MemoryError:
            raise too_big from None
        cov = G / (N - 1)
        ev, vecs = _eigh(cov)
        ev, vecs = ev[::-1], vecs[:, ::-1]
        ev = np.maximum(ev, 0.0)
        total = float(np.sum(m2)) / (N - 1)  # the trace, straight from the column statistics
        limit = min(N, D)
        k = self._n_keep(ev, total, limit)
        comps = np.ascontiguousarray(vecs[:, :k].T)
        idx = np.argmax(np.abs(comps), axis=1)
        signs = np.sign(comps[np.arange(k), idx])
        signs[signs == 0] = 1.0
        comps *= signs[:, None]
        self.components_ = comps
        self.explained_variance_ = ev[:k].copy()
        self.explained_variance_ratio_ = ev[:k] / total if total > 0 else np.zeros(k)
        self.singular_values_ = np.sqrt(ev[:k] * (N - 1))
        self.noise_variance_ = float(np.mean(ev[k:limit])) if k < limit else 0.0
        self.mean_ = mean
        self.n_components_, self.n_features_in_, self.n_samples_ = int(k), int(D), int(N)
        self._fingerprint(arr)
        self._cache = {}
        return self

    def _after_load(self) -> None:
        for k in ("n_components_", "n_features_in_", "n_samples_"):
            setattr(self, k, int(getattr(self, k)))
        self.noise_variance_ = float(self.noise_variance_)
        self.components_ = np.ascontiguousarray(self.components_, dtype=np.float64).reshape(self.n_components_, -1)
        self._cache = {}

    def _matrix(self, dtype: np.dtype, inverse: bool) -> np.ndarray:
        cache = self.__dict__.setdefault("_cache", {})
        key = (inverse, bool(self.whiten), float(self.eps), np.dtype(dtype).str, id(self.components_))
        if key not in cache:
            C = self.components_
            if self.whiten:
                s = np.sqrt(self.explained_variance_ + float(self.eps))
                M = C * s[:, None] if inverse else C.T / s[None, :]
            else:
                M = C if inverse else C.T
            if len(cache) > 8:
                cache.clear()
            cache[key] = np.ascontiguousarray(M, dtype=dtype)
        return cache[key]

    def transform(self, X: Any, *, dtype: Any = None, out: np.ndarray | None = None) -> np.ndarray:
        """Project X (N, D) onto the components: (N, ``n_components_``), whitened if asked.

        ``dtype`` chooses the output dtype (default X's float dtype); ``out`` an array to write into.
        """
        self._check_fitted()
        arr = _as_float(X)
        self._check_features(arr)
        dt = np.dtype(out.dtype) if out is not None else _dtype_of(arr, dtype)
        return _core.project(arr, self.mean_, self._matrix(dt, False), out=out, dtype=dt)

    def inverse_transform(self, X: Any, *, dtype: Any = None) -> np.ndarray:
        """Map projected data (N, ``n_components_``) back to the input space (N, D)."""
        self._check_fitted()
        arr = _as_float(X)
        if arr.shape[1] != self.n_components_:
            raise ValueError(f"X has {arr.shape[1]} columns but this PCA has {self.n_components_} components")
        dt = _dtype_of(arr, dtype)
        return _core.unproject(np.ascontiguousarray(arr, dtype=dt), self._matrix(dt, True), self.mean_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output features (scikit-learn's ``get_feature_names_out``).

        Parameters
        ----------
        input_features : sequence of str, optional
            Ignored (accepted for scikit-learn compatibility): the outputs are components, not inputs.

        Returns
        -------
        ndarray (n_components_,) of object (str)
            ``"pca0"``, ``"pca1"``, ... .

        Raises
        ------
        NotFittedError
            Not fitted.
        """
        self._check_fitted()
        return np.asarray([f"pca{i}" for i in range(self.n_components_)], dtype=object)


class Chain(Transformer):
    """Transformers applied one after the other (each fitted on the output of the previous).

    Parameters
    ----------
    steps : sequence of transformers
        E.g. ``[MeanSubtraction("channel"), PCA(64, whiten=True)]``.
    """

    _kind = "chain"

    def __init__(self, steps: Sequence[Any] = ()):
        self.steps = steps

    def _steps(self) -> list[Any]:
        steps = list(self.steps)
        for i, s in enumerate(steps):
            if not (hasattr(s, "fit") and hasattr(s, "transform")):
                raise TypeError(f"step {i} ({type(s).__name__}) is not a transformer (needs fit and transform)")
        return steps

    def __sklearn_is_fitted__(self) -> bool:
        steps = list(self.steps)
        return bool(steps) and all(_is_fitted(s) for s in steps)

    @property
    def n_features_in_(self) -> int:
        """The number of input features of the first step (raises ``AttributeError`` before fitting)."""
        steps = list(self.steps)
        if not steps or not hasattr(steps[0], "n_features_in_"):
            raise AttributeError("n_features_in_")
        return steps[0].n_features_in_

    @property
    def fingerprint_(self) -> RowFingerprint | None:
        """The first step's :class:`RowFingerprint` of the raw training rows (None when it keeps
        none, e.g. a scikit-learn transformer, or before fitting)."""
        steps = list(self.steps)
        return getattr(steps[0], "fingerprint_", None) if steps else None

    def fit(self, X: Any, y: Any = None) -> Chain:
        """Fit each step on the output of the previous ones (the training split only).

        Parameters
        ----------
        X : array (N, D), or images (N, H, W, C) / (N, C, H, W) for a leading :class:`MeanSubtraction`
            The training data; outputs with more than two dimensions are flattened to rows
            before the next step.
        y : ignored
            Accepted for scikit-learn compatibility.

        Returns
        -------
        Chain
            self.

        Raises
        ------
        TypeError
            A step without ``fit`` and ``transform``.
        ValueError
            Whatever a step raises (NaN/inf, a wrong shape, bad parameters).
        """
        steps = self._steps()
        Xt = X
        for s in steps[:-1]:
            Xt = s.fit(Xt).transform(Xt)
            if np.ndim(Xt) > 2:  # images after mean subtraction: later steps take rows
                Xt = np.reshape(Xt, (np.shape(Xt)[0], -1))
        if steps:
            steps[-1].fit(Xt)
        return self

    def transform(self, X: Any, *, dtype: Any = None) -> np.ndarray:
        """Apply the fitted steps in order.

        Parameters
        ----------
        X : array (N, ...)
            Raw data shaped as in :meth:`fit`.
        dtype : float32 or float64, optional
            Output dtype, passed to the last step (default: what the steps produce, X's float dtype
            for fastnn's transformers).

        Returns
        -------
        ndarray
            The last step's output, e.g. (N, D) or (N, ``n_components_``) after a :class:`PCA`.

        Raises
        ------
        NotFittedError, ValueError, TypeError
            A step is not fitted, or rejects its input.
        """
        steps = self._steps()
        Xt = X
        for i, s in enumerate(steps):
            if i and np.ndim(Xt) > 2:
                Xt = np.reshape(Xt, (np.shape(Xt)[0], -1))
            Xt = s.transform(Xt, dtype=dtype) if i == len(steps) - 1 and dtype is not None else s.transform(Xt)
        return np.asarray(Xt)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Undo :meth:`transform`: every step's ``inverse_transform``, last step first.

        Parameters
        ----------
        X : array (N, K)
            Transformed data (K: the last step's output width).

        Returns
        -------
        ndarray
            Data in the input space, shaped as the first step's ``inverse_transform`` returns it
            (flat rows (N, D) after a :class:`PCA`).

        Raises
        ------
        NotFittedError, ValueError
            A step is not fitted, or the width does not match.
        """
        Xt = X
        for s in reversed(self._steps()):
            Xt = s.inverse_transform(Xt)
        return np.asarray(Xt)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """``{"steps": steps}`` (scikit-learn's ``get_params``; ``deep`` is accepted and ignored)."""
        return {"steps": self.steps}

    def __repr__(self) -> str:
        return f"Chain({list(self.steps)!r})"

    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        """The chain and each step's :meth:`Transformer.to_dict`, for checkpoints. Inverse: :func:`from_dict`.

        Parameters
        ----------
        arrays : bool
            Passed to every step (keep learned arrays as NumPy arrays).

        Returns
        -------
        dict
            ``{"kind": "chain", "class": "Chain", "format": 1, "steps": [...]}``.

        Raises
        ------
        TypeError
            A step has no ``to_dict`` (e.g. a scikit-learn transformer).
        """
        for i, s in enumerate(self._steps()):
            if not hasattr(s, "to_dict"):
                raise TypeError(f"step {i} ({type(s).__name__}) cannot be saved: it has no to_dict()")
        return {"kind": self._kind, "class": "Chain", "format": _FORMAT,
                "steps": [s.to_dict(arrays=arrays) for s in self.steps]}

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Chain:
        return cls([from_dict(s) for s in d.get("steps", [])])


_CLASSES: dict[str, type[Transformer]] = {c.__name__: c for c in (MeanSubtraction, StandardScaler, MinMaxScaler,
                                                                   PCA, Chain)}


def from_dict(d: dict[str, Any]) -> Transformer:
    """Rebuild a transformer saved with ``to_dict()`` (also the stopgap ``Standardizer``'s dicts).

    Parameters
    ----------
    d : dict
        The output of a transformer's ``to_dict()`` (with lists or NumPy arrays), e.g. as read back
        from a checkpoint's metadata.

    Returns
    -------
    Transformer
        A :class:`MeanSubtraction`, :class:`StandardScaler`, :class:`MinMaxScaler`, :class:`PCA` or
        :class:`Chain`; fitted (learned state and fingerprint restored) when ``d`` was.

    Raises
    ------
    TypeError
        ``d`` is not a dict.
    ValueError
        Unknown class or format.

    Examples
    --------
    >>> scaler = StandardScaler().fit(np.array([[0.0, 1.0], [2.0, 3.0]]))
    >>> again = from_dict(scaler.to_dict())
    >>> again.mean_, again.scale_
    (array([1., 2.]), array([1., 1.]))
    """
    if not isinstance(d, dict):
        raise TypeError(f"expected a dict from to_dict(), got {type(d).__name__}")
    name = d.get("class")
    if name is None and d.get("kind") == "standardize" and "mean" in d:
        return StandardScaler._from_dict(d)
    cls = _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown preprocessing class {name!r} (known: {sorted(_CLASSES)})")
    if d.get("format", _FORMAT) != _FORMAT:
        raise ValueError(f"unsupported preprocessing format {d.get('format')!r}")
    return cls._from_dict(d)


def is_preprocessing_dict(d: Any) -> bool:
    """True for dicts that :func:`from_dict` can rebuild."""
    return isinstance(d, dict) and (d.get("class") in _CLASSES or (d.get("kind") == "standardize" and "mean" in d))


# ----------------------------------------------------------------------------------------------
# models and trainers
# ----------------------------------------------------------------------------------------------
def _is_fitted(t: Any) -> bool:
    f = getattr(t, "__sklearn_is_fitted__", None)
    if f is not None:
        return bool(f())
    return any(k.endswith("_") and not k.startswith("_") for k in vars(t))


def as_preprocessing(p: Any) -> Any:
    """None, a transformer, or a list/tuple of them (made a :class:`Chain`)."""
    if p is None:
        return None
    if isinstance(p, list | tuple):
        return Chain(list(p)) if len(p) != 1 else as_preprocessing(p[0])
    if not (hasattr(p, "fit") and hasattr(p, "transform")):
        raise TypeError(f"preprocessing must be a transformer (with fit and transform) or a list of them, "
                        f"got {type(p).__name__}")
    return p


def _model_input(X: Any, name: str) -> np.ndarray:
    arr = _as_float(X, name, ndim2=False)
    return arr if arr.ndim == 2 else _flat(arr)


def fit_for_model(p: Any, X: Any) -> None:
    """Fit a model's preprocessing on the training rows (flattened, except that images reach a
    leading :class:`MeanSubtraction`, which learns their shape)."""
    first = p.steps[0] if isinstance(p, Chain) and len(p.steps) else p
    if isinstance(first, MeanSubtraction):
        arr = _as_float(X, "X", ndim2=False)
        p.fit(arr if arr.ndim == 4 else _flat(arr))
    else:
        p.fit(_model_input(X, "X"))


def transform_for_model(p: Any, X: Any, dtype: Any, name: str = "X") -> np.ndarray:
    """The network input for raw X: flattened to (N, D), transformed, in the model's dtype."""
    if not _is_fitted(p):
        raise NotFittedError(f"the model's preprocessing ({type(p).__name__}) is not fitted: fit it on the "
                             "training split, or train the model with fit(), which fits it on the training data")
    arr = _model_input(X, name)
    try:
        out = p.transform(arr, dtype=dtype)
    except TypeError as exc:
        if "dtype" not in str(exc):
            raise
        out = p.transform(arr)  # a transformer without the dtype keyword (e.g. scikit-learn's)
    return np.asarray(out)


def check_leakage(preprocessing: Any, X: Any, name: str = "validation", *, warn: bool = True) -> int:
    """Count the rows of ``X`` that were among the rows ``preprocessing`` was fitted on.

    Parameters
    ----------
    preprocessing : transformer, Chain, or a model with ``.preprocessing``
    X : array (N, ...)
        Raw rows of a validation or test split.
    name : str
        The split's name for the message.
    warn : bool
        Issue a :class:`LeakageWarning` when any row was seen.

    Returns
    -------
    int
        Rows seen during fitting (an estimate scaled from the rows that could be checked when the
        fitting data had more rows than the fingerprint keeps).
    """
    p = getattr(preprocessing, "preprocessing", preprocessing)
    fp = getattr(p, "fingerprint_", None)
    if not isinstance(fp, RowFingerprint):
        return 0
    arr = _as_float(X, name, ndim2=False, check_finite=False)
    X2 = _flat(arr)
    n = X2.shape[0]
    if n == 0:
        return 0
    found, checked = fp.seen(X2)
    if found == 0:
        return 0
    exact = fp.complete
    count = found if exact else int(round(found * n / max(checked, 1)))
    if warn:
        what = type(p).__name__
        how = "" if exact else f" (estimated from the {checked} rows the fingerprint could check)"
        warnings.warn(
            f"{'' if exact else 'about '}{count} of {n} {name} rows were among the {fp.n_rows} rows {what} was "
            f"fitted on{how}: fit preprocessing on the training split only, or the {name} scores will be "
            "optimistic", LeakageWarning, stacklevel=3)
    return count


def clone(t: Any) -> Any:
    """An unfitted copy with the same parameters (scikit-learn's ``clone`` without scikit-learn)."""
    if isinstance(t, Chain):
        return Chain([clone(s) for s in t.steps])
    if isinstance(t, Transformer):
        return type(t)(**{k: _copy.deepcopy(v) for k, v in t.get_params().items()})
    return _copy.deepcopy(t)
