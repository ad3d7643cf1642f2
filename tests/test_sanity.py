"""fastnn.sanity: the notes' three checks before learning, with advice when one fails."""

from __future__ import annotations

import fastnn
import numpy as np
from fastnn.layers import Dense, ReLU
from fastnn.sanity import loss_at_chance, overfit_small_subset, regularization_raises_loss, sanity_check


def data(n=200, d=10, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, c, n)


def test_a_healthy_model_passes_every_check():
    X, y = data()
    for loss in ("softmax", "svm"):
        m = fastnn.MLP(10, [32], 5, loss=loss, l2=1e-3, seed=0)
        before = m.get_weights()
        r = sanity_check(m, X, y)
        assert r.passed, r.report()
        assert len(r.checks) == 3 and "PASSED" in r.report()
        for k, v in before.items():  # the model itself is not touched
            assert np.array_equal(v, m.get_weights()[k])


def test_chance_levels():
    X, y = data()
    c = loss_at_chance(fastnn.MLP(10, [8], 5, seed=0), X, y)
    assert c.passed and "ln(5)" in c.expected and abs(float(c.actual) - np.log(5)) < 0.05
    c = loss_at_chance(fastnn.MLP(10, [8], 5, loss="svm", seed=0), X, y)
    assert c.passed and "C - 1 = 4" in c.expected


def test_failures_come_with_advice():
    X, y = data()
    # a network that cannot fit: a single tiny hidden unit behind a ReLU and a frozen-ish step budget
    weak = fastnn.Sequential([Dense(10, 1), ReLU(), Dense(1, 5)], seed=0)
    r = overfit_small_subset(weak, X, y, steps=5)
    assert not r.passed and "gradcheck" in r.advice and "FAIL" in r.line()
    # a penalty that reaches no tensor: every Dense opts out of decay
    no_decay = fastnn.Sequential([Dense(10, 8, decay=False), ReLU(), Dense(8, 5, decay=False)], seed=0)
    r = regularization_raises_loss(no_decay, X, y)
    assert not r.passed and "decay" in r.advice
    report = sanity_check(no_decay, X, y)
    assert not report.passed and "advice" in report.report()


def test_regression_skips_the_chance_check():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    m = fastnn.MLP(4, [16], 2, loss="mse", seed=0)
    r = sanity_check(m, X, X[:, :2])
    assert r.checks[0].actual == "skipped" and r.passed, r.report()
