"""fastnn.monitor.diagnose: each of the notes' symptoms, planted in hand-made records and histories,
gives its diagnosis at the right place (and healthy numbers give none)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from fastnn.callbacks import History
from fastnn.monitor import LAYER_FIELDS, TENSOR_FIELDS, Monitor, diagnose

TENSORS = ["0.weight", "2.weight", "4.weight", "6.weight", "0.bias"]
KINDS = ["Dense", "ReLU", "Dense", "Tanh", "Dense", "Sigmoid", "Dense"]


def monitor() -> Monitor:
    return Monitor.from_dict({"every": 1, "tensors": TENSORS, "layers": [f"{i} {k}" for i, k in enumerate(KINDS)],
                              "layer_kinds": KINDS, "records": [], "epoch_of_record": []})


def records(n: int = 6, ratio: dict | None = None, layer: dict | None = None) -> np.ndarray:
    """n healthy records (update ratio 1e-3, activation std 1, nothing dead or saturated), with
    ``ratio[tensor]`` and ``layer[(index, field)]`` overriding columns."""
    rec = np.zeros((n, 2 + 3 * len(TENSORS) + 8 * len(KINDS)))
    rec[:, 0] = np.arange(n)
    rec[:, 1] = 1.0
    for t, name in enumerate(TENSORS):
        r = (ratio or {}).get(name, 1e-3)
        rec[:, 2 + 3 * t + TENSOR_FIELDS.index("grad_norm")] = 0.1
        rec[:, 2 + 3 * t + TENSOR_FIELDS.index("weight_norm")] = 2.0
        rec[:, 2 + 3 * t + TENSOR_FIELDS.index("update_norm")] = 2.0 * np.asarray(r)
    base = 2 + 3 * len(TENSORS)
    for i in range(len(KINDS)):
        rec[:, base + 8 * i + LAYER_FIELDS.index("act_std")] = 1.0
        rec[:, base + 8 * i + LAYER_FIELDS.index("grad_std")] = 1e-3
    for (i, field), v in (layer or {}).items():
        rec[:, base + 8 * i + LAYER_FIELDS.index(field)] = v
    return rec


def found(hist: History | None = None, rec: np.ndarray | None = None) -> set[tuple[str, str]]:
    return {(d.kind, d.where) for d in diagnose(monitor(), hist or History(), 3, records() if rec is None else rec)}


def history(loss, train_acc=None, val_acc=None) -> History:
    h = History.from_dict({"epoch": list(range(1, len(loss) + 1)), "history": {"loss": list(loss)}})
    if train_acc is not None:
        h.history["train_acc"], h.history["val_acc"] = list(train_acc), list(val_acc)
    return h


def test_healthy_numbers_give_no_diagnosis():
    assert found(history([2.3, 1.0, 0.5], [0.6, 0.8, 0.9], [0.6, 0.79, 0.88])) == set()


@pytest.mark.parametrize("loss,kind", [([2.3, 1.0, float("nan")], "loss not finite"),
                                       ([1.0, 1.2, 1.8], "loss exploding"), ([2.30, 2.301, 2.299], "loss flat")])
def test_loss_symptoms(loss, kind):
    assert found(history(loss)) == {(kind, "")}


def test_accuracy_gaps():
    assert ("overfitting", "") in found(history([1, 0.5, 0.2], [0.9, 0.99, 1.0], [0.8, 0.82, 0.81]))
    low = history([2, 1.9, 1.8, 1.7, 1.6], [0.3, 0.35, 0.4, 0.42, 0.45], [0.3, 0.35, 0.4, 0.42, 0.44])
    assert ("underfitting", "") in found(low)


def test_update_ratios_per_dense_weight():
    rec = records(ratio={"0.weight": 0.05, "4.weight": 1e-6, "0.bias": 0.5})  # biases are not judged
    assert found(rec=rec) == {("update ratio high", "0.weight"), ("update ratio low", "4.weight")}
    # the median over the epoch's records decides: one outlier record does not
    r = np.full(6, 1e-3)
    r[2] = 0.5
    assert found(rec=records(ratio={"2.weight": r})) == set()


def test_zero_weight_norms_are_skipped_not_fatal():
    rec = records(ratio={"0.weight": 0.05})
    rec[:3, 2 + TENSOR_FIELDS.index("weight_norm")] = 0.0  # half the records: ratio undefined
    assert found(rec=rec) == {("update ratio high", "0.weight")}  # judged on the other half
    rec[:, 2 + TENSOR_FIELDS.index("weight_norm")] = 0.0  # all of them: nothing to judge
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy: "All-NaN slice"
        assert found(rec=rec) == set()


def test_layer_symptoms():
    rec = records(layer={(1, "frac_dead"): 0.6, (3, "frac_saturated"): 0.7, (4, "nonfinite"): 1.0})
    assert found(rec=rec) == {("dead ReLUs", "1 ReLU"), ("saturated units", "3 Tanh"),
                              ("non-finite activations", "4 Dense")}
    vanishing = records(layer={(1, "act_std"): 1.0, (3, "act_std"): 0.2, (5, "act_std"): 0.01})
    assert found(rec=vanishing) == {("vanishing activations", "")}
    assert found(rec=records(layer={(1, "frac_dead"): 0.3})) == set()  # below the 40 % threshold


def test_messages_carry_the_measured_numbers():
    (d,) = diagnose(monitor(), History(), 7, records(ratio={"6.weight": 0.03}))
    assert d.epoch == 7 and "3.00e-02" in d.message and d.advice == "lower the learning rate"
    assert str(d).startswith("epoch 7: update ratio high [6.weight]")
