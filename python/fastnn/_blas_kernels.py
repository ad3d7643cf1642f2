"""Which kernel set (``OPENBLAS_CORETYPE``) fastnn's OpenBLAS loads with.

``fastnn/__init__.py`` asks :func:`choose_openblas_coretype` once, before the extension (and with it
OpenBLAS) loads, about the CPU :func:`detect_cpu` describes. The choice is a pure function of that
description and the environment, so it is tested over made-up CPUs (tests/test_portability.py).

The rules, in order:

1. ``FASTNN_OPENBLAS_CORETYPE`` set: that kernel set (``"auto"`` or ``""``: leave the choice to
   OpenBLAS, or to the user's ``OPENBLAS_CORETYPE``).
2. ``OPENBLAS_CORETYPE`` set: the user's choice, left alone.
3. x86-64 without SSE4.1 (pre-2008 CPUs; the ``qemu64``/``kvm64`` models of many VMs): OpenBLAS's
   SSE3 kernels (``Prescott``). OpenBLAS itself picks its Nehalem (SSE4.1) kernels for an AMD K8
   family CPU there, and the first GEMM dies with SIGILL (seen under ``qemu-x86_64 -cpu qemu64``).
4. x86-64, AMD, with AVX2 and FMA: the ``Zen`` kernels. On Zen 4 OpenBLAS would pick its SkylakeX
   (AVX-512) kernels, and its Zen (AVX2) kernels are 4-9 % faster there for every GEMM shape of
   the W1-W4 workloads (benchmarks/RESULTS.md, GEMM: OpenBLAS kernel set).
5. aarch64 with SME: ``ARMV8SVE`` (OpenBLAS's generic, vector-length agnostic SVE kernels), or
   ``NEOVERSEN1`` (NEON) where the CPU has SME but no SVE, instead of the ``armv9sme`` kernels
   OpenBLAS picks there for a core it does not know, which give wrong GEMM results (fastnn issue
   13). Under ``qemu-aarch64 -cpu max`` (SVE + SME) with scipy-openblas32 0.3.34 fastnn's C++
   kernel tests fail 40 GEMM checks with them and pass with ``ARMV8SVE``; 0.3.31 and 0.3.33 pass
   with them there too, so the pin costs nothing where the SME kernels happen to be right.
6. Otherwise OpenBLAS's own choice.

The features are those the *executing* CPU reports: on x86-64 NumPy's CPUID-based runtime
dictionary, on aarch64 the kernel's HWCAP bits (what OpenBLAS reads). ``/proc/cpuinfo`` is read for
the x86 vendor string only: it describes the host, not the CPU an emulator (``qemu-user``) presents,
so its flags must not decide which instructions run.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CpuInfo", "choose_openblas_coretype", "detect_cpu"]

# The HWCAP bits of <asm/hwcap.h> (aarch64) that the choice looks at.
_AT_HWCAP, _AT_HWCAP2 = 16, 26
_HWCAP_SVE = 1 << 22
_HWCAP2_SME = 1 << 23

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class CpuInfo:
    """The facts about the executing CPU that the kernel choice depends on.

    Attributes
    ----------
    arch : str
        ``"x86_64"``, ``"aarch64"`` or another ``platform.machine()`` value (lower case).
    vendor : str
        The x86 CPUID vendor string (``"AuthenticAMD"``, ``"GenuineIntel"``), ``""`` if unknown.
    features : frozenset of str or None
        Upper-case features the CPU reports: NumPy's names on x86-64 (``"SSE41"``, ``"AVX2"``,
        ``"FMA3"``, ``"AVX512F"``, ...), ``"SVE"`` and ``"SME"`` on aarch64. ``None`` if they
        could not be read; then only the environment decides.
    """

    arch: str
    vendor: str = ""
    features: frozenset[str] | None = None


def choose_openblas_coretype(cpu: CpuInfo, env: Mapping[str, str]) -> str | None:
    """The ``OPENBLAS_CORETYPE`` to load fastnn's OpenBLAS with (the rules: module docstring).

    Parameters
    ----------
    cpu : CpuInfo
        The executing CPU (:func:`detect_cpu`).
    env : Mapping[str, str]
        The environment (``os.environ``): ``FASTNN_OPENBLAS_CORETYPE``, ``OPENBLAS_CORETYPE``.

    Returns
    -------
    str or None
        The kernel set to set ``OPENBLAS_CORETYPE`` to while the library loads, or ``None`` to
        leave the variable as it is (OpenBLAS then follows the user's value, or its own CPU
        detection).
    """
    own = env.get("FASTNN_OPENBLAS_CORETYPE")
    if own is not None:
        return None if own in ("", "auto") else own
    if "OPENBLAS_CORETYPE" in env or cpu.features is None:
        return None
    if cpu.arch == "x86_64":
        if "SSE41" not in cpu.features:
            return "Prescott"
        if cpu.vendor == "AuthenticAMD" and {"AVX2", "FMA3"} <= cpu.features:
            return "Zen"
    elif cpu.arch == "aarch64" and "SME" in cpu.features:
        return "ARMV8SVE" if "SVE" in cpu.features else "NEOVERSEN1"
    return None


def detect_cpu() -> CpuInfo:
    """Describe the CPU executing this process, for :func:`choose_openblas_coretype`.

    Returns
    -------
    CpuInfo
        Its architecture, x86 vendor and features; ``features`` is ``None`` where they cannot be
        read (an architecture other than x86-64 and aarch64, a NumPy without its CPU dictionary,
        no ``getauxval``).
    """
    arch = platform.machine().lower()
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "x86_64":
        return CpuInfo(arch, _x86_vendor(), _numpy_cpu_features())
    if arch == "aarch64":
        return CpuInfo(arch, "", _aarch64_hwcap_features())
    return CpuInfo(arch)


def _numpy_cpu_features() -> frozenset[str] | None:
    """The CPU features NumPy detected at import (CPUID and the OS's register support)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features  # NumPy >= 2.0
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features  # NumPy 1.x
        except ImportError:
            return None
    return frozenset(name.upper() for name, present in features.items() if present)


def _x86_vendor() -> str:
    """The CPUID vendor string as Linux reports it (``/proc/cpuinfo``), or ``""``."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[-1].strip()
    except OSError:
        pass
    return ""


def _aarch64_hwcap_features() -> frozenset[str] | None:
    """SVE and SME from the kernel's HWCAP words (``getauxval``), as OpenBLAS reads them."""
    try:
        import ctypes

        getauxval = ctypes.CDLL(None).getauxval
    except (ImportError, OSError, AttributeError):
        return None
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    hwcap, hwcap2 = getauxval(_AT_HWCAP), getauxval(_AT_HWCAP2)
    features = set()
    if hwcap & _HWCAP_SVE:
        features.add("SVE")
    if hwcap2 & _HWCAP2_SME:
        features.add("SME")
    return frozenset(features)
