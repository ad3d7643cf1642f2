"""fastnn.Sequential on the C++ runtime: construction, zero-copy parameter views, initialisation,
inference, bad input, and a training step checked against the functional API step by step."""

from __future__ import annotations

import threading

import fastnn
import fastnn.functional as F
import numpy as np
import pytest
from conftest import many_threads
from fastnn import _core, optim
from fastnn.layers import ELU, BatchNorm, Dense, Dropout, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Tanh


def toy_data(n=200, d=12, c=4, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((c, d)) * 3
    y = rng.integers(0, c, n)
    X = centers[y] + rng.standard_normal((n, d))
    return X.astype(dtype), y


# ------------------------------------------------------------------------------------------------
# construction and views
# ------------------------------------------------------------------------------------------------


def test_shapes_names_and_inference():
    m = fastnn.Sequential([Dense(10, 16), BatchNorm(), ReLU(), Dropout(0.3), Dense(None, 6), Maxout(3),
                           PReLU(2), Dense(2, 5)], seed=0)
    assert m.input_dim == 10 and m.output_dim == 5
    shapes = {k: v.shape for k, v in m.params.items()}
    assert shapes == {"0.weight": (10, 16), "0.bias": (16,), "1.weight": (16,), "1.bias": (16,),
                      "4.weight": (16, 6), "4.bias": (6,), "6.weight": (2,), "7.weight": (2, 5), "7.bias": (5,)}
    assert set(m.buffers) == {"1.running_mean", "1.running_var"}
    assert m.num_params() == sum(int(np.prod(s)) for s in shapes.values())
    assert list(m.params) == sorted(m.params, key=lambda k: (int(k.split(".")[0]), k.split(".")[1] != "weight"))


def test_parameter_views_are_zero_copy():
    X, y = toy_data()
    m = fastnn.MLP(12, [8], 4, seed=1)
    flat = m._net.params
    for v in m.params.values():
        assert np.shares_memory(v, flat)
    before = m.forward(X)
    m.params["2.bias"][...] += 1.0  # writing into a view changes the model
    np.testing.assert_allclose(m.forward(X), before + 1.0, rtol=1e-6)
    w = m.params["0.weight"]
    m.fit(X, y, epochs=1, progress=False) if False else m.fit(X, y, epochs=1)
    assert np.shares_memory(w, m._net.params)  # training updates the same buffer in place
    m._reserve(5000)  # growing the workspace keeps the views
    assert np.shares_memory(w, m._net.params)


@pytest.mark.parametrize("scheme,std", [("he", lambda i, o: np.sqrt(2 / i)),
                                        ("xavier", lambda i, o: np.sqrt(2 / (i + o))),
                                        ("lecun", lambda i, o: np.sqrt(1 / i)), ("small_random", lambda i, o: 0.01),
                                        ("he_uniform", lambda i, o: np.sqrt(2 / i)),
                                        ("xavier_uniform", lambda i, o: np.sqrt(2 / (i + o))),
                                        ("xavier_in_normal", lambda i, o: np.sqrt(1 / i))])
def test_initialisation_schemes(scheme, std):
    m = fastnn.Sequential([Dense(400, 300), ReLU(), Dense(300, 10)], init=scheme, bias_init=0.01, seed=3,
                          dtype=np.float64)
    w = m.params["0.weight"]
    assert abs(w.std() / std(400, 300) - 1) < 0.02
    assert abs(w.mean()) < 0.01 * std(400, 300) * 10
    np.testing.assert_array_equal(m.params["0.bias"], 0.01)
    again = fastnn.Sequential([Dense(400, 300), ReLU(), Dense(300, 10)], init=scheme, bias_init=0.01, seed=3,
                              dtype=np.float64)
    np.testing.assert_array_equal(again.params["0.weight"], w)  # a seed makes it reproducible


def test_auto_init_uses_he_before_relu_and_glorot_otherwise():
    m = fastnn.Sequential([Dense(500, 500), ReLU(), Dense(500, 500), Tanh(), Dense(500, 10)], seed=0,
                          dtype=np.float64)
    assert abs(m.params["0.weight"].std() - np.sqrt(2 / 500)) < 0.01 * np.sqrt(2 / 500) * 3
    assert abs(m.params["2.weight"].std() - np.sqrt(2 / 1000)) < 0.01 * np.sqrt(2 / 1000) * 3


def test_mlp_builder_variants():
    for act in ("relu", "leaky_relu", "prelu", "elu", "tanh", "sigmoid", "maxout"):
        m = fastnn.MLP(12, [16, 8], 4, activation=act, batchnorm=True, dropout=0.2, seed=0)
        X, y = toy_data()
        h = m.fit(X, y, epochs=3, batch_size=32)
        assert h.history["loss"][-1] < h.history["loss"][0], act
    with pytest.raises(ValueError, match="activation"):
        fastnn.MLP(12, [8], 4, activation="swish")
    with pytest.raises(ValueError, match="dropping"):
        fastnn.MLP(12, [8], 4, dropout=1.0)


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: fastnn.Sequential([]), ValueError, "at least one layer"),
        (lambda: fastnn.Sequential([ReLU()]), ValueError, "input_dim"),
        (lambda: fastnn.Sequential([Dense(4, 3), Dense(5, 2)]), ValueError, "receives 3"),
        (lambda: fastnn.Sequential([Dense(4, 7), Maxout(3)]), ValueError, "multiple of k"),
        (lambda: fastnn.Sequential([Dense(4, 1)]), ValueError, "at least 2 outputs"),
        (lambda: fastnn.Sequential([Dense(4, 3)], loss="hinge2"), ValueError, "unknown loss"),
        (lambda: fastnn.Sequential([Dense(4, 3)], init="orthogonal"), ValueError, "unknown initialisation"),
        (lambda: fastnn.Sequential([Dense(4, 3)], dtype=np.float16), TypeError, "float32 or float64"),
        (lambda: fastnn.Sequential([Dense(4, 3)], l2=-1.0), ValueError, "l2"),
        (lambda: fastnn.Sequential([Dense(4, 3)], seed=-1), ValueError, "seed"),
        (lambda: fastnn.Sequential(["dense"]), TypeError, "Layer"),
        (lambda: Dense(4, 0), ValueError, "out_features"),
        (lambda: Dropout(1.0), ValueError, "dropping"),
        (lambda: Dropout(-0.1), ValueError, "dropping"),
        (lambda: BatchNorm(eps=0), ValueError, "eps"),
        (lambda: BatchNorm(momentum=2), ValueError, "momentum"),
        (lambda: ELU(alpha=-1), ValueError, "alpha"),
        (lambda: PReLU(0), ValueError, "num_parameters"),
        (lambda: fastnn.Sequential([Dense(4, 6), PReLU(3)]), ValueError, "1 or 6"),
        (lambda: fastnn.Sequential([Dense(4, 3)], max_batch=0), ValueError, "max_batch"),
    ],
)
def test_bad_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_absurd_sizes_fail_before_allocating():
    with pytest.raises((MemoryError, ValueError), match="memory|GB"):
        fastnn.Sequential([Dense(200_000, 200_000), ReLU(), Dense(200_000, 10)])
    m = fastnn.MLP(8, [8], 3)
    with pytest.raises((MemoryError, ValueError), match="memory|GB"):
        m._net.reserve(10**12)
    X, y = toy_data(d=8, c=3)
    assert m.evaluate(X, y)["loss"] > 0  # the model still works after the refusal


# ------------------------------------------------------------------------------------------------
# inference and data checks
# ------------------------------------------------------------------------------------------------


def test_predict_proba_and_evaluate():
    X, y = toy_data()
    m = fastnn.MLP(12, [16], 4, seed=0)
    m.fit(X, y, epochs=20, batch_size=32)
    p = m.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(p.argmax(1), m.predict(X))
    ev = m.evaluate(X, y)
    assert ev["accuracy"] == pytest.approx(np.mean(m.predict(X) == y))
    assert ev["accuracy"] > 0.9
    logp = np.log(np.maximum(m.predict_proba(X).astype(np.float64), 1e-30))
    assert ev["loss"] == pytest.approx(-np.mean(logp[np.arange(len(y)), y]), rel=1e-4)
    big = np.repeat(X, 30, axis=0)  # more rows than the workspace: evaluated in chunks
    np.testing.assert_array_equal(m.predict(big), np.repeat(m.predict(X), 30))


@pytest.mark.parametrize(
    "X,y,exc,match",
    [
        (np.ones(12), [0], ValueError, "2-D"),
        (np.ones((3, 11)), [0, 1, 2], ValueError, "11 features"),
        (np.ones((0, 12)), [], ValueError, "empty"),
        (np.full((3, 12), np.nan), [0, 1, 2], ValueError, "NaN"),
        (np.full((3, 12), np.inf), [0, 1, 2], ValueError, "NaN or infinity"),
        (np.ones((3, 12), dtype=object), [0, 1, 2], TypeError, "numbers"),
        (np.ones((3, 12)), [0, 1, 4], ValueError, r"y\[2\] = 4"),
        (np.ones((3, 12)), [0, -1, 2], ValueError, r"y\[1\] = -1"),
        (np.ones((3, 12)), [0.5, 1, 2], TypeError, "integer class labels"),
        (np.ones((3, 12)), ["a", "b", "c"], TypeError, "integer class labels"),
        (np.ones((3, 12)), [0, 1], ValueError, "2 labels for 3 samples"),
        (np.ones((3, 12)), [True, False, True], TypeError, "integer"),
    ],
)
def test_bad_data_is_named(X, y, exc, match):
    m = fastnn.MLP(12, [4], 4, seed=0)
    with pytest.raises(exc, match=match):
        m.fit(X, y, epochs=1)


def test_regression_with_mse():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    w = rng.standard_normal((5, 2))
    Y = X @ w
    m = fastnn.MLP(5, [32], 2, loss="mse", seed=0, dtype=np.float64)
    h = m.fit(X, Y, optimizer=optim.Adam(lr=1e-2), epochs=60, batch_size=32)
    assert h.history["loss"][-1] < 0.05 * h.history["loss"][0]
    assert m.predict(X).shape == (300, 2)
    with pytest.raises(TypeError, match="classification"):
        m.predict_proba(X)
    with pytest.raises(ValueError, match=r"shape \(300, 2\)"):
        m.fit(X, Y[:, 0], epochs=1)


# ------------------------------------------------------------------------------------------------
# the runtime's step equals the functional API's, step by step (float64)
# ------------------------------------------------------------------------------------------------


def test_runtime_step_matches_functional_api():
    """Dense -> BatchNorm -> ReLU -> Dropout -> Dense, softmax + L2, Adam: three runtime steps equal
    the same computation written with fastnn.functional and the same dropout masks."""
    rng = np.random.default_rng(7)
    D, H, C, N = 6, 8, 3, 16
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    l2 = 1e-2
    m = fastnn.Sequential([Dense(D, H), BatchNorm(), ReLU(), Dropout(0.25), Dense(H, C)], l2=l2, seed=5,
                          dtype=np.float64)
    ref = {k: v.copy() for k, v in m.params.items()}
    bn = {"mode": "train", "momentum": 0.9, "running_mean": np.zeros(H), "running_var": np.ones(H)}
    cfg = {k: {"learning_rate": 1e-2} for k in ref}
    opt = optim.Adam(lr=1e-2)
    for step in range(3):
        loss = m.train_step(X, y, opt)
        # the same step through the functional API
        a, c1 = F.affine_forward(X, ref["0.weight"], ref["0.bias"])
        b, c2 = F.batchnorm_forward(a, ref["1.weight"], ref["1.bias"], bn)
        r, c3 = F.relu_forward(b)
        d, mask = _core.dropout_forward(r, 0.75, m._net.seed, (step << 16) | 3)  # the runtime's stream
        s, c5 = F.affine_forward(d, ref["4.weight"], ref["4.bias"])
        data_loss, ds = F.softmax_loss(s, y)
        reg = 0.5 * l2 * (np.sum(ref["0.weight"] ** 2) + np.sum(ref["4.weight"] ** 2))
        assert loss == pytest.approx(data_loss + reg, rel=1e-12)
        g = {}
        dd, g["4.weight"], g["4.bias"] = F.affine_backward(ds, c5)
        dr = _core.dropout_backward(dd, mask, 0.75)
        db = F.relu_backward(dr, c3)
        da, g["1.weight"], g["1.bias"] = F.batchnorm_backward(db, c2)
        _, g["0.weight"], g["0.bias"] = F.affine_backward(da, c1)
        g["0.weight"] += l2 * ref["0.weight"]
        g["4.weight"] += l2 * ref["4.weight"]
        for k in ref:
            ref[k], cfg[k] = F.adam(ref[k], g[k], cfg[k])
        for k in ref:
            np.testing.assert_allclose(m.params[k], ref[k], rtol=1e-11, atol=1e-13, err_msg=f"{k} step {step}")
    # running statistics: the layer follows PyTorch (momentum 0.1, unbiased running variance)
    a = X @ m.params["0.weight"]  # (only the mean is checked against the functional path here)
    assert a.shape == (N, H)
    np.testing.assert_allclose(m.buffers["1.running_mean"], bn["running_mean"], rtol=1e-10, atol=1e-12)


def test_loss_and_grad_matches_numeric_gradient():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((10, 5))
    y = rng.integers(0, 3, 10)
    m = fastnn.Sequential([Dense(5, 7), Tanh(), Dense(7, 7), ELU(), Dense(7, 3)], l2=0.1, l1=0.01, seed=0,
                          dtype=np.float64)
    loss, grads = m.loss_and_grad(X, y)
    h = 1e-6
    for name in ("0.weight", "2.bias", "4.weight"):
        p = m.params[name].reshape(-1)
        for i in range(0, p.size, max(1, p.size // 5)):
            old = p[i]
            p[i] = old + h
            lp, _ = m.loss_and_grad(X, y)
            p[i] = old - h
            lm, _ = m.loss_and_grad(X, y)
            p[i] = old
            num = (lp - lm) / (2 * h)
            assert grads[name].reshape(-1)[i] == pytest.approx(num, rel=1e-6, abs=1e-9), (name, i)


def test_every_layer_kind_and_optimizer_trains():
    X, y = toy_data(n=300)
    layers = [Dense(12, 24), LeakyReLU(0.05), Dense(24, 24), PReLU(24), Dense(24, 24), ELU(), Dense(24, 12),
              Sigmoid(), Dense(12, 4)]
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "adadelta", "gains"):
        m = fastnn.Sequential(layers, seed=0)
        lr = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adadelta": 1.0, "gains": 0.02}.get(name, 3e-3)
        h = m.fit(X, y, optimizer=optim.resolve_optimizer(name, lr=lr), epochs=15, batch_size=32)
        assert h.history["loss"][-1] < 0.7 * h.history["loss"][0], name
    for opt in (optim.Rprop(lr=0.01), optim.LBFGS(max_iter=20)):  # full-batch methods
        m = fastnn.Sequential(layers, seed=0, dtype=np.float64)
        h = m.fit(X, y, optimizer=opt, epochs=5, batch_size=32)
        assert h.history["loss"][-1] < 0.7 * h.history["loss"][0], opt.kind
        assert m.evaluate(X, y)["accuracy"] > 0.8


# ------------------------------------------------------------------------------------------------
# reproducibility and threads
# ------------------------------------------------------------------------------------------------


def _train_weights(threads: int) -> dict[str, np.ndarray]:
    with fastnn.threads(threads):
        X, y = toy_data(n=640, d=40, c=5)
        m = fastnn.MLP(40, [300, 300], 5, batchnorm=True, dropout=0.3, seed=11)
        m.fit(X, y, optimizer=optim.SGD(lr=0.05, momentum=0.9), epochs=3, batch_size=128)
        return m.get_weights()


def test_same_seed_bitwise_identical_for_any_thread_count():
    one = _train_weights(1)
    for n in many_threads():
        other = _train_weights(n)
        for k in one:
            assert np.array_equal(one[k], other[k]), f"{k} differs with {n} threads"


def test_one_model_refuses_two_threads_at_once():
    """Using one model from two threads at once is refused with a clear error (whichever call comes
    second), never a corrupted workspace."""
    X, y = toy_data(n=20000, d=64)
    m = fastnn.MLP(64, [512, 512], 4, seed=0)
    refusals: list[str] = []
    done = threading.Event()

    def train():
        try:
            m.fit(X, y, optimizer="sgd", epochs=2, batch_size=64)
        except RuntimeError as exc:
            refusals.append(str(exc))
        finally:
            done.set()

    t = threading.Thread(target=train)
    t.start()
    while not done.is_set() and not refusals:
        try:
            m.forward(X[:10])
        except RuntimeError as exc:
            refusals.append(str(exc))
    t.join()
    assert refusals and "another thread" in refusals[0]
    assert np.isfinite(m.evaluate(X[:100], y[:100])["loss"])  # still usable


def test_two_models_in_two_threads_match_sequential_training():
    X, y = toy_data(n=2000, d=32)

    def run(seed, out):
        m = fastnn.MLP(32, [128], 4, dropout=0.2, seed=seed)
        m.fit(X, y, epochs=3, batch_size=50)
        out[seed] = m.get_weights()

    seq: dict = {}
    run(1, seq)
    run(2, seq)
    par: dict = {}
    ts = [threading.Thread(target=run, args=(s, par)) for s in (1, 2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for s in (1, 2):
        for k in seq[s]:
            assert np.array_equal(seq[s][k], par[s][k])


def test_copy_to_float64_keeps_weights():
    X, y = toy_data()
    m = fastnn.MLP(12, [16], 4, batchnorm=True, seed=0)
    m.fit(X, y, epochs=2)
    m64 = m.copy(dtype=np.float64)
    assert m64.dtype == np.float64
    np.testing.assert_allclose(m64.forward(X), m.forward(X), rtol=1e-5, atol=1e-5)
    for k, v in m.get_weights().items():
        np.testing.assert_array_equal(m64.get_weights()[k].astype(np.float32), v)


def test_weight_averaging_matches_numpy_ema():
    X, y = toy_data()
    m = fastnn.MLP(12, [8], 4, seed=0, dtype=np.float64)
    m.attach_optimizer(optim.SGD(lr=0.1))
    m.enable_averaging(0.9)
    ema = {k: v.copy() for k, v in m.params.items()}
    for i in range(6):
        m.train_step(X[i * 20:(i + 1) * 20], y[i * 20:(i + 1) * 20])
        for k in ema:
            ema[k] += 0.1 * (m.params[k] - ema[k])
    avg = m.averaged()
    for k in ema:
        np.testing.assert_allclose(avg.params[k], ema[k], rtol=1e-12)
    m.enable_averaging("polyak")
    seen = []
    for _ in range(4):
        m.train_step(X[:20], y[:20])
        seen.append({k: v.copy() for k, v in m.params.items()})
    avg = m.averaged()
    for k in ema:
        np.testing.assert_allclose(avg.params[k], np.mean([s[k] for s in seen], axis=0), rtol=1e-12)


@pytest.mark.parametrize("l2", [0.0, 1e-2])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_sgd_update_fused_into_the_gemm_matches_the_unfused_step(l2, dtype, tol):
    """Plain SGD updates Dense weights inside their gradient GEMMs; the result equals the separate
    gradient + update path (up to rounding), biases, batch norm and PReLU included."""
    X, y = toy_data(n=120, dtype=dtype)
    layers = [Dense(12, 16), BatchNorm(), PReLU(16), Dense(16, 8, decay=False), ReLU(), Dense(8, 4)]
    fused = fastnn.Sequential(layers, l2=l2, seed=3, dtype=dtype)
    plain = fastnn.Sequential(layers, l2=l2, seed=3, dtype=dtype)
    plain._net.fuse_sgd = False
    for s in range(0, 120, 30):
        fused.train_step(X[s:s + 30], y[s:s + 30], optim.SGD(lr=0.1))
        plain.train_step(X[s:s + 30], y[s:s + 30], optim.SGD(lr=0.1))
    for k in plain.params:
        np.testing.assert_allclose(fused.params[k], plain.params[k], rtol=tol, atol=tol, err_msg=k)


# ------------------------------------------------------------------------------------------------
# pickling (and deepcopy): everything travels, training continues bit-identically
# ------------------------------------------------------------------------------------------------
def _assert_same_state(a, b):
    for k, v in {**a.params, **a.buffers}.items():
        assert np.array_equal(v, {**b.params, **b.buffers}[k]), k
    assert (a.step, a._net.opt_t, a._net.n_state) == (b.step, b._net.opt_t, b._net.n_state)
    for i in range(a._net.n_state):
        assert np.array_equal(a._net.state(i), b._net.state(i))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pickle_round_trip_predicts_identically_and_trains_on_bit_identically(dtype):
    import copy
    import pickle

    from fastnn import schedules
    from fastnn.preprocessing import StandardScaler

    X, y = toy_data(300, dtype=dtype)
    X = X * 5 + 3  # raw inputs: the attached scaler matters
    m = fastnn.MLP(12, [32, 16], 4, batchnorm=True, dropout=0.2, l2=1e-3, dtype=dtype, seed=3,
                   preprocessing=StandardScaler())
    m.enable_averaging(0.9)
    opt = optim.Adam(lr=schedules.warmup(schedules.cosine(3e-3, 6), 1))  # a schedule of closures
    m.fit(X, y, optimizer=opt, epochs=2, batch_size=32)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert clone._net is not m._net and clone.layers == m.layers and clone.dtype == m.dtype
        assert np.array_equal(clone.forward(X), m.forward(X))  # raw X through the same scaler
        assert np.array_equal(clone.preprocessing.mean_, m.preprocessing.mean_)
        _assert_same_state(clone, m)
        assert np.array_equal(clone._net.average, m._net.average)
        assert clone._net.average_count == m._net.average_count
        assert np.array_equal(clone.averaged().forward(X), m.averaged().forward(X))
    twin = pickle.loads(pickle.dumps(m))
    for model in (m, twin):  # more epochs, continuing the schedule and Adam's moments
        fastnn.Trainer(model, model._optimizer, progress=False).fit(X, y, epochs=1, batch_size=32)
        model.train_step(X[:50], y[:50])  # the attached optimizer, the same dropout masks
    _assert_same_state(twin, m)
    assert np.array_equal(twin._net.average, m._net.average)
    # the original model was not disturbed by pickling: it trains as an unpickled-never model does
    ref = fastnn.MLP(12, [32, 16], 4, batchnorm=True, dropout=0.2, l2=1e-3, dtype=dtype, seed=3,
                     preprocessing=StandardScaler())
    ref.enable_averaging(0.9)
    ref.fit(X, y, optimizer=optim.Adam(lr=schedules.warmup(schedules.cosine(3e-3, 6), 1)), epochs=2, batch_size=32)
    fastnn.Trainer(ref, ref._optimizer, progress=False).fit(X, y, epochs=1, batch_size=32)
    ref.train_step(X[:50], y[:50])
    _assert_same_state(ref, m)


def test_pickle_of_fresh_lbfgs_and_regression_models():
    import pickle

    fresh = fastnn.MLP(5, [7], 3, seed=1)
    back = pickle.loads(pickle.dumps(fresh))
    X = np.random.default_rng(0).standard_normal((20, 5))
    assert np.array_equal(back.forward(X), fresh.forward(X)) and back._optimizer_key is None
    pytest.importorskip("scipy", reason="L-BFGS runs SciPy's minimizer")
    reg = fastnn.MLP(5, [7], 2, loss="mse", dtype=np.float64, seed=1)
    reg.fit(X, X[:, :2], optimizer=optim.LBFGS(max_iter=5), epochs=1)
    back = pickle.loads(pickle.dumps(reg))
    assert np.array_equal(back.predict(X), reg.predict(X)) and back.step == reg.step
    assert back._optimizer_key == ("lbfgs",)
