"""Model ensembles, the notes' "last few percent": average the predicted class probabilities of
several models, and distil an ensemble back into one model.

* :class:`Ensemble` -- the (weighted) mean of its members' softmax probabilities:
  ``predict_proba``, ``predict``, ``score``, ``member_scores``; members from models,
  :meth:`Ensemble.from_checkpoints`, :meth:`Ensemble.from_search` (the top-k trials of a
  :mod:`fastnn.search` run) or :func:`train_ensemble` (different initialisations of one
  configuration).
* :func:`snapshot_ensemble` -- one training run with a cyclic cosine learning rate (warm restarts,
  :func:`fastnn.schedules.cosine_restarts`), keeping a snapshot at the end of each cycle.
* :func:`fit_averaged` -- one run that also keeps the running average (EMA or Polyak) of its
  weights, updated in C++ after every step; batch-norm statistics are recomputed for the averaged
  weights (:func:`recompute_batchnorm`).
* :func:`distill` -- train one student on an ensemble's temperature-softened probabilities (soft
  targets, computed by fastnn's C++ softmax cross-entropy) to keep most of the gain at the cost
  of one model.

Preprocessing: an ensemble may carry the preprocessing its members were trained with (the
``preprocessing`` recorded in their checkpoints, e.g. ``StandardScaler().fit(X).to_dict()``); it is then
applied to every input, so ``from_search(...)`` predicts from raw features.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.callbacks import Callback, WeightAveraging
from fastnn.layers import BatchNorm, Dense
from fastnn.model import Sequential, _list_of

__all__ = ["Ensemble", "train_ensemble", "snapshot_ensemble", "fit_averaged", "recompute_batchnorm", "distill",
           "softmax"]


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(scores / temperature)`` in float64 (stable)."""
    z = np.asarray(scores, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_temperature(t: float) -> float:
    t = float(t)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
    return t


def _preprocessor(p: Any) -> Any:
    """An object with ``transform(X)`` from a preprocessing description (or None)."""
    if p is None or hasattr(p, "transform"):
        return p
    if isinstance(p, Mapping):  # a fastnn.preprocessing to_dict() (also the stopgap Standardizer's)
        from fastnn.preprocessing import from_dict

        return from_dict(dict(p))
    raise TypeError(f"preprocessing must be None, a dict or an object with transform(X), got {type(p).__name__}")


class Ensemble:
    """Average the class probabilities of several classifiers.

    Parameters
    ----------
    models : sequence of Sequential
        Members (classification losses; same input and output sizes).
    weights : sequence of float, optional
        Non-negative member weights (normalised); default equal.
    preprocessing : dict or object with ``transform``, optional
        Applied to every input before the members see it.

    Attributes
    ----------
    models : list of Sequential
    weights : ndarray of float64
    sources : list of str
        Where each member came from (checkpoint paths, trials), when known.

    Raises
    ------
    ValueError / TypeError
        No members, non-classifiers, members of different shapes, bad weights.
    """

    def __init__(self, models: Sequence[Sequential], weights: Sequence[float] | None = None,
                 preprocessing: Any = None) -> None:
        models = _list_of(models, Sequential, "fastnn.Sequential", "an ensemble needs at least one model", "member")
        for i, m in enumerate(models):
            if not m.loss.classification:
                raise ValueError(f"member {i} is not a classifier (loss {m.loss.kind!r}); ensembles average "
                                 "class probabilities")
            if (m.input_dim, m.output_dim) != (models[0].input_dim, models[0].output_dim):
                raise ValueError(f"member {i} maps {m.input_dim} -> {m.output_dim}, member 0 "
                                 f"{models[0].input_dim} -> {models[0].output_dim}")
        if weights is None:
            w = np.full(len(models), 1.0 / len(models))
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(models),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(f"weights must be {len(models)} non-negative numbers with a positive sum")
            w = w / w.sum()
        self.models = models
        self.weights = w
        self.preprocessing = _preprocessor(preprocessing)
        self.sources: list[str] = [""] * len(models)

    def __len__(self) -> int:
        return len(self.models)

    def __repr__(self) -> str:
        return (f"Ensemble({len(self)} members, {self.models[0].input_dim} -> {self.models[0].output_dim}"
                f"{', preprocessing' if self.preprocessing is not None else ''})")

    @property
    def classes(self) -> int:
        """Number of classes (the members' outputs)."""
        return self.models[0].output_dim

    def transform(self, X: Any) -> Any:
        """The inputs as the members see them (the ensemble's preprocessing, if any)."""
        return X if self.preprocessing is None else self.preprocessing.transform(X)

    # ------------------------------------------------------------------------------------------
    def member_proba(self, X: Any, temperature: float = 1.0) -> np.ndarray:
        """Each member's class probabilities ``softmax(scores / temperature)``, float64 of shape
        (members, N, classes)."""
        t = _check_temperature(temperature)
        Xm = self.transform(X)
        out = []
        for m in self.models:
            if t == 1.0:
                out.append(np.asarray(m.predict_proba(Xm), dtype=np.float64))  # the C++ softmax
            else:
                out.append(softmax(m.forward(Xm), t))
        return np.stack(out)

    def predict_proba(self, X: Any, temperature: float = 1.0) -> np.ndarray:
        """The weighted mean of the members' probabilities, float64 (N, classes); with
        ``temperature`` > 1 the members' softened probabilities (distillation targets)."""
        return np.tensordot(self.weights, self.member_proba(X, temperature), axes=1)

    def predict(self, X: Any) -> np.ndarray:
        """Class indices (N,) of the averaged probabilities."""
        return self.predict_proba(X).argmax(axis=1)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of the ensemble."""
        y = _labels(y, self.classes)
        p = self.predict_proba(X)
        if len(y) != len(p):
            raise ValueError(f"y has {len(y)} labels for {len(p)} samples")
        return float(np.mean(p.argmax(axis=1) == y))

    def member_scores(self, X: Any, y: Any) -> np.ndarray:
        """Accuracy of each member (float64, (members,))."""
        y = _labels(y, self.classes)
        P = self.member_proba(X)
        if P.shape[1] != len(y):
            raise ValueError(f"y has {len(y)} labels for {P.shape[1]} samples")
        return (P.argmax(axis=2) == y[None, :]).mean(axis=1)

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """Ensemble accuracy and log loss, and the mean, best and worst member accuracy."""
        y = _labels(y, self.classes)
        P = self.member_proba(X)
        p = np.tensordot(self.weights, P, axes=1)
        members = (P.argmax(axis=2) == y[None, :]).mean(axis=1)
        return {"accuracy": float(np.mean(p.argmax(axis=1) == y)),
                "log_loss": float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)))),
                "member_mean": float(members.mean()), "member_best": float(members.max()),
                "member_worst": float(members.min()), "members": len(self)}

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | Path], weights: Sequence[float] | None = None,
                         preprocessing: Any = "auto") -> Ensemble:
        """Members loaded from fastnn checkpoints.

        ``preprocessing="auto"`` takes the preprocessing recorded in the checkpoints' metadata (they
        must agree) unless the members carry their own attached ``model.preprocessing`` (which
        they apply themselves); None applies none; a dict or object is used as given.

        Raises
        ------
        ValueError
            No paths, damaged files, checkpoints recording different preprocessing.
        """
        from fastnn.io import load

        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("from_checkpoints needs at least one path")
        models = [load(p) for p in paths]
        if isinstance(preprocessing, str) and preprocessing == "auto":
            attached = any(getattr(m, "preprocessing", None) is not None for m in models)
            preps = [None if attached else (getattr(m, "checkpoint", None) or {}).get("preprocessing")
                     for m in models]
            keys = {json.dumps(p, sort_keys=True) for p in preps}
            if len(keys) > 1:
                raise ValueError("the checkpoints record different preprocessing; pass preprocessing= explicitly")
            preprocessing = preps[0]
        ens = cls(models, weights, preprocessing)
        ens.sources = [str(p) for p in paths]
        return ens

    @classmethod
    def from_search(cls, run_dir: str | Path, k: int = 5, preprocessing: Any = "auto") -> Ensemble:
        """The ``k`` best finished trials of a :mod:`fastnn.search` run folder (by validation
        accuracy), each at its best epoch.

        Raises
        ------
        ValueError
            ``k < 1`` or no finished trial.
        """
        from fastnn.search import load_search

        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        res = load_search(run_dir)
        top = [r for r in res.top() if r.get("checkpoint")][:int(k)]
        if not top:
            raise ValueError(f"{run_dir}: no finished trial with a checkpoint")
        ens = cls.from_checkpoints([res.run_dir / r["checkpoint"] for r in top], preprocessing=preprocessing)
        ens.sources = [f"trial {r['trial']} (val_acc {float(r['val_acc']):.4f})" for r in top]
        return ens


def _labels(y: Any, classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise TypeError(f"y must be a 1-D array of integer class labels, got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"y holds labels outside 0..{classes - 1}")
    return y


# ==============================================================================================
# Members from one configuration, snapshots, running averages
# ==============================================================================================
def train_ensemble(params: Mapping[str, Any], X_train: Any, y_train: Any, X_val: Any, y_val: Any, *,
                   n: int = 5, seed: int = 0, epochs: int | None = None) -> Ensemble:
    """``n`` models of one configuration (see :mod:`fastnn.search`), each from a different
    initialisation (and dropout/shuffling) seed, trained on the same data.

    Parameters
    ----------
    params : mapping
        Hyperparameters, e.g. a search's ``result.config()``.
    X_train, y_train, X_val, y_val : arrays
    n : int
        Members.
    seed : int
        Member ``i`` trains with seed ``seed + i``.
    epochs : int, optional
        Overrides ``params["epochs"]``.

    Returns
    -------
    Ensemble
        With ``histories`` (one History per member).
    """
    from fastnn.search import train_config

    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    models, hists = [], []
    for i in range(int(n)):
        m, h = train_config(params, X_train, y_train, X_val, y_val, seed=int(seed) + i, epochs=epochs)
        models.append(m)
        hists.append(h)
    ens = Ensemble(models)
    ens.sources = [f"seed {int(seed) + i}" for i in range(int(n))]
    ens.histories = hists
    return ens


class _Snapshots(Callback):
    """Copies the model at the end of every ``every``-th epoch (the end of a cosine cycle)."""

    def __init__(self, every: int) -> None:
        self.every = int(every)
        self.models: list[Sequential] = []
        self.epochs: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every == 0:
            self.models.append(self.trainer.model.copy())
            self.epochs.append(epoch + 1)


def _resolve(optimizer: Any, lr: Any, momentum: float | None) -> Any:
    from fastnn import optim

    if isinstance(optimizer, optim.Optimizer):
        raise TypeError("pass the optimizer by name (its learning rate follows the snapshot schedule)")
    kwargs: dict[str, Any] = {"lr": lr}
    if momentum is not None:
        kwargs["momentum"] = momentum
    return optim.resolve_optimizer(optimizer, **kwargs)


def snapshot_ensemble(model: Sequential, X: Any, y: Any, *, cycles: int = 5, epochs_per_cycle: int = 10,
                      lr: float = 0.1, min_lr: float = 0.0, optimizer: str = "momentum",
                      momentum: float | None = 0.9, batch_size: int = 64, validation_data: tuple | None = None,
                      callbacks: Sequence[Callback] | None = None, keep: int | None = None) -> Ensemble:
    """Snapshot ensemble (Huang et al. 2017): train ``model`` once for ``cycles * epochs_per_cycle``
    epochs with a cosine learning rate restarted every cycle (from ``lr`` down to ``min_lr``), and
    keep a copy of the model at the end of each cycle (where the learning rate is lowest).

    Parameters
    ----------
    model : Sequential
        Trained in place (it ends as the last snapshot).
    X, y : arrays
        Training data.
    cycles, epochs_per_cycle : int
    lr, min_lr : float
        The schedule's peak and floor (:func:`fastnn.schedules.cosine_restarts`).
    optimizer : str
        An optimizer name (``"momentum"``, ``"adam"``, ...).
    momentum : float or None
        For the momentum family (None for optimizers without one).
    batch_size : int
    validation_data : (X_val, y_val), optional
    callbacks : sequence of Callback, optional
    keep : int, optional
        Keep only the last ``keep`` snapshots (the early ones may be weak).

    Returns
    -------
    Ensemble
        The snapshots, with ``history`` (the run's History) and ``snapshot_epochs``.
    """
    from fastnn import Trainer, schedules

    for name, v in (("cycles", cycles), ("epochs_per_cycle", epochs_per_cycle)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if optimizer in ("adam", "adamw", "rmsprop", "adagrad", "adadelta", "sgd", "rprop"):
        momentum = None if optimizer != "sgd" else momentum
    sched = schedules.cosine_restarts(lr, float(epochs_per_cycle), final=min_lr)
    snaps = _Snapshots(int(epochs_per_cycle))
    trainer = Trainer(model, _resolve(optimizer, sched, momentum), callbacks=[*(callbacks or []), snaps],
                      progress=False)
    hist = trainer.fit(X, y, epochs=int(cycles) * int(epochs_per_cycle), batch_size=batch_size,
                       validation_data=validation_data)
    models, epochs = snaps.models, snaps.epochs
    if keep is not None:
        models, epochs = models[-int(keep):], epochs[-int(keep):]
    ens = Ensemble(models)
    ens.sources = [f"epoch {e}" for e in epochs]
    ens.history, ens.snapshot_epochs = hist, epochs
    return ens


def recompute_batchnorm(model: Sequential, X: Any, chunk: int = 4096) -> None:
    """Set every batch-norm layer's running statistics to the exact mean and (unbiased) variance of
    its inputs over ``X``, in evaluation mode, layer after layer (for averaged weights, whose
    running statistics belong to no actual set of weights).

    Parameters
    ----------
    model : Sequential
        Changed in place (its ``buffers``).
    X : array (N, ...)
        Training inputs (raw: a preprocessing attached to the model is applied, as in training).
    chunk : int
        Rows per forward pass.
    """
    bn = [i for i, lay in enumerate(model.layers) if isinstance(lay, BatchNorm)]
    if not bn:
        return
    Xc = model.preprocess(X) if hasattr(model, "preprocess") else model._check_X(X)
    n = Xc.shape[0]
    dummy = np.zeros(min(chunk, n), dtype=np.int64)
    for i in bn:  # earlier layers are final when layer i's input is measured
        s = ss = None
        for r0 in range(0, n, chunk):
            xb = Xc[r0:r0 + chunk]
            if i == 0:
                a = np.asarray(xb, dtype=np.float64)
            else:
                _, acts, _ = model.capture(xb, dummy[:len(xb)], train=False)
                a = np.asarray(acts[i - 1], dtype=np.float64)
            s = a.sum(axis=0) if s is None else s + a.sum(axis=0)
            ss = (a * a).sum(axis=0) if ss is None else ss + (a * a).sum(axis=0)
        mean = s / n
        var = np.maximum(ss / n - mean * mean, 0.0) * (n / max(1, n - 1))
        model.buffers[f"{i}.running_mean"][...] = mean
        model.buffers[f"{i}.running_var"][...] = var


def fit_averaged(model: Sequential, X: Any, y: Any, *, decay: float | str = 0.999, start_epoch: int = 0,
                 optimizer: Any = "adam", epochs: int = 10, batch_size: int = 64,
                 validation_data: tuple | None = None, callbacks: Sequence[Callback] | None = None,
                 recompute_bn: bool = True):
    """Train ``model`` while keeping the running average of its weights (EMA with ``decay``, or the
    Polyak average with ``"polyak"``) from ``start_epoch`` on, updated in C++ after every step.

    Parameters
    ----------
    model : Sequential
        Trained in place.
    X, y : arrays
        Training data and labels.
    decay : float or "polyak"
        EMA decay in (0, 1), or the uniform (Polyak) average
        (:class:`~fastnn.callbacks.WeightAveraging`).
    start_epoch : int
        First (0-based) epoch whose steps are averaged.
    optimizer, epochs, batch_size, validation_data, callbacks
        As for :meth:`Sequential.fit <fastnn.model.Sequential.fit>`.
    recompute_bn : bool
        Recompute the averaged model's batch-norm statistics on ``X``
        (:func:`recompute_batchnorm`).

    Returns
    -------
    (Sequential, History)
        A copy holding the averaged weights (batch-norm statistics recomputed on ``X`` when
        ``recompute_bn``), and the run's history. ``model`` itself ends with its last weights.
    """
    from fastnn import Trainer

    trainer = Trainer(model, optimizer, callbacks=[*(callbacks or []), WeightAveraging(decay, start_epoch)],
                      progress=False)
    hist = trainer.fit(X, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data)
    avg = model.averaged()
    if recompute_bn:
        recompute_batchnorm(avg, X)
    return avg, hist


# ==============================================================================================
# Distillation
# ==============================================================================================
def distill(teacher: Any, X: Any, y: Any, student: Sequential, *, temperature: float = 3.0, alpha: float = 0.0,
            optimizer: Any = "adam", epochs: int = 30, batch_size: int = 64, validation_data: tuple | None = None,
            callbacks: Sequence[Callback] | None = None):
    """Knowledge distillation (Hinton et al. 2015): train ``student`` on ``teacher``'s softened
    class probabilities.

    The targets are ``t = (1 - alpha) * p_T + alpha * onehot(y)``, where ``p_T`` is the teacher's
    (an :class:`Ensemble`: the mean of its members') ``softmax(scores / temperature)``. The student
    learns at the same temperature: its logits ``z`` enter the loss as ``z / T`` (it trains the
    tempered logits ``z' = z / T`` with fastnn's soft-target softmax cross-entropy, then its output
    layer is multiplied by ``T``), so the returned student predicts at temperature 1 like any model.
    (Hinton's hard-label term is evaluated at temperature 1; here it shares the student's
    temperature, which only changes its weight.)

    Parameters
    ----------
    teacher : Ensemble or Sequential
        Its preprocessing (an Ensemble's) is applied to ``X`` and the validation inputs for the
        student too.
    X : array (N, features)
        The transfer set (the training inputs, or more unlabeled data).
    y : array (N,) of int, or None
        Hard labels, needed when ``alpha > 0``.
    student : Sequential
        A softmax classifier with the teacher's numbers of inputs and classes whose last layer is
        Dense; trained in place.
    temperature : float
        > 0; 1 trains on the teacher's plain probabilities.
    alpha : float
        Weight of the hard labels, in [0, 1].
    optimizer, epochs, batch_size, validation_data, callbacks
        As for :meth:`Sequential.fit` (validation accuracy is measured on the tempered logits: the
        same argmax).

    Returns
    -------
    History

    Raises
    ------
    ValueError / TypeError
        A student that is not a softmax classifier ending in Dense, mismatched sizes, bad
        temperature or alpha, ``alpha > 0`` without labels.
    """
    T = _check_temperature(temperature)
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if not isinstance(student, Sequential) or student.loss.kind != "softmax":
        raise TypeError("the student must be a fastnn.Sequential with the softmax cross-entropy loss")
    last = len(student.layers) - 1
    if not isinstance(student.layers[last], Dense):
        raise ValueError("the student's last layer must be Dense (its output is rescaled by the temperature)")
    if isinstance(teacher, Sequential):
        teacher = Ensemble([teacher])
    if not isinstance(teacher, Ensemble):
        raise TypeError(f"teacher must be an Ensemble or a Sequential, got {type(teacher).__name__}")
    if student.output_dim != teacher.classes:
        raise ValueError(f"the student has {student.output_dim} outputs, the teacher {teacher.classes} classes")
    targets = teacher.predict_proba(X, temperature=T)
    if alpha > 0:
        if y is None:
            raise ValueError("alpha > 0 needs the hard labels y")
        yl = _labels(y, teacher.classes)
        if len(yl) != len(targets):
            raise ValueError(f"y has {len(yl)} labels for {len(targets)} samples")
        targets = (1.0 - alpha) * targets + alpha * np.eye(teacher.classes)[yl]
    targets /= targets.sum(axis=1, keepdims=True)
    Xs = teacher.transform(X)
    val = None
    if validation_data is not None:
        val = (teacher.transform(validation_data[0]), validation_data[1])
    from fastnn import Trainer

    trainer = Trainer(student, optimizer, callbacks=callbacks, progress=False)
    hist = trainer.fit(Xs, targets.astype(student.dtype), epochs=epochs, batch_size=batch_size, validation_data=val)
    w = student.params[f"{last}.weight"]
    w *= T
    if f"{last}.bias" in student.params:
        student.params[f"{last}.bias"][...] *= T
    return hist
