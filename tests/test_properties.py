"""Property tests (hypothesis): random shapes, memory layouts (strided, transposed, reversed),
dtypes and value scales for every kernel of the registry and the functional API, plus a fuzz of the
checkpoint loader with corrupted files.

Properties:

* every kernel's forward and backward agree with the float64 NumPy reference (registry.py), for
  any shape, either precision and any memory layout of the read-only inputs;
* 1 thread and N threads give bitwise identical results;
* softmax (and the softmax loss and its gradient) is invariant to adding a constant to a row;
* dropout that keeps every unit (keep probability 1 in the functional API, ``Dropout(p=0)`` in a
  model) is the identity, bit for bit;
* batch norm's training output has per-feature mean ``beta`` and standard deviation
  ``|gamma| * sqrt(var / (var + eps))`` (exactly ``beta`` for a constant feature);
* the fused optimizer steps agree with their NumPy formulas;
* a checkpoint with any bytes changed, removed or appended either loads as the very same model (a
  change that does not matter, e.g. header padding) or raises ``ValueError`` -- never another
  exception, a crash, a hang, or a call of pickle/eval/exec.

Bounded: a few dozen examples per property, no deadline; the whole file runs in well under 60 s.
"""

from __future__ import annotations

import builtins
import contextlib
import marshal
import pickle
import tempfile
import time
from pathlib import Path

import fastnn
import numpy as np
import pytest
from conftest import many_threads
from fastnn import _core
from fastnn import functional as F
from registry import OPS, Op, _f64

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis (extra [test])")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64])
LAYOUTS = st.sampled_from(["contiguous", "strided", "fortran", "reversed"])


def relayout(a, layout: str):
    """The same values as ``a`` in another memory layout (a view that is not C-contiguous)."""
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.ndim == 0 or layout == "contiguous":
        return a
    if layout == "strided":  # every other element of a wider buffer
        buf = np.zeros(a.shape + (2,), a.dtype)
        buf[..., 0] = a
        return buf[..., 0]
    if layout == "fortran":
        return np.asfortranarray(a)
    rev = np.ascontiguousarray(a[::-1])  # negative stride along the first axis
    return rev[::-1]


def assert_close(got, want, rtol: float, what: str, floor: float = 1e-30) -> None:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.size == 0:
        return
    scale = max(float(np.max(np.abs(want))), floor)
    err = float(np.max(np.abs(got - want)))
    assert err <= rtol * scale + 1e-300, f"{what}: max error {err:.3g} > {rtol:.1g} x {scale:.3g}"


def _tol(op: Op, dtype) -> float:
    return max(op.rtol32 if dtype == np.float32 else op.rtol64, 1e-15)


def _shape(draw, op: Op, max_n: int, max_d: int) -> tuple[int, int]:
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    if op.name.startswith("maxout"):
        d = 3 * max(1, d // 3)
    return n, d


def _inputs(draw, op: Op, dtype, max_n=24, max_d=24):
    shape = _shape(draw, op, max_n, max_d)
    seed = draw(st.integers(0, 2**32 - 1))
    d = op.make(np.random.default_rng(seed), shape, dtype)
    return d


@pytest.mark.parametrize("op", OPS, ids=[o.name for o in OPS])
@SETTINGS
@given(data=st.data(), dtype=DTYPES, layout=LAYOUTS)
def test_kernel_matches_float64_reference(op: Op, data, dtype, layout):
    d = _inputs(data.draw, op, dtype)
    want = op.np_forward(_f64(d))
    viewed = {k: relayout(v, layout) for k, v in d.items()}
    got = op.forward(_core, viewed)
    assert_close(got, want, _tol(op, dtype), f"{op.name} forward ({layout})")
    if op.is_loss:
        dout = 1.0
        floor = 0.0
    else:
        dout = np.random.default_rng(7).standard_normal(np.shape(got)).astype(dtype)
        floor = float(np.max(np.abs(dout))) if dout.size else 0.0
    want_g = op.np_backward(_f64(d), dout if op.is_loss else dout.astype(np.float64))
    got_g = op.backward(_core, viewed, dout if op.is_loss else relayout(dout, layout))
    for k in op.diff_args:
        assert got_g[k].dtype == dtype
        assert_close(got_g[k], want_g[k], 4 * _tol(op, dtype), f"{op.name} d{k} ({layout})", floor)


@pytest.mark.parametrize("op", OPS, ids=[o.name for o in OPS])
@settings(max_examples=4, deadline=None, derandomize=True)
@given(data=st.data(), dtype=DTYPES)
def test_thread_count_does_not_change_a_bit(op: Op, data, dtype):
    # large enough that the kernels split the work over threads
    d = _inputs(data.draw, op, dtype, max_n=300, max_d=200)
    try:
        fastnn.set_num_threads(1)
        out1 = np.asarray(op.forward(_core, d))
        dout = 1.0 if op.is_loss else np.random.default_rng(3).standard_normal(out1.shape).astype(dtype)
        g1 = op.backward(_core, d, dout)
        for n in many_threads():
            fastnn.set_num_threads(n)
            assert np.array_equal(np.asarray(op.forward(_core, d)), out1), f"{op.name} forward, {n} threads"
            gn = op.backward(_core, d, dout)
            for k in op.diff_args:
                assert np.array_equal(gn[k], g1[k]), f"{op.name} d{k}, {n} threads"
    finally:
        fastnn.set_num_threads(1)


@SETTINGS
@given(n=st.integers(1, 30), c=st.integers(2, 30), dtype=DTYPES, seed=st.integers(0, 2**32 - 1),
       scale=st.floats(1e-3, 30.0), shift=st.floats(-50.0, 50.0), layout=LAYOUTS)
def test_softmax_is_invariant_to_a_constant_per_row(n, c, dtype, seed, scale, shift, layout):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((n, c))).astype(dtype)
    const = (shift * rng.standard_normal((n, 1))).astype(dtype)
    y = rng.integers(0, c, n)
    shifted = (x + const).astype(dtype)
    # x + const is itself rounded: compare against the float64 softmax of the values given
    tol = 1e-5 if dtype == np.float32 else 1e-12
    p, ps = F.softmax(relayout(x, layout)), F.softmax(relayout(shifted, layout))
    assert_close(ps, p, tol + float(np.max(np.abs(shifted - (x.astype(np.float64) + const)))) * 2, "softmax")
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=4 * tol)
    assert np.all(p >= 0)
    loss, dx = F.softmax_loss(x, y)
    loss_s, dx_s = F.softmax_loss(shifted, y)
    rounding = float(np.max(np.abs(shifted - (x.astype(np.float64) + const))))
    assert abs(loss - loss_s) <= 8 * (tol + rounding) * max(1.0, abs(loss))
    assert_close(dx_s, dx, 8 * (tol + rounding) * c, "softmax_loss dscores", 1.0 / n)


@SETTINGS
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), dtype=DTYPES, seed=st.integers(0, 2**32 - 1),
       layout=LAYOUTS, with_seed=st.booleans())
def test_dropout_keeping_every_unit_is_the_identity(shape, dtype, seed, layout, with_seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    param = {"p": 1.0, "mode": "train", **({"seed": seed} if with_seed else {})}
    out, cache = F.dropout_forward(relayout(x, layout), param)
    assert out.dtype == dtype and np.array_equal(out, x)
    dout = np.random.default_rng(seed + 1).standard_normal(shape).astype(dtype)
    assert np.array_equal(F.dropout_backward(dout, cache), dout)
    out_k, mask = _core.dropout_forward(x, 1.0, seed)
    assert np.array_equal(out_k, x) and np.all(mask == 1)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), dtype=DTYPES, n=st.integers(2, 40))
def test_a_model_with_dropout_zero_trains_like_one_without(seed, dtype, n):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(dtype)
    y = rng.integers(0, 3, n)
    kw = {"seed": seed, "dtype": dtype}
    with_drop = fastnn.Sequential([fastnn.Dense(5, 7), fastnn.ReLU(), fastnn.Dropout(0.0), fastnn.Dense(7, 3)], **kw)
    without = fastnn.Sequential([fastnn.Dense(5, 7), fastnn.ReLU(), fastnn.Dense(7, 3)], **kw)
    without.set_weights({k.replace("3.", "2."): v for k, v in with_drop.get_weights().items()})
    for _ in range(3):
        a = with_drop.train_step(X, y, "adam")
        b = without.train_step(X, y, "adam")
        assert a == b
    for k, v in with_drop.params.items():
        assert np.array_equal(v, without.params[k.replace("3.", "2.")])


@SETTINGS
@given(n=st.integers(2, 64), d=st.integers(1, 12), dtype=DTYPES, seed=st.integers(0, 2**32 - 1),
       scale=st.floats(1e-2, 1e3), eps=st.sampled_from([1e-5, 1e-3, 0.1]), layout=LAYOUTS,
       constant=st.booleans())
def test_batchnorm_output_has_the_expected_mean_and_std(n, d, dtype, seed, scale, eps, layout, constant):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((n, d)) + rng.uniform(-100, 100, d)).astype(dtype)
    if constant:
        x[:, 0] = x[0, 0]  # a feature with zero variance
    gamma = rng.uniform(-2, 2, d).astype(dtype)
    beta = rng.uniform(-2, 2, d).astype(dtype)
    out, _ = F.batchnorm_forward(relayout(x, layout), gamma, beta, {"mode": "train", "eps": eps})
    assert np.all(np.isfinite(out))
    x64 = x.astype(np.float64)
    var = x64.var(0)
    tol = 1e-3 if dtype == np.float32 else 1e-9
    mean_err = np.abs(out.astype(np.float64).mean(0) - beta)
    assert np.all(mean_err <= 10 * tol * (1 + np.abs(gamma))), mean_err
    want_std = np.abs(gamma.astype(np.float64)) * np.sqrt(var / (var + eps))
    np.testing.assert_allclose(out.astype(np.float64).std(0), want_std, rtol=10 * tol, atol=10 * tol)
    if constant:
        np.testing.assert_allclose(out[:, 0], beta[0], atol=tol)


def _np_update(kind: str, w, dw, cfg, t):
    """CS231n's update formulas in float64 (one step from zero state)."""
    lr = cfg["learning_rate"]
    if kind == "sgd":
        return w - lr * dw
    if kind == "sgd_momentum":
        return w + (-lr * dw)
    if kind == "nesterov_momentum":
        v = -lr * dw
        return w + (1 + cfg["momentum"]) * v
    if kind == "adagrad":
        return w - lr * dw / (np.sqrt(dw * dw) + cfg["epsilon"])
    if kind == "rmsprop":
        c = (1 - cfg["decay_rate"]) * dw * dw
        return w - lr * dw / (np.sqrt(c) + cfg["epsilon"])
    b1, b2, e = cfg["beta1"], cfg["beta2"], cfg["epsilon"]
    m = (1 - b1) * dw / (1 - b1**t)
    v = (1 - b2) * dw * dw / (1 - b2**t)
    if kind == "adamw":
        w = w * (1 - lr * cfg["weight_decay"])
    return w - lr * m / (np.sqrt(v) + e)


@SETTINGS
@given(kind=st.sampled_from(["sgd", "sgd_momentum", "nesterov_momentum", "adagrad", "rmsprop", "adam", "adamw"]),
       shape=st.lists(st.integers(1, 12), min_size=1, max_size=3), dtype=DTYPES, seed=st.integers(0, 2**32 - 1),
       lr=st.floats(1e-5, 1.0), mu=st.floats(0.0, 0.99), layout=LAYOUTS)
def test_update_rules_match_their_formulas(kind, shape, dtype, seed, lr, mu, layout):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape).astype(dtype)
    dw = rng.standard_normal(shape).astype(dtype)
    cfg = {"learning_rate": lr, "momentum": mu, "decay_rate": 0.9, "epsilon": 1e-8, "beta1": 0.9, "beta2": 0.999,
           "weight_decay": 0.01}
    cfg = {k: v for k, v in cfg.items()
           if k == "learning_rate" or (k == "momentum" and "momentum" in kind) or
           (k == "decay_rate" and kind == "rmsprop") or (k == "epsilon" and kind in ("adagrad", "rmsprop", "adam",
                                                                                     "adamw")) or
           (k in ("beta1", "beta2") and kind.startswith("adam")) or (k == "weight_decay" and kind == "adamw")}
    full = {"epsilon": 1e-8, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.01, "decay_rate": 0.9,
            "momentum": 0.9, **cfg}
    want = _np_update(kind, w0.astype(np.float64), dw.astype(np.float64), full, 1)
    next_w, config = getattr(F, kind)(w0.copy(), relayout(dw, layout), dict(cfg))
    assert next_w.dtype == dtype
    tol = 3e-6 if dtype == np.float32 else 1e-13
    assert_close(next_w, want, tol, kind, 1.0)


@SETTINGS
@given(n=st.integers(1, 50), d=st.integers(1, 50), dtype=DTYPES, seed=st.integers(0, 2**32 - 1))
def test_nan_and_inf_propagate_through_elementwise_kernels(n, d, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    i, j = rng.integers(0, n), rng.integers(0, d)
    x[i, j] = np.nan
    fwds = (F.relu_forward, F.tanh_forward, F.sigmoid_forward, F.elu_forward, F.leaky_relu_forward,
            lambda x: F.prelu_forward(x, np.full(1, 0.2, x.dtype)), lambda x: F.maxout_forward(x, 1))
    for fwd in fwds:
        out, _ = fwd(x)
        assert np.isnan(out[i, j]), fwd  # NaN is never turned into a number
        mask = np.ones_like(x, bool)
        mask[i, j] = False
        assert np.all(np.isfinite(out[mask]))
    assert _core.first_nonfinite(x) == i * d + j


# ------------------------------------------------------------------------------------------------
# Checkpoint loader fuzz
# ------------------------------------------------------------------------------------------------
_GOOD: dict[str, object] = {}


def _good_checkpoint() -> tuple[bytes, dict[str, np.ndarray]]:
    if not _GOOD:
        pytest.importorskip("safetensors", reason="checkpoints need safetensors (extra [io])")
        rng = np.random.default_rng(0)
        X = rng.standard_normal((64, 6)).astype(np.float32)
        y = rng.integers(0, 3, 64)
        m = fastnn.MLP(6, [5], 3, batchnorm=True, dropout=0.1, seed=1)
        m.fit(X, y, epochs=1, batch_size=16, optimizer="adam")
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "good.safetensors"
            m.save(p, history=None, extra={"note": "fuzz"})
            _GOOD["bytes"] = p.read_bytes()
        _GOOD["weights"] = m.get_weights()
        _GOOD["step"] = m.step
        _GOOD["seed"] = m.seed
    return _GOOD["bytes"], _GOOD["weights"]  # type: ignore[return-value]


@contextlib.contextmanager
def _no_code_execution():
    """pickle, marshal, eval and exec all fail loudly while the loader runs."""
    def forbidden(*a, **k):
        raise AssertionError("the checkpoint loader tried to execute code")

    saved = (pickle.load, pickle.loads, marshal.loads, builtins.eval, builtins.exec)
    pickle.load = pickle.loads = marshal.loads = forbidden
    builtins.eval = builtins.exec = forbidden
    try:
        yield
    finally:
        pickle.load, pickle.loads, marshal.loads, builtins.eval, builtins.exec = saved


MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10**9), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("delete"), st.integers(0, 10**9), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, 10**9), st.integers(0, 255)),
    st.tuples(st.just("append"), st.integers(1, 64), st.integers(0, 255)),
)


def _mutate(data: bytes, muts) -> bytes:
    b = bytearray(data)
    for kind, pos, val in muts:
        if not b:
            break
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= 1 << val
        elif kind == "set":
            b[i] = val
        elif kind == "truncate":
            del b[i:]
        elif kind == "delete":
            del b[i:i + val]
        elif kind == "insert":
            b.insert(i, val)
        else:
            b.extend([val] * pos)
    return bytes(b)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(muts=st.lists(MUTATION, min_size=1, max_size=3), region=st.sampled_from(["any", "header", "data"]))
def test_corrupted_checkpoints_give_a_clear_error(muts, region):
    data, weights = _good_checkpoint()
    n = int.from_bytes(data[:8], "little")
    if region != "any":  # aim at the 8-byte length + JSON header, or at the tensor bytes
        lo, size = (0, 8 + n) if region == "header" else (8 + n, len(data) - 8 - n)
        muts = [(k, lo + p % size, v) if k != "append" else (k, p, v) for k, p, v in muts]
    bad = _mutate(data, muts)
    assume(bad != data)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ck.safetensors"
        path.write_bytes(bad)
        t0 = time.perf_counter()
        try:
            with _no_code_execution():
                model = fastnn.io.load(path)
        except ValueError:
            pass  # a clear error (the message names the file; checked in test_bad_input.py)
        else:  # a change that does not matter (e.g. header padding): the very same model
            got = model.get_weights()
            assert set(got) == set(weights)
            for k, v in weights.items():
                assert got[k].dtype == v.dtype and np.array_equal(got[k], v), k
            assert model.step == _GOOD["step"] and model.seed == _GOOD["seed"]
        assert time.perf_counter() - t0 < 10, "the loader took too long"
