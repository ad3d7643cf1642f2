"""fastnn.plots: every figure is checked against the numbers a short real training run recorded --
the figures must draw exactly those (read back from the Line2D / patch / image artists), on the
axes the docstrings promise, from the live objects and from their JSON dicts alike.

(The report and the `fastnn report` / `gradcheck` / `sanity` commands: tests/test_report.py.)
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="fastnn.plots draws with matplotlib (extra [plot])")

import fastnn  # noqa: E402
from fastnn import Dense, ReLU, Sequential, Tanh, plots  # noqa: E402
from fastnn.callbacks import History  # noqa: E402
from fastnn.monitor import Monitor  # noqa: E402

EPOCHS, N, BATCH = 3, 240, 40
STEPS = N // BATCH


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, N)
    X = (rng.standard_normal((N, 16)) + 2.0 * np.eye(3, 16)[y]).astype(np.float32)
    return X, y


def _model() -> Sequential:
    # a ReLU layer (dead units) and a tanh layer (saturated units)
    return Sequential([Dense(16, 12), ReLU(), Dense(12, 8), Tanh(), Dense(8, 3)], seed=0)


@pytest.fixture(scope="module")
def run():
    """A short real training run with a Monitor recording every step."""
    X, y = _data()
    model = _model()
    mon = Monitor(every=1, warn=False)
    trainer = fastnn.Trainer(model, fastnn.optim.Adam(lr=0.05), callbacks=[mon], progress=False)
    hist = trainer.fit(X[:200], y[:200], epochs=EPOCHS, batch_size=BATCH, validation_data=(X[200:], y[200:]))
    assert len(mon.steps) == EPOCHS * -(-200 // BATCH)
    assert mon.diagnoses, "the run should give the report some diagnoses to list"
    return model, mon, hist, X, y


def _lines_by_gid(ax):
    return {ln.get_gid(): ln for ln in ax.lines if ln.get_gid() is not None}


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------
def test_smooth_is_a_bias_corrected_ema():
    _same(plots.smooth([1.0, 2.0, 3.0], 0.0), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(plots.smooth([1.0, 2.0, 3.0], 0.5), [1.0, 2.0 / 1.2 * 1.0, 2.125 / 0.875])
    out = plots.smooth([1.0, np.nan, 3.0], 0.5)
    assert np.isnan(out[1]) and out[0] == 1.0 and out[2] == pytest.approx((0.25 + 1.5) / 0.75)
    with pytest.raises(ValueError):
        plots.smooth([1.0], 1.0)


def test_loss_curve_draws_every_batch_loss_against_epochs(run):
    _, _, hist, _, _ = run
    for h in (hist, hist.to_dict()):  # a History or history.json's dict
        fig = plots.loss_curve(h, smoothing=0.6)
        lin, log = fig.axes
        for ax in (lin, log):
            raw, smoothed = ax.lines[:2]
            _same(raw.get_xdata(), hist.batch_epoch)
            _same(raw.get_ydata(), hist.batch_loss)
            _same(smoothed.get_xdata(), hist.batch_epoch)
            _same(smoothed.get_ydata(), plots.smooth(hist.batch_loss, 0.6))
            assert ax.get_xlabel() == "epoch" and ax.get_title() and ax.get_legend() is not None
        assert lin.get_yscale() == "linear" and log.get_yscale() == "log"
    assert max(hist.batch_epoch) == EPOCHS  # the x axis is in epochs, not iterations
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    assert isinstance(fig.canvas, FigureCanvasAgg)


def test_accuracy_curve_draws_the_per_epoch_metrics(run):
    _, _, hist, _, _ = run
    fig = plots.accuracy_curve(hist)
    acc, loss = fig.axes
    lines = _lines_by_gid(acc)
    assert list(lines) == ["train_acc", "val_acc"]
    for k, ln in lines.items():
        _same(ln.get_xdata(), hist.epoch)
        _same(ln.get_ydata(), hist.history[k])
    lines = _lines_by_gid(loss)
    assert list(lines) == ["train_loss", "val_loss", "loss"]
    for k, ln in lines.items():
        _same(ln.get_xdata(), hist.epoch)
        _same(ln.get_ydata(), hist.history[k])
    assert [t.get_text() for t in acc.get_legend().get_texts()] == ["train", "validation"]
    # a regression run has no accuracies: one panel of losses
    reg = History.from_dict({"epoch": [1, 2], "history": {"loss": [2.0, 1.0], "val_loss": [2.5, 1.5]}})
    fig = plots.accuracy_curve(reg)
    assert len(fig.axes) == 1 and list(_lines_by_gid(fig.axes[0])) == ["val_loss", "loss"]


def test_record_epochs_match_the_history_batch_positions(run):
    _, mon, hist, _, _ = run
    # every=1: record i is step i, at the same place in epochs as batch_loss[i]
    _same(plots.record_epochs(mon, hist), hist.batch_epoch)
    _same(plots.record_epochs(mon), hist.batch_epoch)  # the monitor knows its steps per epoch
    _same(plots.record_epochs(mon.to_dict(), hist.to_dict()), hist.batch_epoch)


def test_record_epochs_with_sparse_records():
    X, y = _data(1)
    model = _model()
    mon = Monitor(every=4, warn=False)
    hist = fastnn.Trainer(model, "adam", callbacks=[mon], progress=False).fit(X, y, epochs=3, batch_size=BATCH)
    steps = mon.steps.astype(int)
    _same(steps, np.arange(0, 3 * STEPS, 4))
    assert mon.losses.tolist() == [hist.batch_loss[s] for s in steps]  # record at step s = batch s
    _same(plots.record_epochs(mon, hist), np.asarray(hist.batch_epoch)[steps])
    # the monitor records its steps per epoch and first step: exact without the history too
    assert (mon.steps_per_epoch, mon.first_step) == (STEPS, 0)
    _same(plots.record_epochs(mon), np.asarray(hist.batch_epoch)[steps])
    _same(plots.record_epochs(mon.to_dict()), np.asarray(hist.batch_epoch)[steps])
    # an older monitor.json without them: from the history, else estimated from the spacing across epochs
    old = {k: v for k, v in mon.to_dict().items() if k not in ("steps_per_epoch", "first_step")}
    _same(plots.record_epochs(old, hist), np.asarray(hist.batch_epoch)[steps])
    np.testing.assert_allclose(plots.record_epochs(old), np.asarray(hist.batch_epoch)[steps], atol=4 / STEPS)


def test_update_ratios_draw_each_dense_weight_against_the_band(run):
    _, mon, hist, _, _ = run
    for m, h in ((mon, hist), (mon.to_dict(), hist.to_dict())):  # live objects or monitor.json / history.json
        fig = plots.update_ratios(m, h)
        (ax,) = fig.axes
        dense = ["0.weight", "2.weight", "4.weight"]
        assert [ln.get_label().split()[0] for ln in ax.lines[:3]] == dense
        for ln, t in zip(ax.lines[:3], dense, strict=True):
            _same(ln.get_xdata(), hist.batch_epoch)
            _same(ln.get_ydata(), mon.update_ratio(t))
            # the ratio is the recorded update norm over the recorded weight norm
            _same(ln.get_ydata(), mon.tensor_stat(t, "update_norm") / mon.tensor_stat(t, "weight_norm"))
    assert ax.get_yscale() == "log"
    target = ax.lines[3]
    _same(target.get_ydata(), [1e-3, 1e-3])
    (band,) = ax.patches
    if hasattr(band, "get_height"):  # a Rectangle (matplotlib >= 3.9), y in data coordinates
        lo, hi = band.get_y(), band.get_y() + band.get_height()
    else:  # a Polygon
        lo, hi = band.get_xy()[:, 1].min(), band.get_xy()[:, 1].max()
    assert lo == pytest.approx(1e-4) and hi == pytest.approx(1e-2)
    assert ax.get_xlabel() == "epoch"


def test_layer_stats_draw_std_dead_saturated_and_gradient_std(run):
    _, mon, hist, _, _ = run
    for m, h in ((mon.to_dict(), hist.to_dict()), (mon, hist)):
        fig = plots.layer_stats(m, h)
        std, frac, grad = fig.axes
        for ax, field in ((std, "act_std"), (grad, "grad_std")):
            lines = _lines_by_gid(ax)
            assert list(lines) == ["1", "3"]  # the nonlinearities by default
            for i, ln in lines.items():
                _same(ln.get_xdata(), hist.batch_epoch)
                _same(ln.get_ydata(), mon.layer_stat(int(i), field))
    lines = _lines_by_gid(frac)
    _same(lines["1"].get_ydata(), mon.layer_stat(1, "frac_dead"))  # ReLU: dead units
    _same(lines["3"].get_ydata(), mon.layer_stat(3, "frac_saturated"))  # tanh: saturated units
    assert "dead" in lines["1"].get_label() and "saturated" in lines["3"].get_label()
    assert grad.get_yscale() == "log"
    fig = plots.layer_stats(mon, hist, layers=range(5))
    assert list(_lines_by_gid(fig.axes[0])) == ["0", "1", "2", "3", "4"]
    assert list(_lines_by_gid(fig.axes[1])) == ["1", "3"]


def test_distributions_histogram_each_layer_output_and_gradient(run):
    model, mon, _, X, y = run
    _, acts, grads = model.capture(X[:64], y[:64])
    fig = plots.distributions(acts, grads, mon.layers, bins=20, max_cols=3)
    assert len(fig.axes) == 2 * len(acts)
    for j in range(len(acts)):
        for ax, values in ((fig.axes[j], acts[j]), (fig.axes[len(acts) + j], grads[j])):
            counts, edges = np.histogram(np.asarray(values, dtype=np.float64).ravel(), bins=20)
            (patch,) = ax.patches
            got_counts, got_edges, _ = patch.get_data()
            _same(got_counts, counts)
            _same(got_edges, edges)
            assert mon.layers[j] in ax.get_title()
        assert fig.axes[len(acts) + j].get_yscale() == "log"
    assert len(plots.distributions(acts, None, mon.layers).axes) == len(acts)
    with pytest.raises(ValueError, match="one of each"):
        plots.distributions(acts, grads, mon.layers[:2])


def test_weight_tiles_show_each_unit_as_an_image(run):
    model, _, _, _, _ = run
    W = model.params["0.weight"]  # (16 inputs, 12 units): 4x4 images
    fig = plots.weight_tiles(W, (4, 4))
    (ax,) = [a for a in fig.axes if a.images]
    mosaic = ax.images[0].get_array()
    cols = 4  # ceil(sqrt(12))
    for j in range(W.shape[1]):
        r, c = divmod(j, cols)
        tile = mosaic[1 + r * 5:1 + r * 5 + 4, 1 + c * 5:1 + c * 5 + 4]
        _same(tile, W[:, j].reshape(4, 4))
    assert mosaic.mask[0].all()  # borders are masked
    lim = float(np.abs(W).max())
    assert ax.images[0].get_clim() == pytest.approx((-lim, lim))
    # only the first 5 units: a 3x2 mosaic, the sixth tile left empty (masked)
    part = plots.weight_tiles(W, (4, 4), max_units=5).axes[0].images[0].get_array()
    assert part.shape == (2 * 5 + 1, 3 * 5 + 1)
    _same(part[6:10, 6:10], W[:, 4].reshape(4, 4))
    assert part.mask[6:10, 11:15].all()
    with pytest.raises(ValueError, match="pixels"):
        plots.weight_tiles(W, (8, 8))


def test_save_writes_a_png(run, tmp_path):
    _, _, hist, _, _ = run
    path = plots.save(plots.accuracy_curve(hist), tmp_path / "acc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_says_how_to_install_it(monkeypatch, run):
    _, _, hist, _, _ = run
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[plot\]'"):
        plots.loss_curve(hist)


def test_plots_leave_pyplot_alone(tmp_path):
    """The figures carry their own Agg canvas: drawing and saving every one never imports pyplot
    (no global figure registry, no GUI backend)."""
    code = f"""
import sys, numpy as np, fastnn
from fastnn import plots
from fastnn.monitor import Monitor
rng = np.random.default_rng(0)
X, y = rng.standard_normal((64, 16)).astype(np.float32), rng.integers(0, 3, 64)
m = fastnn.MLP(16, [8], 3, seed=0)
mon = Monitor(every=1, warn=False)
h = fastnn.Trainer(m, "adam", callbacks=[mon], progress=False).fit(X, y, epochs=2, batch_size=16,
                                                                       validation_data=(X, y))
_, acts, grads = m.capture(X, y)
figs = [plots.loss_curve(h), plots.accuracy_curve(h), plots.update_ratios(mon, h), plots.layer_stats(mon, h),
        plots.distributions(acts, grads, mon.layers), plots.weight_tiles(m.params["0.weight"], (4, 4))]
for i, f in enumerate(figs):
    plots.save(f, {str(tmp_path)!r} + f"/{{i}}.png")
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"{i}.png" for i in range(6)]
