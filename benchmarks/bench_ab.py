"""Two fastnn builds side by side: the same W1-W4 training steps (bench_training.py's fastnn worker),
alternating build A and build B child by child for many rounds, so that a change can be shown not
to slow a quiet machine down (or by how much it speeds it up).

    # a build of an earlier commit, staged as a package folder:
    git worktree add /tmp/old <commit> && cmake -S /tmp/old -B /tmp/old/build -DFASTNN_BUILD_PYTHON=ON \\
        -DPython_EXECUTABLE=$(which python) && cmake --build /tmp/old/build
    mkdir -p /tmp/old-stage && cp -r /tmp/old/python/fastnn /tmp/old-stage/ && cp /tmp/old/build/_core*.so \\
        /tmp/old-stage/fastnn/
    python benchmarks/bench_ab.py --a /tmp/old-stage --b installed [--workloads W1,W3] [--threads 1,2] [--rounds 15]

`installed` is the fastnn this Python imports. Per workload and thread count the table gives each
build's median over rounds of the per-child median step time (fastnn's C++ epoch loop), and B / A.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine, thread_env  # noqa: E402

CHILD = """
import sys
stage = {stage!r}
if stage != "installed":
    # an editable install's import hook would win over sys.path: drop it for this child
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(type(f)).lower()
                     and "skbc" not in repr(f).lower()]
    sys.path.insert(0, stage)
sys.path.insert(0, {here!r})
sys.argv = ["bench_training.py", *{args!r}]
import fastnn, bench_training
assert stage == "installed" or fastnn.__file__.startswith(stage), fastnn.__file__
bench_training.main()
"""


def run(stage: str, w: str, nt: int, steps: int, samples: int) -> float:
    args = ["--worker", "fastnn", "--workload", w, "--threads", str(nt), "--steps", str(steps),
            "--samples", str(samples), "--w4-steps", str(steps), "--warmup", str(min(steps, 5))]
    code = CHILD.format(stage=stage, here=str(HERE), args=args)
    out = subprocess.run([sys.executable, "-c", code], env=thread_env(nt), capture_output=True, text=True,
                         timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    timings = json.loads(out.stdout.strip().splitlines()[-1])["timings"]
    return statistics.median(timings["fastnn epoch loop"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="staged package folder of build A, or 'installed'")
    ap.add_argument("--b", default="installed")
    ap.add_argument("--workloads", default="W1,W2,W3,W4")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    mach = machine()
    rows = []
    for nt in [int(t) for t in args.threads.split(",")]:
        for w in args.workloads.split(","):
            steps = min(args.steps, 4) if w == "W4" else args.steps
            res: dict[str, list[float]] = {"a": [], "b": []}
            for r in range(args.rounds if w != "W4" else max(3, args.rounds // 5)):
                for side in ("a", "b") if r % 2 == 0 else ("b", "a"):
                    res[side].append(run(getattr(args, side), w, nt, steps, args.samples))
            a, b = statistics.median(res["a"]), statistics.median(res["b"])
            rows.append((w, nt, a, b, len(res["a"])))
            print(f"{w} {nt} thread(s): A {a * 1e3:.3f} ms, B {b * 1e3:.3f} ms, B/A {b / a:.3f} "
                  f"({len(res['a'])} rounds)", file=sys.stderr, flush=True)
    print(f"{mach['cpu']}, {mach['cores']} cores, SIMD {mach['simd']}; A = {args.a}, B = {args.b}\n")
    print("| workload | threads | A ms/step | B ms/step | B / A (time) | rounds |\n|---|---:|---:|---:|---:|---:|")
    for w, nt, a, b, n in rows:
        print(f"| {w} | {nt} | {a * 1e3:.3f} | {b * 1e3:.3f} | {b / a:.3f} | {n} |")


if __name__ == "__main__":
    main()
