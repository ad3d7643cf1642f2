"""The CS231n recipe end to end on scikit-learn's digits: the script behind the user guide.

    python examples/recipe_digits.py              # the full run (a few seconds)
    python examples/recipe_digits.py --small      # tiny settings (the test suite runs this)
    python examples/recipe_digits.py --out DIR    # keep the figures, reports and checkpoints in DIR

Each step of the guide (docs/guide/recipe.rst) quotes the code between a ``# [name]`` and a
``# [/name]`` marker below, and shows what that code printed (``DIR/name.txt``) and drew
(``DIR/*.png``); the docs build runs this script to produce them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import fastnn
import numpy as np
from _guide_output import guide_sections  # examples/_guide_output.py

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="a few epochs and steps: a smoke test")
parser.add_argument("--out", help="folder for figures, printed reports and checkpoints (default: a temporary one)")
args = parser.parse_args()
OUT = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fastnn-recipe-"))
OUT.mkdir(parents=True, exist_ok=True)
EPOCHS = 3 if args.small else 40
fastnn.set_num_threads(1)  # results are identical for any thread count; digits is too small to need more


sections = guide_sections(OUT)  # what each step prints also goes to OUT/<step>.txt (for the guide)

sections.start("data")
# [data]
from fastnn import datasets
from fastnn.preprocessing import StandardScaler

X, y = datasets.load_digits()                      # 1797 images of 8x8 pixels, values 0..16, labels 0..9
splits = datasets.train_val_test_split(X, y, val=0.2, test=0.2, seed=0)   # stratified
(X_train, y_train), (X_val, y_val), (X_test, y_test) = splits["train"], splits["val"], splits["test"]

scaler = StandardScaler().fit(X_train)             # mean and std of the training split only
X_train, X_val, X_test = (scaler.transform(a) for a in (X_train, X_val, X_test))
print(f"train {X_train.shape}, val {X_val.shape}, test {X_test.shape}")
# [/data]

sections.start("init")
# [init]
# Activations of a 6-hidden-layer ReLU network at initialisation: their spread per layer.
for scheme in ("small_random", "xavier_normal", "he_normal"):
    deep = fastnn.MLP(64, [256] * 6, 10, init=scheme, seed=0)
    loss, acts, grads = deep.capture(X_train[:500], y_train[:500])
    stds = [a.std() for a in acts[1::2]]           # the outputs of the six ReLU layers
    print(f"{scheme:>13}: ReLU output std by layer " + " ".join(f"{s:8.2g}" for s in stds))
# [/init]

sections.start("model")
# [model]
from fastnn import BatchNorm, Dense, Dropout, ReLU

model = fastnn.Sequential([
    Dense(64, 128), BatchNorm(), ReLU(), Dropout(0.2),
    Dense(128, 64), BatchNorm(), ReLU(), Dropout(0.2),
    Dense(64, 10),
], l2=1e-4, seed=0)             # init="auto": He before a ReLU, Xavier for the output layer
print(model)
# [/model]

sections.start("gradcheck")
# [gradcheck]
from fastnn.gradcheck import best_step, gradcheck

result = gradcheck(model, X_train, y_train)        # float64 copy, 4 rows, 10 coordinates per tensor
print(result.report())
assert result.passed

reg = gradcheck(model, X_train, y_train, component="reg")   # the L2 penalty alone
print("regularisation alone:", "PASSED" if reg.passed else "FAILED", f"(max rel. error {reg.max_rel_error:.1e})")
h, errors = best_step(model, X_train, y_train)
print("max rel. error by step size:", {k: f"{v:.1e}" for k, v in errors.items()}, "-> best h =", h)
# [/gradcheck]

sections.start("sanity")
# [sanity]
from fastnn.sanity import sanity_check

report = sanity_check(model, X_train, y_train, steps=100 if args.small else 300)
print(report.report())
# [/sanity]

sections.start("train")
# [train]
from fastnn import optim, schedules
from fastnn.callbacks import EarlyStopping, ModelCheckpoint
from fastnn.monitor import Monitor

monitor = Monitor(every=5, warn=False)             # records in C++ every 5 steps; warn=True warns at once
checkpoint = ModelCheckpoint(OUT / "checkpoints" / "best.safetensors", monitor="val_acc", save_best_only=True)
stopper = EarlyStopping("val_acc", patience=10, restore_best_weights=True)
optimizer = optim.Adam(lr=schedules.cosine(3e-3, EPOCHS))   # anneal 3e-3 -> 0 over the run

trainer = fastnn.Trainer(model, optimizer, callbacks=[monitor, checkpoint, stopper])
history = trainer.fit(X_train, y_train, epochs=EPOCHS, batch_size=64, validation_data=(X_val, y_val))

h = history.history
for e in range(0, len(history.epoch), max(1, len(history.epoch) // 8)):
    print(f"epoch {history.epoch[e]:3d}  loss {h['loss'][e]:.4f}  train acc {h['train_acc'][e]:.3f}  "
          f"val acc {h['val_acc'][e]:.3f}  lr {h['lr'][e]:.2e}")
print(f"best val acc {stopper.best:.3f} at epoch {stopper.best_epoch}")
# [/train]

sections.start("diagnoses")
# [diagnoses]
for d in monitor.diagnoses:                        # one per symptom and place, with the epochs it lasted
    print(d)
# [/diagnoses]

sections.start("plots")
# [plots]
from fastnn import plots

plots.save(plots.loss_curve(history), OUT / "loss_curve.png")
plots.save(plots.accuracy_curve(history), OUT / "accuracy_curve.png")
plots.save(plots.update_ratios(monitor, history), OUT / "update_ratios.png")
plots.save(plots.layer_stats(monitor, history), OUT / "layer_stats.png")

loss, acts, grads = model.capture(X_train[:256], y_train[:256])
names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(model.layers)]
plots.save(plots.distributions(acts, grads, names), OUT / "distributions.png")
plots.save(plots.weight_tiles(model.params["0.weight"], (8, 8), max_units=64), OUT / "weight_tiles.png")
# [/plots]

sections.start("schedules")
# [schedules]
steps_per_epoch = 17
for name, s in [("cosine(3e-3, 40)", schedules.cosine(3e-3, 40)),
                ("step_decay(3e-3, 0.5, every=10)", schedules.step_decay(3e-3, 0.5, every=10)),
                ("warmup(cosine(3e-3, 40), 2)", schedules.warmup(schedules.cosine(3e-3, 40), 2)),
                ("exponential(3e-3, k=0.05)", schedules.exponential(3e-3, k=0.05))]:
    lr = s.values(np.array([0, steps_per_epoch, 10 * steps_per_epoch, 39 * steps_per_epoch]), steps_per_epoch)
    print(f"{name:>32}: epochs 0, 1, 10, 39 -> " + "  ".join(f"{v:.2e}" for v in lr))
# [/schedules]

sections.start("test")
# [test]
best = fastnn.load(OUT / "checkpoints" / "best.safetensors")       # the best epoch, as saved
print("restored (early stopping):", model.evaluate(X_test, y_test))
print("loaded checkpoint:        ", best.evaluate(X_test, y_test))
# [/test]

sections.start("resume")
# [resume]
resumed = fastnn.Sequential(model.layers, l2=1e-4, seed=0)          # same architecture, fresh weights
trainer2 = fastnn.Trainer(resumed, optim.Adam(lr=schedules.cosine(3e-3, EPOCHS)))
trainer2.fit(X_train, y_train, epochs=EPOCHS, batch_size=64, validation_data=(X_val, y_val),
             resume_from=OUT / "checkpoints" / "best.safetensors")  # weights, Adam state, epoch counter
saved_at = best.checkpoint["trainer"]["epoch"]
print(f"resumed after epoch {saved_at}, trained on to epoch {trainer2.epoch}:", resumed.evaluate(X_test, y_test))
# [/resume]

sections.start("done")
print(f"outputs in {OUT}")
