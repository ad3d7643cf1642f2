"""Inference (``forward``, ``predict_proba``, ``predict``, ``evaluate``): correctness, not speed.

The inference path has a workspace of its own, cut into chunks by ``inference_plan`` (independent of
``max_batch`` and of the thread count), runs matrix-vector products for 1 to 3 rows, fuses each
Dense layer's bias and elementwise activation into its GEMM blocks, and runs several chunks in
parallel. Checked here: a NumPy reference in float32 and float64 at row counts around every
boundary, bitwise equality with 1, 2 and 3 threads, agreement with the training-path forward (the
evaluation-mode pass of ``capture``), flat memory for large inputs, and the GEMM wrapper's
matrix-vector path itself.
"""

from __future__ import annotations

import fastnn
import numpy as np
import pytest
from conftest import many_threads
from fastnn import _core
from fastnn.layers import (
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

ROWS = [1, 2, 63, 64, 65, 257, 4096]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def relu_mlp(dims: tuple[int, ...], dtype=np.float32, seed: int = 0) -> fastnn.Sequential:
    """Dense -> ReLU per hidden width, then Dense; biases randomised (init leaves them 0)."""
    layers: list = []
    for i, o in zip(dims[:-2], dims[1:-1], strict=True):
        layers += [Dense(i, o), ReLU()]
    layers.append(Dense(dims[-2], dims[-1]))
    model = fastnn.Sequential(layers, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():
        if name.endswith("bias"):
            p[...] = rng.standard_normal(p.shape) * 0.1
    return model


def numpy_forward(model: fastnn.Sequential, X: np.ndarray) -> np.ndarray:
    """Float64 reference of an evaluation-mode forward pass through the layer kinds used here."""
    h = X.astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    buffers = {k: v.astype(np.float64) for k, v in model.buffers.items()}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            h = h @ params[f"{i}.weight"]
            if f"{i}.bias" in params:
                h = h + params[f"{i}.bias"]
        elif isinstance(layer, ReLU):
            h = np.maximum(h, 0)
        elif isinstance(layer, LeakyReLU):
            h = np.where(h > 0, h, layer.negative_slope * h)
        elif isinstance(layer, PReLU):
            h = np.where(h > 0, h, params[f"{i}.weight"] * h)
        elif isinstance(layer, ELU):
            h = np.where(h > 0, h, layer.alpha * np.expm1(np.minimum(h, 0)))
        elif isinstance(layer, Tanh):
            h = np.tanh(h)
        elif isinstance(layer, Sigmoid):
            h = 1 / (1 + np.exp(-h))
        elif isinstance(layer, Maxout):
            h = h.reshape(h.shape[0], -1, layer.k).max(axis=2)
        elif isinstance(layer, BatchNorm):
            mean, var = buffers[f"{i}.running_mean"], buffers[f"{i}.running_var"]
            h = (h - mean) / np.sqrt(var + layer.eps)
            if f"{i}.weight" in params:
                h = h * params[f"{i}.weight"] + params[f"{i}.bias"]
        elif isinstance(layer, Dropout):
            pass
        else:  # pragma: no cover - a layer kind this helper does not know
            raise NotImplementedError(type(layer).__name__)
    return h


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def all_thread_counts(f, *args):
    """f(*args) with 1 thread, then with every count of many_threads(); asserts bitwise equality."""
    fastnn.set_num_threads(1)
    ref = f(*args)
    for n in many_threads():
        fastnn.set_num_threads(n)
        np.testing.assert_array_equal(f(*args), ref, err_msg=f"{n} threads differ from 1")
    fastnn.set_num_threads(1)
    return ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dims", [(64, 256, 256, 10), (300, 129, 70, 5)])
def test_forward_and_proba_match_numpy_and_are_thread_independent(dims, dtype):
    model = relu_mlp(dims, dtype)
    rng = np.random.default_rng(7)
    tol = TOL[dtype]
    for n in ROWS:
        X = rng.standard_normal((n, dims[0])).astype(dtype)
        want = numpy_forward(model, X)
        scores = all_thread_counts(model.forward, X)
        assert scores.dtype == dtype and scores.shape == (n, dims[-1])
        np.testing.assert_allclose(scores, want, rtol=tol, atol=tol * np.abs(want).max(), err_msg=f"{n} rows")
        proba = all_thread_counts(model.predict_proba, X)
        np.testing.assert_allclose(proba, softmax(want), rtol=tol, atol=tol, err_msg=f"{n} rows")
        np.testing.assert_array_equal(model.predict(X), scores.argmax(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inference_matches_the_training_path_forward(dtype):
    # capture(train=False) runs the training runtime's forward (its own workspace, max_batch rows)
    model = relu_mlp((40, 96, 48, 6), dtype)
    rng = np.random.default_rng(3)
    tol = TOL[dtype]
    for n in [1, 2, 3, 5, 64, 200]:
        X = rng.standard_normal((n, 40)).astype(dtype)
        y = rng.integers(0, 6, n)
        _, acts, _ = model.capture(X, y, train=False)
        np.testing.assert_allclose(model.forward(X), acts[-1], rtol=tol, atol=tol * np.abs(acts[-1]).max())


LAYER_MIXES = {
    # every layer kind, elementwise activations fused into the Dense before them or not, dropout
    # between a Dense and its activation, trailing dropout, a network that ends in an activation
    "bn-leaky-dropout": lambda: [Dense(20, 48), BatchNorm(), LeakyReLU(0.1), Dropout(0.3), Dense(48, 7)],
    "tanh-prelu-maxout": lambda: [Dense(20, 32), Tanh(), Dense(32, 24), PReLU(24), Dense(24, 18), Maxout(3),
                                  Dense(6, 7)],
    "elu-sigmoid-dropout-last": lambda: [Dense(20, 33), ELU(0.7), Dense(33, 17), Dropout(0.5), Sigmoid(),
                                         Dense(17, 7), Dropout(0.1)],
    "ends-in-activation": lambda: [Dense(20, 16), ReLU(), Dense(16, 7), Tanh()],
    "dropout-only-between": lambda: [Dropout(0.2), Dense(20, 7, bias=False)],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mix", sorted(LAYER_MIXES))
def test_every_layer_kind_matches_numpy_and_the_training_path(mix, dtype):
    model = fastnn.Sequential(LAYER_MIXES[mix](), input_dim=20, dtype=dtype, seed=5)
    rng = np.random.default_rng(11)
    X_fit = rng.standard_normal((256, 20)).astype(dtype)
    model.fit(X_fit, rng.integers(0, 7, 256), epochs=1, batch_size=64)  # non-trivial running statistics
    tol = 50 * TOL[dtype]  # tanh/ELU/sigmoid: fastnn's vectorised functions, a few ulp
    for n in [1, 3, 64, 65, 600]:
        X = rng.standard_normal((n, 20)).astype(dtype)
        scores = all_thread_counts(model.forward, X)
        want = numpy_forward(model, X)
        np.testing.assert_allclose(scores, want, rtol=tol, atol=tol, err_msg=f"{n} rows")
        _, acts, _ = model.capture(X, rng.integers(0, 7, n), train=False)
        np.testing.assert_allclose(scores, acts[-1], rtol=tol, atol=tol, err_msg=f"{n} rows")


def test_evaluate_matches_numpy_and_is_thread_independent():
    model = relu_mlp((30, 64, 5), np.float64)
    rng = np.random.default_rng(2)
    for n in [1, 2, 65, 5000]:
        X, y = rng.standard_normal((n, 30)), rng.integers(0, 5, n)
        p = softmax(numpy_forward(model, X))
        fastnn.set_num_threads(1)
        ev = model.evaluate(X, y)
        assert ev["loss"] == pytest.approx(-np.mean(np.log(p[np.arange(n), y])), rel=1e-10)
        assert ev["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))
        for t in many_threads():
            fastnn.set_num_threads(t)
            assert model.evaluate(X, y) == ev


def test_mse_forward_is_not_softmaxed():
    model = fastnn.Sequential([Dense(8, 16), ReLU(), Dense(16, 3)], loss="mse", seed=0)
    X = np.random.default_rng(0).standard_normal((70, 8)).astype(np.float32)
    np.testing.assert_allclose(model.forward(X), numpy_forward(model, X), rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="classification"):
        model.predict_proba(X)


def test_chunking_keeps_memory_flat_for_large_inputs():
    model = relu_mlp((16, 256, 256, 10))
    net = model._net
    assert net.inference_rows == 0  # nothing allocated before the first prediction
    rows, chunks = net.inference_plan(200_000)
    assert rows * 256 * 4 <= 2 * 1024 * 1024 and chunks * rows >= 200_000
    X = np.random.default_rng(0).standard_normal((200_000, 16)).astype(np.float32)
    for t in (1, 2):
        fastnn.set_num_threads(t)
        p = model.predict_proba(X)
    assert net.inference_rows <= rows and net.inference_slots <= 2  # bounded by the plan, not by N
    np.testing.assert_allclose(p[-100:], softmax(numpy_forward(model, X[-100:])), rtol=2e-5, atol=2e-6)
    # the plan is independent of the thread count and of the training workspace
    for t in many_threads():
        fastnn.set_num_threads(t)
        assert net.inference_plan(200_000) == (rows, chunks)
    model._reserve(1024)
    assert net.inference_plan(200_000) == (rows, chunks)


def test_inference_plan_splits_evenly():
    net = relu_mlp((8, 1024, 10))._net
    for n in [1, 3, 64, 511, 512, 1025, 4096, 4097, 100_001]:
        rows, chunks = net.inference_plan(n)
        assert chunks >= 1 and (chunks - 1) * rows < n <= chunks * rows
        assert n < 512 or chunks >= min(4 * _core.machine_cpus(), n // 256)  # parallel over chunks


def test_prediction_leaves_training_untouched():
    # predict has a workspace of its own: a training step after it is the same as without it
    a = fastnn.MLP(12, [32], 4, seed=1, batchnorm=True, dropout=0.2)
    b = a.copy()
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((48, 12)).astype(np.float32), rng.integers(0, 4, 48)
    a.attach_optimizer("adam")
    b.attach_optimizer("adam")
    a.predict_proba(rng.standard_normal((3000, 12)))
    assert a.train_step(X, y) == b.train_step(X, y)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    for k in a.buffers:
        np.testing.assert_array_equal(a.buffers[k], b.buffers[k])


def test_inference_follows_weight_changes():
    # nothing is cached between calls: a write into a parameter view is seen by the next call
    model = relu_mlp((10, 20, 3))
    X = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    before = model.forward(X)
    model.params["2.bias"][...] += 1
    np.testing.assert_allclose(model.forward(X), before + 1, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_matrix_vector_path(dtype, ta, tb):
    # M <= 3 rows: one gemv per row; N == 1: one gemv; both cut into blocks by shape only
    rng = np.random.default_rng(9)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for M, N, K in [(1, 1, 1), (1, 700, 3000), (2, 1030, 257), (3, 17, 5), (500, 1, 4000), (1, 1, 5000)]:
        a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
        b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
        c = rng.standard_normal((M, N)).astype(dtype)
        want = 1.5 * (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64) - 0.5 * c
        got = all_thread_counts(
            lambda a, b, c: _core.gemm(a, b, trans_a=ta, trans_b=tb, alpha=1.5, beta=-0.5, out=c.copy()), a, b, c)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(K))
        # beta = 0 ignores what the output held, NaN included
        out = np.full((M, N), np.nan, dtype)
        _core.gemm(a, b, trans_a=ta, trans_b=tb, out=out)
        np.testing.assert_allclose(out, (want + 0.5 * c) / 1.5, rtol=tol, atol=tol * np.sqrt(K))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_skinny_kernel_is_thread_independent(dtype):
    # C = A B and C += A B for 1 to 3 rows: the columns are split by the thread count, which must
    # not change a bit (K % 8 remainders, N not a multiple of the vector width, sizes big enough to
    # be split)
    rng = np.random.default_rng(12)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for M, N, K in [(1, 4099, 67), (2, 1000, 1031), (3, 333, 4001), (1, 7, 3), (3, 2048, 8)]:
        a = rng.standard_normal((M, K)).astype(dtype)
        b = rng.standard_normal((K, N)).astype(dtype)
        c = rng.standard_normal((M, N)).astype(dtype)
        want = a.astype(np.float64) @ b.astype(np.float64)
        got = all_thread_counts(_core.gemm, a, b)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(K))
        got = all_thread_counts(lambda a, b, c: _core.gemm(a, b, beta=1.0, out=c.copy()), a, b, c)
        np.testing.assert_allclose(got, want + c, rtol=tol, atol=tol * np.sqrt(K))
