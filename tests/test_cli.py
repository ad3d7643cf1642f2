"""The `fastnn` command: train on the built-in digits data and on .npz / .csv files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="fastnn train's default data is scikit-learn's bundled digits")
pytest.importorskip("safetensors", reason="fastnn train writes a safetensors checkpoint (extra [io])")

import fastnn  # noqa: E402


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True, cwd=cwd)


def test_train_on_digits_reaches_97_percent(tmp_path):
    out = run("train", "--out", str(tmp_path / "run"), "--threads", "1", "--quiet")
    assert out.returncode == 0, out.stderr
    acc = float(out.stdout.split("test accuracy")[1].split()[0])
    assert acc >= 0.97
    model = fastnn.load(tmp_path / "run" / "model.safetensors")
    assert model.checkpoint["preprocessing"]["kind"] == "standardize"
    assert model.checkpoint["extra"]["test_accuracy"] == pytest.approx(acc, abs=1e-4)
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(hist["history"]["val_acc"]) == 40
    assert (tmp_path / "run" / "best.safetensors").exists()


def test_train_on_npz_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = rng.standard_normal((300, 5)) + 3 * np.eye(3, 5)[y]
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = run("train", "--data", str(tmp_path / "d.npz"), "--epochs", "10", "--hidden", "32", "--optimizer", "sgd",
              "--lr", "0.05", "--schedule", "step", "--out", str(tmp_path / "a"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split("test accuracy")[1].split()[0]) > 0.8
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",", header="a,b,c,d,e,label", comments="")
    out = run("train", "--data", str(tmp_path / "d.csv"), "--epochs", "5", "--out", str(tmp_path / "b"), "--quiet")
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("args,match", [(["--data", "x.txt"], "npz or .csv"), (["--data", "missing.npz"], "npz"),
                                        (["--optimizer", "adamax"], "unknown optimizer"),
                                        (["--schedule", "zigzag"], "unknown schedule")])
def test_train_errors_are_clear(tmp_path, args, match):
    out = run("train", *args, "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet")
    assert out.returncode == 2 and match in out.stderr


def test_progress_bar_does_not_change_results():
    pytest.importorskip("tqdm")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    weights = []
    for progress in (False, True):
        m = fastnn.MLP(6, [16], 2, dropout=0.1, seed=4)
        fastnn.Trainer(m, "adam", progress=progress).fit(X, y, epochs=3, batch_size=16)
        weights.append(m.get_weights())
    for k in weights[0]:
        assert np.array_equal(weights[0][k], weights[1][k])
