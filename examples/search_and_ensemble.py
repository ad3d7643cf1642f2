"""Tune with random search, coarse to fine, then finish with ensembles: the end of the recipe.

    python examples/search_and_ensemble.py --out DIR    # about a minute on 2 cores
    python examples/search_and_ensemble.py --small      # a few tiny trials (the test suite runs this)

The same search runs from the command line with a TOML file: ``fastnn search examples/search.toml``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import fastnn
from _guide_output import guide_sections  # examples/_guide_output.py
from fastnn import datasets
from fastnn.ensemble import Ensemble, distill, fit_averaged, snapshot_ensemble
from fastnn.preprocessing import StandardScaler
from fastnn.search import Search, choice, loguniform, randint, uniform

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="a few tiny trials: a smoke test")
parser.add_argument("--out", help="folder for the search, the printed outputs (default: a temporary one)")
args = parser.parse_args()
OUT = Path(args.out or tempfile.mkdtemp(prefix="fastnn-search-"))
OUT.mkdir(parents=True, exist_ok=True)
fastnn.set_num_threads(1)


sections = guide_sections(OUT)  # what each step prints also goes to OUT/<step>.txt (for the guide)

X, y = datasets.load_digits()
splits = datasets.train_val_test_split(X, y, val=0.15, test=0.2, seed=0)
(X_train, y_train), (X_val, y_val), (X_test, y_test) = splits["train"], splits["val"], splits["test"]
scaler = StandardScaler().fit(X_train)
X_train, X_val, X_test = (scaler.transform(a) for a in (X_train, X_val, X_test))

sections.start("search")
# [search]
space = {
    "lr": loguniform(1e-4, 3e-2),          # scales: log for the learning rate and the penalty,
    "l2": loguniform(1e-6, 1e-2),          # linear for the dropout probability
    "dropout": uniform(0.0, 0.5),
    "width": randint(32, 512, log=True),
    "depth": choice([1, 2]),
}
stages = [(4, 1), (2, 2)] if args.small else [(24, 3), (6, 15)]   # (trials, epochs): coarse, then fine
search = Search(space, OUT / "search", stages=stages, seed=0,
                fixed={"activation": "relu", "batchnorm": True, "optimizer": "adam", "schedule": "cosine"})
result = search.run(X_train, y_train, X_val, y_val)

for stage in result.stages:
    print(f"stage of {stage['trials']} trials x {stage['epochs']} epochs, ranges:",
          {k: str(v) for k, v in stage["space"].items()})
for trial in result.top(3):
    print(f"trial {trial['trial']:2d}: val acc {trial['val_acc']:.4f}",
          {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in trial["params"].items()})
for warning in result.warnings:        # a best value on the border of its range: widen the range
    print("warning:", warning)
# [/search]

sections.start("ensemble")
# [ensemble]
best = result.load_model()                                  # the best trial at its best epoch
top = Ensemble.from_search(OUT / "search", k=2 if args.small else 5)
print(f"best single model: test acc {best.evaluate(X_test, y_test)['accuracy']:.4f}")
print(f"ensemble of the top {len(top.models)}: test acc {top.score(X_test, y_test):.4f}"
      f" (members {', '.join(f'{s:.4f}' for s in top.member_scores(X_test, y_test))})")
# [/ensemble]

sections.start("cheap")
# [cheap]
epochs = 2 if args.small else 20
config = dict(result.config())                             # the best trial's hyperparameters
hidden = [config["width"]] * config["depth"]

snap = snapshot_ensemble(fastnn.MLP(64, hidden, 10, batchnorm=True, seed=1), X_train, y_train,
                         cycles=2 if args.small else 4, epochs_per_cycle=epochs // 2 if args.small else 5,
                         lr=0.05, validation_data=(X_val, y_val))
print(f"snapshot ensemble ({len(snap.models)} snapshots of one run): test acc {snap.score(X_test, y_test):.4f}")

averaged, _ = fit_averaged(fastnn.MLP(64, hidden, 10, batchnorm=True, seed=2), X_train, y_train,
                           decay=0.99, epochs=epochs, validation_data=(X_val, y_val))
print(f"running average of the weights (EMA 0.99): test acc {averaged.evaluate(X_test, y_test)['accuracy']:.4f}")

student = fastnn.MLP(64, [64], 10, batchnorm=True, seed=3)  # a smaller model learns from the ensemble
distill(top, X_train, y_train, student, temperature=3.0, epochs=epochs, validation_data=(X_val, y_val))
print(f"student (64 hidden units) distilled from the ensemble: test acc "
      f"{student.evaluate(X_test, y_test)['accuracy']:.4f}")
# [/cheap]

sections.start("done")
print(f"search folder: {OUT / 'search'} (fastnn report {OUT / 'search'})")
