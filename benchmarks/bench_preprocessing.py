"""Preprocessing: fit and transform of StandardScaler, MinMaxScaler and PCA, fastnn against
scikit-learn, on one large synthetic array (default 200,000 x 256) in float32 and float64.

Protocol (BENCHMARKS.md): every implementation runs in its own child process, alternating, warm-up
first; median and minimum of the timed calls; peak RSS; at 1 thread and at all cores. These calls
take tens of milliseconds to seconds, so fewer timed calls are taken per round than for training
steps (``--reps``, default 5) and the rounds (``--rounds``) repeat the alternation. fastnn's fit
includes the leakage-guard fingerprint (a 64-bit hash of every row); the row "column statistics"
times the bare C++ statistics kernel. scikit-learn's PCA uses its default solver (for this shape
the covariance + eigh path, in the input dtype); fastnn's builds the covariance in float64.

    python benchmarks/bench_preprocessing.py [--rows 200000] [--cols 256] [--rounds 3] [--reps 5]
        [--threads 1,2] [--components 64] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mib, run_child, save_json, thread_env, time_calls, write_section  # noqa: E402

IMPLS = ["fastnn", "scikit-learn"]
DTYPES = ["float32", "float64"]


def make_data(rows: int, cols: int, dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    # correlated features with different scales and offsets (PCA has structure to find)
    mix = rng.standard_normal((cols, cols)) / np.sqrt(cols)
    X = rng.standard_normal((rows, cols)) @ mix
    X *= rng.uniform(0.1, 10.0, cols)
    X += rng.uniform(-100.0, 100.0, cols)
    return X.astype(dtype)


def worker(impl: str, dtype: str, rows: int, cols: int, k: int, reps: int) -> dict:
    X = make_data(rows, cols, dtype)
    if impl == "fastnn":
        from fastnn import _core
        from fastnn.preprocessing import PCA, MinMaxScaler, StandardScaler
    else:
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import MinMaxScaler, StandardScaler
    res: dict = {}

    def timed(name, f):
        res[name] = time_calls(f, min_reps=reps, min_time=0.0)

    if impl == "fastnn":
        timed("column statistics", lambda: _core.column_stats(X))
    for name, make in (("StandardScaler", StandardScaler), ("MinMaxScaler", lambda: MinMaxScaler((-1, 1))),
                       (f"PCA({k})", lambda: PCA(k)), (f"PCA({k}, whiten)", lambda: PCA(k, whiten=True))):
        timed(f"{name} fit", lambda make=make: make().fit(X))
        t = make().fit(X)
        out = t.transform(X)
        assert out.dtype == X.dtype and np.all(np.isfinite(out[:1000]))
        timed(f"{name} transform", lambda t=t: t.transform(X))
    return {"impl": impl, "dtype": dtype, "ops": res, "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "DTYPE"))
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--cols", type=int, default=256)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,all)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md")
    args = ap.parse_args()
    if args.worker:
        impl, dtype = args.worker
        print(json.dumps(worker(impl, dtype, args.rows, args.cols, args.components, args.reps)))
        return
    import fastnn
    import sklearn

    cores = fastnn._core.hardware_threads()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    mach = machine()
    shape_args = ["--rows", str(args.rows), "--cols", str(args.cols), "--components", str(args.components),
                  "--reps", str(args.reps)]
    raw: dict = {}
    for nt in threads:
        for r in range(args.rounds):
            for dtype in DTYPES:
                for impl in IMPLS:
                    out = run_child(Path(__file__), ["--worker", impl, dtype, *shape_args], thread_env(nt),
                                    timeout=3600)
                    raw.setdefault(str(nt), {}).setdefault(dtype, {}).setdefault(impl, []).append(out)
                    print(f"threads={nt} round={r} {dtype} {impl}: StandardScaler fit "
                          f"{out['ops']['StandardScaler fit']['median'] * 1e3:.1f} ms", flush=True)
    table: dict = {}
    for nt, by_dt in raw.items():
        for dtype, by_impl in by_dt.items():
            for impl, runs in by_impl.items():
                for op in runs[0]["ops"]:
                    table.setdefault(nt, {}).setdefault(dtype, {}).setdefault(op, {})[impl] = {
                        "median": statistics.median(r["ops"][op]["median"] for r in runs),
                        "min": min(r["ops"][op]["min"] for r in runs),
                    }
                table[nt][dtype].setdefault("_rss", {})[impl] = max(r["peak_rss_mib"] for r in runs)
    save_json("preprocessing", {"machine": mach, "threads": threads, "rows": args.rows, "cols": args.cols,
                                "components": args.components, "sklearn": sklearn.__version__, "table": table,
                                "raw": raw})
    lines = [f"Machine: {mach['cpu']}, {mach['cores']} cores at {mach['clock_ghz']} GHz (measured), simd "
             f"{mach['simd']}; scikit-learn {sklearn.__version__}. Data: {args.rows:,} x {args.cols} (correlated "
             f"features, offsets up to 100). Milliseconds, median of {args.rounds} child-process rounds of "
             f"{args.reps} timed calls (min in parentheses); ratio = scikit-learn median / fastnn median. fastnn's "
             "fit includes the row fingerprint of the leakage guard; \"column statistics\" is the bare C++ kernel. "
             "fastnn's PCA builds its covariance in float64 (centred in float64, dgemm) for every input; "
             "scikit-learn's default here forms X^T X - N mean mean^T in the input dtype (no centring pass). "
             f"Reproduce: `python benchmarks/bench_preprocessing.py --rows {args.rows} --cols {args.cols} "
             f"--rounds {args.rounds}`.", ""]
    for nt in map(str, threads):
        for dtype in DTYPES:
            t = table[nt][dtype]
            lines += [f"**{nt} thread(s), {dtype}**", "", "| operation | fastnn | scikit-learn | ratio |",
                      "|---|---:|---:|---:|"]
            for op, row in t.items():
                if op.startswith("_"):
                    continue
                fa = row["fastnn"]
                if "scikit-learn" in row:
                    sk = row["scikit-learn"]
                    lines.append(f"| {op} | {fa['median'] * 1e3:.1f} ({fa['min'] * 1e3:.1f}) | "
                                 f"{sk['median'] * 1e3:.1f} ({sk['min'] * 1e3:.1f}) | "
                                 f"{sk['median'] / fa['median']:.1f}x |")
                else:
                    lines.append(f"| {op} | {fa['median'] * 1e3:.1f} ({fa['min'] * 1e3:.1f}) | | |")
            rss = t["_rss"]
            lines += [f"| peak RSS (MiB) | {rss['fastnn']:.0f} | {rss['scikit-learn']:.0f} | |", ""]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("Preprocessing: fastnn vs scikit-learn", body)


if __name__ == "__main__":
    main()
