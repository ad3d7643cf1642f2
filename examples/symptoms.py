"""Symptoms and remedies: short, deliberately broken trainings on digits and what fastnn's monitor says.

    python examples/symptoms.py            # every case (a few seconds)
    python examples/symptoms.py --small    # fewer epochs (the test suite runs this)
    python examples/symptoms.py --out DIR  # also write DIR/symptoms.txt (the user guide shows it)

Each case breaks one thing the CS231n notes warn about (learning rate, initialisation, capacity,
regularisation) and prints the :class:`fastnn.monitor.Diagnosis` lines the
:class:`fastnn.monitor.Monitor` callback produced, each (symptom, place) once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import fastnn
from fastnn import datasets, optim
from fastnn.monitor import Monitor
from fastnn.preprocessing import StandardScaler

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="fewer epochs: a smoke test")
parser.add_argument("--out", help="folder to write symptoms.txt into")
args = parser.parse_args()
fastnn.set_num_threads(1)

X, y = datasets.load_digits()
splits = datasets.train_val_test_split(X, y, val=0.2, test=0.2, seed=0)
(X_train, y_train), (X_val, y_val) = splits["train"], splits["val"]
scaler = StandardScaler().fit(X_train)
X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)


def bn_net(**kwargs) -> fastnn.Sequential:
    return fastnn.MLP(64, [128, 64], 10, batchnorm=True, seed=0, **kwargs)


# (what is wrong, model, optimizer, epochs, rows of training data)
CASES = [
    ("learning rate far too low", bn_net(), optim.SGD(lr=1e-5), 6, None),
    ("learning rate far too high", bn_net(), optim.SGD(lr=30.0), 3, None),
    ("learning rate absurdly high, no batch norm", fastnn.MLP(64, [128, 64], 10, seed=0),
     optim.SGD(lr=100.0, momentum=0.9), 3, None),
    ("ReLUs switched off by a negative initial bias", fastnn.MLP(64, [128, 128], 10, bias_init=-3.0, seed=0),
     optim.Adam(lr=1e-3), 3, None),
    ("tanh units with N(0, 1) initial weights (far too large)",
     fastnn.MLP(64, [128, 128], 10, activation="tanh", init=lambda rng, shape: rng.standard_normal(shape), seed=0),
     optim.SGD(lr=0.01), 2, None),
    ("a deep tanh network with 0.01 * N(0, 1) initial weights (far too small)",
     fastnn.MLP(64, [128] * 6, 10, activation="tanh", init="small_random", seed=0), optim.SGD(lr=0.01), 2, None),
    ("a big network, no regularisation, 100 training examples",
     fastnn.MLP(64, [512, 512], 10, seed=0), optim.Adam(lr=1e-3), 12, 100),
    ("two hidden units and a huge L2 penalty", fastnn.MLP(64, [2], 10, l2=1.0, seed=0), optim.Adam(lr=1e-3), 6, None),
]

lines = []
for what, model, optimizer, epochs, rows in CASES:
    if args.small:
        epochs = min(epochs, 6)
    monitor = Monitor(every=5, warn=False)
    Xt, yt = (X_train, y_train) if rows is None else (X_train[:rows], y_train[:rows])
    lines.append(f"* {what}: {type(optimizer).__name__}(lr={optimizer.lr:g}), {epochs} epochs")
    try:
        history = model.fit(Xt, yt, optimizer=optimizer, epochs=epochs, batch_size=64,
                            validation_data=(X_val, y_val), callbacks=[monitor])
        lines.append(f"    val acc {history.history['val_acc'][-1]:.3f}")
    except fastnn.NonFiniteLossError as err:        # raised at once; the weights stay finite
        lines.append(f"    NonFiniteLossError: {err}")
    lines += [f"    {d}" for d in monitor.diagnoses]  # one per symptom and place, with its epochs

text = "\n".join(lines)
print(text)
if args.out:
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "symptoms.txt").write_text(text + "\n", encoding="utf-8")
