"""The training loop: epochs run in C++, everything between epochs in Python.

Each epoch the trainer draws the batch order (a permutation of row indices, never of the data; or
class-balanced draws), evaluates the learning-rate and momentum schedules at every step of the
epoch, and hands all of it to the C++ runtime, which runs the whole epoch without coming back
(split into a few chunks when a progress bar is shown). Between epochs it records the history,
evaluates, and runs the callbacks.

Reproducibility: the order of epoch ``e`` is a pure function of (seed, e), dropout masks of
(seed, step, layer), schedules of the step; so a run resumed from a checkpoint follows the same
trajectory as an uninterrupted one, bit for bit.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.callbacks import Callback, History
from fastnn.datasets import balanced_order  # the one class-balanced sampler, public in datasets
from fastnn.layers import BatchNorm
from fastnn.model import Sequential
from fastnn.optim import Optimizer, resolve_optimizer

__all__ = ["Trainer", "NonFiniteLossError", "balanced_order"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the update of that step was not applied.

    The message says where (step, epoch), where the first non-finite values appeared (a layer's
    output, or the input batch itself) and the usual cause (too high a learning rate).

    Parameters
    ----------
    loss : float
        The non-finite loss.
    step : int
        The global step (0-based) whose loss it was.
    epoch : int or None
        The (1-based) epoch, None outside :meth:`Trainer.fit`.
    restored : bool
        True when the weights had gone non-finite earlier in the epoch and were restored from the
        start of the epoch.
    layer : str or None
        ``"<index> (<class>)"`` of the first layer whose output held NaN/inf, if any.
    bad_input : bool
        True when the input batch itself held NaN/inf.

    Attributes
    ----------
    loss, step, epoch, restored, layer, bad_input
        As given.
    """

    def __init__(self, loss: float, step: int, epoch: int | None, restored: bool = False,
                 layer: str | None = None, bad_input: bool = False) -> None:
        where = f"step {step}" + (f" of epoch {epoch}" if epoch is not None else "")
        origin = ""
        if bad_input:
            origin = " The input batch itself contains NaN or infinity."
        elif layer is not None:
            origin = f" The first non-finite values appear in the output of layer {layer}."
        msg = (f"the loss became {loss} at {where}; the update was not applied and the model keeps its "
               f"last finite weights{' (restored from the start of the epoch)' if restored else ''}.{origin} "
               "The usual cause is a learning rate that is too high.")
        super().__init__(msg)
        self.loss, self.step, self.epoch, self.restored = loss, step, epoch, restored
        self.layer, self.bad_input = layer, bad_input


def _nonfinite_origin(model: Any) -> dict[str, Any]:
    """Where the runtime found the first non-finite values of the failed step."""
    i = int(model._net.nonfinite_layer)
    layer = f"{i} ({type(model.layers[i]).__name__})" if i >= 0 else None
    return {"layer": layer, "bad_input": bool(model._net.nonfinite_input)}


def _batchnorm_rows(model: Any, n: int, batch_size: int, shuffle: bool) -> int:
    """Rows per epoch for a model with batch norm, so that no training batch has 1 row.

    In training mode one row has variance 0, so BatchNorm would output beta whatever the input
    (PyTorch raises "Expected more than 1 value per channel when training" for it). When the last
    batch of an epoch would hold one row (``n % batch_size == 1``) that row sits the epoch out,
    like PyTorch's ``drop_last`` for just that row: with shuffling it is a different random row
    every epoch, so every row is still seen; without shuffling it is always the last row, which a
    warning says. A model without batch norm uses all ``n`` rows. Batches of 1 row by request
    (``batch_size=1``, or a training set of 1 row) are refused.
    """
    if not any(isinstance(layer, BatchNorm) for layer in model.layers):
        return n
    if n < 2:
        raise ValueError(f"batch norm in training mode needs more than 1 row per batch; the training set has {n} row")
    if batch_size == 1:
        raise ValueError("batch norm in training mode needs more than 1 row per batch, got batch_size=1 (the "
                         "variance of one row is 0, so BatchNorm would output beta whatever the input)")
    if n % batch_size != 1:
        return n
    if not shuffle:
        warnings.warn(f"{n} rows in batches of batch_size={batch_size} leave a last batch of 1 row, which batch "
                      "norm cannot train on; without shuffling the last row is skipped every epoch (shuffle, or "
                      "choose a batch_size that does not divide n - 1)", UserWarning, stacklevel=3)
    return n - 1


class Trainer:
    """Fit a :class:`~fastnn.Sequential` with an optimizer and callbacks.

    Parameters
    ----------
    model : Sequential
    optimizer : str or Optimizer
        E.g. ``"adam"`` or ``fastnn.optim.SGD(lr=0.1, momentum=0.9)``.
    callbacks : sequence of Callback, optional
    progress : bool or "auto"
        A tqdm progress bar (epoch, loss, accuracy, ETA, samples/s) when stderr is a terminal and
        tqdm is installed ("auto"), always (True, needs tqdm), or never.

    Attributes
    ----------
    history : History
        What :meth:`fit` recorded (also returned by it).
    epoch : int
        Epochs completed (restored by :meth:`load_checkpoint`).
    stop_training : bool
        Set by a callback to end training after the current epoch.
    lr_scale, min_lr : float
        Factor on the scheduled learning rate and its lower bound (``ReduceLROnPlateau``).
    current_lr : float
        The learning rate of the last step taken.
    steps_per_epoch : int or None
        Training steps per epoch of the current (or last) :meth:`fit` (1 for full-batch
        optimizers); None before the first.

    Raises
    ------
    TypeError
        ``model`` is not a Sequential, or a callback is not a :class:`~fastnn.callbacks.Callback`.
    ValueError
        An unknown optimizer name.
    """

    def __init__(self, model: Sequential, optimizer: str | Optimizer = "adam", *,
                 callbacks: Sequence[Callback] | None = None, progress: bool | str = "auto") -> None:
        if not isinstance(model, Sequential):
            raise TypeError(f"model must be a fastnn.Sequential, got {type(model).__name__}")
        self.model = model
        self.optimizer = resolve_optimizer(optimizer)
        self.history = History()
        self.callbacks: list[Callback] = [self.history]
        for cb in callbacks or []:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be fastnn.callbacks.Callback objects, got {type(cb).__name__}")
            if isinstance(cb, History):
                self.history = cb
                self.callbacks[0] = cb
            else:
                self.callbacks.append(cb)
        for cb in self.callbacks:
            cb.set_trainer(self)
        self.progress = progress
        self.stop_training = False
        self.lr_scale = 1.0
        self.min_lr = 0.0
        self.lr_override: float | None = None
        self.current_lr = float("nan")
        self.epoch = 0  # epochs completed
        self.seed = model.seed
        self.steps_per_epoch: int | None = None

    # ------------------------------------------------------------------------------------------
    def _order(self, epoch: int, n: int, y: np.ndarray | None, shuffle: bool, balanced: bool) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2, epoch])
        if balanced:
            return balanced_order(y, n, rng)
        return rng.permutation(n).astype(np.int64) if shuffle else np.arange(n, dtype=np.int64)

    def _progress_bar(self, total_epochs: int, n: int):
        if self.progress is False:
            return None
        if self.progress == "auto" and not sys.stderr.isatty():
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            if self.progress is True:
                raise ImportError("progress=True needs tqdm: pip install 'fastnn[progress]'") from None
            return None
        return tqdm(total=total_epochs * n, unit="sample", unit_scale=True, dynamic_ncols=True,
                    mininterval=0.5, leave=True)

    def fit(self, X: Any, y: Any, *, epochs: int = 10, batch_size: int = 64,
            validation_data: tuple | None = None, shuffle: bool = True, balanced: bool = False,
            eval_train_samples: int = 1000, resume_from: str | Path | None = None,
            augment: Any = None) -> History:
        """Train for ``epochs`` epochs (counting those already done when resuming).

        With ``model.preprocessing`` attached, it is fitted on ``X`` (the training split only)
        unless already fitted, and applied once, up front, to ``X`` and the validation data; a
        :class:`fastnn.preprocessing.LeakageWarning` says when validation rows were among the rows
        it was fitted on.

        Parameters
        ----------
        X, y : arrays
            Training data (N, features) and labels (N,) (targets (N, outputs) for MSE; for softmax
            cross-entropy also soft targets (N, classes), one probability distribution per row, as in
            distillation: :func:`fastnn.ensemble.distill`).
        epochs : int
            Total epochs; an epoch is a full pass over the training set.
        batch_size : int
            Rows per step (full-batch optimizers take all rows). With batch norm, a last batch
            of 1 row (``N % batch_size == 1``) is left out of the epoch: one row has no batch
            variance (a different random row each epoch when shuffling; a warning without).
        validation_data : (X_val, y_val), optional
            Evaluated after every epoch (``val_loss``, ``val_acc``).
        shuffle : bool
            A new permutation of the row indices every epoch.
        balanced : bool
            Class-balanced batches (classification): every class drawn equally often.
        eval_train_samples : int
            Training rows (a fixed subset) evaluated each epoch for ``train_acc``/``train_loss``.
        resume_from : path, optional
            A checkpoint written by :meth:`save_checkpoint` (or ModelCheckpoint): weights,
            optimizer state, counters, history and callback states are restored and training
            continues from the epoch after it.
        augment : fastnn.augment.Augment, optional
            Random image augmentation of every training mini-batch (gathered, augmented in C++, then
            one training step; keyed by the global step, so reproducible and resumable). Images
            are (N, H, W, C) / (N, C, H, W) arrays or flat rows with ``Augment(image_shape=...)``;
            it acts on the network input (after preprocessing). Evaluation never augments.

        Returns
        -------
        History

        Raises
        ------
        NonFiniteLossError
            A loss became NaN/inf (the step's update is skipped; weights stay finite).
        ValueError
            Bad data (shapes, NaN/inf, labels out of range) or hyperparameters, named.
        TypeError
            Data of the wrong kind (e.g. float labels for a classification loss).
        ImportError
            ``progress=True`` without tqdm, or :class:`~fastnn.optim.LBFGS` without SciPy.
        """
        model = self.model
        if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        raw_item_shape = tuple(np.shape(X)[1:]) if augment is not None else None
        X, validation_data = self._preprocess(X, validation_data)
        Xc = model._check_X(X)
        yc = model._check_y(y, Xc.shape[0])
        N = Xc.shape[0]
        if balanced and not model.loss.classification:
            raise ValueError("balanced batches need a classification loss")
        if balanced and yc.ndim != 1:
            raise ValueError("balanced batches need integer class labels, not soft targets")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, y_val)")
            Xv = model._check_X(validation_data[0], "X_val")
            val = (Xv, model._check_y(validation_data[1], Xv.shape[0], "y_val"))
        opt = self.optimizer
        if opt.full_batch:
            batch_size = N
        batch_size = int(min(batch_size, N))
        n_used = _batchnorm_rows(model, N, batch_size, shuffle or balanced)  # N, or N - 1 (see there)
        model.attach_optimizer(opt)
        model._reserve(batch_size)
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        steps_per_epoch = -(-n_used // batch_size)
        self.steps_per_epoch = steps_per_epoch
        aug = None
        if augment is not None:
            if opt.kind == "lbfgs":
                raise ValueError("augment needs mini-batch training; L-BFGS takes the whole training set at once")
            aug = augment._bind(raw_item_shape, model.input_dim,
                                int(np.random.SeedSequence([self.seed, 4]).generate_state(1, np.uint64)[0]))
        sub_rng = np.random.default_rng([self.seed, 3])
        sub = np.sort(sub_rng.choice(N, size=min(N, int(eval_train_samples)), replace=False))
        Xs, ys = Xc[sub], yc[sub]
        bar = self._progress_bar(epochs - self.epoch, N)
        self.stop_training = False
        for cb in self.callbacks:
            cb.on_train_begin({})
        try:
            while self.epoch < epochs and not self.stop_training:
                epoch = self.epoch
                for cb in self.callbacks:
                    cb.on_epoch_begin(epoch, {})
                t0 = time.perf_counter()
                snapshot = model._net.params.copy()
                order = self._order(epoch, N, yc, shuffle, balanced)[:n_used]
                if opt.kind == "lbfgs":
                    losses = self._lbfgs_epoch(Xc, yc)
                elif aug is not None:
                    losses = self._run_epoch_augmented(Xc, yc, order, batch_size, steps_per_epoch, epoch, snapshot,
                                                       bar, aug)
                else:
                    losses = self._run_epoch(Xc, yc, order, batch_size, steps_per_epoch, epoch, snapshot, bar)
                self.history.record_batches(epoch, losses, steps_per_epoch)
                seconds = time.perf_counter() - t0
                logs: dict[str, float] = {"loss": float(np.mean(losses)), "lr": self.current_lr,
                                          "seconds": seconds, "samples_per_s": N / max(seconds, 1e-12)}
                tr = model._evaluate(Xs, ys)
                logs["train_loss"] = tr["loss"]
                if "accuracy" in tr:
                    logs["train_acc"] = tr["accuracy"]
                if val is not None:
                    vr = model._evaluate(*val)
                    logs["val_loss"] = vr["loss"]
                    if "accuracy" in vr:
                        logs["val_acc"] = vr["accuracy"]
                self.epoch = epoch + 1
                for cb in self.callbacks:
                    cb.on_epoch_end(epoch, logs)
                if bar is not None:
                    bar.set_postfix({k: f"{logs[k]:.4g}" for k in ("loss", "train_acc", "val_acc") if k in logs},
                                    refresh=False)
                    bar.set_description(f"epoch {epoch + 1}/{epochs}")
        finally:
            if bar is not None:
                bar.close()
        for cb in self.callbacks:
            cb.on_train_end({})
        return self.history

    # ------------------------------------------------------------------------------------------
    def _epoch_schedules(self, steps: np.ndarray, steps_per_epoch: int) -> tuple[np.ndarray, np.ndarray]:
        opt = self.optimizer
        if self.lr_override is not None:
            lrs = np.full(steps.shape, self.lr_override)
        else:
            lrs = opt.lr_values(steps, steps_per_epoch)
        lrs = np.maximum(lrs * self.lr_scale, self.min_lr) if self.lr_scale != 1.0 else lrs
        mus = opt.momentum_values(steps, steps_per_epoch)
        if not np.all(np.isfinite(lrs)) or np.any(lrs < 0):
            raise ValueError("the learning-rate schedule gave a negative or non-finite value")
        if not np.all((mus >= 0) & (mus < 1)):
            raise ValueError("the momentum schedule gave a value outside [0, 1)")
        return lrs, mus

    def _run_epoch(self, X: np.ndarray, y: np.ndarray, order: np.ndarray, batch: int,
                   steps_per_epoch: int, epoch: int, snapshot: np.ndarray, bar) -> np.ndarray:
        net = self.model._net
        first = int(net.step)
        steps = first + np.arange(steps_per_epoch)
        lrs, mus = self._epoch_schedules(steps, steps_per_epoch)
        self.current_lr = float(lrs[-1])
        # with a progress bar, a few chunks per epoch (each still thousands of C++ steps at most)
        chunks = 1 if bar is None else min(steps_per_epoch, 20)
        bounds = np.linspace(0, steps_per_epoch, chunks + 1).astype(int)
        out = []
        for c in range(chunks):
            s0, s1 = int(bounds[c]), int(bounds[c + 1])
            rows = order[s0 * batch:min(s1 * batch, len(order))]
            losses, done = net.train_epoch(X, y, rows, batch, lrs[s0:s1], mus[s0:s1])
            out.append(losses[:done])
            if done < s1 - s0:
                bad = float(losses[done])
                restored = not np.all(np.isfinite(net.params))
                if restored:
                    net.params[...] = snapshot
                raise NonFiniteLossError(loss=bad, step=first + s0 + done, epoch=epoch + 1, restored=restored,
                                         **_nonfinite_origin(self.model))
            if bar is not None:
                bar.update(len(rows))
        return np.concatenate(out) if out else np.zeros(0)

    def _preprocess(self, X: Any, validation_data: Any) -> tuple[Any, Any]:
        """Fit the model's preprocessing on X (unless fitted), check the validation rows for
        leakage, and transform both once."""
        model = self.model
        prep = model.preprocessing
        if prep is None:
            return X, validation_data
        from fastnn.preprocessing import _is_fitted, check_leakage, fit_for_model, transform_for_model

        if not _is_fitted(prep):
            fit_for_model(prep, X)  # on the training split only
        if isinstance(validation_data, tuple | list) and len(validation_data) == 2:
            Xv = validation_data[0]
            check_leakage(prep, Xv, "validation")
            validation_data = (transform_for_model(prep, Xv, model.dtype, "X_val"), validation_data[1])
        return transform_for_model(prep, X, model.dtype, "X"), validation_data

    def _run_epoch_augmented(self, X: np.ndarray, y: np.ndarray, order: np.ndarray, batch: int,
                             steps_per_epoch: int, epoch: int, snapshot: np.ndarray, bar, aug: Any) -> np.ndarray:
        """An epoch of gather -> augment (C++) -> train step, one mini-batch at a time."""
        net = self.model._net
        first = int(net.step)
        steps = first + np.arange(steps_per_epoch)
        lrs, mus = self._epoch_schedules(steps, steps_per_epoch)
        self.current_lr = float(lrs[-1])
        buf = np.empty((batch, X.shape[1]), dtype=X.dtype)
        out = np.empty(steps_per_epoch)
        for s in range(steps_per_epoch):
            rows = order[s * batch:min((s + 1) * batch, len(order))]
            xb = aug(X, rows, first + s, buf[:len(rows)])
            loss, _, _, finite = net.train_step(xb, y[rows], float(lrs[s]), float(mus[s]))
            if not finite:
                restored = not np.all(np.isfinite(net.params))
                if restored:
                    net.params[...] = snapshot
                raise NonFiniteLossError(loss=float(loss), step=first + s, epoch=epoch + 1, restored=restored,
                                         **_nonfinite_origin(self.model))
            out[s] = loss
            if bar is not None:
                bar.update(len(rows))
        return out

    def _lbfgs_epoch(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        try:
            from scipy.optimize import minimize
        except ImportError:
            raise ImportError("LBFGS needs SciPy: pip install scipy") from None
        model, opt, net = self.model, self.optimizer, self.model._net
        losses: list[float] = []

        def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
            net.params[...] = theta
            loss, _, _ = net.loss_and_grad(X, y, True)
            losses.append(loss)
            g = np.asarray(net.grads, dtype=np.float64)
            if not math.isfinite(loss):
                return float("inf"), np.zeros_like(theta)
            return float(loss), g

        theta0 = np.asarray(net.params, dtype=np.float64).copy()
        res = minimize(f, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": int(opt.max_iter), "maxcor": int(opt.history), "gtol": float(opt.tol),
                                "ftol": float(opt.tol)})
        net.params[...] = res.x
        net.step = net.step + 1
        self.current_lr = float("nan")
        if not math.isfinite(float(res.fun)):
            raise NonFiniteLossError(loss=float(res.fun), step=int(net.step), epoch=self.epoch + 1)
        del model
        return np.asarray(losses[-1:] if losses else [float(res.fun)])

    # ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The trainer's own state (epoch, learning-rate scale, callbacks), for checkpoints."""
        return {"epoch": self.epoch, "lr_scale": self.lr_scale, "min_lr": self.min_lr, "seed": self.seed,
                "optimizer": self.optimizer.config(),
                "callbacks": [{"class": type(cb).__name__, "state": cb.get_state()} for cb in self.callbacks]}

    def save_checkpoint(self, path: str | Path) -> None:
        """Save model, optimizer state and trainer state atomically (see :func:`fastnn.io.save`)."""
        from fastnn.io import save

        save(self.model, path, trainer_state=self.state())

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore what :meth:`save_checkpoint` saved into this trainer and its model."""
        from fastnn.io import restore_into

        meta = restore_into(self.model, path)
        st = meta.get("trainer")
        if st is None:
            raise ValueError(f"{path} holds a model but no trainer state (it was saved with model.save, "
                             "not by a trainer): load it with fastnn.load instead")
        self.epoch, self.lr_scale = int(st["epoch"]), float(st["lr_scale"])
        self.min_lr, self.seed = float(st.get("min_lr", 0.0)), int(st["seed"])
        saved = st.get("callbacks", [])
        for cb, s in zip(self.callbacks, saved, strict=False):
            if type(cb).__name__ == s["class"]:
                cb.set_state(s["state"])
