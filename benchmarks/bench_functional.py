"""F1: the CS231n functional API, op by op and as a whole W2 training step, fastnn against the
careful NumPy reference (numpy_ref.py), float32, batch 128, W2's shapes (784-512-512-10 with batch
norm and dropout keep 0.5, Adam).

Protocol (BENCHMARKS.md): every implementation runs in its own child process, alternating, warm-up
first, then at least 20 timed calls; median and minimum; peak RSS; at 1 thread and at all cores.
The NumPy reference runs with glibc's default malloc and with trimming off (the faster setting is
the one to beat).

    python benchmarks/bench_functional.py [--rounds 3] [--threads 1,2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    MALLOC_TUNED,
    machine,
    peak_rss_mib,
    run_child,
    save_json,
    thread_env,
    time_calls,
    write_section,
)

N, D_IN, H, C = 128, 784, 512, 10
OPS = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "batchnorm_forward",
       "batchnorm_backward", "dropout_forward", "dropout_backward", "softmax_loss", "adam",
       "W2 step"]


def make_net(rng):
    f = np.float32
    return {
        "W1": (rng.standard_normal((D_IN, H)) * np.sqrt(2 / D_IN)).astype(f), "b1": np.zeros(H, f),
        "g1": np.ones(H, f), "be1": np.zeros(H, f),
        "W2": (rng.standard_normal((H, H)) * np.sqrt(2 / H)).astype(f), "b2": np.zeros(H, f),
        "g2": np.ones(H, f), "be2": np.zeros(H, f),
        "W3": (rng.standard_normal((H, C)) * np.sqrt(2 / H)).astype(f), "b3": np.zeros(C, f),
    }


def w2_step(F, p, x, y, state):
    """One training step of W2 written against the CS231n API of module F."""
    bn1, bn2, dp1, dp2, opt = state["bn1"], state["bn2"], state["dp1"], state["dp2"], state["opt"]
    a1, ca1 = F.affine_forward(x, p["W1"], p["b1"])
    n1, cn1 = F.batchnorm_forward(a1, p["g1"], p["be1"], bn1)
    r1, cr1 = F.relu_forward(n1)
    d1, cd1 = F.dropout_forward(r1, dp1)
    a2, ca2 = F.affine_forward(d1, p["W2"], p["b2"])
    n2, cn2 = F.batchnorm_forward(a2, p["g2"], p["be2"], bn2)
    r2, cr2 = F.relu_forward(n2)
    d2, cd2 = F.dropout_forward(r2, dp2)
    scores, ca3 = F.affine_forward(d2, p["W3"], p["b3"])
    loss, ds = F.softmax_loss(scores, y)
    g = {}
    dd2, g["W3"], g["b3"] = F.affine_backward(ds, ca3)
    dr2 = F.dropout_backward(dd2, cd2)
    dn2 = F.relu_backward(dr2, cr2)
    da2, g["g2"], g["be2"] = F.batchnorm_backward(dn2, cn2)
    dd1, g["W2"], g["b2"] = F.affine_backward(da2, ca2)
    dr1 = F.dropout_backward(dd1, cd1)
    dn1 = F.relu_backward(dr1, cr1)
    da1, g["g1"], g["be1"] = F.batchnorm_backward(dn1, cn1)
    _, g["W1"], g["b1"] = F.affine_backward(da1, ca1)
    for k in p:
        p[k], opt[k] = F.adam(p[k], g[k], opt[k])
    return loss


def worker(impl: str) -> dict:
    if impl == "fastnn":
        import fastnn.functional as F
    else:
        import numpy_ref as F
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D_IN)).astype(np.float32)
    h = rng.standard_normal((N, H)).astype(np.float32)
    dh = rng.standard_normal((N, H)).astype(np.float32)
    s = rng.standard_normal((N, C)).astype(np.float32)
    y = rng.integers(0, C, N)
    p = make_net(rng)
    res = {}
    res["affine_forward"] = time_calls(lambda: F.affine_forward(x, p["W1"], p["b1"]))
    _, ca = F.affine_forward(x, p["W1"], p["b1"])
    res["affine_backward"] = time_calls(lambda: F.affine_backward(dh, ca))
    res["relu_forward"] = time_calls(lambda: F.relu_forward(h))
    _, cr = F.relu_forward(h)
    res["relu_backward"] = time_calls(lambda: F.relu_backward(dh, cr))
    bn = {"mode": "train"}
    res["batchnorm_forward"] = time_calls(lambda: F.batchnorm_forward(h, p["g1"], p["be1"], bn))
    _, cb = F.batchnorm_forward(h, p["g1"], p["be1"], bn)
    res["batchnorm_backward"] = time_calls(lambda: F.batchnorm_backward(dh, cb))
    dp = {"mode": "train", "p": 0.5}
    res["dropout_forward"] = time_calls(lambda: F.dropout_forward(h, dp))
    _, cd = F.dropout_forward(h, dp)
    res["dropout_backward"] = time_calls(lambda: F.dropout_backward(dh, cd))
    res["softmax_loss"] = time_calls(lambda: F.softmax_loss(s, y))
    w = p["W1"].copy()
    cfg: dict = {}
    gw = (0.01 * rng.standard_normal(w.shape)).astype(np.float32)
    res["adam"] = time_calls(lambda: F.adam(w, gw, cfg))
    state = {"bn1": {"mode": "train"}, "bn2": {"mode": "train"}, "dp1": {"mode": "train", "p": 0.5},
             "dp2": {"mode": "train", "p": 0.5}, "opt": {k: {} for k in p}}
    losses = []
    res["W2 step"] = time_calls(lambda: losses.append(w2_step(F, p, x, y, state)))
    assert np.isfinite(losses[-1])
    return {"impl": impl, "ops": res, "peak_rss_mib": peak_rss_mib()}


VARIANTS = {  # name -> (worker impl, extra environment)
    "fastnn": ("fastnn", {}),
    "numpy": ("numpy", {}),
    "numpy (malloc tuned)": ("numpy", MALLOC_TUNED),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,all)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    import fastnn

    cores = fastnn._core.hardware_threads()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    mach = machine()
    raw: dict = {}
    for nt in threads:
        for r in range(args.rounds):
            for name, (impl, extra) in VARIANTS.items():
                out = run_child(Path(__file__), ["--worker", impl], thread_env(nt, extra))
                raw.setdefault(str(nt), {}).setdefault(name, []).append(out)
                print(f"threads={nt} round={r} {name}: W2 step "
                      f"{out['ops']['W2 step']['median'] * 1e3:.2f} ms", flush=True)
    # aggregate: per op, the median of the rounds' medians and the min of their mins
    table: dict = {}
    for nt, by_var in raw.items():
        for name, runs in by_var.items():
            for op in OPS:
                table.setdefault(nt, {}).setdefault(op, {})[name] = {
                    "median": statistics.median(r["ops"][op]["median"] for r in runs),
                    "min": min(r["ops"][op]["min"] for r in runs),
                }
            table[nt].setdefault("_rss", {})[name] = max(r["peak_rss_mib"] for r in runs)
    save_json("f1_functional", {"machine": mach, "threads": threads, "table": table, "raw": raw})

    lines = [f"Machine: {mach['cpu']}, {mach['cores']} cores at {mach['clock_ghz']} GHz (measured), "
             f"simd {mach['simd']}; float32, batch {N}, W2 shapes. Times are medians of "
             f"{args.rounds} child-process rounds (min in parentheses), microseconds. Ratio = best "
             "NumPy median / fastnn median. Reproduce: `python benchmarks/bench_functional.py`.", ""]
    for nt in map(str, threads):
        t = table[nt]
        lines += [f"**{nt} thread(s)**", "",
                  "| op | fastnn | NumPy | NumPy (malloc tuned) | ratio |", "|---|---:|---:|---:|---:|"]
        for op in OPS:
            row = t[op]
            best_np = min(row["numpy"]["median"], row["numpy (malloc tuned)"]["median"])
            cells = [f"{row[v]['median'] * 1e6:.1f} ({row[v]['min'] * 1e6:.1f})" for v in VARIANTS]
            lines.append(f"| {op} | {' | '.join(cells)} | {best_np / row['fastnn']['median']:.2f}x |")
        rss = t["_rss"]
        lines.append(f"| peak RSS (MiB) | {rss['fastnn']:.0f} | {rss['numpy']:.0f} | "
                     f"{rss['numpy (malloc tuned)']:.0f} | |")
        lines.append("")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("F1: functional API vs NumPy (W2 shapes)", body)


if __name__ == "__main__":
    main()
