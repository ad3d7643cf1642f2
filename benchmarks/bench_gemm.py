"""GEMM: fastnn's BLAS wrapper against numpy.matmul in the same process, and against the machine's
fp32 peak (cores x 32 FLOP/cycle x the measured clock), for the GEMMs of the benchmark workloads,
under each of fastnn's GEMM threading policies (each policy in its own child process), and with
the OpenBLAS kernel set fastnn picks (Zen kernels on AMD CPUs) against OpenBLAS's own choice.

    python benchmarks/bench_gemm.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, run_child, save_json, thread_env, time_calls, write_section  # noqa: E402

SHAPES = [  # (name, M, N, K)
    ("W1 fwd", 200, 100, 3072),
    ("W1 dW", 3072, 100, 200),
    ("W2 fwd L1", 128, 512, 784),
    ("W2 dW L1", 784, 512, 128),
    ("W3 fwd L2", 32, 256, 256),
    ("W4 fwd L2", 256, 4096, 4096),
    ("W4 dX L2", 256, 4096, 4096),
    ("square 1024", 1024, 1024, 1024),
]
# (label, environment): the three threading policies, and the default policy with OpenBLAS's own
# kernel choice instead of fastnn's (see fastnn/__init__.py: OPENBLAS_CORETYPE)
VARIANTS = {
    "tiles": {"FASTNN_GEMM_THREADING": "tiles"},
    "callback": {"FASTNN_GEMM_THREADING": "callback"},
    "openblas": {"FASTNN_GEMM_THREADING": "openblas"},
    "tiles, OpenBLAS kernels": {"FASTNN_GEMM_THREADING": "tiles", "FASTNN_OPENBLAS_CORETYPE": "auto"},
}
POLICIES = list(VARIANTS)


def worker(threads: int) -> dict:
    import fastnn
    from fastnn import _core

    fastnn.set_num_threads(threads)
    rng = np.random.default_rng(0)
    out = {"policy": _core.gemm_threading(), "kernels": _core.blas_corename(), "rows": {}}
    for name, M, N, K in SHAPES:
        a = rng.standard_normal((M, K)).astype(np.float32)
        b = rng.standard_normal((K, N)).astype(np.float32)
        c = np.empty((M, N), np.float32)
        flops = 2.0 * M * N * K
        min_time = 0.3 if flops < 1e10 else 1.0
        tf = time_calls(lambda: _core.gemm(a, b, out=c), min_time=min_time)
        tn = time_calls(lambda: np.matmul(a, b, out=c), min_time=min_time)
        out["rows"][name] = {"fastnn": flops / tf["min"] / 1e9, "numpy": flops / tn["min"] / 1e9,
                             "fastnn_median": flops / tf["median"] / 1e9,
                             "numpy_median": flops / tn["median"] / 1e9}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", type=int)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    mach = machine()
    cores = mach["cores"]
    raw: dict = {}
    kernels: dict = {}
    for nt in sorted({1, cores}):
        for r in range(args.rounds):
            for pol in POLICIES:
                res = run_child(Path(__file__), ["--worker", str(nt)], thread_env(nt, VARIANTS[pol]))
                raw.setdefault(str(nt), {}).setdefault(pol, []).append(res["rows"])
                kernels[pol] = res["kernels"]
                print(f"threads={nt} round={r} {pol} done", flush=True)
    save_json("gemm", {"machine": mach, "kernels": kernels, "raw": raw})
    peak = mach["fp32_peak_gflops"]
    lines = [f"Machine: {mach['cpu']}, {cores} cores at {mach['clock_ghz']} GHz (measured); fp32 peak "
             f"{peak:.0f} GFLOP/s ({peak / cores:.0f} per core). sgemm GFLOP/s, best of "
             f"{args.rounds} child-process rounds (each round's best call); numpy.matmul measured "
             "in the same process as fastnn. OpenBLAS kernel set: "
             + ", ".join(f"{p}: {k}" for p, k in kernels.items())
             + " (fastnn loads its OpenBLAS with OPENBLAS_CORETYPE=Zen on AMD CPUs; the last column is "
             "OpenBLAS's own choice, FASTNN_OPENBLAS_CORETYPE=auto). "
             "Reproduce: `python benchmarks/bench_gemm.py`.", ""]
    for nt, by_pol in raw.items():
        nt_peak = peak / cores * int(nt)
        lines += [f"**{nt} thread(s)** (peak {nt_peak:.0f} GFLOP/s)", "",
                  "| GEMM (M x N x K) | numpy.matmul | fastnn tiles (default) | fastnn callback | "
                  "fastnn openblas | tiles / numpy | tiles / peak | tiles, OpenBLAS's kernel choice |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, M, N, K in SHAPES:
            best = {p: max(r[name]["fastnn"] for r in by_pol[p]) for p in POLICIES}
            npy = max(r[name]["numpy"] for p in POLICIES for r in by_pol[p])
            lines.append(f"| {name} ({M}x{N}x{K}) | {npy:.0f} | {best['tiles']:.0f} | "
                         f"{best['callback']:.0f} | {best['openblas']:.0f} | "
                         f"{best['tiles'] / npy:.2f} | {100 * best['tiles'] / nt_peak:.0f}% | "
                         f"{best['tiles, OpenBLAS kernels']:.0f} |")
        lines.append("")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("GEMM: fastnn's BLAS wrapper vs numpy.matmul and peak", body)


if __name__ == "__main__":
    main()
