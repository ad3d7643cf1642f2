"""Training steps on a shared machine: fastnn, PyTorch and the NumPy reference, each alone and
beside another busy process, side by side in one run (BENCHMARKS.md, "Shared cores").

    python benchmarks/bench_contention.py [--workloads W1,W2,W3,W4] [--rounds 3] [--quick] [--no-write]

Hogs, each started before the measured child and killed after it:
    busy loop     a single-threaded Python busy loop
    numpy BLAS    a NumPy process multiplying 1024x1024 matrices on its default (all-core) threads
    fastnn        a second fastnn process training W3 in a loop on its default threads

The measured children are bench_training.py's workers (the same networks, data and timing loop),
run with their default thread count (all cores, as a user who sets nothing) — fastnn's C++ epoch
loop and its train_step per batch, PyTorch (foreach SGD / fused Adam), the NumPy reference. The
collapse of a multi-threaded step under contention is bimodal (it depends on how the scheduler
lines threads up), so every cell is measured in several rounds and the table gives the median of
the rounds and the worst round. Slowdown = step time beside the hog / step time alone.

Goals (issue 14): fastnn's slowdown <= 2x and <= 1.5x NumPy's under every hog.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine, run_child, save_json, write_section  # noqa: E402

TRAINING = HERE / "bench_training.py"
# PyTorch: foreach SGD for W1/W4, fused Adam for W2/W3 (bench_training's faster variants there)
TORCH_VARIANT = {"W1": "torch-foreach", "W2": "torch-fused", "W3": "torch-fused", "W4": "torch-foreach"}

HOGS = {
    "busy loop": "while True:\n    pass\n",
    "numpy BLAS": ("import numpy as np\n"
                   "a = np.random.default_rng(0).standard_normal((1024, 1024))\n"
                   "while True:\n    a = (a @ a) * 1e-3\n"),
    "fastnn": ("import sys\n"
               f"sys.path.insert(0, {str(HERE)!r})\n"
               "from bench_training import WORKLOADS, make_data\n"
               "from common import fastnn_relu_mlp\n"
               "from fastnn import optim\n"
               "X, y = make_data('W3')\n"
               "model = fastnn_relu_mlp(WORKLOADS['W3']['dims'], False, 0.0, 32)\n"
               "opt = optim.Adam(lr=1e-3)\n"
               "i = 0\n"
               "while True:\n"
               "    k = i % 8\n"
               "    model.train_step(X[32 * k:32 * k + 32], y[32 * k:32 * k + 32], optimizer=opt)\n"
               "    i += 1\n"),
}
CONDITIONS = ["alone", *HOGS]


def default_env() -> dict:
    """The environment of a user who sets nothing: no thread-count variables."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "FASTNN_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
    return env


def start_hog(name: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOGS[name]], env=default_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # imports done, the hog at full speed
    if p.poll() is not None:
        raise RuntimeError(f"hog {name!r} exited with {p.returncode}")
    return p


def measure(impl: str, w: str, cores: int, steps: int, samples: int) -> dict[str, float]:
    """Median seconds per step of each timing the worker reports, at its default thread count."""
    worker = TORCH_VARIANT[w] if impl == "torch" else impl
    args = ["--worker", worker, "--workload", w, "--threads", str(cores), "--steps", str(steps),
            "--samples", str(samples), "--w4-steps", str(steps), "--warmup", str(min(steps, 5))]
    out = run_child(TRAINING, args, default_env())
    return {k: statistics.median(v) for k, v in out["timings"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="W1,W2,W3,W4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="W1 and W3, one round, few steps: a smoke run")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.workloads, args.rounds, args.steps, args.samples = "W1,W3", 1, 10, 3

    import fastnn

    cores = fastnn._core.hardware_threads()
    mach = machine()
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    workers = ["fastnn", "torch", "numpy"]
    raw: dict = {}  # raw[w][condition][column] = [median seconds per round]
    for w in workloads:
        steps = min(args.steps, 5) if w == "W4" else args.steps
        for r in range(args.rounds):
            for cond in CONDITIONS:
                hog = None if cond == "alone" else start_hog(cond)
                try:
                    order = workers[r % 3:] + workers[:r % 3]
                    for impl in order:
                        got = measure(impl, w, cores, steps, args.samples)
                        for label, sec in got.items():
                            col = label if impl == "fastnn" else impl
                            raw.setdefault(w, {}).setdefault(cond, {}).setdefault(col, []).append(sec)
                        print(f"{w} round {r} {cond:10s} {impl}: "
                              + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in got.items()), file=sys.stderr, flush=True)
                finally:
                    if hog is not None:
                        hog.kill()
                        hog.wait()
    body = render(raw, workloads, mach, args, cores)
    print(body)
    if not args.no_write:
        save_json("contention", {"machine": mach, "cores": cores, "rounds": args.rounds, "raw": raw})
        write_section("Shared cores: slowdown beside another busy process", body)


def render(raw: dict, workloads: list[str], mach: dict, args, cores: int) -> str:
    cols = ["fastnn epoch loop", "fastnn train_step", "torch", "numpy"]
    lines = [f"{mach['cpu']}, {cores} cores, SIMD {mach['simd']}; every implementation at its default thread "
             f"count ({cores}); {args.rounds} round(s) of {args.samples} x {args.steps} steps per cell. "
             "Cells: median ms per step over rounds (worst round), and below them the slowdown against "
             "alone: median (worst).", ""]
    for w in workloads:
        lines += [f"**{w}**", "", "| condition | " + " | ".join(cols) + " | fastnn slowdown vs NumPy's | goal |",
                  "|---|" + "---:|" * (len(cols) + 1) + "---|"]
        alone = {c: statistics.median(raw[w]["alone"][c]) for c in cols}
        for cond in CONDITIONS:
            cells, slow = [], {}
            for c in cols:
                v = raw[w][cond][c]
                med, worst = statistics.median(v), max(v)
                slow[c] = (med / alone[c], worst / alone[c])
                cells.append(f"{med * 1e3:.3g} ({worst * 1e3:.3g})"
                             + ("" if cond == "alone" else f"<br>{slow[c][0]:.2f}x ({slow[c][1]:.2f}x)"))
            if cond == "alone":
                lines.append(f"| alone | {' | '.join(cells)} | – | – |")
                continue
            f_worst = max(slow["fastnn epoch loop"][1], slow["fastnn train_step"][1])
            rel = f_worst / max(slow["numpy"][1], 1e-9)
            misses = [m for m, bad in ((f"{f_worst:.2f}x > 2x", f_worst > 2.0),
                                       (f"{rel:.2f} > 1.5 x NumPy's", rel > 1.5)) if bad]
            goal = "met" if not misses else "NOT met: " + ", ".join(misses)
            lines.append(f"| beside {cond} | {' | '.join(cells)} | {rel:.2f} | {goal} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
