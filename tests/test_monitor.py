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


# ------------------------------------------------------------------------------------------------
# the Monitor callback: records mapped to epochs, one diagnosis per symptom, reuse and resume
# ------------------------------------------------------------------------------------------------
def _fit_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    X = (rng.standard_normal((200, 16)) + 2.0 * np.eye(3, 16)[y]).astype(np.float32)
    return X, y


def _small(seed=0):
    return fastnn.Sequential([fastnn.Dense(16, 12), fastnn.ReLU(), fastnn.Dense(12, 8), fastnn.Tanh(),
                              fastnn.Dense(8, 3)], seed=seed)


def test_records_map_to_epochs_exactly_also_for_a_model_trained_before():
    from fastnn.monitor import Monitor

    X, y = _fit_data()
    model = _small()
    model.fit(X, y, epochs=2, batch_size=48)  # 10 steps already taken: the monitored training starts at 10
    mon = Monitor(every=3, warn=False)
    hist = fastnn.Trainer(model, optim.Adam(lr=1e-3), callbacks=[mon], progress=False).fit(
        X, y, epochs=3, batch_size=48)  # 200 rows in batches of 48: 5 steps per epoch, the last one short
    assert (mon.steps_per_epoch, mon.first_step) == (5, 10)
    steps = mon.steps.astype(int)
    assert steps.tolist() == [12, 15, 18, 21, 24]  # the global steps divisible by every
    np.testing.assert_array_equal(mon.record_epochs(), np.asarray(hist.batch_epoch)[steps - 10])
    assert mon.epoch_of_record == [int(np.ceil(e)) for e in mon.record_epochs()]


def test_one_diagnosis_per_symptom_with_its_first_and_last_epoch():
    from fastnn.monitor import Diagnosis, Monitor

    X, y = _fit_data()
    mon = Monitor(every=2, warn=False)
    fastnn.Trainer(_small(), optim.Adam(lr=0.05), callbacks=[mon], progress=False).fit(X, y, epochs=5,
                                                                                        batch_size=48)
    keys = [(d.kind, d.where) for d in mon.diagnoses]
    assert len(keys) == len(set(keys)) and ("update ratio high", "0.weight") in keys  # lr 0.05: far too high
    d = mon.diagnoses[keys.index(("update ratio high", "0.weight"))]
    assert (d.first_epoch, d.epoch, d.count) == (1, 5, 5)
    assert str(d).startswith("epochs 1-5 (5x): update ratio high [0.weight]: median |dW|/|W| = ")
    # an older monitor.json, one entry per epoch, reads back merged (the latest message kept)
    old = mon.to_dict()
    old["diagnoses"] = [{"epoch": e, "kind": "dead ReLUs", "where": "1 ReLU", "message": f"{e}0% dead",
                         "advice": "a"} for e in (2, 3, 4)]
    (back,) = Monitor.from_dict(old).diagnoses
    assert back == Diagnosis(4, "dead ReLUs", "1 ReLU", "40% dead", "a", first_epoch=2, count=3)


def test_reusing_a_monitor_on_another_model_starts_afresh():
    from fastnn.monitor import Monitor

    X, y = _fit_data()
    mon = Monitor(every=2, warn=False)
    fastnn.Trainer(_small(0), optim.Adam(lr=0.05), callbacks=[mon], progress=False).fit(X, y, epochs=3, batch_size=48)
    assert len(mon.records) == len(mon.epoch_of_record) == 8 and mon.diagnoses
    other = _small(1)  # the same layout (records of the same width), another model
    trainer = fastnn.Trainer(other, optim.Adam(lr=1e-3), callbacks=[mon], progress=False)
    trainer.fit(X, y, epochs=1, batch_size=48)
    assert len(mon.records) == len(mon.epoch_of_record) == 3 and set(mon.epoch_of_record) == {1}
    assert not [d for d in mon.diagnoses if d.epoch > 1] and mon.steps.tolist() == [0, 2, 4]
    trainer.fit(X, y, epochs=2, batch_size=48)  # the same training continued: the records add up
    assert mon.epoch_of_record == [1, 1, 1, 2, 2] and mon.steps.tolist() == [0, 2, 4, 6, 8]
    np.testing.assert_array_equal(mon.record_epochs(), (mon.steps + 1) / 5)


def test_monitor_state_survives_to_dict_and_a_resumed_training(tmp_path):
    import json
    import warnings

    pytest.importorskip("safetensors", reason="checkpoints need safetensors (extra [io])")
    from fastnn.callbacks import ModelCheckpoint
    from fastnn.monitor import Monitor, TrainingWarning

    X, y = _fit_data()
    path = tmp_path / "ck.safetensors"
    mon = Monitor(every=2, ratio_band=(1e-5, 5e-3))
    with pytest.warns(TrainingWarning, match="update ratio high"):
        fastnn.Trainer(_small(), optim.Adam(lr=0.05), callbacks=[mon, ModelCheckpoint(path)],
                       progress=False).fit(X, y, epochs=2, batch_size=48)
    warned = set(mon._warned)
    assert warned and warned == {(d.kind, d.where) for d in mon.diagnoses}
    back = Monitor.from_dict(json.loads(json.dumps(mon.to_dict(), allow_nan=False)))
    assert back.ratio_band == (1e-5, 5e-3) and back._warned == warned
    assert (back.steps_per_epoch, back.first_step) == (5, 0)
    np.testing.assert_array_equal(back.records, mon.records)
    # resumed in a new process's objects: nothing warned twice, records and epochs continue exactly
    mon2 = Monitor(every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)  # a repeat of an already-warned symptom would raise
        hist = fastnn.Trainer(_small(), optim.Adam(lr=0.05), callbacks=[mon2], progress=False).fit(
            X, y, epochs=4, batch_size=48, resume_from=path)
    assert mon2._warned == warned and mon2.epoch_of_record[0] == 1 and mon2.epoch_of_record[-1] == 4
    np.testing.assert_array_equal(mon2.records[:len(mon.records)], mon.records)
    np.testing.assert_array_equal(mon2.record_epochs(), np.asarray(hist.batch_epoch)[mon2.steps.astype(int)])
    assert mon2.ratio_band == (1e-4, 1e-2)  # its own setting: set_state restores state, not settings
    d = {(d.kind, d.where): d for d in mon2.diagnoses}[("update ratio high", "0.weight")]
    assert (d.first_epoch, d.epoch, d.count) == (1, 4, 4)


def test_monitor_json_is_strict_with_nonfinite_statistics():
    import json

    from fastnn.monitor import Monitor

    mon = Monitor.from_dict({"every": 1, "tensors": ["0.weight"], "layers": ["0 Dense"], "layer_kinds": ["Dense"],
                             "records": [[0.0, 1.0, *[0.5] * 3, *[0.0] * 8]], "epoch_of_record": [1]})
    mon.records[0, 2 + 3] = np.nan  # e.g. the statistics of a layer whose output overflowed
    mon.records[0, 2 + 4] = np.inf
    text = json.dumps(mon.to_dict(), allow_nan=False)  # raises on a NaN/Infinity token
    back = Monitor.from_dict(json.loads(text))
    assert np.isnan(back.records[0, 5]) and np.isnan(back.records[0, 6])  # null reads back as NaN
    np.testing.assert_array_equal(back.records[0, :5], mon.records[0, :5])
