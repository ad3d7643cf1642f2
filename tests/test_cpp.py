"""The C++ side with no Python in the loop: builds fastnn::core, the kernel tests, the benchmark
harness and the example project examples/cpp with CMake into a temporary folder, then runs the
kernel tests (every kernel against its scalar reference, guard values around outputs, 1 thread vs N
threads), the harness once and the example; finally installs fastnn::core and builds the example
again as a separate project through find_package(fastnn), as docs/cpp.rst tells C++ users to."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cmake_build import ROOT, cmake_exe, generator_args, native_build


@pytest.fixture(scope="module")
def cpp_build(tmp_path_factory):
    return native_build(tmp_path_factory)  # one build per session, shared with test_portability.py


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
    cmake = cmake_exe()
    prefix = tmp_path / "prefix"
    subprocess.run([cmake, "--install", str(cpp_build), "--prefix", str(prefix), "--component", "cpp"], check=True,
                   capture_output=True, text=True)
    assert (prefix / "include" / "fastnn" / "net.h").is_file()
    config = list(prefix.glob("lib*/cmake/fastnn/fastnnConfig.cmake"))
    assert config, "fastnnConfig.cmake was not installed"
    build = tmp_path / "example-build"
    cfg = subprocess.run([cmake, "-S", str(ROOT / "examples" / "cpp"), "-B", str(build), *generator_args(),
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


# --- SIMD clones (isa.h): the C++ tests under each clone, and each clone's machine code ---------

def _simd_levels() -> list[str]:
    import fastnn

    return fastnn.supported_simd()


@pytest.mark.parametrize("level", _simd_levels())
def test_cpp_kernel_tests_pass_under_every_clone(cpp_build, level):
    env = {**os.environ, "FASTNN_SIMD": level}
    out = subprocess.run([str(cpp_build / "fastnn_kernel_tests")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout[-4000:]
    assert " 0 failures" in out.stdout
    assert f"(simd {level}, probe {level}," in out.stdout  # the clone that ran is the one asked for


@pytest.mark.parametrize("binary", ["fastnn_kernel_tests", "fastnn_bench"])
def test_cpp_programs_refuse_an_impossible_clone(cpp_build, binary):
    env = {**os.environ, "FASTNN_SIMD": "avx1024"}
    out = subprocess.run([str(cpp_build / binary)], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert "FASTNN_SIMD names an unknown SIMD level 'avx1024'" in out.stdout + out.stderr


def test_cpp_benchmark_harness_honours_simd_flag(cpp_build):
    level = _simd_levels()[-1]
    out = subprocess.run([str(cpp_build / "fastnn_bench"), "--threads", "1", "--min-time", "0.001", "--json",
                          "--simd", level], capture_output=True, text=True, check=True)
    assert f'"simd": "{level}"' in out.stdout


# Leaves whose baseline (SSE2) clone is scalar on purpose, and why. Every other leaf must use
# packed instructions in every clone: ymm registers in the AVX2 clone, ymm/zmm in the AVX-512 one.
BASELINE_SCALAR = {
    "mask_leaf": "Philox in scalar integer code: SSE2 has no 32x32->64 lane multiply the vector Philox needs",
    "dropout_fwd_leaf": "the same scalar Philox, then uint8 masks, which SSE2 cannot widen to float lanes",
    "hash_rows_leaf": "64-bit integer multiplies, which SSE2 lacks",
    "svm_rows_leaf": "int64 counts and double sums from float lanes (SSE2 has no such conversions)",
    "probe_leaf": "returns a constant",
}


def _clone_functions(objects: list[Path]) -> dict[tuple[str, str, str], list[str]]:
    """{(level, leaf name, signature): instructions} for every function in an isa_* namespace."""
    import re

    funcs: dict[tuple[str, str, str], list[str]] = {}
    for obj in objects:
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", str(obj)], capture_output=True,
                             text=True, check=True).stdout
        key = None
        for line in dis.splitlines():
            head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
            if head:
                m = re.search(r"::isa_(avx512|avx2|baseline)::(\w+)\((.*)\)$", head.group(1))
                key = (m.group(1), m.group(2), m.group(3)) if m else None
                if key:
                    funcs[key] = []
            elif key and "\t" in line:
                funcs[key].append(line.split("\t", 1)[1])
    return funcs


def test_every_clone_of_every_leaf_is_vectorised(cpp_build):
    """Read the machine code, not the compiler's report: the vectoriser can claim a loop while the
    clone that runs is scalar (it happened to the optimizer and the AVX2 clone)."""
    import platform
    import re

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the three x86-64 clones exist on x86-64 only")
    if shutil.which("objdump") is None:
        pytest.skip("needs objdump (apt-get install binutils)")
    objects = sorted((cpp_build / "CMakeFiles" / "fastnn_core.dir").rglob("*.o"))
    funcs = _clone_functions(objects)
    leaves = {(name, sig) for _, name, sig in funcs}
    assert len(leaves) >= 40, f"found only {len(leaves)} leaves: the symbols changed?"
    packed = re.compile(r"^(v?p[a-z]+|v?[a-z0-9]+p[sd]|vfn?m(add|sub)[0-9]+p[sd])\b")
    # `pxor %xmm0,%xmm0` (zeroing a register) is no sign of a vector loop: a scalar loop with a
    # branch per element can hold one (relu_bwd's baseline clone did)
    zeroing = re.compile(r"^v?(p?xor|xorp[sd])[a-z]*\s+(%[xyz]mm\d+),\2(,\2)?$")

    def vector_ops(code: list[str], reg: str) -> int:
        return sum(1 for ins in code if reg in ins and not zeroing.match(ins.strip()) and packed.match(ins))

    problems = []
    for name, sig in sorted(leaves):
        for level in ("avx512", "avx2", "baseline"):
            code = funcs.get((level, name, sig))
            if code is None:
                problems.append(f"{level}::{name}({sig}): missing (inlined or not compiled)")
                continue
            text = "\n".join(code)
            wide = vector_ops(code, "%ymm") + vector_ops(code, "%zmm")
            vec = vector_ops(code, "%xmm")
            if name == "probe_leaf":
                continue
            if level in ("avx512", "avx2") and wide < 2:
                problems.append(f"{level}::{name}({sig}): no ymm/zmm vector loop")
            if level == "avx2" and "%zmm" in text:
                problems.append(f"avx2::{name}({sig}): uses zmm (AVX-512) registers")
            if level == "baseline" and ("%ymm" in text or "%zmm" in text):
                problems.append(f"baseline::{name}({sig}): uses AVX registers")
            if level == "baseline" and vec < 2 and name not in BASELINE_SCALAR:
                problems.append(f"baseline::{name}({sig}): no packed SSE instruction")
    assert not problems, "\n".join(problems)
