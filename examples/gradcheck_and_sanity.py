"""Check gradients and run the sanity checks before training, as the CS231n notes ask.

    python examples/gradcheck_and_sanity.py            # every check
    python examples/gradcheck_and_sanity.py --small    # fewer coordinates (the test suite runs this)

1. :func:`fastnn.gradcheck.gradcheck` on networks with every kind of layer and loss (float64,
   centred differences, per tensor, kinks detected);
2. :func:`fastnn.gradcheck.gradcheck_layer` on single layers, and the fast directional mode;
3. :func:`fastnn.gradcheck.check_gradients` catching a deliberately wrong gradient;
4. :func:`fastnn.sanity.sanity_check` on digits: loss at chance, regularisation raises the loss,
   overfitting 20 examples.
"""

from __future__ import annotations

import argparse

import fastnn
import numpy as np
from fastnn import datasets
from fastnn.gradcheck import check_gradients, gradcheck, gradcheck_layer
from fastnn.layers import ELU, BatchNorm, Dense, Dropout, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Tanh
from fastnn.preprocessing import StandardScaler
from fastnn.sanity import sanity_check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="fewer coordinates per tensor: a smoke test")
    args = parser.parse_args()
    coords = 3 if args.small else 20
    rng = np.random.default_rng(0)

    # 1. whole networks: every layer kind, the three losses, L2 and L1 penalties
    X = rng.standard_normal((16, 12))
    nets = {
        "relu/batchnorm/dropout, softmax": ([Dense(12, 16), BatchNorm(), ReLU(), Dropout(0.3), Dense(16, 4)],
                                            "softmax", rng.integers(0, 4, 16)),
        "leaky/prelu/elu, multiclass SVM": ([Dense(12, 16), LeakyReLU(0.1), Dense(16, 16), PReLU(16), Dense(16, 16),
                                             ELU(), Dense(16, 4)], "svm", rng.integers(0, 4, 16)),
        "tanh/sigmoid/maxout, MSE": ([Dense(12, 16), Tanh(), Dense(16, 16), Sigmoid(), Dense(16, 16), Maxout(2),
                                      Dense(8, 3)], "mse", rng.standard_normal((16, 3))),
    }
    for name, (layers, loss, y) in nets.items():
        model = fastnn.Sequential(layers, loss=loss, l2=1e-2, l1=1e-3, seed=0)
        result = gradcheck(model, X, y, coords=coords)      # a float32 model is checked on a float64 copy
        print(f"{name}: {'PASSED' if result.passed else 'FAILED'}, max rel. error {result.max_rel_error:.1e}")
        assert result.passed, result.report()
        for component in ("data", "reg"):                   # the data loss and the penalty separately
            assert gradcheck(model, X, y, coords=coords, component=component).passed

    # 2. single layers, every coordinate; and one directional derivative per tensor
    for layer, width in [(BatchNorm(), 6), (PReLU(6), 6), (Maxout(3), 9), (ELU(0.5), 6)]:
        result = gradcheck_layer(layer, width)
        print(f"{type(layer).__name__:>9} alone: max rel. error {result.max_rel_error:.1e}")
        assert result.passed, result.report()
    fast = gradcheck(fastnn.MLP(12, [32, 32], 4, batchnorm=True, seed=0), X, rng.integers(0, 4, 16), fast=True)
    print(f"directional check (v^T J u per tensor): max rel. error {fast.max_rel_error:.1e}")
    assert fast.passed

    # 3. a wrong gradient is caught: d/dw sum(tanh(w)) is 1 - tanh(w)**2, not 1 - w**2
    w = rng.standard_normal(5)
    wrong = check_gradients(lambda: float(np.sum(np.tanh(w))), lambda: {"w": 1 - w**2}, {"w": w})
    right = check_gradients(lambda: float(np.sum(np.tanh(w))), lambda: {"w": 1 - np.tanh(w) ** 2}, {"w": w})
    print(f"a wrong gradient: {wrong.tensors['w'].verdict}; the right one: {right.tensors['w'].verdict}")
    assert not wrong.passed and right.passed

    # 4. the sanity checks on digits
    X_train, y_train = datasets.train_val_test_split(*datasets.load_digits(), seed=0)["train"]
    X_train = StandardScaler().fit(X_train).transform(X_train)
    model = fastnn.MLP(64, [128, 64], 10, batchnorm=True, dropout=0.2, l2=1e-4, seed=0)
    report = sanity_check(model, X_train, y_train, steps=100 if args.small else 300)
    print(report)
    assert report.passed


if __name__ == "__main__":
    main()
