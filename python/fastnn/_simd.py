"""Which SIMD code path ("clone") fastnn's kernels run.

Every hot elementwise loop is compiled once per instruction-set level: ``avx512`` (x86-64-v4),
``avx2`` (x86-64-v3) and ``baseline`` (SSE2 on x86-64; ``neon`` on aarch64). At import fastnn
picks the best level the CPU supports, unless the environment variable ``FASTNN_SIMD`` names
another (``avx512``, ``avx2``, ``baseline`` or ``auto``); a level the CPU cannot run makes the
import fail with a message that lists the levels it can. :func:`set_simd` switches at run time, so
one machine can test and benchmark every clone it can execute.

Clones agree to a few units in the last place, not bitwise: AVX2 and AVX-512 contract ``a * b + c``
into fused multiply-adds and reduce in different vector widths. Within one clone results are bitwise
identical for any thread count. The GEMMs are OpenBLAS's, which picks its own kernels by CPU.
"""

from __future__ import annotations

from fastnn import _core


def get_simd() -> str:
    """The SIMD level the kernels run now: ``"avx512"``, ``"avx2"``, ``"baseline"`` or ``"neon"``."""
    return str(_core.simd_level())


def supported_simd() -> list[str]:
    """The SIMD levels this CPU (and this build) can run, best first."""
    return str(_core.simd_supported()).split(",")


def set_simd(level: str) -> str:
    """Run fastnn's kernels with another SIMD level from now on, for every thread.

    Parameters
    ----------
    level : str
        ``"avx512"``, ``"avx2"``, ``"baseline"`` (``"neon"`` on aarch64) or ``"auto"`` (the best
        this CPU runs).

    Returns
    -------
    str
        The level that was active before, so that ``set_simd(previous)`` restores it.

    Raises
    ------
    TypeError
        If ``level`` is not a string.
    ValueError
        If ``level`` is unknown or this CPU cannot run it (the message lists the levels it can).
    """
    if not isinstance(level, str):
        raise TypeError(f"set_simd: level must be a string, got {type(level).__name__}")
    previous = get_simd()
    _core.set_simd(level)
    return previous
