"""The documentation cannot rot: the Sphinx build (API reference from the docstrings, the user guide
with its figures generated from short runs on digits, the migration pages, the C++ page, the CLI
help) must pass with warnings as errors; every example in a docstring must run and print what it
says; every public symbol must have a docstring that names its parameters; every public module must
have its page in the API reference.

The build needs Sphinx and furo (the ``docs`` and ``test`` extras); it is skipped only when they
are missing.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import fastnn
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# not API: the console script's module (its usage is docs/cli.rst) and ``python -m fastnn``
NOT_API = {"cli", "__main__"}


def public_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(fastnn.__path__) if not m.name.startswith("_")
                  and m.name not in NOT_API)


def test_docs_build_with_warnings_as_errors(tmp_path):
    pytest.importorskip("sphinx", reason="building the docs needs Sphinx (pip install '.[docs]')")
    pytest.importorskip("furo", reason="building the docs needs the furo theme (pip install '.[docs]')")
    out = tmp_path / "html"
    # FASTNN_DOCS_SMALL: the guide's scripts run on their tiny settings (same pages, quicker)
    env = {**os.environ, "FASTNN_DOCS_SMALL": "1", "FASTNN_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
                           str(DOCS), str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    # the pages exist, the API reference documents the code, and the guide shows its figures
    for page in ("index", "guide/recipe", "guide/preprocessing", "guide/augmentation", "guide/symptoms",
                 "migration/cs231n", "migration/sklearn", "migration/pytorch", "cpp", "cli", "api/index"):
        assert (out / f"{page}.html").is_file(), page
    model = (out / "api" / "model.html").read_text(encoding="utf-8")
    assert "train_step" in model and "predict_proba" in model
    recipe = (out / "guide" / "recipe.html").read_text(encoding="utf-8")
    for figure in ("loss_curve", "accuracy_curve", "update_ratios", "layer_stats", "distributions", "weight_tiles"):
        assert f"{figure}.png" in recipe, figure
        assert (out / "_images" / f"{figure}.png").stat().st_size > 1000, figure
    assert "gradient check (centred differences" in recipe       # printed by the script, shown in the guide
    for page, figure, printed in (("preprocessing", "pca", "LeakageWarning"),
                                  ("augmentation", "augmented", "with test-time augmentation")):
        html = (out / "guide" / f"{page}.html").read_text(encoding="utf-8")
        assert f"{figure}.png" in html and printed in html, page
        assert (out / "_images" / f"{figure}.png").stat().st_size > 1000, figure
    cli = (out / "cli.html").read_text(encoding="utf-8")
    assert "--batch-size" in cli                                   # generated from the parser itself


def test_every_public_module_has_an_api_page():
    index = (DOCS / "api" / "index.rst").read_text(encoding="utf-8")
    for name in public_modules():
        page = DOCS / "api" / f"{name}.rst"
        assert page.is_file(), f"docs/api/{name}.rst is missing: add a page with '.. automodule:: fastnn.{name}'"
        assert f".. automodule:: fastnn.{name}" in page.read_text(encoding="utf-8"), name
        assert re.search(rf"^\s+{re.escape(name)}$", index, re.M), f"docs/api/index.rst does not list {name}"


def _documented(module: str):
    mod = importlib.import_module(f"fastnn.{module}" if module != "fastnn" else "fastnn")
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield f"{mod.__name__}.{name}", obj


@pytest.mark.parametrize("module", ["fastnn", *public_modules()])
def test_every_public_symbol_is_documented(module):
    """Each class and function in ``__all__`` has its own docstring (not the one dataclasses write),
    naming every parameter; each public method and property has one (possibly inherited)."""
    problems = []
    for qualname, obj in _documented(module):
        doc = obj.__doc__ or ""
        if not doc.strip() or (inspect.isclass(obj) and doc.startswith(obj.__name__ + "(")):
            problems.append(f"{qualname}: no docstring")
            continue
        try:
            params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
        except (TypeError, ValueError):
            params = []
        missing = [p for p in params if not p.startswith("_") and not re.search(rf"\b{re.escape(p)}\b", doc)]
        if missing:
            problems.append(f"{qualname}: the docstring does not name the parameters {missing}")
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(value, property) and not value.__doc__:
                    problems.append(f"{qualname}.{attr}: property without a docstring")
                elif inspect.isfunction(value) and not inspect.getdoc(getattr(obj, attr)):
                    problems.append(f"{qualname}.{attr}: method without a docstring")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module", ["fastnn", *public_modules()])
def test_docstring_examples_run(module):
    """The ``>>>`` examples in the docstrings (rendered in the API reference) print what they show."""
    mod = importlib.import_module(f"fastnn.{module}" if module != "fastnn" else "fastnn")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    # as ``python -m doctest``: the module's own names, plus ``np`` and ``fastnn``
    for test in finder.find(mod, mod.__name__, globs={**vars(mod), "np": np, "fastnn": fastnn}):
        if test.examples and test.name.startswith(mod.__name__):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {mod.__name__} (output above)"
