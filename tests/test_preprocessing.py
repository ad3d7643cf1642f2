"""fastnn.preprocessing: the C++ statistics and apply kernels against NumPy (float64, also on
ill-conditioned data) and their scalar references, 1-thread vs 2-thread bitwise equality, the
transformers against scikit-learn, scikit-learn conventions (clone, Pipeline), checkpoints,
models with attached preprocessing, and the leakage guard."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import fastnn
import numpy as np
import pytest
from fastnn import _core
from fastnn.preprocessing import (
    FINGERPRINT_SIZE,
    PCA,
    Chain,
    LeakageWarning,
    MeanSubtraction,
    MinMaxScaler,
    NotFittedError,
    StandardScaler,
    check_leakage,
    from_dict,
)

DTYPES = [np.float32, np.float64]
IDS = ["f32", "f64"]


def np_stats(X):
    X = np.asarray(X, dtype=np.float64)
    m = X.mean(axis=0)
    return m, ((X - m) ** 2).sum(axis=0), X.min(axis=0), X.max(axis=0)


def close(got, want, rtol, what=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-300)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol:.1g} x {scale:.3g}"


# ------------------------------------------------------------------------------------------------
# kernels
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (300, 17), (1000, 33), (20000, 5), (257, 300)])
def test_column_stats_match_numpy_and_reference(shape, dtype, rng):
    X = (rng.standard_normal(shape) * rng.uniform(0.1, 5, shape[1]) + rng.uniform(-3, 3, shape[1])).astype(dtype)
    want = np_stats(X)
    for mod in (_core, _core.ref):
        got = mod.column_stats(X)
        for g, w, name in zip(got, want, ("mean", "m2", "min", "max"), strict=True):
            assert g.dtype == np.float64 and g.shape == (shape[1],)
            close(g, w, 1e-12, f"{mod.__name__} {name} {shape}")
    assert np.array_equal(_core.column_stats(X)[2], X.min(axis=0))
    assert np.array_equal(_core.column_stats(X)[3], X.max(axis=0))


def test_column_stats_survive_a_large_offset(rng):
    """1e8 + N(0, 1): one-pass E[x^2] - E[x]^2 loses every digit, the kernel keeps ~15."""
    X = 1e8 + rng.standard_normal((30000, 20))
    XL = X.astype(np.longdouble)
    mL = XL.mean(axis=0)
    vL = ((XL - mL) ** 2).mean(axis=0)
    mean, m2, _, _ = _core.column_stats(X)
    var = m2 / X.shape[0]
    assert np.max(np.abs(var / vL - 1)) < 1e-12
    assert np.max(np.abs(mean - mL)) < 3e-8  # ~2 ulp of 1e8
    naive = (X**2).mean(axis=0) - X.mean(axis=0) ** 2
    assert np.max(np.abs(naive / vL - 1)) > 1e-3  # the textbook formula fails here
    # float32 data with a large offset relative to its spread
    X32 = (1e4 + 0.01 * rng.standard_normal((20000, 3))).astype(np.float32)
    m, m2, _, _ = _core.column_stats(X32)
    close(m2 / len(X32), np.var(X32.astype(np.float64), axis=0), 1e-10, "float32 offset variance")
    assert StandardScaler().fit(X).var_ == pytest.approx(np.asarray(vL, np.float64), rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("geom", [(50, 8, 8, 3), (7, 70, 70, 2), (30, 7, 11, 1), (3, 5, 5, 600)])
def test_channel_stats_both_layouts(geom, dtype, rng):
    N, H, W, C = geom
    img = (rng.standard_normal(geom) * rng.uniform(0.5, 2, C) + 100 * rng.standard_normal(C)).astype(dtype)
    want = np_stats(img.reshape(-1, C))
    for nchw in (False, True):
        x = np.ascontiguousarray(img.transpose(0, 3, 1, 2)) if nchw else img
        for mod in (_core, _core.ref):
            got = mod.channel_stats(x, C, nchw)
            for g, w, name in zip(got, want, ("mean", "m2", "min", "max"), strict=True):
                close(g, w, 1e-11, f"{mod.__name__} nchw={nchw} {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("shape", [(2, 1), (40, 7), (3000, 300), (5000, 37)])
def test_scatter_matrix(shape, dtype, rng):
    X = (rng.standard_normal(shape) + 5).astype(dtype)
    mean = X.astype(np.float64).mean(axis=0)
    Xc = X.astype(np.float64) - mean
    want = Xc.T @ Xc
    G = _core.scatter_matrix(X, mean)
    close(G, want, 1e-12, "fast")
    assert np.array_equal(G, G.T)
    if shape[0] * shape[1] ** 2 < 1e6:
        close(_core.ref.scatter_matrix(X, mean), want, 1e-12, "ref")


@pytest.mark.parametrize("din", DTYPES, ids=IDS)
@pytest.mark.parametrize("dout", DTYPES, ids=IDS)
def test_shift_scale_any_dtype_pair(din, dout, rng):
    X = (rng.standard_normal((333, 19)) * 3 + 1).astype(din)
    shift, scale = rng.standard_normal(19), rng.uniform(0.5, 2, 19)
    want = (X.astype(np.float64) - shift) * scale
    for mod in (_core, _core.ref):
        y = mod.shift_scale(X, shift, scale, dtype=dout)
        assert y.dtype == dout
        close(y, want, 1e-7 if dout == np.float32 else 1e-15, mod.__name__)
        back = mod.shift_scale(y, shift, scale, inverse=True, dtype=np.float64)
        close(back, X, 1e-6 if np.float32 in (din, dout) else 1e-14, "inverse")
    if din == dout:  # in place
        Z = X.copy()
        _core.shift_scale(Z, shift, scale, out=Z)
        close(Z, want, 1e-7 if dout == np.float32 else 1e-15, "in place")


@pytest.mark.parametrize("din", DTYPES, ids=IDS)
@pytest.mark.parametrize("dout", DTYPES, ids=IDS)
def test_project_and_unproject(din, dout, rng):
    X = (rng.standard_normal((1500, 40)) + 1e3).astype(din)
    mean = X.astype(np.float64).mean(axis=0)
    W = rng.standard_normal((40, 9))
    want = (X.astype(np.float64) - mean) @ W
    tol = 1e-5 if np.float32 in (din, dout) else 1e-12
    for mod in (_core, _core.ref):
        P = mod.project(X, mean, W, dtype=dout)
        assert P.shape == (1500, 9) and P.dtype == dout
        close(P, want, tol, mod.__name__)
    V = rng.standard_normal((9, 40)).astype(dout)
    Y = want.astype(dout)
    back = (Y.astype(np.float64) @ V.astype(np.float64)) + mean
    for mod in (_core, _core.ref):
        close(mod.unproject(Y, V, mean), back, tol, "unproject")


def test_row_hashes(rng):
    X = rng.standard_normal((500, 13))
    h = _core.row_hashes(X)
    assert h.dtype == np.uint64 and h.shape == (500,)
    assert np.array_equal(h, _core.ref.row_hashes(X))
    assert len(np.unique(h)) == 500
    X32 = X.astype(np.float32)
    assert np.array_equal(_core.row_hashes(X32), _core.row_hashes(X32.astype(np.float64)))
    Y = X.copy()
    Y[7, 3] = np.nextafter(np.float32(Y[7, 3]), np.float32(np.inf))  # one value, one float32 ulp
    hy = _core.row_hashes(Y)
    assert hy[7] != h[7] and np.array_equal(np.delete(hy, 7), np.delete(h, 7))
    Z = np.zeros((2, 4))
    Z[1, 2] = -0.0
    assert _core.row_hashes(Z)[0] == _core.row_hashes(Z)[1]
    assert _core.row_hashes(X[:, ::-1].copy())[0] != h[0]  # column order matters
    assert _core.row_hashes(np.zeros((0, 3))).shape == (0,)


def test_kernels_bitwise_identical_with_1_and_2_threads(rng):
    X = rng.standard_normal((20000, 40)) * 3 + 1e6
    X32 = X.astype(np.float32)
    img = rng.standard_normal((300, 3, 16, 16))
    mean = X.mean(axis=0)
    W = rng.standard_normal((40, 16))
    calls = {
        "column_stats": lambda: _core.column_stats(X),
        "column_stats32": lambda: _core.column_stats(X32),
        "channel_nchw": lambda: _core.channel_stats(img, 3, True),
        "channel_nhwc": lambda: _core.channel_stats(img.reshape(300, 16, 16, 3), 3, False),
        "scatter": lambda: (_core.scatter_matrix(X32, mean),),
        "shift_scale": lambda: (_core.shift_scale(X, mean, 1 / mean, dtype=np.float32),),
        "project": lambda: (_core.project(X32, mean, W),),
        "hashes": lambda: (_core.row_hashes(X),),
    }
    fastnn.set_num_threads(1)
    one = {k: [a.copy() for a in f()] for k, f in calls.items()}
    fastnn.set_num_threads(2)
    for k, f in calls.items():
        for a, b in zip(one[k], f(), strict=True):
            assert np.array_equal(a, b), k


def test_kernel_bad_input():
    with pytest.raises(ValueError, match="x"):
        _core.column_stats(np.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        _core.column_stats(np.zeros((0, 5)))
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.column_stats(np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="shift"):
        _core.shift_scale(np.zeros((3, 5)), np.zeros(4), np.ones(5))
    with pytest.raises(TypeError, match="out"):
        _core.shift_scale(np.zeros((3, 5)), np.zeros(5), np.ones(5), out=np.zeros((3, 5), np.float32).tolist())
    with pytest.raises(ValueError, match="out"):
        _core.shift_scale(np.zeros((3, 5)), np.zeros(5), np.ones(5), out=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="channels"):
        _core.channel_stats(np.zeros((2, 10)), 3)
    with pytest.raises(ValueError, match="W"):
        _core.project(np.zeros((3, 5)), np.zeros(5), np.zeros((4, 2)))


# ------------------------------------------------------------------------------------------------
# transformers vs scikit-learn
# ------------------------------------------------------------------------------------------------
def data(rng, n=400, d=12, offset=0.0, dtype=np.float64):
    X = rng.standard_normal((n, d)) * rng.uniform(0.1, 10, d) + rng.uniform(-5, 5, d) + offset
    X[:, 2] = 3.0  # a constant feature
    return X.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_standard_scaler_matches_sklearn(dtype, rng):
    skp = pytest.importorskip("sklearn.preprocessing", reason="needs scikit-learn (optional; the test extra has it)")
    X = data(rng, dtype=dtype)
    for kw in ({}, {"with_mean": False}, {"with_std": False}):
        a, b = StandardScaler(**kw).fit(X), skp.StandardScaler(**kw).fit(X.astype(np.float64))
        Za = a.transform(X)
        assert Za.dtype == dtype and Za.shape == X.shape
        close(Za, b.transform(X.astype(np.float64)), 1e-6 if dtype == np.float32 else 1e-13, str(kw))
        close(a.mean_, b.mean_, 1e-13, "mean")
        if b.var_ is not None:
            close(a.var_, b.var_, 1e-12, "var")
        close(a.inverse_transform(Za), X, 1e-6 if dtype == np.float32 else 1e-13, "inverse")
    s = StandardScaler().fit(X)
    assert s.scale_[2] == 1.0 and s.var_[2] == 0.0 and np.all(s.transform(X)[:, 2] == 0)
    assert s.transform(X, dtype=np.float32).dtype == np.float32


def test_standard_scaler_partial_fit_equals_fit(rng):
    X = data(rng, n=1000, offset=1e6)
    full = StandardScaler().fit(X)
    part = StandardScaler()
    for chunk in np.array_split(X, 7):
        part.partial_fit(chunk)
    assert part.n_samples_seen_ == 1000
    close(part.mean_, full.mean_, 1e-15, "mean")
    close(part.var_, full.var_, 1e-10, "var")
    assert part.fingerprint_.n_rows == 1000 and part.fingerprint_.seen(X) == (1000, 1000)


@pytest.mark.parametrize("rng_", [(-1.0, 1.0), (0.0, 1.0), (2.0, 5.0)])
def test_minmax_scaler_matches_sklearn(rng_, rng):
    skp = pytest.importorskip("sklearn.preprocessing", reason="needs scikit-learn (optional; the test extra has it)")
    X = data(rng)
    a = MinMaxScaler(rng_).fit(X)
    b = skp.MinMaxScaler(feature_range=rng_).fit(X)
    close(a.transform(X), b.transform(X), 1e-14, "transform")
    for k in ("data_min_", "data_max_", "data_range_", "scale_", "min_"):
        close(getattr(a, k), getattr(b, k), 1e-15, k)
    Z = a.transform(X)
    assert Z.min() == pytest.approx(rng_[0], abs=1e-12) and Z.max() == pytest.approx(rng_[1], abs=1e-12)
    close(a.inverse_transform(Z), X, 1e-14, "inverse")
    out = MinMaxScaler(rng_, clip=True).fit(X).transform(X * 3)
    assert out.min() >= rng_[0] and out.max() <= rng_[1]
    assert MinMaxScaler().feature_range == (-1.0, 1.0)
    with pytest.raises(ValueError, match="feature_range"):
        MinMaxScaler((1, 1)).fit(X)


def test_pca_matches_sklearn(rng):
    skd = pytest.importorskip("sklearn.decomposition", reason="needs scikit-learn (optional; the test extra has it)")
    A = rng.standard_normal((10, 10))
    X = rng.standard_normal((2000, 10)) @ A + rng.standard_normal(10) * 4
    for nc in (3, 0.9, None):
        for whiten in (False, True):
            a = PCA(nc, whiten=whiten, eps=0.0).fit(X)
            b = skd.PCA(nc, whiten=whiten, svd_solver="full").fit(X)
            assert a.n_components_ == b.n_components_
            close(a.components_, b.components_, 1e-10, "components")
            close(a.explained_variance_, b.explained_variance_, 1e-11, "explained variance")
            close(a.explained_variance_ratio_, b.explained_variance_ratio_, 1e-11, "ratio")
            close(a.singular_values_, b.singular_values_, 1e-11, "singular values")
            close(a.transform(X), b.transform(X), 1e-9, f"transform {nc} {whiten}")
            close(a.inverse_transform(a.transform(X)), b.inverse_transform(b.transform(X)), 1e-9, "inverse")
            assert a.noise_variance_ == pytest.approx(b.noise_variance_, rel=1e-9, abs=1e-12)


def test_pca_whitening_drop_and_offsets(rng):
    X = rng.standard_normal((3000, 6)) @ rng.standard_normal((6, 6))
    Z = PCA(whiten=True, eps=0.0).fit_transform(X)
    close(np.cov(Z, rowvar=False), np.eye(6), 1e-10, "whitened covariance")
    p = PCA(drop=2).fit(X)
    assert p.n_components_ == 4 and p.transform(X).shape == (3000, 4)
    assert np.all(np.diff(p.explained_variance_) <= 0)
    full = PCA().fit(X)
    close(full.inverse_transform(full.transform(X)), X, 1e-12, "full round trip")
    # centring in float64 before the covariance: a 1e8 offset changes nothing
    off = PCA(3).fit(X + 1e8)
    close(np.abs(off.components_), np.abs(PCA(3).fit(X).components_), 1e-7, "offset components")
    whitened = PCA(3, whiten=True, eps=1e-5).fit(X)
    s = np.sqrt(whitened.explained_variance_ + 1e-5)
    close(whitened.transform(X), PCA(3).fit(X).transform(X) / s, 1e-12, "divide by sqrt(ev + eps)")
    assert PCA(2).fit(X).transform(X.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="n_components"):
        PCA(7).fit(X)
    with pytest.raises(ValueError, match="either"):
        PCA(3, drop=1).fit(X)
    with pytest.raises(ValueError, match="at least 2"):
        PCA().fit(X[:1])


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_mean_subtraction_modes(layout, rng):
    img = rng.standard_normal((40, 3, 6, 5)) + np.array([1.0, -2.0, 5.0])[None, :, None, None]
    if layout == "NHWC":
        img = np.ascontiguousarray(img.transpose(0, 2, 3, 1))
    axis = (0, 1, 2) if layout == "NHWC" else (0, 2, 3)
    m = MeanSubtraction("channel", layout=layout).fit(img)
    close(m.mean_, img.mean(axis=axis), 1e-14, "channel means")
    out = m.transform(img)
    assert out.shape == img.shape
    assert np.max(np.abs(out.mean(axis=axis))) < 1e-12
    flat = img.reshape(40, -1)
    m2 = MeanSubtraction("channel", layout=layout, image_shape=img.shape[1:]).fit(flat)
    close(m2.transform(flat), out.reshape(40, -1), 1e-15, "flat rows")
    close(m.transform(flat), out.reshape(40, -1), 1e-15, "fitted on 4-D, applied to rows")
    close(m.inverse_transform(out), img, 1e-14, "inverse")
    g = MeanSubtraction("global").fit(flat)
    assert float(g.mean_) == pytest.approx(flat.mean(), rel=1e-14)
    f = MeanSubtraction().fit(flat)
    close(f.transform(flat), flat - flat.mean(axis=0), 1e-14, "feature")
    with pytest.raises(ValueError, match="image_shape"):
        MeanSubtraction("channel").fit(flat)
    with pytest.raises(ValueError, match="mode"):
        MeanSubtraction("pixel").fit(flat)


# ------------------------------------------------------------------------------------------------
# conventions and errors
# ------------------------------------------------------------------------------------------------
ALL = [MeanSubtraction(), StandardScaler(), MinMaxScaler(), PCA(3, whiten=True)]


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_clear_errors(t, rng):
    X = data(rng)
    with pytest.raises(NotFittedError, match="not fitted"):
        t.__class__(**t.get_params()).transform(X)
    t.fit(X)
    with pytest.raises(ValueError, match="features"):
        t.transform(X[:, :5])
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 3, column 4\)"):
        t.fit(bad)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        t.transform(bad)
    with pytest.raises(ValueError, match="2-D"):
        t.fit(X[:, 0])
    if not isinstance(t, MeanSubtraction):
        with pytest.raises(ValueError, match="2-D"):
            t.fit(X.reshape(400, 3, 4))
    with pytest.raises(TypeError, match="numbers"):
        t.fit(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="invalid parameter"):
        t.set_params(nope=1)
    assert t.transform(X).shape[0] == 400  # failed fits left the fitted state alone
    if isinstance(t, StandardScaler):
        with pytest.raises(ValueError, match="too large"):
            t.fit(np.array([[1e200], [-1e200]]))


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_sklearn_clone_pipeline_and_params(t, rng):
    base = pytest.importorskip("sklearn.base", reason="needs scikit-learn (optional; the test extra has it)")
    pipeline = pytest.importorskip("sklearn.pipeline", reason="needs scikit-learn (optional; the test extra has it)")
    lm = pytest.importorskip("sklearn.linear_model", reason="needs scikit-learn (optional; the test extra has it)")
    X = data(rng)
    top = X[:, np.argmax(X.var(axis=0))]
    y = (top > np.median(top)).astype(int)
    c = base.clone(t)
    assert type(c) is type(t) and c.get_params() == t.get_params() and not hasattr(c, "mean_")
    pipe = pipeline.Pipeline([("prep", base.clone(t)), ("lr", lm.LogisticRegression(max_iter=500))])
    assert pipe.fit(X, y).score(X, y) > 0.8
    assert base.clone(pipe).get_params()["prep"].get_params() == t.get_params()
    from sklearn.utils import get_tags

    assert get_tags(t).input_tags.allow_nan is False
    assert repr(t).startswith(type(t).__name__ + "(")


def test_grid_search_over_a_parameter(rng):
    ms = pytest.importorskip("sklearn.model_selection", reason="needs scikit-learn (optional; the test extra has it)")
    pipeline = pytest.importorskip("sklearn.pipeline", reason="needs scikit-learn (optional; the test extra has it)")
    lm = pytest.importorskip("sklearn.linear_model", reason="needs scikit-learn (optional; the test extra has it)")
    X = data(rng)
    top = X[:, np.argmax(X.var(axis=0))]
    y = (top > np.median(top)).astype(int)
    pipe = pipeline.Pipeline([("pca", PCA()), ("lr", lm.LogisticRegression(max_iter=500))])
    gs = ms.GridSearchCV(pipe, {"pca__n_components": [1, 4]}, cv=3).fit(X, y)
    assert gs.best_params_["pca__n_components"] in (1, 4)


def test_core_import_does_not_need_sklearn():
    code = ("import sys, numpy as np, fastnn.preprocessing as p; "
            "s = p.StandardScaler().fit(np.random.rand(20, 3)); s.transform(np.random.rand(2, 3)); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_to_dict_round_trip_is_json(rng):
    X = data(rng)
    for t in [MeanSubtraction("global"), StandardScaler(), MinMaxScaler((0, 2), clip=True), PCA(0.95, whiten=True),
              Chain([MeanSubtraction(), PCA(4)])]:
        t.fit(X)
        d = json.loads(json.dumps(t.to_dict()))
        r = from_dict(d)
        assert type(r) is type(t) and r.get_params().keys() == t.get_params().keys()
        assert np.array_equal(r.transform(X), t.transform(X))
        assert check_leakage(r, X[:10], warn=False) == 10
        assert from_dict(t.to_dict(arrays=True)).transform(X[:3]).shape == t.transform(X[:3]).shape
    assert from_dict(json.loads(json.dumps(MinMaxScaler().to_dict()))).get_params() == MinMaxScaler().get_params()
    legacy = {"kind": "standardize", "mean": [1.0, 2.0], "scale": [2.0, 1.0]}
    assert np.array_equal(StandardScaler.from_dict(legacy).transform(np.array([[3.0, 3.0]])), [[1.0, 1.0]])
    assert fastnn.datasets.Standardizer is StandardScaler
    with pytest.raises(ValueError, match="unknown"):
        from_dict({"class": "Nope"})


# ------------------------------------------------------------------------------------------------
# models, checkpoints, leakage
# ------------------------------------------------------------------------------------------------
def digits_splits():
    skd = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn (optional; the test extra has it)")
    d = skd.load_digits()
    idx = np.random.default_rng(0).permutation(len(d.target))
    X, y = d.data[idx].astype(np.float64), d.target[idx].astype(np.int64)
    return (X[:1300], y[:1300]), (X[1300:1550], y[1300:1550]), (X[1550:], y[1550:])


def test_model_with_preprocessing_trains_predicts_and_round_trips(tmp_path):
    pytest.importorskip("safetensors", reason="needs safetensors (optional; the test extra has it)")
    (Xtr, ytr), (Xva, yva), (Xte, yte) = digits_splits()
    model = fastnn.MLP(64, [64], 10, seed=0, preprocessing=StandardScaler())
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)
        model.fit(Xtr, ytr, epochs=12, batch_size=32, validation_data=(Xva, yva))
    s = model.preprocessing
    assert s.n_samples_seen_ == len(Xtr)  # fitted on the training split only
    acc = model.score(Xte, yte)
    assert acc > 0.9
    # predict on raw inputs == the network on preprocessed inputs
    net_in = s.transform(Xte, dtype=np.float32)
    assert np.array_equal(model.predict_proba(Xte), model._net.predict(net_in, True))
    assert np.array_equal(model.preprocess(Xte), net_in)
    model.save(tmp_path / "m.safetensors")
    loaded = fastnn.load(tmp_path / "m.safetensors")
    assert isinstance(loaded.preprocessing, StandardScaler)
    assert np.array_equal(loaded.predict_proba(Xte), model.predict_proba(Xte))
    assert loaded.evaluate(Xte, yte) == model.evaluate(Xte, yte)
    assert loaded.preprocessing.fingerprint_.n_rows == len(Xtr)
    assert np.array_equal(model.copy().predict(Xte), model.predict(Xte))


def test_model_preprocessing_chain_pca_and_errors(tmp_path):
    pytest.importorskip("safetensors", reason="needs safetensors (optional; the test extra has it)")
    (Xtr, ytr), (Xva, yva), (Xte, yte) = digits_splits()
    model = fastnn.MLP(30, [64], 10, seed=1, preprocessing=[StandardScaler(), PCA(30, whiten=True)])
    assert isinstance(model.preprocessing, Chain)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict(Xte)
    model.fit(Xtr, ytr, epochs=10, batch_size=32)
    assert model.score(Xte, yte) > 0.85
    model.save(tmp_path / "c.safetensors")
    loaded = fastnn.load(tmp_path / "c.safetensors")
    assert isinstance(loaded.preprocessing, Chain)
    assert np.array_equal(loaded.predict_proba(Xte), model.predict_proba(Xte))
    with pytest.raises(ValueError, match="features"):
        model.predict(Xte[:, :10])
    with pytest.raises(TypeError, match="transformer"):
        model.preprocessing = 3


def test_leakage_warning_names_the_rows():
    (Xtr, ytr), (Xva, yva), _ = digits_splits()
    leaky = StandardScaler().fit(np.concatenate([Xtr, Xva[:100]]))
    model = fastnn.MLP(64, [16], 10, seed=0, preprocessing=leaky)
    with pytest.warns(LeakageWarning, match=r"100 of 250 validation rows were among the 1400 rows StandardScaler"):
        model.fit(Xtr, ytr, epochs=1, validation_data=(Xva, yva))
    assert check_leakage(model, Xva, "test", warn=False) == 100
    assert check_leakage(StandardScaler().fit(Xtr), Xva, warn=False) == 0


def test_leakage_estimate_from_a_sampled_fingerprint(rng):
    X = rng.standard_normal((3 * FINGERPRINT_SIZE, 4))
    s = StandardScaler().fit(X)
    assert not s.fingerprint_.complete
    assert abs(len(s.fingerprint_.hashes) - FINGERPRINT_SIZE) < 5 * np.sqrt(FINGERPRINT_SIZE)
    test = np.concatenate([X[:6000], rng.standard_normal((6000, 4))])
    with pytest.warns(LeakageWarning, match=r"about \d+ of 12000 test rows"):
        n = check_leakage(s, test, "test")
    assert 5000 < n < 7000
    assert check_leakage(s, rng.standard_normal((6000, 4)), warn=False) == 0


def test_pca_on_float32_data_with_a_large_offset_is_exact(rng):
    """float32 rows 1000 + small structure: the covariance is centred in float64 (an uncentred
    X^T X - N mean mean^T in float32 is off by an order of magnitude here)."""
    Z = rng.standard_normal((100000, 16)) * np.linspace(0.01, 1, 16)
    X = (Z + 1000).astype(np.float32)
    truth = np.sort(np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False)))[::-1][:4]
    close(PCA(4).fit(X).explained_variance_, truth, 1e-10, "explained variance")
