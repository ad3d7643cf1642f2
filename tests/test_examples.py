"""Every script in examples/ runs (on its small settings, in a subprocess) and does what it says;
the README's training example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# script -> (what its output must contain, packages it needs)
SCRIPTS = {
    "train_digits.py": (["test accuracy", "predictions for 5 raw images"], ["sklearn", "safetensors"]),
    "recipe_digits.py": (["sanity checks: PASSED", "gradient check (centred differences", "loaded checkpoint"],
                         ["sklearn", "safetensors", "matplotlib"]),
    "preprocess_and_augment.py": (["LeakageWarning: ", "identical probabilities: True",
                                   "with test-time augmentation"], ["sklearn", "safetensors", "matplotlib"]),
    "symptoms.py": (["dead ReLUs", "saturated units", "vanishing activations", "NonFiniteLossError"], ["sklearn"]),
    "functional_cs231n.py": (["W1 relative error", "val acc"], ["sklearn"]),
    "gradcheck_and_sanity.py": (["a wrong gradient: probably wrong", "sanity checks: PASSED"], ["sklearn"]),
    "monitor_and_report.py": (["median |dW|/|W|", "report: ['report.html']"], ["sklearn", "safetensors", "matplotlib"]),
    "search_and_ensemble.py": (["stage of", "ensemble of the top", "distilled from the ensemble"],
                               ["sklearn", "safetensors"]),
    "torch_interop.py": (["max |p_torch - p_fastnn|", "imported:"], ["sklearn", "torch"]),
}


# script -> {guide page that quotes it: the docs/_generated/ folder the docs build runs it into}
GUIDE_PAGES = {
    "recipe_digits.py": {"recipe.rst": "recipe"},
    "preprocess_and_augment.py": {"preprocessing.rst": "prep", "augmentation.rst": "prep"},
}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FASTNN_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_every_example_is_tested():
    # (_guide_output.py is a helper the guide's scripts import, not an example)
    assert sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_runs(script, tmp_path):
    expected, needs = SCRIPTS[script]
    for package in needs:
        pytest.importorskip(package, reason=f"examples/{script} needs {package}")
    args = [str(EXAMPLES / script), "--small"]
    if script in ("recipe_digits.py", "symptoms.py", "monitor_and_report.py", "train_digits.py",
                  "search_and_ensemble.py", "preprocess_and_augment.py"):
        args += ["--out", str(tmp_path / "out")]
    proc = run(args, tmp_path)
    assert proc.returncode == 0, f"examples/{script} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    for text in expected:
        assert text in proc.stdout, f"examples/{script} did not print {text!r}:\n{proc.stdout[-3000:]}"
    # the guide's pages quote these scripts between markers and include what they wrote
    for page in GUIDE_PAGES.get(script, ()):
        guide = (ROOT / "docs" / "guide" / page).read_text(encoding="utf-8")
        source = (EXAMPLES / script).read_text(encoding="utf-8")
        for marker in re.findall(r":start-after: # \[(\w+)\]", guide):
            assert f"# [{marker}]" in source and f"# [/{marker}]" in source, (page, marker)
        folder = GUIDE_PAGES[script][page]
        missing = [f for f in re.findall(rf"_generated/{folder}/([\w.]+)", guide)
                   if not (tmp_path / "out" / f).is_file()]
        assert not missing, f"docs/guide/{page} includes files examples/{script} did not write: {missing}"


def test_readme_example_runs(tmp_path):
    """The README's 'Train a network' example, exactly as written, with fewer epochs."""
    for package in ("sklearn", "safetensors"):
        pytest.importorskip(package, reason=f"the README example needs {package} (the test extra has it)")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Train a network", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 16, "the README example should stay short"
    script = tmp_path / "readme_example.py"
    script.write_text(code.replace("epochs=40", "epochs=3").replace("cosine(3e-3, 40)", "cosine(3e-3, 3)"),
                      encoding="utf-8")
    proc = run([str(script)], tmp_path)
    assert proc.returncode == 0, f"the README example failed:\n{proc.stderr[-4000:]}"
    assert "'accuracy':" in proc.stdout
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "runs" / "best.safetensors").is_file()
