"""fastnn.datasets: bundled/generated data, file loaders and their errors, stratified splits and the
class-balanced sampler."""

from __future__ import annotations

import random
import sys

import fastnn
import numpy as np
import pytest
from fastnn import datasets


# ----------------------------------------------------------------------------------------------
# digits and spiral
# ----------------------------------------------------------------------------------------------
def test_load_digits_vectors_and_images_agree():
    pytest.importorskip("sklearn", reason="needs scikit-learn (optional; the test extra has it)")
    X, y = datasets.load_digits()
    Xi, yi = datasets.load_digits(images=True)
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert Xi.shape == (1797, 8, 8, 1) and Xi.flags.c_contiguous
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    np.testing.assert_array_equal(Xi.reshape(1797, 64), X)
    np.testing.assert_array_equal(y, yi)
    assert X.min() == 0 and X.max() == 16


def _cs231n_spiral(N, K, noise_draws):
    # the case study's code, with the angle noise passed in instead of drawn from np.random
    X = np.zeros((N * K, 2))
    y = np.zeros(N * K, dtype="uint8")
    for j in range(K):
        ix = range(N * j, N * (j + 1))
        r = np.linspace(0.0, 1, N)
        t = np.linspace(j * 4, (j + 1) * 4, N) + noise_draws[j] * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return X, y


def test_make_spiral_matches_the_cs231n_construction():
    X, y = datasets.make_spiral(n_per_class=50, classes=4, seed=3)
    rng = np.random.default_rng(3)
    draws = [rng.standard_normal(50) for _ in range(4)]
    Xr, yr = _cs231n_spiral(50, 4, draws)
    np.testing.assert_allclose(X, Xr, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(y, yr)
    assert X.shape == (200, 2) and y.dtype == np.int64 and np.bincount(y).tolist() == [50] * 4
    np.testing.assert_array_equal(datasets.make_spiral(50, 4, seed=3)[0], X)  # reproducible
    assert not np.array_equal(datasets.make_spiral(50, 4, seed=4)[0], X)


def test_make_spiral_in_more_dimensions_keeps_the_geometry():
    X2, y2 = datasets.make_spiral(30, 3, dims=2, noise=0.0, seed=1)
    X7, y7 = datasets.make_spiral(30, 3, dims=7, noise=0.0, seed=1)
    assert X7.shape == (90, 7)
    np.testing.assert_array_equal(y2, y7)
    d2 = np.linalg.norm(X2[:, None] - X2[None], axis=-1)
    d7 = np.linalg.norm(X7[:, None] - X7[None], axis=-1)
    np.testing.assert_allclose(d7, d2, atol=1e-12)  # an isometric embedding of the same spiral
    assert np.linalg.matrix_rank(X7, tol=1e-9) == 2


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"n_per_class": 0}, ValueError, "n_per_class"),
    ({"classes": 1}, ValueError, "classes"),
    ({"dims": 1}, ValueError, "dims"),
    ({"noise": -0.1}, ValueError, "noise"),
    ({"noise": float("nan")}, ValueError, "noise"),
    ({"n_per_class": 2.5}, TypeError, "n_per_class"),
    ({"classes": True}, TypeError, "classes"),
])
def test_make_spiral_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        datasets.make_spiral(**kwargs)


def test_spiral_is_learnable_by_an_mlp_but_not_by_a_linear_model():
    X, y = datasets.make_spiral(100, 3, seed=0)
    X = X.astype(np.float32)
    lin = fastnn.Sequential([fastnn.Dense(2, 3)], seed=0)
    lin.fit(X, y, optimizer="adam", epochs=60, batch_size=50)
    mlp = fastnn.MLP(2, [64], 3, seed=0)
    mlp.fit(X, y, optimizer=fastnn.optim.Adam(lr=1e-2), epochs=150, batch_size=50)
    assert lin.score(X, y) < 0.65  # the CS231n case study: a softmax classifier reaches ~0.5
    assert mlp.score(X, y) > 0.95


# ----------------------------------------------------------------------------------------------
# MNIST-1D
# ----------------------------------------------------------------------------------------------
def test_load_mnist1d_matches_the_package_and_leaves_global_random_state_alone():
    mnist1d_data = pytest.importorskip("mnist1d.data", reason="needs mnist1d (optional; the test extra has it)")
    np.random.seed(123)  # noqa: NPY002 - the global state the package would otherwise reseed
    random.seed(7)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    X, y = datasets.load_mnist1d(num_samples=300, seed=5)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert random.getstate() == py_state
    assert X.shape == (300, 40) and X.dtype == np.float64 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [30] * 10
    # the package's own generator, same arguments and split (4/5 train)
    args = mnist1d_data.get_dataset_args()
    args.num_samples, args.seed = 300, 5
    ref = mnist1d_data.make_dataset(args)
    split = datasets.load_mnist1d(num_samples=300, seed=5, split=True)
    np.testing.assert_allclose(split["train"][0], ref["x"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(split["train"][1], ref["y"])
    np.testing.assert_allclose(split["test"][0], ref["x_test"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(split["test"][1], ref["y_test"])
    np.testing.assert_array_equal(np.concatenate([split["train"][1], split["test"][1]]), y)


def test_load_mnist1d_returns_copies_and_varies_with_its_arguments():
    pytest.importorskip("mnist1d", reason="needs mnist1d (optional; the test extra has it)")
    X, _ = datasets.load_mnist1d(num_samples=100, seed=0)
    X[:] = 0.0
    X2, _ = datasets.load_mnist1d(num_samples=100, seed=0)  # cached, but not the mutated array
    assert np.abs(X2).sum() > 0
    X3, _ = datasets.load_mnist1d(num_samples=100, seed=0, final_seq_length=20, iid_noise_scale=0.1)
    assert X3.shape == (100, 20)
    assert not np.array_equal(datasets.load_mnist1d(num_samples=100, seed=1)[0], X2)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"num_samples": 5}, ValueError, "num_samples"),
    ({"train_split": 1.0}, ValueError, "train_split"),
    ({"padding": (10, 5)}, ValueError, "padding"),
    ({"padding": 3}, TypeError, "padding"),
    ({"shear_scale": -1}, ValueError, "shear_scale"),
    ({"seed": -1}, ValueError, "seed"),
])
def test_load_mnist1d_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        datasets.load_mnist1d(**kwargs)


def test_load_mnist1d_without_the_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match=r"fastnn\[data\]"):
        datasets.load_mnist1d(num_samples=20, seed=987654)  # an argument set not in the cache


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def test_load_npz_round_trip_and_errors(tmp_path):
    X, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 0, 1])
    p = tmp_path / "d.npz"
    np.savez(p, X=X, y=y)
    Xl, yl = datasets.load_npz(p)
    np.testing.assert_array_equal(Xl, X)
    np.testing.assert_array_equal(yl, y)
    np.savez(tmp_path / "k.npz", data=X, target=y)
    np.testing.assert_array_equal(datasets.load_npz(tmp_path / "k.npz", x_key="data", y_key="target")[1], y)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        datasets.load_npz(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"must contain arrays 'X' and 'y'.*\['data', 'target'\]"):
        datasets.load_npz(tmp_path / "k.npz")
    np.savez(tmp_path / "m.npz", X=X, y=y[:3])
    with pytest.raises(ValueError, match="same number of rows"):
        datasets.load_npz(tmp_path / "m.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an archive at all")
    with pytest.raises(ValueError, match="not a readable .npz"):
        datasets.load_npz(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", X)
    with pytest.raises(ValueError, match="single .npy array"):
        datasets.load_npz(tmp_path / "single.npy")
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(ValueError, match="not a readable .npz"):  # no pickle, ever
        datasets.load_npz(tmp_path / "obj.npz")


def test_load_csv_header_labels_and_errors(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,2\n", encoding="utf-8")
    X, y = datasets.load_csv(p)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2]
    X0, y0 = datasets.load_csv(p, label_column=0)
    np.testing.assert_array_equal(X0, [[2, 0], [4, 1], [6, 2]])
    assert y0.tolist() == [1, 3, 5]
    q = tmp_path / "r.csv"
    q.write_text("1;0.5\n2;1.5\n", encoding="utf-8")
    assert datasets.load_csv(q, delimiter=";")[1].dtype == np.float64  # regression targets stay float
    with pytest.raises(FileNotFoundError):
        datasets.load_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,0\n3,x,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="numeric"):
        datasets.load_csv(bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,0\n3,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="same number of columns"):
        datasets.load_csv(ragged)
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b,label\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no data rows"):
        datasets.load_csv(empty)
    one = tmp_path / "one.csv"
    one.write_text("1\n2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="at least 2 columns"):
        datasets.load_csv(one)
    with pytest.raises(ValueError, match="label_column=5"):
        datasets.load_csv(p, label_column=5)


# ----------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------
def test_stratified_split_keeps_class_proportions_and_partitions_the_rows():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    X = np.arange(len(y))[:, None].astype(float)
    s = datasets.train_val_test_split(X, y, val=0.1, test=0.2, seed=0)
    rows = np.concatenate([s[k][0][:, 0] for k in ("train", "val", "test")]).astype(int)
    assert sorted(rows) == list(range(len(y)))  # disjoint and complete
    for k, frac in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        Xs, ys = s[k]
        np.testing.assert_array_equal(y[Xs[:, 0].astype(int)], ys)  # rows and labels stay paired
        np.testing.assert_array_equal(np.bincount(ys, minlength=3), np.round(frac * np.array([500, 300, 200])))
    s2 = datasets.train_val_test_split(X, y, val=0.1, test=0.2, seed=0)
    np.testing.assert_array_equal(s2["test"][0], s["test"][0])  # reproducible


def test_split_stratifies_string_labels_and_explicit_groups_but_not_float_targets():
    y = np.array(["cat"] * 80 + ["dog"] * 20)
    X = np.zeros((100, 2))
    s = datasets.train_val_test_split(X, y, val=0.0, test=0.25, seed=1)
    assert (s["test"][1] == "dog").sum() == 5 and len(s["val"][1]) == 0
    groups = np.repeat([0, 1], [90, 10])
    s = datasets.train_val_test_split(X, np.linspace(0, 1, 100), val=0.0, test=0.2, seed=1, stratify=groups)
    assert (s["test"][1] > 0.899).sum() == 2  # 20 % of the 10 rows of group 1
    yf = np.linspace(0, 1, 100)
    s = datasets.train_val_test_split(X, yf, val=0.2, test=0.2, seed=1)
    assert [len(s[k][1]) for k in ("train", "val", "test")] == [60, 20, 20]
    img = np.zeros((100, 8, 8, 1))
    assert datasets.train_val_test_split(img, y, seed=0)["train"][0].shape[1:] == (8, 8, 1)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"val": 0.6, "test": 0.5}, "val \\+ test"),
    ({"val": -0.1}, "val must be a fraction"),
    ({"test": 1.0}, "test must be a fraction"),
    ({"stratify": np.zeros(3)}, "stratify must have shape"),
])
def test_split_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.train_val_test_split(np.zeros((10, 2)), np.arange(10) % 2, **kwargs)
    with pytest.raises(ValueError, match="rows"):
        datasets.train_val_test_split(np.zeros((10, 2)), np.zeros(9))


# ----------------------------------------------------------------------------------------------
# class-balanced sampling
# ----------------------------------------------------------------------------------------------
def test_balanced_order_is_the_one_the_trainer_uses():
    from fastnn import trainer

    assert trainer.balanced_order is datasets.balanced_order
    y = np.array(["a"] * 95 + ["b"] * 4 + ["c"])
    idx = datasets.balanced_order(y, 301, np.random.default_rng(0))
    assert idx.dtype == np.int64 and len(idx) == 301
    _, counts = np.unique(y[idx], return_counts=True)
    assert counts.min() == 100 and counts.max() == 101
    with pytest.raises(ValueError, match="1-D"):
        datasets.balanced_order(np.zeros((3, 2)), 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n must be >= 1"):
        datasets.balanced_order(y, 0, np.random.default_rng(0))


def test_balanced_sampler_batches_epochs_and_lengths():
    y = np.repeat([0, 1, 2], [70, 20, 10])
    s = datasets.BalancedSampler(y, batch_size=32, seed=3)
    batches = list(s.epoch(0))
    assert len(batches) == len(s) == 4 and [len(b) for b in batches] == [32, 32, 32, 4]
    seen = np.concatenate(batches)
    np.testing.assert_array_equal(seen, s.order(0))
    assert sorted(np.bincount(y[seen])) == [33, 33, 34]
    np.testing.assert_array_equal(np.concatenate(list(s.epoch(0))), seen)  # pure function of (seed, epoch)
    assert not np.array_equal(s.order(1), seen)
    first, second = (np.concatenate(list(s)) for _ in range(2))  # iterating moves on an epoch each time
    np.testing.assert_array_equal(first, s.order(0))
    np.testing.assert_array_equal(second, s.order(1))
    d = datasets.BalancedSampler(y, batch_size=32, samples_per_epoch=90, drop_last=True)
    assert len(d) == 2 and [len(b) for b in d] == [32, 32]
    with pytest.raises(ValueError, match="batch_size"):
        datasets.BalancedSampler(y, batch_size=0)


def test_trainer_balanced_fit_still_draws_balanced_batches():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [190, 10])
    X = (rng.standard_normal((200, 4)) + y[:, None] * 2.0).astype(np.float32)
    m = fastnn.MLP(4, [8], 2, seed=0)
    t = fastnn.Trainer(m, "adam")
    order = t._order(0, 200, y, True, True)
    assert abs(int(np.sum(y[order] == 1)) - 100) <= 1
    t.fit(X, y, epochs=2, batch_size=50, balanced=True)
    assert t.epoch == 2
