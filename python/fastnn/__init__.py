"""fastnn: C++-accelerated neural-network training on the CPU, the CS231n way, only fast."""

from __future__ import annotations

import os as _os

# NumPy first: its own OpenBLAS reads the environment when it loads, so the setting below cannot
# reach it.
import numpy as _np  # noqa: F401

# The extension links the OpenBLAS of the scipy-openblas32 wheel through an RPATH (and importing
# the wheel's package makes sure it is installed). Under fastnn's default GEMM policy ("tiles")
# that OpenBLAS always runs single-threaded, so it is loaded with OPENBLAS_NUM_THREADS=1: otherwise
# it starts a pthreads pool at load time whose threads spin for ~0.1 s, stealing cores from the
# first kernels (measured: the first 0.1 s of GEMMs ran at half speed on 2 cores).
#
# The kernel set OpenBLAS loads (OPENBLAS_CORETYPE) is fastnn._blas_kernels' choice: its Zen kernels
# on AMD CPUs with AVX2 and FMA (faster than its own AVX-512 choice on Zen 4), known-good kernels
# where its own choice fails (aarch64 with SME, x86-64 without SSE4.1), else OpenBLAS's own;
# FASTNN_OPENBLAS_CORETYPE ("auto" or "" = no choice) or the user's OPENBLAS_CORETYPE win. The
# CPU's features come from CPUID (NumPy) or HWCAP, never from /proc/cpuinfo's flags, which an
# emulator reports for the host. NumPy's OpenBLAS, already loaded above, is not affected.
_saved_blas_env = {k: _os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")}

from fastnn._blas_kernels import choose_openblas_coretype as _choose_coretype  # noqa: E402
from fastnn._blas_kernels import detect_cpu as _detect_cpu  # noqa: E402

if _os.environ.get("FASTNN_GEMM_THREADING", "tiles") == "tiles":
    _os.environ["OPENBLAS_NUM_THREADS"] = "1"
_coretype = _choose_coretype(_detect_cpu(), _os.environ)
if _coretype:
    _os.environ["OPENBLAS_CORETYPE"] = _coretype
try:
    try:  # pragma: no cover - exercised by every import (this import loads the library)
        import scipy_openblas32 as _scipy_openblas32  # noqa: F401
    except ImportError:  # a build against a system BLAS does not need it
        _scipy_openblas32 = None
    from fastnn import _core
finally:
    for _k, _v in _saved_blas_env.items():
        if _v is None:
            _os.environ.pop(_k, None)
        else:
            _os.environ[_k] = _v

from fastnn import augment, datasets, losses, optim, preprocessing, schedules  # noqa: E402
from fastnn._simd import get_simd, set_simd, supported_simd  # noqa: E402
from fastnn._threads import get_num_threads, set_num_threads, threads  # noqa: E402
from fastnn.layers import (  # noqa: E402
    ELU,
    BatchNorm,
    Dense,
    Dropout,
    LeakyReLU,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    Tanh,
)
from fastnn.model import MLP, Sequential  # noqa: E402
from fastnn.trainer import NonFiniteLossError, Trainer  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "get_num_threads",
    "set_num_threads",
    "threads",
    "get_simd",
    "set_simd",
    "supported_simd",
    "build_info",
    "Sequential",
    "MLP",
    "Trainer",
    "NonFiniteLossError",
    "load",
    "Dense",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Tanh",
    "Sigmoid",
    "Maxout",
    "BatchNorm",
    "Dropout",
    "augment",
    "datasets",
    "losses",
    "optim",
    "preprocessing",
    "schedules",
]


# scikit-learn estimators, loaded on first use (fastnn.estimator needs scikit-learn; the core does
# not). Not in __all__, so that `from fastnn import *` does not import scikit-learn.
_LAZY = {"MLPClassifier": "fastnn.estimator", "MLPRegressor": "fastnn.estimator"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load(path):  # noqa: ANN001 - documented in fastnn.io.load
    """Load a model checkpoint written by ``model.save(path)`` or a ``ModelCheckpoint``.

    The same as :func:`fastnn.io.load` (see there for the return value and the errors); needs
    safetensors (``pip install 'fastnn[io]'``).

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    """
    from fastnn.io import load as _load

    return _load(path)


def build_info() -> dict[str, object]:
    """Describe the build: BLAS, OpenMP, SIMD level and thread counts.

    Returns
    -------
    dict
        Keys ``blas``, ``blas_kernels`` (the CPU kernel set OpenBLAS uses, e.g. ``"Zen"``;
        ``FASTNN_OPENBLAS_CORETYPE`` chooses it at import), ``gemm_threading``, ``openmp``,
        ``simd`` (the SIMD clone the kernels run now: ``FASTNN_SIMD`` or :func:`set_simd` choose
        it), ``simd_supported`` (the clones this CPU runs, best first), ``num_threads``,
        ``hardware_threads`` (the CPUs this process may use: affinity capped by the cgroup quota),
        ``cgroup_cpu_limit`` (that quota in CPUs, 0 for none), ``thread_pool`` (the waiting policy).
    """
    return {
        "blas": _core.blas_info(),
        "blas_kernels": _core.blas_corename(),
        "gemm_threading": _core.gemm_threading(),
        "openmp": bool(_core.openmp),
        "simd": _core.simd_level(),
        "simd_supported": _core.simd_supported(),
        "num_threads": _core.get_num_threads(),
        "hardware_threads": _core.hardware_threads(),
        "cgroup_cpu_limit": _core.cgroup_cpu_limit(),
        "thread_pool": f"fastnn's own: chunks claimed by the threads that are awake, idle workers spin "
                       f"{_core.spin_micros()} us (FASTNN_SPIN_US) then sleep",
    }
