"""fastnn.search: search spaces, coarse-to-fine narrowing, border warnings, the run folder
(checkpoint names, trials.jsonl), resume after a crash (stopped after k trials, SIGKILL, torn last
line), failed trials, the local-process and Dask backends (a real LocalCluster), Optuna, TOML
configs, the report and the CLI."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fastnn
import numpy as np
import pytest
from fastnn import search as S
from fastnn.search import Search, choice, loguniform, randint, uniform

pytest.importorskip("safetensors", reason="needs safetensors (optional; the test extra has it)")


def blobs(n: int = 400, d: int = 10, k: int = 4, seed: int = 0, spread: float = 2.5):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * spread
    y = rng.integers(0, k, n)
    X = centres[y] + rng.standard_normal((n, d))
    return X, y.astype(np.int64)


@pytest.fixture(scope="module")
def data():
    X, y = blobs(500)
    return X[:350], y[:350], X[350:], y[350:]


SPACE = {"lr": loguniform(1e-4, 1e-1), "dropout": uniform(0.0, 0.4), "width": randint(8, 32, log=True)}


def _run(tmp: Path, data, **kw):
    kw.setdefault("stages", [(5, 2)])
    kw.setdefault("seed", 0)
    max_trials = kw.pop("max_trials", None)
    return Search(kw.pop("space", SPACE), tmp, **kw).run(*data, max_trials=max_trials)


def _key(rec):
    return (rec["trial"], rec["status"], rec["val_acc"], rec["best_epoch"], json.dumps(rec["params"], sort_keys=True),
            rec["history"]["val_acc"])


# ---------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------
def test_distributions_sample_their_ranges_reproducibly():
    rng = np.random.default_rng(0)
    v = loguniform(1e-4, 1e-1).sample(rng, 4000)
    assert min(v) >= 1e-4 and max(v) <= 1e-1
    # uniform in log space: each of the three decades gets about a third
    dec = np.floor(np.log10(v)).astype(int)
    counts = np.bincount(dec + 4, minlength=3)[:3]
    assert np.all(np.abs(counts / 4000 - 1 / 3) < 0.04), counts
    u = uniform(0.2, 0.5).sample(rng, 1000)
    assert 0.2 <= min(u) and max(u) <= 0.5
    r = randint(3, 5).sample(rng, 300)
    assert set(r) == {3, 4, 5}  # both ends included
    rl = randint(8, 512, log=True).sample(rng, 2000)
    assert min(rl) >= 8 and max(rl) <= 512 and all(isinstance(x, int) for x in rl)
    assert np.median(rl) < 100  # log-uniform: the median is near sqrt(8 * 512) = 64
    c = choice([[64], [128, 64], "x"]).sample(rng, 300)
    assert {json.dumps(x) for x in c} == {"[64]", "[128, 64]", '"x"'}
    a = S._sample_params(SPACE, np.random.default_rng(5), 10)
    b = S._sample_params(SPACE, np.random.default_rng(5), 10)
    assert a == b


def test_parse_dist_forms_and_errors():
    assert S.parse_dist("loguniform(1e-4, 1e-1)") == loguniform(1e-4, 1e-1)
    assert S.parse_dist("randint(32, 512, log=true)") == randint(32, 512, log=True)
    assert S.parse_dist("randint(32, 512, log=True)") == randint(32, 512, log=True)
    assert S.parse_dist("choice([[64], [128, 64]])") == choice([[64], [128, 64]])
    assert S.parse_dist({"uniform": [0.0, 0.5]}) == uniform(0.0, 0.5)
    assert S.parse_dist([32, 64]) == choice([32, 64])
    for d in (loguniform(1e-3, 1.0), uniform(-1, 1), randint(1, 9, log=True), choice(["a", 2, [3]])):
        assert S.dist_from_dict(json.loads(json.dumps(d.to_dict()))) == d
        assert S.parse_dist(d.describe()) == d
    for bad, msg in (("__import__('os').system('x')", "expected"), ("loguniform(0, 1)", "0 < lo"),
                     ("uniform(2, 1)", "lo <= hi"), ("randint(1.5, 3)", "integer"), ("choice([])", "non-empty"),
                     (0.3, "not a distribution"), ("loguniform(1e-4,", "cannot read")):
        with pytest.raises(ValueError, match=msg):
            S.parse_dist(bad, "lr")


@pytest.mark.parametrize("dist", [
    choice([True, False]), choice([None, "null", "true", 0, 1, 1.0, -0.0]), choice(["café", "😀", 'a"b\\c', "\n"]),
    choice([{"a": [1, 2.5e-300]}, [[64], [128, 64]], 1e300, 10**30]), choice([(1, 2)]),
    loguniform(1.2345678901234567e-7, 0.1), loguniform(5e-324, 1e308), uniform(-0.0, 1 / 3), uniform(-2.5, -2.5),
    randint(-(10**20), 10**20), randint(1, 1, log=True), randint(3, 4096, log=True)], ids=repr)
def test_describe_reads_back_exactly(dist):
    back = S.parse_dist(dist.describe(), "x")
    assert type(back) is type(dist) and back == dist
    assert json.dumps(back.to_dict()) == json.dumps(dist.to_dict())  # True stays True, not 1


def test_describe_round_trips_for_random_distributions():
    hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis (extra [test])")
    st = hypothesis.strategies
    finite = st.floats(allow_nan=False, allow_infinity=False)
    positive = st.floats(min_value=0.0, exclude_min=True, allow_infinity=False)
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)  # no lone surrogates (not text)
    json_value = st.recursive(st.none() | st.booleans() | st.integers() | finite | text,
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                              max_leaves=8)
    dists = (st.tuples(positive, positive).map(lambda p: loguniform(min(p), max(p)))
             | st.tuples(finite, finite).map(lambda p: uniform(min(p), max(p)))
             | st.tuples(st.integers(), st.integers()).map(lambda p: randint(min(p), max(p)))
             | st.tuples(st.integers(1, 2**40), st.integers(0, 2**40)).map(
                 lambda p: randint(p[0], p[0] + p[1], log=True))
             | st.lists(json_value, min_size=1, max_size=4).map(choice))

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(dists)
    def check(dist):
        back = S.parse_dist(dist.describe(), "x")
        assert type(back) is type(dist) and back == dist
        assert json.dumps(back.to_dict()) == json.dumps(dist.to_dict())

    check()


def test_choice_options_must_be_finite_json():
    for bad in ([math.nan], [[1, math.inf]], [object()], [{1: "a"}.keys()]):
        with pytest.raises(ValueError, match="JSON values"):
            choice(bad)


def test_search_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="both searched and fixed"):
        Search(SPACE, tmp_path, fixed={"lr": 0.1})
    with pytest.raises(ValueError, match="unknown hyperparameters.*'lrr'"):
        Search({"lrr": loguniform(1e-3, 1e-1)}, tmp_path)
    with pytest.raises(ValueError, match="stages"):
        Search(SPACE, tmp_path, stages=[(5, 0)])
    with pytest.raises(ValueError, match="at most one"):
        Search(SPACE, tmp_path, workers=2, scheduler="tcp://x:1")
    with pytest.raises(ValueError, match="sampler"):
        Search(SPACE, tmp_path, sampler="grid")
    with pytest.raises(ValueError, match="unknown activation"):
        Search(SPACE, tmp_path, fixed={"activation": "swish"}).run(*blobs(40)[:2], *blobs(20)[:2])


# ---------------------------------------------------------------------------------------------
# coarse to fine, border warnings
# ---------------------------------------------------------------------------------------------
def _recs(values: list[dict], accs: list[float]):
    return [{"trial": i, "stage": 0, "status": "ok", "params": p, "val_acc": a}
            for i, (p, a) in enumerate(zip(values, accs, strict=True))]


def test_narrow_space_shrinks_around_the_best_in_log_space():
    space = {"lr": loguniform(1e-5, 1e-1), "dropout": uniform(0.0, 0.5), "w": randint(8, 512, log=True),
             "opt": choice(["adam", "sgd"])}
    lrs = [1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 1e-1, 2e-5, 5e-2]
    accs = [0.1, 0.3, 0.9, 0.95, 0.6, 0.2, 0.15, 0.3]  # best near 1e-3..3e-3
    vals = [{"lr": lr, "dropout": 0.1 + 0.01 * i, "w": 16 * (i + 1), "opt": "adam"} for i, lr in enumerate(lrs)]
    recs = _recs(vals, accs)
    new = S.narrow_space(space, space, recs, keep=0.25)  # the best 2: lr 3e-3 and 1e-3
    lo_t, hi_t = math.log(1e-3), math.log(3e-3)
    pad = max(0.25 * (hi_t - lo_t), 0.1 * (math.log(1e-1) - math.log(1e-5)))
    assert new["lr"].lo == pytest.approx(math.exp(lo_t - pad))
    assert new["lr"].hi == pytest.approx(math.exp(hi_t + pad))
    assert new["lr"].lo > 1e-5 and new["lr"].hi < 1e-1
    assert isinstance(new["lr"], S.LogUniform) and isinstance(new["w"], S.RandInt) and new["w"].log
    assert new["opt"] == space["opt"]  # choices are kept
    # clipped to the original range, never beyond it
    edge = S.narrow_space(space, space, _recs([{**v, "lr": 1e-1} for v in vals], accs))
    assert edge["lr"].hi == pytest.approx(1e-1) and edge["lr"].hi <= 1e-1
    # failed trials are ignored; nothing ok: unchanged
    failed = [{**r, "status": "failed"} for r in recs]
    assert S.narrow_space(space, space, failed) == space


def test_border_warnings_flag_a_best_value_on_an_edge():
    space = {"lr": loguniform(1e-5, 1e-1), "dropout": uniform(0.0, 0.5)}
    mid = _recs([{"lr": 1e-3, "dropout": 0.25}, {"lr": 1e-4, "dropout": 0.2}], [0.9, 0.8])
    assert S.border_warnings(space, mid) == []
    high = _recs([{"lr": 0.09, "dropout": 0.25}, {"lr": 1e-4, "dropout": 0.2}], [0.9, 0.8])
    (w,) = S.border_warnings(space, high)
    assert w.startswith("lr:") and "upper edge" in w and "above" in w
    low = _recs([{"lr": 1e-3, "dropout": 0.01}, {"lr": 1e-4, "dropout": 0.2}], [0.9, 0.8])
    (w,) = S.border_warnings(space, low)
    assert w.startswith("dropout:") and "lower edge" in w
    # a failed trial on the edge does not count
    failed = high + [{"trial": 9, "stage": 0, "status": "failed", "params": {"lr": 0.1, "dropout": 0.0},
                      "val_acc": None}]
    assert len(S.border_warnings(space, failed)) == 1


def test_border_warning_from_a_real_search(tmp_path, data):
    """Learning rates that are all too small for 2 epochs: accuracy grows with lr, so the best trial has
    the largest lr, which (seed 1, 12 trials) lies in the top 10 % of the range's log scale."""
    res = _run(tmp_path, data, space={"lr": loguniform(1e-5, 1e-3)}, stages=[(12, 2)], seed=1,
               fixed={"optimizer": "adam", "width": 64, "batch_size": 8})
    lrs = sorted(r["params"]["lr"] for r in res.trials)
    assert res.best["params"]["lr"] == lrs[-1]
    assert res.space["lr"].position(lrs[-1]) >= 0.9
    (w,) = res.warnings
    assert w.startswith("lr:") and "upper edge" in w


def test_stages_narrow_the_ranges(tmp_path, data):
    res = _run(tmp_path, data, stages=[(8, 2), (4, 3)], keep=0.25)
    assert len(res.stages) == 2 and all(st["complete"] for st in res.stages)
    s0, s1 = res.stages[0]["space"], res.stages[1]["space"]
    stage0 = [r for r in res.trials if r["stage"] == 0]
    stage1 = [r for r in res.trials if r["stage"] == 1]
    assert len(stage0) == 8 and len(stage1) == 4
    assert all(r["epochs"] == 3 for r in stage1)
    best0 = S._ok(stage0)[0]
    for name in ("lr", "dropout"):
        assert s0[name].lo <= s1[name].lo <= s1[name].hi <= s0[name].hi
        assert (s1[name].hi - s1[name].lo) < (s0[name].hi - s0[name].lo)
        assert s1[name].lo <= best0["params"][name] <= s1[name].hi
        for r in stage1:
            assert s1[name].lo <= r["params"][name] <= s1[name].hi
    doc = json.loads((tmp_path / "stages.json").read_text())
    assert doc["stages"][1]["describe"]["lr"] == s1["lr"].describe()


# ---------------------------------------------------------------------------------------------
# the run folder
# ---------------------------------------------------------------------------------------------
def test_checkpoints_and_trial_lines(tmp_path, data):
    res = _run(tmp_path, data, stages=[(4, 3)], fixed={"batchnorm": True}, preprocessing={"kind": "none"})
    lines = (tmp_path / "trials.jsonl").read_text().splitlines()
    assert len(lines) == 4 and len(res.trials) == 4
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert len(names) == 4
    for rec in res.trials:
        assert rec["status"] == "ok" and rec["epochs_run"] == 3 and len(rec["history"]["val_acc"]) == 3
        assert rec["val_acc"] == max(rec["history"]["val_acc"])
        assert rec["best_epoch"] == 1 + int(np.argmax(rec["history"]["val_acc"]))
        name = Path(rec["checkpoint"]).name
        assert name == f"{rec['val_acc']:.4f}_{rec['trial']}_{rec['best_epoch']}.safetensors"
        assert re.fullmatch(r"\d\.\d{4}_\d+_\d+\.safetensors", name)
        model = res.load_model(rec)  # the weights of the best epoch
        assert model.score(data[2], data[3]) == pytest.approx(rec["val_acc"], abs=1e-12)
        assert model.checkpoint["extra"]["params"] == rec["params"]
        assert model.checkpoint["preprocessing"] == {"kind": "none"}
    assert not list(tmp_path.glob("checkpoints/.*"))  # no temporary files left


def test_failed_trial_is_recorded_and_the_search_goes_on(tmp_path, data):
    res = _run(tmp_path, data, space={"lr": choice([0.05, 1e9])}, stages=[(6, 2)],
               fixed={"optimizer": "sgd", "width": 16})
    failed, ok = res.failed, res.top()
    assert failed and ok and len(failed) + len(ok) == 6
    for r in failed:
        assert r["params"]["lr"] == 1e9
        assert r["error"].startswith("NonFiniteLossError") and r["checkpoint"] is None
    assert all(r["params"]["lr"] == 0.05 for r in ok)
    assert "failed" in res.summary() and S.write_report(tmp_path).exists()


def test_resume_after_stopping_after_k_trials(tmp_path, data):
    full = _run(tmp_path / "full", data, stages=[(5, 2), (3, 2)])
    part = _run(tmp_path / "part", data, stages=[(5, 2), (3, 2)], max_trials=3)
    assert len(part.trials) == 3
    before = (tmp_path / "part" / "trials.jsonl").read_bytes()
    again = _run(tmp_path / "part", data, stages=[(5, 2), (3, 2)])
    after = (tmp_path / "part" / "trials.jsonl").read_bytes()
    assert after.startswith(before)  # finished trials are kept as they were, not re-run
    assert sorted(r["trial"] for r in again.trials) == list(range(8))
    # unfinished trials re-ran deterministically: the same results as an uninterrupted search
    assert sorted(map(_key, again.trials)) == sorted(map(_key, full.trials))


def test_resume_tolerates_a_torn_last_line_and_orphans(tmp_path, data):
    _run(tmp_path, data, stages=[(4, 2)], max_trials=2)
    path = tmp_path / "trials.jsonl"
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"trial": 3, "stage": 0, "status": "o')  # a crash mid-append
    (tmp_path / "checkpoints" / "0.5000_3_1.safetensors").write_bytes(b"orphan")  # no line for trial 3
    (tmp_path / "checkpoints" / ".x.safetensors.tmp-1-abc").write_bytes(b"tmp")
    res = _run(tmp_path, data, stages=[(4, 2)])
    text = path.read_bytes()
    assert text.startswith(good) and b'"status": "o\n' not in text
    assert sorted(r["trial"] for r in res.trials) == [0, 1, 2, 3]
    assert all(json.loads(line) for line in text.decode().splitlines())
    names = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert "0.5000_3_1.safetensors" not in names and not any(n.startswith(".") for n in names)
    assert len(names) == 4


def test_damaged_middle_line_and_other_search_are_refused(tmp_path, data):
    _run(tmp_path, data, stages=[(3, 2)])
    with pytest.raises(ValueError, match="different search.*space"):
        _run(tmp_path, data, stages=[(3, 2)], space={"lr": loguniform(1e-3, 1e-1)})
    with pytest.raises(ValueError, match="data"):
        _run(tmp_path, (data[0] + 1, *data[1:]), stages=[(3, 2)])
    path = tmp_path / "trials.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="line 2 is damaged"):
        S.load_search(tmp_path)


def test_one_search_per_folder(tmp_path, data):
    tmp_path.mkdir(exist_ok=True)
    with S._lock(tmp_path), pytest.raises(RuntimeError, match="another search"):
        _run(tmp_path, data, stages=[(2, 1)])


_CRASH_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from fastnn.search import Search, loguniform, uniform, randint
    d = np.load(sys.argv[2])
    space = {"lr": loguniform(1e-4, 1e-1), "dropout": uniform(0.0, 0.4), "width": randint(8, 32, log=True)}
    Search(space, sys.argv[1], stages=[(14, 6)], seed=3).run(d["Xtr"], d["ytr"], d["Xva"], d["yva"])
""")


def test_resume_after_sigkill_loses_no_finished_trial(tmp_path):
    X, y = blobs(2000, d=32, seed=1)
    np.savez(tmp_path / "d.npz", Xtr=X[:1600], ytr=y[:1600], Xva=X[1600:], yva=y[1600:])
    script = tmp_path / "crash.py"
    script.write_text(_CRASH_SCRIPT)
    run = tmp_path / "run"
    env = {**os.environ, "FASTNN_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(run), str(tmp_path / "d.npz")], env=env)
    lines_path = run / "trials.jsonl"
    t0 = time.time()
    try:
        while time.time() - t0 < 120:
            if lines_path.exists() and lines_path.read_bytes().count(b"\n") >= 2:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    killed_mid_search = proc.returncode == -signal.SIGKILL
    before, _ = S._read_trials(lines_path)
    assert len(before) >= 2
    d = np.load(tmp_path / "d.npz")
    space = {"lr": loguniform(1e-4, 1e-1), "dropout": uniform(0.0, 0.4), "width": randint(8, 32, log=True)}
    res = Search(space, run, stages=[(14, 6)], seed=3).run(d["Xtr"], d["ytr"], d["Xva"], d["yva"])
    ids = [r["trial"] for r in res.trials]
    assert sorted(ids) == list(range(14)) and len(set(ids)) == 14
    for old in before:  # every trial finished before the kill is still there, unchanged
        (new,) = [r for r in res.trials if r["trial"] == old["trial"]]
        assert new == old
    assert killed_mid_search or len(before) == 14


# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------
def test_local_processes_give_the_in_process_results(tmp_path, data):
    ref = _run(tmp_path / "a", data, stages=[(4, 2)])
    res = _run(tmp_path / "b", data, stages=[(4, 2)], workers=2)
    assert sorted(map(_key, res.trials)) == sorted(map(_key, ref.trials))
    cores = S._cores()
    workers = {r["worker"] for r in res.trials}
    assert all(w.split(":")[1] != str(os.getpid()) for w in workers)
    for r in res.trials:
        assert r["threads"] * min(2, cores) <= cores


def test_dask_local_cluster(tmp_path, data):
    distributed = pytest.importorskip("distributed", reason="needs distributed (optional; the test extra has it)")
    ref = _run(tmp_path / "ref", data, stages=[(4, 2), (2, 2)])
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        res = _run(tmp_path / "client", data, stages=[(4, 2), (2, 2)], client=client)
        assert sorted(map(_key, res.trials)) == sorted(map(_key, ref.trials))
        pids = {r["worker"].split(":")[1] for r in res.trials}
        worker_pids = set(map(str, client.run(os.getpid).values()))
        assert pids <= worker_pids and str(os.getpid()) not in pids
        cores = S._cores()
        assert all(r["threads"] == max(1, cores // 2) for r in res.trials)  # 2 slots on this host
        # through a scheduler address (the search opens and closes its own client), resuming
        part = _run(tmp_path / "addr", data, stages=[(4, 2), (2, 2)], scheduler=cluster.scheduler_address,
                    max_trials=3)
        assert len(part.trials) == 3
        res2 = _run(tmp_path / "addr", data, stages=[(4, 2), (2, 2)], scheduler=cluster.scheduler_address)
        assert sorted(map(_key, res2.trials)) == sorted(map(_key, ref.trials))


def test_optuna_tpe_with_median_pruner(tmp_path, data):
    pytest.importorskip("optuna", reason="needs optuna (optional; the test extra has it)")
    res = _run(tmp_path, data, stages=[(8, 3)], sampler="tpe", pruner="median", max_trials=6)
    assert len(res.trials) == 6
    assert {r["status"] for r in res.trials} <= {"ok", "pruned"}
    for r in res.trials:
        assert 1e-4 <= r["params"]["lr"] <= 1e-1 and 8 <= r["params"]["width"] <= 32
        if r["status"] == "pruned":
            assert r["epochs_run"] < 3 and r["checkpoint"] is None
    first = (tmp_path / "trials.jsonl").read_bytes()
    res = _run(tmp_path, data, stages=[(8, 3)], sampler="tpe", pruner="median")
    assert sorted(r["trial"] for r in res.trials) == list(range(8))
    assert (tmp_path / "trials.jsonl").read_bytes().startswith(first)
    with pytest.raises(ValueError, match="in-process"):
        Search(SPACE, tmp_path, sampler="tpe", pruner="median", workers=2)


# ---------------------------------------------------------------------------------------------
# results, report, configs and the CLI
# ---------------------------------------------------------------------------------------------
def test_result_and_report(tmp_path, data):
    res = _run(tmp_path, data, stages=[(6, 2), (3, 2)])
    assert res.best == res.top(1)[0]
    assert [r["val_acc"] for r in res.top()] == sorted((r["val_acc"] for r in res.top()), reverse=True)
    out = tmp_path / "rep"
    html_path = S.write_report(tmp_path, out)
    assert html_path == out / "report.html"
    text = html_path.read_text()
    assert text.count("data:image/png;base64,") == 3
    for png in ("search_params.png", "search_curves.png", "search_progress.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{res.best['val_acc']:.4f}" in text and "loguniform" in text and "Border warnings" in text
    for w in res.warnings:
        assert w.split(":")[0] in text
    fig = S.plot_params(res)  # log axes for the log-scaled ranges
    scales = {ax.get_xlabel().split()[0]: ax.get_xscale() for ax in fig.axes}
    assert scales == {"dropout": "linear", "lr": "log", "width": "log"}
    assert "rank" in res.summary() and str(res.best["trial"]) in res.summary()


def test_report_of_a_partial_search(tmp_path, data):
    _run(tmp_path, data, stages=[(4, 2)], max_trials=1)
    text = S.write_report(tmp_path).read_text()
    assert "1 of 4 planned trials" in text


_TOML = """
[data]
name = "spiral"
samples = 60
classes = 3
val = 0.2
test = 0.2

[search]
stages = [[3, 2]]
seed = 1
top_k = 2

[fixed]
batchnorm = true

[space]
lr = "loguniform(1e-3, 1e-1)"
width = {randint = [8, 32]}
depth = [1, 2]
"""


def test_config_file_and_cli(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(_TOML)
    out = tmp_path / "run"
    from fastnn.cli import main

    assert main(["search", str(cfg), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy: best trial" in text and "report:" in text
    assert len(S.load_search(out).trials) == 3 and (out / "report.html").exists()
    assert main(["search", str(cfg), "--out", str(out), "--quiet"]) == 2  # exists: needs --resume
    assert "--resume" in capsys.readouterr().err
    assert main(["search", str(cfg), "--out", str(out), "--quiet", "--resume"]) == 0
    assert len(S.load_search(out).trials) == 3
    bad = tmp_path / "bad.toml"
    bad.write_text(_TOML.replace('lr = "loguniform(1e-3, 1e-1)"', 'lr = "loguniform(1e-3"'))
    assert main(["search", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "hyperparameter 'lr'" in capsys.readouterr().err


def test_example_config_parses():
    cfg = S.load_config(Path(__file__).resolve().parents[1] / "examples" / "search.toml")
    space = {k: S.parse_dist(v, k) for k, v in cfg["space"].items()}
    assert space["lr"].log and space["width"] == randint(32, 512, log=True)
    Search(space, "unused", stages=[tuple(s) for s in cfg["search"]["stages"]], fixed=cfg["fixed"])


def test_build_model_and_optimizer_from_a_config():
    m = S.build_model({"hidden": "32,16", "batchnorm": True, "dropout": 0.2, "activation": "tanh", "l2": 1e-3},
                      10, 3, seed=4)
    assert [type(lay).__name__ for lay in m.layers] == ["Dense", "BatchNorm", "Tanh", "Dropout", "Dense",
                                                        "BatchNorm", "Tanh", "Dropout", "Dense"]
    assert m.l2 == 1e-3 and m.seed == 4
    assert S._hidden({"width": 24, "depth": 3}) == [24, 24, 24]
    opt = S.build_optimizer({"optimizer": "momentum", "lr": 0.1, "schedule": "cosine"}, 10)
    assert opt.kind == "momentum" and opt.momentum == 0.9
    assert opt.lr_values(np.array([0]), 1)[0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown schedule"):
        S.build_optimizer({"schedule": "zigzag"}, 3)
    assert fastnn.get_num_threads() >= 1
