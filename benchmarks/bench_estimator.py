"""Estimator: fastnn.MLPClassifier against sklearn.neural_network.MLPClassifier on digits.

Matched settings: the same architecture (64-100-10, ReLU, softmax), solver Adam (lr 1e-3, betas
0.9/0.999, eps 1e-8), alpha 1e-4, the same batch size, and max_iter epochs with tol=0 and
n_iter_no_change > max_iter, so that both run exactly max_iter epochs (checked: n_iter_ must equal
max_iter). Data: scikit-learn's digits scaled to [0, 1] (X / 16), a stratified 75/25 train/test
split drawn from the seed; the seed also seeds each estimator (random_state). Accuracy is on the
test split.

Configurations:
    default    batch_size='auto' (= 200 rows here), 200 epochs (scikit-learn's defaults)
    batch32    batch_size=32, 50 epochs (small batches: per-step overhead)
    early      batch 200, 200 epochs, early_stopping=True (a validation score every epoch; with
               tol=0 and n_iter_no_change > max_iter both still run 200 epochs, then restore the
               best weights)

Implementations (each in its own child process, alternating, the order rotated from round to round):
    fastnn        fastnn.MLPClassifier (float32)
    sklearn f64   sklearn's MLPClassifier on float64 input (its default)
    sklearn f32   sklearn's MLPClassifier on float32 input (it then computes in float32; faster)
The peer is the faster sklearn variant. Each child warms up with a 2-epoch fit, then times fit()
once per seed. Reported: the median and minimum fit time over rounds x seeds, the mean test
accuracy over seeds (fits are deterministic per seed), the ratio best-sklearn-median / fastnn-median,
peak RSS and the thread counts actually used (fastnn.get_num_threads; threadpoolctl for NumPy's BLAS).

    python benchmarks/bench_estimator.py [--threads 1,2] [--seeds 3] [--rounds 2]
                                         [--configs default,batch32,early] [--no-write]

Without --no-write it saves results/estimator.json and rewrites the "Estimator" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mib, run_child, save_json, thread_env, write_section  # noqa: E402

IMPLS = ("fastnn", "sklearn f64", "sklearn f32")
CONFIGS = {
    "default": {"batch_size": "auto", "max_iter": 200, "early_stopping": False,
                "desc": "batch 'auto' (200), 200 epochs"},
    "batch32": {"batch_size": 32, "max_iter": 50, "early_stopping": False, "desc": "batch 32, 50 epochs"},
    "early": {"batch_size": "auto", "max_iter": 200, "early_stopping": True,
              "desc": "batch 200, 200 epochs, early_stopping=True (validation every epoch)"},
}
GOAL = 10.0  # the goal: a fit at least 10x faster, same or better accuracy
# Where the time goes: from a separate profile (not re-measured by this script), kept with the table.
NOTES = """
Where the time goes (py-spy 0.4 `record --native`, 1 thread, the default configuration, 10 fits;
`py-spy record --native -r 500 -f raw -o prof.txt -- python <script fitting MLPClassifier>`):
fastnn spends 93 % of `fit` inside one C++ `train_epoch` call per epoch and 60 % in OpenBLAS's sgemm;
the rest is softmax cross-entropy (10 %), bias-gradient column sums (5 %), `hardware_threads()` -- a
`sched_getaffinity` syscall made on every GEMM call (3.6 %) -- and the Adam update (3.5 %); Python
bookkeeping between epochs (shuffling, the stopping rule) is ~4 %. scikit-learn spends 30-38 % in
dgemm and the rest in NumPy element-wise passes, per-batch indexing/validation and its Python Adam.
One step of the default configuration is 6.3 MFLOP of GEMM (200x64x100 forward and weight gradient,
three small GEMMs with 10 columns), 8.5 GFLOP per 200-epoch fit: its best fit (~0.15 s) runs at ~60 GFLOP/s,
GEMM-bound, and even at this core's fp32 peak (~114 GFLOP/s) the GEMMs alone take ~75 ms, so with
batches of 200 rows on one thread scikit-learn's ~0.5-1.4 s fit bounds the ratio to well under 10x.
The ratio grows where scikit-learn's per-step overhead dominates (small batches, a validation pass
every epoch). Timings on this shared machine vary by up to 2x between rounds: the minima (best
case for both) are the steadier comparison. Since that profile (commit 8b87030), `hardware_threads()`
is read once per process and the softmax cross-entropy kernel is ~35 % faster (vectorised max and
sum over padded rows): the default fit went from ~0.19 s to ~0.15 s. At 2 threads the default
configuration is no faster than at 1: its GEMMs (200 rows, 100 and 10 columns) are too small to
split profitably, and the thread team's barriers cost what the second core saves.
"""
ONE_THREAD_NOTE = """
Only 1 thread was measured: on this shared, loaded 2-core machine both libraries' 2-thread fits were
3-30x slower than their 1-thread fits (spinning thread pools contending with other processes), so
2-thread timings would measure the neighbours, not the libraries.
"""


def _params(config: str, seed: int) -> dict:
    c = CONFIGS[config]
    return {"hidden_layer_sizes": (100,), "activation": "relu", "solver": "adam", "alpha": 1e-4,
            "batch_size": c["batch_size"], "learning_rate_init": 1e-3, "beta_1": 0.9, "beta_2": 0.999,
            "epsilon": 1e-8, "max_iter": c["max_iter"], "tol": 0.0, "n_iter_no_change": c["max_iter"] + 1,
            "early_stopping": c["early_stopping"], "validation_fraction": 0.1, "shuffle": True,
            "random_state": seed}


def child(impl: str, config: str, seeds: list[int]) -> dict:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    warnings.simplefilter("ignore", ConvergenceWarning)
    if impl == "fastnn":
        import fastnn

        cls, dtype = fastnn.MLPClassifier, np.float64  # fastnn converts to its float32 once per fit
    else:
        from sklearn.neural_network import MLPClassifier as cls

        dtype = np.float32 if impl == "sklearn f32" else np.float64
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(dtype)
    warm = cls(**{**_params(config, 0), "max_iter": 2, "n_iter_no_change": 3})
    warm.fit(X[:400], y[:400])
    runs = []
    for seed in seeds:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
        est = cls(**_params(config, seed))
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)
        fit_s = time.perf_counter() - t0
        if est.n_iter_ != CONFIGS[config]["max_iter"]:
            raise AssertionError(f"{impl}: ran {est.n_iter_} epochs, expected {CONFIGS[config]['max_iter']}")
        runs.append({"seed": seed, "fit_s": fit_s, "accuracy": float(est.score(Xte, yte)), "n_iter": est.n_iter_,
                     "final_loss": float(est.loss_)})
    threads = {}
    if impl == "fastnn":
        threads["fastnn"] = fastnn.get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        threads["numpy/scipy BLAS"] = sorted({p["num_threads"] for p in threadpool_info()
                                              if p.get("user_api") == "blas"})
    except ImportError:
        pass
    return {"impl": impl, "config": config, "runs": runs, "peak_rss_mib": peak_rss_mib(), "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--configs", default="default,batch32,early")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "CONFIG", "SEEDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        impl, config, seeds = args.child
        print(json.dumps(child(impl, config, [int(s) for s in seeds.split(",")])))
        return

    threads = [int(t) for t in args.threads.split(",")]
    configs = args.configs.split(",")
    seeds = ",".join(str(s) for s in range(args.seeds))
    raw: dict = {}
    for r in range(args.rounds):
        for nt in threads:
            for config in configs:
                order = IMPLS[r % len(IMPLS):] + IMPLS[:r % len(IMPLS)]
                for impl in order:
                    res = run_child(Path(__file__), ["--child", impl, config, seeds], thread_env(nt))
                    raw.setdefault(f"{nt}|{config}|{impl}", []).append(res)
                    times = [x["fit_s"] for x in res["runs"]]
                    print(f"round {r} threads {nt} {config:8s} {impl:12s} fit {statistics.median(times):.3f} s "
                          f"acc {statistics.mean(x['accuracy'] for x in res['runs']):.4f}", flush=True)

    summary = []
    for nt in threads:
        for config in configs:
            row = {"threads": nt, "config": config}
            for impl in IMPLS:
                results = raw[f"{nt}|{config}|{impl}"]
                times = [x["fit_s"] for res in results for x in res["runs"]]
                accs = [x["accuracy"] for x in results[0]["runs"]]
                row[impl] = {"median_s": statistics.median(times), "min_s": min(times),
                             "accuracy_mean": statistics.mean(accs), "accuracy_min": min(accs),
                             "peak_rss_mib": max(res["peak_rss_mib"] for res in results),
                             "threads": results[0]["threads"]}
            peer = min(("sklearn f64", "sklearn f32"), key=lambda k: row[k]["median_s"])
            row["peer"] = peer
            row["ratio"] = row[peer]["median_s"] / row["fastnn"]["median_s"]
            row["ratio_min"] = min(row["sklearn f64"]["min_s"], row["sklearn f32"]["min_s"]) / row["fastnn"]["min_s"]
            row["accuracy_delta"] = row["fastnn"]["accuracy_mean"] - max(row["sklearn f64"]["accuracy_mean"],
                                                                          row["sklearn f32"]["accuracy_mean"])
            summary.append(row)
    mach = machine()
    data = {"machine": mach, "configs": {c: CONFIGS[c] for c in configs}, "seeds": args.seeds,
            "rounds": args.rounds, "summary": summary, "raw": raw}
    for row in summary:
        print(f"{row['threads']} thread(s) {row['config']:8s} ratio {row['ratio']:.2f}x "
              f"(fastnn {row['fastnn']['median_s']:.3f} s vs {row['peer']} {row[row['peer']]['median_s']:.3f} s), "
              f"accuracy {row['fastnn']['accuracy_mean']:.4f} vs "
              f"{max(row['sklearn f64']['accuracy_mean'], row['sklearn f32']['accuracy_mean']):.4f}")
    if args.no_write:
        return
    save_json("estimator", data)
    lines = [
        f"Machine: {mach['cpu']}, {mach['cores']} cores at {mach['clock_ghz']} GHz (measured), shared with other "
        "work while measured (noisy). scikit-learn's digits (X / 16), stratified 75/25 split per seed; 64-100-10 "
        "ReLU MLP, Adam lr 1e-3, alpha 1e-4, tol=0 with n_iter_no_change > max_iter so both run every epoch "
        f"(checked). {args.seeds} seeds x {args.rounds} child-process rounds; fit time median (min) in seconds; "
        "accuracy = mean test accuracy over the seeds. Ratio = faster scikit-learn variant / fastnn (goal "
        f">= {GOAL:.0f}x). Reproduce: `python benchmarks/bench_estimator.py`.",
        "",
        "| threads | config | fastnn fit (s) | sklearn f64 fit (s) | sklearn f32 fit (s) | ratio (of mins) | "
        "accuracy fastnn | accuracy sklearn f64 / f32 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        f, s64, s32 = row["fastnn"], row["sklearn f64"], row["sklearn f32"]
        desc = CONFIGS[row["config"]]["desc"]
        lines.append(f"| {row['threads']} | {desc} | {f['median_s']:.3f} ({f['min_s']:.3f}) | "
                     f"{s64['median_s']:.3f} ({s64['min_s']:.3f}) | {s32['median_s']:.3f} ({s32['min_s']:.3f}) | "
                     f"{row['ratio']:.1f}x ({row['ratio_min']:.1f}x) | {f['accuracy_mean']:.4f} | "
                     f"{s64['accuracy_mean']:.4f} / {s32['accuracy_mean']:.4f} |")
    lines += ["", NOTES.strip()]
    if threads == [1]:
        lines += ["", ONE_THREAD_NOTE.strip()]
    write_section("Estimator: fastnn.MLPClassifier vs scikit-learn's MLPClassifier (digits)", "\n".join(lines))


if __name__ == "__main__":
    main()
