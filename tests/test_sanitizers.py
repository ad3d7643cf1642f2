"""Memory safety: AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer) over the C++ core.

One CMake build with ``FASTNN_SANITIZE=address,undefined`` (``-O1 -g``, only the two targets
needed: the kernel tests and the ``_core`` extension) into a temporary folder, then:

1. ``fastnn_kernel_tests`` -- every kernel against its scalar reference with guard values checked
   after every call, and a short run of the network runtime -- must finish clean: no
   out-of-bounds access, use after free, undefined behaviour (signed overflow, bad shifts, ...);
2. the same binary under LeakSanitizer: nothing the kernels or the runtime allocate leaks (refused
   networks included);
3. a representative slice of the Python tests (kernels, functional API, models, trainer,
   checkpoints, bad input, properties, preprocessing and augmentation kernels, threads) runs in a
   child process with the sanitized ``_core`` first on the path: ``LD_PRELOAD`` of GCC's libasan
   and libubsan (the interpreter is not instrumented), ``PYTHONMALLOC=malloc`` (so ASan sees
   Python's allocations too),
   ``detect_leaks=0`` (the interpreter itself never frees everything), ``halt_on_error``; only
   numpy and the test dependencies are imported (no torch).

Everything is skipped, with the reason, when a C++ compiler (GCC), CMake, pybind11 or the
sanitizer runtimes are missing. Cost on 2 cores: ~1.5 min of build, ~1 min of tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The Python slice: files (and single tests) that exercise every binding and the runtime.
PY_SLICE = [
    "tests/test_kernels.py",
    "tests/test_functional.py",
    "tests/test_model.py",
    "tests/test_trainer.py",
    "tests/test_io.py",
    "tests/test_bad_input.py",
    "tests/test_properties.py",
    "tests/test_preprocessing.py",
    "tests/test_augment.py",
    "tests/test_reliability.py::test_two_models_trained_at_once_match_training_them_one_after_the_other",
    "tests/test_reliability.py::test_a_refused_second_caller_changes_nothing",
    "tests/test_reliability.py::test_softmax_and_cross_entropy_with_huge_logits_stay_finite",
    "tests/test_reliability.py::test_batchnorm_with_a_constant_feature_stays_finite",
    "tests/test_reliability.py::test_adaptive_steps_with_zero_gradients_stay_finite",
    "tests/test_reliability.py::test_float32_training_of_a_ten_layer_network_stays_finite",
]

# Run in the child: drop the editable-install import hook (if any) so that the sanitized build
# placed first on sys.path is the fastnn that gets imported, check that it is, then run pytest.
BOOT = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path.insert(0, sys.argv[1])
import fastnn
assert fastnn._core.__file__.startswith(sys.argv[1]), "not the sanitized build: " + fastnn._core.__file__
assert "torch" not in sys.modules
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


def _which(name: str, module: str | None = None, attr: str = "BIN_DIR") -> str | None:
    exe = shutil.which(name)
    if exe:
        return exe
    if module:  # the PyPI packages cmake and ninja ship the binaries
        try:
            mod = __import__(module)
            cand = Path(getattr(mod, attr)) / name
            return str(cand) if cand.exists() else None
        except (ImportError, AttributeError):
            return None
    return None


def _runtime(gcc: str, lib: str) -> str | None:
    out = subprocess.run([gcc, f"-print-file-name={lib}"], capture_output=True, text=True)
    path = out.stdout.strip()
    return path if out.returncode == 0 and os.path.isabs(path) and os.path.exists(path) else None


def _no_aslr_prefix() -> list[str]:
    """``setarch -R`` where allowed: some kernels' address-space randomisation collides with ASan's
    shadow memory (GCC 12); without it the sanitizers usually still run."""
    setarch = shutil.which("setarch")
    if setarch:
        arch = os.uname().machine
        if subprocess.run([setarch, arch, "-R", "true"], capture_output=True).returncode == 0:
            return [setarch, arch, "-R"]
    return []


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("the sanitizer build is set up for Linux/GCC")
    cmake = _which("cmake", "cmake", "CMAKE_BIN_DIR")
    gcc, gxx = shutil.which("gcc"), shutil.which("g++")
    if cmake is None or gcc is None or gxx is None:
        pytest.skip("needs CMake and GCC (pip install cmake; apt-get install g++)")
    libs = [_runtime(gcc, "libasan.so"), _runtime(gcc, "libubsan.so")]
    if None in libs:
        pytest.skip("GCC's AddressSanitizer/UndefinedBehaviorSanitizer runtimes (libasan, libubsan) are not installed")
    try:
        import pybind11
    except ImportError:
        pytest.skip("needs pybind11 to build the extension (pip install pybind11)")
    build = tmp_path_factory.mktemp("asan-build")
    ninja = _which("ninja", "ninja")
    gen = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []
    cfg = subprocess.run(
        [cmake, "-S", str(ROOT), "-B", str(build), *gen, "-DCMAKE_BUILD_TYPE=Debug", "-DCMAKE_CXX_FLAGS=-O1 -g",
         f"-DCMAKE_C_COMPILER={gcc}", f"-DCMAKE_CXX_COMPILER={gxx}", f"-DPython_EXECUTABLE={sys.executable}",
         f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", "-DFASTNN_SANITIZE=address,undefined",
         "-DFASTNN_BUILD_PYTHON=ON", "-DFASTNN_BUILD_TESTS=ON", "-DFASTNN_BUILD_BENCH=OFF"],
        capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    out = subprocess.run([cmake, "--build", str(build), "--target", "fastnn_kernel_tests", "_core", "--parallel",
                          str(os.cpu_count() or 2)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    # the package as installed, with the sanitized extension in it
    pkg = build / "pkg"
    shutil.copytree(ROOT / "python" / "fastnn", pkg / "fastnn",
                    ignore=shutil.ignore_patterns("_core*.so", "_core*.pyd", "__pycache__"))
    core = sorted(build.glob("_core*.so"))
    assert core, "the build produced no _core extension"
    shutil.copy2(core[0], pkg / "fastnn" / core[0].name)
    return {"build": build, "pkg": pkg, "preload": " ".join(libs), "prefix": _no_aslr_prefix()}


def _san_env(detect_leaks: bool, logs: Path) -> dict[str, str]:
    """Sanitizer settings: stop at the first error; reports also go to files under `logs` (pytest
    captures the child's stderr, so a report written there by a dying process would be lost);
    malloc may return NULL (a refused multi-terabyte request must become a MemoryError, as without
    ASan, not an ASan abort)."""
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    env["ASAN_OPTIONS"] = (f"detect_leaks={int(detect_leaks)}:halt_on_error=1:abort_on_error=0:exitcode=86:"
                           f"allocator_may_return_null=1:log_path={logs / 'asan'}")
    env["UBSAN_OPTIONS"] = f"halt_on_error=1:print_stacktrace=1:exitcode=87:log_path={logs / 'ubsan'}"
    env["LSAN_OPTIONS"] = "exitcode=88"
    return env


def _report(out: subprocess.CompletedProcess, logs: Path) -> str:
    reports = "".join(f"\n--- {p.name} ---\n{p.read_text(errors='replace')[-8000:]}" for p in sorted(logs.glob("*")))
    return (f"exit {out.returncode}\n--- stdout ---\n{out.stdout[-6000:]}\n--- stderr ---\n{out.stderr[-4000:]}"
            f"{reports}")


def _sanitizer_reports(logs: Path) -> list[Path]:
    """Log files holding an error report (a refused huge malloc only leaves a WARNING line)."""
    marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY:")
    return [p for p in logs.glob("*") if any(m in p.read_text(errors="replace") for m in marks)]


def test_kernel_tests_are_clean_under_asan_and_ubsan(sanitized, tmp_path):
    logs = tmp_path / "logs"
    out = subprocess.run([*sanitized["prefix"], str(sanitized["build"] / "fastnn_kernel_tests")],
                         capture_output=True, text=True, env=_san_env(False, logs), timeout=600)
    assert out.returncode == 0 and " 0 failures" in out.stdout, _report(out, logs)
    assert not _sanitizer_reports(logs), _report(out, logs)


def test_kernels_and_runtime_do_not_leak(sanitized, tmp_path):
    logs = tmp_path / "logs"
    out = subprocess.run([*sanitized["prefix"], str(sanitized["build"] / "fastnn_kernel_tests"), "--quick"],
                         capture_output=True, text=True, env=_san_env(True, logs), timeout=600)
    text = out.stderr + "".join(p.read_text(errors="replace") for p in logs.glob("*"))
    if "LeakSanitizer has encountered a fatal error" in text or "does not work under ptrace" in text:
        pytest.skip("LeakSanitizer cannot run here (ptrace restrictions); valgrind covers leaks in test_cpp.py")
    assert out.returncode == 0 and " 0 failures" in out.stdout, _report(out, logs)
    assert not _sanitizer_reports(logs), _report(out, logs)


def test_python_slice_is_clean_under_asan_and_ubsan(sanitized, tmp_path):
    logs = tmp_path / "logs"
    env = _san_env(False, logs)
    env.update({"LD_PRELOAD": sanitized["preload"], "PYTHONMALLOC": "malloc", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                "FASTNN_NUM_THREADS": "2", "PYTHONDONTWRITEBYTECODE": "1"})
    env.pop("PYTHONPATH", None)
    out = subprocess.run([*sanitized["prefix"], sys.executable, "-c", BOOT, str(sanitized["pkg"]), "-q", "-x",
                          "-p", "no:cacheprovider", *PY_SLICE], capture_output=True, text=True, env=env,
                         cwd=str(ROOT), timeout=900)
    assert out.returncode == 0 and " passed" in out.stdout, _report(out, logs)
    # child processes some tests start inherit the settings: their reports land in `logs` too
    assert not _sanitizer_reports(logs), _report(out, logs)
