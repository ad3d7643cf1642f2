"""Thread control: one setting governs the kernels and BLAS, OMP_NUM_THREADS is respected, and
the GEMM tiling (hence every result) does not depend on the thread count."""

from __future__ import annotations

import os
import subprocess
import sys

import fastnn
import numpy as np
import pytest
from conftest import many_threads
from fastnn import _core
from fastnn._blas_kernels import choose_openblas_coretype, detect_cpu


def test_set_and_get():
    for n in (1, 2, 5):
        fastnn.set_num_threads(n)
        assert fastnn.get_num_threads() == n
    with fastnn.threads(3):
        assert fastnn.get_num_threads() == 3
    assert fastnn.get_num_threads() == 5


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_bad_thread_counts(bad, exc):
    with pytest.raises(exc, match="set_num_threads"):
        fastnn.set_num_threads(bad)


def _threads_in_child(env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "FASTNN_NUM_THREADS")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_environment_is_respected():
    assert _threads_in_child({"OMP_NUM_THREADS": "3"}) == 3
    assert _threads_in_child({"OMP_NUM_THREADS": "3", "FASTNN_NUM_THREADS": "2"}) == 2
    assert _threads_in_child({}) == _core.hardware_threads()


def _kernels_in_child(env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "FASTNN_OPENBLAS_CORETYPE")}
    env.update(env_extra)
    code = ("import os, fastnn; print(fastnn.build_info()['blas_kernels']); "
            "print(os.environ.get('OPENBLAS_CORETYPE', '-'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    kernels, env_after = out.stdout.split()
    return kernels, env_after


# Kernel sets every CPU of the architecture can load, as OpenBLAS names them (get_corename); two
# per architecture, so that one differs from OpenBLAS's own choice. No GEMM runs in the children.
FORCEABLE_KERNELS = {"x86_64": ("Nehalem", "Sandybridge"), "aarch64": ("cortexa57", "neoversen1")}
# What scipy-openblas32's get_corename reports for a forced set whose kernels another set shares.
REPORTED_AS = {"Zen": ("Zen", "Haswell"), "Prescott": ("Prescott", "Katmai")}


def test_openblas_kernel_set_choice_and_the_environment_is_left_as_found():
    choice = choose_openblas_coretype(detect_cpu(), {})
    kernels, env_after = _kernels_in_child({})
    assert env_after == "-"  # set only while the library loads
    if choice is not None:  # OpenBLAS may name a set after another that shares its kernels
        assert kernels.lower() in {n.lower() for n in REPORTED_AS.get(choice, (choice,))}
    own, _ = _kernels_in_child({"FASTNN_OPENBLAS_CORETYPE": "auto"})
    assert own  # OpenBLAS's own choice, whatever it is on this CPU
    arch = detect_cpu().arch
    if arch not in FORCEABLE_KERNELS:
        pytest.skip(f"no known OpenBLAS kernel set names for {arch}")
    name = next(k for k in FORCEABLE_KERNELS[arch] if k != own)
    forced, _ = _kernels_in_child({"FASTNN_OPENBLAS_CORETYPE": name})
    assert forced == name
    user, env_after = _kernels_in_child({"OPENBLAS_CORETYPE": name})
    assert (user, env_after) == (name, name)  # the user's own setting wins and stays


def test_build_info():
    info = fastnn.build_info()
    assert info["blas"] == "scipy-openblas32"
    assert info["gemm_threading"] == "tiles"
    assert info["simd"] in ("avx512", "avx2", "baseline", "neon")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_matches_numpy_and_is_thread_independent(dtype, ta, tb, rng):
    for M, N, K in [(1, 1, 1), (3, 5, 7), (64, 300, 129), (700, 90, 257), (33, 1000, 64)]:
        a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
        b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
        want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
        fastnn.set_num_threads(1)
        got = _core.gemm(a, b, trans_a=ta, trans_b=tb)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(K))
        for n in many_threads():
            fastnn.set_num_threads(n)
            np.testing.assert_array_equal(got, _core.gemm(a, b, trans_a=ta, trans_b=tb))


def test_gemm_alpha_beta_and_errors(rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    c = rng.standard_normal((4, 5))
    want = 2 * a @ b + 0.5 * c
    _core.gemm(a, b, alpha=2.0, beta=0.5, out=c)
    np.testing.assert_allclose(c, want, rtol=1e-12)
    with pytest.raises(ValueError, match="inner dimensions"):
        _core.gemm(a, a)
    with pytest.raises(ValueError, match="beta"):
        _core.gemm(a, b, beta=1.0)


def test_gemm_tiling_depends_on_shape_only():
    assert _core.gemm_tiles(8, 8, 8) == 1
    assert _core.gemm_tiles(256, 4096, 4096) == min(_core.hardware_threads(), 64)
    for n in many_threads():
        fastnn.set_num_threads(n)
        assert _core.gemm_tiles(256, 4096, 4096) == min(_core.hardware_threads(), 64)
