"""fastnn: C++-accelerated neural-network training on the CPU, the CS231n way, only fast."""

from __future__ import annotations

# The extension links the OpenBLAS of the scipy-openblas32 wheel through an RPATH; importing the
# package first also loads that library by its path (a second safety net, e.g. for odd installs).
try:  # pragma: no cover - exercised by every import
    import scipy_openblas32 as _scipy_openblas32  # noqa: F401
except ImportError:  # a build against a system BLAS does not need it
    _scipy_openblas32 = None

from fastnn import _core
from fastnn._threads import get_num_threads, set_num_threads, threads

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "get_num_threads",
    "set_num_threads",
    "threads",
    "build_info",
]


def build_info() -> dict[str, object]:
    """Describe the build: BLAS, OpenMP, SIMD level and thread counts.

    Returns
    -------
    dict
        Keys ``blas``, ``gemm_threading``, ``openmp``, ``simd``, ``num_threads``,
        ``hardware_threads``.
    """
    return {
        "blas": _core.blas_info(),
        "gemm_threading": _core.gemm_threading(),
        "openmp": bool(_core.openmp),
        "simd": _core.simd_level(),
        "num_threads": _core.get_num_threads(),
        "hardware_threads": _core.hardware_threads(),
    }
