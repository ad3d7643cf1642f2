"""The Trainer: epochs in C++, schedules per step, callbacks, history, non-finite losses, and
checkpoint/resume following the same trajectory as uninterrupted training."""

from __future__ import annotations

import fastnn
import numpy as np
import pytest
from fastnn import optim, schedules
from fastnn.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    WeightAveraging,
)
from fastnn.trainer import NonFiniteLossError, Trainer, balanced_order


def data(n=400, d=10, c=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((c, d)) * 3
    y = rng.integers(0, c, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def test_history_records_epochs_batches_and_metrics():
    X, y = data()
    m = fastnn.MLP(10, [16], 3, seed=0)
    h = m.fit(X[:300], y[:300], epochs=4, batch_size=64, validation_data=(X[300:], y[300:]))
    assert h.epoch == [1, 2, 3, 4]
    for k in ("loss", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"):
        assert len(h.history[k]) == 4, k
    assert len(h.batch_loss) == 4 * 5  # 300 rows, batch 64: 5 steps per epoch
    np.testing.assert_allclose(h.batch_epoch[:5], [0.2, 0.4, 0.6, 0.8, 1.0])  # x axis in epochs
    assert h.history["loss"][0] == pytest.approx(np.mean(h.batch_loss[:5]))
    assert h.history["val_acc"][-1] == pytest.approx(m.evaluate(X[300:], y[300:])["accuracy"])


def test_shuffles_indices_reproducibly_and_balanced_sampler():
    t = Trainer(fastnn.MLP(10, [4], 3, seed=5), "sgd")
    y = np.array([0] * 90 + [1] * 9 + [2])
    o1 = t._order(0, 100, y, True, False)
    assert sorted(o1) == list(range(100)) and not np.array_equal(o1, np.arange(100))
    np.testing.assert_array_equal(o1, t._order(0, 100, y, True, False))  # pure function of (seed, epoch)
    assert not np.array_equal(o1, t._order(1, 100, y, True, False))
    b = balanced_order(y, 300, np.random.default_rng(0))
    counts = np.bincount(y[b], minlength=3)
    assert counts.min() >= 99 and counts.max() <= 101


def test_learning_rate_schedule_is_applied_per_step():
    X, y = data()
    m = fastnn.MLP(10, [8], 3, seed=0)
    w0 = m.params["0.weight"].copy()
    # lr 0 for the first epoch: the weights must not move
    sched = schedules.piecewise([1.0], [0.0, 0.05])
    h = m.fit(X, y, optimizer=optim.SGD(lr=sched), epochs=1, batch_size=50)
    np.testing.assert_array_equal(m.params["0.weight"], w0)
    assert h.history["lr"] == [0.0]
    m.fit(X, y, optimizer=optim.SGD(lr=sched), epochs=2, batch_size=50)
    assert not np.array_equal(m.params["0.weight"], w0)


def test_momentum_schedule_and_warmup_cosine():
    X, y = data()
    mom = schedules.linear(0.5, 0.99, 3)
    m = fastnn.MLP(10, [8], 3, seed=0)
    h = m.fit(X, y, optimizer=optim.SGD(lr=schedules.warmup(schedules.cosine(0.05, 5), 1), momentum=mom),
              epochs=5, batch_size=40)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["lr"][-1] == pytest.approx(schedules.cosine(0.05, 5)(5 - 1 / 10))


def test_non_finite_loss_stops_with_step_and_epoch_and_keeps_finite_weights():
    X, y = data()
    m = fastnn.MLP(10, [32], 3, seed=0)
    with pytest.raises(NonFiniteLossError) as ei:
        m.fit(X * 1e3, y, optimizer=optim.SGD(lr=1e6), epochs=5, batch_size=20)
    err = ei.value
    assert err.epoch is not None and err.step >= 0 and "learning rate" in str(err)
    assert all(np.all(np.isfinite(v)) for v in m.params.values())
    assert all(np.all(np.isfinite(v)) for v in m.buffers.values())


def test_early_stopping_restores_best_weights():
    X, y = data()
    m = fastnn.MLP(10, [64], 3, seed=0)
    # validate on shuffled labels: val loss rises once the model fits the training labels
    yv = np.random.default_rng(1).permutation(y[300:])
    es = EarlyStopping("val_loss", patience=2, restore_best_weights=True)
    h = m.fit(X[:300], y[:300], optimizer=optim.Adam(lr=1e-2), epochs=50, batch_size=32,
              validation_data=(X[300:], yv), callbacks=[es])
    assert len(h.epoch) < 50 and es.stopped_epoch == len(h.epoch)
    best = int(np.argmin(h.history["val_loss"]))
    assert es.best_epoch == best + 1
    assert m.evaluate(X[300:], yv)["loss"] == pytest.approx(h.history["val_loss"][best], rel=1e-6)


def test_model_checkpoint_file_names_and_best_only(tmp_path):
    X, y = data()
    m = fastnn.MLP(10, [16], 3, seed=0)
    ck = ModelCheckpoint(tmp_path / "{val_acc:.4f}_{epoch:02d}.safetensors", monitor="val_acc",
                         save_best_only=True)
    h = m.fit(X[:300], y[:300], epochs=5, batch_size=32, validation_data=(X[300:], y[300:]), callbacks=[ck])
    assert ck.saved and all(p.endswith(".safetensors") for p in ck.saved)
    last = ck.saved[-1]
    assert last.endswith(f"{max(h.history['val_acc']):.4f}_{int(np.argmax(h.history['val_acc'])) + 1:02d}"
                         ".safetensors")
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind
    with pytest.raises(KeyError, match="val_f1"):
        fastnn.MLP(10, [4], 3).fit(X, y, epochs=1, callbacks=[ModelCheckpoint(tmp_path / "{val_f1}.st")])


def test_reduce_lr_on_plateau_and_keras_scheduler():
    X, y = data()
    m = fastnn.MLP(10, [16], 3, seed=0)
    yv = np.random.default_rng(1).permutation(y[300:])  # a plateau by construction
    rl = ReduceLROnPlateau("val_loss", factor=0.5, patience=1, min_delta=1e9)
    h = m.fit(X[:300], y[:300], optimizer=optim.SGD(lr=0.1), epochs=5, validation_data=(X[300:], yv),
              callbacks=[rl])
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.0125])
    m2 = fastnn.MLP(10, [16], 3, seed=0)
    h2 = m2.fit(X, y, optimizer=optim.SGD(lr=0.1), epochs=3,
                callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    assert h2.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_weight_averaging_callback():
    X, y = data()
    m = fastnn.MLP(10, [16], 3, seed=0)
    wa = WeightAveraging(0.9, start_epoch=1)
    m.fit(X, y, optimizer=optim.SGD(lr=0.1, momentum=0.9), epochs=4, callbacks=[wa])
    avg = m.averaged()
    assert not np.array_equal(avg.params["0.weight"], m.params["0.weight"])
    assert avg.evaluate(X, y)["accuracy"] > 0.8


def test_custom_callback_can_stop_training():
    class StopAt2(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == 2:
                self.trainer.stop_training = True

    X, y = data()
    h = fastnn.MLP(10, [4], 3).fit(X, y, epochs=10, callbacks=[StopAt2()])
    assert h.epoch == [1, 2]


def test_resumed_training_follows_the_uninterrupted_trajectory(tmp_path):
    """Train 6 epochs straight; train 3, checkpoint, then resume in a fresh model and trainer to 6:
    bitwise identical weights (optimizer state, step counter, dropout masks, shuffling, schedules
    and callback state all restored)."""
    X, y = data(n=500)

    def make():
        return fastnn.MLP(10, [32, 32], 3, batchnorm=True, dropout=0.2, seed=3)

    def opt():
        return optim.Adam(lr=schedules.step_decay(3e-3, 0.5, 2))

    def cbs():
        return [ReduceLROnPlateau("val_loss", patience=1, factor=0.5)]

    full = make()
    Trainer(full, opt(), callbacks=cbs()).fit(X[:400], y[:400], epochs=6, batch_size=32,
                                             validation_data=(X[400:], y[400:]))
    part = make()
    t = Trainer(part, opt(), callbacks=cbs())
    t.fit(X[:400], y[:400], epochs=3, batch_size=32, validation_data=(X[400:], y[400:]))
    t.save_checkpoint(tmp_path / "ck.safetensors")
    resumed = make()
    resumed.reset_parameters(seed=999)  # different weights: the checkpoint must restore everything
    t2 = Trainer(resumed, opt(), callbacks=cbs())
    h2 = t2.fit(X[:400], y[:400], epochs=6, batch_size=32, validation_data=(X[400:], y[400:]),
                resume_from=tmp_path / "ck.safetensors")
    assert h2.epoch == [1, 2, 3, 4, 5, 6]
    for k, v in full.get_weights().items():
        assert np.array_equal(v, resumed.get_weights()[k]), k


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": -5}, ValueError, "batch_size"),
        ({"validation_data": (np.ones((3, 10)),)}, TypeError, "pair"),
        ({"validation_data": (np.ones((3, 9)), [0, 1, 2])}, ValueError, "X_val has 9 features"),
    ],
)
def test_bad_fit_arguments(kwargs, exc, match):
    X, y = data()
    with pytest.raises(exc, match=match):
        fastnn.MLP(10, [4], 3).fit(X, y, **{"epochs": 1, **kwargs})


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: optim.SGD(lr=-0.1), "lr"),
        (lambda: optim.SGD(momentum=1.0), "momentum"),
        (lambda: optim.SGD(nesterov=True), "nesterov"),
        (lambda: optim.Adam(betas=(0.9, 1.0)), "beta2"),
        (lambda: optim.RMSProp(eps=0), "eps"),
        (lambda: optim.Rprop(etas=(1.5, 1.2)), "etas"),
        (lambda: optim.AdaptiveGains(gain_range=(2, 1)), "gain_range"),
        (lambda: optim.resolve_optimizer("adamax"), "unknown optimizer"),
        (lambda: optim.LBFGS(max_iter=0), "max_iter"),
    ],
)
def test_bad_optimizer_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unshuffled_batches_are_used_in_place_and_match_step_by_step_training():
    """shuffle=False: consecutive rows are trained where they lie (no gather); the epoch equals
    train_step on the same slices, and a shuffled epoch equals train_step on gathered rows."""
    X, y = data(n=200)
    a = fastnn.MLP(10, [16], 3, dropout=0.2, seed=1)
    fastnn.Trainer(a, optim.SGD(lr=0.05)).fit(X, y, epochs=1, batch_size=40, shuffle=False)
    b = fastnn.MLP(10, [16], 3, dropout=0.2, seed=1)
    for s in range(0, 200, 40):
        b.train_step(X[s:s + 40], y[s:s + 40], optim.SGD(lr=0.05))
    for k, v in a.get_weights().items():
        assert np.array_equal(v, b.get_weights()[k]), k
    c = fastnn.MLP(10, [16], 3, dropout=0.2, seed=1)
    t = Trainer(c, optim.SGD(lr=0.05))
    t.fit(X, y, epochs=1, batch_size=40)
    order = t._order(0, 200, y, True, False)
    d = fastnn.MLP(10, [16], 3, dropout=0.2, seed=1)
    for s in range(0, 200, 40):
        d.train_step(X[order[s:s + 40]], y[order[s:s + 40]], optim.SGD(lr=0.05))
    for k, v in c.get_weights().items():
        assert np.array_equal(v, d.get_weights()[k]), k


def test_batchnorm_skips_a_trailing_one_row_batch_instead_of_failing():
    # 65 rows in batches of 16 leave 1 row, whose batch variance is 0: with batch norm that row sits
    # the epoch out (a different random row each epoch when shuffling); without batch norm all 65 train
    X, y = data(n=65)
    t = Trainer(fastnn.MLP(10, [16], 3, batchnorm=True, seed=0), "adam")
    h = t.fit(X, y, epochs=3, batch_size=16)
    assert len(h.batch_loss) == 3 * 4 and t.steps_per_epoch == 4
    assert np.isfinite(h.batch_loss).all()
    trainer = Trainer(fastnn.MLP(10, [16], 3, batchnorm=True, seed=0), "sgd")
    orders = [trainer._order(e, 65, y, True, False)[:64] for e in range(3)]
    assert len({int(np.setdiff1d(np.arange(65), o)[0]) for o in orders}) > 1  # not always the same row
    plain = fastnn.MLP(10, [16], 3, seed=0)
    assert len(plain.fit(X, y, epochs=1, batch_size=16).batch_loss) == 5
    with pytest.warns(UserWarning, match="the last row is skipped every epoch"):
        fastnn.MLP(10, [16], 3, batchnorm=True, seed=0).fit(X, y, epochs=1, batch_size=16, shuffle=False)
    with pytest.raises(ValueError, match="got batch_size=1"):
        fastnn.MLP(10, [16], 3, batchnorm=True, seed=0).fit(X, y, epochs=1, batch_size=1)
