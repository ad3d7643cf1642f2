"""One command, one CPU, every SIMD clone: the whole benchmark suite side by side for each clone of
fastnn this CPU runs (FASTNN_SIMD=avx512 | avx2 | baseline), at 1 thread and at all cores.

    W1-W4  training steps (bench_training.py's workers): fastnn once per clone; PyTorch (fused and
           foreach), the NumPy reference (plain, malloc tuned, + Zen kernels) and scikit-learn once
           per thread count (they do not depend on fastnn's clone)
    F1     the CS231n functional API op by op and as a W2 step (bench_functional.py's worker)
    U1     the functional update rules vs NumPy CS231n and the stream roofline (bench_updates.py)
    CPP    the C++ harness's per-kernel bandwidth table (fastnn_bench --sections bandwidth) per
           clone, each kernel against a stream loop with the same streams; sgemm once per thread count
    I1     inference (bench_inference.py), when that script exists

Every implementation runs in its own child process, alternating within a round, warm-up first (the
protocol of /work/shared/BENCHMARKS.md). A clone that is not the CPU's best ran through the
override: every table names it as such ("baseline (SSE2) clone (on an AVX2 CPU ...)"), never as a
result of a CPU that lacks the better clone.

Output: a Markdown report on stdout and in benchmarks/results/isa_<cpu>.md, the raw and aggregated
numbers in benchmarks/results/isa_<cpu>.json (<cpu> e.g. amd-epyc-f25m1-avx2; a --quick run adds
_quick, an --only run _partial), and a full run (no --quick, no --only) also writes its section
of benchmarks/RESULTS.md. Progress goes to stderr.

    python benchmarks/bench_isa.py                   # the full run (~15 min on 2 quiet cores)
    python benchmarks/bench_isa.py --quick           # smoke run (~4 min; W4 left out): not a result
    python benchmarks/bench_isa.py --only W1,W3,U1   # a subset (W1 W2 W3 W4 F1 U1 CPP I1)
        [--simd avx2,baseline] [--threads 1,2] [--rounds N] [--bench-bin PATH] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.metadata
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_training as bt  # noqa: E402
import bench_updates as bu  # noqa: E402
from common import (  # noqa: E402
    HERE,
    RESULTS_DIR,
    cpu_facts,
    cpu_slug,
    git_commit,
    isa_label,
    machine,
    rotated,
    run_child,
    thread_env,
    write_section,
)

PARTS = ["W1", "W2", "W3", "W4", "F1", "U1", "CPP", "I1"]
TRAINING = ["W1", "W2", "W3", "W4"]
PEERS = ["torch (fused)", "torch (foreach)", "numpy", "numpy (malloc tuned)", "numpy (tuned, Zen kernels)", "sklearn"]
# W4's ~36 GFLOP steps: the untuned NumPy run is left out (its ~4 MiB temporaries only add mmap
# churn; the malloc-tuned runs are the peer) and one round of 4 blocks of 5 steps (20 timed steps,
# every implementation once, alternating) is taken, to keep a full run near 15 min on 2 quiet cores
# (--w4-rounds 2 adds ~3 min)
W4_PEERS = ["torch (fused)", "torch (foreach)", "numpy (malloc tuned)", "numpy (tuned, Zen kernels)"]
F1_VARIANTS = {"numpy": ("numpy", {}), "numpy (malloc tuned)": ("numpy", bt.MALLOC_TUNED)}
INFERENCE = HERE / "bench_inference.py"

FULL = {"rounds": 3, "steps": 20, "samples": 5, "warmup": 10,
        "w4_rounds": 1, "w4_steps": 5, "w4_samples": 4, "w4_warmup": 2,
        "f1_rounds": 3, "f1_min_reps": 20, "f1_min_time": 0.3,
        "u1_rounds": 3, "u1_calls": 30, "u1_min_time": 0.1, "u1_warmup": 5,
        "cpp_rounds": 2, "cpp_min_time": 0.2}
QUICK = {"rounds": 1, "steps": 5, "samples": 2, "warmup": 2,
         "w4_rounds": 1, "w4_steps": 2, "w4_samples": 1, "w4_warmup": 1,
         "f1_rounds": 1, "f1_min_reps": 3, "f1_min_time": 0.0,
         "u1_rounds": 1, "u1_calls": 5, "u1_min_time": 0.0, "u1_warmup": 2,
         "cpp_rounds": 1, "cpp_min_time": 0.01}

T0 = time.perf_counter()



def _worker_for(name: str, peers: dict) -> tuple[str, dict]:
    """(worker, extra environment) of a column: ``"fastnn <level>"`` is fastnn's worker under
    FASTNN_SIMD=<level>, anything else a peer from ``peers``."""
    if name.startswith("fastnn "):
        return "fastnn", {"FASTNN_SIMD": name.split(" ", 1)[1]}
    return peers[name]

def log(msg: str) -> None:
    el = time.perf_counter() - T0
    print(f"[{dt.datetime.now():%H:%M:%S} +{int(el // 60)}:{int(el % 60):02d}] {msg}", file=sys.stderr, flush=True)


RETRIES: list[str] = []  # children that failed once and were rerun (listed in the report)


def child(script: Path, args: list[str], env: dict) -> dict:
    """common.run_child, rerun once after a pause if it fails: on a shared machine fastnn's
    extension can be mid-rebuild for a moment. A second failure is an error."""
    try:
        return run_child(script, args, env)
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        what = f"{script.name} {' '.join(args)}"
        log(f"child failed, rerunning in 30 s: {what}: {str(e).strip().splitlines()[-1][:300]}")
        RETRIES.append(f"{what} (first attempt: {str(e).strip().splitlines()[-1][:300]})")
        time.sleep(30)
        return run_child(script, args, env)


def _ms(x: float) -> str:
    """Seconds as milliseconds with 3 significant digits, never in exponent form."""
    v = x * 1e3
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _gmean(xs: list[float]) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


# ----------------------------------------------------------------------------------------------
# W1-W4 (bench_training.py's workers)
# ----------------------------------------------------------------------------------------------
def run_training(w: str, levels: list[str], threads: list[int], cfg: dict) -> dict:
    w4 = w == "W4"
    rounds = cfg["w4_rounds"] if w4 else cfg["rounds"]
    steps = cfg["w4_steps"] if w4 else cfg["steps"]
    samples = cfg["w4_samples"] if w4 else cfg["samples"]
    warmup = cfg["w4_warmup"] if w4 else cfg["warmup"]
    peers = [p for p in (W4_PEERS if w4 else PEERS) if p != "sklearn" or w in bt.SKLEARN_WORKLOADS]
    names = [f"fastnn {lv}" for lv in levels] + peers
    script = Path(bt.__file__)
    raw: dict = {}
    for nt in threads:
        for r in range(rounds):
            order = rotated(names, r)
            for name in order:
                impl, extra = _worker_for(name, bt.VARIANTS)
                level = extra.get("FASTNN_SIMD")
                cargs = ["--worker", impl, "--workload", w, "--threads", str(nt), "--steps", str(steps),
                         "--samples", str(samples), "--w4-steps", str(steps), "--warmup", str(warmup)]
                t0 = time.perf_counter()
                out = child(script, cargs, thread_env(nt, extra))
                if impl == "fastnn":
                    ran = out["threads"]["build_info"]["simd"]
                    if ran != level:
                        raise RuntimeError(f"{w}: asked fastnn for the {level} clone, it ran {ran}")
                raw.setdefault(str(nt), {}).setdefault(name, []).append(out)
                desc = ", ".join(f"{k} {statistics.median(v) * 1e3:.3f} ms" for k, v in out["timings"].items())
                log(f"{w} {nt}T round {r + 1}/{rounds} {name}: {desc} ({time.perf_counter() - t0:.1f} s)")
    return {"raw": raw, "rounds": rounds, "steps": steps, "samples": samples, "warmup": warmup, "peers": peers,
            "table": aggregate_training(raw)}


def aggregate_training(raw: dict) -> dict:
    """table[threads][column] = {median, min, rss}: fastnn's columns are "<label> [<level>]"
    (label: fastnn epoch loop / fastnn train_step), the peers' their variant names."""
    table: dict = {}
    for nt, by_name in raw.items():
        row: dict = {}
        for name, runs in by_name.items():
            for label in runs[0]["timings"]:
                key = f"{label} [{name.split(' ', 1)[1]}]" if name.startswith("fastnn ") else name
                row[key] = {"median": statistics.median(statistics.median(r["timings"][label]) for r in runs),
                            "min": min(min(r["timings"][label]) for r in runs),
                            "rss": max(r["peak_rss_mib"] for r in runs), "rounds": len(runs)}
        peers = {k: v["median"] for k, v in row.items() if not k.startswith("fastnn ")}
        if peers:
            best = min(peers, key=peers.get)
            row["best peer"] = {**row[best], "which": best}
        table[nt] = row
    return table


def training_threads_note(res: dict, nt: str) -> str:
    """bench_training's summary of the thread counts the children used (fastnn's first clone)."""
    by_name = res["raw"][nt]
    fast = next(k for k in by_name if k.startswith("fastnn "))
    try:
        return bt.thread_summary({"_": {"fastnn": by_name[fast], "torch (fused)": by_name["torch (fused)"],
                                        "numpy": by_name.get("numpy") or by_name["numpy (malloc tuned)"]}})
    except (KeyError, IndexError, TypeError):
        return ""


# ----------------------------------------------------------------------------------------------
# F1 (bench_functional.py's worker, run through this script so that --quick can shorten it)
# ----------------------------------------------------------------------------------------------
def f1_worker(impl: str, min_reps: int, min_time: float) -> dict:
    import bench_functional as bf
    import common

    bf.time_calls = functools.partial(common.time_calls, min_reps=min_reps, min_time=min_time)
    out = bf.worker(impl)
    if impl == "fastnn":
        import fastnn

        out["simd"] = fastnn.get_simd()
        out["threads"] = fastnn.get_num_threads()
    return out


def run_f1(levels: list[str], threads: list[int], cfg: dict) -> dict:
    import bench_functional as bf

    names = [f"fastnn {lv}" for lv in levels] + list(F1_VARIANTS)
    raw: dict = {}
    rounds = cfg["f1_rounds"]
    for nt in threads:
        for r in range(rounds):
            order = rotated(names, r)
            for name in order:
                impl, extra = _worker_for(name, F1_VARIANTS)
                level = extra.get("FASTNN_SIMD")
                t0 = time.perf_counter()
                out = child(Path(__file__), ["--f1-worker", impl, "--f1-min-reps", str(cfg["f1_min_reps"]),
                                                 "--f1-min-time", str(cfg["f1_min_time"])], thread_env(nt, extra))
                if impl == "fastnn" and (out["simd"] != level or out["threads"] != nt):
                    raise RuntimeError(f"F1: asked for {level} x{nt}, fastnn ran {out['simd']} x{out['threads']}")
                raw.setdefault(str(nt), {}).setdefault(name, []).append(out)
                log(f"F1 {nt}T round {r + 1}/{rounds} {name}: W2 step {out['ops']['W2 step']['median'] * 1e3:.2f} ms "
                    f"({time.perf_counter() - t0:.1f} s)")
    table: dict = {}
    for nt, by_name in raw.items():
        for name, runs in by_name.items():
            for op in bf.OPS:
                table.setdefault(nt, {}).setdefault(op, {})[name] = {
                    "median": statistics.median(r["ops"][op]["median"] for r in runs),
                    "min": min(r["ops"][op]["min"] for r in runs)}
        for row in table[nt].values():
            peers = {k: v["median"] for k, v in row.items() if not k.startswith("fastnn ")}
            best = min(peers, key=peers.get)
            row["best peer"] = {**row[best], "which": best}
    return {"raw": raw, "rounds": rounds, "ops": bf.OPS, "table": table}


# ----------------------------------------------------------------------------------------------
# C++ per-kernel bandwidth table (fastnn_bench)
# ----------------------------------------------------------------------------------------------
def run_cpp(binary: Path, levels: list[str], threads: list[int], cfg: dict) -> dict:
    raw: dict = {}
    gemm: dict = {}
    for nt in threads:
        t0 = time.perf_counter()
        gemm[str(nt)] = bu.run_bench(binary, ["--sections", "gemm", "--threads", str(nt),
                                              "--min-time", str(max(cfg["cpp_min_time"], 0.01))])
        log(f"CPP {nt}T sgemm ({time.perf_counter() - t0:.1f} s)")
        for r in range(cfg["cpp_rounds"]):
            order = levels[r % len(levels):] + levels[:r % len(levels)]
            for level in order:
                t0 = time.perf_counter()
                res = bu.run_bench(binary, ["--sections", "bandwidth", "--threads", str(nt), "--simd", level,
                                            "--min-time", str(cfg["cpp_min_time"])])
                if res["simd"] != level or res["threads"] != nt:
                    raise RuntimeError(f"fastnn_bench ran {res['simd']} x{res['threads']}, asked {level} x{nt}")
                raw.setdefault(str(nt), {}).setdefault(level, []).append(res)
                log(f"CPP {nt}T round {r + 1}/{cfg['cpp_rounds']} {level}: {len(res['bandwidth'])} kernels "
                    f"({time.perf_counter() - t0:.1f} s)")
    table: dict = {}
    for nt, by_level in raw.items():
        for level, runs in by_level.items():
            for i, row in enumerate(runs[0]["bandwidth"]):
                rs = [run["bandwidth"][i] for run in runs]
                k_med = statistics.median(x["median_s"] for x in rs)
                cell = {"kind": row["kind"], "streams": row["streams"], "bytes": row["bytes"], "elems": row["elems"],
                        "median_s": k_med, "gbps": row["bytes"] / k_med / 1e9, "gelem_s": row["elems"] / k_med / 1e9}
                if row["kind"] == "memory":
                    r_med = statistics.median(x["roofline_median_s"] for x in rs)
                    cell.update({"roofline": row["roofline"], "roofline_gbps": row["bytes"] / r_med / 1e9,
                                 "pct_roofline": 100 * r_med / k_med,
                                 "pct_roofline_best": max(x["pct_roofline_best"] for x in rs)})
                table.setdefault(nt, {}).setdefault(row["name"], {})[level] = cell
    first = next(iter(next(iter(raw.values())).values()))[0]
    return {"raw": raw, "gemm": gemm, "table": table, "buffer_bytes": first["bw_buffer_bytes"],
            "l2_bytes": first["l2_bytes"], "roofline_simd": first["roofline_simd"], "rounds": cfg["cpp_rounds"]}


# ----------------------------------------------------------------------------------------------
# I1 (bench_inference.py, written by someone else: run as it is, per clone)
# ----------------------------------------------------------------------------------------------
def run_i1(levels: list[str], threads: list[int], quick: bool) -> dict:
    helptext = subprocess.run([sys.executable, str(INFERENCE), "--help"], capture_output=True, text=True,
                              timeout=120).stdout
    args = []
    if quick and "--quick" in helptext:
        args.append("--quick")
    if "--no-write" in helptext:
        args.append("--no-write")
    if "--threads" in helptext:
        args += ["--threads", ",".join(map(str, threads))]
    runs = []
    if "--simd" in helptext:  # the script sweeps the clones itself (peers once)
        plan = [(None, args + ["--simd", ",".join(levels)])]
    else:
        plan = [(lv, args) for lv in levels]
    for level, a in plan:
        env = dict(os.environ)
        if level:
            env["FASTNN_SIMD"] = level
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, str(INFERENCE), *a], capture_output=True, text=True, env=env,
                             timeout=900 if quick else 3600)
        log(f"I1 {level or 'all clones'}: rc {out.returncode} ({time.perf_counter() - t0:.1f} s)")
        runs.append({"simd": level, "args": a, "rc": out.returncode, "stdout": out.stdout,
                     "stderr": out.stderr[-4000:]})
        if out.returncode != 0:
            raise RuntimeError(f"bench_inference.py {' '.join(a)} (FASTNN_SIMD={level}) failed:\n{out.stderr[-2000:]}")
    return {"runs": runs}


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
def header(meta: dict) -> list[str]:
    f = meta["cpu"]
    flags = set(f["flags"])
    fl = ", ".join(f"{x} {'yes' if x in flags else 'no'}" for x in ("avx2", "fma", "avx512f"))
    extra = [x for x in f["flags"] if x.startswith("avx512") and x != "avx512f"]
    m = meta["machine"]
    bi = meta["build_info"]
    lines = [
        f"- **CPU**: {f['model']} (family {f['family']}, model {f['model_number']}), {m['cores']} cores, "
        f"flags: {fl}{' (' + ', '.join(extra) + ')' if extra else ''}; measured clock {m['clock_ghz']} GHz at "
        f"the start" + (f", {meta['clock_ghz_end']} GHz at the end" if meta.get("clock_ghz_end") else "")
        + f" (dependent-add loop), fp32 peak {m['fp32_peak_gflops']} GFLOP/s; L2 {f['l2_bytes'] // 1024} KiB per core",
        f"- **fastnn clones this CPU runs**: {', '.join(meta['supported'])}; measured here: "
        + "; ".join(f"`{lv}` = {isa_label(lv, meta['supported'])}" for lv in meta["levels"]),
        f"- **Date** {meta['date']}, **commit** {meta['commit']}; fastnn {m['fastnn']} (BLAS {bi.get('blas')}, "
        f"kernels {bi.get('blas_kernels')}, GEMM threading {bi.get('gemm_threading')}, OpenMP {bi.get('openmp')}); "
        f"Python {m['python']}, " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- **Run**: {'QUICK (smoke run: few steps, noisy, not a result)' if meta['quick'] else 'full'}; parts "
        f"{', '.join(meta['parts'])}; threads {', '.join(map(str, meta['threads']))}; load average before "
        f"{meta['load_before']}" + (f", after {meta['load_after']}" if meta.get("load_after") else "")
        + (f"; took {meta['total_s'] / 60:.1f} min (" + ", ".join(f"{k} {v / 60:.1f}" for k, v in
                                                                  meta["durations"].items()) + " min)"
           if meta.get("total_s") else ""),
    ]
    if meta["load_before"][0] > 0.5 * m["cores"]:
        lines.append(f"- **The machine was busy** (1-min load {meta['load_before'][0]:.1f} on {m['cores']} cores "
                     "before the run): treat every number below as noisy.")
    return lines


def render_summary(meta: dict, parts: dict) -> list[str]:
    levels, sup = meta["levels"], meta["supported"]
    head = ["workload", "threads", "best peer (ms)"] + [f"{lv}: fastnn ms / ratio" for lv in levels]
    lines = ["## Summary: best peer ÷ fastnn (> 1: fastnn faster)", "",
             "Columns per clone: " + "; ".join(f"`{lv}` = {isa_label(lv, sup)}" for lv in levels) + ". "
             "W1-W4: ms per training step, fastnn = its C++ epoch loop; F1: the W2 step through the functional API; "
             "U1: geometric mean over the 16 cases of best NumPy ÷ fastnn (fastnn ÷ roofline in brackets); "
             "CPP: memory-bound kernels at >= 70 % of their stream roofline (the worst in brackets).", "",
             "| " + " | ".join(head) + " |", "|---|---:|---:|" + "---:|" * len(levels)]
    for nt in map(str, meta["threads"]):
        for w in TRAINING:
            if w not in parts or "table" not in parts[w]:
                continue
            row = parts[w]["table"][nt]
            bp = row["best peer"]
            cells = [w, nt, f"{_ms(bp['median'])} ({bp['which']})"]
            for lv in levels:
                c = row.get(f"fastnn epoch loop [{lv}]")
                cells.append(f"{_ms(c['median'])} / **{bp['median'] / c['median']:.2f}x**" if c else "–")
            lines.append("| " + " | ".join(cells) + " |")
        if "F1" in parts and "table" in parts["F1"]:
            row = parts["F1"]["table"][nt]["W2 step"]
            bp = row["best peer"]
            cells = ["F1 (W2 step)", nt, f"{_ms(bp['median'])} ({bp['which']})"]
            for lv in levels:
                c = row.get(f"fastnn {lv}")
                cells.append(f"{_ms(c['median'])} / **{bp['median'] / c['median']:.2f}x**" if c else "–")
            lines.append("| " + " | ".join(cells) + " |")
        if "U1" in parts and "table" in parts["U1"]:
            rows = parts["U1"]["table"][nt]
            cells = ["U1 (16 cases)", nt, "NumPy"]
            for lv in levels:
                ratio = _gmean([r["best NumPy"]["median"] / r[f"fastnn {lv}"]["median"] for r in rows.values()])
                roof = _gmean([r[f"fastnn {lv}"]["median"] / r["stream roofline"]["median"] for r in rows.values()
                               if "stream roofline" in r])
                cells.append(f"**{ratio:.2f}x**" + (f" [{roof:.2f}]" if math.isfinite(roof) else ""))
            lines.append("| " + " | ".join(cells) + " |")
        if "CPP" in parts and "table" in parts["CPP"]:
            rows = parts["CPP"]["table"].get(nt, {})
            cells = ["CPP kernels", nt, "stream loop"]
            for lv in levels:
                mem = [(name, r[lv]["pct_roofline"]) for name, r in rows.items()
                       if lv in r and r[lv]["kind"] == "memory"]
                if not mem:
                    cells.append("–")
                    continue
                ok = sum(p >= 70 for _, p in mem)
                worst = min(mem, key=lambda x: x[1])
                cells.append(f"{ok}/{len(mem)} (worst: {worst[0]} {worst[1]:.0f} %)")
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def render_training(meta: dict, parts: dict) -> list[str]:
    levels = meta["levels"]
    ws = [w for w in TRAINING if w in parts and "table" in parts[w]]
    if not ws:
        return []
    lines = ["## W1-W4: training steps, ms per step", "",
             "Median of the rounds' medians over timed blocks (minimum in parentheses). fastnn epoch loop = "
             "`model._net.train_epoch`, train_step = `model.train_step` per batch (bench_training.py's workers). "
             "torch: fused / foreach; numpy = benchmarks/numpy_nets.py, malloc tuned = glibc trimming off, "
             "Zen kernels = also OPENBLAS_CORETYPE=Zen; sklearn = MLPClassifier.partial_fit (W1, W3). "
             "Ratio = best peer / fastnn epoch loop. "
             + "; ".join(f"{w}: {parts[w]['rounds']} round(s) x {parts[w]['samples']} blocks of "
                         f"{parts[w]['steps']} steps" for w in ws) + "."
             + (" W4 leaves the untuned NumPy run out (the malloc-tuned ones are the peer)." if "W4" in ws else ""), ""]
    fcols = [f"fastnn {lab} [{lv}]" for lv in levels for lab in ("epoch loop", "train_step")]
    for nt in map(str, meta["threads"]):
        head = ["workload", *fcols, *PEERS, *(f"ratio {lv}" for lv in levels), "peak RSS MiB (fastnn / smallest NumPy)"]
        lines += [f"**{nt} thread(s)**", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for w in ws:
            row = parts[w]["table"][nt]
            cells = [f"{w}: {bt.WORKLOADS[w]['desc']}"]
            for c in fcols + PEERS:
                x = row.get(c)
                cells.append(f"{_ms(x['median'])} ({_ms(x['min'])})" if x else "–")
            for lv in levels:
                c = row.get(f"fastnn epoch loop [{lv}]")
                cells.append(f"{row['best peer']['median'] / c['median']:.2f}x" if c else "–")
            f_rss = min(row[f"fastnn epoch loop [{lv}]"]["rss"] for lv in levels if f"fastnn epoch loop [{lv}]" in row)
            np_rss = [row[k]["rss"] for k in PEERS if k.startswith("numpy") and k in row]
            cells.append(f"{f_rss:.0f} / {min(np_rss):.0f}" if np_rss else f"{f_rss:.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        note = training_threads_note(parts[ws[0]], nt)
        lines += ["", note, ""] if note else [""]
    return lines


def render_f1(meta: dict, f1: dict) -> list[str]:
    levels = meta["levels"]
    lines = ["## F1: the functional API (W2 shapes, batch 128), µs per call", "",
             f"Median of {f1['rounds']} child-process round(s) (bench_functional.py's worker); "
             "ratio = best NumPy / fastnn.", ""]
    for nt in map(str, meta["threads"]):
        head = ["op", *(f"fastnn {lv}" for lv in levels), *F1_VARIANTS, *(f"ratio {lv}" for lv in levels)]
        lines += [f"**{nt} thread(s)**", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for op in f1["ops"]:
            row = f1["table"][nt][op]
            cols = [f"fastnn {lv}" for lv in levels] + list(F1_VARIANTS)
            cells = [op] + [f"{row[k]['median'] * 1e6:.1f}" for k in cols]
            cells += [f"{row['best peer']['median'] / row[f'fastnn {lv}']['median']:.2f}x" for lv in levels]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def render_cpp(meta: dict, cpp: dict) -> list[str]:
    levels = meta["levels"]
    lines = ["## C++ per-kernel bandwidth (fastnn_bench --sections bandwidth)", "",
             f"float32, {cpp['buffer_bytes'] / 2**20:.1f} MiB per buffer (>= 4x the {cpp['l2_bytes'] // 1024} KiB L2); "
             f"median of {cpp['rounds']} round(s) of each kernel's median, timed alternately with its roofline: a "
             "plain stream loop with the same read/write streams compiled for the best clone "
             f"({cpp['roofline_simd']}). "
             "GB/s from the bytes the streams must move; % = roofline time / kernel time (goal >= 70 %; "
             "below it is marked **bold**). exp/tanh-bound kernels: Gelem/s.", ""]
    for nt in map(str, meta["threads"]):
        rows = cpp["table"].get(nt)
        if not rows:
            continue
        head = ["kernel", "streams", "roofline GB/s"] + [f"{lv} GB/s (% roofline)" for lv in levels]
        lines += [f"**{nt} thread(s)**", "", "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        for name, r in rows.items():
            any_c = next(iter(r.values()))
            if any_c["kind"] == "memory":
                roof = statistics.median(r[lv]["roofline_gbps"] for lv in levels if lv in r)
                cells = [name, any_c["streams"], f"{roof:.1f}"]
                for lv in levels:
                    c = r.get(lv)
                    pct = f"{c['pct_roofline']:.0f} %" if c else ""
                    if c and c["pct_roofline"] < 70:
                        pct = f"**{pct}**"
                    cells.append(f"{c['gbps']:.1f} ({pct})" if c else "–")
            else:
                cells = [name, any_c["streams"], "(exp/tanh-bound)"]
                cells += [f"{r[lv]['gelem_s']:.2f} Gelem/s" if lv in r else "–" for lv in levels]
            lines.append("| " + " | ".join(cells) + " |")
        g = cpp["gemm"].get(nt)
        if g and g.get("rows"):
            # a busy core reads low on the dependent-add clock, never high: the largest of the
            # driver's readings (start, end) and the harness's own
            ghz = max(meta["machine"]["clock_ghz"], meta.get("clock_ghz_end") or 0, g["clock_ghz"])
            peak = 32 * ghz * int(nt)
            lines += ["", f"sgemm (OpenBLAS, the same for every clone), {nt} thread(s), peak {peak:.0f} GFLOP/s "
                      f"({nt} x 32 FLOP/cycle x {ghz:.2f} GHz, the highest clock reading of the run): "
                      + "; ".join(f"{x['name'][6:]} {x['gflops']:.0f} GFLOP/s ({100 * x['gflops'] / peak:.0f} %)"
                                  for x in g["rows"])]
        lines.append("")
    return lines


def render_i1(meta: dict, i1: dict) -> list[str]:
    lines = ["## I1: inference (benchmarks/bench_inference.py)", ""]
    for run in i1["runs"]:
        what = isa_label(run["simd"], meta["supported"]) if run["simd"] else "every clone (the script's own sweep)"
        lines += [f"**fastnn clone: {what}** (`python benchmarks/bench_inference.py {' '.join(run['args'])}`; "
                  "its peers rerun per clone)", "", run["stdout"].strip(), ""]
    return lines


def render(meta: dict, parts: dict, errors: list[str]) -> str:
    f = meta["cpu"]
    lines = [f"# fastnn per-clone benchmarks: {f['model']} (family {f['family']} model {f['model_number']}), "
             f"best clone {meta['supported'][0]}", ""]
    if meta["quick"]:
        lines += ["**QUICK RUN: few steps on a shared machine — noisy, not a result.**", ""]
    lines += header(meta) + [""]
    lines += render_summary(meta, parts)
    lines += render_training(meta, parts)
    if "F1" in parts and "table" in parts["F1"]:
        lines += render_f1(meta, parts["F1"])
    if "U1" in parts and "table" in parts["U1"]:
        lines += ["## U1: functional update rules", "", bu.render(parts["U1"], meta["supported"]), ""]
    if "CPP" in parts and "table" in parts["CPP"]:
        lines += render_cpp(meta, parts["CPP"])
    if "I1" in parts and "runs" in parts["I1"]:
        lines += render_i1(meta, parts["I1"])
    elif "I1" in meta["parts"]:
        lines += ["## I1: inference", "", f"benchmarks/bench_inference.py {meta.get('i1_note', 'did not run')}.", ""]
    if errors:
        lines += ["## Errors", ""] + [f"- {e}" for e in errors] + [""]
    if meta.get("retries"):
        lines += ["## Children rerun after a failure", ""] + [f"- {r}" for r in meta["retries"]] + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def _versions() -> dict:
    out = {}
    for pkg in ("numpy", "torch", "scikit-learn", "onnxruntime"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _commit() -> str:
    c = git_commit()
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        dirty = ""
    return c + (" (+ uncommitted changes)" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: few steps, one round, W4 left out unless --only names it")
    ap.add_argument("--only", default=None, help=f"comma-separated parts to run, of {','.join(PARTS)} (default: all)")
    ap.add_argument("--simd", default=None, help="comma-separated clones (default: every one this CPU runs)")
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,all cores)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds for W1-W3, F1, U1 (default 3; quick 1)")
    ap.add_argument("--w4-rounds", type=int, default=None, help="rounds for W4 (default 1)")
    ap.add_argument("--bench-bin", default=None, help="the fastnn_bench binary (default: build it incrementally in "
                    "$FASTNN_BENCH_BUILD or /tmp/bench-build)")
    ap.add_argument("--no-write", action="store_true", help="print only: no results/ files, no RESULTS.md section")
    ap.add_argument("--f1-worker", help=argparse.SUPPRESS)
    ap.add_argument("--f1-min-reps", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--f1-min-time", type=float, default=0.3, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.f1_worker:
        print(json.dumps(f1_worker(args.f1_worker, args.f1_min_reps, args.f1_min_time)))
        return

    import fastnn

    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg.update(rounds=args.rounds, f1_rounds=args.rounds, u1_rounds=args.rounds)
    if args.w4_rounds:
        cfg["w4_rounds"] = args.w4_rounds
    if args.only:
        parts_wanted = [p.strip().upper() for p in args.only.split(",") if p.strip()]
        parts_wanted = ["CPP" if p in ("K", "KERNELS", "C++") else p for p in parts_wanted]
        bad = [p for p in parts_wanted if p not in PARTS]
        if bad:
            raise SystemExit(f"unknown part(s) {bad}; choose from {PARTS}")
    else:
        parts_wanted = [p for p in PARTS if not (args.quick and p == "W4")]
    supported = fastnn.supported_simd()
    levels = args.simd.split(",") if args.simd else supported
    for lv in levels:
        if lv not in supported:
            raise SystemExit(f"this CPU does not run the {lv!r} clone (it runs {supported})")
    cores = fastnn._core.hardware_threads()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    facts = cpu_facts()
    slug = cpu_slug(facts, supported[0])
    suffix = "_quick" if args.quick else ("_partial" if args.only else "")
    meta = {"cpu": facts, "machine": machine(), "build_info": fastnn.build_info(), "supported": supported,
            "levels": levels, "threads": threads, "parts": parts_wanted, "quick": args.quick, "config": cfg,
            "date": dt.datetime.now().isoformat(timespec="seconds"), "commit": _commit(), "versions": _versions(),
            "load_before": [round(x, 2) for x in os.getloadavg()], "durations": {}}
    log(f"bench_isa: {facts['model']} ({slug}), clones {levels}, threads {threads}, parts {parts_wanted}"
        f"{' (quick)' if args.quick else ''}")
    parts: dict = {}
    errors: list[str] = []
    json_path = RESULTS_DIR / f"isa_{slug}{suffix}.json"
    md_path = RESULTS_DIR / f"isa_{slug}{suffix}.md"

    def checkpoint() -> None:
        if not args.no_write:
            RESULTS_DIR.mkdir(exist_ok=True)
            json_path.write_text(json.dumps({"meta": meta, "parts": parts, "errors": errors}, indent=1, default=str))

    binary = None
    if "CPP" in parts_wanted or "U1" in parts_wanted:
        binary = bu.bench_binary(args.bench_bin, log=log)
        meta["bench_bin"] = str(binary) if binary else None
    for part in parts_wanted:
        t0 = time.perf_counter()
        log(f"--- {part} ---")
        try:
            if part in TRAINING:
                parts[part] = run_training(part, levels, threads, cfg)
            elif part == "F1":
                parts[part] = run_f1(levels, threads, cfg)
            elif part == "U1":
                parts[part] = bu.run(levels, threads, cfg["u1_rounds"], cfg["u1_calls"], cfg["u1_min_time"],
                                     cfg["u1_warmup"], binary, log=log, runner=child)
            elif part == "CPP":
                if binary is None:
                    raise RuntimeError("no fastnn_bench binary (see the messages above; --bench-bin PATH)")
                parts[part] = run_cpp(binary, levels, threads, cfg)
            elif part == "I1":
                if INFERENCE.exists():
                    parts[part] = run_i1(levels, threads, args.quick)
                else:
                    meta["i1_note"] = "does not exist yet: skipped"
                    log("I1: benchmarks/bench_inference.py does not exist: skipped")
        except Exception as e:  # noqa: BLE001 - one part failing must not lose the others
            errors.append(f"{part}: {type(e).__name__}: {str(e)[-1500:]}")
            log(f"{part} FAILED: {type(e).__name__}: {str(e)[-600:]}")
        meta["durations"][part] = round(time.perf_counter() - t0, 1)
        meta["retries"] = RETRIES
        checkpoint()
    meta["total_s"] = round(time.perf_counter() - T0, 1)
    meta["clock_ghz_end"] = round(fastnn._core.measure_clock_ghz(), 2)
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report = render(meta, parts, errors)
    print(report)
    checkpoint()
    if not args.no_write:
        md_path.write_text(report + "\n")
        log(f"wrote {json_path.relative_to(HERE.parent)} and {md_path.relative_to(HERE.parent)}")
        if not args.quick and not args.only:
            f = facts
            write_section(f"ISA sweep: {f['model']} (family {f['family']} model {f['model_number']}), best clone "
                          f"{supported[0]}", report.split("\n", 2)[2].replace("\n## ", "\n### "))
            log("wrote its section of benchmarks/RESULTS.md")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
