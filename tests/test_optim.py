"""Fused optimizer steps: the C++ update equals its NumPy reference over 20 steps (float32 and
float64, with and without weight decay), the scalar C++ reference agrees, and results do not
depend on the thread count."""

from __future__ import annotations

import fastnn
import numpy as np
import pytest
from conftest import many_threads
from fastnn import _core


def np_step(name, w, state, g, hp, t):
    """NumPy reference of one step (CS231n forms); returns the new w and state."""
    lr, wd = hp["lr"], hp.get("wd", 0.0)
    if name == "adamw":
        w = w * (1 - lr * wd)
        ge = g
    else:
        ge = g + wd * w
    if name == "sgd":
        return w - lr * ge, state
    if name == "momentum":
        v = hp["mu"] * state[0] - lr * ge
        return w + v, [v]
    if name == "nesterov":
        v_prev = state[0]
        v = hp["mu"] * v_prev - lr * ge
        return w - hp["mu"] * v_prev + (1 + hp["mu"]) * v, [v]
    if name == "adagrad":
        c = state[0] + ge * ge
        return w - lr * ge / (np.sqrt(c) + hp["eps"]), [c]
    if name == "rmsprop":
        c = hp["decay"] * state[0] + (1 - hp["decay"]) * ge * ge
        return w - lr * ge / (np.sqrt(c) + hp["eps"]), [c]
    if name in ("adam", "adamw"):
        m = hp["b1"] * state[0] + (1 - hp["b1"]) * ge
        v = hp["b2"] * state[1] + (1 - hp["b2"]) * ge * ge
        mt = m / (1 - hp["b1"] ** t)
        vt = v / (1 - hp["b2"] ** t)
        return w - lr * mt / (np.sqrt(vt) + hp["eps"]), [m, v]
    raise AssertionError(name)


def core_step(mod, name, w, state, g, hp, t):
    wd = hp.get("wd", 0.0)
    if name == "sgd":
        mod.sgd_step(w, g, hp["lr"], weight_decay=wd)
    elif name == "momentum":
        mod.sgd_momentum_step(w, state[0], g, hp["lr"], hp["mu"], weight_decay=wd)
    elif name == "nesterov":
        mod.nesterov_step(w, state[0], g, hp["lr"], hp["mu"], weight_decay=wd)
    elif name == "adagrad":
        mod.adagrad_step(w, state[0], g, hp["lr"], hp["eps"], weight_decay=wd)
    elif name == "rmsprop":
        mod.rmsprop_step(w, state[0], g, hp["lr"], hp["decay"], hp["eps"], weight_decay=wd)
    elif name in ("adam", "adamw"):
        mod.adam_step(w, state[0], state[1], g, hp["lr"], hp["b1"], hp["b2"], hp["eps"], t,
                      weight_decay=wd, decoupled=name == "adamw")


OPTS = {
    "sgd": ({"lr": 0.05}, 0),
    "momentum": ({"lr": 0.05, "mu": 0.9}, 1),
    "nesterov": ({"lr": 0.05, "mu": 0.9}, 1),
    "adagrad": ({"lr": 0.05, "eps": 1e-8}, 1),
    "rmsprop": ({"lr": 0.01, "decay": 0.99, "eps": 1e-8}, 1),
    "adam": ({"lr": 0.01, "b1": 0.9, "b2": 0.999, "eps": 1e-8}, 2),
    "adamw": ({"lr": 0.01, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "wd": 0.05}, 2),
}


def run(mod, name, dtype, n, wd, steps=20, seed=0):
    hp, nstate = OPTS[name]
    hp = dict(hp)
    if wd is not None:
        hp["wd"] = wd
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(dtype)
    state = [np.zeros(n, dtype) for _ in range(nstate)]
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(steps)]
    for t, g in enumerate(grads, start=1):
        if mod is None:
            w, state = np_step(name, w.astype(np.float64), [s.astype(np.float64) for s in state],
                               g.astype(np.float64), hp, t)
        else:
            core_step(mod, name, w, state, g, hp, t)
    return w


@pytest.mark.parametrize("wd", [None, 1e-3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(OPTS))
def test_fused_step_matches_numpy_over_20_steps(name, dtype, wd):
    if name == "adamw" and wd is None:
        wd = 0.05
    for n in (1, 7, 1000, 70001):
        want = run(None, name, dtype, n, wd)
        fast = run(_core, name, dtype, n, wd)
        ref = run(_core.ref, name, dtype, n, wd)
        tol = 2e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(fast, want, rtol=tol, atol=tol)
        np.testing.assert_allclose(ref, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", list(OPTS))
def test_fused_step_identical_across_thread_counts(name):
    fastnn.set_num_threads(1)
    one = run(_core, name, np.float32, 100003, None)
    for n in many_threads():
        fastnn.set_num_threads(n)
        np.testing.assert_array_equal(one, run(_core, name, np.float32, 100003, None))


def test_adam_with_zero_gradients_stays_finite():
    w = np.ones(10, np.float32)
    m, v = np.zeros(10, np.float32), np.zeros(10, np.float32)
    for t in range(1, 50):
        _core.adam_step(w, m, v, np.zeros(10, np.float32), 1e-3, 0.9, 0.999, 1e-8, t)
    assert np.all(w == 1)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda w, g: _core.sgd_step(w, g, -0.1), "learning_rate"),
        (lambda w, g: _core.sgd_step(w, g, float("nan")), "learning_rate"),
        (lambda w, g: _core.sgd_momentum_step(w, np.zeros(4), g, 0.1, 1.0), "momentum"),
        (lambda w, g: _core.sgd_momentum_step(w, np.zeros(5), g, 0.1, 0.9), "velocity"),
        (lambda w, g: _core.sgd_momentum_step(w, w, g, 0.1, 0.9), "overlaps"),
        (lambda w, g: _core.adam_step(w, np.zeros(4), np.zeros(4), g, 0.1, t=0), "'t'"),
        (lambda w, g: _core.adam_step(w, np.zeros(4), np.zeros(4), g, 0.1, beta2=1.5), "beta2"),
        (lambda w, g: _core.rmsprop_step(w, np.zeros(4), g, 0.1, decay_rate=-0.1), "decay_rate"),
        (lambda w, g: _core.adagrad_step(w, np.zeros(4), g, 0.1, epsilon=-1.0), "epsilon"),
        (lambda w, g: _core.sgd_step(w, g, 0.1, weight_decay=-1.0), "weight_decay"),
    ],
)
def test_bad_hyperparameters_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.ones(4), np.ones(4))


def test_weights_must_be_writable_arrays():
    w = np.ones(4)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="'w' is written in place but is read-only"):
        _core.sgd_step(w, np.ones(4), 0.1)
    with pytest.raises(TypeError, match="'w'"):
        _core.sgd_step([1.0, 2.0], np.ones(2), 0.1)
    with pytest.raises(ValueError, match="'w' .*C-contiguous"):
        _core.sgd_step(np.ones(8)[::2], np.ones(4), 0.1)
