"""Plots of a training run, the CS231n notes' way of babysitting the learning process.

Every function returns a :class:`matplotlib.figure.Figure` drawn with the Agg backend and touches
no global state (no ``pyplot``): the figures are safe to make in scripts, threads and servers, and
their data can be read back (``ax.lines[i].get_ydata()``, ``ax.patches``, ``ax.images``).

* :func:`loss_curve` -- the loss of every step against epochs, raw and smoothed, linear and log y;
* :func:`accuracy_curve` -- training and validation accuracy (and losses) per epoch;
* :func:`update_ratios` -- ``|dW| / |W|`` of each Dense weight over training, against the ~1e-3 rule;
* :func:`layer_stats` -- per layer: activation std, dead/saturated units, gradient std;
* :func:`distributions` -- histograms of each layer's outputs and of the gradients flowing into them;
* :func:`weight_tiles` -- the first layer's weights as images (one tile per unit);
* :func:`save` -- write a figure as a PNG.

matplotlib is optional: ``pip install 'fastnn[plot]'``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from fastnn.callbacks import History
    from fastnn.monitor import Monitor

__all__ = ["loss_curve", "accuracy_curve", "update_ratios", "layer_stats", "distributions", "weight_tiles",
           "save", "smooth", "record_epochs", "default_smoothing"]

_NONLINEAR = ("ReLU", "LeakyReLU", "PReLU", "ELU", "Maxout", "Tanh", "Sigmoid")
_SATURATING = ("Tanh", "Sigmoid")


def _figure(figsize: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A new Agg-backed Figure (no pyplot), with constrained layout by default."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("fastnn's plots need matplotlib: pip install 'fastnn[plot]'") from None
    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _history(history: Any) -> Any:
    """Accept a History, a Trainer's history or a ``History.to_dict()`` dict."""
    if isinstance(history, dict):
        from fastnn.callbacks import History

        return History.from_dict(history)
    return history


def _monitor(monitor: Any) -> Any:
    if isinstance(monitor, dict):
        from fastnn.monitor import Monitor

        return Monitor.from_dict(monitor)
    return monitor


def default_smoothing(n: int) -> float:
    """The smoothing factor :func:`loss_curve` uses for ``n`` points: an exponential moving
    average over about ``n / 50`` steps (none for fewer than ~100 points).

    Parameters
    ----------
    n : int
        Number of points.

    Returns
    -------
    float
        ``beta`` in [0, 0.99].
    """
    return float(min(0.99, max(0.0, 1.0 - 50.0 / max(n, 1))))


def smooth(values: Sequence[float] | np.ndarray, beta: float) -> np.ndarray:
    """Bias-corrected exponential moving average (as TensorBoard and Adam's moments do it).

    ``s_t = beta * s_{t-1} + (1 - beta) * x_t`` from ``s_0 = 0``, divided by ``1 - beta**(t+1)``,
    so the first points are not pulled towards zero. Non-finite values are skipped (they keep the
    previous average) and come out as NaN.

    Parameters
    ----------
    values : sequence of float
    beta : float
        In [0, 1); 0 returns the values unchanged.

    Returns
    -------
    ndarray
        The smoothed values, same length.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    x = np.asarray(values, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    s, weight = 0.0, 0.0
    for i, v in enumerate(x):
        if not math.isfinite(v):
            continue
        s = beta * s + (1.0 - beta) * v
        weight = beta * weight + (1.0 - beta)
        out[i] = s / weight
    return out


def loss_curve(history: History | dict, smoothing: float | None = None) -> Figure:
    """The training loss of every step against epochs: raw and smoothed, on a linear and a log y axis.

    The notes read the learning rate off this curve: a loss that plateaus high means too high a
    rate, one that falls slowly and linearly too low a rate; a very noisy curve a batch too small.

    Parameters
    ----------
    history : History or dict
        A run's history (``trainer.history``, or ``History.to_dict()`` as in ``history.json``).
        Uses ``batch_loss`` and ``batch_epoch`` (each step's position in epochs).
    smoothing : float, optional
        ``beta`` of the exponential moving average (:func:`smooth`); default
        :func:`default_smoothing` of the number of steps.

    Returns
    -------
    Figure
        Two axes (linear, log y); each holds ``lines[0]`` the raw losses and ``lines[1]`` the
        smoothed ones, both against ``batch_epoch``.
    """
    h = _history(history)
    x = np.asarray(h.batch_epoch, dtype=np.float64)
    y = np.asarray(h.batch_loss, dtype=np.float64)
    beta = default_smoothing(len(y)) if smoothing is None else float(smoothing)
    ys = smooth(y, beta)
    fig = _figure((11, 4))
    axes = fig.subplots(1, 2)
    for ax, scale in zip(axes, ("linear", "log"), strict=True):
        ax.plot(x, y, color="tab:blue", alpha=0.35, linewidth=0.8, label="per batch")
        ax.plot(x, ys, color="tab:blue", linewidth=1.8, label=f"smoothed (EMA, beta={beta:.2f})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss" + (" (log scale)" if scale == "log" else ""))
        if scale == "log" and np.any(y[np.isfinite(y)] > 0):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3, which="both" if scale == "log" else "major")
        ax.legend(loc="upper right")
    axes[0].set_title("Training loss per batch")
    axes[1].set_title("Training loss per batch (log y)")
    if len(x) == 0:
        for ax in axes:
            ax.text(0.5, 0.5, "no steps recorded yet", ha="center", va="center", transform=ax.transAxes)
    return fig


_LOSS_LABELS = {"loss": "train batches (mean, with penalties)", "train_loss": "train (eval. mode, subset)",
                "val_loss": "validation"}


def accuracy_curve(history: History | dict) -> Figure:
    """Training and validation accuracy per epoch, and the losses per epoch in a second panel.

    A large gap between the accuracies means overfitting (more regularisation); no gap and both
    low, too small a model.

    Parameters
    ----------
    history : History or dict
        Uses ``history.epoch`` and ``history.history``'s ``train_acc``, ``val_acc`` and, when
        present, ``train_loss``, ``val_loss`` and ``loss``.

    Returns
    -------
    Figure
        With accuracies, ``axes[0]`` holds one line per present key of (``train_acc``,
        ``val_acc``) in that order; the loss panel (last axes) one line per present key of
        (``train_loss``, ``val_loss``, ``loss``). Each line is labelled with its key's description
        and ``gid`` set to the key.
    """
    h = _history(history)
    x = np.asarray(h.epoch, dtype=np.float64)
    acc_keys = [k for k in ("train_acc", "val_acc") if h.history.get(k)]
    loss_keys = [k for k in ("train_loss", "val_loss", "loss") if h.history.get(k)]
    panels = int(bool(acc_keys)) + int(bool(loss_keys))
    fig = _figure((11 if panels == 2 else 6, 4))
    axes = list(np.atleast_1d(fig.subplots(1, max(panels, 1))))
    i = 0
    if acc_keys:
        ax = axes[i]
        for k, color in zip(acc_keys, ("tab:blue", "tab:orange"), strict=False):
            v = np.asarray(h.history[k], dtype=np.float64)
            ax.plot(x[:len(v)], v, marker="o" if len(v) <= 30 else None, markersize=3, color=color,
                    label="train" if k == "train_acc" else "validation", gid=k)
        ax.set_title("Classification accuracy")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        i += 1
    if loss_keys:
        ax = axes[i]
        styles = {"train_loss": ("tab:blue", "-"), "val_loss": ("tab:orange", "-"), "loss": ("tab:gray", "--")}
        for k in loss_keys:
            v = np.asarray(h.history[k], dtype=np.float64)
            color, ls = styles[k]
            ax.plot(x[:len(v)], v, color=color, linestyle=ls, marker="o" if len(v) <= 30 else None, markersize=3,
                    label=_LOSS_LABELS[k], gid=k)
        ax.set_title("Loss per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right")
    if panels == 0:
        axes[0].text(0.5, 0.5, "no epochs recorded yet", ha="center", va="center", transform=axes[0].transAxes)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    return fig


def _steps_per_epoch(history: Any, n_epochs: int) -> int | None:
    if history is None:
        return None
    be = list(getattr(history, "batch_epoch", []))
    if not be:
        return None
    first = sum(1 for v in be if v <= 1.0 + 1e-9)
    if first:
        return first
    return max(1, round(len(be) / max(n_epochs, 1)))


def record_epochs(monitor: Monitor | dict, history: History | dict | None = None) -> np.ndarray:
    """Each monitor record's position in epochs (the x axis of :func:`update_ratios` and
    :func:`layer_stats`).

    A record taken at the model's step ``s`` (0-based: the step being taken) during epoch ``e``
    (1-based, ``monitor.epoch_of_record``) sits at ``(s - first + 1) / steps_per_epoch``, where
    ``first`` is the model's step when training began (0 for a fresh model), the same convention
    as ``History.batch_epoch``. A monitor records ``steps_per_epoch`` and ``first_step`` itself
    (:meth:`Monitor.record_epochs <fastnn.monitor.Monitor.record_epochs>`): then the positions are
    exact. For an older record without them, ``steps_per_epoch`` comes from the history's
    ``batch_epoch``; without a history it is inferred from the records (exact with ``every=1``,
    otherwise estimated from the spacing of the steps across epochs), and with a single epoch of
    sparse records the records are spread evenly over their epoch.

    Parameters
    ----------
    monitor : Monitor or dict
    history : History or dict, optional

    Returns
    -------
    ndarray
        One float per record.
    """
    mon = _monitor(monitor)
    exact = mon.record_epochs() if hasattr(mon, "record_epochs") else None
    if exact is not None:
        return exact
    h = _history(history) if history is not None else None
    steps = np.asarray(mon.steps, dtype=np.float64)
    ep = np.asarray(mon.epoch_of_record, dtype=np.int64)
    if len(steps) == 0:
        return np.zeros(0)
    if len(ep) != len(steps):  # an old or hand-made record without epochs: plot against steps
        return steps.copy()
    spe = _steps_per_epoch(h, int(ep.max()))
    if spe is None:
        if mon.every == 1:
            counts = np.bincount(ep)
            spe = int(counts[counts > 0][0]) if len(counts) else 1
        elif ep.max() > ep.min():
            lo, hi = ep == ep.min(), ep == ep.max()
            spe = max(1, round((steps[hi].min() - steps[lo].min()) / (ep.max() - ep.min())))
        else:  # one epoch, sparse records: spread them evenly over it
            n = len(steps)
            return ep - 1 + (np.arange(n) + 1) / n
    # the model's first step of this training: the same for every record
    lo_first = np.max(steps - ep * spe) + 1
    hi_first = np.min(steps - (ep - 1) * spe)
    first = 0.0 if lo_first <= 0 <= hi_first else lo_first
    return (steps - first + 1) / spe


def _dense_weights(mon: Any) -> list[str]:
    out = []
    for t in mon.tensors:
        layer, _, rest = t.partition(".")
        if rest == "weight" and layer.isdigit() and int(layer) < len(mon.layer_kinds) and \
                mon.layer_kinds[int(layer)] == "Dense":
            out.append(t)
    return out


def update_ratios(monitor: Monitor | dict, history: History | dict | None = None) -> Figure:
    """The update:weight ratio ``|dW| / |W|`` of every Dense weight tensor over training.

    The notes' rule of thumb: around 1e-3. Much lower, the learning rate is probably too low;
    much higher, too high. The band shaded is the monitor's ``ratio_band`` (default 1e-4..1e-2),
    the dashed line 1e-3.

    Parameters
    ----------
    monitor : Monitor or dict
        Its records (``monitor.update_ratio``).
    history : History or dict, optional
        For the x axis in epochs (see :func:`record_epochs`).

    Returns
    -------
    Figure
        One axes (log y); ``lines[i]`` is the i-th Dense weight tensor's ratio (label = tensor name)
        against :func:`record_epochs`; then the 1e-3 line.
    """
    mon = _monitor(monitor)
    x = record_epochs(mon, history)
    fig = _figure((8, 4.5))
    ax = fig.subplots()
    lo, hi = mon.ratio_band
    ax.axhspan(lo, hi, color="tab:green", alpha=0.12, label=f"healthy band ({lo:g} .. {hi:g})")
    names = _dense_weights(mon)
    colors = _colors(len(names))
    for t, c in zip(names, colors, strict=True):
        ax.plot(x, mon.update_ratio(t), color=c, linewidth=1.3, label=_tensor_label(mon, t))
    ax.axhline(1e-3, color="tab:green", linestyle="--", linewidth=1.2, label="target ~1e-3")
    ax.set_yscale("log")
    ax.set_xlabel("epoch" if len(mon.epoch_of_record) == len(x) else "step")
    ax.set_ylabel("|update| / |weight|  (log scale)")
    ax.set_title("Update:weight ratio per Dense layer")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="best", fontsize="small")
    if len(x) == 0:
        ax.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=ax.transAxes)
    return fig


def _tensor_label(mon: Any, tensor: str) -> str:
    i = int(tensor.split(".")[0])
    return f"{tensor} ({mon.layer_kinds[i]} {i})" if i < len(mon.layer_kinds) else tensor


def _colors(n: int) -> list:
    """Colours by depth (viridis, dark = first layer)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.0, 0.9, n)] if n else []


def _default_layers(mon: Any) -> list[int]:
    idx = [i for i, k in enumerate(mon.layer_kinds) if k in _NONLINEAR]
    return idx or list(range(len(mon.layer_kinds)))


def layer_stats(monitor: Monitor | dict, history: History | dict | None = None,
                layers: Sequence[int] | None = None) -> Figure:
    """Per layer over training: output std, dead (ReLU) or saturated (tanh/sigmoid) units, gradient std.

    The notes' symptoms: activation std collapsing with depth (initialisation too small), many
    ReLUs dead for whole batches (learning rate too high, bad init), tanh/sigmoid units stuck at
    +-1 / 0 or 1 (weights too large), gradients vanishing towards the first layers.

    Parameters
    ----------
    monitor : Monitor or dict
    history : History or dict, optional
        For the x axis in epochs (see :func:`record_epochs`).
    layers : sequence of int, optional
        Layer indices to draw; default the nonlinearities (all layers when there are none).

    Returns
    -------
    Figure
        Three axes: ``axes[0]`` ``act_std``, ``axes[2]`` ``grad_std``, one line per layer in
        ``layers`` order; ``axes[1]`` one line per layer of a ReLU-type (``frac_dead``) or
        tanh/sigmoid (``frac_saturated``) kind, in the same order. Lines are labelled with the
        monitor's layer names and their ``gid`` is the layer index.
    """
    mon = _monitor(monitor)
    x = record_epochs(mon, history)
    idx = list(_default_layers(mon) if layers is None else layers)
    fig = _figure((15, 4.2))
    axes = fig.subplots(1, 3)
    colors = _colors(len(idx))
    xlabel = "epoch" if len(mon.epoch_of_record) == len(x) else "step"
    stds = []
    for i, c in zip(idx, colors, strict=True):
        v = mon.layer_stat(i, "act_std")
        stds.append(v)
        axes[0].plot(x, v, color=c, label=mon.layers[i], gid=str(i))
    if _log_sensible(stds):
        axes[0].set_yscale("log")
    axes[0].set_title("Output std per layer")
    axes[0].set_ylabel("std of the layer's outputs" + (" (log scale)" if axes[0].get_yscale() == "log" else ""))
    drawn = 0
    for i, c in zip(idx, colors, strict=True):
        kind = mon.layer_kinds[i]
        if kind in _SATURATING:
            axes[1].plot(x, mon.layer_stat(i, "frac_saturated"), color=c, label=f"{mon.layers[i]}: saturated",
                         gid=str(i))
        elif kind in _NONLINEAR:
            axes[1].plot(x, mon.layer_stat(i, "frac_dead"), color=c, label=f"{mon.layers[i]}: dead", gid=str(i))
        else:
            continue
        drawn += 1
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_title("Dead (ReLU) / saturated (tanh, sigmoid) units")
    axes[1].set_ylabel("fraction of units")
    if not drawn:
        axes[1].text(0.5, 0.5, "no ReLU, tanh or sigmoid layers", ha="center", va="center",
                     transform=axes[1].transAxes)
    gstds = []
    for i, c in zip(idx, colors, strict=True):
        v = mon.layer_stat(i, "grad_std")
        gstds.append(v)
        axes[2].plot(x, v, color=c, label=mon.layers[i], gid=str(i))
    if _log_sensible(gstds, spread=1.0):
        axes[2].set_yscale("log")
    axes[2].set_title("Gradient std per layer (w.r.t. its outputs)")
    axes[2].set_ylabel("std of dLoss/d(output)" + (" (log scale)" if axes[2].get_yscale() == "log" else ""))
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3, which="both")
        if ax.lines:
            ax.legend(loc="best", fontsize="x-small")
    return fig


def _log_sensible(series: list[np.ndarray], spread: float = 20.0) -> bool:
    """Log scale when every finite value is positive and they span more than ``spread`` x."""
    vals = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in series]) if series else np.zeros(0)
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0 or np.any(vals <= 0):
        return False
    return bool(vals.max() >= spread * vals.min())


def distributions(acts: Sequence[np.ndarray], grads: Sequence[np.ndarray] | None, layer_names: Sequence[str],
                  bins: int = 50, max_cols: int = 5) -> Figure:
    """Histograms of every layer's outputs and of the loss gradient with respect to them.

    The CS231n plot of activation and gradient distributions per layer: outputs should keep a
    healthy spread with depth (not collapse to 0, not pile up at +-1), gradients should not vanish
    towards the first layers.

    Parameters
    ----------
    acts, grads : sequence of ndarray
        Per layer, its outputs and the gradients (as ``model.capture(X, y)`` returns them); ``grads``
        may be None.
    layer_names : sequence of str
        One per layer, e.g. ``["0 Dense", "1 ReLU", ...]``.
    bins : int
        Histogram bins.
    max_cols : int
        Layers per row of panels; deeper networks wrap onto further rows (each layer's output
        histogram with its gradient histogram below it).

    Returns
    -------
    Figure
        ``fig.axes[j]`` is layer ``j``'s output histogram and, with gradients,
        ``fig.axes[len(acts) + j]`` its gradient histogram (on a log count axis: gradients have
        long tails). Each holds one patch (``ax.patches[0]``, a ``StepPatch`` whose ``get_data()``
        gives the counts and edges of ``np.histogram(finite values, bins)``).
    """
    if len(layer_names) != len(acts) or (grads is not None and len(grads) != len(acts)):
        raise ValueError(f"{len(acts)} activations, {0 if grads is None else len(grads)} gradients and "
                         f"{len(layer_names)} names: give one of each per layer")
    n = len(acts)
    per = 1 if grads is None else 2
    cols = max(1, min(n, int(max_cols)))
    blocks = max(1, math.ceil(n / cols))
    rows = blocks * per
    # a fixed layout: constrained layout doubles the drawing time of these many small axes
    width, height = max(4.0, 2.9 * cols), 2.9 * rows + 0.6
    fig = _figure((width, height), layout=None)
    gs = fig.add_gridspec(rows, cols, left=0.75 / width, right=1 - 0.2 / width, bottom=0.45 / height,
                          top=1 - 1.25 / height, wspace=0.35, hspace=0.8)
    cells = [divmod(j, cols) for j in range(n)]
    out_axes = [fig.add_subplot(gs[b * per, c]) for b, c in cells]
    grad_axes = [fig.add_subplot(gs[b * per + 1, c]) for b, c in cells] if grads is not None else []
    for j in range(n):
        first_col = cells[j][1] == 0
        _hist(out_axes[j], acts[j], bins, "tab:blue", f"{layer_names[j]}: outputs")
        if first_col:
            out_axes[j].set_ylabel("count")
        if grads is not None:
            _hist(grad_axes[j], grads[j], bins, "tab:red", f"{layer_names[j]}: gradients", log=True)
            if first_col:
                grad_axes[j].set_ylabel("count (log scale)")
    fig.suptitle("Distributions of each layer's outputs (blue) and of the loss gradient w.r.t. them (red)"
                 if grads is not None else "Distributions of each layer's outputs")
    return fig


def _hist(ax: Any, values: np.ndarray, bins: int, color: str, title: str, log: bool = False) -> None:
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if len(v):
        counts, edges = np.histogram(v, bins=bins)
        ax.stairs(counts, edges, fill=True, color=color, alpha=0.8)
        if log:
            from matplotlib.ticker import LogLocator, NullLocator

            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(numticks=5))
            ax.yaxis.set_minor_locator(NullLocator())  # minor ticks on 9+ small log axes cost most of the drawing
        ax.set_title(f"{title}\nmean {v.mean():.2g}, std {v.std():.2g}", fontsize="small")
    else:
        ax.set_title(f"{title}\n(no finite values)", fontsize="small")
    ax.tick_params(labelsize="x-small")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))


def weight_tiles(weights: np.ndarray, image_shape: tuple[int, int], max_units: int | None = None,
                 cmap: str = "RdBu_r") -> Figure:
    """The first Dense layer's weights drawn as images, one tile per hidden unit (the "templates").

    fastnn stores a Dense weight as (in_features, out_features): column ``j`` is unit ``j``'s
    weights over the input pixels, reshaped to ``image_shape``. Only meaningful when the input is
    an image. Colours are symmetric around 0 (one scale for every tile, shown in the colour bar).

    Parameters
    ----------
    weights : ndarray, shape (in_features, out_features)
    image_shape : (int, int)
        E.g. (8, 8) for scikit-learn's digits; ``prod(image_shape)`` must be ``in_features``.
    max_units : int, optional
        Draw only the first units.
    cmap : str
        A diverging colour map.

    Returns
    -------
    Figure
        One axes with one image (``axes.images[0]``): a mosaic, ``cols = ceil(sqrt(units))`` tiles
        wide, with a one-pixel masked border between tiles; tile ``j`` (row-major) holds
        ``weights[:, j].reshape(image_shape)`` unchanged.
    """
    W = np.asarray(weights, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"weights must be 2-D (in_features, out_features), got shape {W.shape}")
    hgt, wid = (int(s) for s in image_shape)
    if hgt * wid != W.shape[0]:
        raise ValueError(f"image_shape {tuple(image_shape)} has {hgt * wid} pixels but the weights have "
                         f"{W.shape[0]} inputs")
    units = W.shape[1] if max_units is None else min(W.shape[1], int(max_units))
    cols = max(1, math.ceil(math.sqrt(units)))
    rows = max(1, math.ceil(units / cols))
    mosaic = np.full((rows * (hgt + 1) + 1, cols * (wid + 1) + 1), np.nan)
    for j in range(units):
        r, c = divmod(j, cols)
        y0, x0 = 1 + r * (hgt + 1), 1 + c * (wid + 1)
        mosaic[y0:y0 + hgt, x0:x0 + wid] = W[:, j].reshape(hgt, wid)
    finite = W[:, :units][np.isfinite(W[:, :units])]
    lim = float(np.max(np.abs(finite))) if finite.size else 1.0
    lim = lim if lim > 0 else 1.0
    side = min(10.0, max(3.0, 0.45 * cols * (wid + 1) / 4))
    fig = _figure((side + 1.2, side * rows / cols + 0.8))
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"First-layer weights: {units} of {W.shape[1]} units as {hgt}x{wid} images")
    fig.colorbar(im, ax=ax, shrink=0.8, label="weight")
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as a PNG (with the Agg backend; no global state).

    Parameters
    ----------
    fig : Figure
    path : str or Path
    dpi : int

    Returns
    -------
    Path
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=dpi)
    return path
