"""The statistics the C++ monitors record during a training step equal the same statistics
computed with NumPy from the layer outputs, the gradients and the weights before and after the step.
"""

from __future__ import annotations

import fastnn
import numpy as np
import pytest
from fastnn import optim
from fastnn.monitor import LAYER_FIELDS, TENSOR_FIELDS


def _model(dtype, l2=1e-3):
    return fastnn.Sequential([
        fastnn.Dense(12, 40), fastnn.Tanh(),
        fastnn.Dense(40, 40), fastnn.ReLU(),
        fastnn.Dense(40, 24), fastnn.Sigmoid(),
        fastnn.Dense(24, 5),
    ], seed=3, dtype=dtype, l2=l2)


def _numpy_layer_stats(a: np.ndarray, g: np.ndarray, kind: str) -> list[float]:
    a = a.astype(np.float64)
    g = g.astype(np.float64)
    if kind == "Tanh":
        sat = np.abs(a) >= 0.99
    elif kind == "Sigmoid":
        sat = (a <= 0.01) | (a >= 0.99)
    else:
        sat = np.zeros(a.shape, bool)
    dead = np.all(a == 0, axis=0)
    return [a.mean(), a.std(), np.mean(a == 0), dead.mean(), sat.mean(), 0.0, g.mean(), g.std()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, None])
def test_monitor_record_equals_numpy(dtype, threads):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((300, 12)) * 3).astype(dtype)  # large inputs: some tanh units saturate
    X[:, 0] = 0.0
    y = rng.integers(0, 5, 300)
    model = _model(dtype)
    # make a few ReLU units dead for the whole batch
    model.params["2.bias"][:5] = -1e3
    opt = optim.SGD(lr=0.05, momentum=0.9)
    with fastnn.threads(threads or fastnn.get_num_threads()):
        before = {k: np.array(v, dtype=np.float64) for k, v in model.params.items()}
        loss0, acts, outgrads = model.capture(X, y)
        _, grads = model.loss_and_grad(X, y)  # includes the L2 term; the monitor records the data part
        for name in grads:
            if name.endswith("weight"):
                grads[name] = grads[name] - 1e-3 * model.params[name]
        model._net.set_monitor(1)
        step = model.step
        loss = model.train_step(X, y, opt)
        log = model._net.take_monitor_log()
        model._net.set_monitor(0)
    assert log.shape == (1, model._net.monitor_record_size)
    rec = log[0]
    tol = 1e-5 if dtype == np.float32 else 1e-11
    assert rec[0] == step
    assert rec[1] == pytest.approx(loss, rel=tol)
    assert rec[1] == pytest.approx(loss0, rel=tol)
    names = [t["name"] for t in model._info]
    for t, name in enumerate(names):
        after = np.asarray(model.params[name], dtype=np.float64)
        expect = [np.linalg.norm(grads[name].astype(np.float64)), np.linalg.norm(before[name]),
                  np.linalg.norm(after - before[name])]
        got = rec[2 + 3 * t: 5 + 3 * t]
        for field, e, g in zip(TENSOR_FIELDS, expect, got, strict=True):
            assert g == pytest.approx(e, rel=1e-4 if dtype == np.float32 else 1e-9, abs=1e-12), (name, field)
    base = 2 + 3 * len(names)
    kinds = [type(layer).__name__ for layer in model.layers]
    saw = {"zero": False, "dead": False, "sat": False}
    for i, kind in enumerate(kinds):
        expect = _numpy_layer_stats(acts[i], outgrads[i], kind)
        got = rec[base + 8 * i: base + 8 * i + 8]
        for field, e, g in zip(LAYER_FIELDS, expect, got, strict=True):
            assert g == pytest.approx(e, rel=1e-4 if dtype == np.float32 else 1e-9, abs=1e-9), (i, kind, field)
        saw["zero"] |= expect[2] > 0
        saw["dead"] |= expect[3] > 0
        saw["sat"] |= expect[4] > 0
    assert all(saw.values()), saw  # the test data exercised every counter


def test_monitor_counts_nonfinite_activations():
    model = _model(np.float64, l2=0.0)
    X = np.ones((8, 12))
    model.params["0.weight"][:, 1] = 1e308  # the first layer's output overflows to inf in unit 1
    model._net.set_monitor(1)
    model.train_step(X, np.zeros(8, np.int64), optim.SGD(lr=0.0))  # tanh(inf) = 1: the loss stays finite
    log = model._net.take_monitor_log()
    model._net.set_monitor(0)
    base = 2 + 3 * len(model._info)
    assert log[0][base + 5] == 8  # eight non-finite values in layer 0's output (one per row)
    assert log[0][base + 8 + 5] == 0  # tanh maps them to 1
