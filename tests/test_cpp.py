"""The C++ side with no Python in the loop: builds fastnn::core, the kernel tests and the benchmark
harness with CMake into a temporary folder, then runs the kernel tests (every kernel against its
scalar reference, guard values around outputs, 1 thread vs N threads) and the harness once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cmake() -> str | None:
    exe = shutil.which("cmake")
    if exe:
        return exe
    try:
        import cmake  # the PyPI package ships the binary

        return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except ImportError:
        return None


@pytest.fixture(scope="module")
def cpp_build(tmp_path_factory):
    cmake = _cmake()
    if cmake is None or shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("needs CMake and a C++ compiler (pip install cmake; apt-get install g++)")
    build = tmp_path_factory.mktemp("cpp-build")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run([cmake, "-S", str(ROOT), "-B", str(build), *gen, "-DCMAKE_BUILD_TYPE=Release",
                    f"-DPython_EXECUTABLE={sys.executable}", "-DFASTNN_BUILD_TESTS=ON",
                    "-DFASTNN_BUILD_BENCH=ON"], check=True, capture_output=True, text=True)
    out = subprocess.run([cmake, "--build", str(build), "--parallel", str(os.cpu_count() or 2)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return build


def test_cpp_kernel_tests_pass(cpp_build):
    out = subprocess.run([str(cpp_build / "fastnn_kernel_tests")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:]
    assert " 0 failures" in out.stdout


def test_cpp_benchmark_harness_runs(cpp_build):
    out = subprocess.run([str(cpp_build / "fastnn_bench"), "--threads", "1", "--min-time", "0.01", "--json"],
                         capture_output=True, text=True, check=True)
    assert '"rows"' in out.stdout and "sgemm" in out.stdout
