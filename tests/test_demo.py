"""The main job: a short functional-API training run on the bundled digits data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the digits demo needs scikit-learn's bundled data (extra [data])")

from fastnn.demo import load_digits_splits, train_digits  # noqa: E402


def test_splits_are_stratified_and_standardised_on_train_only():
    d = load_digits_splits(seed=3)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = d["train"], d["val"], d["test"]
    assert len(Xtr) + len(Xva) + len(Xte) == 1797
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    np.testing.assert_allclose(Xtr.mean(0), 0, atol=1e-5)  # train statistics only
    assert set(np.unique(yva)) == set(range(10)) == set(np.unique(yte))


def test_training_reaches_high_accuracy():
    res = train_digits(epochs=15, seed=1, verbose=False)
    assert res.train_loss[-1] < res.train_loss[0]
    assert res.test_acc > 0.93


def test_command_line_runs():
    out = subprocess.run([sys.executable, "-m", "fastnn", "demo", "--epochs", "3", "--threads", "1"],
                         capture_output=True, text=True, check=True)
    assert "test accuracy" in out.stdout and "epoch   3" in out.stdout
    info = subprocess.run([sys.executable, "-m", "fastnn", "info"], capture_output=True, text=True,
                          check=True)
    assert "gemm_threading: tiles" in info.stdout
