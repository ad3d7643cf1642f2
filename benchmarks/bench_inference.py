"""I1: inference latency and throughput (``predict_proba``), fastnn against onnxruntime, PyTorch and
NumPy on the same weights, float32.

    I1a  64-256-256-10, ReLU, softmax output
    I1b  3072-1024-1024-10, ReLU, softmax output

on 1, 64 and 4096 rows, with 1 thread and with all cores.

Implementations (each in its own child process, alternating within a round, the order rotated from
round to round; each child times every network and row count at one thread count):
    fastnn         ``model.predict_proba(X)`` (input checks included)
    onnxruntime    an ONNX graph built with ``onnx.helper`` (Gemm + Relu, Gemm + Relu, Gemm, Softmax)
                   over the same weights; CPU execution provider, ``intra_op_num_threads`` = threads,
                   ``inter_op_num_threads`` = 1, sequential execution, all graph optimisations
    torch          ``nn.Sequential`` of Linear/ReLU/Softmax under ``torch.inference_mode()``,
                   ``torch.set_num_threads(threads)``
    numpy          ``x @ W + b``, ``np.maximum``, a stable softmax (in place where natural); also run
                   with glibc's trimming off and OpenBLAS's Zen kernels (fastnn's choice on AMD CPUs),
                   and the faster of the two is the NumPy peer

Every child builds its network from the same seeded weights and returns its probabilities on a fixed
batch; the parent checks that all implementations agree (max abs difference < 1e-4).

Protocol (BENCHMARKS.md): warm-up, then at least 20 timed calls (and at least 0.3 s) per cell; the
median and minimum per child; the parent takes, per implementation, the median of the rounds'
medians and the minimum of their minima. Ratio = best peer median / fastnn median (>= 1: fastnn is at
least as fast).

    python benchmarks/bench_inference.py [--threads 1,2] [--rows 1,64,4096] [--rounds 3] [--quick]
                                         [--no-write]

Without --no-write it saves results/inference.json (with the Markdown table, which is also
printed, for benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    MALLOC_TUNED,
    fastnn_relu_mlp,
    git_commit,
    machine,
    rotated,
    run_child,
    save_json,
    thread_env,
)

NETWORKS = {"I1a": (64, 256, 256, 10), "I1b": (3072, 1024, 1024, 10)}
ROWS = (1, 64, 4096)
CHECK_ROWS = 64  # the batch whose probabilities every implementation returns for the agreement check
AGREE_TOL = 1e-4
VARIANTS = {  # name -> (worker impl, extra environment)
    "fastnn": ("fastnn", {}),
    "onnxruntime": ("onnxruntime", {}),
    "torch": ("torch", {}),
    "numpy": ("numpy", {}),
    "numpy (tuned)": ("numpy", {**MALLOC_TUNED, "OPENBLAS_CORETYPE": "Zen"}),
}
PEERS = ["onnxruntime", "torch", "numpy"]  # "numpy" = the faster NumPy variant
Predict = Callable[[np.ndarray], np.ndarray]  # float32 rows in, probabilities out


def weights(dims: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The benchmark's weights: He-normal W (in, out) and small random biases, float32, fixed seed."""
    rng = np.random.default_rng([2025, len(dims), dims[0]])
    out = []
    for i, o in zip(dims[:-1], dims[1:], strict=True):
        w = (rng.standard_normal((i, o), dtype=np.float32) * np.float32(np.sqrt(2.0 / i)))
        b = rng.standard_normal(o, dtype=np.float32) * np.float32(0.1)
        out.append((np.ascontiguousarray(w), b))
    return out


def inputs(dims: tuple[int, ...], rows: int) -> np.ndarray:
    """A fixed float32 input batch of ``rows`` rows for the network ``dims``."""
    return np.random.default_rng([7, dims[0], rows]).standard_normal((rows, dims[0]), dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# workers: each builds one implementation of a network and returns its predict function
# ----------------------------------------------------------------------------------------------
def build_fastnn(dims: tuple[int, ...], threads: int) -> Predict:
    """fastnn: the benchmarks' ReLU MLP with the shared weights copied into its parameter views."""
    import fastnn

    fastnn.set_num_threads(threads)
    model = fastnn_relu_mlp(dims)
    for k, (w, b) in enumerate(weights(dims)):
        model.params[f"{2 * k}.weight"][...] = w
        model.params[f"{2 * k}.bias"][...] = b
    return model.predict_proba


def build_onnxruntime(dims: tuple[int, ...], threads: int) -> Predict:
    """onnxruntime: a Gemm/Relu/Softmax graph over the shared weights, one session."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, cur = [], [], "x"
    ws = weights(dims)
    for k, (w, b) in enumerate(ws):
        inits += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(b, f"b{k}")]
        nodes.append(helper.make_node("Gemm", [cur, f"W{k}", f"b{k}"], [f"z{k}"]))
        cur = f"z{k}"
        if k < len(ws) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"h{k}"]))
            cur = f"h{k}"
    nodes.append(helper.make_node("Softmax", [cur], ["p"], axis=1))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, dims[0]])],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, dims[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda X: sess.run(None, {"x": X})[0]


def build_torch(dims: tuple[int, ...], threads: int) -> Predict:
    """PyTorch: nn.Sequential(Linear, ReLU, ..., Softmax) in eval mode, called under inference_mode."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    mods: list = []
    ws = weights(dims)
    for k, (w, b) in enumerate(ws):
        lin = nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if k < len(ws) - 1:
            mods.append(nn.ReLU())
    mods.append(nn.Softmax(dim=1))
    net = nn.Sequential(*mods).eval()

    def predict(X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(X)).numpy()

    return predict


def build_numpy(dims: tuple[int, ...], threads: int) -> Predict:
    """NumPy: x @ W + b, in-place ReLU and a stable softmax (threads come from the environment)."""
    ws = weights(dims)

    def predict(X: np.ndarray) -> np.ndarray:
        h = X
        for k, (w, b) in enumerate(ws):
            h = h @ w
            h += b
            if k < len(ws) - 1:
                np.maximum(h, 0, out=h)
        h -= h.max(axis=1, keepdims=True)
        np.exp(h, out=h)
        h /= h.sum(axis=1, keepdims=True)
        return h

    return predict


BUILDERS = {"fastnn": build_fastnn, "onnxruntime": build_onnxruntime, "torch": build_torch, "numpy": build_numpy}


def time_cell(f: Predict, X: np.ndarray, min_reps: int, min_time: float) -> list[float]:
    """Warm-up calls, then at least `min_reps` timed calls and `min_time` seconds: seconds per call."""
    for _ in range(3):
        f(X)
    ts: list[float] = []
    start = time.perf_counter()
    while len(ts) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        f(X)
        ts.append(time.perf_counter() - t0)
    return ts


def worker(impl: str, threads: int, rows: list[int], nets: list[str], min_reps: int, min_time: float) -> dict:
    """One child: every network and row count with one implementation at one thread count."""
    out: dict = {"impl": impl, "threads": threads, "cells": {}, "check": {}}
    for name in nets:
        dims = NETWORKS[name]
        f = BUILDERS[impl](dims, threads)
        out["check"][name] = np.asarray(f(inputs(dims, CHECK_ROWS)), dtype=np.float64).tolist()
        for n in rows:
            ts = time_cell(f, inputs(dims, n), min_reps, min_time)
            out["cells"][f"{name}/{n}"] = {"median": statistics.median(ts), "min": min(ts), "reps": len(ts)}
    if impl == "fastnn":
        import fastnn

        out["build_info"] = fastnn.build_info()
        assert out["build_info"]["num_threads"] == threads, out["build_info"]
    elif impl == "torch":
        import torch

        out["torch_threads"] = torch.get_num_threads()
    return out


# ----------------------------------------------------------------------------------------------
# parent
# ----------------------------------------------------------------------------------------------
def aggregate(raw: dict) -> dict:
    """table[threads][cell][impl] = {median, min}; "numpy" is the faster NumPy variant (named)."""
    table: dict = {}
    for nt, by_var in raw.items():
        cells = next(iter(by_var.values()))[0]["cells"]
        for cell in cells:
            row: dict = {}
            for var, runs in by_var.items():
                row[var] = {"median": statistics.median(r["cells"][cell]["median"] for r in runs),
                            "min": min(r["cells"][cell]["min"] for r in runs), "rounds": len(runs)}
            nps = [v for v in row if v.startswith("numpy")]
            best = min(nps, key=lambda v: row[v]["median"])
            row["numpy"] = {**row[best], "variant": best}
            peer = min(PEERS, key=lambda p: row[p]["median"])
            row["best peer"] = peer
            row["ratio"] = row[peer]["median"] / row["fastnn"]["median"]
            table.setdefault(nt, {})[cell] = row
    return table


def check_agreement(raw: dict) -> float:
    """Largest |p_impl - p_fastnn| over the check batches of every child; raises above AGREE_TOL."""
    worst = 0.0
    for by_var in raw.values():
        ref = by_var["fastnn"][0]["check"]
        for var, runs in by_var.items():
            for r in runs:
                for name, p in r["check"].items():
                    d = float(np.max(np.abs(np.asarray(p) - np.asarray(ref[name]))))
                    if d > AGREE_TOL:
                        raise AssertionError(f"{var} disagrees with fastnn on {name}: max |diff| {d:.3g}")
                    worst = max(worst, d)
    return worst


def _fmt(s: float) -> str:
    us = s * 1e6
    return f"{us / 1e3:.3g} ms" if us >= 1000 else f"{us:.3g} µs"


def render(table: dict, threads: list[int], rows: list[int], nets: list[str], mach: dict,
           args: argparse.Namespace, agree: float, versions: dict) -> str:
    """The Markdown table (with the machine and protocol line above it) for benchmarks/RESULTS.md."""
    v = versions
    lines = [
        f"Machine: {mach['cpu']}, {mach['cores']} cores at {mach['clock_ghz']} GHz (measured); fastnn simd "
        f"`{v.get('simd', '?')}`, BLAS {v.get('blas', '?')} ({v.get('blas_kernels', '?')} kernels), GEMM threading "
        f"`{v.get('gemm_threading', '?')}`; commit {git_commit()}. float32 `predict_proba` (softmax probabilities) "
        "of I1a = 64-256-256-10 and I1b = 3072-1024-1024-10 (ReLU), the same weights in every implementation "
        f"(max |difference| from fastnn's probabilities: {agree:.1e}). Time per call: median of {args.rounds} "
        "child-process rounds of each round's median (minimum over all calls in parentheses), "
        f">= {args.min_reps} calls and >= {args.min_time} s per cell. Peers: onnxruntime {v.get('onnxruntime', '?')} "
        f"(Gemm/Relu/Softmax graph, intra_op_num_threads = threads), PyTorch {v.get('torch', '?')} "
        f"(`inference_mode`, `set_num_threads`), NumPy {np.__version__} (x @ W + b, maximum, softmax; the faster "
        "of default and malloc-tuned + `OPENBLAS_CORETYPE=Zen`, marked *). Ratio = best peer median / fastnn "
        "median (>= 1.00: fastnn at least as fast).",
        "",
        "| network | rows | threads | fastnn | onnxruntime | PyTorch | NumPy | best peer | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name in nets:
        for n in rows:
            for nt in map(str, threads):
                row = table[nt][f"{name}/{n}"]
                cells = []
                for impl in ("fastnn", *PEERS):
                    c = row[impl]
                    star = "*" if impl == "numpy" and c["variant"] != "numpy" else ""
                    cells.append(f"{_fmt(c['median'])} ({_fmt(c['min'])}){star}")
                lines.append(f"| {name} {'-'.join(map(str, NETWORKS[name]))} | {n} | {nt} | " + " | ".join(cells)
                             + f" | {row['best peer']} | {row['ratio']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    """Parent (alternating children, table, JSON) or, with --worker, one child."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help="(internal) run one implementation in this process")
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,all cores)")
    ap.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated row counts")
    ap.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated: I1a,I1b")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-reps", type=int, default=20, help="timed calls per cell and child (at least)")
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds of timed calls per cell and child")
    ap.add_argument("--quick", action="store_true", help="1 round, 5 calls and 0.05 s per cell (a smoke run)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write results/inference.json")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.min_reps, args.min_time = 1, 5, 0.05
    rows = [int(r) for r in args.rows.split(",") if r.strip()]
    nets = [s.strip() for s in args.networks.split(",") if s.strip()]
    for name in nets:
        if name not in NETWORKS:
            raise SystemExit(f"unknown network {name!r}; choose from {sorted(NETWORKS)}")

    if args.worker:
        out = worker(args.worker, int(args.threads), rows, nets, args.min_reps, args.min_time)
        print(json.dumps(out))
        return

    import fastnn

    cores = fastnn._core.hardware_threads()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    mach = machine()
    versions = {k: v for k, v in fastnn.build_info().items() if k in ("blas", "blas_kernels", "gemm_threading", "simd")}
    for mod in ("onnxruntime", "torch"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError as e:
            raise SystemExit(f"bench_inference needs {mod}: pip install '.[bench,torch]' ({e})") from None
    print(f"CPU: {mach['cpu']}, {mach['cores']} cores at {mach['clock_ghz']} GHz; fastnn simd: {versions['simd']}",
          flush=True)
    names = list(VARIANTS)
    raw: dict = {}
    for nt in threads:
        for r in range(args.rounds):
            order = rotated(names, r)
            for name in order:
                impl, extra = VARIANTS[name]
                cargs = ["--worker", impl, "--threads", str(nt), "--rows", ",".join(map(str, rows)),
                         "--networks", ",".join(nets), "--min-reps", str(args.min_reps),
                         "--min-time", str(args.min_time)]
                out = run_child(Path(__file__), cargs, thread_env(nt, extra))
                raw.setdefault(str(nt), {}).setdefault(name, []).append(out)
                desc = ", ".join(f"{c} {_fmt(v['median'])}" for c, v in out["cells"].items())
                print(f"threads={nt} round={r} {name}: {desc}", flush=True)
    agree = check_agreement(raw)
    table = aggregate(raw)
    body = render(table, threads, rows, nets, mach, args, agree, versions)
    print()
    print(body)
    if not args.no_write:
        for by_var in raw.values():  # the agreement check is done: keep the JSON small
            for runs in by_var.values():
                for r in runs:
                    r.pop("check", None)
        path = save_json("inference", {"machine": mach, "versions": versions, "threads": threads, "rows": rows,
                                        "networks": {n: NETWORKS[n] for n in nets}, "rounds": args.rounds,
                                        "min_reps": args.min_reps, "min_time": args.min_time,
                                        "commit": git_commit(), "table": table, "raw": raw, "markdown": body})
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
