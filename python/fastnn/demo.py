"""A short training run on scikit-learn's bundled digits data with the CS231n functional API.

The network is affine -> batch norm -> ReLU -> dropout -> affine -> softmax, trained with Adam on
mini-batches; the features are standardised with statistics of the training split only. Every
layer call is a fastnn.functional call, exactly as CS231n-style NumPy code would write it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import fastnn
import fastnn.functional as F


@dataclass
class DemoResult:
    """What :func:`train_digits` reports."""

    train_loss: list[float]
    val_acc: list[float]
    test_acc: float
    seconds: float


def load_digits_splits(seed: int = 0, dtype=np.float32):
    """Digits (1797 x 64) split 60/20/20 per class, standardised with training statistics."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits demo needs scikit-learn's bundled data: pip install 'fastnn[data]'"
        ) from exc
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(y):  # stratified split
        idx = rng.permutation(np.flatnonzero(y == c))
        n_tr, n_va = int(0.6 * len(idx)), int(0.2 * len(idx))
        parts["train"].append(idx[:n_tr])
        parts["val"].append(idx[n_tr:n_tr + n_va])
        parts["test"].append(idx[n_tr + n_va:])
    split = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}
    mean = X[split["train"]].mean(axis=0)
    std = X[split["train"]].std(axis=0) + 1e-3  # constant pixels stay finite
    out = {}
    for k, idx in split.items():
        out[k] = (((X[idx] - mean) / std).astype(dtype), y[idx].astype(np.int64))
    return out


def _forward(p, x, bn_param, dropout_param):
    a, c1 = F.affine_forward(x, p["W1"], p["b1"])
    a, c2 = F.batchnorm_forward(a, p["gamma"], p["beta"], bn_param)
    a, c3 = F.relu_forward(a)
    a, c4 = F.dropout_forward(a, dropout_param)
    scores, c5 = F.affine_forward(a, p["W2"], p["b2"])
    return scores, (c1, c2, c3, c4, c5)


def _accuracy(p, X, y, bn_param, dropout_param) -> float:
    bn_param["mode"] = dropout_param["mode"] = "test"
    scores, _ = _forward(p, X, bn_param, dropout_param)
    bn_param["mode"] = dropout_param["mode"] = "train"
    return float(np.mean(scores.argmax(axis=1) == y))


def train_digits(
    epochs: int = 30,
    hidden: int = 128,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    reg: float = 1e-4,
    keep_prob: float = 0.8,
    seed: int = 0,
    verbose: bool = True,
) -> DemoResult:
    """Train the demo network and return its learning curve and test accuracy."""
    data = load_digits_splits(seed)
    Xtr, ytr = data["train"]
    D, C = Xtr.shape[1], 10
    rng = np.random.default_rng(seed)
    f = np.float32
    p = {
        "W1": (rng.standard_normal((D, hidden)) * np.sqrt(2.0 / D)).astype(f),
        "b1": np.zeros(hidden, f),
        "gamma": np.ones(hidden, f),
        "beta": np.zeros(hidden, f),
        "W2": (rng.standard_normal((hidden, C)) * np.sqrt(1.0 / hidden)).astype(f),
        "b2": np.zeros(C, f),
    }
    configs = {k: {"learning_rate": learning_rate} for k in p}
    bn_param: dict = {"mode": "train"}
    dropout_param: dict = {"mode": "train", "p": keep_prob}
    train_loss, val_acc = [], []
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(Xtr))  # shuffle indices, not data
        losses = []
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            scores, (c1, c2, c3, c4, c5) = _forward(p, Xtr[idx], bn_param, dropout_param)
            loss, dscores = F.softmax_loss(scores, ytr[idx])
            rl, dW1_reg = F.l2_regularization(p["W1"], reg)
            rl2, dW2_reg = F.l2_regularization(p["W2"], reg)
            losses.append(loss + rl + rl2)
            grads = {}
            da, grads["W2"], grads["b2"] = F.affine_backward(dscores, c5)
            da = F.dropout_backward(da, c4)
            da = F.relu_backward(da, c3)
            da, grads["gamma"], grads["beta"] = F.batchnorm_backward(da, c2)
            _, grads["W1"], grads["b1"] = F.affine_backward(da, c1)
            grads["W1"] += dW1_reg
            grads["W2"] += dW2_reg
            for k in p:
                p[k], configs[k] = F.adam(p[k], grads[k], configs[k])
        train_loss.append(float(np.mean(losses)))
        val_acc.append(_accuracy(p, *data["val"], bn_param, dropout_param))
        if verbose:
            print(f"epoch {epoch:3d}  loss {train_loss[-1]:.4f}  val acc {val_acc[-1]:.4f}", flush=True)
    seconds = time.perf_counter() - t0
    test_acc = _accuracy(p, *data["test"], bn_param, dropout_param)
    if verbose:
        print(f"test accuracy {test_acc:.4f}  ({seconds:.2f} s, {fastnn.get_num_threads()} threads)")
    return DemoResult(train_loss, val_acc, test_acc, seconds)
