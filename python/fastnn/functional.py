"""The CS231n-compatible functional API, on fastnn's C++ kernels.

Existing CS231n-style NumPy code speeds up by changing an import::

    from fastnn.functional import affine_forward, affine_backward, relu_forward, ...

Every function keeps the names, signatures, return tuples, dict conventions and defaults of the
CS231n assignment code:

* ``X_forward(x, ...) -> (out, cache)`` and ``X_backward(dout, cache) -> grads``;
* ``bn_param`` and ``dropout_param`` are dicts mutated in place (``mode``, running statistics,
  ``p`` = probability of *keeping* a unit, optional ``seed``);
* losses return ``(loss, dscores)``;
* updates are ``update(w, dw, config=None) -> (next_w, config)`` with defaults filled in with
  ``config.setdefault`` and the optimizer state kept in ``config`` under the CS231n keys.

Inputs have shape ``(N, d1, ..., dk)`` where that makes sense; float64 in gives float64 out and
float32 in gives float32 out (mixing the two in one call is a ``TypeError`` rather than a silent
conversion). Integer, bool, complex and object arrays are refused with a ``TypeError`` that names
the argument.

Differences from the NumPy reference code, all deliberate:

* Update rules update ``w`` in place when it is a writable C-contiguous float array and return it
  as ``next_w`` (CS231n's own ``sgd`` does the same); optimizer state arrays in ``config`` are
  likewise updated in place, or replaced by updated copies when they cannot be written.
* Dropout masks come from a counter-based Philox generator, never from NumPy's global random
  state: with ``dropout_param['seed']`` the mask is a pure function of the seed (as with CS231n's
  reseeding), without it every call draws a fresh mask from a per-process key.
* Caches are tuples holding what the C++ backward needs; treat them as opaque (the affine and
  ReLU caches are ``(x, w, b)`` and ``x`` exactly as in CS231n).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import MutableMapping
from typing import Any

import numpy as np

from fastnn import _core

__all__ = [
    "affine_forward",
    "affine_backward",
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "prelu_forward",
    "prelu_backward",
    "elu_forward",
    "elu_backward",
    "tanh_forward",
    "tanh_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "maxout_forward",
    "maxout_backward",
    "affine_relu_forward",
    "affine_relu_backward",
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "dropout_forward",
    "dropout_backward",
    "softmax_loss",
    "svm_loss",
    "mse_loss",
    "l2_regularization",
    "l1_regularization",
    "softmax",
    "sgd",
    "sgd_momentum",
    "nesterov_momentum",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
]

Cache = Any

# ---------------------------------------------------------------------------------------------
# Affine
# ---------------------------------------------------------------------------------------------


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Affine (fully connected) layer forward pass.

    Parameters
    ----------
    x : ndarray, shape (N, d1, ..., dk)
        Input minibatch; each example is flattened to ``D = d1 * ... * dk`` features.
    w : ndarray, shape (D, M)
        Weights.
    b : ndarray, shape (M,)
        Biases.

    Returns
    -------
    out : ndarray, shape (N, M)
        ``x.reshape(N, D) @ w + b``, same dtype as ``x``.
    cache : tuple
        ``(x, w, b)``.

    Raises
    ------
    TypeError
        Non-float or mixed float32/float64 arguments.
    ValueError
        Shapes that do not line up (the message names the argument and both shapes).
    """
    out = _core.dense_forward(x, w, b)
    return out, (x, w, b)


def affine_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Affine layer backward pass.

    Parameters
    ----------
    dout : ndarray, shape (N, M)
        Upstream derivative.
    cache : tuple
        ``(x, w, b)`` from :func:`affine_forward`.

    Returns
    -------
    dx : ndarray, shape (N, d1, ..., dk)
    dw : ndarray, shape (D, M)
    db : ndarray, shape (M,)
        All in the dtype of ``dout``.

    Raises
    ------
    TypeError
        Non-float or mixed float32/float64 arguments.
    ValueError
        ``dout`` whose shape does not match the cache.
    """
    x, w, _ = cache
    dx, dw, db = _core.dense_backward(dout, x, w)
    return dx, dw, db


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """ReLU forward: ``out = max(x, 0)``; returns ``(out, cache=x)``.

    ``x`` is a float32 or float64 array of any shape; ``out`` has its shape and dtype.
    """
    return _core.relu_forward(x), x


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """ReLU backward: ``dx = dout * (x > 0)`` with ``x = cache``.

    ``dout`` has the shape and dtype of the forward input; so has ``dx``. A shape or dtype
    mismatch is a ``ValueError`` / ``TypeError``.
    """
    return _core.relu_backward(dout, cache)


def leaky_relu_forward(x: np.ndarray, slope: float = 0.01) -> tuple[np.ndarray, Cache]:
    """Leaky ReLU forward: ``x if x > 0 else slope * x``; returns ``(out, cache)``.

    ``x`` is a float32 or float64 array of any shape; ``slope`` the negative slope.
    """
    return _core.leaky_relu_forward(x, slope), (x, slope)


def leaky_relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Leaky ReLU backward: ``dout if x > 0 else slope * dout``, ``x`` and ``slope`` from ``cache``."""
    x, slope = cache
    return _core.leaky_relu_backward(dout, x, slope)


def prelu_forward(x: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, Cache]:
    """PReLU forward with learned slopes.

    Parameters
    ----------
    x : ndarray, shape (N, d1, ..., dk)
    a : ndarray, shape (1,) or (D,)
        One shared slope, or one slope per flattened feature.

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : tuple ``(x, a)``
    """
    return _core.prelu_forward(x, a), (x, a)


def prelu_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray]:
    """PReLU backward: returns ``(dx, da)`` for upstream ``dout`` (shape of ``x``) and the
    forward's ``cache``; ``da`` has the shape of ``a``."""
    x, a = cache
    return _core.prelu_backward(dout, x, a)


def elu_forward(x: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, Cache]:
    """ELU forward: ``x if x > 0 else alpha * (exp(x) - 1)`` (``alpha >= 0``).

    ``x`` is a float32 or float64 array of any shape. Returns ``(out, cache)``; a negative
    ``alpha`` is a ``ValueError``.
    """
    out = _core.elu_forward(x, alpha)
    return out, (out, alpha)


def elu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """ELU backward: ``dx = dout`` where the output is positive, ``dout * (out + alpha)`` elsewhere
    (computed from the forward output kept in ``cache``)."""
    out, alpha = cache
    return _core.elu_backward(dout, out, alpha)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """tanh forward on a float array ``x`` of any shape; returns ``(out, cache=out)``."""
    out = _core.tanh_forward(x)
    return out, out


def tanh_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """tanh backward: ``dout * (1 - out**2)`` with ``out = cache``."""
    return _core.tanh_backward(dout, cache)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Sigmoid forward ``1 / (1 + exp(-x))`` (stable for large ``|x|``); the cache is the output."""
    out = _core.sigmoid_forward(x)
    return out, out


def sigmoid_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Sigmoid backward: ``dout * out * (1 - out)`` with ``out = cache``."""
    return _core.sigmoid_backward(dout, cache)


def maxout_forward(x: np.ndarray, k: int) -> tuple[np.ndarray, Cache]:
    """Maxout over groups of ``k`` consecutive features.

    Parameters
    ----------
    x : ndarray, shape (N, D * k) (or (N, d1, ..., dk) flattening to D * k)
    k : int
        Pieces per unit.

    Returns
    -------
    out : ndarray, shape (N, D)
        ``x.reshape(N, D, k).max(axis=2)``.
    cache : tuple
        ``(argmax, k, x.shape)``; ``argmax`` (int32) records the winning piece for backward.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"maxout_forward: argument 'k' must be an integer, got {type(k).__name__}")
    out, argmax = _core.maxout_forward(x, k)
    return out, (argmax, k, np.shape(x))


def maxout_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Maxout backward: the upstream gradient ``dout`` (N, D) goes to the winning piece of each
    group; returns ``dx`` of the forward input's shape (``cache`` from :func:`maxout_forward`)."""
    argmax, k, shape = cache
    return _core.maxout_backward(dout, argmax, k).reshape(shape)


def affine_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Affine transform followed by ReLU; returns ``(out, (fc_cache, relu_cache))``.

    ``x`` (N, d1, ..., dk), ``w`` (D, M), ``b`` (M,) as in :func:`affine_forward`; ``out`` is
    (N, M).
    """
    a, fc_cache = affine_forward(x, w, b)
    out = _core.relu_forward(a, out=a)  # in place: the pre-activation is not needed again
    return out, (fc_cache, out)


def affine_relu_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`affine_relu_forward`: upstream ``dout`` (N, M) and the forward's
    ``cache``; returns ``(dx, dw, db)`` as :func:`affine_backward`."""
    fc_cache, relu_out = cache
    # ReLU's gate is the same whether taken on its input or its (kept) output.
    da = _core.relu_backward(dout, relu_out)
    return affine_backward(da, fc_cache)


# ---------------------------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------------------------


def _state_array(
    store: MutableMapping[str, Any], key: str, like: np.ndarray, shape: tuple[int, ...], fn: str
) -> np.ndarray:
    """The array ``store[key]`` ready to be updated in place by a kernel.

    Missing: zeros. Present and writable, C-contiguous, of ``like``'s dtype: itself. Otherwise an
    updated copy replaces it in ``store`` (so the result is never lost).
    """
    arr = store.get(key)
    if arr is None:
        arr = np.zeros(shape, dtype=like.dtype)
        store[key] = arr
        return arr
    if not isinstance(arr, np.ndarray):
        arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"{fn}: {key!r} must have shape {shape}, got {arr.shape}")
    if not (
        arr.dtype == like.dtype
        and arr.flags.c_contiguous
        and arr.flags.writeable
        and arr.dtype.isnative
    ):
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{fn}: {key!r} must be a float array, got dtype {arr.dtype}")
        arr = np.array(arr, dtype=like.dtype, order="C")
        store[key] = arr
    return arr


def _dtype_of(x: Any, fn: str, name: str = "x") -> np.dtype:
    dt = np.asarray(x).dtype if not isinstance(x, np.ndarray) else x.dtype
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{fn}: argument {name!r} must be a float32 or float64 array, got dtype {dt}")
    return dt


def batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: MutableMapping[str, Any]
) -> tuple[np.ndarray, Cache]:
    """Batch normalisation forward pass (CS231n conventions).

    Parameters
    ----------
    x : ndarray, shape (N, D)
    gamma, beta : ndarray, shape (D,)
        Scale and shift.
    bn_param : dict
        ``mode`` ('train' or 'test', required); ``eps`` (default 1e-5); ``momentum`` (default
        0.9, ``running = momentum * running + (1 - momentum) * batch``); ``running_mean`` and
        ``running_var`` (shape (D,), zeros when absent). Mutated in place: the running statistics
        are updated in training mode.

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : tuple
        What :func:`batchnorm_backward` needs.

    Raises
    ------
    ValueError
        Unknown mode, bad shapes, eps <= 0, momentum outside [0, 1], an empty batch, or a batch of
        one row in training mode (its variance is 0: PyTorch refuses it too).
    """
    fn = "batchnorm_forward"
    if not isinstance(bn_param, MutableMapping):
        raise TypeError(f"{fn}: bn_param must be a dict, got {type(bn_param).__name__}")
    mode = bn_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"{fn}: bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    for key, val in (("eps", eps), ("momentum", momentum)):
        if isinstance(val, bool) or not isinstance(val, int | float | np.integer | np.floating):
            raise TypeError(f"{fn}: bn_param[{key!r}] must be a number, got {type(val).__name__}")
    dt = _dtype_of(x, fn)
    if np.ndim(x) != 2:
        raise ValueError(f"{fn}: argument 'x' must have shape (N, D), got {np.shape(x)}")
    D = np.shape(x)[1]
    like = np.empty(0, dtype=dt)
    running_mean = _state_array(bn_param, "running_mean", like, (D,), fn)
    running_var = _state_array(bn_param, "running_var", like, (D,), fn)
    if mode == "train":
        if np.shape(x)[0] == 1:
            raise ValueError(f"{fn}: training mode needs more than 1 row per batch, got x of shape {np.shape(x)} "
                             "(the variance of one row is 0, so the output would be beta whatever x); use "
                             "bn_param['mode'] = 'test' (running statistics) for a single row")
        out, mean, invstd = _core.batchnorm_forward_train(
            x, gamma, beta, running_mean, running_var, eps=eps, momentum=momentum
        )
        return out, ("train", x, gamma, mean, invstd)
    out = _core.batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, eps=eps)
    return out, ("test", x, gamma, running_mean.copy(), running_var.copy(), eps)


def batchnorm_backward(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalisation backward pass: returns ``(dx, dgamma, dbeta)``.

    Training mode uses the simplified closed form
    ``dx = gamma * invstd / N * (N * dout - sum(dout) - xhat * sum(dout * xhat))``;
    test mode differentiates the fixed per-feature affine map of the running statistics.

    Parameters
    ----------
    dout : ndarray, shape (N, D)
        Upstream derivative, the dtype of the forward input.
    cache : tuple
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)
    """
    if cache[0] == "train":
        _, x, gamma, mean, invstd = cache
        return _core.batchnorm_backward(dout, x, gamma, mean, invstd)
    _, x, gamma, rm, rv, eps = cache
    return _core.batchnorm_backward_eval(dout, x, gamma, rm, rv, eps=eps)


def batchnorm_backward_alt(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alternative batch-norm backward (CS231n's name for the simplified form).

    fastnn's :func:`batchnorm_backward` already is the simplified closed form, so both names run
    the same kernel and give identical results (same ``dout`` and ``cache`` arguments, same
    ``(dx, dgamma, dbeta)``).
    """
    return batchnorm_backward(dout, cache)


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------

# Per-process key and call counter for unseeded dropout: a fresh mask every call, independent of
# NumPy's global random state and of thread counts.
_DROPOUT_KEY = int.from_bytes(os.urandom(8), "little")
_DROPOUT_CALLS = itertools.count(1)
_DROPOUT_LOCK = threading.Lock()


def dropout_forward(x: np.ndarray, dropout_param: MutableMapping[str, Any]) -> tuple[np.ndarray, Cache]:
    """Inverted dropout forward pass.

    Parameters
    ----------
    x : ndarray, any shape
    dropout_param : dict
        ``p``: probability of *keeping* each unit, in (0, 1]; ``mode``: 'train' or 'test';
        ``seed`` (optional): makes the mask a pure function of the seed.

    Returns
    -------
    out : ndarray
        Training: ``x * mask / p``. Test: ``x`` itself.
    cache : tuple
        ``(dropout_param, mask)`` with ``mask`` a uint8 array (None in test mode).
    """
    fn = "dropout_forward"
    if not isinstance(dropout_param, MutableMapping):
        raise TypeError(f"{fn}: dropout_param must be a dict, got {type(dropout_param).__name__}")
    if "p" not in dropout_param:
        raise ValueError(f"{fn}: dropout_param['p'] (probability of keeping a unit) is required")
    p = dropout_param["p"]
    mode = dropout_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"{fn}: dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    if isinstance(p, bool) or not (isinstance(p, (int, float, np.floating, np.integer)) and 0.0 < float(p) <= 1.0):
        raise ValueError(
            f"{fn}: dropout_param['p'] is the probability of keeping a unit and must be in (0, 1], "
            f"got {p!r}"
        )
    if mode == "test":
        _dtype_of(x, fn)
        return x, (dropout_param, None)
    seed = dropout_param.get("seed")
    if seed is not None:
        out, mask = _core.dropout_forward(x, float(p), int(seed) & 0xFFFFFFFFFFFFFFFF, 0)
    else:
        with _DROPOUT_LOCK:
            stream = next(_DROPOUT_CALLS)
        out, mask = _core.dropout_forward(x, float(p), _DROPOUT_KEY, stream)
    return out, (dropout_param, mask)


def dropout_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Inverted dropout backward pass: ``dout * mask / p`` in training, ``dout`` in test mode.

    ``dout`` has the forward input's shape and dtype; ``cache`` is the forward's.
    """
    dropout_param, mask = cache
    if dropout_param["mode"] == "test" or mask is None:
        return dout
    return _core.dropout_backward(dout, mask, float(dropout_param["p"]))


# ---------------------------------------------------------------------------------------------
# Losses and regularisation
# ---------------------------------------------------------------------------------------------


def softmax_loss(x: np.ndarray, y: np.ndarray, label_smoothing: float = 0.0) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy loss, averaged over the batch.

    Parameters
    ----------
    x : ndarray, shape (N, C)
        Class scores.
    y : ndarray of int, shape (N,)
        Labels in ``[0, C)``; any other label is a ``ValueError`` naming the row.
    label_smoothing : float, optional
        ``eps`` in [0, 1): the target is ``1 - eps`` on the true class and ``eps / (C - 1)`` on
        each other class (fastnn extension; 0 is CS231n's loss).

    Returns
    -------
    loss : float
    dx : ndarray, shape (N, C)
    """
    loss, dx = _core.softmax_cross_entropy(x, y, label_smoothing)
    return loss, dx


def svm_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Multiclass SVM (Weston-Watkins, margin 1) loss averaged over the batch.

    Parameters
    ----------
    x : ndarray, shape (N, C)
        Class scores.
    y : ndarray of int, shape (N,)
        Labels in ``[0, C)``.

    Returns
    -------
    loss : float
        ``mean_i sum_{j != y_i} max(0, x_ij - x_iy_i + 1)``.
    dx : ndarray, shape (N, C)
    """
    loss, dx = _core.svm_loss(x, y, 1.0)
    return loss, dx


def mse_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements (PyTorch's ``MSELoss``, not CS231n's ``0.5 * sum / N``).

    Parameters
    ----------
    x : ndarray
        Predictions, any shape.
    y : ndarray
        Targets, the shape and dtype of ``x``.

    Returns
    -------
    loss : float
        ``mean((x - y)**2)``.
    dx : ndarray
        ``2 * (x - y) / x.size``.
    """
    loss, dx = _core.mse_loss(x, y)
    return loss, dx


def l2_regularization(w: np.ndarray, reg: float) -> tuple[float, np.ndarray]:
    """L2 penalty ``0.5 * reg * sum(w**2)`` and its gradient ``reg * w`` (same shape and dtype as
    ``w``): ``(loss, dw)``."""
    dw = np.zeros_like(np.asarray(w))
    loss = _core.l2_penalty(w, reg, grad=dw)
    return loss, dw


def l1_regularization(w: np.ndarray, reg: float) -> tuple[float, np.ndarray]:
    """L1 penalty ``reg * sum(|w|)`` and its gradient ``reg * sign(w)`` (same shape and dtype as
    ``w``): ``(loss, dw)``."""
    dw = np.zeros_like(np.asarray(w))
    loss = _core.l1_penalty(w, reg, grad=dw)
    return loss, dw


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax probabilities of scores ``x`` (N, C), numerically stable; (N, C), the
    dtype of ``x``."""
    return _core.softmax(x)


# ---------------------------------------------------------------------------------------------
# Update rules: update(w, dw, config=None) -> (next_w, config)
# ---------------------------------------------------------------------------------------------


def _weights(w: np.ndarray, fn: str) -> np.ndarray:
    """``w`` itself when it can be updated in place, else a float copy (returned as next_w)."""
    if not isinstance(w, np.ndarray):
        w = np.asarray(w)
    _dtype_of(w, fn, "w")
    if w.flags.c_contiguous and w.flags.writeable and w.dtype.isnative:
        return w
    return np.array(w, order="C")


def _config(config: MutableMapping[str, Any] | None, fn: str) -> MutableMapping[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, MutableMapping):
        raise TypeError(f"{fn}: config must be a dict or None, got {type(config).__name__}")
    return config


def sgd(w: np.ndarray, dw: np.ndarray, config: MutableMapping[str, Any] | None = None):
    """Vanilla SGD: ``w -= learning_rate * dw``.

    The update rules share one contract: ``w`` and ``dw`` are float arrays of one shape and dtype;
    ``config`` (a dict or None) is filled with defaults and holds the state; the result is
    ``(next_w, config)`` where ``next_w`` is ``w`` itself, updated in place, when ``w`` is a
    writable C-contiguous array (else an updated copy). A shape or dtype mismatch is a
    ``ValueError`` / ``TypeError`` naming the argument, a negative learning rate a ``ValueError``.

    config: ``learning_rate`` (default 1e-2).
    """
    config = _config(config, "sgd")
    config.setdefault("learning_rate", 1e-2)
    w = _weights(w, "sgd")
    _core.optimizer_step("sgd", w, [], dw, learning_rate=config["learning_rate"])
    return w, config


def sgd_momentum(w: np.ndarray, dw: np.ndarray, config: MutableMapping[str, Any] | None = None):
    """SGD with momentum: ``v = momentum * v - learning_rate * dw; w += v``.

    config: ``learning_rate`` (1e-2), ``momentum`` (0.9), ``velocity`` (zeros like w).
    """
    fn = "sgd_momentum"
    config = _config(config, fn)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    w = _weights(w, fn)
    v = _state_array(config, "velocity", w, w.shape, fn)
    _core.optimizer_step("momentum", w, [v], dw, learning_rate=config["learning_rate"],
                         momentum=config["momentum"])
    return w, config


def nesterov_momentum(w: np.ndarray, dw: np.ndarray, config: MutableMapping[str, Any] | None = None):
    """Nesterov momentum in the CS231n form.

    ``v_prev = v; v = momentum * v - learning_rate * dw; w += -momentum * v_prev + (1 + momentum) * v``.
    config: ``learning_rate`` (1e-2), ``momentum`` (0.9), ``velocity`` (zeros like w).
    """
    fn = "nesterov_momentum"
    config = _config(config, fn)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    w = _weights(w, fn)
    v = _state_array(config, "velocity", w, w.shape, fn)
    _core.optimizer_step("nesterov", w, [v], dw, learning_rate=config["learning_rate"],
                         momentum=config["momentum"])
    return w, config


def adagrad(w: np.ndarray, dw: np.ndarray, config: MutableMapping[str, Any] | None = None):
    """Adagrad: ``cache += dw**2; w -= learning_rate * dw / (sqrt(cache) + epsilon)``.

    config: ``learning_rate`` (1e-2), ``epsilon`` (1e-8), ``cache`` (zeros like w).
    """
    fn = "adagrad"
    config = _config(config, fn)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("epsilon", 1e-8)
    w = _weights(w, fn)
    cache = _state_array(config, "cache", w, w.shape, fn)
    _core.optimizer_step("adagrad", w, [cache], dw, learning_rate=config["learning_rate"],
                         epsilon=config["epsilon"])
    return w, config


def rmsprop(w: np.ndarray, dw: np.ndarray, config: MutableMapping[str, Any] | None = None):
    """RMSProp: ``cache = decay_rate * cache + (1 - decay_rate) * dw**2;
    w -= learning_rate * dw / (sqrt(cache) + epsilon)``.

    config: ``learning_rate`` (1e-2), ``decay_rate`` (0.99), ``epsilon`` (1e-8), ``cache``.
    """
    fn = "rmsprop"
    config = _config(config, fn)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    w = _weights(w, fn)
    cache = _state_array(config, "cache", w, w.shape, fn)
    _core.optimizer_step("rmsprop", w, [cache], dw, learning_rate=config["learning_rate"],
                         decay_rate=config["decay_rate"], epsilon=config["epsilon"])
    return w, config


def adam(w: np.ndarray, dw: np.ndarray, config: MutableMapping[str, Any] | None = None):
    """Adam with bias correction (CS231n form: ``t`` is incremented before use).

    ``w`` is updated with its gradient ``dw`` as in :func:`sgd`'s contract.
    config: ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999), ``epsilon`` (1e-8),
    ``m``, ``v`` (zeros like w), ``t`` (0).
    """
    return _adam("adam", w, dw, config, decoupled=False)


def adamw(w: np.ndarray, dw: np.ndarray, config: MutableMapping[str, Any] | None = None):
    """AdamW: Adam with decoupled weight decay ``w *= 1 - learning_rate * weight_decay`` first.

    ``w`` is updated with its gradient ``dw`` as in :func:`sgd`'s contract.
    config: as :func:`adam`, plus ``weight_decay`` (1e-2).
    """
    return _adam("adamw", w, dw, config, decoupled=True)


def _adam(fn: str, w, dw, config, decoupled: bool):
    config = _config(config, fn)
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("t", 0)
    if decoupled:
        config.setdefault("weight_decay", 1e-2)
    w = _weights(w, fn)
    m = _state_array(config, "m", w, w.shape, fn)
    v = _state_array(config, "v", w, w.shape, fn)
    t = int(config["t"]) + 1
    extra = {"weight_decay": config["weight_decay"]} if decoupled else {}
    _core.optimizer_step("adamw" if decoupled else "adam", w, [m, v], dw,
                         learning_rate=config["learning_rate"], beta1=config["beta1"],
                         beta2=config["beta2"], epsilon=config["epsilon"], t=t, **extra)
    config["t"] = t
    return w, config
