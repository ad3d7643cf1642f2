"""U1: the functional update rules (fastnn.functional.sgd / sgd_momentum / rmsprop / adam) chained as
a CS231n Solver calls them, ``w, cfg = rule(w, dw, cfg)``, against NumPy written the CS231n way, on
(3072, 100) and (1024, 1024), float32 and float64, w and dw of mixed sign.

Implementations (each in its own child process, alternating, the order rotated from round to round):
    fastnn <level>          fastnn.functional, one child per SIMD clone (FASTNN_SIMD=<level>), each
                            timed at every thread count (fastnn.set_num_threads) in the same process
    NumPy CS231n            assignment 2's optim.py as students complete it: ``w - lr * dw``,
                            ``config["t"] += 1`` and bias correction for Adam, a new array per call
    NumPy CS231n (malloc tuned)   the same with glibc's trimming off (BENCHMARKS.md)
    NumPy in place          a careful in-place version with one scratch buffer (no allocation)
    NumPy ufunc floor       not an update rule: the fewest in-place ufunc passes a NumPy version
                            needs, one per written array (sgd: ``np.subtract(w, dw, out=w)``;
                            momentum / RMSProp: two ``np.add(.., out=)``; Adam: three)
    stream roofline         the C++ harness's stream loop with the rule's read and write streams
                            (``fastnn_bench --sections stream``): SGD 2R+1W, momentum and RMSProp
                            3R+2W, Adam 4R+3W, all in place, at the same thread count

Per case: warm-up, then at least --calls (30) chained calls and --min-time seconds, each call timed
on its own: the median (and minimum) per call; the parent takes the median of the rounds' medians.
Ratios: best NumPy ÷ fastnn (> 1: fastnn faster) and fastnn ÷ roofline (time; 1.0 = at the
roofline, 1.43 = 70 % of it). NumPy's ufuncs are single-threaded: its numbers are the same in every
thread table.

    python benchmarks/bench_updates.py [--simd avx2,baseline] [--threads 1,2] [--rounds 3] [--calls 30]
                                       [--bench-bin PATH | --no-roofline] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    HERE,
    MALLOC_TUNED,
    isa_label,
    peak_rss_mib,
    rotated,
    run_child,
    save_json,
    thread_env,
    write_section,
)

RULES = ["sgd", "sgd_momentum", "rmsprop", "adam"]
SHAPES = [(3072, 100), (1024, 1024)]
DTYPES = ["float32", "float64"]
STREAMS = {"sgd": "2R+1W", "sgd_momentum": "3R+2W", "rmsprop": "3R+2W", "adam": "4R+3W"}
FLOOR_PASSES = {"sgd": 1, "sgd_momentum": 2, "rmsprop": 2, "adam": 3}


def n_bytes(rule: str, n: int, itemsize: int) -> int:
    """Bytes a single fused pass moves: (reads + writes) x n x itemsize."""
    r, w = (int(s[0]) for s in STREAMS[rule].split("+"))
    return (r + w) * n * itemsize


def case_key(rule: str, shape: tuple[int, int], dtype: str) -> str:
    return f"{rule} {shape[0]}x{shape[1]} {dtype}"


# ----------------------------------------------------------------------------------------------
# NumPy, the CS231n way (cs231n/optim.py of assignment 2, the update rules as students write them)
# ----------------------------------------------------------------------------------------------
def cs231n_sgd(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    w -= config["learning_rate"] * dw
    return w, config


def cs231n_sgd_momentum(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    next_w = w + v
    config["velocity"] = v
    return next_w, config


def cs231n_rmsprop(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", np.zeros_like(w))
    config["cache"] = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw**2
    next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])
    return next_w, config


def cs231n_adam(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    config["t"] += 1
    config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
    mt = config["m"] / (1 - config["beta1"] ** config["t"])
    config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * (dw**2)
    vt = config["v"] / (1 - config["beta2"] ** config["t"])
    next_w = w - config["learning_rate"] * mt / (np.sqrt(vt) + config["epsilon"])
    return next_w, config


CS231N = {"sgd": cs231n_sgd, "sgd_momentum": cs231n_sgd_momentum, "rmsprop": cs231n_rmsprop, "adam": cs231n_adam}


# ----------------------------------------------------------------------------------------------
# NumPy in place: the same rules with one scratch buffer kept in config, no allocation per call
# ----------------------------------------------------------------------------------------------
def _scratch(config, w):
    s = config.get("_scratch")
    if s is None or s.shape != w.shape or s.dtype != w.dtype:
        s = config["_scratch"] = np.empty_like(w)
    return s


def inplace_sgd(w, dw, config):
    config.setdefault("learning_rate", 1e-2)
    tmp = _scratch(config, w)
    np.multiply(dw, config["learning_rate"], out=tmp)
    w -= tmp
    return w, config


def inplace_sgd_momentum(w, dw, config):
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.setdefault("velocity", np.zeros_like(w))
    tmp = _scratch(config, w)
    np.multiply(dw, config["learning_rate"], out=tmp)
    v *= config["momentum"]
    v -= tmp
    w += v
    return w, config


def inplace_rmsprop(w, dw, config):
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    c = config.setdefault("cache", np.zeros_like(w))
    tmp = _scratch(config, w)
    d = config["decay_rate"]
    np.multiply(dw, dw, out=tmp)
    tmp *= 1 - d
    c *= d
    c += tmp
    np.sqrt(c, out=tmp)
    tmp += config["epsilon"]
    np.divide(dw, tmp, out=tmp)
    tmp *= config["learning_rate"]
    w -= tmp
    return w, config


def inplace_adam(w, dw, config):
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    m = config.setdefault("m", np.zeros_like(w))
    v = config.setdefault("v", np.zeros_like(w))
    config["t"] = t = config.get("t", 0) + 1
    b1, b2 = config["beta1"], config["beta2"]
    tmp = _scratch(config, w)
    m *= b1
    np.multiply(dw, 1 - b1, out=tmp)
    m += tmp
    v *= b2
    np.multiply(dw, dw, out=tmp)
    tmp *= 1 - b2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp *= 1 / np.sqrt(1 - b2**t)
    tmp += config["epsilon"]
    np.divide(m, tmp, out=tmp)
    tmp *= config["learning_rate"] / (1 - b1**t)
    w -= tmp
    return w, config


INPLACE = {"sgd": inplace_sgd, "sgd_momentum": inplace_sgd_momentum, "rmsprop": inplace_rmsprop, "adam": inplace_adam}


# ----------------------------------------------------------------------------------------------
# NumPy ufunc floor: one in-place ufunc pass per array the rule writes
# ----------------------------------------------------------------------------------------------
def floor_rule(rule: str):
    def sgd(w, dw, config):
        np.subtract(w, dw, out=w)
        return w, config

    def two(w, dw, config):
        v = config.setdefault("v", np.zeros_like(w))
        np.add(v, dw, out=v)
        np.add(w, v, out=w)
        return w, config

    def three(w, dw, config):
        m = config.setdefault("m", np.zeros_like(w))
        v = config.setdefault("v", np.zeros_like(w))
        np.add(m, dw, out=m)
        np.add(v, dw, out=v)
        np.add(w, m, out=w)
        return w, config

    return {"sgd": sgd, "sgd_momentum": two, "rmsprop": two, "adam": three}[rule]


# ----------------------------------------------------------------------------------------------
# worker (child process)
# ----------------------------------------------------------------------------------------------
def make_case(shape: tuple[int, int], dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """w ~ 0.1 N(0, 1) and dw ~ N(0, 1): both of mixed sign (so no sign branch is predictable)."""
    rng = np.random.default_rng(seed)
    w = (0.1 * rng.standard_normal(shape)).astype(dtype)
    dw = rng.standard_normal(shape).astype(dtype)
    return w, dw


def time_chain(rule_fn, w, dw, calls: int, min_time: float, warmup: int,
               state: dict | None = None) -> tuple[dict, dict]:
    """Chain ``w, cfg = rule(w, dw, cfg)``: warm-up, then >= calls calls and >= min_time seconds,
    each timed alone. ``state`` (w and cfg of an earlier chain) continues that chain."""
    st = state if state is not None else {"w": w, "cfg": {}}
    perf = time.perf_counter

    def step():
        st["w"], st["cfg"] = rule_fn(st["w"], dw, st["cfg"])

    for _ in range(warmup):
        step()
    ts: list[float] = []
    start = perf()
    while len(ts) < calls or (perf() - start < min_time and len(ts) < 100_000):
        t0 = perf()
        step()
        ts.append(perf() - t0)
    assert np.isfinite(st["w"]).all(), "update produced non-finite weights"
    return {"median": statistics.median(ts), "min": min(ts), "calls": len(ts)}, st


def check_fastnn_against_cs231n() -> dict:
    """fastnn's rules against the CS231n NumPy ones, 5 chained steps on a small odd-sized array of
    each dtype: the largest difference relative to max |w| (must be within a few ulp)."""
    import fastnn.functional as F

    worst = {}
    for dtype in DTYPES:
        w0, dw = make_case((37, 29), dtype, seed=7)
        for rule in RULES:
            a, ca = w0.copy(), {}
            b, cb = w0.copy(), {}
            for _ in range(5):
                a, ca = getattr(F, rule)(a, dw, ca)
                b, cb = CS231N[rule](b, dw, cb)
            assert a.dtype == np.dtype(dtype) and b.dtype == np.dtype(dtype), (rule, a.dtype, b.dtype)
            rel = float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))
            tol = 1e-5 if dtype == "float32" else 1e-12
            if not rel <= tol:
                raise AssertionError(f"fastnn.functional.{rule} ({dtype}) differs from CS231n's by {rel:.3g} "
                                     f"(tol {tol})")
            worst[f"{rule} {dtype}"] = rel
    return worst


def worker(impl: str, threads: list[int], calls: int, min_time: float, warmup: int, cases: list) -> dict:
    out: dict = {"impl": impl, "cases": {}}
    if impl == "fastnn":
        import fastnn
        import fastnn.functional as F

        want = os.environ.get("FASTNN_SIMD", "auto")
        out["simd"] = fastnn.get_simd()
        if want != "auto" and out["simd"] != want:
            raise RuntimeError(f"asked for SIMD clone {want!r}, fastnn runs {out['simd']!r}")
        out["check_rel_err"] = check_fastnn_against_cs231n()
        for rule, shape, dtype in cases:
            w, dw = make_case(shape, dtype)
            st = None
            for nt in threads:
                fastnn.set_num_threads(nt)
                assert fastnn.get_num_threads() == nt
                res, st = time_chain(getattr(F, rule), w, dw, calls, min_time, warmup, st)
                out["cases"].setdefault(case_key(rule, shape, dtype), {})[str(nt)] = res
    else:
        table = {"numpy-cs231n": CS231N, "numpy-inplace": INPLACE,
                 "numpy-floor": {r: floor_rule(r) for r in RULES}}[impl]
        for rule, shape, dtype in cases:
            w, dw = make_case(shape, dtype)
            res, _ = time_chain(table[rule], w, dw, calls, min_time, warmup)
            out["cases"][case_key(rule, shape, dtype)] = {"any": res}
    out["peak_rss_mib"] = peak_rss_mib()
    return out


# ----------------------------------------------------------------------------------------------
# the C++ harness (stream roofline)
# ----------------------------------------------------------------------------------------------
ROOT = HERE.parent


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_binary(path: str | None = None, build: bool = True, log=_log) -> Path | None:
    """The C++ harness fastnn_bench: `path` if given, else $FASTNN_BENCH, else (re)built
    incrementally in $FASTNN_BENCH_BUILD (default /tmp/bench-build) when CMake is at hand, else one
    found under build/. None (with a message) when there is none."""
    for p in (path, os.environ.get("FASTNN_BENCH")):
        if p:
            if Path(p).is_file() and os.access(p, os.X_OK):
                return Path(p)
            log(f"fastnn_bench not found at {p}")
            return None
    bdir = Path(os.environ.get("FASTNN_BENCH_BUILD", "/tmp/bench-build"))
    cache = bdir / "CMakeCache.txt"
    if cache.exists() and f"CMAKE_HOME_DIRECTORY:INTERNAL={ROOT}\n" not in cache.read_text(errors="replace"):
        bdir = Path(f"/tmp/fastnn-bench-build-{os.getuid()}")  # /tmp/bench-build belongs to another checkout
        cache = bdir / "CMakeCache.txt"
    cmake = shutil.which("cmake")
    if build and cmake:
        logf = bdir.parent / f"{bdir.name}.log"
        try:
            if not cache.exists():
                gen = ["-G", "Ninja"] if shutil.which("ninja") else []
                log(f"configuring the C++ harness in {bdir} (log: {logf})")
                with open(logf, "w") as fh:
                    subprocess.run([cmake, "-S", str(ROOT), "-B", str(bdir), *gen, "-DCMAKE_BUILD_TYPE=Release",
                                    f"-DPython_EXECUTABLE={sys.executable}", "-DFASTNN_BUILD_BENCH=ON",
                                    "-DFASTNN_BUILD_TESTS=OFF"], stdout=fh, stderr=subprocess.STDOUT, check=True)
            log(f"building fastnn_bench in {bdir} (incremental; log: {logf})")
            with open(logf, "a") as fh:
                subprocess.run([cmake, "--build", str(bdir), "--target", "fastnn_bench", "-j",
                                str(os.cpu_count() or 2)], stdout=fh, stderr=subprocess.STDOUT, check=True,
                               timeout=1800)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            log(f"building fastnn_bench failed ({e}); see {logf}")
    found = [bdir / "fastnn_bench", *sorted(ROOT.glob("build/fastnn_bench")),
             *sorted(ROOT.glob("build/*/fastnn_bench"))]
    for cand in found:
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    log("no fastnn_bench binary (pass --bench-bin, or install cmake and a C++ compiler)")
    return None


def run_bench(binary: Path, args: list[str], env: dict | None = None, timeout: float = 900) -> dict:
    out = subprocess.run([str(binary), *args, "--json"], capture_output=True, text=True, timeout=timeout,
                         env=env if env is not None else dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"fastnn_bench {' '.join(args)} failed (rc {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# parent
# ----------------------------------------------------------------------------------------------
NUMPY_VARIANTS = {  # name -> (worker impl, extra environment)
    "NumPy CS231n": ("numpy-cs231n", {}),
    "NumPy CS231n (malloc tuned)": ("numpy-cs231n", MALLOC_TUNED),
    "NumPy in place": ("numpy-inplace", {}),
    "NumPy ufunc floor": ("numpy-floor", {}),
}
NUMPY_PEERS = ["NumPy CS231n", "NumPy CS231n (malloc tuned)", "NumPy in place"]  # update rules (the floor is not)


def all_cases() -> list[tuple[str, tuple[int, int], str]]:
    return [(r, s, d) for r in RULES for s in SHAPES for d in DTYPES]


def run(levels: list[str], threads: list[int], rounds: int = 3, calls: int = 30, min_time: float = 0.1,
        warmup: int = 5, binary: Path | None = None, log=_log, runner=run_child) -> dict:
    """Every implementation over `rounds` alternating rounds (each child started by
    ``runner(script, args, env)``, common.run_child by default); returns the raw results and the
    aggregated table (see render)."""
    cases = all_cases()
    names = [f"fastnn {lv}" for lv in levels] + list(NUMPY_VARIANTS)
    raw: dict = {n: [] for n in names}
    stream_raw: dict = {str(nt): [] for nt in threads}
    script = Path(__file__)
    sizes = sorted({s[0] * s[1] for s in SHAPES})
    common_args = ["--threads", ",".join(map(str, threads)), "--calls", str(calls), "--min-time", str(min_time),
                   "--warmup", str(warmup)]
    for r in range(rounds):
        order = rotated(names, r)
        for name in order:
            t0 = time.perf_counter()
            if name.startswith("fastnn "):
                level = name.split(" ", 1)[1]
                out = runner(script, ["--worker", "fastnn", *common_args],
                                thread_env(max(threads), {"FASTNN_SIMD": level}))
            else:
                impl, extra = NUMPY_VARIANTS[name]
                out = runner(script, ["--worker", impl, *common_args], thread_env(1, extra))
            raw[name].append(out)
            log(f"  U1 round {r + 1}/{rounds} {name}: {time.perf_counter() - t0:.1f} s")
        if binary is not None:
            for nt in threads:
                try:
                    res = run_bench(binary, ["--sections", "stream", "--threads", str(nt), "--min-time",
                                             str(min_time), "--stream-sizes", ",".join(map(str, sizes))])
                    stream_raw[str(nt)].append(res)
                except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
                    log(f"  U1 stream roofline at {nt} thread(s) failed: {e}")
    return {"levels": levels, "threads": threads, "rounds": rounds, "calls": calls, "min_time": min_time,
            "cases": [case_key(*c) for c in cases], "raw": raw, "stream_raw": stream_raw,
            "table": aggregate(raw, stream_raw, levels, threads, cases)}


def aggregate(raw: dict, stream_raw: dict, levels: list[str], threads: list[int], cases: list) -> dict:
    """table[threads][case][column] = {"median", "min"} in seconds per call."""
    table: dict = {}
    for nt in map(str, threads):
        rows: dict = {}
        for rule, shape, dtype in cases:
            key = case_key(rule, shape, dtype)
            row: dict = {}
            for name, runs in raw.items():
                if not runs:
                    continue
                sub = nt if name.startswith("fastnn ") else "any"
                cells = [r["cases"][key][sub] for r in runs]
                row[name] = {"median": statistics.median(c["median"] for c in cells),
                             "min": min(c["min"] for c in cells)}
            n = shape[0] * shape[1]
            roofs = [s for res in stream_raw.get(nt, []) for s in res["stream"]
                     if s["pattern"] == STREAMS[rule] and s["dtype"] == dtype and s["n"] == n]
            if roofs:
                row["stream roofline"] = {"median": statistics.median(s["median_s"] for s in roofs),
                                          "min": min(s["min_s"] for s in roofs)}
            peers = {k: row[k]["median"] for k in NUMPY_PEERS if k in row}
            if peers:
                best = min(peers, key=peers.get)
                row["best NumPy"] = {**row[best], "which": best}
            row["bytes"] = n_bytes(rule, n, np.dtype(dtype).itemsize)
            rows[key] = row
        table[nt] = rows
    return table


def _us(cell: dict | None) -> str:
    return "–" if cell is None else f"{cell['median'] * 1e6:,.0f}"


def render(res: dict, supported: list[str]) -> str:
    levels, threads, table = res["levels"], res["threads"], res["table"]
    have_roof = any(res["stream_raw"].get(str(nt)) for nt in threads)
    lines = [
        f"Chained `w, cfg = rule(w, dw, cfg)` calls; µs per call, median of {res['rounds']} child-process rounds of "
        f"each round's median over >= {res['calls']} calls (warm-up first). best NumPy = the fastest of NumPy CS231n "
        "(allocating, as assignment 2's optim.py), the same with malloc tuned, and NumPy in place (one scratch "
        "buffer). NumPy ufunc floor = one in-place ufunc pass per written array (sgd 1, momentum/RMSProp 2, Adam 3 "
        "passes; not an update rule). stream roofline = fastnn_bench's in-place stream loop with the rule's streams "
        "(SGD 2R+1W, momentum/RMSProp 3R+2W, Adam 4R+3W) at the same thread count. Ratio NumPy÷fastnn > 1: fastnn "
        "faster; fastnn÷roofline is a time ratio (1.00 = at the roofline, 1.43 = 70 % of it). NumPy is "
        "single-threaded: its columns are the same in every thread table.",
        "",
        "SIMD clones: " + "; ".join(f"`{lv}` = {isa_label(lv, supported)}" for lv in levels) + ".",
        "",
    ]
    if not have_roof:
        lines += ["(No C++ harness: the stream roofline is missing; fastnn÷roofline is left out.)", ""]
    for nt in map(str, threads):
        head = ["case", "streams", "MB moved", *NUMPY_VARIANTS, "stream roofline",
                *(f"fastnn {lv}" for lv in levels), *(f"NumPy÷fastnn {lv}" for lv in levels),
                *(f"fastnn÷roofline {lv}" for lv in levels)]
        lines += [f"**U1, {nt} thread(s)** (fastnn at {nt}; NumPy single-threaded)", "",
                  "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        for key, row in table[nt].items():
            rule = key.split()[0]
            cells = [key, STREAMS[rule], f"{row['bytes'] / 1e6:.1f}"]
            cells += [_us(row.get(n)) for n in NUMPY_VARIANTS]
            cells.append(_us(row.get("stream roofline")))
            cells += [_us(row.get(f"fastnn {lv}")) for lv in levels]
            for lv in levels:
                f = row.get(f"fastnn {lv}")
                b = row.get("best NumPy")
                cells.append(f"{b['median'] / f['median']:.2f}x" if f and b else "–")
            for lv in levels:
                f = row.get(f"fastnn {lv}")
                roof = row.get("stream roofline")
                cells.append(f"{f['median'] / roof['median']:.2f}" if f and roof else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    checks = [r.get("check_rel_err", {}) for runs in res["raw"].values() for r in runs[:1] if "check_rel_err" in r]
    if checks:
        worst = max(v for c in checks for v in c.values())
        lines.append(f"Every fastnn child first checked its rules against the CS231n NumPy ones (5 chained steps, "
                     f"37x29, both dtypes): largest difference {worst:.2g} of max |w|.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help="(internal) run one implementation in this process")
    ap.add_argument("--simd", default=None,
                    help="comma-separated SIMD clones for fastnn (default: every one this CPU runs)")
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,all cores)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=30, help="timed chained calls per case, at least")
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds per case, at least")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--bench-bin", default=None, help="the fastnn_bench binary (default: build/find it)")
    ap.add_argument("--no-roofline", action="store_true", help="skip the C++ stream roofline")
    ap.add_argument("--quick", action="store_true", help="1 round, 5 calls per case (a smoke run, not a result)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md or results/")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.calls, args.min_time, args.warmup = 1, 5, 0.0, 2

    if args.worker:
        threads = [int(t) for t in args.threads.split(",")]
        print(json.dumps(worker(args.worker, threads, args.calls, args.min_time, args.warmup, all_cases())))
        return

    import fastnn

    supported = fastnn.supported_simd()
    levels = args.simd.split(",") if args.simd else supported
    cores = fastnn._core.hardware_threads()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    binary = None if args.no_roofline else bench_binary(args.bench_bin)
    res = run(levels, threads, args.rounds, args.calls, args.min_time, args.warmup, binary)
    body = render(res, supported)
    print(body)
    if not args.no_write and not args.quick:
        from common import machine

        save_json("u1_updates", {"machine": machine(), **res})
        write_section("U1: functional update rules vs NumPy (CS231n optim.py)", body)


if __name__ == "__main__":
    main()
