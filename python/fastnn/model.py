"""Models compiled onto fastnn's C++ runtime: :class:`Sequential` and the :func:`MLP` helper.

A model is compiled once into one flat parameter buffer (plus gradients, optimizer state and an
activation workspace of the same layout, see ``cpp/include/fastnn/net.h``). ``model.params``,
``model.grads`` and ``model.buffers`` are NumPy *views* into those buffers, named as a PyTorch
``nn.Sequential`` state dict would name them (``"0.weight"``, ``"0.bias"``, ``"1.running_mean"``,
...): writing into a view changes the model, no copy is ever made.
"""

from __future__ import annotations

import copy as _copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastnn import _core
from fastnn.init import Initializer, initialize_into
from fastnn.layers import (
    ELU,
    BatchNorm,
    Dense,
    Dropout,
    Layer,
    LeakyReLU,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    Tanh,
)
from fastnn.losses import Loss, resolve_loss

__all__ = ["Sequential", "MLP"]

_RELU_FAMILY = (ReLU, LeakyReLU, PReLU, ELU, Maxout)


def _dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _list_of(items: Any, cls: type, cls_name: str, empty: str, item: str) -> list:
    """``items`` as a non-empty list of ``cls`` (called ``cls_name`` in messages) instances:
    ValueError ``empty`` when there are none, TypeError naming ``item`` and its index for a wrong one."""
    items = list(items)
    if not items:
        raise ValueError(empty)
    for i, x in enumerate(items):
        if not isinstance(x, cls):
            raise TypeError(f"{item} {i} must be a {cls_name}, got {type(x).__name__}")
    return items


def _seed(seed: int | None) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


class Sequential:
    """A feed-forward network of :mod:`fastnn.layers`, trained and evaluated in C++.

    Parameters
    ----------
    layers : sequence of Layer
        E.g. ``[Dense(64, 128), BatchNorm(), ReLU(), Dropout(0.2), Dense(128, 10)]``.
    input_dim : int, optional
        Input features, when the first layer does not say (``Dense(None, 128)``, ``BatchNorm()``).
    loss : str or Loss
        ``"softmax"`` (default), ``"svm"``, ``"mse"`` or a :mod:`fastnn.losses` object.
    l2, l1 : float
        Regularisation strengths (``0.5 * l2 * |W|^2`` and ``l1 * |W|_1``) on Dense weights; biases
        and batch-norm parameters are not penalised.
    init : str or callable
        Weight initialisation for Dense layers that do not set their own (:mod:`fastnn.init`);
        ``"auto"`` (default) uses He for layers feeding a ReLU-type activation and Glorot
        (``xavier_normal``) for the others.
    bias_init : float
        Initial bias of Dense layers that do not set their own (0; e.g. 0.01 for ReLU units).
    dtype : float32 or float64
        Precision of every buffer and computation.
    seed : int, optional
        Makes initialisation, dropout masks and shuffling reproducible (random when None).
    max_batch : int
        Initial workspace size in rows; it grows when a larger batch arrives.
    preprocessing : transformer or list of transformers, optional
        :mod:`fastnn.preprocessing` applied to raw inputs (flattened to (N, D)) by
        :meth:`predict`, :meth:`predict_proba`, :meth:`forward`, :meth:`evaluate` and :meth:`score`,
        fitted on the training rows by :meth:`fit` unless already fitted, and saved in checkpoints
        (also settable later: ``model.preprocessing = StandardScaler()``). The training primitives
        (:meth:`train_step`, :meth:`loss_and_grad`, :meth:`capture`) take network inputs as they are.

    Notes
    -----
    A model pickles (and ``copy.deepcopy``-s) whole: architecture, weights, buffers, the attached
    optimizer with its state (moments, velocities), the step counters, averaged weights and the
    preprocessing, so an unpickled model predicts identically and continues training exactly as
    the original would. For files, prefer :meth:`save` (safetensors, never executes code on load).

    Attributes
    ----------
    params : dict of str to ndarray
        Trainable tensors by PyTorch-style name (``"0.weight"`` of shape (in, out) for a Dense,
        ``"0.bias"`` (out,), ``"1.weight"`` / ``"1.bias"`` (features,) for a batch norm's scale and
        shift, ``"<i>.weight"`` for PReLU slopes): views in the model's dtype into its flat
        buffer; writing into them changes the model.
    grads : dict of str to ndarray
        The gradients of the last training step or :meth:`loss_and_grad`, same names and shapes.
    buffers : dict of str to ndarray
        Non-trained state: batch-norm ``"<i>.running_mean"`` and ``"<i>.running_var"``.
    input_dim, output_dim : int
        Features in and outputs (classes) out.
    dtype : numpy.dtype
        float32 or float64.

    Raises
    ------
    ValueError
        Layers whose sizes do not chain, an unknown loss or initialisation, bad hyperparameters,
        fewer than 2 outputs with a classification loss.
    TypeError
        A layer that is not a :class:`fastnn.layers.Layer`, a dtype other than float32/float64.
    MemoryError
        A network whose buffers would not fit in the machine's memory (refused before allocating;
        some oversized requests are reported as ``ValueError`` by the runtime).
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        input_dim: int | None = None,
        loss: str | Loss = "softmax",
        l2: float = 0.0,
        l1: float = 0.0,
        init: str | Initializer = "auto",
        bias_init: float = 0.0,
        dtype: Any = np.float32,
        seed: int | None = None,
        max_batch: int = 256,
        preprocessing: Any = None,
    ) -> None:
        layers = _list_of(layers, Layer, "fastnn.layers.Layer", "Sequential needs at least one layer", "layer")
        self.layers: list[Layer] = layers
        self.loss: Loss = resolve_loss(loss)
        self.dtype = _dtype(dtype)
        self.seed = _seed(seed)
        self.init = init
        self.bias_init = float(bias_init)
        for name, v in (("l2", l2), ("l1", l1)):
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        self.l2, self.l1 = float(l2), float(l1)
        if input_dim is None:
            first = layers[0]
            input_dim = getattr(first, "in_features", None) or getattr(first, "num_features", None)
            if input_dim is None:
                raise ValueError("the first layer does not give its input size: pass input_dim=")
        if (isinstance(input_dim, bool) or not isinstance(input_dim, int | np.integer) or input_dim < 1
                or input_dim >= 2**62):
            raise ValueError(f"input_dim must be a positive integer below 2**62, got {input_dim!r}")
        self.input_dim = int(input_dim)
        self._optimizer_key: tuple | None = None
        self._compile(max_batch)
        self.reset_parameters()
        self.preprocessing = preprocessing

    # ------------------------------------------------------------------------------------------
    # construction helpers
    # ------------------------------------------------------------------------------------------
    def _compile(self, max_batch: int) -> None:
        """Build the C++ network (zeroed buffers) and the views into it, from the layers, loss,
        penalties, dtype and seed."""
        specs, width = [], self.input_dim
        for layer in self.layers:
            specs.append(layer.spec(width))
            width = layer.output_size(width)
        self.output_dim = width
        if self.loss.classification and self.output_dim < 2:
            raise ValueError(f"a classification loss needs at least 2 outputs, the network has {width}")
        if (isinstance(max_batch, bool) or not isinstance(max_batch, int | np.integer) or max_batch < 1
                or max_batch >= 2**62):
            raise ValueError(f"max_batch must be a positive integer below 2**62, got {max_batch!r}")
        cls = _core.Net32 if self.dtype == np.float32 else _core.Net64
        dropout_seed = int(np.random.SeedSequence([self.seed, 1]).generate_state(1, np.uint64)[0])
        try:
            self._net = cls(specs, self._loss_spec(), int(max_batch), dropout_seed)
        except RuntimeError as exc:  # pragma: no cover - mapped below
            raise ValueError(str(exc)) from exc
        self._make_views()

    # the C++ network and the views into it: rebuilt by __setstate__, never pickled
    _RUNTIME = ("_net", "_info", "_binfo", "params", "grads", "buffers", "output_dim")

    def __getstate__(self) -> dict[str, Any]:
        """Everything needed to rebuild the model exactly (pickle, ``copy.deepcopy``): the architecture
        and settings, the attached preprocessing and optimizer, and the C++ network's contents —
        weights, buffers, optimizer state, step counters, averaged weights, workspace size."""
        net = self._net
        state = {k: v for k, v in self.__dict__.items() if k not in self._RUNTIME}
        keeps_state = self._optimizer_key not in (None, ("lbfgs",))
        avg = net.average
        state["_runtime"] = {
            "max_batch": int(net.max_batch), "params": np.array(net.params), "buffers": np.array(net.buffers),
            "step": int(net.step), "opt_t": int(net.opt_t), "seed": int(net.seed), "fuse_sgd": bool(net.fuse_sgd),
            "opt_state": [np.array(net.state(i)) for i in range(net.n_state)] if keeps_state else [],
            "average": None if avg is None else np.array(avg), "average_count": int(net.average_count),
            "average_decay": float(net.average_decay)}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        rt = state.pop("_runtime")
        self.__dict__.update(state)
        self._compile(rt["max_batch"])
        net = self._net
        net.params[...] = rt["params"]
        net.buffers[...] = rt["buffers"]
        key = self._optimizer_key
        if key is not None and key != ("lbfgs",):
            net.set_optimizer(key[0], **dict(key[1]))
            for i, s in enumerate(rt["opt_state"]):
                net.state(i)[...] = s
        if rt["average"] is not None:
            net.enable_average(rt["average_decay"])
            net.average[...] = rt["average"]
            net.average_count = rt["average_count"]
        net.step, net.opt_t, net.seed, net.fuse_sgd = rt["step"], rt["opt_t"], rt["seed"], rt["fuse_sgd"]

    def _loss_spec(self) -> dict[str, Any]:
        return {**self.loss.spec(), "l2": self.l2, "l1": self.l1}

    def _make_views(self) -> None:
        flat_p, flat_g, flat_b = self._net.params, self._net.grads, self._net.buffers
        self._info = self._net.params_info()
        self._binfo = self._net.buffers_info()
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        for t in self._info:
            sl = slice(t["offset"], t["offset"] + t["size"])
            self.params[t["name"]] = flat_p[sl].reshape(t["shape"])
            self.grads[t["name"]] = flat_g[sl].reshape(t["shape"])
        self.params = dict(sorted(self.params.items(), key=lambda kv: _name_key(kv[0])))
        self.grads = {k: self.grads[k] for k in self.params}
        self.buffers: dict[str, np.ndarray] = {}
        for t in self._binfo:
            self.buffers[t["name"]] = flat_b[t["offset"]:t["offset"] + t["size"]].reshape(t["shape"])

    def _layer_init(self, i: int) -> str | Initializer:
        layer = self.layers[i]
        if isinstance(layer, Dense) and layer.init is not None:
            return layer.init
        if self.init != "auto":
            return self.init
        nxt = next((lay for lay in self.layers[i + 1:] if not isinstance(lay, BatchNorm | Dropout)), None)
        return "he_normal" if isinstance(nxt, _RELU_FAMILY) else "xavier_normal"

    def reset_parameters(self, seed: int | None = None) -> None:
        """(Re)initialise every parameter and buffer from ``seed`` (default: the model's seed)."""
        rng = np.random.default_rng(self.seed if seed is None else _seed(seed))
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                initialize_into(self.params[f"{i}.weight"], self._layer_init(i), rng)
                if layer.bias:
                    b = layer.bias_init if layer.bias_init is not None else self.bias_init
                    self.params[f"{i}.bias"][...] = b
            elif isinstance(layer, BatchNorm):
                if layer.affine:
                    self.params[f"{i}.weight"][...] = 1.0
                    self.params[f"{i}.bias"][...] = 0.0
                self.buffers[f"{i}.running_mean"][...] = 0.0
                self.buffers[f"{i}.running_var"][...] = 1.0
            elif isinstance(layer, PReLU):
                self.params[f"{i}.weight"][...] = layer.init
        self._net.step = 0
        self._optimizer_key = None

    # ------------------------------------------------------------------------------------------
    # introspection
    # ------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        body = ",\n  ".join(repr(lay) for lay in self.layers)
        return (f"Sequential([\n  {body}\n], input_dim={self.input_dim}, loss={self.loss!r}, "
                f"dtype={self.dtype.name}, params={self.num_params()})")

    def num_params(self) -> int:
        """Number of trainable parameters (not counting alignment padding)."""
        return int(sum(p.size for p in self.params.values()))

    @property
    def step(self) -> int:
        """Training steps taken (it keys the dropout masks; saved in checkpoints)."""
        return int(self._net.step)

    @property
    def classes(self) -> int:
        """Number of outputs (the classes, for a classification loss); same as ``output_dim``."""
        return self.output_dim

    # ------------------------------------------------------------------------------------------
    # data checks (one conversion per call, never per step)
    # ------------------------------------------------------------------------------------------
    def _check_X(self, X: Any, name: str = "X") -> np.ndarray:
        if isinstance(X, np.ndarray) and X.dtype == self.dtype and X.flags.c_contiguous and X.ndim == 2:
            arr = X
        else:
            arr = np.asarray(X)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
            if arr.ndim == 1:
                raise ValueError(f"{name} must be 2-D (samples, features), got shape {arr.shape}; "
                                 "use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for one sample")
            if arr.ndim > 2:
                arr = arr.reshape(arr.shape[0], -1)
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if arr.shape[1] != self.input_dim:
            raise ValueError(f"{name} has {arr.shape[1]} features but the model takes {self.input_dim}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 samples)")
        bad = _core.first_nonfinite(arr)
        if bad >= 0:
            row, col = divmod(int(bad), arr.shape[1])
            raise ValueError(f"{name} contains NaN or infinity (first at row {row}, column {col})")
        return arr

    def _check_y(self, y: Any, n: int, name: str = "y") -> np.ndarray:
        if self.loss.classification:
            arr = np.asarray(y)
            if arr.ndim == 2 and arr.shape[1] != 1:
                return self._check_soft_targets(arr, n, name)
            if arr.dtype.kind == "b" or arr.dtype.kind not in "iu":
                if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                    arr = arr.astype(np.int64)
                else:
                    raise TypeError(f"{name} must hold integer class labels 0..{self.output_dim - 1}, "
                                    f"got dtype {arr.dtype}")
            if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
                i = int(np.argmax(arr))  # would wrap to a negative int64: name the real value
                raise ValueError(f"{name}[{i}] = {arr.reshape(-1)[i]} is not a class of this model "
                                 f"(0..{self.output_dim - 1})")
            arr = np.ascontiguousarray(arr.reshape(-1), dtype=np.int64)
            if arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} labels for {n} samples")
            if arr.size and (arr.min() < 0 or arr.max() >= self.output_dim):
                i = int(np.flatnonzero((arr < 0) | (arr >= self.output_dim))[0])
                raise ValueError(f"{name}[{i}] = {arr[i]} is not a class of this model (0..{self.output_dim - 1})")
            return arr
        arr = np.asarray(y)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold numeric targets, got dtype {arr.dtype}")
        if arr.ndim == 1 and self.output_dim == 1:
            arr = arr.reshape(-1, 1)
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if arr.shape != (n, self.output_dim):
            raise ValueError(f"{name} must have shape ({n}, {self.output_dim}), got {arr.shape}")
        if _core.first_nonfinite(arr) >= 0:
            raise ValueError(f"{name} contains NaN or infinity")
        return arr

    def _check_soft_targets(self, arr: np.ndarray, n: int, name: str) -> np.ndarray:
        """Soft targets for softmax cross-entropy: one probability distribution per row, shape
        (n, classes) (e.g. an ensemble's temperature-softened probabilities, see
        :func:`fastnn.ensemble.distill`)."""
        C = self.output_dim
        if self.loss.kind != "softmax":
            raise ValueError(f"{name} has shape {arr.shape}: soft targets (N, classes) need the softmax "
                             f"cross-entropy loss; the {self.loss.kind} loss takes integer labels of shape (N,)")
        if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
            raise TypeError(f"{name} must hold class probabilities (soft targets), got dtype {arr.dtype}")
        if arr.shape != (n, C):
            raise ValueError(f"{name} must have shape ({n}, {C}) (soft targets: a distribution over the "
                             f"{C} classes per sample) or ({n},) (labels), got {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        bad = _core.first_nonfinite(arr)
        if bad >= 0:
            raise ValueError(f"{name} contains NaN or infinity (first at row {int(bad) // C})")
        if arr.size and arr.min() < 0:
            row = int(np.flatnonzero((arr < 0).any(axis=1))[0])
            raise ValueError(f"{name}[{row}] has a negative probability; soft targets must be distributions")
        sums = arr.sum(axis=1, dtype=np.float64)
        tol = 1e-3 if self.dtype == np.float32 else 1e-6
        off = np.abs(sums - 1.0) > tol
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise ValueError(f"{name}[{row}] sums to {sums[row]:.6g}, not 1: soft targets must be probability "
                             "distributions (normalise each row)")
        return arr

    @property
    def preprocessing(self) -> Any:
        """The attached :mod:`fastnn.preprocessing` transformer (a list becomes a ``Chain``), or None."""
        return self.__dict__.get("_preprocessing")

    @preprocessing.setter
    def preprocessing(self, p: Any) -> None:
        from fastnn.preprocessing import as_preprocessing

        self._preprocessing = as_preprocessing(p)

    def preprocess(self, X: Any, name: str = "X") -> np.ndarray:
        """The network input for raw ``X``: flattened to (N, D), transformed by the attached
        preprocessing (if any), converted to the model's dtype and checked (no NaN/inf, D features).

        Raises
        ------
        fastnn.preprocessing.NotFittedError
            The attached preprocessing was never fitted.
        ValueError / TypeError
            As :meth:`forward`.
        """
        p = self.preprocessing
        if p is None:
            return self._check_X(X, name)
        from fastnn.preprocessing import transform_for_model

        return self._check_X(transform_for_model(p, X, self.dtype, name), name)

    def _evaluate(self, Xc: np.ndarray, yc: np.ndarray) -> dict[str, float]:
        """:meth:`evaluate` on network inputs already checked (no preprocessing)."""
        loss, acc = self._net.evaluate(Xc, yc)
        out = {"loss": float(loss)}
        if self.loss.classification:
            out["accuracy"] = float(acc)
        return out

    def _reserve(self, rows: int) -> None:
        if rows > self._net.max_batch:
            self._net.reserve(int(rows))

    def _batch(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """A batch of network inputs and targets, checked, with the workspace grown to hold it."""
        Xc = self._check_X(X)
        yc = self._check_y(y, Xc.shape[0])
        self._reserve(Xc.shape[0])
        return Xc, yc

    # ------------------------------------------------------------------------------------------
    # inference (evaluation mode, through an inference workspace of its own, in chunks)
    # ------------------------------------------------------------------------------------------
    def forward(self, X: Any) -> np.ndarray:
        """Raw outputs (class scores, or regression outputs) in evaluation mode.

        Evaluation mode: batch norm uses its running statistics and dropout is the identity.
        ``decision_function`` is the same method (scikit-learn's name).

        Parameters
        ----------
        X : array-like, shape (N, input_dim)
            Any numeric dtype (converted once to the model's dtype); (N, d1, ..., dk) is flattened.

        Returns
        -------
        ndarray, shape (N, output_dim), the model's dtype

        Raises
        ------
        ValueError
            Wrong number of features, no rows, NaN or infinity (the message gives the first
            position), a 1-D array.
        TypeError
            Non-numeric data.

        Notes
        -----
        Inference has a workspace of its own, apart from the training one (``max_batch`` does not
        apply): the rows go through it in chunks of up to a few thousand rows, sized from the layer
        widths so that each of a chunk's three activation buffers takes about 2 MiB, and several
        chunks run in parallel, one per thread; memory stays flat for any ``N``. One to three rows
        are matrix-vector products that stream the weights once. Results are bitwise identical for
        any thread count (:func:`fastnn.set_num_threads`); a row may differ in its last bits
        depending on how many rows are predicted with it (a different GEMM kernel for 1-3 rows).
        """
        return self._net.predict(self.preprocess(X), False)

    decision_function = forward

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax class probabilities in evaluation mode.

        Parameters
        ----------
        X : array-like, shape (N, input_dim)

        Returns
        -------
        ndarray, shape (N, classes), the model's dtype
            Rows sum to 1.

        Raises
        ------
        TypeError
            The model has a regression (MSE) loss.
        ValueError
            Bad ``X`` (as in :meth:`forward`).

        Notes
        -----
        Chunked and thread-count independent as :meth:`forward`.
        """
        if not self.loss.classification:
            raise TypeError("predict_proba needs a classification loss")
        return self._net.predict(self.preprocess(X), True)

    def predict(self, X: Any) -> np.ndarray:
        """Class indices (classification) or outputs (regression), in evaluation mode.

        Parameters
        ----------
        X : array-like, shape (N, input_dim)

        Returns
        -------
        ndarray
            int64 labels of shape (N,) (the argmax of the scores), or the outputs (N, output_dim)
            for MSE.
        """
        out = self.forward(X)
        return out.argmax(axis=1) if self.loss.classification else out

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """Mean data loss (no penalty) and, for classification, accuracy, in evaluation mode.

        ``y`` holds labels (N,), or soft targets (N, classes) for softmax cross-entropy: the loss is
        then the cross-entropy against them and the accuracy the agreement with each row's most
        probable class.

        Parameters
        ----------
        X : array-like, shape (N, input_dim)
        y : array-like
            Integer labels (N,) in ``[0, classes)`` for classification (floats holding whole
            numbers are accepted), soft targets (N, classes) for softmax cross-entropy, targets
            (N, output_dim) for MSE.

        Returns
        -------
        dict
            ``{"loss": float, "accuracy": float}`` (no ``accuracy`` for MSE).

        Raises
        ------
        ValueError
            Bad shapes, NaN/inf, labels out of range (the message names the row).
        TypeError
            Non-integer labels for a classification loss.
        """
        Xc = self.preprocess(X)
        return self._evaluate(Xc, self._check_y(y, Xc.shape[0]))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (classification) or minus the mean squared error (regression)."""
        r = self.evaluate(X, y)
        return r["accuracy"] if self.loss.classification else -r["loss"]

    # ------------------------------------------------------------------------------------------
    # training primitives
    # ------------------------------------------------------------------------------------------
    def attach_optimizer(self, optimizer: Any) -> None:
        """Select the optimizer whose state the model keeps (zeroed when it changes)."""
        from fastnn.optim import resolve_optimizer

        opt = resolve_optimizer(optimizer)
        if opt.kind == "lbfgs":
            self._optimizer_key = ("lbfgs",)
            return
        key = (opt.kind, tuple(sorted(opt.hyper().items())))
        if key != self._optimizer_key:
            self._net.set_optimizer(opt.kind, **opt.hyper())
            self._optimizer_key = key
        self._optimizer = opt

    def train_step(self, X: Any, y: Any, optimizer: Any = None, *, lr: float | None = None,
                   momentum: float | None = None) -> float:
        """One forward/loss/backward/update step on a batch; returns the loss (with penalties).

        ``optimizer`` defaults to the last one attached (``lr``/``momentum`` override its values).

        Parameters
        ----------
        X, y : array-like
            One batch, as in :meth:`evaluate`; the workspace grows if it has more rows than any
            batch before.
        optimizer : str or Optimizer, optional
            Attached first (its state is zeroed when it differs from the attached one).
        lr, momentum : float, optional
            This step's learning rate and momentum, instead of the optimizer's (schedules are
            evaluated at the model's step counter).

        Returns
        -------
        float
            The loss before the update (data loss plus penalties).

        Raises
        ------
        RuntimeError
            No optimizer passed or attached.
        fastnn.trainer.NonFiniteLossError
            When the loss is not finite (the update is skipped; the weights stay as they were).
        """
        from fastnn.trainer import NonFiniteLossError, _nonfinite_origin

        if optimizer is not None:
            self.attach_optimizer(optimizer)
        if self._optimizer_key is None:
            raise RuntimeError("no optimizer: pass one to train_step or call attach_optimizer")
        opt = self._optimizer
        Xc, yc = self._batch(X, y)
        if lr is None:
            lr = opt.lr if isinstance(opt.lr, int | float) else float(opt.lr_values(np.array([self.step]), 1)[0])
        if momentum is None:
            mu = opt.momentum_value
            momentum = mu if isinstance(mu, int | float) else float(opt.momentum_values(np.array([self.step]), 1)[0])
        lr_v, mu_v = float(lr), float(momentum)
        loss, _, _, finite = self._net.train_step(Xc, yc, lr_v, mu_v)
        if not finite:
            raise NonFiniteLossError(loss=loss, step=self.step, epoch=None, **_nonfinite_origin(self))
        return float(loss)

    def loss_and_grad(self, X: Any, y: Any, *, train: bool = True) -> tuple[float, dict[str, np.ndarray]]:
        """Loss (with penalties) and gradients (copies) at the current weights, without an update.

        ``train`` uses batch statistics for batch norm and the current step's dropout masks (the
        same masks every call until a training step advances the counter); running statistics are
        not updated.

        Parameters
        ----------
        X, y : array-like
            As in :meth:`evaluate`.
        train : bool
            Training mode (default) or evaluation mode.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
            Same names and shapes as :attr:`params`, the model's dtype.
        """
        Xc, yc = self._batch(X, y)
        loss, _, _ = self._net.loss_and_grad(Xc, yc, train)
        return float(loss), {k: g.copy() for k, g in self.grads.items()}

    def capture(self, X: Any, y: Any, *, train: bool = True) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Loss, every layer's output and the gradient of the loss with respect to each output
        (one forward/backward pass, no update; running statistics untouched) — for activation and
        gradient distributions per layer (:func:`fastnn.plots.distributions`). ``X``, ``y`` and
        ``train`` are as in :meth:`loss_and_grad`.

        Returns
        -------
        loss : float
        acts : list of ndarray
            ``acts[i]`` is layer ``i``'s output, shape (N, width_i), the model's dtype.
        grads : list of ndarray
            ``grads[i]`` is d loss / d ``acts[i]``, same shape.
        """
        Xc, yc = self._batch(X, y)
        loss, acts, grads = self._net.capture(Xc, yc, train)
        return float(loss), list(acts), list(grads)

    def fit(self, X: Any, y: Any, *, optimizer: Any = "adam", epochs: int = 10, batch_size: int = 64,
            validation_data: tuple | None = None, callbacks: Sequence | None = None, **kwargs: Any):
        """Train with a :class:`fastnn.Trainer` and return its :class:`fastnn.callbacks.History`.

        ``Trainer(self, optimizer, callbacks=callbacks).fit(X, y, epochs=..., batch_size=...,
        validation_data=..., **kwargs)``: see :meth:`fastnn.trainer.Trainer.fit` for every argument
        (``shuffle``, ``balanced``, ``eval_train_samples``, ``resume_from``) and the errors.
        """
        from fastnn.trainer import Trainer

        trainer = Trainer(self, optimizer, callbacks=callbacks)
        return trainer.fit(X, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                           **kwargs)

    # ------------------------------------------------------------------------------------------
    # weights: copies, averages, flat access
    # ------------------------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by name (the names of :attr:`params` and
        :attr:`buffers`), in the model's dtype."""
        return {**{k: v.copy() for k, v in self.params.items()},
                **{k: v.copy() for k, v in self.buffers.items()}}

    def set_weights(self, weights: dict[str, Any]) -> None:
        """Copy ``weights`` (by name; shapes must match) into the model.

        Parameters
        ----------
        weights : dict of str to array-like
            Every name of :attr:`params` and :attr:`buffers` exactly once (as :meth:`get_weights`
            returns them); values are converted to the model's dtype.

        Raises
        ------
        KeyError
            Unknown or missing names (nothing is copied).
        ValueError
            A wrong shape or non-finite values (nothing is copied).
        """
        expected = {**self.params, **self.buffers}
        unknown = set(weights) - set(expected)
        missing = set(expected) - set(weights)
        if unknown or missing:
            raise KeyError(f"weights do not match the model: unknown {sorted(unknown)}, missing {sorted(missing)}")
        for k, v in weights.items():
            arr = np.asarray(v)
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"weight {k!r} must hold real numbers, got dtype {arr.dtype}")
            if arr.shape != expected[k].shape:
                raise ValueError(f"weight {k!r} has shape {arr.shape}, the model expects {expected[k].shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"weight {k!r} contains NaN or infinity")
        for k, v in weights.items():
            expected[k][...] = np.asarray(v, dtype=self.dtype)

    def _spec_kwargs(self) -> dict[str, Any]:
        return {"input_dim": self.input_dim, "loss": self.loss, "l2": self.l2, "l1": self.l1,
                "init": self.init, "bias_init": self.bias_init, "seed": self.seed,
                "max_batch": int(self._net.max_batch)}

    def copy(self, dtype: Any = None) -> Sequential:
        """An independent model with the same architecture, weights, buffers and step counter
        (``dtype`` converts, e.g. to float64 for gradient checks). Optimizer state is not copied."""
        new = Sequential(_copy.deepcopy(self.layers), dtype=self.dtype if dtype is None else dtype,
                         **self._spec_kwargs())
        new.set_weights(self.get_weights())
        new._net.step = self._net.step
        new.preprocessing = _copy.deepcopy(self.preprocessing)
        return new

    def enable_averaging(self, decay: float | str = 0.999) -> None:
        """Keep a running average of the weights, updated in C++ after every step.

        ``decay`` in (0, 1) is an exponential moving average; ``"polyak"`` (or 0) a uniform
        average of every step from now on.

        Raises
        ------
        ValueError
            ``decay`` outside [0, 1).
        """
        d = 0.0 if decay == "polyak" else float(decay)
        if not 0.0 <= d < 1.0:
            raise ValueError(f"decay must be in [0, 1) or 'polyak', got {decay!r}")
        self._net.enable_average(d)

    def averaged(self) -> Sequential:
        """A copy of the model holding the running-average weights (see :meth:`enable_averaging`).

        Raises
        ------
        RuntimeError
            Averaging was never enabled.
        """
        avg = self._net.average
        if avg is None:
            raise RuntimeError("weight averaging is off: call enable_averaging() before training")
        new = self.copy()
        new._net.params[...] = avg
        return new

    # ------------------------------------------------------------------------------------------
    # persistence and PyTorch interop (fastnn.io)
    # ------------------------------------------------------------------------------------------
    def save(self, path: Any, **kwargs: Any) -> None:
        """Save to a safetensors checkpoint, atomically (see :func:`fastnn.io.save`)."""
        from fastnn.io import save

        save(self, path, **kwargs)

    def to_torch_state_dict(self) -> dict[str, np.ndarray]:
        """Weights named and shaped as the equivalent ``torch.nn.Sequential``'s state dict."""
        from fastnn.io import to_torch_state_dict

        return to_torch_state_dict(self)

    def load_torch_state_dict(self, state: dict[str, Any]) -> None:
        """Load weights from a ``torch.nn.Sequential`` state dict (tensors or arrays)."""
        from fastnn.io import load_torch_state_dict

        load_torch_state_dict(self, state)

    def to_torch(self):
        """The equivalent ``torch.nn.Sequential`` (needs PyTorch), with these weights."""
        from fastnn.io import to_torch

        return to_torch(self)


def _name_key(name: str) -> tuple[int, int, str]:
    layer, _, rest = name.partition(".")
    return int(layer), 0 if rest == "weight" else 1, rest


def MLP(
    input_dim: int,
    hidden: Sequence[int] = (100,),
    num_classes: int = 10,
    *,
    activation: str = "relu",
    batchnorm: bool = False,
    dropout: float = 0.0,
    maxout_k: int = 2,
    **kwargs: Any,
) -> Sequential:
    """A multilayer perceptron: (Dense -> [BatchNorm] -> activation -> [Dropout]) per hidden layer,
    then Dense to ``num_classes`` outputs.

    Parameters
    ----------
    input_dim : int
    hidden : sequence of int
        Hidden layer widths.
    num_classes : int
        Outputs (classes, or regression targets with ``loss="mse"``).
    activation : str
        ``relu``, ``leaky_relu``, ``prelu``, ``elu``, ``tanh``, ``sigmoid`` or ``maxout``.
    batchnorm : bool
        Batch norm between each Dense and its activation.
    dropout : float
        Probability of dropping a unit after each activation (PyTorch's convention; 0 = none).
    maxout_k : int
        Pieces per unit with ``activation="maxout"``.
    **kwargs
        Passed to :class:`Sequential` (loss, l2, init, dtype, seed, ...).

    Returns
    -------
    Sequential

    Raises
    ------
    ValueError
        An unknown activation, ``dropout`` outside [0, 1), or any error of :class:`Sequential`.

    Examples
    --------
    >>> model = fastnn.MLP(64, [128, 64], 10, batchnorm=True, dropout=0.2, seed=0)
    >>> [type(layer).__name__ for layer in model.layers][:4]
    ['Dense', 'BatchNorm', 'ReLU', 'Dropout']
    >>> model.num_params()
    17610
    """
    acts = {"relu": ReLU, "leaky_relu": LeakyReLU, "prelu": PReLU, "elu": ELU, "tanh": Tanh,
            "sigmoid": Sigmoid, "maxout": None}
    if activation not in acts:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(acts)}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout is the probability of dropping a unit and must be in [0, 1), got {dropout!r}")
    layers: list[Layer] = []
    width = int(input_dim)
    for h in hidden:
        if activation == "maxout":
            layers.append(Dense(width, h * maxout_k))
            if batchnorm:
                layers.append(BatchNorm())
            layers.append(Maxout(maxout_k))
        else:
            layers.append(Dense(width, h))
            if batchnorm:
                layers.append(BatchNorm())
            layers.append(acts[activation]())
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = h
    layers.append(Dense(width, num_classes))
    return Sequential(layers, input_dim=input_dim, **kwargs)
