"""The SIMD clones and their override (FASTNN_SIMD, fastnn.set_simd): every clone this CPU runs
can be selected, the one that executes is the one selected (read back from C++), levels the CPU
cannot run are refused with a clear error, and the clones agree — bitwise where the code has
nothing to round differently, else to a stated tolerance.

Which results are bitwise across clones (the table below is the documentation): kernels with no
arithmetic that FMA contraction or a vector-width-dependent reduction could round differently —
selects and single multiplies (ReLU, Leaky ReLU, PReLU, maxout, dropout, the L1 penalty),
the MSE loss, and the dense layers (their GEMM is OpenBLAS's, whose kernel does not depend on
fastnn's clone). Everything else (exp/tanh polynomials, batch norm, softmax, the other update
rules) agrees to a few float32 ulps: within CLONE_RTOL of the largest magnitude.
"""

from __future__ import annotations

import os
import subprocess
import sys

import fastnn
import numpy as np
import pytest
import test_optim
from conftest import SIMD_LEVELS
from fastnn import _core
from registry import OPS, Op

ALL_LEVELS = ("avx512", "avx2", "baseline")
BITWISE_ACROSS_CLONES = {"relu", "leaky_relu", "prelu", "prelu_shared", "maxout3", "dense", "dense_nd",
                         "dropout", "mse", "l1_penalty"}
BITWISE_RULES: set[str] = set()  # the coupled L2 term contracts to FMA in every rule
CLONE_RTOL = {np.float32: 2e-6, np.float64: 1e-14}  # largest seen here: 3.7e-7 and 8e-16


def _levels_or_skip() -> list[str]:
    if len(SIMD_LEVELS) < 2:
        pytest.skip(f"this CPU runs one SIMD clone only ({SIMD_LEVELS[0]}): nothing to compare")
    return SIMD_LEVELS


@pytest.fixture(autouse=True)
def _restore_level():
    previous = fastnn.get_simd()
    yield
    fastnn.set_simd(previous)


def test_best_clone_is_the_default_and_reported():
    info = fastnn.build_info()
    assert info["simd_supported"].split(",") == SIMD_LEVELS
    assert set(SIMD_LEVELS) <= set(ALL_LEVELS) | {"neon"}
    assert SIMD_LEVELS[-1] in ("baseline", "neon")
    if "FASTNN_SIMD" not in os.environ:
        assert info["simd"] == SIMD_LEVELS[0]


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_selected_clone_is_the_one_that_runs(level):
    fastnn.set_simd(level)
    assert fastnn.get_simd() == level
    assert fastnn.build_info()["simd"] == level
    assert _core.simd_probe() == level  # a leaf compiled in every clone reports its own


def test_unknown_and_unsupported_levels_are_refused():
    before = fastnn.get_simd()
    with pytest.raises(ValueError, match="unknown SIMD level 'sse9'.*runs " + ",".join(SIMD_LEVELS)):
        fastnn.set_simd("sse9")
    with pytest.raises(TypeError, match="must be a string"):
        fastnn.set_simd(2)  # type: ignore[arg-type]
    for level in set(ALL_LEVELS) - set(SIMD_LEVELS) - {"baseline"}:
        with pytest.raises(ValueError, match=f"cannot run SIMD level '{level}'"):
            fastnn.set_simd(level)
    assert fastnn.get_simd() == before  # a refused call changes nothing
    assert fastnn.set_simd("auto") == before
    assert fastnn.get_simd() == SIMD_LEVELS[0]


def _import_with(level: str) -> subprocess.CompletedProcess:
    code = "import fastnn; from fastnn import _core; print(fastnn.build_info()['simd'], _core.simd_probe())"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "FASTNN_SIMD": level},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("level", [*SIMD_LEVELS, "auto"])
def test_environment_variable_selects_the_clone(level):
    out = _import_with(level)
    assert out.returncode == 0, out.stderr[-2000:]
    want = SIMD_LEVELS[0] if level == "auto" else level
    assert out.stdout.split() == [want, want]


@pytest.mark.parametrize("level", ["avx1024", *sorted(set(ALL_LEVELS) - set(SIMD_LEVELS) - {"baseline"})])
def test_environment_variable_naming_an_impossible_level_fails_the_import(level):
    out = _import_with(level)
    assert out.returncode != 0
    assert "ImportError: fastnn: FASTNN_SIMD" in out.stderr
    assert f"'{level}'" in out.stderr and "runs " + ",".join(SIMD_LEVELS) in out.stderr
    assert "Traceback" in out.stderr and "Fatal" not in out.stderr  # an exception, not a SIGILL


def _run_op(op: Op, d: dict, dtype) -> tuple[list[np.ndarray], list[float]]:
    """Forward output and input gradients, with the scale each is judged against: its own
    largest magnitude, and for a gradient at least the upstream gradient's (as in
    test_kernels: a local derivative rounded in float32 has an absolute error of a few ulps)."""
    out = op.forward(_core, d)
    dout = 1.0 if op.is_loss else np.random.default_rng(2).standard_normal(np.shape(out)).astype(dtype)
    grads = op.backward(_core, d, dout)
    arrays = [np.asarray(out, np.float64)] + [np.asarray(grads[k], np.float64) for k in op.diff_args]
    floor = float(np.max(np.abs(dout)))
    scales = [max(float(np.max(np.abs(a))) if a.size else 0.0, floor if i else 0.0, 1e-30)
              for i, a in enumerate(arrays)]
    return arrays, scales


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_kernels_agree_across_clones(op: Op, dtype):
    levels = _levels_or_skip()
    for shape in ((1, 7), (64, 257), (300, 600)):
        if op.name.startswith("maxout"):
            shape = (shape[0], shape[1] - shape[1] % 3 or 3)
        d = op.make(np.random.default_rng(1), shape, dtype)
        results = {}
        for level in levels:
            fastnn.set_simd(level)
            results[level] = _run_op(op, d, dtype)
        first, scales = results[levels[0]]
        for level in levels[1:]:
            for a, b, scale in zip(first, results[level][0], scales, strict=True):
                if op.name in BITWISE_ACROSS_CLONES:
                    assert np.array_equal(a, b), f"{op.name} {shape}: {level} differs from {levels[0]}"
                else:
                    err = float(np.max(np.abs(a - b))) if a.size else 0.0
                    assert err <= CLONE_RTOL[dtype] * scale, \
                        f"{op.name} {shape}: {level} vs {levels[0]}: {err:.3g} > {CLONE_RTOL[dtype]:.0e} x {scale:.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(test_optim.STATES))
def test_update_rules_agree_across_clones(name, dtype):
    levels = _levels_or_skip()
    results = {}
    for level in levels:
        fastnn.set_simd(level)
        results[level] = test_optim.run(_core, name, dtype, 70001, {"l2": 1e-3, "l1": 1e-4})
    (w0, st0) = results[levels[0]]
    for level in levels[1:]:
        w, st = results[level]
        for a, b in zip([w0, *st0], [w, *st], strict=True):
            if name in BITWISE_RULES:
                assert np.array_equal(a, b), f"{name}: {level} differs from {levels[0]}"
            else:
                np.testing.assert_allclose(b, a, rtol=0, atol=CLONE_RTOL[dtype] * float(np.max(np.abs(a))))


def test_a_training_run_agrees_across_clones():
    """Whole steps (dense, batch norm, ReLU, dropout, softmax, momentum) under each clone: the
    same within float32 rounding after 30 steps, and bitwise under the same clone run twice.
    (Not Adam here: the bias of a Dense layer that feeds batch norm has a gradient that is pure
    rounding noise, and Adam scales noise up to steps of size lr, so those 32 weights would differ
    by ~lr between clones while meaning nothing.)"""
    levels = _levels_or_skip()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 20)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)
    weights = {}
    for level in [*levels, levels[0]]:
        fastnn.set_simd(level)
        model = fastnn.Sequential([fastnn.Dense(20, 32), fastnn.BatchNorm(), fastnn.ReLU(), fastnn.Dropout(0.8),
                                   fastnn.Dense(32, 4)], seed=3)
        model.fit(X, y, epochs=3, batch_size=25, optimizer=fastnn.optim.Momentum(lr=0.05, momentum=0.9))
        w = np.concatenate([p.ravel() for p in model.params.values()]).astype(np.float64)
        if level in weights:
            assert np.array_equal(weights[level], w), f"{level}: two runs differ"
        weights[level] = w
    for level in levels[1:]:
        np.testing.assert_allclose(weights[level], weights[levels[0]], rtol=0, atol=1e-4)
