"""Schedules are pure functions of the step or epoch; they compose and vectorise."""

from __future__ import annotations

import numpy as np
import pytest
from fastnn import schedules as S


def test_values():
    assert S.step_decay(0.1, 0.5, 10)(np.array([0, 9.99, 10, 25])).tolist() == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert S.exponential(1.0, 0.5)(2.0) == pytest.approx(np.exp(-1.0))
    assert S.inverse_time(1.0, 1.0)(3.0) == pytest.approx(0.25)
    assert S.piecewise([5, 10], [1.0, 0.1, 0.01])(np.array([0, 5, 9.9, 10, 99])).tolist() == [1.0, 0.1, 0.1, 0.01, 0.01]
    c = S.cosine(1.0, 10, 0.1)
    assert c(0) == pytest.approx(1.0) and c(10) == pytest.approx(0.1) and c(5) == pytest.approx(0.55)
    assert c(20) == pytest.approx(0.1)
    r = S.cosine_restarts(1.0, 4)
    assert r(0) == pytest.approx(1.0) and r(4) == pytest.approx(1.0) and r(2) == pytest.approx(0.5)
    r2 = S.cosine_restarts(1.0, 2, mult=2)  # cycles [0, 2), [2, 6), [6, 14)
    assert r2(2) == pytest.approx(1.0) and r2(6) == pytest.approx(1.0) and r2(4) == pytest.approx(0.5)
    w = S.warmup(S.constant(0.1), 5, unit="step")
    assert w(np.array([0, 1, 5, 100])).tolist() == pytest.approx([0.0, 0.02, 0.1, 0.1])
    m = S.linear(0.5, 0.99, 10)
    assert m(0) == pytest.approx(0.5) and m(10) == pytest.approx(0.99) and m(50) == pytest.approx(0.99)
    assert S.linear_scaling(0.1, 1024, 256) == pytest.approx(0.4)


def test_values_at_steps_convert_epochs():
    s = S.step_decay(1.0, 0.5, 1)  # per epoch
    np.testing.assert_allclose(s.values(np.arange(8), steps_per_epoch=4), [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5])
    st = S.step_decay(1.0, 0.5, 2, unit="step")
    np.testing.assert_allclose(st.values(np.arange(4), steps_per_epoch=4), [1, 1, 0.5, 0.5])


def test_pure_functions():
    s = S.warmup(S.cosine(0.1, 50), 5)
    a = s(np.arange(60) / 3)
    b = s(np.arange(60) / 3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [lambda: S.step_decay(-1), lambda: S.cosine(1.0, 0),
                                  lambda: S.piecewise([1, 1], [1, 2, 3]),
                                  lambda: S.piecewise([1], [1]), lambda: S.cosine_restarts(1, 1, mult=0.5),
                                  lambda: S.linear_scaling(0.1, 0), lambda: S.Schedule(lambda t: t, unit="batch")])
def test_bad_schedules(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("name", S.NAMES)
def test_by_name_builds_every_named_schedule(name):
    lr = S.by_name(name, 0.1, 20)
    sched = S.as_schedule(lr)
    assert sched(0.0) == pytest.approx(0.0 if name == "warmup_cosine" else 0.1)
    expected = {"constant": 0.1, "cosine": 0.05, "step": 0.025, "exponential": 0.1 * np.exp(-1.5),
                "inverse_time": 0.1 / 6, "warmup_cosine": 0.05, "cosine_restarts": 0.1}[name]
    assert sched(10.0) == pytest.approx(expected)


def test_by_name_rejects_unknown_names_and_bad_lengths():
    with pytest.raises(ValueError, match="unknown schedule 'zigzag'; choose one of constant, cosine"):
        S.by_name("zigzag", 0.1, 10)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        S.by_name("cosine", 0.1, 0)


def test_schedules_pickle_as_the_call_that_made_them():
    import pickle

    t = np.linspace(0, 30, 61)
    made = [S.constant(0.2), S.step_decay(0.1, 0.5, 3), S.exponential(0.1, 0.2), S.inverse_time(0.1, 0.5, "step"),
            S.piecewise([5, 10], [0.1, 0.01, 0.001]), S.cosine(0.1, 20, 0.001), S.cosine_restarts(0.1, 4, 2.0),
            S.linear(0.5, 0.99, 10), S.warmup(S.cosine(0.1, 20), 2, start=0.01)]
    for s in made:
        back = pickle.loads(pickle.dumps(s))
        assert repr(back) == repr(s) and back.unit == s.unit
        np.testing.assert_array_equal(back(t), s(t))
