"""fastnn.augment: the C++ augmentation kernels against an independent NumPy reference (Philox
draws recomputed in NumPy), their scalar references, reproducibility and thread-count
independence, noise statistics, training with augmentation, and test-time augmentation."""

from __future__ import annotations

import fastnn
import numpy as np
import pytest
from fastnn import _core
from fastnn.augment import Augment, tta_predict, tta_predict_proba
from fastnn.preprocessing import MeanSubtraction, StandardScaler
from registry import philox_np

TWO32 = 4294967296.0


def np_draws(B, seed, stream, flip=0.0, pad=0, brightness=0.0, contrast=0.0):
    u = philox_np(8 * B, seed, stream).reshape(B, 8).astype(np.uint64)
    thr = 1 << 32 if flip >= 1 else int(np.floor(flip * TWO32 + 0.5))
    out = {"flip": (u[:, 0] < np.uint64(thr)) if flip > 0 else np.zeros(B, bool)}
    span = np.uint64(2 * pad + 1)
    out["dy"] = ((u[:, 1] * span) >> np.uint64(32)).astype(np.int64) - pad if pad else np.zeros(B, np.int64)
    out["dx"] = ((u[:, 2] * span) >> np.uint64(32)).astype(np.int64) - pad if pad else np.zeros(B, np.int64)
    sym = lambda v: 2.0 * (v.astype(np.float64) + 0.5) / TWO32 - 1.0  # noqa: E731
    out["delta"] = brightness * sym(u[:, 3]) if brightness else np.zeros(B)
    out["factor"] = 1.0 + contrast * sym(u[:, 4]) if contrast else np.ones(B)
    return out


def np_normals(n, seed, stream):
    m = 2 * ((n + 1) // 2)
    U = philox_np(m, seed, stream ^ (1 << 63)).astype(np.float64)
    r = np.sqrt(-2.0 * np.log((U[0::2] + 1.0) / TWO32))
    t = 2.0 * np.pi * U[1::2] / TWO32
    z = np.empty(m)
    z[0::2], z[1::2] = r * np.cos(t), r * np.sin(t)
    return z[:n]


def np_augment(x, nchw, seed, stream, flip=0.0, pad=0, noise=0.0, brightness=0.0, contrast=0.0):
    """The documented semantics, written with np.pad / slicing (x: (B, H, W, C) or (B, C, H, W))."""
    x = np.asarray(x, np.float64)
    img = x.transpose(0, 2, 3, 1) if nchw else x  # work in NHWC
    B, H, W, C = img.shape
    d = np_draws(B, seed, stream, flip, pad, brightness, contrast)
    out = np.empty_like(img)
    p = max(pad, 1)
    for b in range(B):
        P = np.pad(img[b], ((p, p), (p, p), (0, 0)))
        S = P[p + d["dy"][b]:p + d["dy"][b] + H, p + d["dx"][b]:p + d["dx"][b] + W]
        v = S[:, ::-1] if d["flip"][b] else S
        if contrast:
            m = img[b].mean(axis=(0, 1))
            v = (v - m) * d["factor"][b] + m
        out[b] = v + d["delta"][b]
    if nchw:
        out = out.transpose(0, 3, 1, 2)
    if noise:
        out = out + noise * np_normals(out.size, seed, stream).reshape(out.shape)
    return out


LAYOUTS = [(False, "NHWC"), (True, "NCHW")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("nchw,layout", LAYOUTS, ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("kw", [
    {"flip": 0.5},
    {"pad": 2},
    {"flip": 0.5, "pad": 3},
    {"contrast": 0.4},
    {"brightness": 0.3},
    {"noise": 0.2},
    {"flip": 0.5, "pad": 1, "noise": 0.1, "brightness": 0.2, "contrast": 0.3},
], ids=lambda k: "+".join(k))
def test_matches_numpy_reference_and_scalar_reference(kw, nchw, layout, dtype, rng):
    x = rng.standard_normal((17, 3, 6, 7) if nchw else (17, 6, 7, 3)).astype(dtype)
    shape = x.shape[1:]
    args = {"flip_prob": kw.get("flip", 0.0), "pad": kw.get("pad", 0), "noise_std": kw.get("noise", 0.0),
            "brightness": kw.get("brightness", 0.0), "contrast": kw.get("contrast", 0.0)}
    want = np_augment(x, nchw, 11, 5, **kw)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    for mod in (_core, _core.ref):
        got = mod.augment_images(x, shape, nchw, seed=11, stream=5, **args)
        assert got.shape == x.shape and got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    d = _core.augment_draws(17, flip_prob=args["flip_prob"], pad=args["pad"], brightness=args["brightness"],
                            contrast=args["contrast"], seed=11, stream=5)
    for k, v in np_draws(17, 11, 5, kw.get("flip", 0.0), kw.get("pad", 0), kw.get("brightness", 0.0),
                         kw.get("contrast", 0.0)).items():
        np.testing.assert_array_equal(d[k], v) if k in ("flip", "dy", "dx") else np.testing.assert_allclose(d[k], v)


@pytest.mark.parametrize("nchw,layout", LAYOUTS, ids=["NHWC", "NCHW"])
def test_flip_twice_is_identity_and_crops_fill_zeros(nchw, layout, rng):
    x = rng.standard_normal((9, 2, 5, 4) if nchw else (9, 5, 4, 2))
    aug = Augment(flip=1.0, layout=layout)
    once = aug(x, step=3)
    assert not np.array_equal(once, x)
    assert np.array_equal(aug(once, step=8), x)
    flipped = x[..., ::-1] if nchw else x[:, :, ::-1, :]
    assert np.array_equal(once, flipped)
    # every shift of the padded crop, against slicing
    for dy in (-2, 0, 1):
        for dx in (-1, 0, 2):
            got = _core.shift_flip_images(x, x.shape[1:], nchw, dy=dy, dx=dx)
            img = x.transpose(0, 2, 3, 1) if nchw else x
            P = np.pad(img, ((0, 0), (2, 2), (2, 2), (0, 0)))
            want = P[:, 2 + dy:2 + dy + 5, 2 + dx:2 + dx + 4]
            want = want.transpose(0, 3, 1, 2) if nchw else want
            assert np.array_equal(got, want)
            assert np.array_equal(_core.ref.shift_flip_images(x, x.shape[1:], nchw, dy=dy, dx=dx), want)
    crops = Augment(crop_padding=2, layout=layout)(x, step=1)
    d = Augment(crop_padding=2).draws(9, step=1)
    for b in range(9):  # rows shifted in from outside are zeros
        rows = crops[b] if not nchw else crops[b].transpose(1, 2, 0)
        if d["dy"][b] > 0:
            assert np.all(rows[5 - d["dy"][b]:] == 0)
        if d["dx"][b] < 0:
            assert np.all(rows[:, :-d["dx"][b]] == 0)


def test_reproducible_and_thread_independent(rng):
    x = rng.standard_normal((256, 16, 16, 3)).astype(np.float32)
    aug = Augment(flip=0.5, crop_padding=4, noise_std=0.1, brightness=0.2, contrast=0.2, seed=7)
    fastnn.set_num_threads(1)
    a = aug(x, step=42)
    assert np.array_equal(a, aug(x, step=42))
    assert not np.array_equal(a, aug(x, step=43))
    assert not np.array_equal(a, Augment(flip=0.5, crop_padding=4, noise_std=0.1, seed=8)(x, step=42))
    fastnn.set_num_threads(2)
    assert np.array_equal(a, aug(x, step=42))
    rows = rng.integers(0, 256, 64)
    assert np.array_equal(aug(x, step=5, rows=rows), aug(x[rows], step=5))
    out = np.empty((64, 16, 16, 3), np.float32)
    assert aug(x, step=5, rows=rows, out=out) is out


def test_noise_statistics():
    x = np.zeros((64, 32, 32, 3))
    z = Augment(noise_std=0.5, seed=3)(x, step=0).reshape(-1)
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 0.5) < 0.01
    assert abs(np.mean((z / 0.5) ** 4) - 3.0) < 0.1  # Gaussian kurtosis
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.02  # neighbours independent
    assert np.mean(np.abs(z) > 1.0) == pytest.approx(0.0455, abs=0.005)  # P(|z| > 2 sigma)


def test_brightness_and_contrast_ranges(rng):
    d = Augment(brightness=0.3, contrast=0.25).draws(5000, step=9)
    assert d["delta"].min() >= -0.3 and d["delta"].max() <= 0.3 and abs(d["delta"].mean()) < 0.02
    assert d["factor"].min() >= 0.75 and d["factor"].max() <= 1.25
    x = rng.standard_normal((20, 4, 4, 1)) + 3
    out = Augment(contrast=0.25)(x, step=9)  # the image mean stays put, the spread scales
    f = Augment(contrast=0.25).draws(20, step=9)["factor"]
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), f * x.std(axis=(1, 2, 3)), rtol=1e-12)


def test_bad_arguments(rng):
    x = rng.standard_normal((4, 5, 5, 1))
    with pytest.raises(ValueError, match="image_shape"):
        Augment(flip=0.5)(x.reshape(4, 25))
    with pytest.raises(ValueError, match="holds"):
        Augment(flip=0.5, image_shape=(4, 4, 1))(x.reshape(4, 25))
    with pytest.raises(ValueError, match="pad"):
        Augment(crop_padding=9)(x)
    with pytest.raises(ValueError, match="flip"):
        Augment(flip=1.5)
    with pytest.raises(ValueError, match="contrast"):
        Augment(contrast=2.0)
    with pytest.raises(ValueError, match="layout"):
        Augment(layout="HWC")
    with pytest.raises(ValueError, match="rows"):
        Augment(flip=0.5)(x, rows=np.array([0, 4]))
    assert Augment(flip=1.0, image_shape=(5, 5, 1))(x.reshape(4, 25)).shape == (4, 25)


def digits_images():
    skd = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn (optional; the test extra has it)")
    d = skd.load_digits()
    idx = np.random.default_rng(0).permutation(len(d.target))
    X = d.images[idx].reshape(-1, 8, 8, 1).astype(np.float64)
    y = d.target[idx].astype(np.int64)
    return (X[:1300], y[:1300]), (X[1300:], y[1300:])


def test_training_with_augmentation_learns_and_is_reproducible():
    (Xtr, ytr), (Xte, yte) = digits_images()
    aug = Augment(crop_padding=1, noise_std=0.1, brightness=0.1)

    def run(epochs=15, augment=aug):
        m = fastnn.MLP(64, [128], 10, seed=0, preprocessing=StandardScaler())
        h = m.fit(Xtr, ytr, epochs=epochs, batch_size=32, optimizer=fastnn.optim.Adam(lr=3e-3), augment=augment,
                  validation_data=(Xte, yte))
        return m, h

    m, h = run()
    assert m.score(Xte, yte) > 0.9
    assert h.history["val_acc"][-1] == m.evaluate(Xte, yte)["accuracy"]  # evaluation is not augmented
    assert h.history["loss"][-1] < h.history["loss"][0]
    m2, _ = run()
    assert all(np.array_equal(a, b) for a, b in zip(m.params.values(), m2.params.values(), strict=True))
    one_aug, _ = run(1)
    one_plain, _ = run(1, None)
    assert not np.array_equal(one_aug.params["0.weight"], one_plain.params["0.weight"])
    with pytest.raises(ValueError, match="image"):
        fastnn.MLP(64, [8], 10, seed=0).fit(Xtr.reshape(-1, 64), ytr, epochs=1, augment=Augment(flip=0.5))


def test_tta_averages_flipped_and_shifted_views():
    (Xtr, ytr), (Xte, yte) = digits_images()
    m = fastnn.MLP(64, [64], 10, seed=0, preprocessing=MeanSubtraction("channel"))
    m.fit(Xtr, ytr, epochs=8, batch_size=32)
    base = tta_predict_proba(m, Xte, flips=False)
    np.testing.assert_array_equal(base, m.predict_proba(Xte))
    p = tta_predict_proba(m, Xte, flips=True, crops=1)
    assert p.shape == (len(Xte), 10) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    Xn = m.preprocess(Xte).reshape(-1, 8, 8, 1)
    views = []
    for dy, dx in [(0, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)]:
        v = np.pad(Xn, ((0, 0), (1, 1), (1, 1), (0, 0)))[:, 1 + dy:9 + dy, 1 + dx:9 + dx]
        views += [v, v[:, :, ::-1]]
    want = np.mean([m._net.predict(np.ascontiguousarray(v).reshape(-1, 64), True) for v in views], axis=0)
    np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-6)
    assert np.array_equal(tta_predict(m, Xte, flips=True, crops=1), p.argmax(axis=1))
