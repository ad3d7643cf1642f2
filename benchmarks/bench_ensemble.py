"""Ensemble gains: on digits and MNIST-1D (when the mnist1d package is installed), for several seeds,

* an ensemble of 5 models of one configuration (different initialisation/dropout/shuffling seeds)
  against the mean and the best of its members (test accuracy);
* a snapshot ensemble (one run as long as one member, momentum SGD with a cosine learning rate
  restarted every cycle, one snapshot per cycle) against its own last snapshot;
* the EMA of the weights of one run against its final weights;
* a student of the members' architecture distilled from the ensemble of 5 (temperature T, soft
  targets only, twice a member's epochs) against the same model trained on the labels for as long.

Preprocessing: per-feature standardisation fitted on the training split only. Writes the
"Ensembles" section of benchmarks/RESULTS.md and benchmarks/results/ensemble.json.

    python benchmarks/bench_ensemble.py [--seeds 3] [--threads 1] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fastnn  # noqa: E402
from common import git_commit, machine, save_json, write_section  # noqa: E402
from fastnn import datasets  # noqa: E402
from fastnn.ensemble import distill, fit_averaged, snapshot_ensemble, train_ensemble  # noqa: E402
from fastnn.search import build_model, train_config  # noqa: E402

CONFIGS = {
    # the configurations are reasonable hand-picked ones (a search would tune them further)
    "digits": {"hidden": [256], "batchnorm": True, "dropout": 0.2, "l2": 1e-4, "optimizer": "adam", "lr": 3e-3,
               "schedule": "cosine", "batch_size": 64, "epochs": 30},
    "mnist1d": {"hidden": [256, 256], "batchnorm": True, "dropout": 0.1, "l2": 1e-4, "optimizer": "adam",
                "lr": 2e-3, "schedule": "cosine", "batch_size": 64, "epochs": 40},
}
SNAPSHOT = {"digits": {"optimizer": "momentum", "lr": 0.1, "cycles": 5},
            "mnist1d": {"optimizer": "momentum", "lr": 0.1, "cycles": 4}}
TEMPERATURE = 3.0


def load(name: str, seed: int):
    if name == "digits":
        X, y = datasets.load_digits()
        sp = datasets.train_val_test_split(X, y, val=0.15, test=0.2, seed=seed)
    else:
        X, y = datasets.load_mnist1d()  # the package's 4000/1000 split: train part first
        tr = datasets.train_val_test_split(X[:4000], y[:4000], val=0.15, test=0.0, seed=seed)
        sp = {"train": tr["train"], "val": tr["val"], "test": (X[4000:], y[4000:])}
    sc = datasets.Standardizer().fit(sp["train"][0])
    return {k: (np.ascontiguousarray(sc.transform(v[0]), dtype=np.float32), v[1]) for k, v in sp.items()}


def one_seed(name: str, seed: int, cfg: dict, snap_cfg: dict, n: int = 5) -> dict:
    d = load(name, seed)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = d["train"], d["val"], d["test"]
    k = int(ytr.max()) + 1
    E = int(cfg["epochs"])
    t0 = time.perf_counter()
    ens = train_ensemble(cfg, Xtr, ytr, Xva, yva, n=n, seed=1000 * seed)
    ev = ens.evaluate(Xte, yte)
    # snapshot ensemble: one run of E epochs in cycles of E / cycles
    cycles = int(snap_cfg["cycles"])
    snap_model = build_model(cfg, Xtr.shape[1], k, seed=1000 * seed + 500)
    snap = snapshot_ensemble(snap_model, Xtr, ytr, cycles=cycles, epochs_per_cycle=max(1, E // cycles),
                             lr=float(snap_cfg["lr"]), optimizer=snap_cfg["optimizer"],
                             batch_size=int(cfg["batch_size"]))
    # EMA of one run (the last 40 % of it)
    ema_model = build_model(cfg, Xtr.shape[1], k, seed=1000 * seed + 600)
    opt = fastnn.optim.resolve_optimizer(cfg["optimizer"], lr=fastnn.schedules.cosine(float(cfg["lr"]), E))
    avg, _ = fit_averaged(ema_model, Xtr, ytr, decay=0.998, start_epoch=int(0.6 * E), optimizer=opt, epochs=E,
                          batch_size=int(cfg["batch_size"]))
    # distillation of the ensemble of 5 into one model of the members' architecture, for 2E epochs,
    # and the same model (same seed) trained on the labels for as long
    student = build_model(cfg, Xtr.shape[1], k, seed=1000 * seed + 700)
    sopt = fastnn.optim.resolve_optimizer(cfg["optimizer"], lr=fastnn.schedules.cosine(float(cfg["lr"]), 2 * E))
    distill(ens, Xtr, ytr, student, temperature=TEMPERATURE, alpha=0.0, optimizer=sopt, epochs=2 * E,
            batch_size=int(cfg["batch_size"]))
    twin, _ = train_config(cfg, Xtr, ytr, Xva, yva, seed=1000 * seed + 700, epochs=2 * E)
    return {
        "seed": seed, "members": [float(v) for v in ens.member_scores(Xte, yte)],
        "member_mean": ev["member_mean"], "member_best": ev["member_best"], "ensemble": ev["accuracy"],
        "snapshot_last": float(snap.models[-1].score(Xte, yte)), "snapshot_ensemble": float(snap.score(Xte, yte)),
        "ema_final": float(ema_model.score(Xte, yte)), "ema_averaged": float(avg.score(Xte, yte)),
        "distilled": float(student.score(Xte, yte)), "labels_2x": float(twin.score(Xte, yte)),
        "test_rows": int(len(yte)),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _ms(vals: list[float]) -> str:
    m = statistics.mean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def table(results: dict[str, list[dict]]) -> str:
    rows = ["| data | seeds | member (mean) | best member | **ensemble of 5** | gain vs mean | wins | "
            "snapshot: last | snapshot ensemble | EMA: final | EMA weights | labels, 2x epochs | "
            "distilled (T=3), 2x epochs |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        col = {k: [r[k] for r in runs] for k in runs[0] if k not in ("members", "seed")}
        gain = [r["ensemble"] - r["member_mean"] for r in runs]
        wins = sum(g > 0 for g in gain)
        rows.append(f"| {name} (test {runs[0]['test_rows']}) | {len(runs)} | {_ms(col['member_mean'])} | "
                    f"{_ms(col['member_best'])} | **{_ms(col['ensemble'])}** | {100 * statistics.mean(gain):+.2f} | "
                    f"{wins}/{len(runs)} | {_ms(col['snapshot_last'])} | {_ms(col['snapshot_ensemble'])} | "
                    f"{_ms(col['ema_final'])} | {_ms(col['ema_averaged'])} | {_ms(col['labels_2x'])} | "
                    f"{_ms(col['distilled'])} |")
    return "\n".join(rows)


def reading(results: dict[str, list[dict]]) -> str:
    """One sentence per data set: the mean differences (percentage points) and how often they were positive."""
    out = []
    for name, runs in results.items():
        def diff(a: str, b: str, runs=runs) -> str:
            d = [r[a] - r[b] for r in runs]
            return f"{100 * statistics.mean(d):+.2f} ({sum(v > 0 for v in d)}/{len(d)} seeds better, " \
                   f"{sum(v < 0 for v in d)} worse)"
        out.append(f"- {name}: ensemble of 5 vs its members' mean {diff('ensemble', 'member_mean')}; vs its best "
                   f"member {diff('ensemble', 'member_best')}; snapshot ensemble vs its last snapshot "
                   f"{diff('snapshot_ensemble', 'snapshot_last')}; EMA vs final weights "
                   f"{diff('ema_averaged', 'ema_final')}; distilled vs labels {diff('distilled', 'labels_2x')}.")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="a third of the epochs (a smoke run)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    fastnn.set_num_threads(args.threads)
    names = ["digits"]
    try:
        import mnist1d  # noqa: F401

        names.append("mnist1d")
    except ImportError:
        print("mnist1d is not installed: MNIST-1D skipped (pip install mnist1d)", file=sys.stderr)
    results: dict[str, list[dict]] = {}
    for name in names:
        cfg = dict(CONFIGS[name])
        if args.quick:
            cfg["epochs"] = max(5, cfg["epochs"] // 3)
        results[name] = []
        for seed in range(args.seeds):
            r = one_seed(name, seed, cfg, SNAPSHOT[name])
            results[name].append(r)
            print(f"{name} seed {seed}: members {np.round(r['members'], 4).tolist()} mean {r['member_mean']:.4f} "
                  f"-> ensemble {r['ensemble']:.4f}; "
                  f"snapshot {r['snapshot_last']:.4f} -> {r['snapshot_ensemble']:.4f}; "
                  f"EMA {r['ema_final']:.4f} -> {r['ema_averaged']:.4f}; "
                  f"labels 2x {r['labels_2x']:.4f} vs distilled {r['distilled']:.4f} "
                  f"({r['seconds']} s)", flush=True)
    tab = table(results)
    print(tab)
    if args.no_write or args.quick:
        return 0
    cmd = f"python benchmarks/bench_ensemble.py --seeds {args.seeds} --threads {args.threads}"
    cfgs = "; ".join(f"{n}: {CONFIGS[n]}" for n in results)
    body = f"""Test accuracy in % (mean ± standard deviation over seeds; a seed sets the data split and every
initialisation). "member" is one model of the configuration below; the ensemble averages the
class probabilities of 5 such models that differ only in their seeds; "gain" is ensemble minus
the mean of its own members, "wins" the seeds where it was positive. Snapshot: one run as long
as one member (momentum SGD, peak lr 0.1, the cosine learning rate restarted every cycle: 5 cycles
on digits, 4 on MNIST-1D), its last snapshot vs the average of all snapshots. EMA: one run, its
final weights vs the exponential moving average (decay 0.998, last 40 % of the steps; batch-norm
statistics recomputed). Distilled: one model of the members' architecture trained only on the
ensemble's temperature-3 probabilities of the training set for twice a member's epochs, against
the same model (same seed) trained on the labels for as long.
Preprocessing: standardisation fitted on the training split. MNIST-1D: the mnist1d package's
4000/1000 split (15 % of the 4000 for validation, unused here).

{tab}

Differences in percentage points (mean over seeds):

{reading(results)}

Configurations: {cfgs}.
Command: `{cmd}` (machine: {machine().get('cpu', '?')}; shared, so times are not comparable; accuracy is
deterministic for a given seed).
"""
    write_section("Ensembles", body)
    save_json("ensemble", {"commit": git_commit(), "machine": machine(), "configs": {n: CONFIGS[n] for n in results},
                           "snapshot": {n: SNAPSHOT[n] for n in results},
                           "temperature": TEMPERATURE, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
