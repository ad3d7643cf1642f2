"""Train an MLP on scikit-learn's digits with the model API: preprocessing attached to the model,
batch norm, dropout, Adam with a cosine schedule, early stopping, the best checkpoint, then
evaluate, save, load and predict on raw inputs.

    python examples/train_digits.py            # 40 epochs (a second or two)
    python examples/train_digits.py --small    # 3 epochs (the test suite runs this)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import fastnn
import numpy as np
from fastnn import datasets, optim, schedules
from fastnn.callbacks import EarlyStopping, ModelCheckpoint
from fastnn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="3 epochs: a smoke test")
    parser.add_argument("--out", help="folder for the checkpoints (default: a temporary one)")
    args = parser.parse_args()
    epochs = 3 if args.small else 40
    out = Path(args.out or tempfile.mkdtemp(prefix="fastnn-digits-"))

    X, y = datasets.load_digits()
    splits = datasets.train_val_test_split(X, y, val=0.15, test=0.2, seed=0)
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = splits["train"], splits["val"], splits["test"]

    model = fastnn.Sequential([
        fastnn.Dense(64, 256), fastnn.BatchNorm(), fastnn.ReLU(), fastnn.Dropout(0.1),
        fastnn.Dense(256, 10),
    ], l2=1e-4, seed=0,                                       # or fastnn.MLP(64, [256], 10, batchnorm=True, ...)
        preprocessing=StandardScaler())                       # fitted by fit() on the training rows only
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=64,
                        optimizer=optim.Adam(lr=schedules.cosine(3e-3, epochs)),
                        validation_data=(X_val, y_val),
                        callbacks=[EarlyStopping("val_acc", patience=8, restore_best_weights=True),
                                   ModelCheckpoint(out / "{val_acc:.4f}_{epoch:03d}.safetensors",
                                                   monitor="val_acc", save_best_only=True)])
    print(f"{len(history.epoch)} epochs, best val acc {max(history.history['val_acc']):.4f}")
    result = model.evaluate(X_test, y_test)                   # {'loss': ..., 'accuracy': ...}
    print(f"test accuracy {result['accuracy']:.4f}, test loss {result['loss']:.4f}")

    path = out / "model.safetensors"
    model.save(path)                                          # atomic; safetensors, no pickle; with the scaler
    loaded = fastnn.load(path)
    assert np.array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))   # bit for bit
    raw = datasets.load_digits()[0][:5]                       # raw pixels: the model standardises them
    print("predictions for 5 raw images:", loaded.predict(raw))
    print(f"checkpoints in {out}: {sorted(p.name for p in out.glob('*.safetensors'))[-2:]}")


if __name__ == "__main__":
    main()
