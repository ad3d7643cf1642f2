"""Run one W1-W4 workload's fastnn epoch loop for a while, for a profiler to attach to.

    python benchmarks/profile_step.py W3 --threads 2 --seconds 10 &
    # after it prints "ready": profile the steady state only (no imports, no set-up)
    perf record -p $! -o w3.data -- sleep 6
    perf report -i w3.data --sort dso        # OpenBLAS vs fastnn's kernels vs OpenMP waits
    perf report -i w3.data --sort dso,sym

The network, data and optimizer are bench_training.py's (the same child the benchmark times as
"fastnn epoch loop"); it prints the mean ms per step at the end. A build with symbols
(``-DCMAKE_BUILD_TYPE=RelWithDebInfo``) names fastnn's kernels in the report.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_training import WORKLOADS, make_data
from common import fastnn_relu_mlp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("--threads", type=int, default=None, help="fastnn threads (default: all cores)")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to run the timed loop")
    args = ap.parse_args()

    import fastnn
    from fastnn import optim

    if args.threads:
        fastnn.set_num_threads(args.threads)
    cfg = WORKLOADS[args.workload]
    X, y = make_data(args.workload)
    B = cfg["batch"]
    drop = 0.0 if cfg["keep"] is None else 1.0 - cfg["keep"]
    model = fastnn_relu_mlp(cfg["dims"], cfg["bn"], drop, B)
    opt = {"momentum": lambda: optim.SGD(lr=cfg["lr"], momentum=cfg["momentum"]),
           "sgd": lambda: optim.SGD(lr=cfg["lr"]), "adam": lambda: optim.Adam(lr=cfg["lr"])}[cfg["opt"]]()
    model.attach_optimizer(opt)
    net = model._net
    steps = X.shape[0] // B
    order = np.arange(steps * B, dtype=np.int64)
    lrs, mus = np.full(steps, cfg["lr"]), np.full(steps, cfg["momentum"])
    for _ in range(3):
        net.train_epoch(X, y, order, B, lrs, mus)
    print("ready", flush=True)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        net.train_epoch(X, y, order, B, lrs, mus)
        n += steps
    print(f"{args.workload}: {(time.perf_counter() - t0) / n * 1e3:.3f} ms/step over {n} steps, "
          f"{fastnn.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
