"""The ``fastnn`` command line.

    fastnn train [--data FILE.npz|FILE.csv] [--hidden 256,128] [--optimizer adam] [--lr 2e-3]
                 [--schedule cosine] [--epochs 40] [--batch-size 64] [--out runs/NAME] ...
    fastnn report DIR [--out DIR]       an HTML report of a run (also while it trains) or of a search
    fastnn gradcheck [--model PATH.safetensors] [--data FILE] [--samples N] [--coords K] [--h H]
    fastnn sanity [--model PATH.safetensors] [--data FILE]   the notes' sanity checks before training
    fastnn search CONFIG.toml [--workers N | --scheduler ADDRESS] [--out DIR] [--resume]
                       a hyperparameter search (examples/search.toml), coarse to fine, resumable
    fastnn demo        the CS231n functional-API demo on digits
    fastnn info        the build: BLAS, SIMD level, threads
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

import fastnn


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


def _image_shape(path: str | None) -> tuple[int, int] | None:
    """(height, width) when the training inputs are images: the built-in digits (8x8), or an .npz
    whose X has shape (N, height, width) (read from the array's header, not loaded)."""
    if path is None:
        return (8, 8)
    if not path.endswith(".npz"):
        return None
    import zipfile

    try:
        with zipfile.ZipFile(path) as z, z.open("X.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            if major not in (1, 2):
                return None
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape = read(f)[0]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return (int(shape[1]), int(shape[2])) if len(shape) == 3 else None


def _write_sample(out: Path, model, X: np.ndarray, y: np.ndarray, image_shape: tuple[int, int] | None,
                  rows: int = 64) -> None:
    """sample.npz: a few validation rows as the network sees them (after the model's preprocessing, which
    is what ``model.capture`` takes) and their labels (and the image shape), for the report's
    activation/gradient distributions and weight tiles."""
    from fastnn._atomic import write_atomic

    arrays = {"X": model.preprocess(X[:rows]), "y": np.ascontiguousarray(y[:rows])}
    if image_shape is not None:
        arrays["image_shape"] = np.asarray(image_shape, dtype=np.int64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(out / "sample.npz", buf.getvalue())


def _run_files_callback(out: Path, monitor, verbose: bool):
    """A callback writing history.json and monitor.json (strict JSON) after every epoch, atomically but
    without fsync (an fsync costs ~7 ms here, more than an epoch of the default run; the last write
    after training is fsynced), and printing the monitor's new diagnoses (it keeps one per (kind,
    place), so each is printed once)."""
    from fastnn.callbacks import Callback

    class RunFiles(Callback):
        def __init__(self) -> None:
            self.seen = 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            _write_run_files(out, self.trainer.history, monitor, fsync=False)
            new, self.seen = monitor.diagnoses[self.seen:], len(monitor.diagnoses)
            for d in new if verbose else ():
                print(f"fastnn train: diagnosis: {d}", file=sys.stderr)

    return RunFiles()


def _write_run_files(out: Path, history, monitor, fsync: bool = True) -> None:
    from fastnn._atomic import write_atomic
    from fastnn._json import dumps

    write_atomic(out / "history.json", dumps(history.to_dict()), fsync=fsync)
    write_atomic(out / "monitor.json", dumps(monitor.to_dict()), fsync=fsync)


def _train(args: argparse.Namespace) -> int:
    from fastnn import optim, schedules
    from fastnn.callbacks import EarlyStopping, ModelCheckpoint
    from fastnn.monitor import Monitor
    from fastnn.preprocessing import StandardScaler

    if args.threads:
        fastnn.set_num_threads(args.threads)
    source, splits = _load_data(args.data, args.seed)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = splits["train"], splits["val"], splits["test"]
    classes = int(max(ytr.max(), yva.max(), yte.max())) + 1
    hidden = [int(h) for h in args.hidden.split(",") if h]
    # the scaler is fitted on the training split only and attached to the model: the trainer applies it
    # to the training and validation rows, evaluate() to the test rows, and every checkpoint carries it,
    # so fastnn.load(path).predict(raw_X) works on raw inputs
    model = fastnn.MLP(Xtr.shape[1], hidden, classes, activation=args.activation, batchnorm=args.batchnorm,
                       dropout=args.dropout, l2=args.l2, seed=args.seed,
                       dtype=np.float64 if args.float64 else np.float32,
                       loss=fastnn.losses.SoftmaxCrossEntropy(label_smoothing=args.label_smoothing),
                       preprocessing=StandardScaler().fit(Xtr))
    opt_args = {"lr": schedules.by_name(args.schedule, args.lr, args.epochs)}
    if args.optimizer in ("sgd", "momentum", "nesterov", "gains"):
        opt_args["momentum"] = args.momentum
    optimizer = optim.resolve_optimizer(args.optimizer, **opt_args)
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"fastnn {fastnn.__version__}: {source}; train {len(Xtr)}, val {len(Xva)}, test {len(Xte)}; "
          f"{model.num_params()} parameters; {fastnn.get_num_threads()} threads")
    _write_sample(out, model, *((Xva, yva) if len(Xva) else (Xtr, ytr)), _image_shape(args.data))
    callbacks = [ModelCheckpoint(out / "best.safetensors", monitor="val_acc", save_best_only=True)]
    if args.patience:
        callbacks.append(EarlyStopping("val_acc", patience=args.patience, restore_best_weights=True))
    monitor = Monitor(every=10, warn=False)
    callbacks += [monitor, _run_files_callback(out, monitor, verbose=not args.quiet)]
    trainer = fastnn.Trainer(model, optimizer, callbacks=callbacks, progress="auto" if not args.quiet else False)
    t0 = time.perf_counter()
    hist = trainer.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, validation_data=(Xva, yva))
    seconds = time.perf_counter() - t0
    if not args.quiet:
        for e, loss, va in zip(hist.epoch, hist.history["loss"], hist.history["val_acc"], strict=True):
            if e == 1 or e % max(1, len(hist.epoch) // 10) == 0 or e == hist.epoch[-1]:
                print(f"epoch {e:4d}  loss {loss:.4f}  val acc {va:.4f}")
    test = model.evaluate(Xte, yte)  # raw test rows through the model's scaler
    model.save(out / "model.safetensors", history=hist, extra={"source": source, "test_accuracy": test["accuracy"]})
    _write_run_files(out, hist, monitor)
    print(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
          f"({seconds:.2f} s, {len(hist.epoch)} epochs)  -> {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from fastnn.report import report

    print(report(args.dir, out_dir=args.out))
    return 0


def _preprocess_like(model, Xtr: np.ndarray) -> np.ndarray:
    """The training rows as the checks should see them. A model with its own preprocessing attached
    (``fastnn train`` attaches its scaler) takes them raw: the checks apply it. Otherwise they are
    standardised with the statistics an older checkpoint recorded in its metadata, else with
    statistics fitted on these rows."""
    from fastnn.preprocessing import StandardScaler

    if model is not None and model.preprocessing is not None:
        return Xtr
    prep = (getattr(model, "checkpoint", None) or {}).get("preprocessing") if model is not None else None
    if prep and prep.get("kind") == "standardize":
        return StandardScaler.from_dict(prep).transform(Xtr)  # the statistics the model was trained with
    return StandardScaler().fit(Xtr).transform(Xtr)  # fitted on the training split only


def _check_setup(args: argparse.Namespace):
    """The model (loaded from --model, or a fresh MLP(in, [32], classes, batchnorm=True, seed=0)),
    the training split of the data (digits by default) preprocessed as ``fastnn train`` does, and a
    description of both."""
    if args.threads:
        fastnn.set_num_threads(args.threads)
    source, splits = _load_data(args.data, seed=0)
    Xtr, ytr = splits["train"]
    model = fastnn.load(args.model) if args.model else None
    if model is not None:
        wants = getattr(model.preprocessing, "n_features_in_", model.input_dim)  # raw features
        if wants != Xtr.shape[1]:
            raise ValueError(f"{args.model} takes {wants} input features but {source} has "
                             f"{Xtr.shape[1]}: pass the data it was trained on with --data")
    Xtr = _preprocess_like(model, Xtr)
    if model is None:
        classes = int(max(int(v[1].max()) for v in splits.values() if len(v[1]))) + 1
        model = fastnn.MLP(Xtr.shape[1], [32], classes, batchnorm=True, seed=0)
        what = f"fastnn.MLP({Xtr.shape[1]}, [32], {classes}, batchnorm=True, seed=0)"
    else:
        what = args.model
    print(f"{what} on {source} (train split, {len(Xtr)} rows)")
    return model, Xtr, ytr, {"model": what, "data": source}


def _save_check(args: argparse.Namespace, kind: str, data: dict) -> None:
    """Write ``<kind>.json`` beside --model when that folder is a training run (it holds history.json or
    monitor.json), so ``fastnn report`` shows the result."""
    from fastnn._atomic import write_atomic
    from fastnn._json import dumps

    if not args.model or args.no_save:
        return
    run = Path(args.model).resolve().parent
    if (run / "history.json").is_file() or (run / "monitor.json").is_file():
        path = write_atomic(run / f"{kind}.json", dumps(data, indent=1))
        print(f"wrote {path}")


def _coords(v: str) -> int | str:
    if v == "all":
        return v
    try:
        k = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {v!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {v!r}")
    return k


def _gradcheck(args: argparse.Namespace) -> int:
    from fastnn.gradcheck import gradcheck
    from fastnn.report import gradcheck_to_dict

    model, X, y, meta = _check_setup(args)
    kwargs = {}
    if args.samples is not None:
        kwargs["n_samples"] = args.samples
    if args.coords is not None:
        kwargs["coords"] = args.coords
    if args.h is not None:
        if not args.h > 0:
            raise ValueError(f"--h must be positive, got {args.h}")
        kwargs["h"] = args.h
    result = gradcheck(model, X, y, **kwargs)  # on a float64 copy of the model
    print(result.report())
    _save_check(args, "gradcheck", gradcheck_to_dict(result, **meta))
    return 0 if result.passed else 1


def _sanity(args: argparse.Namespace) -> int:
    from fastnn.report import sanity_to_dict
    from fastnn.sanity import sanity_check

    model, X, y, meta = _check_setup(args)
    result = sanity_check(model, X, y)
    print(result.report())
    _save_check(args, "sanity", sanity_to_dict(result, **meta))
    return 0 if result.passed else 1


def _search(args: argparse.Namespace) -> int:
    from fastnn.search import run_config

    if args.threads:
        fastnn.set_num_threads(args.threads)
    try:
        result, summary = run_config(args.config, workers=args.workers, scheduler=args.scheduler, out=args.out,
                                     resume=args.resume, verbose=not args.quiet)
    except (FileExistsError, RuntimeError) as exc:
        print(f"fastnn search: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if "test_acc_best" in summary:
        print(f"test accuracy: best trial {summary['test_acc_best']:.4f}, ensemble of the top "
              f"{summary['ensemble_size']} {summary['test_acc_ensemble']:.4f}")
    print(f"report: {summary['report']}")
    return 0 if result.top() else 1


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
    t.add_argument("--schedule", default="cosine", help=", ".join(fastnn.schedules.NAMES))
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--patience", type=int, default=0, help="early stopping patience in epochs (0: off)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    t.add_argument("--float64", action="store_true")
    t.add_argument("--out", help="run folder (default runs/<timestamp>)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_train)
    r = sub.add_parser("report", help="write an HTML report of a training run (also while it trains) or of a "
                                      "hyperparameter search (a folder with trials.jsonl); prints its path")
    r.add_argument("dir", metavar="DIR", help="a folder written by fastnn train --out (or by a search)")
    r.add_argument("--out", metavar="DIR", help="folder for report.html and the PNGs (default: DIR)")
    r.set_defaults(func=_report)
    for name, func, helptext in (
            ("gradcheck", _gradcheck, "check a model's analytic gradients against centred differences (float64); "
                                      "exit code 0 passed, 1 failed"),
            ("sanity", _sanity, "the notes' sanity checks: loss at chance, regularisation raises the loss, overfit "
                                "a tiny subset; exit code 0 passed, 1 failed")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--model", metavar="PATH.safetensors",
                       help="a saved model (its architecture and weights; default: a fresh "
                            "MLP(features, [32], classes, batchnorm=True, seed=0))")
        c.add_argument("--data", help=".npz with arrays X, y, or .csv with the label in the last column "
                                      "(default: scikit-learn's digits)")
        if name == "gradcheck":
            c.add_argument("--samples", type=int, default=None, help="data rows in the checked loss (default 4)")
            c.add_argument("--coords", type=_coords, default=None,
                           help="coordinates checked per parameter tensor, or 'all' (default 10)")
            c.add_argument("--h", type=float, default=None, help="finite-difference step (default 1e-5)")
        c.add_argument("--no-save", action="store_true",
                       help=f"do not write {name}.json beside --model when it lives in a run folder")
        c.add_argument("--threads", type=int, default=0)
        c.set_defaults(func=func)
    s = sub.add_parser("search", help="hyperparameter search from a TOML config (see examples/search.toml): "
                                      "random search, coarse to fine, resumable, local processes or Dask")
    s.add_argument("config", metavar="CONFIG.toml")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="run trials on N local processes (threads per process = cores // N)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run trials on a Dask cluster, e.g. tcp://host:8786 (needs fastnn[dask])")
    s.add_argument("--out", metavar="DIR", help="the run folder (default: [search] out, else runs/search-NAME)")
    s.add_argument("--resume", action="store_true", help="continue the search in --out (finished trials are kept)")
    s.add_argument("--threads", type=int, default=0, help="threads of an in-process search (default: all cores)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_search)
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
