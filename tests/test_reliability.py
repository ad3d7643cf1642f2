"""Reliability: nothing is lost, results are reproducible, long runs do not leak, threads do not
interfere, and the numerics stay finite where they should.

* **No data lost.** A process SIGKILLed at a random moment while saving checkpoints (large enough
  that the kill often lands mid-write) always leaves a loadable checkpoint holding one complete
  version; a training run killed at a random moment resumes from its last checkpoint and ends
  with the very same weights as a run that was never interrupted.
* **Reproducibility.** The same seed gives bitwise identical weights (and batch-norm running
  statistics) after training with dropout and batch norm, in float32 and float64, with 1 thread
  and with all threads, in separate processes.

  Where it cannot hold, by design:

  - *across machines*: the SIMD level is chosen at run time (AVX-512 / AVX2 / baseline) and
    vector widths change the order of floating-point reductions, and OpenBLAS picks its GEMM
    kernel per CPU; bitwise identity is promised on one machine (any thread count), not between
    CPUs of different generations;
  - *the functional API's unseeded dropout* (``dropout_param`` without ``'seed'``) draws a
    per-process random key on purpose (a fresh mask every call, like CS231n's ``np.random``);
    pass ``'seed'`` for reproducible masks;
  - *a model built with* ``seed=None`` takes a random seed (recorded as ``model.seed``);
  - *the same row in a batch of another size*: BLAS blocks a GEMM by its shape, so a row's outputs
    can differ in the last bit between ``predict(X)`` and ``predict(X[:10])`` (or between models
    whose workspaces -- ``max_batch`` -- split a prediction into different chunks). Training is
    unaffected: the same seed gives the same batches;
  - *L-BFGS* (SciPy) is reproducible from run to run, but SciPy's own code is outside this promise.
* **Long runs.** 20,000 training steps (and 20,000 calls of the functional API) keep the resident
  memory flat and the number of Python objects stable. Leaks in the C++ core are checked by
  LeakSanitizer (tests/test_sanitizers.py) and valgrind (tests/test_cpp.py).
* **Concurrency.** Kernels release the GIL (Python threads run while C++ trains); two models trained
  at once from two threads end bitwise equal to training them one after the other; one model used
  from two threads at once refuses the second call with a clear ``RuntimeError`` and the refused
  call changes nothing.
* **Numerical robustness.** Softmax / cross-entropy with logits of +-1e4, batch norm with a constant
  feature, Adam (and the other adaptive steps) with zero gradients, and float32 training of a
  10-layer network all stay finite.
"""

from __future__ import annotations

import gc
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fastnn
import numpy as np
import pytest
from fastnn import _core, optim
from fastnn import functional as F

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "FASTNN_NUM_THREADS")}
    env.update(extra)
    return env


def _data(n=600, d=16, c=4, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((c, d)) * 2
    y = rng.integers(0, c, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(dtype), y


# ------------------------------------------------------------------------------------------------
# No data lost
# ------------------------------------------------------------------------------------------------
_SAVER = """
import sys, numpy as np, fastnn
path = sys.argv[1]
m = fastnn.Sequential([fastnn.Dense(256, 1536), fastnn.ReLU(), fastnn.Dense(1536, 1536), fastnn.ReLU(),
                       fastnn.Dense(1536, 10)], seed=0)
v = 0
while True:
    v += 1
    for p in m.params.values():
        p[...] = v           # version v: every parameter equals v
    m.save(path)
    print(v, flush=True)     # version v is complete on disk
"""


def test_sigkill_at_random_moments_while_saving_never_loses_the_checkpoint(tmp_path):
    pytest.importorskip("safetensors", reason="checkpoints need safetensors (extra [io])")
    path = tmp_path / "ck.safetensors"
    rnd = random.Random(1234)
    for trial in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True,
                                env=_env(FASTNN_NUM_THREADS="1"))
        try:
            done = int(proc.stdout.readline())  # the first version is safely on disk
            assert done >= 1
            time.sleep(rnd.uniform(0.0, 0.4))   # then kill it somewhere in a later save
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            rest = proc.stdout.read().split()
        finally:
            if proc.poll() is None:  # pragma: no cover - only when an assertion fired first
                proc.kill()
                proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        last_complete = int(rest[-1]) if rest else done
        m = fastnn.load(path)  # always loadable ...
        values = {float(np.unique(p)[0]) for p in m.params.values() if np.unique(p).size == 1}
        assert len(values) == 1 and all(np.unique(p).size == 1 for p in m.params.values())
        v = int(values.pop())  # ... and holds one complete version, the last or the one in flight
        assert v in (last_complete, last_complete + 1), (trial, v, last_complete)


_TRAINER = """
import os, random, signal, sys, threading, time
import numpy as np, fastnn
from fastnn.callbacks import ModelCheckpoint
path, delay = sys.argv[1], float(sys.argv[2])
rng = np.random.default_rng(0)
centers = rng.standard_normal((4, 16)) * 2
y = rng.integers(0, 4, 3000)
X = (centers[y] + rng.standard_normal((3000, 16))).astype(np.float32)
m = fastnn.MLP(16, [256, 256], 4, batchnorm=True, dropout=0.2, seed=5)
def killer():
    while not os.path.exists(path):
        time.sleep(0.001)
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGKILL)
threading.Thread(target=killer, daemon=True).start()
m.fit(X, y, optimizer=fastnn.optim.Adam(lr=1e-3), epochs=40, batch_size=32,
      callbacks=[ModelCheckpoint(path)], validation_data=(X[:200], y[:200]))
print("finished before the kill", flush=True)
"""


def test_training_killed_at_a_random_moment_resumes_to_the_same_weights(tmp_path):
    pytest.importorskip("safetensors", reason="checkpoints need safetensors (extra [io])")
    from fastnn.callbacks import ModelCheckpoint

    rng = np.random.default_rng(0)  # the child's data, exactly
    centers = rng.standard_normal((4, 16)) * 2
    y = rng.integers(0, 4, 3000)
    X = (centers[y] + rng.standard_normal((3000, 16))).astype(np.float32)

    def fresh():
        return fastnn.MLP(16, [256, 256], 4, batchnorm=True, dropout=0.2, seed=5)

    path = tmp_path / "run.safetensors"
    for delay in (0.02, 0.3):
        if path.exists():
            path.unlink()
        out = subprocess.run([sys.executable, "-c", _TRAINER, str(path), str(delay)], capture_output=True, text=True,
                             env=_env(FASTNN_NUM_THREADS="1"), timeout=300)
        assert out.returncode == -signal.SIGKILL, out.stdout + out.stderr[-2000:]
        done = fastnn.load(path).checkpoint["trainer"]["epoch"]  # the last epoch saved before the kill
        epochs = done + 2
        ref = fresh()  # the same run, never interrupted
        h_ref = ref.fit(X, y, optimizer=optim.Adam(lr=1e-3), epochs=epochs, batch_size=32,
                        validation_data=(X[:200], y[:200]))
        resumed = fresh()
        trainer = fastnn.Trainer(resumed, optim.Adam(lr=1e-3), callbacks=[ModelCheckpoint(path)])
        trainer.fit(X, y, epochs=epochs, batch_size=32, validation_data=(X[:200], y[:200]), resume_from=path)
        assert resumed.step == ref.step
        for k, v in ref.get_weights().items():
            assert np.array_equal(resumed.get_weights()[k], v), f"{k} differs after resuming at epoch {done}"
        assert trainer.history.history["loss"] == h_ref.history["loss"]  # the history survived too


# ------------------------------------------------------------------------------------------------
# Reproducibility across processes and thread counts
# ------------------------------------------------------------------------------------------------
_REPRO = """
import hashlib, sys, numpy as np, fastnn
dtype = np.dtype(sys.argv[1])
rng = np.random.default_rng(0)
centers = rng.standard_normal((5, 40)) * 2
y = rng.integers(0, 5, 700)
X = (centers[y] + rng.standard_normal((700, 40))).astype(dtype)
h = hashlib.sha256()
for opt in (fastnn.optim.Adam(lr=2e-3), fastnn.optim.SGD(lr=0.05, momentum=0.9)):
    m = fastnn.MLP(40, [300, 200], 5, batchnorm=True, dropout=0.3, seed=11, dtype=dtype, l2=1e-4)
    m.fit(X, y, optimizer=opt, epochs=3, batch_size=64)         # the epoch loop in C++
    for i in range(5):                                           # single steps, then a batch of 2
        m.train_step(X[i * 37:(i + 1) * 37], y[i * 37:(i + 1) * 37], opt)
    m.train_step(X[:2], y[:2], opt)                              # (batch norm refuses 1 row in training)
    for k, v in sorted(m.get_weights().items()):
        h.update(k.encode()); h.update(np.ascontiguousarray(v).tobytes())
    h.update(np.ascontiguousarray(m.predict_proba(X)).tobytes())
print(fastnn.get_num_threads(), h.hexdigest())
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_bits_across_processes_and_thread_counts(dtype):
    all_threads = max(2, os.cpu_count() or 2)
    digests = {}
    for threads in (1, all_threads, 1):
        out = subprocess.run([sys.executable, "-c", _REPRO, dtype], capture_output=True, text=True, check=True,
                             env=_env(FASTNN_NUM_THREADS=str(threads)), timeout=300)
        n, digest = out.stdout.split()
        assert int(n) == threads
        digests.setdefault(threads, set()).add(digest)
    assert len(digests[1]) == 1, "two processes with 1 thread disagree"
    assert digests[1] == digests[all_threads], f"1 thread and {all_threads} threads disagree"


def test_functional_dropout_with_a_seed_is_reproducible_across_processes():
    code = ("import numpy as np, fastnn.functional as F; x = np.ones((50, 40));"
            "out, _ = F.dropout_forward(x, {'p': 0.5, 'mode': 'train', 'seed': 7}); print(out.tobytes().hex())")
    a, b = (subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2))
    assert a == b


# ------------------------------------------------------------------------------------------------
# Long runs: memory and Python objects stay flat
# ------------------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def _flat(run, steps: int, warmup: int, max_growth_bytes: int = 8 << 20, max_new_objects: int = 200) -> None:
    run(warmup)  # first-touch allocations, caches, lazily imported modules
    rss0, obj0 = _rss_bytes(), _objects()
    run(steps)
    rss1, obj1 = _rss_bytes(), _objects()
    # a leak of even one batch (32 x 8 floats) per step would grow RSS by 20 MB over 20,000 steps
    assert rss1 - rss0 < max_growth_bytes, f"RSS grew by {(rss1 - rss0) / 2**20:.1f} MiB over {steps} steps"
    assert obj1 - obj0 < max_new_objects, f"{obj1 - obj0} more Python objects after {steps} steps"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_twenty_thousand_train_steps_keep_memory_and_objects_flat(dtype):
    X, y = _data(n=32 * 10, d=8, c=3, dtype=dtype)
    m = fastnn.MLP(8, [16], 3, batchnorm=True, dropout=0.1, seed=0, dtype=dtype)
    opt = optim.Adam(lr=1e-3)
    m.attach_optimizer(opt)
    batches = [(X[i:i + 32], y[i:i + 32]) for i in range(0, len(X), 32)]

    def run(n):
        for s in range(n):
            xb, yb = batches[s % len(batches)]
            m.train_step(xb, yb)

    _flat(run, 20_000, 2_000)
    assert np.all(np.isfinite(m._net.params))


def test_twenty_thousand_steps_through_fit_evaluate_and_predict_keep_memory_flat():
    X, y = _data(n=320, d=8, c=3)
    m = fastnn.MLP(8, [16], 3, batchnorm=True, dropout=0.1, seed=0)

    def run(steps):  # 10 steps per epoch
        m.fit(X, y, optimizer="adam", epochs=max(1, steps // 10), batch_size=32, validation_data=(X, y))
        for _ in range(steps // 1000):
            m.predict(X)
            m.evaluate(X, y)

    _flat(run, 20_000, 2_000)


def test_twenty_thousand_functional_calls_keep_memory_flat():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((32, 8)), rng.standard_normal((8, 5)), np.zeros(5)
    y = rng.integers(0, 5, 32)
    bn = {"mode": "train"}
    cfg: dict = {}

    def run(n):
        nonlocal w
        for _ in range(n):
            h, c1 = F.affine_forward(x, w, b)
            h, c2 = F.batchnorm_forward(h, np.ones(5), np.zeros(5), bn)
            h, c3 = F.dropout_forward(h, {"p": 0.8, "mode": "train", "seed": 1})
            loss, d = F.softmax_loss(h, y)
            d = F.dropout_backward(d, c3)
            d, _, _ = F.batchnorm_backward(d, c2)
            _, dw, _ = F.affine_backward(d, c1)
            w, _ = F.adam(w, dw, cfg)

    _flat(run, 20_000, 1_000)


# ------------------------------------------------------------------------------------------------
# Concurrency
# ------------------------------------------------------------------------------------------------
def test_kernels_release_the_gil():
    """While one thread trains (in C++), another Python thread keeps running."""
    X, y = _data(n=20000, d=64)
    m = fastnn.MLP(64, [512, 512], 4, seed=0)
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    m.attach_optimizer("sgd")
    m._reserve(len(X))
    t = threading.Thread(target=count)
    t.start()
    try:
        ticks_before = ticks
        t0 = time.perf_counter()
        m._net.loss_and_grad(np.ascontiguousarray(X), y.astype(np.int64), True)  # one long C++ call
        elapsed = time.perf_counter() - t0
        during = ticks - ticks_before
    finally:
        stop.set()
        t.join()
    # with the GIL held the other thread could not tick at all during the call (switch interval 5 ms)
    assert elapsed > 0.01 and during > 100, (elapsed, during)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_models_trained_at_once_match_training_them_one_after_the_other(dtype):
    X, y = _data(n=1500, d=24, c=4, dtype=dtype)

    def run(seed, out, threads):
        with fastnn.threads(threads):  # each thread also runs its own OpenMP team
            m = fastnn.MLP(24, [96, 64], 4, batchnorm=True, dropout=0.2, seed=seed, dtype=dtype)
            m.fit(X, y, optimizer=optim.Adam(lr=1e-3), epochs=3, batch_size=40)
            for i in range(20):
                m.train_step(X[i * 30:(i + 1) * 30], y[i * 30:(i + 1) * 30])
            out[seed] = (m.get_weights(), m.predict_proba(X))

    seq: dict = {}
    run(1, seq, 1)
    run(2, seq, 1)
    par: dict = {}
    ts = [threading.Thread(target=run, args=(s, par, 2)) for s in (1, 2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for s in (1, 2):
        for k, v in seq[s][0].items():
            assert np.array_equal(par[s][0][k], v), f"model {s}: {k} differs"
        assert np.array_equal(par[s][1], seq[s][1])


def test_a_refused_second_caller_changes_nothing():
    """One model, two threads: while one thread trains (one long call into C++), every call from the
    other is refused with a RuntimeError naming the reason, and the training ends exactly as it
    would have alone."""
    X, y = _data(n=4000, d=32, c=4)
    y = y.astype(np.int64)
    order = np.concatenate([np.random.default_rng(e).permutation(len(X)) for e in range(5)])
    steps = -(-len(order) // 64)
    lrs, mus = np.full(steps, 0.05), np.full(steps, 0.9)

    def fresh():
        m = fastnn.MLP(32, [256, 256], 4, batchnorm=True, dropout=0.2, seed=3)
        m.attach_optimizer(optim.SGD(lr=0.05, momentum=0.9))
        m._reserve(64)
        return m

    alone = fresh()
    alone._net.train_epoch(X, y, order, 64, lrs, mus)
    m = fresh()
    refusals: list[str] = []
    inside = threading.Event()
    done = threading.Event()

    def train():
        inside.set()
        while True:  # (should the other thread get in first, retrying changes nothing)
            try:
                m._net.train_epoch(X, y, order, 64, lrs, mus)
                break
            except RuntimeError:
                continue
        done.set()

    t = threading.Thread(target=train)
    t.start()
    inside.wait()
    calls = (lambda: m.forward(X[:10]), lambda: m.predict_proba(X[:10]), lambda: m.evaluate(X[:50], y[:50]),
             lambda: m.loss_and_grad(X[:10], y[:10]), lambda: m.capture(X[:10], y[:10]),
             lambda: m._net.reserve(100000))
    while not done.is_set():
        for call in calls:
            try:
                call()
            except RuntimeError as exc:
                refusals.append(str(exc))
    t.join()
    assert refusals and all("another thread" in r for r in refusals), refusals[:3]
    for k, v in alone.get_weights().items():
        assert np.array_equal(m.get_weights()[k], v), f"{k} was changed by a refused call"
    alone._net.reserve(100000)  # (same workspace, same batching of the rows: GEMM blocking follows the shape)
    assert np.array_equal(m.forward(X), alone.forward(X))  # and the model works afterwards


def test_functional_api_from_many_threads_at_once():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((200, 300)) for _ in range(4)]
    w = rng.standard_normal((300, 100))
    want = [F.affine_forward(x, w, None)[0] for x in xs]
    got: dict[int, np.ndarray] = {}

    def work(i):
        for _ in range(20):
            got[i] = F.softmax(F.affine_forward(xs[i], w, None)[0])

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i in range(4):
        assert np.array_equal(got[i], F.softmax(want[i]))


# ------------------------------------------------------------------------------------------------
# Numerical robustness
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_cross_entropy_with_huge_logits_stay_finite(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [-1e4, 1e4, 1e4 - 1]], dtype)
    y = np.array([0, 2, 2, 1])
    p = F.softmax(x)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1)
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)
    for eps in (0.0, 0.1):
        loss, dx = F.softmax_loss(x, y, label_smoothing=eps)
        assert np.isfinite(loss) and np.all(np.isfinite(dx))
    loss, dx = F.softmax_loss(x, y)
    # row losses: 0, log 3, 2e4 + log 2, ~1 + log(1 + e^-1): the exact mean, no overflow
    want = (0 + np.log(3) + 2e4 + np.log(2) + np.log1p(np.exp(-1.0)) + 0) / 4
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    loss_svm, dsvm = F.svm_loss(x, y)
    assert np.isfinite(loss_svm) and np.all(np.isfinite(dsvm))
    m = fastnn.Sequential([fastnn.Dense(3, 3, bias=False)], dtype=dtype, seed=0)
    m.set_weights({"0.weight": np.eye(3, dtype=dtype)})
    ev = m.evaluate(x, y)
    assert np.isfinite(ev["loss"]) and np.all(np.isfinite(m.predict_proba(x)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_with_a_constant_feature_stays_finite(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(dtype)
    x[:, 1] = 3.0  # zero variance
    gamma, beta = np.ones(4, dtype), np.full(4, 0.5, dtype)
    bn = {"mode": "train"}
    out, cache = F.batchnorm_forward(x, gamma, beta, bn)
    assert np.all(np.isfinite(out)) and np.all(out[:, 1] == beta[1])
    dx, dg, db = F.batchnorm_backward(rng.standard_normal((64, 4)).astype(dtype), cache)
    assert all(np.all(np.isfinite(a)) for a in (dx, dg, db))
    bn["mode"] = "test"
    out_t, cache_t = F.batchnorm_forward(x, gamma, beta, bn)
    assert np.all(np.isfinite(out_t))
    X = np.repeat(x, 4, axis=0)
    X[:, 2] = -7.0
    y = rng.integers(0, 3, len(X))
    m = fastnn.MLP(4, [8, 8], 3, batchnorm=True, seed=0, dtype=dtype)
    m.fit(X, y, optimizer="adam", epochs=5, batch_size=32)
    assert all(np.all(np.isfinite(v)) for v in m.get_weights().values())
    assert np.all(np.isfinite(m.predict_proba(X)))


@pytest.mark.parametrize("kind", ["adam", "adamw", "rmsprop", "adagrad", "adadelta", "rprop", "gains"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_steps_with_zero_gradients_stay_finite(kind, dtype):
    w = np.linspace(-1, 1, 24, dtype=dtype).reshape(4, 6)
    w0 = w.copy()
    n_state = {"adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1, "adadelta": 2, "rprop": 2, "gains": 3}[kind]
    states = [np.zeros_like(w) for _ in range(n_state)]
    hyper = {"learning_rate": 1e-3}
    for t in range(1, 101):
        extra = {"t": t} if kind.startswith("adam") else {}
        _core.optimizer_step(kind, w, states, np.zeros_like(w), **hyper, **extra)
        assert np.all(np.isfinite(w)) and all(np.all(np.isfinite(s)) for s in states), (kind, t)
    if kind in ("adam", "rmsprop", "adagrad", "adadelta"):
        assert np.array_equal(w, w0)  # a zero gradient moves nothing
    w_cfg, cfg = F.adam(w0.copy(), np.zeros_like(w0), {})
    assert np.array_equal(w_cfg, w0) and np.all(np.isfinite(cfg["m"])) and np.all(np.isfinite(cfg["v"]))
    # a model whose gradient is exactly zero (zero-initialised weights, ReLU dead at 0, L2 off)
    m = fastnn.Sequential([fastnn.Dense(4, 3, bias=False), fastnn.ReLU(), fastnn.Dense(3, 2, bias=False)],
                          dtype=dtype, seed=0)
    for p in m.params.values():
        p[...] = 0
    opt = {"adam": optim.Adam(), "adamw": optim.AdamW(), "rmsprop": optim.RMSProp(), "adagrad": optim.Adagrad(),
           "adadelta": optim.Adadelta(), "rprop": optim.Rprop(), "gains": optim.AdaptiveGains()}[kind]
    Xz = np.ones((8, 4), dtype)
    for _ in range(50):
        m.train_step(Xz, np.arange(8) % 2, opt)
    assert all(np.all(np.isfinite(v)) for v in m.params.values())


@pytest.mark.parametrize("activation,batchnorm", [("relu", False), ("tanh", False), ("sigmoid", False),
                                                  ("elu", True), ("relu", True)])
def test_float32_training_of_a_ten_layer_network_stays_finite(activation, batchnorm):
    X, y = _data(n=1024, d=20, c=5)
    m = fastnn.MLP(20, [64] * 10, 5, activation=activation, batchnorm=batchnorm, seed=0, dtype=np.float32)
    h = m.fit(X, y, optimizer=optim.Adam(lr=1e-3), epochs=4, batch_size=64)
    losses = h.history["loss"]
    assert all(np.isfinite(v) for v in losses)
    assert all(np.all(np.isfinite(v)) for v in m.get_weights().values())
    assert np.all(np.isfinite(m.predict_proba(X)))
    if activation != "sigmoid":  # (a 10-layer sigmoid net learns slowly, but stays finite)
        assert losses[-1] < losses[0]
