"""Generic kernel tests, driven by the registry (registry.py): every kernel in float32 and
float64 against its NumPy reference and its scalar C++ reference, float64 finite-difference
gradients, bitwise equality across thread counts, guard values around outputs, and bad input —
each under every SIMD clone this CPU runs (the `simd` fixture: avx512 / avx2 / baseline)."""

from __future__ import annotations

import fastnn
import numpy as np
import pytest
from conftest import many_threads
from fastnn import _core
from registry import OPS, Op, _f64

DTYPES = [np.float32, np.float64]

pytestmark = pytest.mark.usefixtures("simd")


def assert_close(got, want, rtol, what="", scale_floor=1e-30):
    """max |got - want| <= rtol * max(max |want|, scale_floor)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(np.max(np.abs(want)) if want.size else 0.0, scale_floor)
    err = np.max(np.abs(got - want)) if want.size else 0.0
    assert err <= rtol * scale + 1e-30, f"{what}: max error {err:.3g} > {rtol:.1g} x {scale:.3g}"


def _tol(op: Op, dtype, n_terms: int = 1) -> float:
    base = op.rtol32 if dtype == np.float32 else op.rtol64
    return max(base, 1e-15)


def _dout(rng, op: Op, out):
    if op.is_loss:
        return 1.0
    return rng.standard_normal(np.shape(out)).astype(np.asarray(out).dtype)


def _ids(ops):
    return [op.name for op in ops]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS, ids=_ids(OPS))
def test_forward_matches_numpy_and_scalar_reference(op: Op, dtype, rng):
    for shape in op.shapes:
        d = op.make(rng, shape, dtype)
        fast = op.forward(_core, d)
        ref = op.forward(_core.ref, d)
        want = op.np_forward(_f64(d))
        if not op.is_loss:
            assert fast.dtype == dtype, f"{op.name}: {dtype.__name__} in gave {fast.dtype} out"
        assert_close(fast, want, _tol(op, dtype), f"{op.name} {shape} fast vs numpy")
        assert_close(ref, want, _tol(op, dtype), f"{op.name} {shape} scalar ref vs numpy")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS, ids=_ids(OPS))
def test_backward_matches_numpy_and_scalar_reference(op: Op, dtype, rng):
    for shape in op.shapes:
        d = op.make(rng, shape, dtype)
        dout = _dout(rng, op, op.forward(_core, d))
        want = op.np_backward(_f64(d), dout if op.is_loss else np.asarray(dout, np.float64))
        fast = op.backward(_core, d, dout)
        ref = op.backward(_core.ref, d, dout)
        # A local derivative computed in float32 (e.g. 1 - tanh^2 from the float32 output) has an
        # absolute error of a few ulps, so errors are measured against the upstream gradient too.
        floor = float(np.max(np.abs(dout))) if not op.is_loss else 0.0
        for k in op.diff_args:
            assert fast[k].dtype == dtype
            tol = 4 * _tol(op, dtype)
            assert_close(fast[k], want[k], tol, f"{op.name} {shape} d{k} fast vs numpy", floor)
            assert_close(ref[k], want[k], tol, f"{op.name} {shape} d{k} ref vs numpy", floor)


def numeric_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred differences of the scalar f() with respect to every element of x (in place)."""
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gf[i] = (fp - fm) / (2 * h)
    return g


@pytest.mark.parametrize("op", OPS, ids=_ids(OPS))
def test_float64_gradient_check(op: Op, rng):
    """The C++ backward agrees with centred differences of the C++ forward (float64)."""
    for shape in op.grad_shapes:
        d = op.make(rng, shape, np.float64)
        out = op.forward(_core, d)
        R = 1.0 if op.is_loss else rng.standard_normal(np.shape(out))
        grads = op.backward(_core, d, R)

        def f(d=d, R=R):
            return float(np.sum(op.forward(_core, d) * R))

        for k in op.diff_args:
            num = numeric_gradient(f, d[k])
            a = grads[k]
            # Relative error per coordinate; coordinates whose gradient is over 1000x smaller than
            # the tensor's largest are judged against that scale instead (finite differences
            # cannot resolve them: their error is set by the rounding of f, ~1e-16 / h, not by
            # the gradient). A wrong backward still shows up on the large coordinates.
            floor = max(1e-3 * float(np.max(np.abs(a))), 1e-10)
            rel = np.max(np.abs(a - num) / np.maximum(np.abs(a) + np.abs(num), floor))
            assert rel < 1e-6, f"{op.name} {shape}: d{k} relative error {rel:.2e}"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS, ids=_ids(OPS))
def test_bitwise_identical_across_thread_counts(op: Op, dtype, rng):
    shape = (600, 700) if not op.name.startswith("maxout") else (600, 702)
    d = op.make(rng, shape, dtype)
    fastnn.set_num_threads(1)
    out1 = op.forward(_core, d)
    dout = _dout(rng, op, out1)
    g1 = op.backward(_core, d, dout)
    for n in many_threads():
        fastnn.set_num_threads(n)
        outn = op.forward(_core, d)
        gn = op.backward(_core, d, dout)
        assert np.array_equal(np.asarray(out1), np.asarray(outn)), \
            f"{op.name}: forward differs at {n} threads"
        for k in op.diff_args:
            assert np.array_equal(g1[k], gn[k]), f"{op.name}: d{k} differs at {n} threads"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", [o for o in OPS if o.forward_out], ids=_ids([o for o in OPS if o.forward_out]))
def test_guard_values_around_outputs(op: Op, dtype, rng):
    """Writing into a window of a larger buffer leaves the guard values on both sides intact."""
    for nthreads in (1, 2):
        fastnn.set_num_threads(nthreads)
        for shape in op.shapes:
            d = op.make(rng, shape, dtype)
            want = op.forward(_core, d)
            G = 37
            buf = np.full(want.size + 2 * G, -7.25e11, dtype=dtype)
            out = buf[G:G + want.size].reshape(want.shape)
            op.forward_out(_core, d, out)
            assert np.all(buf[:G] == -7.25e11) and np.all(buf[G + want.size:] == -7.25e11), \
                f"{op.name} {shape}: wrote outside its output"
            assert np.array_equal(out, want)


@pytest.mark.parametrize("op", OPS, ids=_ids(OPS))
def test_rejects_non_float_inputs(op: Op, rng):
    d = op.make(rng, op.grad_shapes[0], np.float64)
    for bad in (d[op.first].astype(np.int64), d[op.first].astype(np.complex128),
                d[op.first].astype(bool), d[op.first].astype(np.float16),
                d[op.first].astype(object)):
        with pytest.raises(TypeError, match=r"'(x|scores|pred|w)'"):
            op.forward(_core, {**d, op.first: bad})


def _float_args(op: Op) -> list[str]:
    d = op.make(np.random.default_rng(0), (3, 4), np.float64)
    return [k for k, v in d.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]


@pytest.mark.parametrize("op", [o for o in OPS if len(_float_args(o)) > 1], ids=lambda o: o.name)
def test_rejects_mixed_precision(op: Op, rng):
    d = op.make(rng, op.grad_shapes[0], np.float64)
    for k, v in d.items():
        if k != op.first and isinstance(v, np.ndarray) and v.dtype.kind == "f":
            with pytest.raises(TypeError, match=f"'{k}'.*float32"):
                op.forward(_core, {**d, k: v.astype(np.float32)})


@pytest.mark.parametrize("op", [o for o in OPS if o.forward_out], ids=_ids([o for o in OPS if o.forward_out]))
def test_rejects_unusable_output_arrays(op: Op, rng):
    d = op.make(rng, (4, 6), np.float64)
    want = op.forward(_core, d)
    ro = np.empty_like(want)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="'out' is written in place but is read-only"):
        op.forward_out(_core, d, ro)
    if want.ndim == 2 and want.shape[1] > 1:
        nc = np.empty((want.shape[1], want.shape[0]), want.dtype).T
        with pytest.raises(ValueError, match="'out' .*C-contiguous"):
            op.forward_out(_core, d, nc)
    with pytest.raises(TypeError, match="'out' .*dtype float64"):
        op.forward_out(_core, d, np.empty(want.shape, np.float32))
    with pytest.raises(ValueError, match="'out' must have shape"):
        op.forward_out(_core, d, np.empty((want.size + 1,), want.dtype))


@pytest.mark.parametrize("op", OPS, ids=_ids(OPS))
def test_non_contiguous_inputs_are_read_correctly(op: Op, rng):
    """A strided view of an input gives the same result as its contiguous copy."""
    d = op.make(rng, (6, 8) if not op.name.startswith("maxout") else (6, 9), np.float64)
    want = op.forward(_core, d)
    big = np.zeros((d[op.first].shape[0], 2 * d[op.first].shape[-1]), np.float64)
    big[:, ::2] = d[op.first].reshape(d[op.first].shape[0], -1)
    view = big[:, ::2].reshape(d[op.first].shape)
    assert not view.flags.c_contiguous
    got = op.forward(_core, {**d, op.first: view})
    assert np.array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_first_nonfinite(dtype, rng):
    for n in (1, 7, 16384, 16385, 100_003):
        x = rng.standard_normal(n).astype(dtype)
        assert _core.first_nonfinite(x) == -1 == _core.ref.first_nonfinite(x)
        for bad in (np.nan, np.inf, -np.inf):
            for i in sorted({0, n // 2, n - 1}):
                y = x.copy()
                y[i] = bad
                if i + 1 < n:
                    y[-1] = np.nan  # a later bad value must not win
                for threads in (1, 2, 3):
                    with fastnn.threads(threads):
                        assert _core.first_nonfinite(y) == i
                assert _core.ref.first_nonfinite(y) == i
