"""Portability, checked rather than assumed: fastnn on CPUs other than the one running the tests.

1. The OpenBLAS kernel set fastnn loads (``fastnn._blas_kernels``): the choice as a pure function of
   the CPU's features and the environment, over a table of made-up CPUs.
2. aarch64: a cross build of ``fastnn_kernel_tests`` (cmake/aarch64-linux-gnu.cmake, OpenBLAS from
   the scipy-openblas32 manylinux aarch64 wheel, fetched from PyPI) run under ``qemu-aarch64`` as a
   Neoverse N1, a Cortex-A57, an A64FX (512-bit SVE) and QEMU's ``max`` CPU (SVE + SME), each with
   the OpenBLAS kernel set fastnn's import would choose for that CPU's features (read from the
   emulated CPU by a small probe). OpenBLAS picks ``neoversen1``, ``cortexa57`` and ``a64fx`` on the
   first three by itself; on ``max`` it would pick ``armv9sme``, whose GEMMs fail 40 of the checks
   with scipy-openblas32 0.3.34, and fastnn pins ``armv8sve``.
3. x86-64 without AVX: the native ``fastnn_kernel_tests`` under ``qemu-x86_64 -cpu Nehalem``
   (x86-64-v2, NumPy's minimum) must pass on the baseline clone; an AVX2 request must be refused
   cleanly, not die of SIGILL; under ``-cpu qemu64`` (no SSE4.1, the default model of many VMs)
   the tests pass with the kernel set fastnn chooses there. Finally the installed package itself
   imports, trains and multiplies under ``-cpu Nehalem``: /proc/cpuinfo still describes the host
   there (an AVX2 AMD CPU for instance), and a kernel choice made from it would die of SIGILL.

Emulation proves correctness and the absence of illegal instructions, not speed. Needs qemu-user
and Debian's aarch64 cross compiler (``apt-get install qemu-user g++-aarch64-linux-gnu``; .ci/run
installs them), CMake, and PyPI for the aarch64 wheel. Cost on 2 shared cores: ~1.5 min for the
aarch64 part (a 30-40 s build, then the four runs two at a time: A64FX ~45 s, N1 ~35 s, the
others ~2 s), ~30 s for the x86-64 part (Nehalem ~25 s) plus the native build, shared with
test_cpp.py.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cmake_build import ROOT, cmake_build, cmake_exe, native_build
from fastnn._blas_kernels import CpuInfo, choose_openblas_coretype, detect_cpu

APT_HINT = "apt-get install qemu-user g++-aarch64-linux-gnu"
CROSS = "aarch64-linux-gnu"
SYSROOT = f"/usr/{CROSS}"


def _missing(*programs: str) -> list[str]:
    return [p for p in programs if shutil.which(p) is None]


_missing_aarch64 = _missing(f"{CROSS}-gcc", f"{CROSS}-g++", "qemu-aarch64")
needs_aarch64_tools = pytest.mark.skipif(
    bool(_missing_aarch64) or cmake_exe() is None,
    reason=f"needs {', '.join(_missing_aarch64)} ({APT_HINT})" if _missing_aarch64
    else "needs CMake (pip install cmake)")
_x86_host = platform.machine().lower() in ("x86_64", "amd64")
needs_qemu_x86 = pytest.mark.skipif(
    not _x86_host or shutil.which("qemu-x86_64") is None,
    reason="needs qemu-x86_64 (apt-get install qemu-user)" if _x86_host
    else "the x86-64 emulation checks run on x86-64 hosts")

# Reads what the (emulated) CPU reports, the way fastnn._blas_kernels does on each architecture:
# HWCAP bits on aarch64; CPUID (vendor, SSE4.1, FMA, AVX2) on x86-64, named as NumPy names them.
PROBE_C = r"""
#include <stdio.h>
#include <string.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
int main(void) {
  unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  printf("aarch64 -%s%s\n", hwcap & (1UL << 22) ? " SVE" : "", hwcap2 & (1UL << 23) ? " SME" : "");
  return 0;
}
#else
#include <cpuid.h>
int main(void) {
  unsigned a, b, c, d;
  char vendor[13] = {0};
  __get_cpuid(0, &a, &b, &c, &d);
  memcpy(vendor, &b, 4), memcpy(vendor + 4, &d, 4), memcpy(vendor + 8, &c, 4);
  __get_cpuid(1, &a, &b, &c, &d);
  const int sse41 = (c >> 19) & 1, fma = (c >> 12) & 1;
  __get_cpuid_count(7, 0, &a, &b, &c, &d);
  printf("x86_64 %s%s%s%s\n", vendor, sse41 ? " SSE41" : "", fma ? " FMA3" : "", (b >> 5) & 1 ? " AVX2" : "");
  return 0;
}
#endif
"""


def _probe_cpu(probe: Path, emulator: list[str]) -> CpuInfo:
    out = subprocess.run([*emulator, str(probe)], capture_output=True, text=True, check=True, timeout=60)
    arch, vendor, *features = out.stdout.split()
    return CpuInfo(arch, "" if vendor == "-" else vendor, frozenset(features))


def _openblas_core(text: str) -> str:
    """The kernel set OpenBLAS reports under OPENBLAS_VERBOSE=2 ("Core: neoversen1")."""
    m = re.search(r"^Core: (\S+)", text, re.M)
    return m.group(1) if m else "?"


def _clean_env(**extra: str) -> dict[str, str]:
    drop = ("OPENBLAS_CORETYPE", "FASTNN_OPENBLAS_CORETYPE", "FASTNN_SIMD", "OPENBLAS_VERBOSE", "QEMU_CPU")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


# --- 1. the kernel choice, a pure function --------------------------------------------------------

ZEN4 = frozenset({"SSE41", "SSE42", "AVX", "AVX2", "FMA3", "AVX512F"})
HASWELL = frozenset({"SSE41", "SSE42", "AVX", "AVX2", "FMA3"})
NEHALEM = frozenset({"SSE3", "SSSE3", "SSE41", "SSE42"})
K8 = frozenset({"SSE", "SSE2", "SSE3"})  # qemu64, kvm64, an Athlon 64

CHOICES = [
    # id, CPU, environment, kernel set (None: OpenBLAS's own choice or the user's OPENBLAS_CORETYPE)
    ("zen4", CpuInfo("x86_64", "AuthenticAMD", ZEN4), {}, "Zen"),
    ("zen2", CpuInfo("x86_64", "AuthenticAMD", HASWELL), {}, "Zen"),
    ("intel-avx2", CpuInfo("x86_64", "GenuineIntel", HASWELL), {}, None),
    ("intel-avx512", CpuInfo("x86_64", "GenuineIntel", ZEN4), {}, None),
    # an emulator or VM presenting an AVX-less CPU on an AMD host: CPUID says no AVX2, so no Zen
    ("amd-host-nehalem-guest", CpuInfo("x86_64", "AuthenticAMD", NEHALEM), {}, None),
    ("amd-avx2-no-fma", CpuInfo("x86_64", "AuthenticAMD", NEHALEM | {"AVX", "AVX2"}), {}, None),
    ("k8-class", CpuInfo("x86_64", "AuthenticAMD", K8), {}, "Prescott"),
    ("intel-no-sse41", CpuInfo("x86_64", "GenuineIntel", K8 | {"SSSE3"}), {}, "Prescott"),
    ("x86-features-unknown", CpuInfo("x86_64", "AuthenticAMD", None), {}, None),
    ("neoverse-n1", CpuInfo("aarch64", "", frozenset()), {}, None),
    ("a64fx-sve", CpuInfo("aarch64", "", frozenset({"SVE"})), {}, None),
    ("sve-and-sme", CpuInfo("aarch64", "", frozenset({"SVE", "SME"})), {}, "ARMV8SVE"),
    ("sme-without-sve", CpuInfo("aarch64", "", frozenset({"SME"})), {}, "NEOVERSEN1"),
    ("aarch64-unknown", CpuInfo("aarch64", "", None), {}, None),
    ("other-arch", CpuInfo("riscv64", "", frozenset({"V"})), {}, None),
    # the environment wins: FASTNN_OPENBLAS_CORETYPE first, then the user's OPENBLAS_CORETYPE
    ("fastnn-env", CpuInfo("aarch64", "", frozenset({"SVE", "SME"})), {"FASTNN_OPENBLAS_CORETYPE": "armv9sme"},
     "armv9sme"),
    ("fastnn-env-over-user", CpuInfo("x86_64", "AuthenticAMD", ZEN4),
     {"FASTNN_OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_CORETYPE": "SkylakeX"}, "Haswell"),
    ("fastnn-auto", CpuInfo("x86_64", "AuthenticAMD", ZEN4), {"FASTNN_OPENBLAS_CORETYPE": "auto"}, None),
    ("fastnn-empty", CpuInfo("aarch64", "", frozenset({"SVE", "SME"})), {"FASTNN_OPENBLAS_CORETYPE": ""}, None),
    ("user-env", CpuInfo("aarch64", "", frozenset({"SVE", "SME"})), {"OPENBLAS_CORETYPE": "armv9sme"}, None),
    ("user-env-amd", CpuInfo("x86_64", "AuthenticAMD", ZEN4), {"OPENBLAS_CORETYPE": "SkylakeX"}, None),
    ("user-env-old-cpu", CpuInfo("x86_64", "AuthenticAMD", K8), {"OPENBLAS_CORETYPE": "Core2"}, None),
]


@pytest.mark.parametrize("cpu,env,expected", [c[1:] for c in CHOICES], ids=[c[0] for c in CHOICES])
def test_openblas_kernel_set_choice(cpu, env, expected):
    assert choose_openblas_coretype(cpu, env) == expected


def test_this_cpu_is_described_from_cpuid_or_hwcap():
    cpu = detect_cpu()
    assert cpu.arch == {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                                   platform.machine().lower())
    if cpu.arch == "x86_64":  # NumPy's CPUID dictionary (numpy._core or numpy.core._multiarray_umath)
        assert cpu.features is not None and {"SSE", "SSE2"} <= cpu.features
    elif cpu.arch == "aarch64":
        assert cpu.features is not None and cpu.features <= {"SVE", "SME"}


# --- 2. aarch64, cross-built, under qemu-aarch64 --------------------------------------------------

# QEMU 7.2 (Debian 12) CPU models: True runs every size of the kernel tests (~30-45 s emulated),
# False the small sizes (--quick, ~2 s), enough to catch wrong GEMM kernels (armv9sme on max fails
# 25 of them). Slowest first: they run two at a time.
AARCH64_MODELS = {"a64fx": True, "neoverse-n1": True, "cortex-a57": False, "max": False}


def _aarch64_openblas(dest: Path) -> Path:
    """The newest scipy-openblas32 manylinux aarch64 wheel from PyPI, unpacked; its package folder.

    (The 0.3.28-0.3.33 aarch64 wheels bundle a libgfortran that needs libz.so.1, which the cross
    sysroot lacks; 0.3.34 links no Fortran runtime.)"""
    wheels = dest / "wheels"
    out = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                          "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64",
                          "--dest", str(wheels), "scipy-openblas32>=0.3.28"], capture_output=True, text=True)
    assert out.returncode == 0, f"pip could not fetch the aarch64 scipy-openblas32 wheel:\n{out.stderr[-3000:]}"
    (wheel,) = sorted(wheels.glob("scipy_openblas32-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(dest / "wheel")
    return dest / "wheel" / "scipy_openblas32"


@pytest.fixture(scope="module")
def aarch64_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("aarch64")
    openblas = _aarch64_openblas(root)
    build = cmake_build(root / "build", [
        f"CMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'aarch64-linux-gnu.cmake'}", "CMAKE_BUILD_TYPE=Release",
        f"FASTNN_SCIPY_OPENBLAS_DIR={openblas}", "FASTNN_BUILD_PYTHON=OFF", "FASTNN_BUILD_BENCH=OFF",
        "FASTNN_BUILD_TESTS=ON", "FASTNN_INSTALL=OFF"], targets=["fastnn_kernel_tests"], jobs=2)
    probe = root / "probe"
    (root / "probe.c").write_text(PROBE_C)
    subprocess.run([f"{CROSS}-gcc", "-O1", "-o", str(probe), str(root / "probe.c")], check=True, capture_output=True)
    return {"tests": build / "fastnn_kernel_tests", "probe": probe,
            "version": re.sub(r"\.dist-info$", "", next((openblas.parent).glob("*.dist-info")).name)}


@pytest.fixture(scope="module")
def aarch64_runs(aarch64_build):
    """The kernel tests under every model, two emulators at a time (2 cores)."""

    def run(model: str) -> dict[str, object]:
        qemu = ["qemu-aarch64", "-L", SYSROOT, "-cpu", model]
        cpu = _probe_cpu(aarch64_build["probe"], qemu)
        coretype = choose_openblas_coretype(cpu, {})
        env = _clean_env(OPENBLAS_VERBOSE="2", **({"OPENBLAS_CORETYPE": coretype} if coretype else {}))
        t0 = time.perf_counter()
        quick = [] if AARCH64_MODELS[model] else ["--quick"]
        out = subprocess.run([*qemu, str(aarch64_build["tests"]), *quick], capture_output=True, text=True, env=env,
                             timeout=900)
        return {"cpu": cpu, "coretype": coretype, "out": out, "seconds": time.perf_counter() - t0}

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(AARCH64_MODELS, pool.map(run, AARCH64_MODELS), strict=True))


@needs_aarch64_tools
@pytest.mark.parametrize("model", list(AARCH64_MODELS))
def test_aarch64_kernel_tests_pass_under_qemu(aarch64_runs, aarch64_build, model):
    r = aarch64_runs[model]
    out = r["out"]
    text = out.stdout + out.stderr
    where = (f"qemu-aarch64 -cpu {model} ({r['cpu']}, OPENBLAS_CORETYPE={r['coretype']}, "
             f"{aarch64_build['version']}, {r['seconds']:.0f} s)")
    assert out.returncode == 0 and " 0 failures" in out.stdout, f"{where}:\n{text[-4000:]}"
    if model == "max":  # SVE + SME: fastnn replaces OpenBLAS's armv9sme kernels
        assert r["cpu"].features == {"SVE", "SME"} and r["coretype"] == "ARMV8SVE", where
    if r["coretype"]:
        assert _openblas_core(text) == r["coretype"].lower(), where
    print(f"{where}: OpenBLAS core {_openblas_core(text)}; {out.stdout.strip().splitlines()[-1]}")


# --- 3. x86-64 CPUs without AVX, under qemu-x86_64 ------------------------------------------------

# OpenBLAS kernel sets that need AVX (or later): none may be loaded on a CPU without it.
AVX_KERNELS = {"sandybridge", "haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator",
               "steamroller", "piledriver", "bulldozer"}


@needs_qemu_x86
def test_x86_kernel_tests_pass_on_a_cpu_without_avx(tmp_path_factory):
    tests = native_build(tmp_path_factory) / "fastnn_kernel_tests"
    qemu = ["qemu-x86_64", "-cpu", "Nehalem"]
    t0 = time.perf_counter()
    out = subprocess.run([*qemu, str(tests)], capture_output=True, text=True, timeout=900,
                         env=_clean_env(OPENBLAS_VERBOSE="2"))
    text = out.stdout + out.stderr
    assert out.returncode == 0 and " 0 failures" in out.stdout, f"exit {out.returncode}:\n{text[-4000:]}"
    assert "(simd baseline," in out.stdout  # the clone dispatched on a CPU without AVX
    assert _openblas_core(text).lower() not in AVX_KERNELS
    print(f"qemu-x86_64 -cpu Nehalem ({time.perf_counter() - t0:.0f} s): {out.stdout.strip().splitlines()[-1]}")
    # a clone the CPU cannot run is refused with a message, not run into SIGILL
    refused = subprocess.run([*qemu, str(tests), "--quick"], capture_output=True, text=True, timeout=300,
                             env=_clean_env(FASTNN_SIMD="avx2"))
    assert refused.returncode == 2 and "'avx2'" in refused.stdout + refused.stderr, (
        f"exit {refused.returncode}:\n{(refused.stdout + refused.stderr)[-2000:]}")


@needs_qemu_x86
def test_x86_kernel_tests_pass_on_a_cpu_without_sse41(tmp_path_factory):
    tests = native_build(tmp_path_factory) / "fastnn_kernel_tests"
    root = tmp_path_factory.mktemp("x86-probe")
    (root / "probe.c").write_text(PROBE_C)
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("needs a C compiler for the CPUID probe (apt-get install gcc)")
    subprocess.run([gcc, "-O1", "-o", str(root / "probe"), str(root / "probe.c")], check=True, capture_output=True)
    qemu = ["qemu-x86_64", "-cpu", "qemu64"]
    cpu = _probe_cpu(root / "probe", qemu)
    assert "SSE41" not in cpu.features
    coretype = choose_openblas_coretype(cpu, {})
    assert coretype == "Prescott"  # OpenBLAS's own choice there, Nehalem, dies of SIGILL (insertps)
    out = subprocess.run([*qemu, str(tests), "--quick"], capture_output=True, text=True, timeout=600,
                         env=_clean_env(OPENBLAS_CORETYPE=coretype))
    assert out.returncode == 0 and " 0 failures" in out.stdout, f"exit {out.returncode}:\n{out.stdout[-3000:]}"
    assert "(simd baseline," in out.stdout


PACKAGE_CHECK = """
import json, numpy as np, fastnn
from fastnn import _core
rng = np.random.default_rng(0)
a, b = rng.standard_normal((70, 130)), rng.standard_normal((130, 90))
for dt in (np.float32, np.float64):
    np.testing.assert_allclose(_core.gemm(a.astype(dt), b.astype(dt)), a @ b, rtol=1e-3, atol=1e-3)
X = rng.standard_normal((256, 20)).astype(np.float32)
y = X[:, :3].argmax(axis=1)
model = fastnn.MLP(20, [32], 3, seed=0)
model.fit(X, y, epochs=5, batch_size=32)
print(json.dumps({**fastnn.build_info(), **model.evaluate(X, y)}))
"""


def _package_check(prefix: list[str], **env: str) -> dict[str, object]:
    out = subprocess.run([*prefix, sys.executable, "-c", PACKAGE_CHECK], capture_output=True, text=True,
                         timeout=600, env=_clean_env(**env))
    assert out.returncode == 0, f"{prefix or 'native'}: exit {out.returncode}:\n{(out.stdout + out.stderr)[-4000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_qemu_x86
def test_the_package_runs_on_a_cpu_without_avx():
    """The installed fastnn under an AVX-less CPU: /proc/cpuinfo describes the host (on an AVX2 AMD
    host the old choice loaded OpenBLAS's Zen kernels here and the first GEMM died of SIGILL). It
    trains as it does natively on the same code paths (baseline clone, the same OpenBLAS kernels)."""
    qemu = ["qemu-x86_64", "-cpu", "Nehalem"]
    info = _package_check(qemu)
    assert info["simd"] == "baseline"
    assert info["blas_kernels"].lower() not in AVX_KERNELS, info
    native = _package_check([], FASTNN_SIMD="baseline", FASTNN_OPENBLAS_CORETYPE=str(info["blas_kernels"]))
    assert native["blas_kernels"] == info["blas_kernels"]
    # (bitwise equal here: the same instructions, emulated or not; the tolerance is for safety)
    assert abs(info["loss"] - native["loss"]) <= 1e-5 * abs(native["loss"]), (info, native)
    assert abs(info["accuracy"] - native["accuracy"]) <= 2 / 256, (info, native)
    refused = subprocess.run([*qemu, sys.executable, "-c", "import fastnn"], capture_output=True, text=True,
                             timeout=300, env=_clean_env(FASTNN_SIMD="avx2"))
    assert refused.returncode == 1 and "avx2" in refused.stderr, refused.stderr[-2000:]
