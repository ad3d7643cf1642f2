"""fastnn.MLPClassifier / MLPRegressor: scikit-learn's estimator checks, scikit-learn's semantics
(stopping rule, alpha scaling, batch_size='auto', partial_fit, warm_start, early stopping), pickling,
model selection tools and joblib workers that limit their own threads."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import fastnn
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6", reason="needs scikit-learn >= 1.6 (the test extra has it)")

from fastnn.estimator import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

# short fits in these tests stop at max_iter on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ----------------------------------------------------------------------------------------------
# scikit-learn's own conformance checks
# ----------------------------------------------------------------------------------------------
# small networks and few epochs keep the ~100 checks per estimator fast; float64 so that the
# checks' tight tolerances (e.g. predictions on subsets == predictions on the whole) test the
# logic rather than float32 rounding (the float32 default is exercised by the tests below)
_CHECKED = [
    MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=1e-2, dtype="float64"),
    MLPRegressor(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=1e-2, dtype="float64"),
    MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, learning_rate_init=1e-2),
]


# every check runs and passes: none is skipped or expected to fail (the only skips come from
# scikit-learn itself: array-API checks without SCIPY_ARRAY_API, pandas checks without pandas)
@parametrize_with_checks(_CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ----------------------------------------------------------------------------------------------
# scikit-learn's semantics, step by step: same initial weights -> the same trajectory
# ----------------------------------------------------------------------------------------------
def _data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0.5)  # 3 classes
    yr = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.standard_normal(n)
    return X, y, yr


def _same_start(kind, epochs, **kw):
    """scikit-learn's and fastnn's estimator from the same weights (fastnn's copied into
    scikit-learn's after one warm-start epoch each), then ``epochs`` more epochs of both."""
    from sklearn.neural_network import MLPClassifier as SkC
    from sklearn.neural_network import MLPRegressor as SkR

    X, y, yr = _data()
    params = dict(hidden_layer_sizes=(8,), batch_size=50, shuffle=False, alpha=1e-2, random_state=0,
                  n_iter_no_change=3, warm_start=True)
    params.update(kw)
    sk_cls, fn_cls, t = (SkC, MLPClassifier, y) if kind == "clf" else (SkR, MLPRegressor, yr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = sk_cls(max_iter=1, **params).fit(X, t)
        fn = fn_cls(max_iter=1, dtype="float64", **params).fit(X, t)
        for a, b in zip(fn.coefs_ + fn.intercepts_, sk.coefs_ + sk.intercepts_, strict=True):
            a[...] = b  # coefs_/intercepts_ are views into the fastnn model
        sk.set_params(max_iter=epochs).fit(X, t)
        fn.set_params(max_iter=epochs).fit(X, t)
    return sk, fn


@pytest.mark.parametrize("kw", [
    dict(solver="sgd", learning_rate_init=0.1),                                # Nesterov momentum
    dict(solver="sgd", learning_rate_init=0.1, nesterovs_momentum=False),
    dict(solver="sgd", learning_rate_init=0.1, momentum=0.0),
    dict(solver="sgd", learning_rate_init=0.5, learning_rate="invscaling"),
    dict(solver="sgd", learning_rate_init=0.2, learning_rate="adaptive", tol=0.02, n_iter_no_change=2),
    dict(solver="sgd", learning_rate_init=0.1, tol=0.05),                      # stops early on tol
    dict(solver="sgd", learning_rate_init=0.1, batch_size="auto"),
], ids=["nesterov", "momentum", "plain", "invscaling", "adaptive", "tol-stop", "auto-batch"])
@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_sgd_takes_exactly_scikit_learns_steps(kind, kw):
    if kind == "reg":  # the squared error takes smaller steps (0.5 diverges)
        kw = {**kw, "learning_rate_init": kw["learning_rate_init"] * 0.2}
    sk, fn = _same_start(kind, 25, **kw)
    assert fn.n_iter_ == sk.n_iter_
    assert fn.t_ == sk.t_
    np.testing.assert_allclose(fn.loss_curve_[1:], sk.loss_curve_[1:], rtol=1e-10)  # alpha scaling, half-MSE
    assert fn.best_loss_ == pytest.approx(sk.best_loss_, rel=1e-10)
    for a, b in zip(fn.coefs_ + fn.intercepts_, sk.coefs_ + sk.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_stopping_rule_and_adaptive_rate_trigger_in_those_runs():
    _, stopped = _same_start("clf", 25, solver="sgd", learning_rate_init=0.1, tol=0.05)
    assert stopped.n_iter_ < 25  # the tol/n_iter_no_change rule fired, at scikit-learn's epoch
    _, adaptive = _same_start("clf", 25, solver="sgd", learning_rate_init=0.2, learning_rate="adaptive",
                              tol=0.02, n_iter_no_change=2)
    assert adaptive._lr < 0.2  # the learning rate was divided by 5 at least once


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_adam_follows_scikit_learns_trajectory(kind):
    # fastnn's Adam adds epsilon after the bias correction (PyTorch's form): same path within ~1e-5
    sk, fn = _same_start(kind, 20, solver="adam", learning_rate_init=0.01)
    np.testing.assert_allclose(fn.loss_curve_[1:], sk.loss_curve_[1:], rtol=1e-4)
    for a, b in zip(fn.coefs_, sk.coefs_, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_reported_loss_is_the_mean_loss_plus_scaled_l2_penalty():
    # full batch, a learning rate too small to move the weights: loss_ is the objective at the start
    X, y, yr = _data()
    alpha = 0.5
    clf = MLPClassifier(hidden_layer_sizes=(6,), solver="sgd", momentum=0.0, learning_rate_init=1e-12,
                        batch_size=len(X), alpha=alpha, dtype="float64", random_state=1)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    W1, W2 = clf.coefs_
    h = np.maximum(X @ W1 + clf.intercepts_[0], 0)
    s = h @ W2 + clf.intercepts_[1]
    s -= s.max(axis=1, keepdims=True)
    ce = np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y])
    penalty = 0.5 * alpha * (np.sum(W1 ** 2) + np.sum(W2 ** 2)) / len(X)
    assert clf.loss_ == pytest.approx(ce + penalty, rel=1e-9)
    reg = MLPRegressor(hidden_layer_sizes=(6,), solver="sgd", momentum=0.0, learning_rate_init=1e-12,
                       batch_size=len(X), alpha=alpha, dtype="float64", random_state=1).partial_fit(X, yr)
    W1, W2 = reg.coefs_
    pred = (np.maximum(X @ W1 + reg.intercepts_[0], 0) @ W2 + reg.intercepts_[1]).ravel()
    penalty = 0.5 * alpha * (np.sum(W1 ** 2) + np.sum(W2 ** 2)) / len(X)
    assert reg.loss_ == pytest.approx(0.5 * np.mean((pred - yr) ** 2) + penalty, rel=1e-9)


def test_batch_size_auto_is_min_200_n_and_larger_sizes_are_clipped():
    X, y, _ = _data(n=450)
    clf = MLPClassifier(hidden_layer_sizes=(4,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    assert clf.model_.step == 3  # ceil(450 / 200) steps in one epoch
    clf = MLPClassifier(hidden_layer_sizes=(4,), random_state=0).partial_fit(X[:150], y[:150], classes=[0, 1, 2])
    assert clf.model_.step == 1
    with pytest.warns(UserWarning, match="clipped"):
        clf = MLPClassifier(hidden_layer_sizes=(4,), batch_size=1000, random_state=0)
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.model_.step == 1


def test_early_stopping_keeps_validation_scores_and_restores_the_best_weights():
    X, y, _ = _data(n=600)
    clf = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, n_iter_no_change=4, max_iter=200,
                        learning_rate_init=0.05, random_state=0).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(scores)
    assert clf.n_iter_ < 200 and clf.n_iter_ - 1 - int(np.argmax(scores)) >= 4
    # the held-out split (stratified, drawn like scikit-learn after the weight seed) scores the best
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    rs = check_random_state(0)
    rs.randint(np.iinfo(np.int32).max)
    _, X_val, _, y_val = train_test_split(X, y, random_state=rs, test_size=0.1, stratify=y)
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        clf.partial_fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=50, random_state=0).fit(X, _data(600)[2])
    assert len(reg.validation_scores_) == reg.n_iter_ and reg.best_validation_score_ == max(reg.validation_scores_)


# ----------------------------------------------------------------------------------------------
# labels, partial_fit, warm start, outputs
# ----------------------------------------------------------------------------------------------
def test_string_labels_binary_and_probabilities():
    X, y, _ = _data()
    labels = np.array(["no", "yes"])[(y > 0).astype(int)]
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, learning_rate_init=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, labels)
    assert list(clf.classes_) == ["no", "yes"]
    assert set(clf.predict(X)) <= {"no", "yes"} and clf.score(X, labels) > 0.85
    p = clf.predict_proba(X)
    assert p.dtype == np.float64 and p.shape == (150, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(p), clf.predict_log_proba(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[p.argmax(axis=1)], clf.predict(X))
    assert clf.coefs_[-1].shape == (16, 2)  # a 2-unit softmax (scikit-learn: 1 logistic unit)
    assert clf.n_outputs_ == 2 and clf.out_activation_ == "softmax" and clf.n_layers_ == 3


def test_multilabel_targets_are_refused_with_a_clear_message():
    X, y, _ = _data()
    Y = np.stack([y == 1, y == 2], axis=1).astype(int)
    with pytest.raises(ValueError, match="Multilabel"):
        MLPClassifier(max_iter=5).fit(X, Y)


def test_partial_fit_runs_one_epoch_per_call_and_checks_classes():
    X, y, _ = _data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # a batch need not hold every class
    assert clf.n_iter_ == 1 and clf.t_ == int((y < 2).sum()) and list(clf.classes_) == [0, 1, 2]
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and clf.t_ == int((y < 2).sum()) + 150 and len(clf.loss_curve_) == 2
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, np.where(y == 2, 7, y))
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1])
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    reg = MLPRegressor(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(3):
        reg.partial_fit(X, _data()[2])
    assert reg.t_ == 450 and len(reg.loss_curve_) == 3 and reg.loss_curve_[-1] < reg.loss_curve_[0]


def test_warm_start_continues_and_checks_the_classes():
    X, y, _ = _data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        w = clf.coefs_[0].copy()
        model = clf.model_
        clf.fit(X, y)
    assert clf.model_ is model and not np.array_equal(clf.coefs_[0], w)
    assert len(clf.loss_curve_) == 10
    with pytest.raises(ValueError, match="warm_start can only be used"):
        clf.fit(X[y < 2], y[y < 2])
    cold = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y)
        first = cold.model_
        cold.fit(X, y)
    assert cold.model_ is not first and len(cold.loss_curve_) == 5


def test_regressor_multi_output_and_lbfgs():
    X, _, yr = _data(n=300)
    Y = np.stack([yr, X[:, 3] * 2.0, -X[:, 4]], axis=1)
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=400, learning_rate_init=0.01, random_state=0,
                       tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, Y)
    assert reg.predict(X).shape == (300, 3) and reg.predict(X).dtype == np.float64
    assert reg.score(X, Y) > 0.9 and reg.n_outputs_ == 3 and reg.out_activation_ == "identity"
    lb = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=300, random_state=0).fit(X, yr)
    assert lb.predict(X).shape == (300,) and lb.score(X, yr) > 0.95 and lb.n_iter_ <= 300
    assert not hasattr(lb, "loss_curve_")
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, _data(n=300)[1])
    assert clf.score(X, _data(n=300)[1]) > 0.9


def test_fastnn_extras_batchnorm_dropout_smoothing_balanced_are_reproducible():
    X, y, _ = _data(n=300)
    kw = dict(hidden_layer_sizes=(32, 16), batchnorm=True, dropout=0.2, label_smoothing=0.1, balanced=True,
              activation="elu", init="he_uniform", solver="adamw", max_iter=40, learning_rate_init=0.01,
              random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(**kw).fit(X, y)
        b = MLPClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.score(X, y) > 0.8
    names = [type(layer).__name__ for layer in a.model_.layers]
    assert names == ["Dense", "BatchNorm", "ELU", "Dropout", "Dense", "BatchNorm", "ELU", "Dropout", "Dense"]
    with pytest.raises(ValueError, match="lbfgs"):
        MLPClassifier(solver="lbfgs", batchnorm=True).fit(X, y)


def test_coefs_are_views_into_the_model():
    X, y, _ = _data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    before = clf.predict_proba(X)
    clf.coefs_[-1][...] = 0.0
    clf.intercepts_[-1][...] = 0.0
    np.testing.assert_allclose(clf.predict_proba(X), 1 / 3)
    assert not np.allclose(before, 1 / 3)
    with pytest.raises(AttributeError):
        MLPClassifier().coefs_  # noqa: B018


def test_pickle_keeps_weights_and_optimizer_state():
    X, y, _ = _data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), batchnorm=True, max_iter=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert copy.model_ is not clf.model_ and copy.loss_curve_ == clf.loss_curve_
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)  # Adam's moments and step counter travelled with the pickle
    for a, b in zip(clf.coefs_ + clf.intercepts_, copy.coefs_ + copy.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = clone(clf)
    assert "model_" not in fresh.__dict__ and fresh.get_params() == clf.get_params()


def test_non_finite_training_raises():
    X, y, _ = _data()
    with pytest.raises(FloatingPointError, match="learning rate"):
        MLPClassifier(solver="sgd", learning_rate_init=1e8, max_iter=20, random_state=0).fit(X * 1e4, y)


@pytest.mark.parametrize(("params", "match"), [
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(activation="swish"), "activation"),
    (dict(solver="newton"), "solver"),
    (dict(alpha=-1.0), "alpha"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate="cosine"), "learning_rate"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(max_iter=0), "max_iter"),
    (dict(momentum=1.5), "momentum"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(beta_1=1.0), "beta_1"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(dropout=1.0), "dropout"),
    (dict(dtype="float16"), "dtype"),
    (dict(n_threads=0), "n_threads"),
    (dict(init="nonsense"), "init"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(shuffle="yes"), "shuffle"),
])
def test_bad_hyperparameters_are_named(params, match):
    X, y, _ = _data()
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_sparse_input_and_verbose_output(capsys):
    scipy_sparse = pytest.importorskip("scipy.sparse", reason="needs SciPy (optional; the test extra has it)")
    X, y, _ = _data()
    dense = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0, verbose=True)
    sparse = clone(dense)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense.fit(X, y)
        sparse.fit(scipy_sparse.csr_matrix(X), y)
    np.testing.assert_array_equal(dense.predict_proba(X), sparse.predict_proba(scipy_sparse.csr_matrix(X)))
    assert capsys.readouterr().out.count("Iteration 3, loss = ") == 2


def test_feature_names_are_recorded():
    pd = pytest.importorskip("pandas", reason="needs pandas (optional; the test extra has it)")
    X, y, _ = _data()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(df, y)
    assert list(clf.feature_names_in_) == list(df.columns) and clf.n_features_in_ == 5
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df.rename(columns={"f0": "other"}))


# ----------------------------------------------------------------------------------------------
# threads, model selection, joblib workers
# ----------------------------------------------------------------------------------------------
def test_n_threads_sets_the_count_for_the_fit_and_restores_it():
    X, y, _ = _data()
    fastnn.set_num_threads(1)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, n_threads=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        assert clf.n_threads_ == 2 and fastnn.get_num_threads() == 1
        clf.set_params(n_threads=None).fit(X, y)
    assert clf.n_threads_ == 1
    one = clone(clf).set_params(n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one.fit(X, y)
        two = clone(one).set_params(n_threads=2).fit(X, y)
    np.testing.assert_array_equal(one.predict_proba(X), two.predict_proba(X))  # thread-count independent


def _threads_used(estimator, X, y):
    """A scorer that reports the thread count the fit ran with (it runs inside the worker)."""
    est = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return float(est.n_threads_)


@pytest.fixture
def clean_thread_env(monkeypatch):
    # joblib gives loky workers OMP_NUM_THREADS = cores // n_jobs unless the variable is already set
    for var in ("OMP_NUM_THREADS", "FASTNN_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)


def test_grid_search_workers_limit_their_own_threads(clean_thread_env):
    import joblib

    X, y, _ = _data(n=240)
    grid = GridSearchCV(MLPClassifier(max_iter=30, learning_rate_init=0.01, random_state=0),
                        {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-2]}, cv=3, n_jobs=2,
                        scoring={"acc": "accuracy", "threads": _threads_used}, refit="acc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    expected = max(1, joblib.cpu_count() // 2)
    used = np.concatenate([grid.cv_results_[f"split{i}_test_threads"] for i in range(3)])
    np.testing.assert_array_equal(used, expected)
    assert grid.best_score_ > 0.5 and grid.best_estimator_.n_threads_ == fastnn.get_num_threads()
    r = cross_validate(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0), X, y, cv=2, n_jobs=2,
                       return_estimator=True)
    assert [est.n_threads_ for est in r["estimator"]] == [expected, expected]


def test_cross_val_score_and_pipeline():
    X, y, _ = _data(n=240)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=100,
                                                         learning_rate_init=0.01, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        reg_scores = cross_val_score(MLPRegressor(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01,
                                                  random_state=0), X, _data(n=240)[2], cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7
    assert reg_scores.mean() > 0.8
    fitted = pipe.fit(X, y)
    assert fitted.predict(X).shape == (240,) and fitted.score(X, y) > 0.8


def test_import_fastnn_does_not_import_sklearn_and_a_missing_sklearn_is_named():
    code = ("import sys, fastnn; assert 'sklearn' not in sys.modules; "
            "assert fastnn.MLPClassifier.__module__ == 'fastnn.estimator'; assert 'sklearn' in sys.modules; "
            "assert 'MLPRegressor' in dir(fastnn)")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = ("import sys; sys.modules['sklearn'] = None; import fastnn\n"
            "try:\n    fastnn.MLPClassifier\nexcept ImportError as e:\n    assert 'fastnn[sklearn]' in str(e), e\n"
            "else:\n    raise SystemExit('no ImportError')")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_batchnorm_with_a_trailing_one_row_batch_trains_on_the_other_rows():
    # 201 rows with batch_size='auto' (200) leave a batch of 1 row, which batch norm cannot train on
    X, y, _ = _data(n=201)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(16,), batchnorm=True, max_iter=5, random_state=0).fit(X, y)
    assert clf.n_iter_ == 5 and clf.t_ == 5 * 200 and np.isfinite(clf.loss_curve_).all()
    with pytest.raises(ValueError, match="got batch_size=1"):
        MLPClassifier(batchnorm=True, batch_size=1, max_iter=1).fit(X, y)
