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

    def broken(path, tensors, metadata):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(io, "_write_safetensors", broken)
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
import os, signal, threading, numpy as np, fastnn, fastnn.io
m = fastnn.MLP(8, [2048, 2048], 3, seed=0)
real = fastnn.io._write_safetensors
def slow(path, tensors, metadata):
    real(path, tensors, metadata)
    os.kill(os.getpid(), signal.SIGKILL)  # dies after writing the temporary file, before the rename
fastnn.io._write_safetensors = slow
m.save({str(path)!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert path.read_bytes() == before
    m2 = fastnn.load(path)
    assert np.array_equal(m2.forward(X), m.forward(X))
    # the killed writer's temporary file is left behind ... and the next save to the path removes it
    (left,) = [p for p in tmp_path.iterdir() if p.name.startswith(".ck.safetensors.tmp-")]
    assert left.stat().st_size > 10 * 2**20
    m.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]


_SAVER = """
import sys, numpy as np, fastnn
m = fastnn.MLP(8, [2048, 2048], 3, seed=0)
print("ready", flush=True)
while True:
    m.save(sys.argv[1])
"""


def test_killed_at_random_moments_the_next_save_leaves_no_temporary_file(tmp_path):
    """Whenever a saving process dies (mostly mid-write, for a 17 MB checkpoint), the next save to the
    path removes what it left: nothing but the checkpoint remains, and it loads."""
    import random
    import signal
    import time

    path = tmp_path / "ck.safetensors"
    rnd = random.Random(7)
    left = []
    for attempt in range(8):  # about 4 kills in 5 land mid-save here; stop after two kills and a leftover
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rnd.uniform(0.05, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:  # pragma: no cover - only when an assertion fired first
                proc.kill()
                proc.wait()
            proc.stdout.close()
        left = [p.name for p in tmp_path.iterdir() if p.name != "ck.safetensors"]
        assert all(n.startswith(".ck.safetensors.tmp-") for n in left), left  # only ours, never .tmpXXXXXX
        if attempt >= 1 and left:
            break
    assert len(left) == 1  # the last killed writer's (each saver cleaned up after the one before)
    m, _, X, _ = trained(tmp_path)
    m.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]
    assert np.array_equal(fastnn.load(path).forward(X), m.forward(X))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: its pid names no process now (reuse within the test is vanishingly unlikely)
    return proc.pid


def test_save_removes_only_stale_temporary_files_of_its_target(tmp_path):
    """A temporary file is removed only when its writer is certainly gone: a dead pid, not this
    process, and no writer holding its lock; files of other targets are never touched."""
    import fcntl

    from fastnn._atomic import remove_stale_temps, write_atomic

    m, _, X, _ = trained(tmp_path)
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"stale": f".ck.safetensors.tmp-{dead}-0123abcd",
                 "live writer": f".ck.safetensors.tmp-{sleeper.pid}-0123abcd",
                 "this process": f".ck.safetensors.tmp-{os.getpid()}-0123abcd",
                 "locked (a writer elsewhere)": f".ck.safetensors.tmp-{dead}-89abcdef",
                 "other target": f".ck2.safetensors.tmp-{dead}-0123abcd",
                 "not a temp name": f".ck.safetensors.tmp-{dead}-xyz",
                 "target named like a temp": f".ck.safetensors.tmp-{dead}-0123abcd.tmp-{dead}-01"}
        for n in names.values():
            (tmp_path / n).write_bytes(b"partial")
        holder = os.open(tmp_path / names["locked (a writer elsewhere)"], os.O_RDONLY)
        try:
            fcntl.flock(holder, fcntl.LOCK_EX)  # as a live writer on another machine would hold it
            m.save(tmp_path / "ck.safetensors")
        finally:
            os.close(holder)
        left = {p.name for p in tmp_path.iterdir()}
        assert names["stale"] not in left
        assert left == {"ck.safetensors", *[n for k, n in names.items() if k != "stale"]}
        assert np.array_equal(fastnn.load(tmp_path / "ck.safetensors").forward(X), m.forward(X))
        # the lock released (its writer died too): now it goes, with the plain writes as well
        write_atomic(tmp_path / "ck.safetensors", b"x")
        assert names["locked (a writer elsewhere)"] not in {p.name for p in tmp_path.iterdir()}
        assert remove_stale_temps(tmp_path / "ck2.safetensors") == [tmp_path / names["other target"]]
    finally:
        sleeper.kill()
        sleeper.wait()


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
