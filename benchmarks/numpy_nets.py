"""Careful CS231n-style NumPy reference networks for the W1-W4 training benchmarks.

A fully connected net ``(Linear -> [BatchNorm] -> ReLU -> [Dropout]) x L, Linear, softmax`` with a
hand-written forward and backward pass, float32 throughout, written the way a good student would
write it (not as a straw man):

* element-wise work is done in place where that is natural (ReLU, batch norm, dropout, softmax);
* weight gradients are written into preallocated arrays (``np.matmul(..., out=)``);
* the gradient with respect to the network's input (the first layer's dx) is not computed;
* the optimizers (SGD, SGD with CS231n momentum, Adam with PyTorch's bias correction) update the
  weights in place, using the gradient arrays as scratch once they are no longer needed.

Initialisation follows fastnn's ``"auto"``: He normal for layers that feed a ReLU (through batch
norm or not), Glorot normal for the output layer, zero biases; batch norm starts at gamma = 1,
beta = 0 and keeps PyTorch-style running statistics (momentum 0.1, unbiased variance).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


class NumpyMLP:
    """One network; ``step(x, y)`` is a full training step and returns the (pre-update) loss.

    Parameters
    ----------
    dims : sequence of int
        Layer widths, input first, classes last (e.g. ``(784, 512, 512, 10)``).
    batchnorm : bool
        Batch norm between each hidden Linear and its ReLU.
    keep : float or None
        Dropout keep probability after each hidden ReLU (None: no dropout).
    optimizer : "sgd", "momentum" or "adam"
    lr, momentum, betas, eps : optimizer hyperparameters.
    seed : int
        Initialisation and dropout masks.
    """

    def __init__(self, dims, *, batchnorm=False, keep=None, optimizer="sgd", lr=1e-2, momentum=0.9,
                 betas=(0.9, 0.999), eps=1e-8, bn_eps=1e-5, bn_momentum=0.1, seed=0):
        rng = np.random.default_rng(seed)
        self.rng = np.random.default_rng([seed, 1])
        self.dims = tuple(int(d) for d in dims)
        self.L = len(self.dims) - 1
        self.batchnorm, self.keep = bool(batchnorm), keep
        self.optimizer, self.lr, self.momentum = optimizer, float(lr), float(momentum)
        self.b1, self.b2 = betas
        self.eps, self.bn_eps, self.bn_momentum = eps, bn_eps, bn_momentum
        self.W, self.b, self.dW = [], [], []
        for i in range(self.L):
            fi, fo = self.dims[i], self.dims[i + 1]
            var = 2.0 / fi if i < self.L - 1 else 2.0 / (fi + fo)
            self.W.append((rng.standard_normal((fi, fo)) * np.sqrt(var)).astype(F32))
            self.b.append(np.zeros(fo, F32))
            self.dW.append(np.empty((fi, fo), F32))
        H = self.dims[1:-1]
        self.gamma = [np.ones(h, F32) for h in H] if self.batchnorm else []
        self.beta = [np.zeros(h, F32) for h in H] if self.batchnorm else []
        self.running_mean = [np.zeros(h, F32) for h in H] if self.batchnorm else []
        self.running_var = [np.ones(h, F32) for h in H] if self.batchnorm else []
        # optimizer state, one slot per parameter in params() order
        params = self.params()
        if optimizer == "momentum":
            self.v = [np.zeros_like(p) for p in params]
        elif optimizer == "adam":
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        elif optimizer != "sgd":
            raise ValueError(f"unknown optimizer {optimizer!r}")
        self.t = 0

    def params(self) -> list[np.ndarray]:
        return [*self.W, *self.b, *self.gamma, *self.beta]

    # ------------------------------------------------------------------------------------------
    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        N = x.shape[0]
        L, keep = self.L, self.keep
        inputs, xhats, invs, masks = [x], [], [], []
        h = x
        # forward: hidden layers
        for i in range(L - 1):
            a = h @ self.W[i]
            a += self.b[i]
            if self.batchnorm:
                mu = a.mean(axis=0)
                a -= mu
                var = np.mean(a * a, axis=0)
                inv = 1.0 / np.sqrt(var + F32(self.bn_eps))
                a *= inv  # a is now x-hat
                xhats.append(a)
                invs.append(inv)
                rm, rv, m = self.running_mean[i], self.running_var[i], F32(self.bn_momentum)
                rm *= 1 - m
                rm += m * mu
                rv *= 1 - m
                rv += (m * N / (N - 1)) * var
                a = a * self.gamma[i]
                a += self.beta[i]
            np.maximum(a, 0, out=a)
            if keep is not None:
                mask = self.rng.random(a.shape, dtype=F32) < keep
                a *= mask
                a *= F32(1.0 / keep)
                masks.append(mask)
            inputs.append(a)
            h = a
        # output layer and softmax loss
        s = h @ self.W[-1]
        s += self.b[-1]
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        z = e.sum(axis=1, keepdims=True)
        rows = np.arange(N)
        loss = float(np.mean(np.log(z[:, 0]) - s[rows, y]))
        e /= z
        e[rows, y] -= 1
        e *= F32(1.0 / N)
        d = e
        # backward
        db = [None] * L
        dgamma = [None] * (L - 1)
        dbeta = [None] * (L - 1)
        for i in range(L - 1, -1, -1):
            np.matmul(inputs[i].T, d, out=self.dW[i])
            db[i] = d.sum(axis=0)
            if i == 0:
                break  # the network's input needs no gradient
            d = d @ self.W[i].T
            j = i - 1  # hidden block j produced inputs[i]
            if keep is not None:
                d *= masks[j]
                d *= F32(1.0 / keep)
            d *= inputs[i] > 0  # ReLU (inputs[i] is zero where ReLU or dropout zeroed it)
            if self.batchnorm:
                xhat = xhats[j]
                dbeta[j] = d.sum(axis=0)
                dgamma[j] = np.sum(d * xhat, axis=0)
                d *= F32(N)
                d -= dbeta[j]
                d -= xhat * dgamma[j]
                d *= self.gamma[j] * invs[j] * F32(1.0 / N)
        grads = [*self.dW, *db, *(dgamma if self.batchnorm else []), *(dbeta if self.batchnorm else [])]
        self.update(self.params(), grads)
        return loss

    # ------------------------------------------------------------------------------------------
    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        lr = self.lr
        if self.optimizer == "sgd":
            for w, g in zip(params, grads, strict=True):
                g *= F32(lr)
                w -= g
        elif self.optimizer == "momentum":  # CS231n: v = mu v - lr g; w += v
            mu = F32(self.momentum)
            for w, g, v in zip(params, grads, self.v, strict=True):
                v *= mu
                g *= F32(lr)
                v -= g
                w += v
        else:  # Adam, PyTorch's form: w -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
            self.t += 1
            b1, b2 = self.b1, self.b2
            bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
            step, rs2, eps = F32(lr / bc1), F32(1 / np.sqrt(bc2)), F32(self.eps)
            for w, g, m, v in zip(params, grads, self.m, self.v, strict=True):
                m *= F32(b1)
                m += F32(1 - b1) * g  # one temporary
                v *= F32(b2)
                g *= g
                g *= F32(1 - b2)
                v += g
                np.sqrt(v, out=g)
                g *= rs2
                g += eps
                np.divide(m, g, out=g)
                g *= step
                w -= g
