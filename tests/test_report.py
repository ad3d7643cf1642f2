"""fastnn.report and the `fastnn report` / `gradcheck` / `sanity` commands.

A short real `fastnn train` run (through fastnn.cli.main) is reported on; the report must be one
self-contained page whose images are the PNGs written beside it and whose tables hold exactly the
recorded numbers. Reports of running (partial) runs, the search dispatch, and the exit codes of the
check commands are tested too.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the report draws with matplotlib (extra [plot])")
pytest.importorskip("sklearn", reason="fastnn train's default data is scikit-learn's bundled digits")
pytest.importorskip("safetensors", reason="fastnn train writes safetensors checkpoints (extra [io])")

import fastnn  # noqa: E402
from fastnn import report as R  # noqa: E402
from fastnn.callbacks import Callback, History  # noqa: E402
from fastnn.cli import _run_files_callback, main  # noqa: E402
from fastnn.monitor import Monitor  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
ALL_FIGURES = ["loss", "accuracy", "update_ratios", "layer_stats", "distributions", "weights"]


def cli(*args: str) -> tuple[int, str]:
    """Run `fastnn ARGS` in this process; (exit code, stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(list(args))
    return code, buf.getvalue()


class _Page(HTMLParser):
    """The report's images (id -> src), tables (id -> rows of cells as (text, data-v)), links and
    scripts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: dict[str, str] = {}
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.external: list[str] = []
        self._table: str | None = None
        self._cell: list | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images[a.get("id", "")] = a["src"]
        if tag in ("script", "link", "iframe") or ("href" in a) or (tag != "img" and "src" in a):
            self.external.append(tag)
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = ["", a.get("data-v")]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append((self._cell[0], self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = None


def _rows(page: _Page, table: str) -> dict[str, tuple[str, str | None]]:
    """A two-column table (header, value) as {header: (text, data-v)}."""
    return {r[0][0]: r[1] for r in page.tables[table] if len(r) == 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`fastnn train` (3 epochs on digits), then `fastnn gradcheck` and `fastnn sanity` on its model,
    then `fastnn report`."""
    run = tmp_path_factory.mktemp("runs") / "run"
    code, out = cli("train", "--epochs", "3", "--out", str(run), "--threads", "1", "--quiet")
    assert code == 0, out
    test_acc = float(out.split("test accuracy")[1].split()[0])
    checks = {}
    for command in ("gradcheck", "sanity"):
        code, out = cli(command, "--model", str(run / "model.safetensors"), "--threads", "1")
        checks[command] = (code, out)
    code, out = cli("report", str(run))
    assert code == 0
    return run, Path(out.strip()), test_acc, checks


# ------------------------------------------------------------------------------------------------
# the run folder fastnn train writes
# ------------------------------------------------------------------------------------------------
def test_train_writes_history_monitor_and_a_sample(trained):
    run, _, _, _ = trained
    hist = json.loads((run / "history.json").read_text())
    mon = json.loads((run / "monitor.json").read_text())
    assert hist["epoch"] == [1, 2, 3] and len(hist["batch_loss"]) == len(hist["batch_epoch"]) > 0
    assert mon["every"] == 10 and set(mon["epoch_of_record"]) == {1, 2, 3}
    # a record every 10 steps, at the same loss the history has for that step
    steps = [int(r[0]) for r in mon["records"]]
    assert steps == list(range(0, len(hist["batch_loss"]), 10))
    np.testing.assert_allclose([r[1] for r in mon["records"]], [hist["batch_loss"][s] for s in steps], rtol=1e-6)
    with np.load(run / "sample.npz") as s:
        assert s["X"].shape == (64, 64) and s["y"].shape == (64,) and s["image_shape"].tolist() == [8, 8]
        assert set(np.unique(s["y"])) <= set(range(10))
        assert abs(float(s["X"].mean())) < 0.3  # preprocessed rows, not raw pixels (0..16)
    assert not list(run.glob(".*.tmp*"))  # every temporary file was renamed away


# ------------------------------------------------------------------------------------------------
# the report of a finished run
# ------------------------------------------------------------------------------------------------
def test_report_is_self_contained_and_embeds_the_pngs(trained):
    run, path, _, _ = trained
    assert path == run / "report.html"
    text = path.read_text(encoding="utf-8")
    page = _Page(text)
    assert list(page.images) == ALL_FIGURES
    for key, src in page.images.items():
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data[:8] == PNG
        assert data == (run / R.FIGURES[key]).read_bytes()  # the PNG beside it, byte for byte
    assert page.external == []  # no scripts, stylesheets, links or other fetched resources
    assert not re.search(r"(src|href)\s*=\s*['\"](?!data:)", text)


def test_report_tables_hold_the_recorded_numbers(trained):
    run, path, test_acc, _ = trained
    page = _Page(path.read_text(encoding="utf-8"))
    hist = History.from_dict(json.loads((run / "history.json").read_text()))
    model = fastnn.load(run / "model.safetensors")

    summary = _rows(page, "summary")
    assert summary["status"][0] == "finished"
    assert float(summary["test accuracy"][1]) == model.checkpoint["extra"]["test_accuracy"]
    assert summary["test accuracy"][0] == f"{test_acc:.4f}"  # what fastnn train printed
    assert float(summary["parameters"][1]) == model.num_params() == 51594
    assert float(summary["epochs completed"][1]) == 3 and float(summary["training steps"][1]) == len(hist.batch_loss)
    best = max(hist.history["val_acc"])
    assert float(summary["best validation accuracy"][1]) == best
    assert float(summary["last epoch: validation accuracy"][1]) == hist.history["val_acc"][-1]
    assert summary["last epoch: validation accuracy"][0] == f"{hist.history['val_acc'][-1]:.4f}"

    rows = page.tables["epochs"]
    header = [c[0] for c in rows[0]]
    assert header[0] == "epoch" and {"loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(header)
    assert len(rows) == 1 + len(hist.epoch)
    for i, row in enumerate(rows[1:]):
        assert float(row[0][1]) == hist.epoch[i]
        for key, (shown, exact) in zip(header[1:], row[1:], strict=True):
            assert float(exact) == hist.history[key][i]  # exactly the recorded value
            assert shown == R._fmt(hist.history[key][i])


def test_report_lists_the_monitor_diagnoses(trained):
    run, path, _, _ = trained
    page = _Page(path.read_text(encoding="utf-8"))
    mon = Monitor.from_dict(json.loads((run / "monitor.json").read_text()))
    assert mon.diagnoses, "3 epochs of adam at lr 3e-3 on digits: the update ratios start high"
    groups = {}
    for d in mon.diagnoses:
        groups[(d.kind, d.where)] = d  # the latest of each kind and place
    rows = page.tables["diagnoses"][1:]
    assert [(r[1][0], r[2][0]) for r in rows] == [(k, w or "–") for k, w in groups]
    for r, d in zip(rows, groups.values(), strict=True):
        assert r[3][0] == d.message and r[4][0] == d.advice


def test_report_shows_gradcheck_and_sanity_results_of_the_run(trained):
    run, path, _, checks = trained
    for command in ("gradcheck", "sanity"):
        code, out = checks[command]
        assert code == 0, out
        assert "PASSED" in out and f"wrote {run.resolve() / (command + '.json')}" in out
    page = _Page(path.read_text(encoding="utf-8"))
    g = json.loads((run / "gradcheck.json").read_text())
    assert g["passed"] and g["meta"]["model"] == str(run / "model.safetensors")
    rows = page.tables["gradcheck"][1:]
    model = fastnn.load(run / "model.safetensors")
    assert [r[0][0] for r in rows] == list(model.params)  # every parameter tensor
    for r, t in zip(rows, g["tensors"], strict=True):
        assert float(r[2][1]) == t["checked"] and float(r[3][1]) == t["max_rel_error"]
        assert r[7][0] == t["verdict"]
    s = json.loads((run / "sanity.json").read_text())
    rows = page.tables["sanity"][1:]
    assert [(r[0][0], r[1][0], r[3][0]) for r in rows] == [(c["name"], "PASS", c["actual"]) for c in s["checks"]]


def test_report_into_another_folder(trained, tmp_path):
    run, _, _, _ = trained
    code, out = cli("report", str(run), "--out", str(tmp_path / "rep"))
    assert code == 0 and Path(out.strip()) == tmp_path / "rep" / "report.html"
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == sorted(["report.html", *R.FIGURES.values()])


# ------------------------------------------------------------------------------------------------
# running, partial and foreign folders
# ------------------------------------------------------------------------------------------------
def test_report_of_a_run_with_only_its_history(trained, tmp_path):
    run, _, _, _ = trained
    (tmp_path / "history.json").write_bytes((run / "history.json").read_bytes())
    path = R.write_run_report(tmp_path)
    page = _Page(path.read_text(encoding="utf-8"))
    assert list(page.images) == ["loss", "accuracy"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["accuracy.png", "loss_curve.png"]
    assert _rows(page, "summary")["status"][0].startswith("in progress")
    notes = " ".join(c[0] for r in page.tables.get("notes", []) for c in r) + path.read_text()
    assert "no monitor.json" in notes and "no model.safetensors" in notes


def test_report_survives_a_partially_written_run(trained, tmp_path):
    """A truncated monitor.json (an interrupted writer), a history still at epoch 2 and a best
    checkpoint but no final model: the report shows what it can and names what it could not read."""
    run, _, _, _ = trained
    hist = json.loads((run / "history.json").read_text())
    cut = {"epoch": hist["epoch"][:2], "history": {k: v[:2] for k, v in hist["history"].items()},
           "batch_loss": hist["batch_loss"][:38], "batch_epoch": hist["batch_epoch"][:38]}
    (tmp_path / "history.json").write_text(json.dumps(cut))
    (tmp_path / "monitor.json").write_text((run / "monitor.json").read_text()[:500])
    for f in ("best.safetensors", "sample.npz"):
        (tmp_path / f).write_bytes((run / f).read_bytes())
    text = R.write_run_report(tmp_path).read_text(encoding="utf-8")
    page = _Page(text)
    assert list(page.images) == ["loss", "accuracy", "distributions", "weights"]  # from best.safetensors
    assert "monitor.json could not be read" in text
    assert float(_rows(page, "summary")["epochs completed"][1]) == 2
    assert len(page.tables["epochs"]) == 3


def test_report_while_training(tmp_path):
    """The callback `fastnn train` attaches rewrites history.json and monitor.json after every epoch;
    a report written from inside the training (as a second process would) sees the epochs so far."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 240)
    X = (rng.standard_normal((240, 16)) + 2.0 * np.eye(3, 16)[y]).astype(np.float32)
    seen = []

    class ReportMidway(Callback):
        def on_epoch_end(self, epoch, logs=None):
            hist = json.loads((tmp_path / "history.json").read_text())
            mon = json.loads((tmp_path / "monitor.json").read_text())
            seen.append((hist["epoch"], sorted(set(mon["epoch_of_record"]))))
            if epoch == 1:
                seen.append(R.report(tmp_path).read_text(encoding="utf-8"))

    mon = Monitor(every=2, warn=False)
    cbs = [mon, _run_files_callback(tmp_path, mon, verbose=False), ReportMidway()]
    fastnn.Trainer(fastnn.MLP(16, [12], 3, seed=0), "adam", callbacks=cbs, progress=False).fit(
        X, y, epochs=3, batch_size=40)
    assert seen[0] == ([1], [1]) and seen[1] == ([1, 2], [1, 2]) and seen[3] == ([1, 2, 3], [1, 2, 3])
    page = _Page(seen[2])
    assert float(_rows(page, "summary")["epochs completed"][1]) == 2
    assert list(page.images) == ["loss", "accuracy", "update_ratios", "layer_stats"]  # no model or sample yet
    assert not list(tmp_path.glob(".*.tmp*"))


def test_not_a_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a fastnn run folder"):
        R.write_run_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        R.report(tmp_path / "nowhere")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli("report", str(tmp_path))[0] == 2
    assert "fastnn report: error:" in err.getvalue() and "not a fastnn run folder" in err.getvalue()
    assert not (tmp_path / "report.html").exists()


def test_report_without_matplotlib_keeps_the_tables(trained, tmp_path, monkeypatch):
    run, _, _, _ = trained
    (tmp_path / "history.json").write_bytes((run / "history.json").read_bytes())
    monkeypatch.setattr(R.importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else 1)
    text = R.write_run_report(tmp_path).read_text(encoding="utf-8")
    assert "pip install &#x27;fastnn[plot]&#x27;" in text and not _Page(text).images
    assert len(_Page(text).tables["epochs"]) == 4


def test_search_folders_go_to_fastnn_search(tmp_path, monkeypatch):
    (tmp_path / "trials.jsonl").write_text("{}\n")
    calls = []

    def write_report(run_dir, out_dir=None):
        calls.append((run_dir, out_dir))
        return run_dir / "search.html"

    monkeypatch.setitem(sys.modules, "fastnn.search", types.SimpleNamespace(write_report=write_report))
    assert R.report(tmp_path, tmp_path / "o") == tmp_path / "search.html"
    assert calls == [(tmp_path, tmp_path / "o")]
    monkeypatch.setitem(sys.modules, "fastnn.search", None)  # not importable
    with pytest.raises(ImportError, match="hyperparameter-search folder.*fastnn.search.write_report"):
        R.report(tmp_path)


# ------------------------------------------------------------------------------------------------
# fastnn gradcheck / fastnn sanity
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command,args", [("gradcheck", ["--samples", "4", "--coords", "3"]), ("sanity", [])])
def test_checks_of_the_default_model_pass(command, args):
    code, out = cli(command, *args, "--threads", "1")
    assert code == 0, out
    assert "fastnn.MLP(64, [32], 10, batchnorm=True, seed=0) on scikit-learn digits" in out and "PASSED" in out
    assert "wrote" not in out  # no run folder to write into


def test_gradcheck_fails_with_exit_code_1(trained, tmp_path):
    """A finite-difference step far too large (h = 0.5) makes the numerical gradient wrong: the
    check must fail, say so, and exit 1; --no-save leaves the run folder's passing result alone."""
    run, _, _, _ = trained
    before = (run / "gradcheck.json").read_bytes()
    code, out = cli("gradcheck", "--model", str(run / "model.safetensors"), "--h", "0.5", "--no-save",
                    "--threads", "1")
    assert code == 1 and "FAILED" in out and "<-- FAIL" in out and "probably wrong" in out
    assert (run / "gradcheck.json").read_bytes() == before


def test_check_commands_reject_bad_input(trained, tmp_path):
    run, _, _, _ = trained
    np.savez(tmp_path / "d.npz", X=np.zeros((30, 5)), y=np.arange(30) % 3)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli("sanity", "--model", str(run / "model.safetensors"), "--data", str(tmp_path / "d.npz"))[0] == 2
        assert cli("gradcheck", "--model", str(tmp_path / "missing.safetensors"))[0] == 2
        assert cli("gradcheck", "--h", "-1")[0] == 2
    text = err.getvalue()
    assert "takes 64 input features" in text and "missing.safetensors" in text and "--h must be positive" in text


def test_image_inputs_from_an_npz_get_weight_tiles(tmp_path):
    """An .npz whose X holds images (N, height, width): fastnn train records the image shape in
    sample.npz, and the report draws the first layer's weights as tiles of that shape."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = rng.standard_normal((300, 4, 6)) + 2.0 * np.eye(3, 24)[y].reshape(300, 4, 6)
    np.savez(tmp_path / "img.npz", X=X, y=y)
    np.savez(tmp_path / "flat.npz", X=X.reshape(300, 24), y=y)
    from fastnn.cli import _image_shape

    assert _image_shape(str(tmp_path / "img.npz")) == (4, 6) and _image_shape(None) == (8, 8)
    assert _image_shape(str(tmp_path / "flat.npz")) is None and _image_shape("d.csv") is None
    run = tmp_path / "run"
    code, out = cli("train", "--data", str(tmp_path / "img.npz"), "--hidden", "16", "--epochs", "2", "--out", str(run),
                    "--threads", "1", "--quiet")
    assert code == 0, out
    with np.load(run / "sample.npz") as s:
        assert s["image_shape"].tolist() == [4, 6] and s["X"].shape[1] == 24
    page = _Page(R.write_run_report(run).read_text(encoding="utf-8"))
    assert "weights" in page.images and "distributions" in page.images
