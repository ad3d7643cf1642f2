"""fastnn.gradcheck: passes on the real C++ kernels, catches deliberately broken layers, detects
kinks, checks every tensor separately, and follows the notes' options."""

from __future__ import annotations

import fastnn
import fastnn.functional as F
import numpy as np
import pytest
from fastnn import _core
from fastnn.gradcheck import (
    KINKS_OK,
    WRONG,
    best_step,
    check_gradients,
    gradcheck,
    gradcheck_layer,
    relative_error,
    verdict,
)
from fastnn.layers import ELU, BatchNorm, Dense, Dropout, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Tanh


def data(n=40, d=8, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, c, n)


@pytest.mark.parametrize("loss", ["softmax", "svm", "mse"])
def test_real_models_pass_with_every_tensor_checked(loss):
    X, y = data()
    if loss == "mse":
        y = np.random.default_rng(1).standard_normal((40, 4))
    m = fastnn.Sequential([Dense(8, 12), BatchNorm(), LeakyReLU(0.1), Dropout(0.3), Dense(12, 12), PReLU(12), Tanh(),
                           Dense(12, 8), Maxout(2), ELU(), Dense(4, 6), Sigmoid(), Dense(6, 4)],
                          loss=loss, l2=1e-2, l1=1e-3, seed=0)
    r = gradcheck(m, X, y, coords=8)
    assert r.passed, r.report()
    assert set(r.tensors) == set(m.params)  # every tensor, biases and batch-norm parameters included
    assert all(t.checked > 0 for t in r.tensors.values())
    assert r.tensors["0.weight"].checked == 8
    assert m.dtype == np.float32  # the user's model is checked on a float64 copy, untouched


def test_full_check_and_fast_mode_and_components():
    X, y = data()
    m = fastnn.MLP(8, [6], 4, activation="tanh", l2=0.1, seed=0, dtype=np.float64)
    full = gradcheck(m, X, y, coords="all")
    assert full.passed and full.tensors["0.weight"].checked == 48
    assert gradcheck(m, X, y, fast=True).passed
    assert gradcheck(m, X, y, component="data").passed
    reg = gradcheck(m, X, y, component="reg", coords="all")
    assert reg.passed and reg.tensors["0.bias"].tiny == 6  # biases take no penalty
    with pytest.raises(ValueError, match="l2 or l1"):
        gradcheck(fastnn.MLP(8, [6], 4), X, y, component="reg")
    assert gradcheck(m, X, y, burn_in=5).passed  # after a short burn-in
    before = m.get_weights()
    gradcheck(m, X, y, burn_in=5)
    for k, v in before.items():
        assert np.array_equal(v, m.get_weights()[k])


def test_best_step_and_report():
    X, y = data()
    m = fastnn.MLP(8, [6], 4, batchnorm=True, seed=0)
    h, errors = best_step(m, X, y)
    assert h in errors and errors[h] == min(errors.values()) and set(errors) == {1e-3, 1e-4, 1e-5, 1e-6, 1e-7}
    text = gradcheck(m, X, y).report()
    assert "PASSED" in text and "0.weight" in text and "1.bias" in text


def test_kinks_are_reported_not_failed():
    """A ReLU unit whose input sits 1e-7 from zero: perturbing its bias by +-h crosses the kink."""
    m = fastnn.Sequential([Dense(2, 3), ReLU(), Dense(3, 2)], seed=0, dtype=np.float64)
    x = np.array([[0.3, -0.7]])
    w = m.params["0.weight"]
    m.params["0.bias"][0] = -(x @ w)[0, 0] + 1e-7
    r = gradcheck(m, x, np.array([1]), coords="all", h=1e-5)
    b = r.tensors["0.bias"]
    assert b.kinks >= 1 and b.coords[0].kink
    assert r.passed  # the kink is not counted as a failure
    assert "kink" in r.report()
    # the SVM hinge's kink is seen too
    s = fastnn.Sequential([Dense(2, 3)], loss="svm", seed=0, dtype=np.float64)
    sc = x @ s.params["0.weight"]
    s.params["0.bias"][...] = 0.0
    s.params["0.bias"][0] = sc[0, 1] - sc[0, 0] - 1.0 + 1e-7  # margin of class 0 against label 1 is ~0
    r = gradcheck(s, x, np.array([1]), coords="all")
    assert r.tensors["0.bias"].kinks >= 1


def test_layers_in_isolation():
    for layer, d in [(ReLU(), 5), (LeakyReLU(0.2), 5), (PReLU(5), 5), (ELU(0.5), 5), (Tanh(), 5), (Sigmoid(), 5),
                     (Maxout(3), 9), (BatchNorm(), 5), (Dense(5, 4), 5)]:
        r = gradcheck_layer(layer, d)
        assert r.passed, (layer, r.report())


def test_verdicts_follow_the_notes():
    assert verdict(0.5) == WRONG and verdict(1e-3) == "uncomfortable"
    assert verdict(1e-5) == KINKS_OK and verdict(1e-9) == "good"
    assert relative_error(0.0, 0.0) == 0.0 and relative_error(1.0, 1.1) == pytest.approx(0.1 / 1.1)


# ------------------------------------------------------------------------------------------------
# deliberately broken layers are caught (written with the functional API)
# ------------------------------------------------------------------------------------------------
def _net(broken: str):
    """A 2-layer net affine-relu-dropout-affine-softmax with an injectable backward bug."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 5))
    y = rng.integers(0, 3, 6)
    p = {"W1": rng.standard_normal((5, 5)) * 0.5, "b1": rng.standard_normal(5) * 0.1,
         "W2": rng.standard_normal((5, 3)) * 0.5, "b2": rng.standard_normal(3) * 0.1}
    dp = {"mode": "train", "p": 0.6, "seed": 11}

    def forward():
        a, c1 = F.affine_forward(X, p["W1"], p["b1"])
        r, c2 = F.relu_forward(a)
        d, c3 = F.dropout_forward(r, dp)
        s, c4 = F.affine_forward(d, p["W2"], p["b2"])
        loss, ds = F.softmax_loss(s, y)
        return loss, (c1, c2, c3, c4, ds)

    def loss_fn():
        return forward()[0]

    def grad_fn():
        _, (c1, c2, c3, c4, ds) = forward()
        g = {}
        dd, g["W2"], g["b2"] = F.affine_backward(ds, c4)
        if broken == "dropout_ignores_mask":
            dr = dd / dp["p"]
        else:
            dr = F.dropout_backward(dd, c3)
        da = F.relu_backward(dr, c2)
        _, g["W1"], g["b1"] = F.affine_backward(da, c1)
        if broken == "factor":
            g["W1"] = g["W1"] * 2.0
        if broken == "transposed":
            g["W1"] = g["W1"].T.copy()
        if broken == "missing_bias":
            g["b2"] = np.zeros_like(g["b2"])
        return g

    return loss_fn, grad_fn, p


@pytest.mark.parametrize("broken,where", [("factor", "W1"), ("transposed", "W1"), ("missing_bias", "b2"),
                                          ("dropout_ignores_mask", "W1")])
def test_broken_layers_are_caught(broken, where):
    ok = check_gradients(*_net("none"), coords="all")
    assert ok.passed, ok.report()
    bad = check_gradients(*_net(broken), coords="all")
    assert not bad.passed
    assert not bad.tensors[where].passed and bad.tensors[where].verdict == WRONG
    assert "FAIL" in bad.report()


def test_dropout_masks_are_replayed_for_the_check():
    """The runtime's dropout is checked with the masks of the step being checked, not new ones."""
    X, y = data()
    m = fastnn.MLP(8, [16], 4, dropout=0.5, seed=0, dtype=np.float64)
    r1 = gradcheck(m, X, y, coords=20)
    assert r1.passed
    m.fit(X, y, epochs=1)  # advances the step counter: other masks, still consistent
    assert gradcheck(m, X, y, coords=20).passed
    loss_a = m._net.loss_and_grad(X[:4], y[:4], True)[0]
    assert m._net.loss_and_grad(X[:4], y[:4], True)[0] == loss_a
    assert _core is not None
