"""Checkpoints: bit-identical reloads, atomic writes, and clear errors for damaged or foreign files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="checkpoints need the optional safetensors package (extra [io])")

import fastnn  # noqa: E402
from fastnn import io, optim  # noqa: E402


def trained(tmp_path, **kw):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    m = fastnn.MLP(8, [16, 16], 3, batchnorm=True, dropout=0.1, seed=2, **kw)
    h = m.fit(X, y, optimizer=optim.Adam(lr=3e-3), epochs=3, batch_size=32)
    return m, h, X, y


def test_save_load_predicts_bit_identically(tmp_path):
    m, h, X, y = trained(tmp_path)
    m.save(tmp_path / "m.safetensors", history=h, preprocessing={"kind": "none"}, extra={"note": "x"})
    m2 = fastnn.load(tmp_path / "m.safetensors")
    assert np.array_equal(m.forward(X), m2.forward(X))
    assert m2.step == m.step and m2.layers == m.layers and m2.dtype == m.dtype
    assert m2.checkpoint["history"]["history"]["loss"] == h.history["loss"]
    assert m2.checkpoint["extra"] == {"note": "x"}
    for i in range(m._net.n_state):  # optimizer state restored
        assert np.array_equal(m._net.state(i), m2._net.state(i))
    assert m2._net.opt_t == m._net.opt_t


def test_float64_and_regression_models_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 4))
    m = fastnn.MLP(4, [8], 2, loss="mse", dtype=np.float64, activation="tanh", seed=0)
    m.fit(X, X[:, :2] * 2, epochs=2)
    m.save(tmp_path / "r.safetensors")
    m2 = fastnn.load(tmp_path / "r.safetensors")
    assert m2.dtype == np.float64 and m2.loss.kind == "mse"
    assert np.array_equal(m.forward(X), m2.forward(X))


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    m, _, X, _ = trained(tmp_path)
    path = tmp_path / "ck.safetensors"
    m.save(path)
    before = path.read_bytes()
    m.params["0.bias"][...] += 1

    from safetensors import numpy as stn

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(stn, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == before  # the previous checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]


def test_killed_mid_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    """A process SIGKILLed while writing a (large) checkpoint never damages the previous one."""
    m, _, X, _ = trained(tmp_path)
    path = tmp_path / "ck.safetensors"
    m.save(path)
    before = path.read_bytes()
    script = f"""
import os, signal, threading, numpy as np, fastnn
from safetensors import numpy as stn
m = fastnn.MLP(8, [2048, 2048], 3, seed=0)
real = stn.save_file
def slow(tensors, filename, metadata=None):
    real(tensors, filename, metadata=metadata)
    os.kill(os.getpid(), signal.SIGKILL)  # dies after writing the temporary file, before the rename
stn.save_file = slow
m.save({str(path)!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert path.read_bytes() == before
    m2 = fastnn.load(path)
    assert np.array_equal(m2.forward(X), m.forward(X))


def _corrupt(path, offset_from_end=None, header=False):
    data = bytearray(path.read_bytes())
    n = struct.unpack("<Q", bytes(data[:8]))[0]
    i = 8 + n // 2 if header else len(data) - (offset_from_end or 10)
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_and_foreign_files_give_clear_errors(tmp_path):
    m, *_ = trained(tmp_path)
    good = tmp_path / "good.safetensors"
    m.save(good)
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        fastnn.load(trunc)
    flipped = tmp_path / "flip.safetensors"
    flipped.write_bytes(good.read_bytes())
    _corrupt(flipped)
    with pytest.raises(ValueError, match="checksum"):
        fastnn.load(flipped)
    head = tmp_path / "head.safetensors"
    head.write_bytes(good.read_bytes())
    _corrupt(head, header=True)
    with pytest.raises(ValueError, match="safetensors|metadata|damaged|checkpoint"):
        fastnn.load(head)
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.ones(3, np.float32)}, str(foreign))
    with pytest.raises(ValueError, match="not a fastnn checkpoint"):
        fastnn.load(foreign)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match="not a readable"):
        fastnn.load(junk)
    pickle_like = tmp_path / "model.pkl"
    pickle_like.write_bytes(b"\x80\x04\x95" + os.urandom(50))
    with pytest.raises(ValueError):
        fastnn.load(pickle_like)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.safetensors")


def test_restore_into_refuses_a_different_architecture(tmp_path):
    m, *_ = trained(tmp_path)
    m.save(tmp_path / "m.safetensors")
    other = fastnn.MLP(8, [16, 17], 3, batchnorm=True, dropout=0.1)
    with pytest.raises(ValueError, match="different model"):
        io.restore_into(other, tmp_path / "m.safetensors")
    t = fastnn.Trainer(fastnn.MLP(8, [16, 16], 3, batchnorm=True, dropout=0.1), "adam")
    with pytest.raises(ValueError, match="no trainer state"):
        t.load_checkpoint(tmp_path / "m.safetensors")


def test_metadata_is_plain_json(tmp_path):
    m, *_ = trained(tmp_path)
    m.save(tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["fastnn"])
    assert meta["model"]["layers"][0]["class"] == "Dense" and meta["format"] == io.FORMAT_VERSION


def test_torch_state_dict_layout():
    m = fastnn.Sequential([fastnn.Dense(5, 3), fastnn.BatchNorm(), fastnn.ReLU(), fastnn.PReLU(3),
                           fastnn.Dense(3, 2)], seed=0)
    sd = m.to_torch_state_dict()
    assert sd["0.weight"].shape == (3, 5)  # PyTorch's (out, in)
    np.testing.assert_array_equal(sd["0.weight"], m.params["0.weight"].T)
    assert set(sd) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                       "1.num_batches_tracked", "3.weight", "4.weight", "4.bias"}
    m2 = fastnn.Sequential([fastnn.Dense(5, 3), fastnn.BatchNorm(), fastnn.ReLU(), fastnn.PReLU(3),
                            fastnn.Dense(3, 2)], seed=9)
    m2.load_torch_state_dict(sd)
    for k, v in m.get_weights().items():
        np.testing.assert_array_equal(m2.get_weights()[k], v)
    with pytest.raises(KeyError, match="missing"):
        m2.load_torch_state_dict({"0.weight": sd["0.weight"]})
    bad = dict(sd)
    bad["0.weight"] = sd["0.weight"].T
    with pytest.raises(ValueError, match="0.weight has shape"):
        m2.load_torch_state_dict(bad)
