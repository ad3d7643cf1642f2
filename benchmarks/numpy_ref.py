"""A careful CS231n-style NumPy reference: hand-written forward/backward passes, in place where
natural, float32 throughout. It is the peer fastnn's functional API is measured against (F1), so it
is written the way a good student would write it, not as a straw man."""

from __future__ import annotations

import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w
    out += b
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x2.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    return np.where(x > 0, dout, 0).astype(dout.dtype, copy=False)


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    D = x.shape[1]
    rm = bn_param.setdefault("running_mean", np.zeros(D, x.dtype))
    rv = bn_param.setdefault("running_var", np.zeros(D, x.dtype))
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.mean(xc * xc, axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = xc
    xhat *= inv
    out = xhat * gamma
    out += beta
    rm *= momentum
    rm += (1 - momentum) * mu
    rv *= momentum
    rv += (1 - momentum) * var
    return out, (xhat, gamma, inv)


def batchnorm_backward(dout, cache):
    xhat, gamma, inv = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dx = dout * N
    dx -= dbeta
    dx -= xhat * dgamma
    dx *= gamma * inv / N
    return dx, dgamma, dbeta


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]
    rng = dropout_param.setdefault("rng", np.random.default_rng(0))
    mask = rng.random(x.shape, dtype=np.float32) < p
    out = x * mask
    out *= 1.0 / p
    return out, (mask, p)


def dropout_backward(dout, cache):
    mask, p = cache
    dx = dout * mask
    dx *= 1.0 / p
    return dx


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    N = x.shape[0]
    loss = -np.sum(shifted[np.arange(N), y] - np.log(s[:, 0])) / N
    dx = e / s
    dx[np.arange(N), y] -= 1
    dx /= N
    return float(loss), dx


def adam(w, dw, config):
    lr = config.setdefault("learning_rate", 1e-3)
    b1 = config.setdefault("beta1", 0.9)
    b2 = config.setdefault("beta2", 0.999)
    eps = config.setdefault("epsilon", 1e-8)
    m = config.setdefault("m", np.zeros_like(w))
    v = config.setdefault("v", np.zeros_like(w))
    config["t"] = t = config.get("t", 0) + 1
    m *= b1
    m += (1 - b1) * dw
    v *= b2
    v += (1 - b2) * (dw * dw)
    step = lr / (1 - b1**t)
    denom = np.sqrt(v / (1 - b2**t))
    denom += eps
    w -= step * m / denom
    return w, config
