"""CS231n-style NumPy training code on fastnn's kernels: the only change is the import.

    python examples/functional_cs231n.py            # train on digits (a few seconds)
    python examples/functional_cs231n.py --small    # 2 epochs (the test suite runs this)

The network is the assignments' ``FullyConnectedNet`` with batch norm and dropout, written with
the ``X_forward(x, ...) -> (out, cache)`` / ``X_backward(dout, cache)`` layer functions, the
``bn_param`` / ``dropout_param`` dicts and the ``update(w, dw, config) -> (next_w, config)`` rules
exactly as the assignments write them. A CS231n-style numerical gradient check in float64 comes
first.
"""

from __future__ import annotations

import argparse

# [import]
import fastnn.functional as layers  # was: from cs231n import layers (same names, same signatures)
import numpy as np
from fastnn.functional import adam  # was: from cs231n.optim import adam

# [/import]


# [model]
class FullyConnectedNet:
    """affine - [batch norm] - relu - [dropout] per hidden layer, then affine - softmax."""

    def __init__(self, hidden_dims, input_dim, num_classes, dropout_keep=1.0, reg=0.0,
                 weight_scale=None, dtype=np.float32, seed=0):
        rng = np.random.default_rng(seed)
        dims = [input_dim, *hidden_dims, num_classes]
        self.num_layers, self.reg, self.dtype = len(dims) - 1, reg, dtype
        self.params = {}
        for i in range(self.num_layers):
            scale = weight_scale or np.sqrt(2.0 / dims[i])           # He initialisation
            self.params[f"W{i + 1}"] = (scale * rng.standard_normal((dims[i], dims[i + 1]))).astype(dtype)
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1], dtype)
            if i < self.num_layers - 1:
                self.params[f"gamma{i + 1}"] = np.ones(dims[i + 1], dtype)
                self.params[f"beta{i + 1}"] = np.zeros(dims[i + 1], dtype)
        self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        self.dropout_param = {"mode": "train", "p": dropout_keep, "seed": None}

    def loss(self, X, y=None):
        mode = "test" if y is None else "train"
        for bn in self.bn_params:
            bn["mode"] = mode
        self.dropout_param["mode"] = mode
        caches, h = [], X
        for i in range(1, self.num_layers):
            h, c1 = layers.affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            h, c2 = layers.batchnorm_forward(h, self.params[f"gamma{i}"], self.params[f"beta{i}"],
                                             self.bn_params[i - 1])
            h, c3 = layers.relu_forward(h)
            c4 = None
            if self.dropout_param["p"] < 1:
                h, c4 = layers.dropout_forward(h, self.dropout_param)
            caches.append((c1, c2, c3, c4))
        L = self.num_layers
        scores, cache_out = layers.affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        if y is None:
            return scores

        loss, dscores = layers.softmax_loss(scores, y)
        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = layers.affine_backward(dscores, cache_out)
        for i in range(L - 1, 0, -1):
            c1, c2, c3, c4 = caches[i - 1]
            if c4 is not None:
                dh = layers.dropout_backward(dh, c4)
            dh = layers.relu_backward(dh, c3)
            dh, grads[f"gamma{i}"], grads[f"beta{i}"] = layers.batchnorm_backward(dh, c2)
            dh, grads[f"W{i}"], grads[f"b{i}"] = layers.affine_backward(dh, c1)
        for i in range(1, L + 1):                                     # L2 on the weights
            W = self.params[f"W{i}"]
            loss += 0.5 * self.reg * float(np.sum(W * W))
            grads[f"W{i}"] += self.reg * W
        return loss, grads
# [/model]


# [gradcheck]
def eval_numerical_gradient(f, x, h=1e-5):
    """The assignments' centred-difference gradient of f at x (x is changed in place and restored)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = f(x)
        x[ix] = old - h
        fxmh = f(x)
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        it.iternext()
    return grad


def rel_error(x, y):
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def check_gradients() -> dict[str, float]:
    """float64 in -> float64 out: the checks run in double precision on the same kernels."""
    rng = np.random.default_rng(1)
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    net = FullyConnectedNet([H1, H2], D, C, reg=3.14, weight_scale=5e-2, dtype=np.float64, seed=1)
    loss, grads = net.loss(X, y)
    errors = {}
    for name in sorted(net.params):
        num = eval_numerical_gradient(lambda _: net.loss(X, y)[0], net.params[name])
        errors[name] = rel_error(num, grads[name])
        print(f"{name:>6} relative error: {errors[name]:.2e}")
    return errors
# [/gradcheck]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="2 epochs: a smoke test")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    epochs = 2 if args.small else args.epochs

    errors = check_gradients()
    # b1 and b2 feed a batch norm, which subtracts the batch mean: their true gradient is exactly 0
    # and both gradients are rounding noise, so the relative error means nothing there (the
    # assignments' notebook shows the same ~1e-3 for them).
    assert all(err < 1e-5 for name, err in errors.items() if name not in ("b1", "b2")), errors

    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    X, y = X[order].astype(np.float32), y[order]
    X_train, y_train, X_val, y_val = X[:1400], y[:1400], X[1400:], y[1400:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-6    # training statistics only
    X_train, X_val = (X_train - mean) / std, (X_val - mean) / std

    # [train]
    model = FullyConnectedNet([128, 64], 64, 10, dropout_keep=0.8, reg=1e-4)
    configs = {name: {"learning_rate": 2e-3} for name in model.params}
    for epoch in range(epochs):
        order = rng.permutation(len(X_train))
        for i in range(0, len(order), 64):
            batch = order[i:i + 64]
            loss, grads = model.loss(X_train[batch], y_train[batch])
            for name in model.params:
                model.params[name], configs[name] = adam(model.params[name], grads[name], configs[name])
        val_acc = np.mean(model.loss(X_val).argmax(axis=1) == y_val)
        print(f"epoch {epoch + 1:2d}  loss {loss:.4f}  val acc {val_acc:.3f}")
    # [/train]
    assert np.isfinite(loss)


if __name__ == "__main__":
    main()
