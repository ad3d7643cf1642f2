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


def strict_json(path):
    """The file's JSON, refusing NaN / Infinity (not JSON, though Python's json reads them)."""
    def refuse(token):
        raise ValueError(f"{path.name} holds {token}: not strict JSON")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_train_on_digits_reaches_97_percent(tmp_path):
    from fastnn.cli import _load_data
    from fastnn.preprocessing import StandardScaler

    out = run("train", "--out", str(tmp_path / "run"), "--threads", "1", "--quiet")
    assert out.returncode == 0, out.stderr
    acc = float(out.stdout.split("test accuracy")[1].split()[0])
    assert acc >= 0.97
    model = fastnn.load(tmp_path / "run" / "model.safetensors")
    assert model.checkpoint["extra"]["test_accuracy"] == pytest.approx(acc, abs=1e-4)
    # the scaler fitted on the training split travels with the model: it predicts on raw inputs
    _, splits = _load_data(None, seed=0)
    (Xtr, _), (Xte, yte) = splits["train"], splits["test"]
    assert isinstance(model.preprocessing, StandardScaler)
    np.testing.assert_allclose(model.preprocessing.mean_, Xtr.mean(axis=0), atol=1e-12)
    assert float(Xte.max()) == 16.0  # raw pixels
    assert model.evaluate(Xte, yte)["accuracy"] == model.checkpoint["extra"]["test_accuracy"]
    best = fastnn.load(tmp_path / "run" / "best.safetensors")
    assert isinstance(best.preprocessing, StandardScaler) and best.score(Xte, yte) > 0.9
    hist = strict_json(tmp_path / "run" / "history.json")
    assert len(hist["history"]["val_acc"]) == 40
    strict_json(tmp_path / "run" / "monitor.json")


def test_lbfgs_run_writes_strict_json(tmp_path):
    """L-BFGS has no learning rate (NaN in the history): the run files write it as null."""
    pytest.importorskip("scipy", reason="needs SciPy (optional; the test extra has it)")
    out = run("train", "--optimizer", "lbfgs", "--epochs", "2", "--hidden", "16", "--out", str(tmp_path / "r"),
              "--quiet")
    assert out.returncode == 0, out.stderr
    hist = strict_json(tmp_path / "r" / "history.json")
    assert hist["history"]["lr"] == [None, None]
    assert all(isinstance(v, float) for v in hist["history"]["loss"])
    mon = strict_json(tmp_path / "r" / "monitor.json")
    assert mon["steps_per_epoch"] == 1 and mon["first_step"] == 0
    h = fastnn.callbacks.History.from_dict(hist)
    assert all(np.isnan(h.history["lr"]))  # null reads back as NaN
    cp = fastnn.load(tmp_path / "r" / "model.safetensors").checkpoint["history"]
    assert cp["history"]["lr"] == [None, None]


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
    pytest.importorskip("tqdm", reason="needs tqdm (optional; the test extra has it)")
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


def test_checks_see_raw_rows_only_when_the_model_carries_its_scaler(tmp_path):
    """gradcheck/sanity: a model with its scaler attached gets raw rows (the checks apply the scaler
    once); an older checkpoint that only recorded the statistics gets rows standardised with them."""
    from fastnn.cli import _preprocess_like
    from fastnn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4)) * 7 + 20
    scaler = StandardScaler().fit(X)
    attached = fastnn.MLP(4, [8], 3, seed=0, preprocessing=scaler)
    attached.save(tmp_path / "a.safetensors")
    assert _preprocess_like(fastnn.load(tmp_path / "a.safetensors"), X) is X
    legacy = fastnn.MLP(4, [8], 3, seed=0)
    legacy.save(tmp_path / "b.safetensors", preprocessing=scaler.to_dict())  # free-form metadata only
    np.testing.assert_allclose(_preprocess_like(fastnn.load(tmp_path / "b.safetensors"), X), scaler.transform(X))
    np.testing.assert_allclose(_preprocess_like(None, X).mean(axis=0), 0, atol=1e-12)
