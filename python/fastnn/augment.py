"""Data augmentation for image mini-batches, in C++, seeded and reproducible.

:class:`Augment` describes random horizontal flips, random crops with zero padding, brightness and
contrast jitter and additive Gaussian noise for images (N, H, W, C) or (N, C, H, W), or flat rows
with a given image shape. ``Trainer.fit(..., augment=Augment(...))`` applies it to every training
mini-batch (gather, augment and train step; evaluation never augments). The random draws are
counter-based (Philox4x32-10, see ``cpp/include/fastnn/augment.h``): a pure function of (seed, global
step, position in the batch, value index), so a run is reproducible, resumable, and independent of
the thread count.

Test-time augmentation: :func:`tta_predict_proba` averages a model's class probabilities over
flipped and shifted copies of each input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastnn import _core

__all__ = ["Augment", "tta_predict_proba", "tta_predict"]

_LAYOUTS = ("NHWC", "NCHW")


def _layout(layout: str) -> bool:
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    return layout == "NCHW"


def _shape3(shape: Any, name: str = "image_shape") -> tuple[int, int, int]:
    try:
        s = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 3 positive integers, got {shape!r}") from None
    if len(s) != 3 or min(s) < 1:
        raise ValueError(f"{name} must be 3 positive integers ((H, W, C) for NHWC, (C, H, W) for NCHW), "
                         f"got {shape!r}")
    return s


def _resolve_shape(image_shape: Any, item_shape: tuple, features: int, layout: str) -> tuple[int, int, int]:
    """The image shape (layout order) from an explicit one or a 3-D item shape; checked against
    the number of features."""
    if image_shape is not None:
        shape = _shape3(image_shape)
    elif len(item_shape) == 3:
        shape = _shape3(item_shape, "the images' shape")
    else:
        raise ValueError("augmentation needs image-shaped data: pass images (N, H, W, C) / (N, C, H, W), "
                         "or image_shape= for flat rows")
    if math.prod(shape) != features:
        raise ValueError(f"image shape {shape} ({layout}) holds {math.prod(shape)} values but the data has "
                         f"{features} features per row (a preprocessing step that changes the dimension, such "
                         "as PCA, cannot be followed by image augmentation)")
    return shape


class Augment:
    """Random image augmentation of mini-batches.

    Each image of a batch draws its own parameters; steps whose parameter is 0 are skipped. In
    order: crop (shift by up to ``crop_padding`` pixels each way, zero fill) and horizontal flip,
    contrast ``(v - m_c) * f + m_c`` with ``f`` uniform in ``[1 - contrast, 1 + contrast]`` and
    ``m_c`` the image's channel mean, brightness ``v + delta`` with ``delta`` uniform in
    ``[-brightness, brightness]``, noise ``v + noise_std * z``. The arithmetic is float64.

    Augmentation acts on the network input, i.e. after preprocessing: zero padding then means
    "the mean" for centred data. Channel-wise preprocessing commutes with flips and shifts.

    Parameters
    ----------
    flip : float or bool
        Probability of a horizontal flip (True means 0.5).
    crop_padding : int
        Random crops from the image padded by this many zero pixels (0: off).
    noise_std : float
        Standard deviation of additive Gaussian noise (0: off).
    brightness : float
        Additive brightness jitter (0: off).
    contrast : float in [0, 1]
        Contrast jitter (0: off).
    image_shape : (H, W, C) or (C, H, W), optional
        For flat rows; taken from 4-D data otherwise.
    layout : {"NHWC", "NCHW"}
        Channels last or first.
    seed : int, optional
        Seed of the draws (default: derived from the trainer's seed).

    Examples
    --------
    >>> aug = Augment(flip=0.5, crop_padding=2, noise_std=0.05, image_shape=(8, 8, 1))
    >>> model.fit(X_train, y_train, epochs=30, augment=aug)          # doctest: +SKIP
    >>> batch = aug(X_train[:64], step=0)                            # doctest: +SKIP
    """

    def __init__(self, *, flip: float | bool = 0.0, crop_padding: int = 0, noise_std: float = 0.0,
                 brightness: float = 0.0, contrast: float = 0.0, image_shape: Sequence[int] | None = None,
                 layout: str = "NHWC", seed: int | None = None) -> None:
        self.flip = 0.5 if flip is True else float(flip)
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"flip is a probability in [0, 1], got {flip!r}")
        if isinstance(crop_padding, bool) or not isinstance(crop_padding, int | np.integer) or crop_padding < 0:
            raise ValueError(f"crop_padding must be a non-negative integer, got {crop_padding!r}")
        self.crop_padding = int(crop_padding)
        for name, v in (("noise_std", noise_std), ("brightness", brightness), ("contrast", contrast)):
            if not (isinstance(v, int | float | np.floating) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if contrast > 1:
            raise ValueError(f"contrast must be in [0, 1], got {contrast!r}")
        self.noise_std, self.brightness, self.contrast = float(noise_std), float(brightness), float(contrast)
        self.image_shape = None if image_shape is None else _shape3(image_shape)
        self.layout = layout
        self._nchw = _layout(layout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)

    def __repr__(self) -> str:
        parts = [f"{k}={getattr(self, k)!r}" for k in ("flip", "crop_padding", "noise_std", "brightness", "contrast")
                 if getattr(self, k)]
        if self.image_shape is not None:
            parts.append(f"image_shape={self.image_shape!r}")
        if self.layout != "NHWC":
            parts.append(f"layout={self.layout!r}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return f"Augment({', '.join(parts)})"

    def _kwargs(self) -> dict[str, Any]:
        return {"flip_prob": self.flip, "pad": self.crop_padding, "noise_std": self.noise_std,
                "brightness": self.brightness, "contrast": self.contrast}

    def __call__(self, X: Any, step: int = 0, *, rows: Any = None, out: np.ndarray | None = None,
                 seed: int | None = None) -> np.ndarray:
        """An augmented copy of a batch.

        Parameters
        ----------
        X : array (N, H, W, C) / (N, C, H, W), or (N, D) with ``image_shape``
            float32 or float64 (other numbers become float64).
        step : int
            The batch's stream (the trainer passes the global step): same (seed, step) -> same
            result.
        rows : int array (B,), optional
            Augment ``X[rows]`` (a gathered mini-batch) instead of all of X.
        out : ndarray, optional
            C-contiguous array of the result's shape and dtype to write into.
        seed : int, optional
            Overrides the object's seed (default 0 when it has none).

        Returns
        -------
        ndarray
            Shape ``(B,) + X.shape[1:]``, X's dtype.
        """
        arr = np.asarray(X)
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
        if arr.ndim < 2:
            raise ValueError(f"X must hold a batch of images (N, ...), got shape {arr.shape}")
        shape = _resolve_shape(self.image_shape, arr.shape[1:], int(np.prod(arr.shape[1:])), self.layout)
        s = self.seed if seed is None else int(seed)
        return _core.augment_images(arr, shape, self._nchw, seed=int(s or 0), stream=int(step), rows=rows, out=out,
                                    **self._kwargs())

    def draws(self, n: int, step: int = 0, *, seed: int | None = None) -> dict[str, np.ndarray]:
        """The per-image random parameters of a batch of ``n`` at ``step``: ``flip`` (bool), ``dy``,
        ``dx`` (pixels), ``delta`` (brightness), ``factor`` (contrast)."""
        s = self.seed if seed is None else int(seed)
        k = self._kwargs()
        k.pop("noise_std")
        return _core.augment_draws(int(n), seed=int(s or 0), stream=int(step), **k)

    def _bind(self, item_shape: tuple | None, features: int, default_seed: int):
        """A callable (X, rows, step, out) -> batch for the trainer (shape and seed resolved once)."""
        shape = _resolve_shape(self.image_shape, tuple(item_shape or ()), int(features), self.layout)
        seed = self.seed if self.seed is not None else int(default_seed)
        nchw, kw = self._nchw, self._kwargs()

        def apply(X: np.ndarray, rows: np.ndarray, step: int, out: np.ndarray) -> np.ndarray:
            return _core.augment_images(X, shape, nchw, seed=seed, stream=int(step), rows=rows, out=out, **kw)

        return apply


def _tta_shifts(crops: Any) -> list[tuple[int, int]]:
    if crops is None or crops is False or crops == 0:
        return [(0, 0)]
    if isinstance(crops, int | np.integer) and not isinstance(crops, bool):
        p = int(crops)
        if p < 0:
            raise ValueError(f"crops must be a non-negative integer or a list of (dy, dx), got {crops!r}")
        return [(0, 0), (-p, -p), (-p, p), (p, -p), (p, p)]
    try:
        shifts = [(int(dy), int(dx)) for dy, dx in crops]
    except (TypeError, ValueError):
        raise ValueError(f"crops must be a non-negative integer or a list of (dy, dx) pairs, got {crops!r}") from None
    if not shifts:
        raise ValueError("crops must not be an empty list")
    return shifts


def tta_predict_proba(model: Any, X: Any, *, flips: bool = True, crops: Any = None,
                      image_shape: Sequence[int] | None = None, layout: str = "NHWC") -> np.ndarray:
    """Class probabilities averaged over flipped and shifted copies of each input (test-time
    augmentation).

    Parameters
    ----------
    model : fastnn.model.Sequential
        A classifier; its preprocessing (if any) is applied first, then the copies are made.
    X : array (N, H, W, C) / (N, C, H, W), or flat rows with ``image_shape``
    flips : bool
        Also average over the horizontally flipped copy of every view.
    crops : int or list of (dy, dx), optional
        An int p averages the centre and the four corner crops of the image padded by p (shifts
        (0, 0), (+-p, +-p)); a list gives the shifts explicitly. None: no shifts.
    image_shape, layout
        As in :class:`Augment`.

    Returns
    -------
    ndarray (N, classes)
        Mean probabilities (rows sum to 1), the model's dtype.
    """
    if not model.loss.classification:
        raise TypeError("tta_predict_proba needs a classification model")
    nchw = _layout(layout)
    item_shape = tuple(np.shape(X)[1:])
    Xn = model.preprocess(X)
    shape = _resolve_shape(image_shape, item_shape, Xn.shape[1], layout)
    views = [(dy, dx, f) for dy, dx in _tta_shifts(crops) for f in ((False, True) if flips else (False,))]
    total = None
    buf = np.empty_like(Xn)
    for dy, dx, f in views:
        xv = Xn if (dy, dx, f) == (0, 0, False) else _core.shift_flip_images(Xn, shape, nchw, dy=dy, dx=dx, flip=f,
                                                                              out=buf)
        p = model._net.predict(xv, True)
        total = p.astype(np.float64) if total is None else total + p
    return (total / len(views)).astype(model.dtype)


def tta_predict(model: Any, X: Any, **kwargs: Any) -> np.ndarray:
    """Class labels from :func:`tta_predict_proba` (same arguments: ``model``, ``X`` and the
    ``**kwargs`` it takes); int64 (N,)."""
    return tta_predict_proba(model, X, **kwargs).argmax(axis=1)
