"""Sphinx configuration for fastnn's documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (``pip install '.[docs]'``).

At start-up the build writes ``docs/_generated/`` (ignored by git): the figures and printed
reports of the user guide, produced by running ``examples/recipe_digits.py``,
``examples/preprocess_and_augment.py``, ``examples/symptoms.py`` and
``examples/search_and_ensemble.py`` on scikit-learn's digits, and
the ``--help`` text of every ``fastnn`` command. So the guide always shows what the code it
quotes really prints and draws.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"

import fastnn  # noqa: E402  (the installed package is what gets documented)

project = "fastnn"
author = "the fastnn developers"
copyright = "2026, the fastnn developers"  # noqa: A001 - Sphinx's name
release = fastnn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]

# numpy-style docstrings (Parameters / Returns / Raises with shapes and dtypes)
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = False

autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = True
autoclass_content = "class"

# Every cross-reference to fastnn must resolve: a renamed or removed symbol breaks the build (-W).
nitpicky = True


def _fastnn_class_names() -> list[str]:
    """Public class names of fastnn (a bare ``Sequential`` in a docstring must resolve too)."""
    import importlib
    import inspect
    import pkgutil

    names = set()
    for info in pkgutil.iter_modules(fastnn.__path__):
        if info.name.startswith("_") or info.name in ("__main__",):
            continue
        module = importlib.import_module(f"fastnn.{info.name}")
        for name in getattr(module, "__all__", []):
            if inspect.isclass(getattr(module, name, None)):
                names.add(name)
    return sorted(names)


# Parameter types are prose ("ndarray, shape (N, D)", "{'min', 'max'}", "dict of str to ndarray"):
# Sphinx turns each word into a class reference. Only references to fastnn are checked: any
# ``fastnn.``-qualified name, and fastnn's own class names written bare. Other libraries' types
# resolve nowhere without intersphinx (the build works offline), so they are not checked.
nitpick_ignore_regex = [
    (r"py:class", r"(?!fastnn\.)(?!(?:" + "|".join(_fastnn_class_names()) + r")$).*"),
    (r"py:(class|obj|exc|func|meth|data|attr)", r"(numpy|np|torch|matplotlib|sklearn|scipy|safetensors|"
                                                r"collections|typing|pathlib|argparse|contextlib|os)\..*"),
    (r"py:class", r"fastnn\..*\._\w+"),  # private base classes shown by show-inheritance
]

templates_path: list[str] = []
exclude_patterns = ["_build", "_generated/*.txt", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "py:obj"
pygments_style = "sphinx"

html_theme = "furo"
html_title = f"fastnn {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# doctest blocks run with fastnn imported and one thread (results are identical for any count)
doctest_global_setup = """
import numpy as np
import fastnn
fastnn.set_num_threads(1)
"""


# ---------------------------------------------------------------------------------------------
# Generated material: figures and outputs of the guide's scripts, CLI help
# ---------------------------------------------------------------------------------------------
_SCRIPTS = {
    "recipe": ROOT / "examples" / "recipe_digits.py",
    "prep": ROOT / "examples" / "preprocess_and_augment.py",
    "symptoms": ROOT / "examples" / "symptoms.py",
    "search": ROOT / "examples" / "search_and_ensemble.py",
}


def _newest_input() -> float:
    paths = list((ROOT / "python" / "fastnn").glob("*.py")) + list(_SCRIPTS.values()) + [Path(__file__)]
    return max(p.stat().st_mtime for p in paths if p.exists())


def _start(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(cmd: list[str], proc: subprocess.Popen) -> None:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"docs: {' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}\n{err[-3000:]}")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _help(argv: list[str]) -> str:
    """What ``fastnn ARGV`` prints (argparse prints the help and exits 0)."""
    import contextlib
    import io

    from fastnn import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        cli.main(argv)
    return buf.getvalue()


def _cli_help() -> None:
    """``cli_top.txt`` (``fastnn --help``) and ``cli_reference.inc``: a section per command with its
    ``--help``, so a new command appears in the docs by itself."""
    top = _help(["--help"])
    _write(GENERATED / "cli_top.txt", top)
    commands = re.search(r"\{([\w,-]+)\}", top)
    parts = []
    for name in commands.group(1).split(",") if commands else []:
        text = _help([name, "--help"])
        title = f"``fastnn {name}``"
        parts.append(f"{title}\n{'~' * len(title)}\n\n.. code-block:: text\n\n"
                     + "".join(f"   {line}\n" if line.strip() else "\n" for line in text.splitlines()) + "\n")
    _write(GENERATED / "cli_reference.inc", "".join(parts))


def generate(app=None) -> None:  # noqa: ANN001 - Sphinx's hook signature
    GENERATED.mkdir(exist_ok=True)
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps its help to this width
    try:
        _cli_help()
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    # FASTNN_DOCS_SMALL=1 (the test suite) runs the scripts on their tiny settings: same pages,
    # quicker, less meaningful figures. The stamp remembers the mode and the newest input.
    mode = "small" if os.environ.get("FASTNN_DOCS_SMALL") == "1" else "full"
    stamp = GENERATED / ".stamp"
    if (stamp.exists() and stamp.read_text(encoding="utf-8").strip() == mode
            and stamp.stat().st_mtime >= _newest_input()):
        return
    procs = []
    for name, script in _SCRIPTS.items():  # the scripts run side by side, each into a fresh folder
        out = GENERATED / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        cmd = [sys.executable, str(script), "--out", str(out)] + (["--small"] if mode == "small" else [])
        procs.append((cmd, _start(cmd)))
    for cmd, proc in procs:
        _finish(cmd, proc)
    stamp.write_text(mode + "\n", encoding="utf-8")


def _resolve_reexport(app, env, node, contnode):  # noqa: ANN001, ANN202
    """``fastnn.Sequential`` (and the other top-level re-exports) and bare ``Sequential.fit``
    resolve to where they are documented (``fastnn.model.Sequential``, ...)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    parts = target.split(".")
    if parts[0] == "fastnn" and len(parts) >= 2:
        head, rest = parts[1], parts[2:]
    elif parts[0] != "fastnn" and parts[0][:1].isupper():
        head, rest = parts[0], parts[1:]
    else:
        return None
    lazy = getattr(fastnn, "_LAZY", {})  # names fastnn imports on first use (fastnn.MLPClassifier)
    obj = getattr(fastnn, head, None) if head in lazy else fastnn.__dict__.get(head)
    module = getattr(obj, "__module__", None)
    if obj is None or not (inspect.isclass(obj) or inspect.isfunction(obj)) or not module \
            or not module.startswith("fastnn.") or module == "fastnn._threads":
        return None
    node["reftarget"] = ".".join([module, obj.__name__, *rest])
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], node["reftarget"],
                                              node, contnode)


_current_module: list[str] = [""]
_EXC = r"[\w.]+(?:Error|Warning|Exception)"
_EXCEPTIONS_WITH_SLASH = re.compile(rf"^(\s*)({_EXC}(?:\s*/\s*{_EXC})+)\s*$")


def _raises_alternatives(app, what, name, obj, options, lines):  # noqa: ANN001, ANN202
    """``ValueError / TypeError`` in a Raises section (a style the code base uses) is read as
    ``ValueError or TypeError``: two exceptions, each cross-referenced. Runs before napoleon."""
    for i, line in enumerate(lines):
        m = _EXCEPTIONS_WITH_SLASH.match(line)
        if m:
            lines[i] = m.group(1) + " or ".join(part.strip() for part in m.group(2).split("/"))


def _note_module(app, what, name, obj, options, lines):  # noqa: ANN001, ANN202
    """Remember which module ``automodule`` is documenting (its docstring comes before its members)."""
    if what == "module":
        _current_module[0] = name


def _skip_member(app, what, name, obj, skip, options):  # noqa: ANN001, ANN202
    """Skip, in a module's page, the functions and classes it merely re-exports from another fastnn
    module (each is documented once, where it lives), and scikit-learn's metadata-routing methods
    (``set_fit_request``, ...), which scikit-learn attaches to every estimator class."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if what == "module" and (inspect.isfunction(obj) or inspect.isclass(obj)):
        home = getattr(obj, "__module__", "") or ""
        if home.startswith("fastnn.") and _current_module[0].startswith("fastnn.") and home != _current_module[0]:
            return True
    return None


def setup(app):  # noqa: ANN001, ANN201
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", _note_module)
    app.connect("autodoc-process-docstring", _raises_alternatives, priority=100)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("missing-reference", _resolve_reexport)
    return {"parallel_read_safe": True}
