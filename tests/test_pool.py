"""fastnn's thread pool (cpp/src/pool.cpp) under the conditions users have: results bitwise the
same whatever the thread count or CPU affinity; threadpoolctl's limits reach fastnn; several
Python threads training at once each get the right answer; a forked child works (no hang); a
thread count above the machine's cores is harmless. (Speed under contention is measured by
benchmarks/bench_contention.py, not here.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import fastnn
import numpy as np
import pytest
from fastnn import _core, optim

CHILD_TIMEOUT = 120


def _train(seed: int = 0, threads: int | None = None, epochs: int = 2) -> np.ndarray:
    """A small net with every kernel family (dense, batch norm, dropout, PReLU, softmax, Adam)."""
    if threads is not None:
        fastnn.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((600, 40)).astype(np.float32)
    y = (X[:, :3].sum(axis=1) > 0).astype(np.int64) + 2 * (X[:, 3] > 0)
    model = fastnn.Sequential([fastnn.Dense(40, 300), fastnn.BatchNorm(), fastnn.PReLU(), fastnn.Dropout(0.9),
                               fastnn.Dense(300, 300), fastnn.ReLU(), fastnn.Dense(300, 4)], seed=seed, l2=1e-4)
    model.fit(X, y, epochs=epochs, batch_size=100, optimizer=optim.Adam(lr=1e-3))
    return np.concatenate([p.ravel() for p in model.params.values()]).copy()


def _run_child(code: str, env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CHILD_TIMEOUT,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def test_training_is_bitwise_the_same_for_any_thread_count():
    one = _train(threads=1)
    for n in (2, 3, 7, 64):  # more threads than cores too: harmless, and the same bits
        assert np.array_equal(one, _train(threads=n)), f"{n} threads differ from 1"


def test_training_is_bitwise_the_same_under_any_cpu_affinity_and_wait_policy():
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs sched_setaffinity and at least 2 CPUs")
    code = (
        "import os, sys, numpy as np; sys.path.insert(0, {tests!r});"
        "{pin}"
        "import fastnn; from test_pool import _train;"
        "w = _train(threads=fastnn.get_num_threads()); print(fastnn.get_num_threads(), w.tobytes().hex()[:0], "
        "__import__('hashlib').sha256(w.tobytes()).hexdigest())"
    )
    tests = os.path.dirname(__file__)
    first_cpu = min(os.sched_getaffinity(0))
    pinned = _run_child(code.format(tests=tests, pin=f"os.sched_setaffinity(0, {{{first_cpu}}});")).split()
    free = _run_child(code.format(tests=tests, pin="")).split()
    no_spin = _run_child(code.format(tests=tests, pin=""), env={"FASTNN_SPIN_US": "0"}).split()
    assert pinned[0] == "1", "a process pinned to one CPU must default to one thread"
    assert int(free[0]) == min(len(os.sched_getaffinity(0)), _core.hardware_threads())
    assert pinned[-1] == free[-1], "the weights depend on the CPU affinity"
    assert no_spin[-1] == free[-1], "the weights depend on the wait policy"


def test_threadpool_limits_reaches_fastnn():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl is in the test extra")
    fastnn.set_num_threads(3)
    assert _core.effective_threads() == 3 or _core.effective_threads() == os.cpu_count()
    with threadpoolctl.threadpool_limits(limits=1):
        assert _core.effective_threads() == 1
        limited = _train(threads=None)
    assert _core.effective_threads() >= 2
    assert np.array_equal(limited, _train(threads=1))


def test_several_python_threads_train_at_once_and_each_gets_its_answer():
    fastnn.set_num_threads(2)
    want = {s: _train(seed=s, threads=None) for s in range(4)}
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            got[seed] = _train(seed=seed, threads=None)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=CHILD_TIMEOUT)
    assert not errors, errors
    for s in range(4):
        assert np.array_equal(got[s], want[s]), f"thread {s}: weights differ from the same run alone"
    assert _core.pool_workers() <= max(1, (os.cpu_count() or 1)) + 1  # no thread explosion


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_child_processes_work_after_threaded_calls(method, tmp_path):
    """The parent has used the pool (its workers exist); a child made by fork() (Python's default
    on Linux), forkserver or spawn trains and gets the parent's bits — no hang."""
    code = f"""
import multiprocessing as mp, sys, numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
import fastnn
from test_pool import _train

def child(q):
    q.put(_train(threads=2).tobytes())

if __name__ == "__main__":
    want = _train(threads=2)
    ctx = mp.get_context({method!r})
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    got = np.frombuffer(q.get(timeout=60), dtype=want.dtype)
    p.join(timeout=60)
    assert p.exitcode == 0, p.exitcode
    assert np.array_equal(got, want)
    print("ok")
"""
    script = tmp_path / "child_after_threads.py"  # spawn and forkserver re-import __main__ from a file
    script.write_text(code)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
    assert time.perf_counter() - t0 < CHILD_TIMEOUT


def test_os_fork_child_can_use_every_thread():
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    code = f"""
import os, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
import fastnn
from fastnn import _core
from test_pool import _train
fastnn.set_num_threads(2)
w = _train()
assert _core.pool_workers() >= 1
pid = os.fork()
if pid == 0:
    ok = (_core.pool_workers() == 0) and (_train() == w).all()  # a fresh pool, the same bits
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    assert _run_child(code).strip() == "0"


# (lines of /proc/self/cgroup, {file under the cgroup root: first line}, CPUs the quota allows)
CGROUP_CASES = [
    ("v2 no limit", "0::/user.slice\n", {"user.slice/cpu.max": "max 100000"}, 0),
    ("v2 two CPUs", "0::/docker/abc\n", {"docker/abc/cpu.max": "200000 100000"}, 2),
    ("v2 1.5 CPUs round up", "0::/k8s/pod\n", {"k8s/pod/cpu.max": "150000 100000"}, 2),
    ("v2 parent caps child", "0::/a/b\n", {"a/b/cpu.max": "max 100000", "a/cpu.max": "300000 100000"}, 3),
    ("v2 tighter child", "0::/a/b\n", {"a/b/cpu.max": "100000 100000", "a/cpu.max": "800000 100000"}, 1),
    ("v2 root only", "0::/\n", {"cpu.max": "400000 100000"}, 4),
    ("v2 unreadable", "0::/gone\n", {}, 0),
    ("v1 cpu,cpuacct", "4:cpu,cpuacct:/docker/x\n",
     {"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "250000", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000"}, 3),
    ("v1 no quota", "1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, 0),
    ("v1 other controllers only", "4:memory:/x\n2:cpuacct:/\n", {"memory/x/cpu.cfs_quota_us": "100000"}, 0),
    ("garbage", "nonsense\n:::\n0::\n", {"cpu.max": "lots 0"}, 0),
]


@pytest.mark.parametrize("lines,files,want", [c[1:] for c in CGROUP_CASES], ids=[c[0] for c in CGROUP_CASES])
def test_cgroup_cpu_quota_is_read(tmp_path, lines, files, want):
    (tmp_path / "self_cgroup").write_text(lines)
    root = tmp_path / "fs"
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    assert _core.cgroup_cpu_limit_at(str(tmp_path / "self_cgroup"), str(root)) == want


def test_default_thread_count_is_min_of_affinity_and_quota():
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _core.cgroup_cpu_limit()
    assert _core.hardware_threads() == (min(avail, quota) if quota else avail)
    out = _run_child("import fastnn; print(fastnn.get_num_threads())", env={"FASTNN_NUM_THREADS": "",
                                                                            "OMP_NUM_THREADS": ""})
    assert int(out) == _core.hardware_threads()
