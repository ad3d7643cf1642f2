"""The C++ side with no Python in the loop: builds fastnn::core, the kernel tests, the benchmark
harness and the example project examples/cpp with CMake into a temporary folder, then runs the
kernel tests (every kernel against its scalar reference, guard values around outputs, 1 thread vs N
threads), the harness once and the example; finally installs fastnn::core and builds the example
again as a separate project through find_package(fastnn), as docs/cpp.rst tells C++ users to."""

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
                    "-DFASTNN_BUILD_BENCH=ON", "-DFASTNN_BUILD_EXAMPLES=ON"], check=True, capture_output=True,
                   text=True)
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


def test_cpp_example_runs(cpp_build):
    # examples/cpp/main.cpp: two kernels against hand-computed values, then a network trained on the
    # spiral data through fastnn::Net must reach >= 90 % training accuracy
    out = subprocess.run([str(cpp_build / "examples" / "cpp" / "fastnn_example")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "fastnn example: 0 failures" in out.stdout
    assert "training accuracy" in out.stdout


def test_cpp_installed_package_builds_the_example(cpp_build, tmp_path):
    cmake = _cmake()
    prefix = tmp_path / "prefix"
    subprocess.run([cmake, "--install", str(cpp_build), "--prefix", str(prefix), "--component", "cpp"], check=True,
                   capture_output=True, text=True)
    assert (prefix / "include" / "fastnn" / "net.h").is_file()
    config = list(prefix.glob("lib*/cmake/fastnn/fastnnConfig.cmake"))
    assert config, "fastnnConfig.cmake was not installed"
    build = tmp_path / "example-build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = subprocess.run([cmake, "-S", str(ROOT / "examples" / "cpp"), "-B", str(build), *gen,
                          "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}"],
                         capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    out = subprocess.run([cmake, "--build", str(build)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = subprocess.run([str(build / "fastnn_example")], capture_output=True, text=True)
    assert run.returncode == 0 and "fastnn example: 0 failures" in run.stdout, run.stdout[-3000:]


def test_cpp_runtime_has_no_leaks_or_invalid_accesses_under_valgrind(cpp_build):
    """The kernels and the network runtime (including networks refused for their size) under
    valgrind's memcheck: no invalid read/write, no use of uninitialised values, nothing leaked
    (the small sizes: ~5 s; LeakSanitizer covers the same binary in test_sanitizers.py)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    out = subprocess.run([valgrind, "--error-exitcode=3", "--leak-check=full",
                          "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                          str(cpp_build / "fastnn_kernel_tests"), "--quick"], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0 and " 0 failures" in out.stdout, out.stdout[-3000:] + out.stderr[-6000:]
    assert "ERROR SUMMARY: 0 errors" in out.stderr, out.stderr[-6000:]
