"""CMake builds of the C++ side, shared by the tests that need one (test_cpp.py,
test_portability.py): find CMake (and Ninja), configure and build into a folder with the log's tail
in the failure message, and the native build of the kernel tests, the benchmark harness and the
example project, made once per test session whichever test asks first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str, module: str, attr: str) -> str | None:
    """A program on PATH, else the binary its PyPI package ships (in a venv that is not on PATH)."""
    exe = shutil.which(name)
    if exe:
        return exe
    try:
        path = Path(getattr(__import__(module), attr)) / name
    except (ImportError, AttributeError):
        return None
    return str(path) if path.exists() else None


def cmake_exe() -> str | None:
    """The ``cmake`` program (PATH, else the ``cmake`` PyPI package), or None."""
    return _tool("cmake", "cmake", "CMAKE_BIN_DIR")


def generator_args() -> list[str]:
    """``-G Ninja`` where Ninja is found (PATH or the ``ninja`` PyPI package), else CMake's default."""
    ninja = _tool("ninja", "ninja", "BIN_DIR")
    return ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []


def cmake_build(build: Path, defines: Sequence[str], *, targets: Sequence[str] = (), jobs: int | None = None,
                env: Mapping[str, str] | None = None) -> Path:
    """Configure the repository into ``build`` and build it; a failed step fails the calling test.

    Parameters
    ----------
    build : Path
        The build folder.
    defines : sequence of str
        CMake cache settings, each ``"NAME=value"`` (passed as ``-DNAME=value``).
    targets : sequence of str, optional
        Targets to build; all by default.
    jobs : int, optional
        Parallel compile jobs; all cores by default.
    env : mapping, optional
        The environment for CMake and the compilers.

    Returns
    -------
    Path
        ``build``.
    """
    cmake = cmake_exe()
    assert cmake is not None, "cmake_build needs CMake (pip install cmake)"
    cfg = subprocess.run([cmake, "-S", str(ROOT), "-B", str(build), *generator_args(), *(f"-D{d}" for d in defines)],
                         capture_output=True, text=True, env=env)
    assert cfg.returncode == 0, f"CMake configure failed:\n{cfg.stdout[-3000:]}\n{cfg.stderr[-3000:]}"
    cmd = [cmake, "--build", str(build), "--parallel", str(jobs or os.cpu_count() or 2)]
    if targets:
        cmd += ["--target", *targets]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert out.returncode == 0, f"CMake build failed:\n{out.stdout[-4000:]}\n{out.stderr[-3000:]}"
    return build


_native: dict[str, Path | str] = {}


def native_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The native Release build (``fastnn_kernel_tests``, ``fastnn_bench``, ``examples/cpp``) against
    this interpreter's scipy-openblas32, built at the first request of the test session.

    Skips the calling test without CMake or a C++ compiler; a failed build fails every caller.
    """
    if cmake_exe() is None or shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("needs CMake and a C++ compiler (pip install cmake; apt-get install g++)")
    if "error" in _native:
        pytest.fail(f"the native C++ build failed earlier in this session:\n{_native['error']}")
    if "build" not in _native:
        build = tmp_path_factory.mktemp("cpp-build")
        try:
            cmake_build(build, ["CMAKE_BUILD_TYPE=Release", f"Python_EXECUTABLE={sys.executable}",
                                "FASTNN_BUILD_TESTS=ON", "FASTNN_BUILD_BENCH=ON", "FASTNN_BUILD_EXAMPLES=ON"])
        except AssertionError as e:
            _native["error"] = str(e)
            raise
        _native["build"] = build
    return Path(_native["build"])
