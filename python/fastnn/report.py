"""HTML reports of training runs (what ``fastnn report DIR`` writes).

:func:`report` looks at a folder and dispatches: a hyperparameter-search folder (it holds
``trials.jsonl``) goes to :func:`fastnn.search.write_report`, anything else is a training run folder
for :func:`write_run_report`. A run folder is what ``fastnn train --out DIR`` writes; every file is
optional, the report shows what is there:

==================  =========================================================================
file                used for
==================  =========================================================================
history.json        loss curve, accuracy curve, summary and per-epoch tables (``History``)
monitor.json        update:weight ratios, layer statistics, the table of diagnoses (``Monitor``)
model.safetensors   summary (parameters, test accuracy); distributions and weight tiles
                    (while training: ``best.safetensors``)
sample.npz          ``X``, ``y``: a few preprocessed validation rows, run through the model with
                    ``capture`` for the distributions; ``image_shape`` for the weight tiles
gradcheck.json      ``fastnn gradcheck --model DIR/model.safetensors`` (:func:`gradcheck_to_dict`)
sanity.json         ``fastnn sanity --model DIR/model.safetensors`` (:func:`sanity_to_dict`)
==================  =========================================================================

It works on a finished run and on one still training (``fastnn train`` rewrites history.json and
monitor.json atomically after every epoch): a missing or unreadable file leaves its sections out
and is listed under "Not shown". The report is one self-contained HTML file (the figures embedded
as base64 PNG data URIs, the style inline, no scripts, no links), and each figure is also written
as a PNG beside it.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastnn._atomic import write_atomic
from fastnn._json import strict

__all__ = ["report", "write_run_report", "gradcheck_to_dict", "sanity_to_dict", "RUN_FILES", "FIGURES"]

RUN_FILES = ("history.json", "monitor.json", "model.safetensors", "best.safetensors", "sample.npz",
             "gradcheck.json", "sanity.json")
FIGURES = {"loss": "loss_curve.png", "accuracy": "accuracy.png", "update_ratios": "update_ratios.png",
           "layer_stats": "layer_stats.png", "distributions": "distributions.png", "weights": "weights.png"}
"""The PNG file of each figure (the report's ``<img id=...>`` is the key)."""

_METRICS = ("loss", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s")
_METRIC_NAMES = {
    "loss": "training loss (mean of the epoch's batches, with penalties)",
    "train_loss": "training loss (evaluation mode, fixed subset)",
    "train_acc": "training accuracy (evaluation mode, fixed subset)",
    "val_loss": "validation loss",
    "val_acc": "validation accuracy",
    "lr": "learning rate (last step of the epoch)",
    "seconds": "seconds for the epoch",
    "samples_per_s": "training samples per second",
}
_MAX_TILES = 100  # first-layer units drawn as image tiles


def report(path: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the HTML report of a training run folder or of a hyperparameter-search folder.

    Parameters
    ----------
    path : str or Path
        A folder holding ``trials.jsonl`` (a search: :func:`fastnn.search.write_report`) or a
        training run folder (:func:`write_run_report`).
    out_dir : str or Path, optional
        Where the report goes (default ``path``).

    Returns
    -------
    Path
        The HTML file written.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a folder, or holds neither a search nor a run.
    ImportError
        A search folder, but :mod:`fastnn.search` (its ``write_report``) cannot be imported.
    """
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p} is not a folder")
    if (p / "trials.jsonl").is_file():
        try:
            from fastnn.search import write_report
        except ImportError as exc:
            raise ImportError(f"{p} holds trials.jsonl, so it is a hyperparameter-search folder, but "
                              f"fastnn.search.write_report cannot be imported ({exc})") from None
        return Path(write_report(p, out_dir=None if out_dir is None else Path(out_dir)))
    return write_run_report(p, out_dir)


# ---------------------------------------------------------------------------------------------------
# check results as JSON (written by ``fastnn gradcheck`` / ``fastnn sanity`` into a run folder)
# ---------------------------------------------------------------------------------------------------
def _check_dict(kind: str, result: Any, meta: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """What ``gradcheck.json`` and ``sanity.json`` share: kind, verdict, text, time and ``meta``
    around the check's own ``fields``, as strict JSON data (a non-finite number is None)."""
    return strict({"kind": kind, "passed": bool(result.passed), **fields, "report": result.report(),
                   "written": time.strftime("%Y-%m-%d %H:%M:%S"), "meta": _jsonable(meta)})


def gradcheck_to_dict(result: Any, **meta: Any) -> dict[str, Any]:
    """A :class:`fastnn.gradcheck.GradCheckResult` as the JSON data the report reads.

    Parameters
    ----------
    result : GradCheckResult
    **meta
        Extra keys stored as they are (e.g. ``model``, ``data``).

    Returns
    -------
    dict
        ``kind`` ("gradcheck"), ``passed``, ``max_rel_error``, ``h``, ``component``, ``mode``,
        ``loss``, ``has_kinks``, ``tensors`` (one dict per parameter tensor: ``name``, ``shape``,
        ``checked``, ``max_rel_error``, ``kinks``, ``tiny``, ``noise``, ``verdict``, ``passed``,
        ``worst`` = {``index``, ``analytic``, ``numeric``} or None), ``report`` (the text),
        ``written`` and ``meta``; a non-finite number is None (strict JSON).
    """
    tensors = []
    for t in result.tensors.values():
        w = t.worst
        tensors.append({"name": t.name, "shape": list(t.shape), "checked": t.checked,
                        "max_rel_error": float(t.max_rel_error), "kinks": t.kinks, "tiny": t.tiny,
                        "noise": t.noise, "verdict": t.verdict, "passed": bool(t.passed), "tol": float(t.tol),
                        "worst": None if w is None else {"index": list(w.index), "analytic": float(w.analytic),
                                                         "numeric": float(w.numeric)}})
    return _check_dict("gradcheck", result, meta, max_rel_error=float(result.max_rel_error), h=float(result.h),
                       component=result.component, mode=result.mode, loss=float(result.loss),
                       has_kinks=bool(result.has_kinks), tensors=tensors)


def sanity_to_dict(result: Any, **meta: Any) -> dict[str, Any]:
    """The :class:`fastnn.sanity.SanityReport` ``result`` as the JSON data the report reads: ``kind``
    ("sanity"), ``passed``, ``checks`` (``name``, ``passed``, ``expected``, ``actual``, ``advice``),
    ``report`` (the text), ``written`` and ``meta`` (the keyword arguments, e.g. ``model``, ``data``)."""
    checks = [{"name": c.name, "passed": bool(c.passed), "expected": c.expected, "actual": c.actual,
               "advice": c.advice} for c in result.checks]
    return _check_dict("sanity", result, meta, checks=checks)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, str | int | float | bool | type(None)) else str(v)) for k, v in d.items()}


# ---------------------------------------------------------------------------------------------------
# reading a run folder
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Run:
    path: Path
    history: Any
    monitor: Any
    model: Any
    model_path: Path | None
    sample: dict[str, np.ndarray] | None
    gradcheck: dict[str, Any] | None
    sanity: dict[str, Any] | None
    notes: list[str]


def _read_json(path: Path, notes: list[str]) -> Any:
    """The file's JSON, or None (with a note) when it is missing, unreadable or partial."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes.append(f"{path.name} could not be read ({exc}); written by an older or interrupted writer?")
        return None


def _read_run(run: Path) -> _Run:
    from fastnn.callbacks import History

    notes: list[str] = []
    model, model_path = None, None
    for name in ("model.safetensors", "best.safetensors"):
        path = run / name
        if not path.is_file():
            continue
        try:
            import fastnn

            model, model_path = fastnn.load(path), path
            break
        except (ImportError, ValueError, OSError, KeyError, TypeError) as exc:
            notes.append(f"{name} could not be loaded: {exc}")

    hist_d = _read_json(run / "history.json", notes)
    if hist_d is None and model is not None:
        hist_d = (getattr(model, "checkpoint", None) or {}).get("history")
        if hist_d:
            notes.append(f"history from {model_path.name} (no readable history.json)")
    try:
        history = History.from_dict(hist_d) if isinstance(hist_d, dict) else History()
    except (TypeError, ValueError, AttributeError) as exc:
        notes.append(f"history.json is not a fastnn History ({exc})")
        history = History()

    monitor = None
    mon_d = _read_json(run / "monitor.json", notes)
    if mon_d is not None:
        from fastnn.monitor import Monitor

        try:
            monitor = Monitor.from_dict(mon_d)
        except (ValueError, KeyError, TypeError) as exc:
            notes.append(f"monitor.json is not a fastnn Monitor record ({exc})")

    sample = None
    spath = run / "sample.npz"
    if spath.is_file():
        try:
            with np.load(spath, allow_pickle=False) as f:
                sample = {k: np.asarray(f[k]) for k in f.files}
        except (OSError, ValueError, EOFError) as exc:
            notes.append(f"sample.npz could not be read: {exc}")
        if sample is not None and not {"X", "y"} <= set(sample):
            notes.append(f"sample.npz must hold arrays X and y, has {sorted(sample)}")
            sample = None

    checks = {}
    for kind in ("gradcheck", "sanity"):
        d = _read_json(run / f"{kind}.json", notes)
        if d is not None and not (isinstance(d, dict) and d.get("kind") == kind):
            notes.append(f"{kind}.json is not a fastnn {kind} result")
            d = None
        checks[kind] = d
    return _Run(run, history, monitor, model, model_path, sample, checks["gradcheck"], checks["sanity"], notes)


# ---------------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------------
def write_run_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` and one PNG per figure for a training run folder.

    Parameters
    ----------
    run_dir : str or Path
        A run folder (see the module docstring); it may belong to a run that is still training.
    out_dir : str or Path, optional
        Where ``report.html`` and the PNGs go (created if needed; default ``run_dir``).

    Returns
    -------
    Path
        ``out_dir / "report.html"``.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` is not a folder, or holds none of history.json, monitor.json,
        model.safetensors, best.safetensors.

    Notes
    -----
    Figures need matplotlib (``pip install 'fastnn[plot]'``); without it the report holds the
    tables only and says so. Files are replaced atomically (no fsync: a report can be rewritten).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run} is not a folder")
    if not any((run / f).is_file() for f in ("history.json", "monitor.json", "model.safetensors",
                                               "best.safetensors")):
        raise FileNotFoundError(f"{run} holds none of history.json, monitor.json, model.safetensors, "
                                "best.safetensors: not a fastnn run folder (fastnn train --out DIR writes one)")
    out = run if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r = _read_run(run)
    figures = _figures(r, out)
    page = _html(r, figures)
    path = out / "report.html"
    write_atomic(path, page, fsync=False)
    return path


def png_data_uri(fig: Any, path: str | Path, dpi: int = 100) -> str:
    """Render ``fig`` as a PNG, write it to ``path`` (atomically, no fsync: a report can be redrawn)
    and return it as a ``data:image/png;base64,...`` URI for a self-contained HTML page (the run
    report here, the search report of :func:`fastnn.search.write_report`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # fastnn's figures carry their own Agg canvas
    data = buf.getvalue()
    write_atomic(path, data, fsync=False)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figures(r: _Run, out: Path) -> list[tuple[str, str, str, str]]:
    """Draw every figure the run's files allow: (key, title, caption, data URI); PNGs into ``out``."""
    if importlib.util.find_spec("matplotlib") is None:
        r.notes.append("figures: matplotlib is not installed (pip install 'fastnn[plot]')")
        return []
    from fastnn import plots

    figures: list[tuple[str, str, str, str]] = []
    h, mon = r.history, r.monitor

    def add(key: str, title: str, caption: str, draw: Any) -> None:
        try:
            fig = draw()
        except (ValueError, IndexError, KeyError, TypeError) as exc:  # files of a run being written
            r.notes.append(f"{title}: could not be drawn ({exc})")
            return
        figures.append((key, title, caption, png_data_uri(fig, out / FIGURES[key])))

    if h.batch_loss:
        add("loss", "Training loss per batch",
            "The loss of every training step against epochs, raw and smoothed (exponential moving average), "
            "on a linear and a log scale. A loss that drops fast and then plateaus high suggests too high a "
            "learning rate; a slow, almost linear decrease too low a rate; a very noisy curve too small a batch.",
            lambda: plots.loss_curve(h))
    if h.epoch:
        add("accuracy", "Accuracy and loss per epoch",
            "Training against validation accuracy: a large gap means overfitting (more regularisation), "
            "no gap with both low too little capacity.", lambda: plots.accuracy_curve(h))
    if mon is not None and len(mon.records):
        add("update_ratios", "Update:weight ratio per layer",
            f"|dW| / |W| of each Dense weight, every {mon.every} steps. The notes' rule of thumb is about "
            f"1e-3 (dashed); the shaded band is the monitor's healthy range {mon.ratio_band[0]:g}..."
            f"{mon.ratio_band[1]:g}. Far above: lower the learning rate; far below: raise it.",
            lambda: plots.update_ratios(mon, h))
        add("layer_stats", "Layer statistics over training",
            "Per nonlinearity: the std of its outputs, the fraction of dead ReLUs (zero for a whole batch) or "
            "saturated tanh/sigmoid units, and the std of the loss gradient flowing into it.",
            lambda: plots.layer_stats(mon, h))
    if r.model is not None and r.sample is not None:
        X, y = r.sample["X"], r.sample["y"]
        model, mpath = r.model, r.model_path

        def dist() -> Any:
            _, acts, grads = model.capture(X, y, train=True)
            names = (mon.layers if mon is not None and len(mon.layers) == len(acts)
                     else [f"{i} {type(lay).__name__}" for i, lay in enumerate(model.layers)])
            return plots.distributions(acts, grads, names)

        add("distributions", "Activation and gradient distributions per layer",
            f"Histograms of every layer's outputs and of the loss gradient with respect to them, for the "
            f"{len(X)} rows of sample.npz (training mode: batch statistics, dropout on) and the weights of "
            f"{mpath.name}. Outputs should keep a healthy spread with depth (not collapse to 0, not pile up "
            f"at the saturation limits); gradients should not vanish towards the first layers.", dist)
        shape = r.sample.get("image_shape")
        if shape is not None:
            shape_t = tuple(int(s) for s in np.asarray(shape).ravel())
            first = model.layers[0]
            W = model.params.get("0.weight") if type(first).__name__ == "Dense" else None
            if W is None:
                r.notes.append("weight tiles: the first layer is not Dense")
            elif len(shape_t) != 2 or shape_t[0] * shape_t[1] != W.shape[0]:
                r.notes.append(f"weight tiles: image_shape {shape_t} does not match the first layer's "
                               f"{W.shape[0]} inputs")
            else:
                units = min(W.shape[1], _MAX_TILES)
                add("weights", "First-layer weights",
                    f"Each hidden unit's weights over the {shape_t[0]}x{shape_t[1]} input pixels (first {units} "
                    f"of {W.shape[1]} units, from {mpath.name}). Smooth, structured templates are a good sign; "
                    "pure noise suggests too little training or too little regularisation.",
                    lambda: plots.weight_tiles(W, shape_t, max_units=_MAX_TILES))
    return figures


def _fmt(v: Any) -> str:
    """A number as the report's tables show it."""
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        return str(v)
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.3e}"
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"


def _number(v: Any) -> float:
    """A number of a JSON file; a missing one or ``null`` (how a non-finite number is written) is NaN."""
    return math.nan if v is None else float(v)


def _cell(v: Any, cls: str = "v") -> str:
    """A table cell; numbers carry their exact value in ``data-v`` (what the tests read back)."""
    if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
        return f"<td class='{cls}' data-v='{html.escape(repr(float(v)))}'>{html.escape(_fmt(v))}</td>"
    return f"<td>{html.escape(str(v))}</td>"


def _architecture(model: Any) -> str:
    parts = [str(model.input_dim)]
    for lay in model.layers:
        name = type(lay).__name__
        if hasattr(lay, "out_features"):
            parts.append(f"{name}({lay.out_features})")
        elif name == "Dropout":
            parts.append(f"Dropout({lay.p:g})")
        else:
            parts.append(name)
    return " → ".join(parts)


def _summary_rows(r: _Run) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    model = r.model
    extra = ((getattr(model, "checkpoint", None) or {}).get("extra") or {}) if model is not None else {}
    finished = (r.path / "model.safetensors").is_file()
    rows.append(("status", "finished" if finished else "in progress (or interrupted): no model.safetensors yet"))
    if finished and "test_accuracy" in extra:
        rows.append(("test accuracy", float(extra["test_accuracy"])))
    if model is not None:
        rows.append(("parameters", int(model.num_params())))
        rows.append(("architecture", _architecture(model)))
        rows.append(("loss", type(model.loss).__name__))
        rows.append(("dtype", str(np.dtype(model.dtype))))
    h = r.history
    if h.epoch:
        rows.append(("epochs completed", int(h.epoch[-1])))
    if h.batch_loss:
        rows.append(("training steps", len(h.batch_loss)))
    va = h.history.get("val_acc") or []
    finite = [v for v in va if math.isfinite(v)]
    if finite:
        best = max(finite)
        rows.append(("best validation accuracy", best))
        rows.append(("best validation accuracy at epoch", int(h.epoch[va.index(best)])))
    for k in [k for k in _METRICS if h.history.get(k)] + sorted(k for k in h.history if k not in _METRICS):
        if h.history[k]:
            rows.append((f"last epoch: {_METRIC_NAMES.get(k, k)}", float(h.history[k][-1])))
    if h.history.get("seconds"):
        rows.append(("training time (s)", float(np.sum(h.history["seconds"]))))
    for k, v in extra.items():
        if k != "test_accuracy":
            rows.append((k.replace("_", " "), v if isinstance(v, int | float) and not isinstance(v, bool) else str(v)))
    if r.monitor is not None:
        rows.append(("monitor records", f"{len(r.monitor.records)} (every {r.monitor.every} steps)"))
    return rows


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1250px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; }
td, th { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.v { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; margin-top: 0.3em; max-width: 60em; }
.pass { color: #262; font-weight: 600; } .fail { color: #b22; font-weight: 600; }
.note { color: #777; font-size: 0.9em; } pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def _html(r: _Run, figures: list[tuple[str, str, str, str]]) -> str:
    e = html.escape
    name = r.path.resolve().name
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>fastnn report: {e(name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Training report: {e(name)}</h1>",
             f"<p class='meta'>{e(str(r.path.resolve()))} &middot; written "
             f"{e(time.strftime('%Y-%m-%d %H:%M:%S'))} &middot; fastnn report</p>"]

    parts.append("<h2>Summary</h2><table id='summary'>")
    for k, v in _summary_rows(r):
        parts.append(f"<tr><th>{e(k)}</th>{_cell(v)}</tr>")
    parts.append("</table>")

    parts.append("<h2>Diagnoses</h2>")
    if r.monitor is None:
        parts.append("<p class='note'>No monitor.json: the run was not monitored (fastnn.monitor.Monitor).</p>")
    elif not r.monitor.diagnoses:
        parts.append("<p class='pass'>The monitor found none of the notes' symptoms.</p>")
    else:
        parts.append("<table id='diagnoses'><tr><th>epochs</th><th>symptom</th><th>where</th><th>finding (latest)"
                     "</th><th>advice</th></tr>")
        for d in r.monitor.diagnoses:  # one per (kind, where): first and latest epoch, count
            ep = f"{d.first_epoch}" if d.first_epoch == d.epoch else f"{d.first_epoch}–{d.epoch}"
            ep += f" ({d.count}×)" if d.count > 1 else ""
            parts.append(f"<tr><td>{e(ep)}</td><td class='fail'>{e(d.kind)}</td><td>{e(d.where or '–')}</td>"
                         f"<td>{e(d.message)}</td><td>{e(d.advice)}</td></tr>")
        parts.append("</table>")

    for key, title, caption, uri in figures:
        parts.append(f"<h2>{e(title)}</h2><figure><img id='{key}' alt='{e(title)}' src='{uri}'>"
                     f"<figcaption>{e(caption)}</figcaption></figure>")

    if r.gradcheck is not None:
        parts += _gradcheck_html(r.gradcheck)
    if r.sanity is not None:
        parts += _sanity_html(r.sanity)
    parts += _epochs_html(r.history)

    skipped = []
    if r.monitor is None:
        skipped.append("update ratios, layer statistics and diagnoses: no monitor.json")
    if r.model is None:
        skipped.append("distributions and weight tiles: no model.safetensors or best.safetensors")
    elif r.sample is None:
        skipped.append("distributions and weight tiles: no sample.npz")
    if not r.history.epoch:
        skipped.append("loss and accuracy curves: no epoch finished yet (history.json)")
    if r.gradcheck is None:
        skipped.append("gradient check: no gradcheck.json (fastnn gradcheck --model RUN/model.safetensors)")
    if r.sanity is None:
        skipped.append("sanity checks: no sanity.json (fastnn sanity --model RUN/model.safetensors)")
    if skipped or r.notes:
        parts.append("<h2>Not shown</h2><ul class='note' id='notes'>")
        parts += [f"<li>{e(s)}</li>" for s in skipped + r.notes]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _verdict(passed: bool) -> str:
    return "<span class='pass'>PASSED</span>" if passed else "<span class='fail'>FAILED</span>"


def _gradcheck_html(g: dict[str, Any]) -> list[str]:
    e = html.escape
    meta = g.get("meta") or {}
    what = ", ".join(f"{k} {v}" for k, v in meta.items())
    out = [f"<h2>Gradient check: {_verdict(bool(g.get('passed')))}</h2>",
           f"<p>float64 centred differences, h = {e(_fmt(g.get('h')))}, component {e(str(g.get('component')))}, "
           f"{e(str(g.get('mode')))} mode{'; ' + e(what) if what else ''}; written {e(str(g.get('written', '?')))}."
           "</p>",
           "<table id='gradcheck'><tr><th>tensor</th><th>shape</th><th>checked</th><th>max rel. error</th>"
           "<th>kinks</th><th>tiny</th><th>noise</th><th>verdict</th></tr>"]
    for t in g.get("tensors", []):
        out.append(f"<tr><td>{e(str(t.get('name')))}</td><td>{e(str(tuple(t.get('shape', ()))))}</td>"
                   f"{_cell(int(t.get('checked', 0)))}{_cell(_number(t.get('max_rel_error')))}"
                   f"{_cell(int(t.get('kinks', 0)))}{_cell(int(t.get('tiny', 0)))}{_cell(int(t.get('noise', 0)))}"
                   f"<td class='{'pass' if t.get('passed') else 'fail'}'>{e(str(t.get('verdict')))}</td></tr>")
    out.append("</table>")
    return out


def _sanity_html(s: dict[str, Any]) -> list[str]:
    e = html.escape
    out = [f"<h2>Sanity checks: {_verdict(bool(s.get('passed')))}</h2>",
           f"<p class='note'>written {e(str(s.get('written', '?')))}</p>",
           "<table id='sanity'><tr><th>check</th><th>result</th><th>expected</th><th>actual</th><th>advice</th></tr>"]
    for c in s.get("checks", []):
        ok = bool(c.get("passed"))
        out.append(f"<tr><td>{e(str(c.get('name')))}</td><td class='{'pass' if ok else 'fail'}'>"
                   f"{'PASS' if ok else 'FAIL'}</td><td>{e(str(c.get('expected')))}</td>"
                   f"<td>{e(str(c.get('actual')))}</td><td>{e(str(c.get('advice') or ''))}</td></tr>")
    out.append("</table>")
    return out


def _epochs_html(h: Any) -> list[str]:
    if not h.epoch:
        return []
    keys = [k for k in _METRICS if k in h.history] + sorted(k for k in h.history if k not in _METRICS)
    out = ["<h2>Per epoch</h2><table id='epochs'><tr><th>epoch</th>"
           + "".join(f"<th title='{html.escape(_METRIC_NAMES.get(k, k))}'>{html.escape(k)}</th>" for k in keys)
           + "</tr>"]
    for i, ep in enumerate(h.epoch):
        cells = "".join(_cell(h.history[k][i]) if i < len(h.history[k]) else "<td></td>" for k in keys)
        out.append(f"<tr>{_cell(int(ep))}{cells}</tr>")
    out.append("</table>")
    return out
