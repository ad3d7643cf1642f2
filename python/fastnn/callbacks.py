"""Training callbacks with Keras's names: History, EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau, LearningRateScheduler, WeightAveraging.

Callbacks run between epochs (an epoch itself runs in C++). Each sees the trainer (``self.trainer``,
with ``.model``, ``.history``, ``.lr_scale`` and ``.stop_training``) and the epoch's logs
(``loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``, ...). Callbacks with state
(patience counters, best values) save and restore it through ``get_state``/``set_state``, so a
training run resumed from a checkpoint behaves as if it had not stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "LearningRateScheduler",
    "WeightAveraging",
]


class Callback:
    """Base class; override any of the hooks.

    ``epoch`` is 0-based in the hooks (epoch 0 is the first); :class:`History` records 1-based
    epoch numbers. The hooks run in the order the callbacks were given, after the History.
    """

    trainer: Any = None

    def set_trainer(self, trainer: Any) -> None:
        """Called once by :class:`~fastnn.trainer.Trainer`; sets ``self.trainer``."""
        self.trainer = trainer

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called at the start of :meth:`Trainer.fit <fastnn.trainer.Trainer.fit>`."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called when training ends (all epochs done, or ``trainer.stop_training`` set)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called before epoch ``epoch`` (0-based) runs."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called after epoch ``epoch`` (0-based) with its ``logs``: ``loss``, ``lr``, ``seconds``,
        ``samples_per_s``, ``train_loss``, ``train_acc`` and, with validation data, ``val_loss``,
        ``val_acc`` (accuracies for classification losses only)."""

    def get_state(self) -> dict:
        """A JSON-serialisable state saved in checkpoints (patience counters, best values)."""
        return {}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned (when training resumes from a checkpoint)."""


class History(Callback):
    """Everything a run recorded: per-epoch logs and every batch loss.

    Attributes
    ----------
    epoch : list of int
        Epoch numbers (1-based, as completed).
    history : dict of str to list
        Per-epoch values: ``loss`` (mean batch loss, with penalties, in training mode),
        ``train_acc`` / ``train_loss`` (evaluation mode on a fixed subset of the training set),
        ``val_loss`` / ``val_acc``, ``lr``, ``seconds``, ``samples_per_s``.
    batch_loss : list of float
        The loss of every step, in order; ``batch_epoch`` gives each one's position in epochs
        (the x axis of a loss curve in epochs, not iterations).
    """

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}
        self.batch_loss: list[float] = []
        self.batch_epoch: list[float] = []

    def record_batches(self, epoch: int, losses: np.ndarray, steps_per_epoch: int, first: int = 0) -> None:
        """Append the losses of an epoch's steps (``epoch`` 0-based; ``first`` = index of the first
        step within the epoch) to ``batch_loss`` and their positions to ``batch_epoch``."""
        n = len(losses)
        self.batch_loss.extend(float(v) for v in losses)
        self.batch_epoch.extend(epoch + (first + i + 1) / steps_per_epoch for i in range(n))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch + 1)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def to_dict(self) -> dict:
        """Everything recorded, as lists for strict JSON (the ``history.json`` of a run folder): a
        non-finite value (the learning rate under L-BFGS, which has none; a diverged loss) is
        None, written as ``null``."""
        from fastnn._json import finite_or_none

        return {"epoch": list(self.epoch), "history": {k: finite_or_none(v) for k, v in self.history.items()},
                "batch_loss": finite_or_none(self.batch_loss), "batch_epoch": finite_or_none(self.batch_epoch)}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """A History from :meth:`to_dict`'s output (None, JSON's ``null``, reads as NaN)."""
        from fastnn._json import nan_for_none

        h = cls()
        h.epoch = list(d.get("epoch", []))
        h.history = {k: nan_for_none(v) for k, v in d.get("history", {}).items()}
        h.batch_loss = nan_for_none(d.get("batch_loss", []))
        h.batch_epoch = nan_for_none(d.get("batch_epoch", []))
        return h

    def get_state(self) -> dict:
        return self.to_dict()

    def set_state(self, state: dict) -> None:
        other = History.from_dict(state)
        self.__dict__.update(other.__dict__)


class _Monitor(Callback):
    """Shared logic: which metric, which direction is better, and by how much."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if ("acc" in monitor or "score" in monitor) else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf

    def _value(self, logs: dict | None) -> float | None:
        if not logs or self.monitor not in logs:
            return None
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def get_state(self) -> dict:
        return {"best": self.best}

    def set_state(self, state: dict) -> None:
        self.best = float(state.get("best", self.best))


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets back the weights of its best epoch at the end.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs, e.g. ``"val_loss"`` (default) or ``"val_acc"``.
    min_delta : float
        Smallest change that counts as an improvement.
    patience : int
        Epochs without improvement tolerated (>= 0); training stops on the next one.
    mode : {"auto", "min", "max"}
        Whether smaller or larger is better; ``"auto"``: larger for names containing ``acc`` or
        ``score``, else smaller.
    restore_best_weights : bool
        Copy the best epoch's weights back when training ends.

    Attributes
    ----------
    best, best_epoch : float, int
        The best value seen and its (1-based) epoch.
    stopped_epoch : int or None
        The epoch training stopped at, None if it ran to the end.

    Raises
    ------
    KeyError
        At the end of an epoch, when the logs have no ``monitor`` (e.g. ``val_loss`` without
        validation data).
    ValueError
        A negative patience or an unknown mode.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 5,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        super().__init__(monitor, mode, min_delta)
        if int(patience) < 0:
            raise ValueError("patience must be >= 0")
        self.patience, self.restore_best_weights = int(patience), bool(restore_best_weights)
        self.wait, self.stopped_epoch, self.best_epoch = 0, None, None
        self._best_weights: dict | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self._value(logs)
        if value is None:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which the logs do not have "
                           f"({sorted(logs or {})}); pass validation data or monitor another metric")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch + 1, 0
            if self.restore_best_weights:
                self._best_weights = self.trainer.model.get_weights()
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.trainer.stop_training = True
                self.stopped_epoch = epoch + 1

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best_weights and self._best_weights is not None:
            self.trainer.model.set_weights(self._best_weights)

    def get_state(self) -> dict:
        return {**super().get_state(), "wait": self.wait, "best_epoch": self.best_epoch}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.wait = int(state.get("wait", 0))
        self.best_epoch = state.get("best_epoch")


class ModelCheckpoint(_Monitor):
    """Save the model (atomically) at the end of epochs.

    ``filepath`` may use ``{epoch}``, ``{val_acc}``, ``{val_loss}``, ``{loss}``, ``{train_acc}``
    with format specs, e.g. ``"run/{val_acc:.4f}_{epoch:03d}.safetensors"``. With
    ``save_best_only`` only epochs that improve ``monitor`` are saved. The checkpoint holds the
    optimizer state and the trainer's state, so training can be resumed from it
    (``Trainer.fit(..., resume_from=path)``); :func:`fastnn.load` reads the model alone.
    Needs ``safetensors`` (``pip install 'fastnn[io]'``).

    Parameters
    ----------
    filepath : str or Path
        File name template (its folder is created).
    monitor : str
        The logs key that decides what "best" is.
    save_best_only : bool
        Save only epochs that improve ``monitor``; otherwise every epoch.
    mode : {"auto", "min", "max"}
        As in :class:`EarlyStopping`.
    min_delta : float
        Smallest change that counts as an improvement.

    Attributes
    ----------
    saved : list of str
        The paths written, in order.

    Raises
    ------
    KeyError
        The template or ``monitor`` names a value the logs do not have.
    """

    def __init__(self, filepath: str | Path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", min_delta: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.filepath, self.save_best_only = str(filepath), bool(save_best_only)
        self.saved: list[str] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        if self.save_best_only:
            value = self._value(logs)
            if value is None:
                raise KeyError(f"ModelCheckpoint monitors {self.monitor!r}, which the logs do not have")
            if not self._improved(value):
                return
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as exc:
            raise KeyError(f"ModelCheckpoint: the file name template uses {exc}, which the logs do not "
                           f"have ({sorted(logs)})") from None
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.trainer.save_checkpoint(path)
        self.saved.append(path)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs.

    The reduction scales whatever schedule the optimizer follows; ``min_lr`` bounds the result.

    Parameters
    ----------
    monitor : str
        The logs key watched (default ``"val_loss"``).
    factor : float
        Multiplier in (0, 1).
    patience : int
        Epochs without improvement before a reduction.
    mode : {"auto", "min", "max"}
        As in :class:`EarlyStopping`.
    min_delta : float
        Smallest change that counts as an improvement.
    cooldown : int
        Epochs after a reduction during which stalls are not counted.
    min_lr : float
        Lower bound of the reduced learning rate.

    Raises
    ------
    ValueError
        ``factor`` outside (0, 1).
    KeyError
        The logs have no ``monitor``.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self.factor, self.patience, self.cooldown = float(factor), int(patience), int(cooldown)
        self.min_lr = float(min_lr)
        self.wait, self.cooldown_left = 0, 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self._value(logs)
        if value is None:
            raise KeyError(f"ReduceLROnPlateau monitors {self.monitor!r}, which the logs do not have")
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                self.trainer.lr_scale *= self.factor
                self.trainer.min_lr = max(self.trainer.min_lr, self.min_lr)
                self.cooldown_left, self.wait = self.cooldown, 0

    def get_state(self) -> dict:
        return {**super().get_state(), "wait": self.wait, "cooldown_left": self.cooldown_left}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.wait = int(state.get("wait", 0))
        self.cooldown_left = int(state.get("cooldown_left", 0))


class LearningRateScheduler(Callback):
    """Keras-style: ``schedule(epoch, lr) -> lr`` sets the learning rate of each epoch (0-based
    epoch; ``lr`` is the previous epoch's, NaN before the first). For schedules within an epoch,
    give the optimizer a :mod:`fastnn.schedules` schedule instead.

    Raises
    ------
    ValueError
        ``schedule`` returned a negative or non-finite learning rate.
    """

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        lr = float(self.schedule(epoch, self.trainer.current_lr))
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"LearningRateScheduler returned {lr!r} for epoch {epoch}")
        self.trainer.lr_override = lr


class WeightAveraging(Callback):
    """Keep a running average of the weights from ``start_epoch`` on (EMA with ``decay``, or
    ``"polyak"``), updated in C++ every step. ``trainer.model.averaged()`` then gives a model with
    the averaged weights; with ``apply_at_end`` the model takes them when training ends.

    Parameters
    ----------
    decay : float or "polyak"
        EMA decay in (0, 1) (``avg += (1 - decay) * (w - avg)``), or ``"polyak"`` for the uniform
        average of every step since ``start_epoch``.
    start_epoch : int
        First (0-based) epoch whose steps are averaged.
    apply_at_end : bool
        Load the averaged weights into the model when training ends.
    """

    def __init__(self, decay: float | str = 0.999, start_epoch: int = 0, apply_at_end: bool = False) -> None:
        self.decay, self.start_epoch, self.apply_at_end = decay, int(start_epoch), bool(apply_at_end)
        self.started = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self.started and epoch >= self.start_epoch:
            self.trainer.model.enable_averaging(self.decay)
            self.started = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.apply_at_end and self.started:
            avg = self.trainer.model.averaged()
            self.trainer.model.set_weights(avg.get_weights())
