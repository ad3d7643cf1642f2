"""The kernel registry: one entry per forward/backward pair, driving the generic kernel tests.

An entry describes how to make inputs, how to call the kernel (the same call works on
``fastnn._core`` and on its scalar references ``fastnn._core.ref``), a NumPy reference for the
forward and the backward, which inputs get gradients, and where the function has kinks.
Adding a kernel = adding one entry; ``test_kernels.py`` then checks it for reference parity in
float32 and float64, float64 finite-difference gradients, 1-thread vs N-thread bitwise equality,
guard values around outputs and bad-input rejection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Arrays = dict[str, Any]


@dataclass
class Op:
    """One kernel family member (a forward/backward pair)."""

    name: str
    # make(rng, shape, dtype) -> inputs (arrays and scalars); kink-free for gradient checks
    make: Callable[[np.random.Generator, tuple, Any], Arrays]
    # forward(mod, inputs) -> primary output array (or loss float); mod is _core or _core.ref
    forward: Callable[[Any, Arrays], Any]
    # backward(mod, inputs, dout) -> {input name: gradient}
    backward: Callable[[Any, Arrays, Any], dict[str, np.ndarray]]
    # NumPy references
    np_forward: Callable[[Arrays], Any]
    np_backward: Callable[[Arrays, Any], dict[str, np.ndarray]]
    diff_args: tuple[str, ...]
    shapes: tuple[tuple, ...] = ((1, 1), (1, 7), (3, 5), (17, 33), (64, 257), (300, 600))
    grad_shapes: tuple[tuple, ...] = ((3, 4), (5, 7))
    is_loss: bool = False  # forward returns a scalar loss; backward gets dout = 1
    # tolerances (relative to the largest magnitude of the reference) for float32 / float64
    rtol32: float = 2e-6
    rtol64: float = 1e-12
    # call with an output buffer: forward_out(mod, inputs, out) -> None, or None if no `out`
    forward_out: Callable[[Any, Arrays, np.ndarray], Any] | None = None
    # the name of the input that sets the dtype (for bad-input tests)
    first: str = "x"
    extra_bad: tuple = field(default_factory=tuple)  # (description, callable(mod, inputs), exc)


def _away_from(x: np.ndarray, points=(0.0,), gap: float = 1e-3) -> np.ndarray:
    """Push values within `gap` of a kink point away from it (finite differences stay on one side)."""
    x = np.array(x)
    for p in points:
        near = np.abs(x - p) < gap
        x[near] = p + np.where(x[near] >= p, gap, -gap) * 2
    return x


def _randn(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _expit(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _f64(d: Arrays) -> Arrays:
    return {k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
            for k, v in d.items()}


# --------------------------------------------------------------------------------------------
# Philox4x32-10 in NumPy: an independent reference for the dropout masks.
# --------------------------------------------------------------------------------------------
def philox_np(n: int, seed: int, stream: int, first: int = 0) -> np.ndarray:
    """32-bit Philox4x32-10 outputs for elements first..first+n-1 (fastnn's counter layout)."""
    idx = np.arange(first, first + n, dtype=np.uint64)
    blk = idx >> np.uint64(2)
    M = np.uint64(0xFFFFFFFF)
    c0 = blk & M
    c1 = blk >> np.uint64(32)
    c2 = np.full_like(blk, np.uint64(stream & 0xFFFFFFFF))
    c3 = np.full_like(blk, np.uint64((stream >> 32) & 0xFFFFFFFF))
    k0 = np.uint64(seed & 0xFFFFFFFF)
    k1 = np.uint64((seed >> 32) & 0xFFFFFFFF)
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    w0, w1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
    for _ in range(10):
        p0 = m0 * c0
        p1 = m1 * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ k0
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ k1
        c0, c1, c2, c3 = n0 & M, p1 & M, n2 & M, p0 & M
        k0 = (k0 + w0) & M
        k1 = (k1 + w1) & M
    lanes = np.stack([c0, c1, c2, c3], axis=1)
    return lanes[np.arange(n), (idx & np.uint64(3)).astype(np.int64)].astype(np.uint32)


def keep_mask_np(n: int, p: float, seed: int, stream: int) -> np.ndarray:
    thr = 1 << 32 if p >= 1 else int(round(p * 4294967296.0))
    if thr >= 1 << 32:
        return np.ones(n, bool)
    return philox_np(n, seed, stream).astype(np.uint64) < np.uint64(thr)


# --------------------------------------------------------------------------------------------
# Elementwise activations
# --------------------------------------------------------------------------------------------
def _unary(name, np_f, np_df_from, saved="x", kinks=(0.0,), rtol32=2e-6, scale=1.0, extra=None):
    """Entry for an elementwise op whose backward takes `saved` ('x' or 'out')."""
    extra = extra or {}

    def make(rng, shape, dtype):
        return {"x": _away_from(_randn(rng, shape, np.float64, scale), kinks).astype(dtype), **extra}

    def params(d):
        return [d[k] for k in extra]

    def forward(mod, d):
        return getattr(mod, f"{name}_forward")(d["x"], *params(d))

    def forward_out(mod, d, out):
        getattr(mod, f"{name}_forward")(d["x"], *params(d), out=out)

    def backward(mod, d, dout):
        s = d["x"] if saved == "x" else forward(mod, d)
        return {"x": getattr(mod, f"{name}_backward")(dout, s, *params(d))}

    def np_forward(d):
        return np_f(d["x"], *params(d))

    def np_backward(d, dout):
        return {"x": dout * np_df_from(d["x"], np_f(d["x"], *params(d)), *params(d))}

    return Op(name, make, forward, backward, np_forward, np_backward, ("x",), rtol32=rtol32,
              forward_out=forward_out)


OPS: list[Op] = [
    _unary("relu", lambda x: np.where(x < 0, 0, x), lambda x, y: (x > 0).astype(x.dtype)),
    _unary("leaky_relu", lambda x, s: np.where(x > 0, x, s * x),
           lambda x, y, s: np.where(x > 0, 1.0, s).astype(x.dtype), extra={"slope": 0.1}),
    _unary("elu", lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
           lambda x, y, a: np.where(x > 0, 1.0, y + a), saved="out", extra={"alpha": 0.7},
           scale=3.0),
    _unary("tanh", np.tanh, lambda x, y: 1 - y * y, saved="out", kinks=(), scale=3.0),
    _unary("sigmoid", _expit, lambda x, y: y * (1 - y), saved="out", kinks=(), scale=4.0),
]


# PReLU: per-feature or shared slope.
def _prelu(shared: bool) -> Op:
    def make(rng, shape, dtype):
        D = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = rng.uniform(0.05, 0.4, size=1 if shared else D).astype(dtype)
        return {"x": _away_from(_randn(rng, shape, np.float64)).astype(dtype), "a": a}

    def np_forward(d):
        x = d["x"].reshape(d["x"].shape[0], -1)
        return np.where(x > 0, x, d["a"] * x).reshape(d["x"].shape)

    def np_backward(d, dout):
        x = d["x"].reshape(d["x"].shape[0], -1)
        g = dout.reshape(x.shape)
        dx = np.where(x > 0, g, d["a"] * g).reshape(d["x"].shape)
        contrib = np.where(x > 0, 0, g * x)
        da = contrib.sum() * np.ones(1) if shared else contrib.sum(axis=0)
        return {"x": dx, "a": da}

    def backward(mod, d, dout):
        dx, da = mod.prelu_backward(dout, d["x"], d["a"])
        return {"x": dx, "a": da}

    return Op("prelu_shared" if shared else "prelu", make,
              lambda mod, d: mod.prelu_forward(d["x"], d["a"]), backward, np_forward, np_backward,
              ("x", "a"), forward_out=lambda mod, d, out: mod.prelu_forward(d["x"], d["a"], out=out),
              rtol32=1e-5)


OPS += [_prelu(False), _prelu(True)]


def _maxout(k: int) -> Op:
    def make(rng, shape, dtype):
        N, D = shape[0], max(1, shape[1] // k) if len(shape) > 1 else 1
        # distinct values with gaps > 1e-3 inside every group, so finite differences keep winners
        base = rng.standard_normal((N, D, 1))
        offs = rng.permutation(k)[None, None, :] * 0.01 + 0.001 * rng.random((N, D, k))
        return {"x": (base + offs * rng.choice([-1, 1], size=(N, D, 1))).reshape(N, D * k).astype(dtype),
                "k": k}

    def np_forward(d):
        N = d["x"].shape[0]
        return d["x"].reshape(N, -1, k).max(axis=2)

    def np_backward(d, dout):
        N = d["x"].shape[0]
        g = d["x"].reshape(N, -1, k)
        am = g.argmax(axis=2)
        dx = np.zeros_like(g)
        np.put_along_axis(dx, am[..., None], dout[..., None], axis=2)
        return {"x": dx.reshape(d["x"].shape)}

    def backward(mod, d, dout):
        _, am = mod.maxout_forward(d["x"], k)
        return {"x": mod.maxout_backward(dout, am, k)}

    return Op(f"maxout{k}", make, lambda mod, d: mod.maxout_forward(d["x"], k)[0], backward,
              np_forward, np_backward, ("x",),
              forward_out=lambda mod, d, out: mod.maxout_forward(d["x"], k, out=out),
              shapes=((1, 3), (3, 6), (17, 33), (64, 258), (300, 600)), grad_shapes=((3, 6), (4, 9)),
              rtol32=0, rtol64=0)


OPS += [_maxout(3)]


# --------------------------------------------------------------------------------------------
# Dense
# --------------------------------------------------------------------------------------------
def _dense(extra_dims: bool) -> Op:
    def make(rng, shape, dtype):
        N, D = shape
        M = max(1, (D * 3) // 4 + 1)
        xs = (N, D) if not extra_dims else (N, 1, D)
        return {"x": _randn(rng, xs, dtype), "w": _randn(rng, (D, M), dtype, 0.3),
                "b": _randn(rng, (M,), dtype)}

    def np_forward(d):
        x = d["x"].reshape(d["x"].shape[0], -1)
        return x @ d["w"] + d["b"]

    def np_backward(d, dout):
        x = d["x"].reshape(d["x"].shape[0], -1)
        return {"x": (dout @ d["w"].T).reshape(d["x"].shape), "w": x.T @ dout, "b": dout.sum(0)}

    def backward(mod, d, dout):
        dx, dw, db = mod.dense_backward(dout, d["x"], d["w"])
        return {"x": dx, "w": dw, "b": db}

    return Op("dense_nd" if extra_dims else "dense", make,
              lambda mod, d: mod.dense_forward(d["x"], d["w"], d["b"]), backward, np_forward,
              np_backward, ("x", "w", "b"),
              forward_out=lambda mod, d, out: mod.dense_forward(d["x"], d["w"], d["b"], out=out),
              shapes=((1, 1), (1, 7), (3, 5), (17, 33), (64, 257), (200, 600)), rtol32=2e-5,
              rtol64=1e-12)


OPS += [_dense(False), _dense(True)]


# --------------------------------------------------------------------------------------------
# Batch norm (training forward); evaluation forward is checked in test_batchnorm.py
# --------------------------------------------------------------------------------------------
def _bn_make(rng, shape, dtype):
    N, D = shape
    N = max(N, 2)
    return {"x": (rng.standard_normal((N, D)) * rng.uniform(0.5, 3, D) + rng.uniform(-2, 2, D)).astype(dtype),
            "gamma": rng.uniform(0.5, 1.5, D).astype(dtype), "beta": _randn(rng, (D,), dtype)}


def _bn_np_forward(d):
    x = d["x"]
    mu = x.mean(0)
    var = x.var(0)
    return d["gamma"] * (x - mu) / np.sqrt(var + 1e-5) + d["beta"]


def _bn_np_backward(d, dout):
    x, g = d["x"], d["gamma"]
    N = x.shape[0]
    mu = x.mean(0)
    inv = 1 / np.sqrt(x.var(0) + 1e-5)
    xhat = (x - mu) * inv
    db = dout.sum(0)
    dg = (dout * xhat).sum(0)
    dx = g * inv / N * (N * dout - db - xhat * dg)
    return {"x": dx, "gamma": dg, "beta": db}


def _bn_backward(mod, d, dout):
    _, mean, invstd = mod.batchnorm_forward_train(d["x"], d["gamma"], d["beta"])
    dx, dg, db = mod.batchnorm_backward(dout, d["x"], d["gamma"], mean, invstd)
    return {"x": dx, "gamma": dg, "beta": db}


OPS.append(Op("batchnorm", _bn_make,
              lambda mod, d: mod.batchnorm_forward_train(d["x"], d["gamma"], d["beta"])[0],
              _bn_backward, _bn_np_forward, _bn_np_backward, ("x", "gamma", "beta"),
              forward_out=lambda mod, d, out: mod.batchnorm_forward_train(
                  d["x"], d["gamma"], d["beta"], out=out),
              shapes=((2, 1), (2, 7), (3, 5), (17, 33), (64, 257), (300, 600)), rtol32=2e-5,
              rtol64=1e-10))


# Batch norm in evaluation mode (running statistics)
def _bne_make(rng, shape, dtype):
    d = _bn_make(rng, shape, dtype)
    D = d["x"].shape[1]
    d["running_mean"] = rng.uniform(-1, 1, D).astype(dtype)
    d["running_var"] = rng.uniform(0.5, 3, D).astype(dtype)
    return d


def _bne_np_forward(d):
    return d["gamma"] * (d["x"] - d["running_mean"]) / np.sqrt(d["running_var"] + 1e-5) + d["beta"]


def _bne_np_backward(d, dout):
    inv = 1 / np.sqrt(d["running_var"] + 1e-5)
    return {"x": dout * d["gamma"] * inv, "gamma": (dout * (d["x"] - d["running_mean"]) * inv).sum(0),
            "beta": dout.sum(0)}


def _bne_backward(mod, d, dout):
    dx, dg, db = mod.batchnorm_backward_eval(dout, d["x"], d["gamma"], d["running_mean"], d["running_var"])
    return {"x": dx, "gamma": dg, "beta": db}


OPS.append(Op("batchnorm_eval", _bne_make,
              lambda mod, d: mod.batchnorm_forward_eval(d["x"], d["gamma"], d["beta"], d["running_mean"],
                                                        d["running_var"]),
              _bne_backward, _bne_np_forward, _bne_np_backward, ("x", "gamma", "beta"),
              forward_out=lambda mod, d, out: mod.batchnorm_forward_eval(
                  d["x"], d["gamma"], d["beta"], d["running_mean"], d["running_var"], out=out),
              shapes=((1, 1), (2, 7), (3, 5), (17, 33), (64, 257), (300, 600)), rtol32=2e-5, rtol64=1e-12))


# --------------------------------------------------------------------------------------------
# Dropout (forward with a fixed seed/stream; backward from its mask)
# --------------------------------------------------------------------------------------------
_DROP = {"p": 0.6, "seed": 1234567, "stream": 42}


def _drop_make(rng, shape, dtype):
    return {"x": _randn(rng, shape, dtype), **_DROP}


def _drop_np_forward(d):
    keep = keep_mask_np(d["x"].size, d["p"], d["seed"], d["stream"]).reshape(d["x"].shape)
    return np.where(keep, d["x"] * (1.0 / d["p"]), 0)


def _drop_np_backward(d, dout):
    keep = keep_mask_np(d["x"].size, d["p"], d["seed"], d["stream"]).reshape(d["x"].shape)
    return {"x": np.where(keep, dout * (1.0 / d["p"]), 0)}


def _drop_backward(mod, d, dout):
    _, mask = mod.dropout_forward(d["x"], d["p"], d["seed"], d["stream"])
    return {"x": mod.dropout_backward(dout, mask, d["p"])}


OPS.append(Op("dropout", _drop_make,
              lambda mod, d: mod.dropout_forward(d["x"], d["p"], d["seed"], d["stream"])[0],
              _drop_backward, _drop_np_forward, _drop_np_backward, ("x",),
              forward_out=lambda mod, d, out: mod.dropout_forward(
                  d["x"], d["p"], d["seed"], d["stream"], out=out),
              rtol32=1e-7))


# --------------------------------------------------------------------------------------------
# Losses (forward returns the loss; backward the gradient of the scores)
# --------------------------------------------------------------------------------------------
def _labels(rng, N, C):
    return rng.integers(0, C, size=N)


def _xent(eps: float) -> Op:
    def make(rng, shape, dtype):
        N, C = shape
        C = max(C, 2)
        return {"x": _randn(rng, (N, C), dtype, 2.0), "y": _labels(rng, N, C), "eps": eps}

    def np_forward(d):
        x, y = d["x"], d["y"]
        N, C = x.shape
        z = x - x.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        t = np.full((N, C), d["eps"] / (C - 1))
        t[np.arange(N), y] = 1 - d["eps"]
        return -(t * logp).sum() / N

    def np_backward(d, dout):
        x, y = d["x"], d["y"]
        N, C = x.shape
        z = x - x.max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        t = np.full((N, C), d["eps"] / (C - 1))
        t[np.arange(N), y] = 1 - d["eps"]
        return {"x": dout * (p - t) / N}

    return Op(f"softmax_xent_ls{eps}", make,
              lambda mod, d: mod.softmax_cross_entropy(d["x"], d["y"], d["eps"], need_grad=False)[0],
              lambda mod, d, dout: {"x": dout * mod.softmax_cross_entropy(d["x"], d["y"], d["eps"])[1]},
              np_forward, np_backward, ("x",), is_loss=True, rtol32=2e-6,
              shapes=((1, 2), (3, 5), (17, 33), (64, 10), (300, 600)))


def _xent_soft(eps: float) -> Op:
    """Softmax cross-entropy against soft targets (one distribution per row, as in distillation)."""

    def make(rng, shape, dtype):
        N, C = shape
        C = max(C, 2)
        t = rng.random((N, C)) ** 3  # peaked and flat rows, a few near-zero entries
        t /= t.sum(1, keepdims=True)
        return {"x": _randn(rng, (N, C), dtype, 2.0), "target": t.astype(dtype), "eps": eps}

    def smoothed(d):
        t, C = d["target"], d["target"].shape[1]
        return (1 - d["eps"]) * t + d["eps"] / (C - 1) * (1 - t)

    def np_forward(d):
        z = d["x"] - d["x"].max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -(smoothed(d) * logp).sum() / d["x"].shape[0]

    def np_backward(d, dout):
        z = d["x"] - d["x"].max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        t = smoothed(d)
        return {"x": dout * (t.sum(1, keepdims=True) * p - t) / d["x"].shape[0]}

    return Op(f"softmax_xent_soft_ls{eps}", make,
              lambda mod, d: mod.softmax_cross_entropy_soft(d["x"], d["target"], d["eps"], need_grad=False)[0],
              lambda mod, d, dout: {"x": dout * mod.softmax_cross_entropy_soft(d["x"], d["target"], d["eps"])[1]},
              np_forward, np_backward, ("x",), is_loss=True, rtol32=2e-6,
              shapes=((1, 2), (3, 5), (17, 33), (64, 10), (300, 600)))


def _svm_make(rng, shape, dtype):
    N, C = shape
    C = max(C, 2)
    x = rng.standard_normal((N, C))
    y = _labels(rng, N, C)
    # keep every margin s_j - s_y + 1 away from 0 (the hinge's kink)
    marg = x - x[np.arange(N), y][:, None] + 1
    x = x + np.where(np.abs(marg) < 1e-3, 3e-3, 0)
    return {"x": x.astype(dtype), "y": y}


def _svm_np_forward(d):
    x, y = d["x"], d["y"]
    N = x.shape[0]
    m = np.maximum(0, x - x[np.arange(N), y][:, None] + 1)
    m[np.arange(N), y] = 0
    return m.sum() / N


def _svm_np_backward(d, dout):
    x, y = d["x"], d["y"]
    N = x.shape[0]
    m = x - x[np.arange(N), y][:, None] + 1
    g = (m > 0).astype(np.float64)
    g[np.arange(N), y] = 0
    g[np.arange(N), y] = -g.sum(1)
    return {"x": dout * g / N}


def _mse_make(rng, shape, dtype):
    return {"x": _randn(rng, shape, dtype), "target": _randn(rng, shape, dtype)}


OPS += [
    _xent(0.0),
    _xent(0.1),
    _xent_soft(0.0),
    _xent_soft(0.1),
    Op("svm", _svm_make, lambda mod, d: mod.svm_loss(d["x"], d["y"], need_grad=False)[0],
       lambda mod, d, dout: {"x": dout * mod.svm_loss(d["x"], d["y"])[1]},
       _svm_np_forward, _svm_np_backward, ("x",), is_loss=True, rtol32=2e-6,
       shapes=((1, 2), (3, 5), (17, 33), (64, 10), (300, 600))),
    Op("mse", _mse_make, lambda mod, d: mod.mse_loss(d["x"], d["target"], need_grad=False)[0],
       lambda mod, d, dout: {"x": dout * mod.mse_loss(d["x"], d["target"])[1]},
       lambda d: ((d["x"] - d["target"]) ** 2).mean(),
       lambda d, dout: {"x": dout * 2 * (d["x"] - d["target"]) / d["x"].size}, ("x",), is_loss=True),
]


# --------------------------------------------------------------------------------------------
# Regularisation (loss + gradient of the weights)
# --------------------------------------------------------------------------------------------
def _penalty(kind: str) -> Op:
    lam = 0.3

    def make(rng, shape, dtype):
        return {"x": _away_from(_randn(rng, shape, np.float64)).astype(dtype)}

    def backward(mod, d, dout):
        g = np.zeros(np.shape(d["x"]), d["x"].dtype)  # (zeros_like would copy a strided x's layout)
        getattr(mod, f"{kind}_penalty")(d["x"], lam, grad=g)
        return {"x": dout * g}

    if kind == "l2":
        np_f = lambda d: 0.5 * lam * (d["x"] ** 2).sum()  # noqa: E731
        np_b = lambda d, dout: {"x": dout * lam * d["x"]}  # noqa: E731
    else:
        np_f = lambda d: lam * np.abs(d["x"]).sum()  # noqa: E731
        np_b = lambda d, dout: {"x": dout * lam * np.sign(d["x"])}  # noqa: E731
    return Op(f"{kind}_penalty", make, lambda mod, d: getattr(mod, f"{kind}_penalty")(d["x"], lam),
              backward, np_f, np_b, ("x",), is_loss=True, rtol32=1e-6)


OPS += [_penalty("l2"), _penalty("l1")]

OPS_BY_NAME = {op.name: op for op in OPS}

