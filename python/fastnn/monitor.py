"""Training monitors: the CS231n notes' "babysitting the learning process", computed in C++.

:class:`Monitor` is a callback. Every ``every`` training steps the C++ runtime records, without
leaving C++:

* per parameter tensor: gradient norm, weight norm and update norm (so the update:weight ratio
  ``|dW| / |W|``, which the notes want near 1e-3);
* per layer: output mean and std, fraction of zero outputs and of dead units (zero for the whole
  batch), fraction of saturated tanh/sigmoid outputs, non-finite outputs, and the mean and std of
  the gradient flowing into the layer's output.

At the end of each epoch the monitor reads the records, checks them (and the per-epoch losses and
accuracies) against the notes' symptoms, and warns with a diagnosis (:class:`TrainingWarning`):

===================  =========================================================================
symptom              diagnosis (and remedy)
===================  =========================================================================
loss not finite      learning rate far too high (or bad data)
loss exploding       learning rate too high
loss flat            learning rate too low (or a dead network)
train/val gap        overfitting: more regularisation (L2, dropout), more data, early stopping
no gap, low acc.     capacity too small: a bigger model, less regularisation, longer training
update ratio > 1e-2  learning rate too high for that layer
update ratio < 1e-4  learning rate too low for that layer
dead ReLUs           learning rate too high or a bad initialisation (He init, bias 0.01, leaky)
saturated units      weights too large for tanh/sigmoid (Xavier init, normalised inputs)
vanishing outputs    activations collapse with depth: initialisation too small (He/Xavier, BN)
===================  =========================================================================

A symptom that persists is one diagnosis, not one per epoch: ``monitor.diagnoses`` holds one entry
per (symptom, place), with the first and the latest epoch it was seen in, how many epochs that was,
and the latest measurement, so it stays small however long the training runs.

The records and diagnoses serialise to strict JSON (``to_dict``), which ``fastnn report`` plots.
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fastnn.callbacks import Callback

__all__ = ["Monitor", "Diagnosis", "TrainingWarning", "LAYER_FIELDS", "TENSOR_FIELDS", "diagnose"]

#: The statistics recorded per parameter tensor, in record order. They are the L2 norms of the
#: data loss's gradient (the L1/L2 penalty's gradient, which the optimizer step adds, is left out, so
#: vanishing or exploding gradients are not masked by the penalty), of the weights before the
#: update, and of the update actually applied (penalty included).
TENSOR_FIELDS = ("grad_norm", "weight_norm", "update_norm")
#: The statistics recorded per layer, in record order. They are the output mean and std, the
#: fraction of zero outputs, the fraction of dead units (0 for the whole batch), the fraction of
#: saturated outputs (tanh ``|y| >= 0.99``, sigmoid ``y <= 0.01`` or ``>= 0.99``), the non-finite
#: outputs, and the mean and std of the gradient with respect to the layer's output.
LAYER_FIELDS = ("act_mean", "act_std", "frac_zero", "frac_dead", "frac_saturated", "nonfinite",
                "grad_mean", "grad_std")


class TrainingWarning(UserWarning):
    """A symptom the monitor found during training (with its diagnosis)."""


@dataclass
class Diagnosis:
    """A symptom found at the end of an epoch (and maybe of later ones), in the words ``str(d)`` prints.

    Parameters
    ----------
    epoch : int
        The (latest) 1-based epoch it was found in.
    kind : str
        The symptom: ``"loss not finite"``, ``"loss exploding"``, ``"loss flat"``,
        ``"overfitting"``, ``"underfitting"``, ``"update ratio high"``, ``"update ratio low"``,
        ``"non-finite activations"``, ``"dead ReLUs"``, ``"saturated units"``,
        ``"vanishing activations"``.
    where : str
        The tensor (``"4.weight"``) or layer (``"2 ReLU"``) concerned, or ``""``.
    message : str
        What was measured (at the latest epoch).
    advice : str
        The remedy.
    first_epoch : int, optional
        The first epoch it was found in (default: ``epoch``).
    count : int
        In how many epochs it was found.
    """

    epoch: int
    kind: str
    where: str
    message: str
    advice: str
    first_epoch: int | None = None
    count: int = 1

    def __post_init__(self) -> None:
        if self.first_epoch is None:
            self.first_epoch = self.epoch

    def __str__(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        when = (f"epoch {self.epoch}" if self.count == 1 and self.first_epoch == self.epoch
                else f"epochs {self.first_epoch}-{self.epoch} ({self.count}x)")
        return f"{when}: {self.kind}{where}: {self.message} -> {self.advice}"


class Monitor(Callback):
    """Record training statistics in C++ every ``every`` steps and diagnose problems.

    Parameters
    ----------
    every : int
        Steps between records (each costs a few passes over the weights and activations; the
        default keeps the overhead under ~5 % of training time, see benchmarks/RESULTS.md).
    warn : bool
        Emit each diagnosis once as a :class:`TrainingWarning`.
    ratio_band : (float, float)
        Update:weight ratios outside this band are flagged (the notes' ~1e-3 rule).

    Attributes
    ----------
    records : ndarray, float64, shape (records, 2 + 3 * tensors + 8 * layers)
        The raw records: step, loss, then :data:`TENSOR_FIELDS` per tensor and
        :data:`LAYER_FIELDS` per layer (read them with :meth:`tensor_stat`, :meth:`layer_stat`).
    tensors : list of str
        Parameter tensor names, in record order.
    layers : list of str
        Layer descriptions (``"2 ReLU"``), in record order.
    epoch_of_record : list of int
        The (1-based) epoch of each record.
    steps_per_epoch, first_step : int or None
        The training's steps per epoch and the model's step when its epoch 1 began (0 for a fresh
        model), so the record of step ``s`` sits at ``(s - first_step + 1) / steps_per_epoch``
        epochs, the position ``History.batch_epoch`` gives the same step (see
        :meth:`record_epochs`); None before training, or when a continued training changed them.
    diagnoses : list of Diagnosis
        One entry per (symptom, place), in order of first appearance, with its first and latest
        epoch and how many epochs it was seen in.

    Notes
    -----
    A monitor describes one training: a new training (a trainer at epoch 0) or a different model
    clears its records, epochs and diagnoses; a training continued or resumed from a checkpoint
    (which restores the monitor's state) adds to them.

    Raises
    ------
    ValueError
        ``every`` is not a positive integer.

    Examples
    --------
    >>> from fastnn.monitor import Monitor
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((256, 20)), rng.integers(0, 3, 256)
    >>> model = fastnn.MLP(20, [32], 3, seed=0)
    >>> monitor = Monitor(every=4, warn=False)
    >>> history = model.fit(X, y, epochs=2, batch_size=32, callbacks=[monitor])
    >>> monitor.steps
    array([ 0.,  4.,  8., 12.])
    >>> monitor.update_ratio("0.weight").shape
    (4,)
    """

    def __init__(self, every: int = 10, warn: bool = True, ratio_band: tuple[float, float] = (1e-4, 1e-2)) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        lo, hi = (float(v) for v in ratio_band)
        if not 0 < lo < hi:
            raise ValueError(f"ratio_band must be (low, high) with 0 < low < high, got {ratio_band!r}")
        self.every, self.warn, self.ratio_band = every, bool(warn), (lo, hi)
        self.tensors: list[str] = []
        self.layers: list[str] = []
        self.layer_kinds: list[str] = []
        self._model: weakref.ref | None = None
        self._reset()

    def _reset(self) -> None:
        self.records = np.zeros((0, 0))
        self.epoch_of_record: list[int] = []
        self.steps_per_epoch: int | None = None
        self.first_step: int | None = None
        self.diagnoses: list[Diagnosis] = []
        self._by_key: dict[tuple[str, str], Diagnosis] = {}
        self._warned: set[tuple[str, str]] = set()

    def _add(self, d: Diagnosis) -> None:
        """One entry per (kind, where): a repeat updates the latest epoch, message and count."""
        old = self._by_key.get((d.kind, d.where))
        if old is None:
            self._by_key[(d.kind, d.where)] = d
            self.diagnoses.append(d)
            return
        old.first_epoch = min(old.first_epoch, d.first_epoch)
        if d.epoch >= old.epoch:
            old.epoch, old.message, old.advice = d.epoch, d.message, d.advice
        old.count += d.count

    # -- callback hooks -----------------------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        """Switch the C++ recording on (every ``every`` steps); a new training or another model
        starts the records afresh."""
        trainer = self.trainer
        model = trainer.model
        tensors = [t["name"] for t in model._info]
        layers = [f"{i} {type(lay).__name__}" for i, lay in enumerate(model.layers)]
        width = model._net.monitor_record_size
        epoch = int(getattr(trainer, "epoch", 0))
        other_model = self._model is not None and self._model() is not model
        if epoch == 0 or other_model or (tensors, layers) != (self.tensors, self.layers) or \
                self.records.shape[1] not in (0, width):
            self._reset()
        self._model = weakref.ref(model)
        self.tensors, self.layers = tensors, layers
        self.layer_kinds = [type(lay).__name__ for lay in model.layers]
        if self.records.shape[1] != width:
            self.records = np.zeros((0, width))
        spe = getattr(trainer, "steps_per_epoch", None)
        first = model.step - epoch * spe if spe else None
        if not len(self.records):
            self.steps_per_epoch, self.first_step = spe, first
        elif (spe, first) != (self.steps_per_epoch, self.first_step):
            self.steps_per_epoch = self.first_step = None  # continued with another batch size: no exact map
        model._net.set_monitor(self.every)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Collect the epoch's records, run :func:`diagnose`, warn about new symptoms."""
        new = self.trainer.model._net.take_monitor_log()
        if len(new):
            self.records = np.vstack([self.records, new])
            self.epoch_of_record.extend([epoch + 1] * len(new))
        for d in diagnose(self, self.trainer.history, epoch + 1, new):
            self._add(d)
            key = (d.kind, d.where)
            if self.warn and key not in self._warned:
                self._warned.add(key)
                warnings.warn(TrainingWarning(str(d)), stacklevel=2)

    def on_train_end(self, logs: dict | None = None) -> None:
        """Switch the C++ recording off."""
        self.trainer.model._net.set_monitor(0)

    # -- accessors ----------------------------------------------------------------------------------
    @property
    def steps(self) -> np.ndarray:
        """The (0-based) global step of each record, float64, shape (records,)."""
        return self.records[:, 0] if len(self.records) else np.zeros(0)

    @property
    def losses(self) -> np.ndarray:
        """The loss at each record, float64, shape (records,)."""
        return self.records[:, 1] if len(self.records) else np.zeros(0)

    def tensor_stat(self, tensor: str, field: str, records: np.ndarray | None = None) -> np.ndarray:
        """One of :data:`TENSOR_FIELDS` of the parameter tensor ``tensor`` (a name of
        ``model.params``, e.g. ``"0.weight"``) at each of ``records`` (a subset of :attr:`records`,
        default all): float64, shape (records,).

        Raises
        ------
        ValueError
            An unknown tensor or field.
        """
        r = self.records if records is None else records
        return r[:, 2 + 3 * self.tensors.index(tensor) + TENSOR_FIELDS.index(field)]

    def update_ratio(self, tensor: str, records: np.ndarray | None = None) -> np.ndarray:
        """``|dW| / |W|`` of a tensor over the records (NaN where ``|W| = 0``), float64, shape
        (records,); the notes want it near 1e-3."""
        w = self.tensor_stat(tensor, "weight_norm", records)
        u = self.tensor_stat(tensor, "update_norm", records)
        return np.divide(u, w, out=np.full_like(u, np.nan), where=w > 0)

    def layer_stat(self, layer: int, field: str, records: np.ndarray | None = None) -> np.ndarray:
        """One of :data:`LAYER_FIELDS` of layer ``layer`` (an index into ``model.layers``) at each of
        ``records`` (as :meth:`tensor_stat`): float64, shape (records,)."""
        r = self.records if records is None else records
        return r[:, 2 + 3 * len(self.tensors) + 8 * layer + LAYER_FIELDS.index(field)]

    def record_epochs(self) -> np.ndarray | None:
        """Each record's position in epochs, ``(step - first_step + 1) / steps_per_epoch`` (as
        ``History.batch_epoch`` places the same step), float64, shape (records,); None when
        ``steps_per_epoch`` is unknown (see :func:`fastnn.plots.record_epochs`)."""
        if not self.steps_per_epoch or self.first_step is None:
            return None
        return (self.steps - self.first_step + 1) / self.steps_per_epoch

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The settings, records, names and diagnoses as strict JSON data (``monitor.json`` of a run
        folder): non-finite statistics (NaN activations) are None, written as ``null``."""
        r = self.records
        rows = r.tolist() if np.isfinite(r).all() else np.where(np.isfinite(r), r, None).tolist()
        return {"every": self.every, "ratio_band": list(self.ratio_band), "tensors": self.tensors,
                "layers": self.layers, "layer_kinds": self.layer_kinds, "records": rows,
                "epoch_of_record": self.epoch_of_record, "steps_per_epoch": self.steps_per_epoch,
                "first_step": self.first_step, "diagnoses": [asdict(d) for d in self.diagnoses],
                "warned": [list(k) for k in sorted(self._warned)]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Monitor:
        """A Monitor (not attached to a trainer) from :meth:`to_dict`'s output, for plots and reports
        (also an older ``monitor.json``: repeated diagnoses are merged, ``null`` reads as NaN)."""
        m = cls(every=int(d.get("every", 10)), warn=False, ratio_band=tuple(d.get("ratio_band", (1e-4, 1e-2))))
        m._load(d)
        return m

    def _load(self, d: dict[str, Any]) -> None:
        self._reset()
        self.tensors, self.layers = list(d["tensors"]), list(d["layers"])
        self.layer_kinds = list(d.get("layer_kinds", [s.split(" ", 1)[1] for s in self.layers]))
        width = 2 + 3 * len(self.tensors) + 8 * len(self.layers)
        self.records = np.asarray(d["records"], dtype=np.float64).reshape(-1, width)  # None -> NaN
        self.epoch_of_record = [int(e) for e in d.get("epoch_of_record", [])]
        spe, first = d.get("steps_per_epoch"), d.get("first_step")
        self.steps_per_epoch = int(spe) if spe else None
        self.first_step = int(first) if first is not None and spe else None
        for x in d.get("diagnoses", []):
            self._add(Diagnosis(**x))
        self._warned = {(str(k), str(w)) for k, w in d.get("warned", [])}
        self._model = None

    def get_state(self) -> dict:
        return self.to_dict()

    def set_state(self, state: dict) -> None:
        """Restore the records, diagnoses and warned symptoms of :meth:`get_state` (a resumed
        training); this monitor's own settings (``every``, ``warn``, ``ratio_band``) stay."""
        self._load(state)


def _weights(mon: Monitor) -> list[str]:
    return [t for t in mon.tensors if t.endswith(".weight") and mon.layer_kinds[int(t.split(".")[0])] == "Dense"]


def diagnose(mon: Monitor, history: Any, epoch: int, new: np.ndarray) -> list[Diagnosis]:
    """The notes' symptoms in the latest epoch's records and history.

    Parameters
    ----------
    mon : Monitor
        Gives the tensor and layer names.
    history : History
        The run's history so far (losses and accuracies per epoch).
    epoch : int
        The (1-based) epoch just finished.
    new : ndarray
        That epoch's records.

    Returns
    -------
    list of Diagnosis
        Possibly empty; see the table in the module docstring.
    """
    out: list[Diagnosis] = []
    h = getattr(history, "history", {}) or {}
    losses = h.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        out.append(Diagnosis(epoch, "loss not finite", "", f"the epoch's loss is {losses[-1]}",
                             "lower the learning rate (by 10x), check the data for NaN/inf"))
    elif len(losses) >= 2 and losses[-1] > 1.5 * losses[0] and losses[-1] > losses[-2]:
        out.append(Diagnosis(epoch, "loss exploding", "", f"loss rose from {losses[0]:.4g} to {losses[-1]:.4g}",
                             "lower the learning rate"))
    elif len(losses) >= 3 and epoch <= 10 and abs(losses[-1] - losses[0]) < 0.01 * abs(losses[0]):
        out.append(Diagnosis(epoch, "loss flat", "", f"loss barely moved ({losses[0]:.4g} -> {losses[-1]:.4g})",
                             "raise the learning rate; check that the network is not dead (see the layer statistics)"))
    tr, va = h.get("train_acc", []), h.get("val_acc", [])
    if tr and va and len(tr) >= 3:
        gap = tr[-1] - va[-1]
        if gap > 0.1 and (len(va) < 2 or va[-1] <= max(va[:-1]) + 1e-9):
            out.append(Diagnosis(epoch, "overfitting", "", f"train accuracy {tr[-1]:.3f} vs validation {va[-1]:.3f}",
                                 "more regularisation (l2, dropout), more data, or early stopping"))
        elif abs(gap) < 0.02 and tr[-1] < 0.6 and len(tr) >= 5:
            out.append(Diagnosis(epoch, "underfitting", "", f"train and validation accuracy both low ({tr[-1]:.3f})",
                                 "a bigger model, less regularisation, or longer training"))
    if len(new) == 0:
        return out
    lo, hi = mon.ratio_band
    # one vectorised pass over the epoch's records (this runs after every epoch: keep it cheap,
    # see benchmarks/bench_monitor.py)
    weights = _weights(mon)
    if weights:
        col = [2 + 3 * mon.tensors.index(t) for t in weights]
        w = new[:, [c + 1 for c in col]]
        u = new[:, [c + 2 for c in col]]
        ratios = np.divide(u, w, out=np.full_like(u, np.nan), where=w > 0)
        medians = (np.median(ratios, axis=0) if np.isfinite(ratios).all() else np.nanmedian(ratios, axis=0)).tolist()
    else:
        medians = []
    for t, r in zip(weights, medians, strict=True):
        if math.isfinite(r) and r > hi:
            out.append(Diagnosis(epoch, "update ratio high", t, f"median |dW|/|W| = {r:.2e} (aim for ~1e-3)",
                                 "lower the learning rate"))
        elif math.isfinite(r) and 0 < r < lo:
            out.append(Diagnosis(epoch, "update ratio low", t, f"median |dW|/|W| = {r:.2e} (aim for ~1e-3)",
                                 "raise the learning rate"))
    base = 2 + 3 * len(mon.tensors)
    per_layer = new[:, base:base + 8 * len(mon.layer_kinds)].reshape(len(new), len(mon.layer_kinds), 8)
    means = per_layer.mean(axis=0)  # (layers, LAYER_FIELDS)
    nonfinite = per_layer[:, :, LAYER_FIELDS.index("nonfinite")].max(axis=0)
    f_dead, f_sat, f_std = (LAYER_FIELDS.index(f) for f in ("frac_dead", "frac_saturated", "act_std"))
    stds = []
    for i, kind in enumerate(mon.layer_kinds):
        if nonfinite[i] > 0:
            out.append(Diagnosis(epoch, "non-finite activations", mon.layers[i], "NaN or inf in the layer's output",
                                 "lower the learning rate; check the inputs"))
        if kind == "ReLU":
            dead = float(means[i, f_dead])
            if dead > 0.4:
                out.append(Diagnosis(epoch, "dead ReLUs", mon.layers[i],
                                     f"{dead:.0%} of the units output 0 for whole batches",
                                     "lower the learning rate; He initialisation, bias 0.01 or LeakyReLU"))
            stds.append(float(means[i, f_std]))
        if kind in ("Tanh", "Sigmoid"):
            sat = float(means[i, f_sat])
            if sat > 0.5:
                out.append(Diagnosis(epoch, "saturated units", mon.layers[i], f"{sat:.0%} of the outputs are saturated",
                                     "smaller initial weights (Xavier), normalised inputs, or batch norm"))
            stds.append(float(means[i, f_std]))
    if len(stds) >= 3 and stds[0] > 0 and stds[-1] < 0.05 * stds[0]:
        out.append(Diagnosis(epoch, "vanishing activations", "",
                             f"activation std falls from {stds[0]:.3g} (first hidden layer) to {stds[-1]:.3g} (last)",
                             "initialisation too small: use He (ReLU) or Xavier (tanh), or batch norm"))
    return out
