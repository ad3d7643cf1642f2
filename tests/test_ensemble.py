"""fastnn.ensemble and the soft-target softmax cross-entropy it distils with: the runtime's loss and
gradient against NumPy, float64 gradient checks (fastnn.gradcheck), bad soft targets; averaging
equals the mean of member probabilities, checkpoints and searches as members, snapshot ensembles
(cyclic cosine), running-average weights with recomputed batch-norm statistics, distillation."""

from __future__ import annotations

import fastnn
import numpy as np
import pytest
from fastnn import _core
from fastnn.callbacks import Callback
from fastnn.ensemble import (
    Ensemble,
    distill,
    fit_averaged,
    recompute_batchnorm,
    snapshot_ensemble,
    softmax,
    train_ensemble,
)
from fastnn.gradcheck import gradcheck


def blobs(n: int = 300, d: int = 8, k: int = 3, seed: int = 0, spread: float = 2.0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * spread
    y = rng.integers(0, k, n)
    return centres[y] + rng.standard_normal((n, d)), y.astype(np.int64)


def soft_targets(rng, n: int, k: int, dtype=np.float64) -> np.ndarray:
    t = rng.random((n, k)) ** 3
    return (t / t.sum(1, keepdims=True)).astype(dtype)


def np_soft_xent(scores: np.ndarray, t: np.ndarray, eps: float = 0.0) -> tuple[float, np.ndarray]:
    C = scores.shape[1]
    t = (1 - eps) * t + eps / (C - 1) * (1 - t)
    z = scores - scores.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(logp)
    N = len(scores)
    return float(-(t * logp).sum() / N), (t.sum(1, keepdims=True) * p - t) / N


# ---------------------------------------------------------------------------------------------
# soft targets in the runtime
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_model_loss_with_soft_targets_matches_numpy(rng, eps):
    X, _ = blobs(40)
    T = soft_targets(rng, 40, 3)
    m = fastnn.MLP(8, [16], 3, dtype=np.float64, seed=1,
                   loss=fastnn.losses.SoftmaxCrossEntropy(label_smoothing=eps))
    loss, grads = m.loss_and_grad(X, T)
    scores = m.forward(X)
    want, dscores = np_soft_xent(scores, T, eps)
    assert loss == pytest.approx(want, rel=1e-12)
    # the output layer's gradients follow from dscores
    _, acts, _ = m.capture(X, T)
    h = acts[1]
    np.testing.assert_allclose(grads["2.weight"], h.T @ dscores, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads["2.bias"], dscores.sum(0), rtol=1e-10, atol=1e-14)
    ev = m.evaluate(X, T)  # the loss against the soft targets, agreement with their argmax
    assert ev["loss"] == pytest.approx(want, rel=1e-12)
    assert ev["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == T.argmax(1)))


def test_one_hot_soft_targets_equal_labels():
    X, y = blobs(120)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        onehot = np.eye(3, dtype=dtype)[y]
        a = fastnn.MLP(8, [16], 3, batchnorm=True, dropout=0.2, dtype=dtype, seed=2,
                       loss=fastnn.losses.SoftmaxCrossEntropy(label_smoothing=0.05))
        b = a.copy()
        la, ga = a.loss_and_grad(X, y)
        lb, gb = b.loss_and_grad(X, onehot)
        assert la == pytest.approx(lb, rel=tol)
        for k in ga:
            np.testing.assert_allclose(ga[k], gb[k], rtol=tol * 10, atol=tol * 1e-2)
        ha = a.fit(X, y, epochs=3, batch_size=32, optimizer="adam")
        hb = b.fit(X, onehot, epochs=3, batch_size=32, optimizer="adam")
        np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=tol * 100)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_soft_target_gradcheck(rng, eps):
    X, _ = blobs(30)
    T = soft_targets(rng, 30, 3)
    m = fastnn.MLP(8, [12, 10], 3, activation="tanh", batchnorm=True, dropout=0.3, l2=1e-2, seed=3,
                   loss=fastnn.losses.SoftmaxCrossEntropy(label_smoothing=eps))
    res = gradcheck(m, X, T, coords="all", n_samples=6)
    assert res.passed, res.report()


def test_soft_target_kernel_binding(rng):
    s = rng.standard_normal((7, 5))
    t = soft_targets(rng, 7, 5)
    for mod in (_core, _core.ref):
        loss, d = mod.softmax_cross_entropy_soft(s, t, 0.1)
        want, dwant = np_soft_xent(s, t, 0.1)
        assert loss == pytest.approx(want, rel=1e-13)
        np.testing.assert_allclose(d, dwant, rtol=1e-12, atol=1e-16)
    with pytest.raises(ValueError, match="'target' must have shape"):
        _core.softmax_cross_entropy_soft(s, t[:3])
    with pytest.raises(TypeError, match="'target'"):
        _core.softmax_cross_entropy_soft(s, t.astype(np.float32))


def test_bad_soft_targets_are_named(rng):
    X, y = blobs(20)
    m = fastnn.MLP(8, [8], 3, seed=0)
    T = soft_targets(rng, 20, 3)
    bad_sum = T * 1.5
    neg = T.copy()
    neg[4] = [1.5, -0.25, -0.25]
    nan = T.copy()
    nan[2, 1] = np.nan
    for arr, exc, msg in ((bad_sum, ValueError, r"y\[0\] sums to 1.5"), (neg, ValueError, r"y\[4\] has a negative"),
                          (nan, ValueError, "NaN"), (T[:, :2], ValueError, r"shape \(20, 3\)"),
                          (T.astype(bool), TypeError, "probabilities")):
        with pytest.raises(exc, match=msg):
            m.fit(X, arr, epochs=1)
    svm = fastnn.MLP(8, [8], 3, seed=0, loss="svm")
    with pytest.raises(ValueError, match="softmax cross-entropy"):
        svm.fit(X, T, epochs=1)
    with pytest.raises(ValueError, match="integer class labels, not soft targets"):
        m.fit(X, T, epochs=1, balanced=True)
    with pytest.raises(TypeError, match="'y' must hold integer class labels"):  # the runtime's own check
        svm._net.train_step(np.ascontiguousarray(X, dtype=np.float32), T.astype(np.float32), 0.1, 0.0)


# ---------------------------------------------------------------------------------------------
# ensembles
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    X, y = blobs(300, seed=5)
    models = []
    for s in range(3):
        m = fastnn.MLP(8, [16], 3, seed=s, dropout=0.1)
        m.fit(X[:200], y[:200], epochs=8, batch_size=32, optimizer=fastnn.optim.Adam(lr=1e-2))
        models.append(m)
    return models, X, y


def test_averaging_is_the_mean_of_member_probabilities(trained):
    models, X, y = trained
    ens = Ensemble(models)
    P = np.stack([m.predict_proba(X).astype(np.float64) for m in models])
    np.testing.assert_allclose(ens.member_proba(X), P)
    np.testing.assert_allclose(ens.predict_proba(X), P.mean(0), rtol=1e-15)
    assert np.array_equal(ens.predict(X), P.mean(0).argmax(1))
    assert ens.score(X, y) == pytest.approx(np.mean(P.mean(0).argmax(1) == y))
    np.testing.assert_allclose(ens.member_scores(X, y), [m.score(X, y) for m in models])
    w = Ensemble(models, weights=[2, 1, 1])
    np.testing.assert_allclose(w.predict_proba(X), (2 * P[0] + P[1] + P[2]) / 4, rtol=1e-15)
    soft = ens.predict_proba(X, temperature=3.0)
    want = np.mean([softmax(m.forward(X), 3.0) for m in models], axis=0)
    np.testing.assert_allclose(soft, want, rtol=1e-12)
    assert np.all(ens.member_proba(X, 3.0).max(2) <= ens.member_proba(X).max(2) + 1e-12)  # softer
    ev = ens.evaluate(X, y)
    assert ev["members"] == 3 and ev["member_best"] >= ev["member_mean"] >= ev["member_worst"]


def test_ensemble_rejects_bad_members(trained):
    models, X, y = trained
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])
    with pytest.raises(ValueError, match="member 1 maps"):
        Ensemble([models[0], fastnn.MLP(8, [4], 4)])
    with pytest.raises(ValueError, match="not a classifier"):
        Ensemble([fastnn.MLP(8, [4], 3, loss="mse")])
    with pytest.raises(ValueError, match="weights"):
        Ensemble(models, weights=[1, -1, 1])
    with pytest.raises(ValueError, match="temperature"):
        Ensemble(models).predict_proba(X, temperature=0)


def test_from_checkpoints_applies_their_preprocessing(trained, tmp_path):
    pytest.importorskip("safetensors", reason="needs safetensors (optional; the test extra has it)")
    from fastnn.datasets import Standardizer

    models, X, y = trained
    raw = X * 3.0 + 7.0
    sc = Standardizer().fit(raw)  # maps raw back to (roughly) the scale the members saw
    paths = []
    for i, m in enumerate(models):
        paths.append(tmp_path / f"m{i}.safetensors")
        m.save(paths[-1], preprocessing=sc.to_dict())
    ens = Ensemble.from_checkpoints(paths)
    np.testing.assert_allclose(ens.predict_proba(raw), Ensemble(models).predict_proba(sc.transform(raw)),
                               rtol=1e-6)
    plain = Ensemble.from_checkpoints(paths, preprocessing=None)
    np.testing.assert_allclose(plain.predict_proba(X), Ensemble(models).predict_proba(X), rtol=1e-6)
    models[0].save(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="different preprocessing"):
        Ensemble.from_checkpoints([paths[0], tmp_path / "other.safetensors"])


def test_from_search_takes_the_top_k(tmp_path):
    pytest.importorskip("safetensors", reason="needs safetensors (optional; the test extra has it)")
    from fastnn.search import Search, load_search, loguniform

    X, y = blobs(300, seed=2)
    Search({"lr": loguniform(1e-3, 1e-1)}, tmp_path, stages=[(5, 2)], fixed={"width": 8}).run(
        X[:200], y[:200], X[200:], y[200:])
    res = load_search(tmp_path)
    ens = Ensemble.from_search(tmp_path, 3)
    assert len(ens) == 3
    top = res.top(3)
    assert ens.sources == [f"trial {r['trial']} (val_acc {r['val_acc']:.4f})" for r in top]
    for m, r in zip(ens.models, top, strict=True):
        assert m.score(X[200:], y[200:]) == pytest.approx(r["val_acc"])
    assert len(res.ensemble(10)) == 5
    with pytest.raises(ValueError, match="positive integer"):
        Ensemble.from_search(tmp_path, 0)


def test_train_ensemble_members_differ_only_by_seed():
    X, y = blobs(200, seed=4)
    ens = train_ensemble({"width": 8, "lr": 1e-2}, X[:150], y[:150], X[150:], y[150:], n=3, seed=10, epochs=2)
    assert len(ens) == 3 and [m.seed for m in ens.models] == [10, 11, 12]
    assert len({m.params["0.weight"].tobytes() for m in ens.models}) == 3
    assert all(len(h.epoch) == 2 for h in ens.histories)


# ---------------------------------------------------------------------------------------------
# snapshots, running averages
# ---------------------------------------------------------------------------------------------
def test_snapshot_ensemble_keeps_the_end_of_each_cosine_cycle():
    X, y = blobs(200, seed=6)
    model = fastnn.MLP(8, [16], 3, seed=0)
    ens = snapshot_ensemble(model, X, y, cycles=3, epochs_per_cycle=2, lr=0.05, min_lr=1e-3, batch_size=50)
    assert len(ens) == 3 and ens.snapshot_epochs == [2, 4, 6]
    lrs = ens.history.history["lr"]  # the last step of each epoch: low at the end of a cycle
    assert lrs[1] < lrs[0] and lrs[3] < lrs[2] and lrs[2] > lrs[1]  # warm restart
    assert lrs[1] == pytest.approx(1e-3, abs=2e-3)
    for a, b in zip(ens.models[-1].get_weights().values(), model.get_weights().values(), strict=True):
        assert np.array_equal(a, b)  # the last snapshot is the final model
    assert not np.array_equal(ens.models[0].params["0.weight"], ens.models[1].params["0.weight"])
    sched = fastnn.schedules.cosine_restarts(0.05, 2.0, final=1e-3)
    assert sched(0.0) == pytest.approx(0.05) and sched(2.0) == pytest.approx(0.05)
    two = snapshot_ensemble(fastnn.MLP(8, [16], 3, seed=0), X, y, cycles=3, epochs_per_cycle=1, keep=2)
    assert two.snapshot_epochs == [2, 3]


def test_fit_averaged_polyak_and_batchnorm_statistics():
    X, y = blobs(160, seed=7)
    model = fastnn.MLP(8, [12], 3, batchnorm=True, seed=0, dtype=np.float64)
    avg, hist = fit_averaged(model, X, y, decay="polyak", start_epoch=4, epochs=8, batch_size=40,
                             optimizer=fastnn.optim.Adam(lr=1e-2))
    np.testing.assert_array_equal(np.concatenate([p.ravel() for p in avg.params.values()]),
                                  np.concatenate([p.ravel() for p in model.averaged().params.values()]))
    assert not np.array_equal(avg.params["0.weight"], model.params["0.weight"])
    # the batch-norm statistics of the averaged weights: exact mean and unbiased variance of its input
    h = X @ avg.params["0.weight"] + avg.params["0.bias"]
    np.testing.assert_allclose(avg.buffers["1.running_mean"], h.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(avg.buffers["1.running_var"], h.var(0, ddof=1), rtol=1e-9)
    assert avg.score(X, y) > 0.8 and len(hist.epoch) == 8


def test_recompute_batchnorm_layer_after_layer():
    X, _ = blobs(100, seed=8)
    m = fastnn.MLP(8, [10, 6], 3, batchnorm=True, seed=1, dtype=np.float64)
    recompute_batchnorm(m, X, chunk=33)  # chunks: sums over uneven pieces
    h1 = X @ m.params["0.weight"] + m.params["0.bias"]
    np.testing.assert_allclose(m.buffers["1.running_mean"], h1.mean(0), rtol=1e-10, atol=1e-12)
    a1 = np.maximum((h1 - h1.mean(0)) / np.sqrt(h1.var(0, ddof=1) + 1e-5) * m.params["1.weight"]
                    + m.params["1.bias"], 0)
    h2 = a1 @ m.params["3.weight"] + m.params["3.bias"]
    np.testing.assert_allclose(m.buffers["4.running_var"], h2.var(0, ddof=1), rtol=1e-8)


# ---------------------------------------------------------------------------------------------
# distillation
# ---------------------------------------------------------------------------------------------
class _Last(Callback):
    def on_train_end(self, logs=None):
        self.w = self.trainer.model.params["2.weight"].copy()
        self.b = self.trainer.model.params["2.bias"].copy()


def test_distill_trains_on_softened_targets_and_rescales_the_output(trained):
    models, X, y = trained
    teacher = Ensemble(models)
    student = fastnn.MLP(8, [16], 3, seed=9)
    last = _Last()
    hist = distill(teacher, X, None, student, temperature=2.5, epochs=15, batch_size=32, callbacks=[last],
                   validation_data=(X, y), optimizer=fastnn.optim.Adam(lr=1e-2))
    np.testing.assert_allclose(student.params["2.weight"], 2.5 * last.w, rtol=1e-6)
    np.testing.assert_allclose(student.params["2.bias"], 2.5 * last.b, rtol=1e-6)
    agree = np.mean(student.predict(X) == teacher.predict(X))
    assert agree > 0.9, agree
    assert len(hist.history["val_acc"]) == 15
    # a student trained on the plain probabilities follows them as closely as its loss allows: its
    # cross-entropy against the teacher's softened targets dropped during training
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_distill_with_hard_labels_and_errors(trained):
    models, X, y = trained
    s = fastnn.MLP(8, [16], 3, seed=1)
    distill(models[0], X, y, s, temperature=1.0, alpha=0.5, epochs=2)
    with pytest.raises(ValueError, match="needs the hard labels"):
        distill(models[0], X, None, fastnn.MLP(8, [16], 3), alpha=0.3, epochs=1)
    with pytest.raises(ValueError, match="temperature"):
        distill(models[0], X, y, fastnn.MLP(8, [16], 3), temperature=-1.0)
    with pytest.raises(ValueError, match="last layer must be Dense"):
        distill(models[0], X, y, fastnn.Sequential([fastnn.Dense(8, 3), fastnn.ReLU()]))
    with pytest.raises(ValueError, match="4 outputs"):
        distill(models[0], X, y, fastnn.MLP(8, [16], 4))
    with pytest.raises(TypeError, match="softmax"):
        distill(models[0], X, y, fastnn.MLP(8, [16], 3, loss="svm"))
