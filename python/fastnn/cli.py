"""The ``fastnn`` command line.

    fastnn train [--data FILE.npz|FILE.csv] [--hidden 256,128] [--optimizer adam] [--lr 2e-3]
                 [--schedule cosine] [--epochs 40] [--batch-size 64] [--out runs/NAME] ...
    fastnn demo        the CS231n functional-API demo on digits
    fastnn info        the build: BLAS, SIMD level, threads
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import fastnn


def _schedule(name: str, lr: float, epochs: int):
    from fastnn import schedules as S

    if name == "constant":
        return lr
    if name == "cosine":
        return S.cosine(lr, epochs)
    if name == "step":
        return S.step_decay(lr, 0.5, max(1, epochs // 4))
    if name == "exponential":
        return S.exponential(lr, 3.0 / epochs)
    if name == "inverse_time":
        return S.inverse_time(lr, 10.0 / epochs)
    if name == "warmup_cosine":
        return S.warmup(S.cosine(lr, epochs), max(1, epochs // 10))
    raise ValueError(f"unknown schedule {name!r}")


def _load_data(path: str | None, seed: int):
    from fastnn import datasets

    if path is None:
        X, y = datasets.load_digits()
        source = "scikit-learn digits (1797 8x8 images)"
    elif path.endswith(".npz"):
        X, y = datasets.load_npz(path)
        source = path
    elif path.endswith(".csv"):
        X, y = datasets.load_csv(path)
        source = path
    else:
        raise ValueError(f"--data must be a .npz or .csv file, got {path!r}")
    X = X.reshape(len(X), -1)
    if y.dtype.kind not in "iu":
        raise ValueError(f"{source}: the labels must be integers (classification), got {y.dtype}")
    return source, datasets.train_val_test_split(X, y, val=0.15, test=0.2, seed=seed)


def _train(args: argparse.Namespace) -> int:
    from fastnn import optim
    from fastnn.callbacks import EarlyStopping, ModelCheckpoint
    from fastnn.datasets import Standardizer

    if args.threads:
        fastnn.set_num_threads(args.threads)
    source, splits = _load_data(args.data, args.seed)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = splits["train"], splits["val"], splits["test"]
    scaler = Standardizer().fit(Xtr)  # fitted on the training split only
    Xtr, Xva, Xte = scaler.transform(Xtr), scaler.transform(Xva), scaler.transform(Xte)
    classes = int(max(ytr.max(), yva.max(), yte.max())) + 1
    hidden = [int(h) for h in args.hidden.split(",") if h]
    model = fastnn.MLP(Xtr.shape[1], hidden, classes, activation=args.activation, batchnorm=args.batchnorm,
                       dropout=args.dropout, l2=args.l2, seed=args.seed,
                       dtype=np.float64 if args.float64 else np.float32,
                       loss=fastnn.losses.SoftmaxCrossEntropy(label_smoothing=args.label_smoothing))
    opt_args = {"lr": _schedule(args.schedule, args.lr, args.epochs)}
    if args.optimizer in ("sgd", "momentum", "nesterov", "gains"):
        opt_args["momentum"] = args.momentum
    optimizer = optim.resolve_optimizer(args.optimizer, **opt_args)
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"fastnn {fastnn.__version__}: {source}; train {len(Xtr)}, val {len(Xva)}, test {len(Xte)}; "
          f"{model.num_params()} parameters; {fastnn.get_num_threads()} threads")
    callbacks = [ModelCheckpoint(out / "best.safetensors", monitor="val_acc", save_best_only=True)]
    if args.patience:
        callbacks.append(EarlyStopping("val_acc", patience=args.patience, restore_best_weights=True))
    trainer = fastnn.Trainer(model, optimizer, callbacks=callbacks, progress="auto" if not args.quiet else False)
    t0 = time.perf_counter()
    hist = trainer.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, validation_data=(Xva, yva))
    seconds = time.perf_counter() - t0
    if not args.quiet:
        for e, loss, va in zip(hist.epoch, hist.history["loss"], hist.history["val_acc"], strict=True):
            if e == 1 or e % max(1, len(hist.epoch) // 10) == 0 or e == hist.epoch[-1]:
                print(f"epoch {e:4d}  loss {loss:.4f}  val acc {va:.4f}")
    test = model.evaluate(Xte, yte)
    model.save(out / "model.safetensors", history=hist, preprocessing=scaler.to_dict(),
               extra={"source": source, "test_accuracy": test["accuracy"]})
    (out / "history.json").write_text(json.dumps(hist.to_dict()))
    print(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
          f"({seconds:.2f} s, {len(hist.epoch)} epochs)  -> {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fastnn.demo import train_digits

    if args.threads:
        fastnn.set_num_threads(args.threads)
    res = train_digits(epochs=args.epochs, seed=args.seed, verbose=True)
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
    t = sub.add_parser("train", help="train an MLP (default: scikit-learn's bundled digits)")
    t.add_argument("--data", help=".npz with arrays X, y, or .csv with the label in the last column")
    t.add_argument("--hidden", default="256,128", help="hidden layer widths, comma-separated")
    t.add_argument("--activation", default="relu")
    t.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=True)
    t.add_argument("--dropout", type=float, default=0.1, help="probability of dropping a unit")
    t.add_argument("--l2", type=float, default=1e-4)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--optimizer", default="adam", help="sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, "
                                                        "adadelta, rprop, gains, lbfgs")
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--schedule", default="cosine",
                   help="constant, cosine, step, exponential, inverse_time, warmup_cosine")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--patience", type=int, default=0, help="early stopping patience in epochs (0: off)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    t.add_argument("--float64", action="store_true")
    t.add_argument("--out", help="run folder (default runs/<timestamp>)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_train)
    d = sub.add_parser("demo", help="the CS231n functional-API demo on digits")
    d.add_argument("--epochs", type=int, default=30)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, default=0)
    d.set_defaults(func=_demo)
    i = sub.add_parser("info", help="print the build: BLAS, SIMD level, threads")
    i.set_defaults(func=_info)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, ImportError, FileNotFoundError) as exc:
        print(f"fastnn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
