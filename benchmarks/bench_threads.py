"""Thread pools: do fastnn's OpenMP pool and a BLAS pool interfere in a gemm -> elementwise -> gemm
loop? Each scenario runs in its own child process at all cores; the figure is the ratio of the
loop's time to the sum of its parts timed alone (1.0 = no interference).

Scenarios
  tiles      fastnn's default: BLAS single-threaded inside fastnn's GEMM tiles, one OpenMP pool
  callback   OpenBLAS's threaded driver with its jobs run on fastnn's OpenMP pool
  openblas   OpenBLAS's own pthreads pool next to fastnn's OpenMP pool (the naive set-up)
  numpy+fastnn   numpy.matmul (NumPy's own OpenBLAS pool) between fastnn elementwise kernels
  numpy+fastnn, NumPy BLAS 1 thread     the same with NumPy's BLAS limited to one thread
  numpy+fastnn, OMP_WAIT_POLICY=passive the same with fastnn's OpenMP threads sleeping at once
  tiles, OMP_WAIT_POLICY=passive        what that setting costs fastnn alone

    python benchmarks/bench_threads.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, run_child, save_json, thread_env, time_calls, write_section  # noqa: E402

SHAPES = {
    "small (W3: 32x64 -> 256 -> 256)": (32, 64, 256),
    "medium (W2: 128x784 -> 512 -> 512)": (128, 784, 512),
}
SCENARIOS = {"tiles": {"FASTNN_GEMM_THREADING": "tiles"},
             "callback": {"FASTNN_GEMM_THREADING": "callback"},
             "openblas": {"FASTNN_GEMM_THREADING": "openblas"},
             "numpy+fastnn": {},
             "numpy+fastnn, NumPy BLAS 1 thread": {"OPENBLAS_NUM_THREADS": "1"},
             "numpy+fastnn, OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
             "tiles, OMP_WAIT_POLICY=passive": {"FASTNN_GEMM_THREADING": "tiles",
                                                "OMP_WAIT_POLICY": "passive"}}


def worker(scenario: str) -> dict:
    from fastnn import _core

    rng = np.random.default_rng(0)
    res = {}
    for label, (n, d, h) in SHAPES.items():
        x = rng.standard_normal((n, d)).astype(np.float32)
        w1 = rng.standard_normal((d, h)).astype(np.float32)
        w2 = rng.standard_normal((h, h)).astype(np.float32)
        h1 = np.empty((n, h), np.float32)
        h2 = np.empty((n, h), np.float32)
        if scenario == "numpy+fastnn":
            def g1():
                np.matmul(x, w1, out=h1)

            def g2():
                np.matmul(h1, w2, out=h2)
        else:
            def g1():
                _core.gemm(x, w1, out=h1)

            def g2():
                _core.gemm(h1, w2, out=h2)

        def e1():
            _core.relu_forward(h1, out=h1)

        def e2():
            _core.tanh_forward(h2, out=h2)

        def loop():
            g1()
            e1()
            g2()
            e2()

        parts = sum(time_calls(f)["median"] for f in (g1, e1, g2, e2))
        whole = time_calls(loop)["median"]
        res[label] = {"parts_us": parts * 1e6, "loop_us": whole * 1e6, "ratio": whole / parts}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    mach = machine()
    nt = args.threads or mach["cores"]
    raw: dict = {}
    for r in range(args.rounds):
        for sc, env in SCENARIOS.items():
            kind = "numpy+fastnn" if sc.startswith("numpy") else env.get("FASTNN_GEMM_THREADING", "tiles")
            raw.setdefault(sc, []).append(run_child(Path(__file__), ["--worker", kind], thread_env(nt, env)))
            print(f"round {r} {sc} done", flush=True)
    save_json("threads", {"machine": mach, "threads": nt, "raw": raw})
    lines = [f"Machine: {mach['cpu']}, {mach['cores']} cores; {nt} threads everywhere. Median over "
             f"{args.rounds} child-process rounds of: time of the gemm -> relu -> gemm -> tanh loop / "
             "sum of the four steps timed alone (1.00 = no interference), microseconds in parentheses. "
             "Reproduce: `python benchmarks/bench_threads.py`.", "",
             "| scenario | " + " | ".join(SHAPES) + " |", "|---|" + "---:|" * len(SHAPES)]
    for sc in SCENARIOS:
        cells = []
        for label in SHAPES:
            runs = sorted(raw[sc], key=lambda r: r[label]["ratio"])
            mid = runs[len(runs) // 2][label]
            cells.append(f"{mid['ratio']:.2f} ({mid['loop_us']:.0f} vs {mid['parts_us']:.0f})")
        lines.append(f"| {sc} | " + " | ".join(cells) + " |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("Thread pools: gemm -> elementwise -> gemm interference", body)


if __name__ == "__main__":
    main()
