"""scikit-learn estimators on fastnn's C++ runtime: :class:`MLPClassifier` and :class:`MLPRegressor`.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``: the same
hyperparameter names and meanings where the two overlap, the same fitted attributes, the same
stopping rule, and they pass ``sklearn.utils.estimator_checks``; every epoch runs in C++ (one call
per epoch), so a fit is many times faster. fastnn adds batch norm, dropout, label smoothing, more
activations, initialisations and solvers, float32 training and a thread count.

This module needs scikit-learn >= 1.6 (``pip install 'fastnn[sklearn]'``); ``import fastnn`` does
not import it (``fastnn.MLPClassifier`` loads this module on first use).

Semantics shared with scikit-learn
----------------------------------
* ``alpha`` is the L2 penalty ``0.5 * alpha * |W|^2 / batch_rows`` added to the mean loss of a
  batch (biases are not penalised); fastnn uses the configured batch size for every batch of an
  epoch, scikit-learn the actual rows of the (possibly smaller) last batch.
* ``batch_size="auto"`` is ``min(200, n_samples)``; larger values are clipped with a warning.
  With ``batchnorm=True`` a last batch of 1 row is left out of each epoch (one row has no batch
  variance; e.g. 201 rows with ``"auto"`` train on 200 random rows per epoch).
* Stopping: after each epoch, if the training loss (or, with ``early_stopping``, the validation
  score) has not improved by at least ``tol`` for more than ``n_iter_no_change`` consecutive
  epochs, training stops (``learning_rate="adaptive"`` first divides the learning rate by 5, and
  stops once it is <= 1e-6). With ``early_stopping`` a stratified ``validation_fraction`` of the
  training data is held out and the best weights are restored at the end.
* ``learning_rate`` schedules (``"invscaling"``: ``learning_rate_init / (t_ + 1) ** power_t``,
  updated after every epoch; ``"adaptive"``) are ignored by ``solver="adam"`` as in
  scikit-learn, and used by ``"sgd"`` and fastnn's other stochastic solvers.
* ``solver="sgd"`` with ``nesterovs_momentum`` takes exactly scikit-learn's Nesterov step.
  fastnn's Adam puts ``epsilon`` after the bias correction (CS231n/PyTorch form), scikit-learn
  before it; the two differ only while ``sqrt(v)`` is comparable to ``epsilon``.
* ``solver="lbfgs"``: SciPy's L-BFGS-B on the full-batch objective (``max_iter``, ``max_fun``,
  ``tol`` as gtol), with fastnn's forward/backward computing loss and gradient.
* ``MLPRegressor`` minimises half the mean squared error plus the penalty (scikit-learn's
  ``squared_error`` objective; ``loss_curve_`` reports it, and 'sgd' steps are taken on it).

Differences
-----------
* Binary classification uses a 2-unit softmax output (scikit-learn: 1 logistic unit), so
  ``coefs_[-1]`` has 2 columns. Multilabel targets are not supported (fastnn has no sigmoid
  cross-entropy loss); multi-output regression is.
* ``MLPRegressor`` has no ``loss`` parameter (scikit-learn >= 1.7 has ``loss="squared_error"`` or
  ``"poisson"``): it always minimises the squared error, scikit-learn's default.
* No ``sample_weight`` (fastnn's C++ losses are unweighted).
* Sparse input is converted to a dense array (fastnn's kernels are dense).
* Initialisation follows ``init`` (default ``"auto"``: He for ReLU-type layers, Glorot otherwise,
  biases 0); ``init="xavier_uniform"`` is scikit-learn's weight distribution.
* Computations run in ``dtype`` (float32 by default); probabilities and regression outputs are
  returned as float64.

Threads (``n_threads``)
-----------------------
``None`` (default) uses fastnn's process-wide thread count (:func:`fastnn.get_num_threads`), whose
initial value is ``FASTNN_NUM_THREADS``, else ``OMP_NUM_THREADS``, else all cores. joblib's
process-based backends (loky, the default of ``GridSearchCV(n_jobs=...)`` and
``cross_val_score(n_jobs=...)``) start each worker with ``OMP_NUM_THREADS = max(1, cores //
n_jobs)`` unless it is already set, so every worker limits its own threads and the machine is not
oversubscribed. An integer sets the count for the duration of ``fit``/``predict`` and restores the
previous one afterwards (-1: all cores). The thread count is process-wide: with joblib's
*threading* backend, workers share it. ``n_threads_`` records the count the last fit used.
Results do not depend on the thread count.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastnn.MLPClassifier / MLPRegressor need scikit-learn >= 1.6: "
                      "pip install 'fastnn[sklearn]'") from exc

import fastnn
from fastnn import _core, optim
from fastnn import layers as L
from fastnn.datasets import balanced_order
from fastnn.init import resolve as _resolve_init
from fastnn.losses import MSE, SoftmaxCrossEntropy
from fastnn.model import Sequential
from fastnn.trainer import NonFiniteLossError, _batchnorm_rows, _nonfinite_origin

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {"identity": None, "logistic": L.Sigmoid, "sigmoid": L.Sigmoid, "tanh": L.Tanh, "relu": L.ReLU,
                "leaky_relu": L.LeakyReLU, "prelu": L.PReLU, "elu": L.ELU, "maxout": L.Maxout}
_STOCHASTIC = ("adam", "sgd", "adamw", "rmsprop", "adagrad", "adadelta")
_SOLVERS = (*_STOCHASTIC, "lbfgs")
_LR_SCHEDULES = ("constant", "invscaling", "adaptive")


def _version_ok() -> bool:
    parts = sklearn.__version__.split(".")
    try:
        return (int(parts[0]), int(parts[1])) >= (1, 6)
    except ValueError:  # pragma: no cover - odd version strings
        return True


if not _version_ok():  # pragma: no cover - depends on the environment
    raise ImportError(f"fastnn.MLPClassifier / MLPRegressor need scikit-learn >= 1.6 (found {sklearn.__version__}): "
                      "pip install -U 'fastnn[sklearn]'")


# ----------------------------------------------------------------------------------------------
# parameter checks (clear messages naming the parameter)
# ----------------------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_real(name: str, v: Any, lo: float, hi: float = math.inf, lo_open: bool = False,
                hi_open: bool = False) -> float:
    if not _is_real(v) or not math.isfinite(float(v)):
        raise ValueError(f"The '{name}' parameter must be a finite real number, got {v!r}")
    v = float(v)
    if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"The '{name}' parameter must be in the range {rng}, got {v!r}")
    return v


def _check_int(name: str, v: Any, lo: int) -> int:
    if not _is_int(v) or v < lo:
        raise ValueError(f"The '{name}' parameter must be an integer >= {lo}, got {v!r}")
    return int(v)


def _check_choice(name: str, v: Any, options: Sequence[str]) -> str:
    if not isinstance(v, str) or v not in options:
        raise ValueError(f"The '{name}' parameter must be one of {sorted(options)}, got {v!r}")
    return v


# ----------------------------------------------------------------------------------------------
# the shared machinery
# ----------------------------------------------------------------------------------------------
class _BaseMLP(BaseEstimator):
    """Shared code of :class:`MLPClassifier` and :class:`MLPRegressor` (not for direct use)."""

    _classifier = False

    # ---- parameters ------------------------------------------------------------------------
    def _validated(self) -> dict[str, Any]:
        hidden = self.hidden_layer_sizes
        if _is_int(hidden):
            hidden = [hidden]
        try:
            hidden = list(hidden)
        except TypeError:
            raise ValueError(f"The 'hidden_layer_sizes' parameter must be an int or a sequence of ints, "
                             f"got {self.hidden_layer_sizes!r}") from None
        if not all(_is_int(h) and h >= 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}.")
        p: dict[str, Any] = {"hidden": [int(h) for h in hidden]}
        p["activation"] = _check_choice("activation", self.activation, list(_ACTIVATIONS))
        p["solver"] = _check_choice("solver", self.solver, _SOLVERS)
        p["alpha"] = _check_real("alpha", self.alpha, 0.0)
        if not (self.batch_size == "auto" or (_is_int(self.batch_size) and self.batch_size >= 1)):
            raise ValueError(f"The 'batch_size' parameter must be 'auto' or an integer >= 1, got {self.batch_size!r}")
        p["learning_rate"] = _check_choice("learning_rate", self.learning_rate, _LR_SCHEDULES)
        p["learning_rate_init"] = _check_real("learning_rate_init", self.learning_rate_init, 0.0, lo_open=True)
        p["power_t"] = _check_real("power_t", self.power_t, 0.0)
        p["max_iter"] = _check_int("max_iter", self.max_iter, 1)
        p["tol"] = _check_real("tol", self.tol, 0.0)
        p["momentum"] = _check_real("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        p["validation_fraction"] = _check_real("validation_fraction", self.validation_fraction, 0.0, 1.0,
                                               hi_open=True)
        p["beta_1"] = _check_real("beta_1", self.beta_1, 0.0, 1.0, hi_open=True)
        p["beta_2"] = _check_real("beta_2", self.beta_2, 0.0, 1.0, hi_open=True)
        p["epsilon"] = _check_real("epsilon", self.epsilon, 0.0, lo_open=True)
        nic = self.n_iter_no_change
        if not ((_is_int(nic) and nic >= 1) or (_is_real(nic) and nic == math.inf)):
            raise ValueError(f"The 'n_iter_no_change' parameter must be an integer >= 1 or inf, got {nic!r}")
        p["max_fun"] = _check_int("max_fun", self.max_fun, 1)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping", "batchnorm"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"The '{name}' parameter must be a bool, got {getattr(self, name)!r}")
        p["dropout"] = _check_real("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        try:
            p["dtype"] = np.dtype(self.dtype)
        except TypeError:
            p["dtype"] = None
        if p["dtype"] not in (np.float32, np.float64):
            raise ValueError(f"The 'dtype' parameter must be 'float32' or 'float64', got {self.dtype!r}")
        if self.n_threads is not None and not (_is_int(self.n_threads) and (self.n_threads >= 1
                                                                           or self.n_threads == -1)):
            raise ValueError(f"The 'n_threads' parameter must be None, -1 or an integer >= 1, got {self.n_threads!r}")
        if p["solver"] == "lbfgs" and (self.batchnorm or p["dropout"] > 0):
            raise ValueError("solver='lbfgs' needs a deterministic full-batch objective: use batchnorm=False and "
                             "dropout=0 (or a stochastic solver)")
        try:
            if not (isinstance(self.init, str) and self.init == "auto"):
                _resolve_init(self.init)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"The 'init' parameter is not a fastnn.init scheme: {exc}") from None
        return p

    # ---- threads ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _threads(self) -> Iterator[int]:
        n = self.n_threads
        if n is None:
            yield fastnn.get_num_threads()
            return
        if n == -1:
            n = int(_core.hardware_threads())
        with fastnn.threads(int(n)):
            yield int(n)

    # ---- the network -----------------------------------------------------------------------
    def _build(self, p: dict[str, Any], n_features: int, n_outputs: int, seed: int) -> Sequential:
        layers: list[L.Layer] = []
        act = _ACTIVATIONS[p["activation"]]
        width = n_features
        dense: list[int] = []
        for h in p["hidden"]:
            dense.append(len(layers))
            layers.append(L.Dense(width, h * 2 if act is L.Maxout else h))
            if self.batchnorm:
                layers.append(L.BatchNorm())
            if act is not None:
                layers.append(act())
            if p["dropout"] > 0:
                layers.append(L.Dropout(p["dropout"]))
            width = h
        dense.append(len(layers))
        layers.append(L.Dense(width, n_outputs))
        self._dense_layers = dense
        return Sequential(layers, input_dim=n_features, loss=self._make_loss(), init=self.init,
                          dtype=p["dtype"], seed=seed, max_batch=256)

    def _optimizer(self, p: dict[str, Any], lr: float) -> optim.Optimizer:
        s = p["solver"]
        if s == "sgd":
            mu = p["momentum"]
            return optim.SGD(lr=lr, momentum=mu, nesterov=bool(self.nesterovs_momentum) and mu > 0)
        if s == "adam":
            return optim.Adam(lr=lr, betas=(p["beta_1"], p["beta_2"]), eps=p["epsilon"])
        if s == "adamw":
            return optim.AdamW(lr=lr, betas=(p["beta_1"], p["beta_2"]), eps=p["epsilon"], weight_decay=p["alpha"])
        if s == "rmsprop":
            return optim.RMSProp(lr=lr, decay=p["beta_2"], eps=p["epsilon"])
        if s == "adagrad":
            return optim.Adagrad(lr=lr, eps=p["epsilon"])
        return optim.Adadelta(lr=lr, rho=p["beta_2"], eps=p["epsilon"])

    def _set_penalty(self, p: dict[str, Any], rows: int) -> None:
        """scikit-learn's ``0.5 * alpha * |W|^2 / rows`` in fastnn's ``0.5 * l2 * |W|^2`` (the
        regressor's objective is twice scikit-learn's half squared error, so its penalty doubles)."""
        model = self.model_
        l2 = 0.0 if p["solver"] == "adamw" else p["alpha"] / rows * self._objective_scale
        if model.l2 != l2:
            model.l2 = l2
            model._net.set_loss(model._loss_spec())

    # ---- learned attributes as views into the model ------------------------------------------
    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices of the Dense layers, (fan_in, fan_out) each: views into ``model_``."""
        if "model_" not in self.__dict__:
            raise AttributeError("coefs_ exists after fit")
        return [self.model_.params[f"{i}.weight"] for i in self._dense_layers]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors of the Dense layers: views into ``model_``."""
        if "model_" not in self.__dict__:
            raise AttributeError("intercepts_ exists after fit")
        return [self.model_.params[f"{i}.bias"] for i in self._dense_layers]

    # ---- data --------------------------------------------------------------------------------
    def _check_X(self, X: Any, reset: bool) -> np.ndarray:
        X = validate_data(self, X, reset=reset, accept_sparse=True, dtype=(np.float64, np.float32))
        if hasattr(X, "toarray"):
            X = X.toarray()
        return X

    def _as_model_X(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(X, dtype=self.model_.dtype)

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = self._check_X(X, reset=False)
        with self._threads():
            return self.model_.forward(self._as_model_X(X))

    # ---- training ----------------------------------------------------------------------------
    def _fit(self, X: Any, y: Any, incremental: bool) -> _BaseMLP:
        p = self._validated()
        first_pass = "model_" not in self.__dict__ or (not self.warm_start and not incremental)
        X, y = validate_data(self, X, y, reset=first_pass, accept_sparse=True, multi_output=True,
                             dtype=(np.float64, np.float32), y_numeric=not self._classifier)
        if hasattr(X, "toarray"):
            X = X.toarray()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y_enc = self._encode_y(y, first_pass, incremental)
        n_samples, n_features = X.shape
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(p, n_features)
        elif self.model_.input_dim != n_features:  # pragma: no cover - validate_data catches this
            raise ValueError(f"X has {n_features} features, but the model takes {self.model_.input_dim}")
        Xc = self._as_model_X(X)
        with self._threads() as nt:
            self.n_threads_ = nt
            if p["solver"] == "lbfgs":
                self._fit_lbfgs(p, Xc, y_enc)
            else:
                self._fit_stochastic(p, Xc, y_enc, y, incremental)
        if not np.all(np.isfinite(self.model_._net.params)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")
        return self

    def _initialize(self, p: dict[str, Any], n_features: int) -> None:
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        self.model_ = self._build(p, n_features, self._n_net_outputs, seed)
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(p["hidden"]) + 2
        self.out_activation_ = self._out_activation
        self._lr = p["learning_rate_init"]
        for stale in ("loss_curve_", "validation_scores_", "best_validation_score_", "best_loss_", "_best_state"):
            self.__dict__.pop(stale, None)  # a fresh fit forgets the previous one's curves
        if p["solver"] != "lbfgs":
            self._init_stochastic_state()

    def _init_stochastic_state(self) -> None:
        """scikit-learn's bookkeeping of the stochastic solvers (also when a warm start switches to one,
        or switches early stopping on or off)."""
        if "loss_curve_" not in self.__dict__:
            self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        self._best_state: tuple[np.ndarray, np.ndarray] | None = None
        if self.early_stopping:
            self.validation_scores_: list[float] | None = []
            self.best_validation_score_: float | None = -np.inf
            self.best_loss_: float | None = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          stacklevel=5)
        return int(np.clip(self.batch_size, 1, n))

    def _fit_stochastic(self, p: dict[str, Any], X: np.ndarray, y_enc: np.ndarray, y_raw: np.ndarray,
                        incremental: bool) -> None:
        model, net = self.model_, self.model_._net
        if not incremental or getattr(self, "_opt_key", None) is None:
            self._lr = p["learning_rate_init"]
            opt = self._optimizer(p, self._lr)
            model._optimizer_key = None  # fresh optimizer state, as scikit-learn builds a new optimizer
            model.attach_optimizer(opt)
            self._opt_key = model._optimizer_key
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if "loss_curve_" not in self.__dict__ or (self.early_stopping != (self.validation_scores_ is not None)):
            self._init_stochastic_state()
        X_val = y_val = None
        if self.early_stopping:
            stratify = y_enc if self._classifier else None
            X, X_val, y_enc, y_val = train_test_split(X, y_enc, random_state=self._random_state,
                                                      test_size=p["validation_fraction"], stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
            X, X_val = np.ascontiguousarray(X), np.ascontiguousarray(X_val)
            y_enc, y_val = np.ascontiguousarray(y_enc), np.ascontiguousarray(y_val)
        n = X.shape[0]
        batch = self._batch_size(n)
        self._set_penalty(p, batch)
        model._reserve(batch)
        random_order = self.shuffle or (self._classifier and self.balanced)
        n_used = _batchnorm_rows(model, n, batch, random_order)  # n, or n - 1 if batch norm would get 1 row
        steps = -(-n_used // batch)
        sizes = np.full(steps, float(batch))
        sizes[-1] = n_used - batch * (steps - 1)
        sgd_like = p["solver"] != "adam"  # scikit-learn's Adam ignores learning_rate schedules
        mu = p["momentum"] if p["solver"] == "sgd" else 0.0
        mus = np.full(steps, mu)
        # plain/momentum SGD steps scale with the gradient: take them on scikit-learn's objective
        # (the regressor's fastnn objective is twice it); the adaptive solvers are scale-invariant
        lr_factor = 1.0 / self._objective_scale if p["solver"] == "sgd" else 1.0
        self.n_iter_ = 0
        try:
            for _ in range(p["max_iter"]):
                if self._classifier and self.balanced:
                    rng = np.random.default_rng(int(self._random_state.randint(np.iinfo(np.int32).max)))
                    order = balanced_order(y_enc, n, rng)
                elif self.shuffle:
                    order = self._random_state.permutation(n).astype(np.int64)
                else:
                    order = np.arange(n, dtype=np.int64)
                lrs = np.full(steps, self._lr * lr_factor)
                losses, done = net.train_epoch(X, y_enc, order[:n_used], batch, lrs, mus)
                if done < steps:
                    raise NonFiniteLossError(loss=float(losses[done]), step=int(net.step), epoch=self.n_iter_ + 1,
                                             **_nonfinite_origin(model))
                self.n_iter_ += 1
                self.loss_ = float(np.dot(losses, sizes) / n_used) / self._objective_scale
                self.t_ += n_used
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                if self.early_stopping:
                    score = self._validation_score(X_val, y_val)
                    self.validation_scores_.append(score)
                    if self.verbose:
                        print(f"Validation score: {score:f}")
                    if score < self.best_validation_score_ + p["tol"]:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        self._best_state = (np.array(net.params), np.array(net.buffers))
                else:
                    if self.loss_curve_[-1] > self.best_loss_ - p["tol"]:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if self.loss_curve_[-1] < self.best_loss_:
                        self.best_loss_ = self.loss_curve_[-1]
                if sgd_like and p["learning_rate"] == "invscaling":
                    self._lr = p["learning_rate_init"] / (self.t_ + 1) ** p["power_t"]
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={p['tol']:f} for {self.n_iter_no_change} "
                           "consecutive epochs.")
                    if sgd_like and p["learning_rate"] == "adaptive" and self._lr > 1e-6:
                        self._lr /= 5.0
                        self._no_improvement_count = 0
                        if self.verbose:
                            print(f"{msg} Setting learning rate to {self._lr:f}")
                    else:
                        if self.verbose:
                            print(f"{msg} Stopping.")
                        break
                if incremental:
                    break
                if self.n_iter_ == p["max_iter"]:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({p['max_iter']}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        if self.early_stopping and self._best_state is not None:  # restore the best weights (of any fit)
            net.params[...], net.buffers[...] = self._best_state

    def _fit_lbfgs(self, p: dict[str, Any], X: np.ndarray, y_enc: np.ndarray) -> None:
        from scipy.optimize import minimize

        model, net = self.model_, self.model_._net
        n = X.shape[0]
        self._set_penalty(p, n)
        model._reserve(n)
        scale = self._objective_scale

        def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
            net.params[...] = theta
            loss, _, _ = net.loss_and_grad(X, y_enc, True)
            if not math.isfinite(loss):
                return math.inf, np.zeros_like(theta)
            return loss / scale, np.asarray(net.grads, dtype=np.float64) / scale

        res = minimize(f, np.asarray(net.params, dtype=np.float64), jac=True, method="L-BFGS-B",
                       options={"maxiter": p["max_iter"], "maxfun": p["max_fun"], "gtol": p["tol"]})
        net.params[...] = res.x
        self.n_iter_ = int(res.nit)
        self.loss_ = float(res.fun)
        if self.verbose:
            print(f"L-BFGS: {self.n_iter_} iterations, loss = {self.loss_:.8f} ({res.message})")
        if res.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={res.status}): "
                          f"{res.message}. Increase the number of iterations (max_iter) or scale the data.",
                          ConvergenceWarning, stacklevel=4)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_COMMON_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer.
    activation : {'relu', 'identity', 'logistic', 'tanh', 'leaky_relu', 'prelu', 'elu', 'maxout'}, \
default='relu'
        Hidden activation (``'sigmoid'`` = ``'logistic'``; ``'maxout'`` takes the max of 2 pieces).
    solver : {'adam', 'sgd', 'lbfgs', 'adamw', 'rmsprop', 'adagrad', 'adadelta'}, default='adam'
        'adamw' uses ``alpha`` as its decoupled weight decay (instead of an L2 penalty); 'rmsprop'
        and 'adadelta' use ``beta_2`` as their decay rate.
    alpha : float, default=1e-4
        L2 penalty (scikit-learn's scaling: divided by the batch size).
    batch_size : int or 'auto', default='auto'
        ``min(200, n_samples)`` for 'auto'.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule for every stochastic solver except 'adam' (which ignores it, as in scikit-learn).
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    max_iter : int, default=200
        Epochs (stochastic solvers) or L-BFGS iterations.
    shuffle : bool, default=True
        Shuffle the sample order every epoch.
    random_state : int, RandomState or None, default=None
        Seeds initialisation, dropout masks, shuffling and the early-stopping split.
    tol : float, default=1e-4
        Improvement threshold of the stopping rule (L-BFGS: gtol).
    verbose : bool or int, default=False
        Print the loss (and validation score) every epoch.
    warm_start : bool, default=False
        Continue from the previous fit's weights (the optimizer state restarts, as in scikit-learn).
    momentum : float, default=0.9
        Momentum of 'sgd', in [0, 1).
    nesterovs_momentum : bool, default=True
        Nesterov momentum for 'sgd' (when momentum > 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified for classification), stop on the validation
        score and restore the best weights.
    validation_fraction : float, default=0.1
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-8
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement tolerated before stopping.
    max_fun : int, default=15000
        Maximum loss evaluations of 'lbfgs'.
    batchnorm : bool, default=False
        Batch norm between each hidden Dense layer and its activation.
    dropout : float, default=0.0
        Probability of dropping a hidden unit during training.
    init : str or callable, default='auto'
        Weight initialisation (:mod:`fastnn.init`; 'auto' = He before ReLU-type units, else Glorot).
    dtype : {'float32', 'float64'}, default='float32'
        Precision of training and inference.
    n_threads : int or None, default=None
        Threads for fit and predict; None uses fastnn's process-wide count (which joblib workers
        limit through ``OMP_NUM_THREADS``), -1 all cores. See the module documentation.
"""

_COMMON_ATTRS = """
    Attributes
    ----------
    loss_ : float
        Loss (with the penalty) of the last epoch, or the final L-BFGS objective.
    best_loss_ : float or None
        Lowest ``loss_`` (None with early stopping).
    loss_curve_ : list of float
        ``loss_`` per epoch (stochastic solvers).
    validation_scores_ : list of float or None
        Validation score per epoch with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last fit (L-BFGS: iterations).
    t_ : int
        Training samples seen (stochastic solvers).
    coefs_, intercepts_ : list of ndarray
        Dense weights (fan_in, fan_out) and biases: views into ``model_`` (zero copy).
    n_layers_, n_outputs_, out_activation_
        As in scikit-learn.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When X had string column names.
    model_ : fastnn.Sequential
        The trained network.
    n_threads_ : int
        Threads the last fit used.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron classifier trained in C++ (softmax cross-entropy).

    A drop-in for ``sklearn.neural_network.MLPClassifier`` (see :mod:`fastnn.estimator` for the
    shared semantics and the differences).
""" + _COMMON_DOC + """    label_smoothing : float, default=0.0
        Target ``1 - label_smoothing`` on the true class, the rest spread over the others.
    balanced : bool, default=False
        Class-balanced mini-batches (:func:`fastnn.datasets.balanced_order`) instead of a
        permutation.
""" + _COMMON_ATTRS + """    classes_ : ndarray of shape (n_classes,)
""")

    _classifier = True
    _objective_scale = 1.0
    _out_activation = "softmax"

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 1e-4, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 1e-3, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000, batchnorm: bool = False, dropout: float = 0.0, label_smoothing: float = 0.0,
                 balanced: bool = False, init: Any = "auto", dtype: Any = "float32",
                 n_threads: int | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.batchnorm = batchnorm
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.balanced = balanced
        self.init = init
        self.dtype = dtype
        self.n_threads = n_threads

    def _make_loss(self) -> SoftmaxCrossEntropy:
        return SoftmaxCrossEntropy(label_smoothing=_check_real("label_smoothing", self.label_smoothing, 0.0, 1.0,
                                                               hi_open=True))

    def _validated(self) -> dict[str, Any]:
        p = super()._validated()
        _check_real("label_smoothing", self.label_smoothing, 0.0, 1.0, hi_open=True)
        if not isinstance(self.balanced, bool | np.bool_):
            raise ValueError(f"The 'balanced' parameter must be a bool, got {self.balanced!r}")
        return p

    @property
    def _n_net_outputs(self) -> int:
        return len(self.classes_)

    def _encode_y(self, y: np.ndarray, first_pass: bool, incremental: bool) -> np.ndarray:
        if y.ndim != 1:
            kind = type_of_target(y)
            raise ValueError(f"MLPClassifier takes one label per sample (y of shape (n_samples,)); got y of shape "
                             f"{y.shape} ({kind}). Multilabel and multi-output classification are not supported.")
        check_classification_targets(y)
        classes = np.unique(y)
        if first_pass and not incremental:
            self.classes_ = classes
        elif first_pass:  # the first partial_fit: classes_ set from `classes`
            pass
        elif self.warm_start and not incremental:
            if set(classes) != set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {self.classes_}, `y` has {classes}")
        elif len(np.setdiff1d(classes, self.classes_)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                             f"'y' has {classes}.")
        if first_pass and len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes; the data contain 1 class: "
                             f"{self.classes_[0]!r}")
        if first_pass and incremental and len(np.setdiff1d(classes, self.classes_)):
            raise ValueError(f"`y` has classes not in `classes`: {np.setdiff1d(classes, self.classes_)}")
        self.n_outputs_ = len(self.classes_)
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _validation_score(self, X_val: np.ndarray, y_val: np.ndarray) -> float:
        _, acc = self.model_._net.evaluate(X_val, y_val)
        return float(acc)

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Fit the network to X (n_samples, n_features) and labels y (n_samples,).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def _check_solver(self) -> bool:
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like, optional
            Every class of the problem; required on the first call.

        Returns
        -------
        self
        """
        if "model_" not in self.__dict__:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = np.unique(np.asarray(classes))
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"`classes={np.unique(np.asarray(classes))}` is not the same as on last call to "
                             f"partial_fit, was: {self.classes_}")
        return self._fit(X, y, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, shape (n_samples,)."""
        scores = self._forward(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities (float64), shape (n_samples, n_classes), columns in ``classes_`` order."""
        s = self._forward(X).astype(np.float64)
        s -= s.max(axis=1, keepdims=True)
        s -= np.log(np.exp(s).sum(axis=1, keepdims=True))
        return s

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (float64), shape (n_samples, n_classes), columns in ``classes_`` order."""
        return np.exp(self.predict_log_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron regressor trained in C++ (squared error), one or several outputs.

    A drop-in for ``sklearn.neural_network.MLPRegressor`` (see :mod:`fastnn.estimator` for the
    shared semantics and the differences).
""" + _COMMON_DOC + _COMMON_ATTRS)

    _classifier = False
    _objective_scale = 2.0  # fastnn's MSE is twice scikit-learn's half squared error
    _out_activation = "identity"

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 1e-4, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 1e-3, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000, batchnorm: bool = False, dropout: float = 0.0, init: Any = "auto",
                 dtype: Any = "float32", n_threads: int | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.batchnorm = batchnorm
        self.dropout = dropout
        self.init = init
        self.dtype = dtype
        self.n_threads = n_threads

    def _make_loss(self) -> MSE:
        return MSE()

    @property
    def _n_net_outputs(self) -> int:
        return self.n_outputs_

    def _encode_y(self, y: np.ndarray, first_pass: bool, incremental: bool) -> np.ndarray:
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        if not first_pass and y2.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y2.shape[1]} outputs but the model was fitted with {self.n_outputs_}")
        if first_pass:
            self.n_outputs_ = int(y2.shape[1])
        dt = np.dtype(self.dtype) if first_pass else self.model_.dtype
        return np.ascontiguousarray(y2, dtype=dt)

    def _validation_score(self, X_val: np.ndarray, y_val: np.ndarray) -> float:
        from sklearn.metrics import r2_score

        pred = self.model_._net.predict(X_val, False)
        return float(r2_score(y_val.astype(np.float64), pred.astype(np.float64)))

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Fit the network to X (n_samples, n_features) and targets y (n_samples,) or (n_samples, n_outputs).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def _check_solver(self) -> bool:
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y); returns self."""
        return self._fit(X, y, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions (float64), shape (n_samples,) for one output, else (n_samples, n_outputs)."""
        out = self._forward(X).astype(np.float64)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
