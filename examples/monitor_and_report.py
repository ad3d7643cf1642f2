"""Watch a training run with the monitor, keep it in a run folder, and turn it into an HTML report.

    python examples/monitor_and_report.py --out run1     # then open run1/report.html
    python examples/monitor_and_report.py --small        # 3 epochs (the test suite runs this)

The run folder holds what ``fastnn train --out DIR`` writes: ``history.json`` (every loss and
metric), ``monitor.json`` (the monitor's records and diagnoses), ``model.safetensors`` and
``sample.npz`` (a few preprocessed training rows, for the activation histograms and the
first-layer weight images). ``fastnn report DIR`` draws the plots from them; it also works on a
run that is still training, since the files are rewritten atomically after every epoch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import fastnn
import numpy as np
from fastnn import cli, datasets, optim, schedules
from fastnn.callbacks import Callback
from fastnn.monitor import Monitor, TrainingWarning
from fastnn.preprocessing import StandardScaler


class RunFolder(Callback):
    """After every epoch, write history.json and monitor.json (atomically: write, then rename)."""

    def __init__(self, folder: Path, monitor: Monitor) -> None:
        self.folder, self.monitor = folder, monitor

    def _write(self, name: str, data: dict) -> None:
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.folder / name)

    def on_epoch_end(self, epoch, logs=None):
        self._write("history.json", self.trainer.history.to_dict())
        self._write("monitor.json", self.monitor.to_dict())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="3 epochs: a smoke test")
    parser.add_argument("--out", help="the run folder (default: a temporary one)")
    args = parser.parse_args()
    run = Path(args.out or tempfile.mkdtemp(prefix="fastnn-run-"))
    run.mkdir(parents=True, exist_ok=True)
    epochs = 3 if args.small else 30

    X, y = datasets.load_digits()
    splits = datasets.train_val_test_split(X, y, val=0.2, test=0.2, seed=0)
    (X_train, y_train), (X_val, y_val) = splits["train"], splits["val"]
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    np.savez(run / "sample.npz", X=X_train[:256], y=y_train[:256], image_shape=np.array([8, 8]))

    model = fastnn.MLP(64, [128, 64], 10, batchnorm=True, dropout=0.1, l2=1e-4, seed=0)
    monitor = Monitor(every=10)                 # warns once per new symptom (TrainingWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrainingWarning)
        model.fit(X_train, y_train, optimizer=optim.SGD(lr=schedules.cosine(0.05, epochs), momentum=0.9),
                  epochs=epochs, batch_size=64, validation_data=(X_val, y_val),
                  callbacks=[monitor, RunFolder(run, monitor)])
    for w in caught:
        print("warning:", w.message)
    model.save(run / "model.safetensors", preprocessing=scaler.to_dict())

    for t in ("0.weight", "4.weight", "8.weight"):   # the update:weight ratio, aim for ~1e-3
        print(f"median |dW|/|W| of {t}: {np.nanmedian(monitor.update_ratio(t)):.1e}")
    print("dead fraction of the first ReLU, last record:", monitor.layer_stat(2, "frac_dead")[-1])

    status = cli.main(["report", str(run)])      # the same as running: fastnn report RUN
    assert status == 0
    print("report:", sorted(p.name for p in run.glob("*.html")))


if __name__ == "__main__":
    main()
