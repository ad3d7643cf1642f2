"""The ``fastnn`` command line."""

from __future__ import annotations

import argparse
import sys

import fastnn


def _train(args: argparse.Namespace) -> int:
    from fastnn.demo import train_digits

    if args.threads:
        fastnn.set_num_threads(args.threads)
    res = train_digits(epochs=args.epochs, hidden=args.hidden, batch_size=args.batch_size,
                       learning_rate=args.lr, seed=args.seed, verbose=True)
    return 0 if res.test_acc > 0 else 1


def _info(args: argparse.Namespace) -> int:
    for k, v in fastnn.build_info().items():
        print(f"{k}: {v}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastnn`` console script."""
    ap = argparse.ArgumentParser(prog="fastnn", description="C++-accelerated neural networks on the CPU")
    ap.add_argument("--version", action="version", version=f"fastnn {fastnn.__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a small net on scikit-learn's bundled digits data")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--hidden", type=int, default=128)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    t.set_defaults(func=_train)
    i = sub.add_parser("info", help="print the build: BLAS, SIMD level, threads")
    i.set_defaults(func=_info)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
