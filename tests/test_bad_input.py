"""Bad input never crashes the process and never gives silently wrong numbers: one table of bad
calls across the public API, each with the exception it must raise and a pattern that must name
the offending argument.

The table is a list of :class:`Case` rows; a new module adds its rows with ``needs="fastnn.x"``
(the row is skipped, with that reason, when the module is not there). A row's ``call`` takes the
:class:`Ctx` fixture (temporary folder, a good checkpoint, small data) and makes the bad call.

Sections: functional ops, kernels' in-place outputs, update rules, layers, model construction
(absurd sizes included: refused *before* allocating, never a segfault or an OOM kill), training
data, hyperparameters, trainer, checkpoints (truncated, bit-flipped, foreign, missing keys, wrong
dtype, pickles), and the newer modules (preprocessing, estimators, search configuration).
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastnn
import numpy as np
import pytest
from fastnn import _core, optim
from fastnn import functional as F
from fastnn.layers import ELU, BatchNorm, Dense, Dropout, LeakyReLU, Maxout, PReLU, ReLU


@dataclass(frozen=True)
class Case:
    """One bad call: ``call(ctx)`` must raise ``exc`` with a message matching ``match``."""

    name: str
    call: Callable[[Any], Any]
    exc: type[BaseException] | tuple[type[BaseException], ...]
    match: str
    needs: str | None = None  # a module the row needs (skipped without it)


class Ctx:
    """What the rows need: small data, a model, checkpoint files (made on first use)."""

    def __init__(self, tmp: Path) -> None:
        rng = np.random.default_rng(0)
        self.tmp = tmp
        self.x = rng.standard_normal((4, 5))
        self.w = rng.standard_normal((5, 3))
        self.b = np.zeros(3)
        self.y = np.array([0, 1, 2, 1])
        self.X = rng.standard_normal((65, 4)).astype(np.float32)
        self.Y = rng.integers(0, 3, 65)
        self._good: Path | None = None

    def model(self, **kw: Any) -> fastnn.Sequential:
        return fastnn.MLP(4, [8], 3, seed=0, **kw)

    def readonly(self, a: np.ndarray) -> np.ndarray:
        a = np.array(a)
        a.flags.writeable = False
        return a

    # checkpoints ---------------------------------------------------------------------------------
    def good(self) -> Path:
        if self._good is None:
            pytest.importorskip("safetensors", reason="checkpoints need safetensors (extra [io])")
            m = fastnn.MLP(4, [8], 3, batchnorm=True, seed=0)
            m.fit(self.X, self.Y, epochs=1, batch_size=13)  # 65 rows: no batch of 1 row for batch norm
            self._good = self.tmp / "good.safetensors"
            m.save(self._good)
        return self._good

    def variant(self, name: str, data: bytes) -> Path:
        p = self.tmp / name
        p.write_bytes(data)
        return p

    def truncated(self) -> Path:
        return self.variant("trunc.safetensors", self.good().read_bytes()[:-100])

    def flipped(self, where: str) -> Path:
        data = bytearray(self.good().read_bytes())
        n = struct.unpack("<Q", bytes(data[:8]))[0]
        if where == "tensor":
            i = len(data) - 7
        else:  # a digit inside the fastnn metadata (e.g. the seed): valid JSON, wrong value
            header = data[8:8 + n].decode()
            i = 8 + header.index('\\"seed\\": ') + len('\\"seed\\": ')
        data[i] ^= 0x01
        return self.variant(f"flip-{where}.safetensors", bytes(data))

    def rewritten(self, name: str, edit: Callable[[dict, dict], None]) -> Path:
        """A checkpoint rewritten with consistent checksums after `edit(tensors, meta)`: what a
        hand-made (not damaged) file looks like."""
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file

        tensors = load_file(str(self.good()))
        with safe_open(str(self.good()), framework="numpy") as f:
            meta = json.loads(f.metadata()["fastnn"])
        edit(tensors, meta)
        meta["checksums"] = {k: zlib.crc32(np.ascontiguousarray(v).view(np.uint8).reshape(-1).data) & 0xFFFFFFFF
                             for k, v in tensors.items()}
        text = json.dumps(meta)
        p = self.tmp / name
        crc = f"{zlib.crc32(text.encode()) & 0xFFFFFFFF:08x}"
        save_file(tensors, str(p), metadata={"fastnn": text, "fastnn_crc32": crc})
        return p


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def _broadcast_huge() -> np.ndarray:
    return np.broadcast_to(np.zeros(1), (10**6, 10**6))  # 8 TB if made contiguous


def _noncontig(shape: tuple[int, int]) -> np.ndarray:
    return np.empty((shape[1], shape[0])).T


def _overlapping() -> np.ndarray:
    buf = np.zeros(21)
    return _core.relu_forward(buf[:20].reshape(4, 5), out=buf[1:].reshape(4, 5))


def _foreign(c: Ctx) -> Path:
    pytest.importorskip("safetensors", reason="checkpoints need safetensors (extra [io])")
    from safetensors.numpy import save_file

    save_file({"w": np.ones(3, np.float32)}, str(c.tmp / "foreign.safetensors"))
    return c.tmp / "foreign.safetensors"


def _set_weight(c: Ctx, name: str, value: np.ndarray) -> None:
    m = c.model()
    m.set_weights({**m.get_weights(), name: value})


def _drop_tensor(tensors: dict, meta: dict) -> None:
    del tensors["param/0.weight"]


def _f64_tensor(tensors: dict, meta: dict) -> None:
    tensors["param/0.weight"] = tensors["param/0.weight"].astype(np.float64)


def _bad_layers(tensors: dict, meta: dict) -> None:
    meta["model"]["layers"] = "not a list of layers"


def _unknown_loss(tensors: dict, meta: dict) -> None:
    meta["model"]["loss"]["class"] = "dataclass"


def _two_threads_one_model(ctx: Ctx) -> None:
    """Train one model from a second thread and call it from this one until a call is refused."""
    import threading
    import time

    m = fastnn.MLP(4, [256, 256], 3, seed=0)
    m.attach_optimizer("sgd")
    X = np.repeat(ctx.X, 100, axis=0)
    y = np.repeat(ctx.Y, 100)
    m._reserve(len(X))
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                m.train_step(X, y)
            except RuntimeError:  # (refused the other way round: keep going)
                pass

    t = threading.Thread(target=work)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m.train_step(X[:10], y[:10])  # raises once it meets the other thread inside the model
    finally:
        stop.set()
        t.join()


CASES: list[Case] = [
    # ---- functional ops: dtypes ---------------------------------------------------------------
    Case("affine x int64", lambda c: F.affine_forward(c.x.astype(np.int64), c.w, c.b), TypeError, r"'x'.*int64"),
    Case("affine x bool", lambda c: F.affine_forward(c.x > 0, c.w, c.b), TypeError, r"'x'.*bool"),
    Case("affine x complex", lambda c: F.affine_forward(c.x.astype(complex), c.w, c.b), TypeError, r"'x'.*complex"),
    Case("affine x object", lambda c: F.affine_forward(c.x.astype(object), c.w, c.b), TypeError, r"'x'.*object"),
    Case("affine x float16", lambda c: F.affine_forward(c.x.astype(np.float16), c.w, c.b), TypeError, r"'x'.*float16"),
    Case("affine w mixed precision", lambda c: F.affine_forward(c.x, c.w.astype(np.float32), c.b), TypeError,
         r"'w' has dtype float32"),
    Case("relu x None", lambda c: F.relu_forward(None), TypeError, r"'x' is required"),
    Case("relu x strings", lambda c: F.relu_forward(np.array(["a", "b"])), TypeError, r"'x'"),
    Case("relu x big-endian", lambda c: F.relu_forward(c.x.astype(">f8")), TypeError, r"'x' has big-endian"),
    Case("softmax_loss labels float", lambda c: F.softmax_loss(c.x, c.y.astype(float)), TypeError,
         r"'y' must hold integer"),
    Case("softmax_loss labels bool", lambda c: F.softmax_loss(c.x, c.y > 0), TypeError, r"'y' must hold integer"),
    Case("svm_loss labels strings", lambda c: F.svm_loss(c.x, c.y.astype(str)), TypeError, r"'y'"),
    # ---- functional ops: shapes, sizes, values ---------------------------------------------------
    Case("affine x 1-D", lambda c: F.affine_forward(c.x[0], c.w, c.b), ValueError, r"'x' must have at least 2"),
    Case("affine w rows != features", lambda c: F.affine_forward(c.x, c.w[:4], c.b), ValueError,
         r"'w' must have shape"),
    Case("affine b wrong shape", lambda c: F.affine_forward(c.x, c.w, c.b[None]), ValueError, r"'b' must have shape"),
    Case("affine_backward dout shape", lambda c: F.affine_backward(np.zeros((4, 4)), (c.x, c.w, c.b)), ValueError,
         r"'dout' must have shape"),
    Case("relu_backward x/dout mismatch", lambda c: F.relu_backward(np.zeros(3), c.x), ValueError,
         r"'x' must have shape"),
    Case("non-contiguous copy too large", lambda c: F.relu_forward(_broadcast_huge()), MemoryError,
         r"'x' is not C-contiguous"),
    Case("softmax_loss scores 1-D", lambda c: F.softmax_loss(c.x[0], c.y), ValueError, r"'scores' must have 2"),
    Case("softmax_loss zero-size", lambda c: F.softmax_loss(np.zeros((0, 3)), np.zeros(0, int)), ValueError,
         r"'scores' is empty"),
    Case("softmax_loss label too large", lambda c: F.softmax_loss(c.x, np.array([0, 1, 2, 5])), ValueError,
         r"y\[3\] = 5 is outside \[0, 5\)"),
    Case("softmax_loss label negative", lambda c: F.softmax_loss(c.x, np.array([0, -1, 2, 1])), ValueError,
         r"y\[1\] = -1"),
    Case("softmax_loss X/y lengths", lambda c: F.softmax_loss(c.x, c.y[:3]), ValueError, r"'y' must have shape \(4,\)"),
    Case("softmax_loss label_smoothing 1.5", lambda c: F.softmax_loss(c.x, c.y, 1.5), ValueError, r"'label_smoothing'"),
    Case("mse_loss target shape", lambda c: F.mse_loss(c.x, c.x[:, :2]), ValueError, r"'target' must have shape"),
    Case("batchnorm eps 0", lambda c: F.batchnorm_forward(c.x, np.ones(5), np.zeros(5), {"mode": "train", "eps": 0}),
         ValueError, r"'eps'"),
    Case("batchnorm eps string", lambda c: F.batchnorm_forward(c.x, np.ones(5), np.zeros(5),
                                                               {"mode": "train", "eps": "1e-5"}),
         TypeError, r"bn_param\['eps'\]"),
    Case("batchnorm momentum 2", lambda c: F.batchnorm_forward(c.x, np.ones(5), np.zeros(5),
                                                               {"mode": "train", "momentum": 2.0}),
         ValueError, r"'momentum'"),
    Case("batchnorm mode", lambda c: F.batchnorm_forward(c.x, np.ones(5), np.zeros(5), {"mode": "eval"}), ValueError,
         r"bn_param\['mode'\]"),
    Case("batchnorm gamma shape", lambda c: F.batchnorm_forward(c.x, np.ones(4), np.zeros(5), {"mode": "train"}),
         ValueError, r"'gamma' must have shape \(5,\)"),
    Case("batchnorm zero rows", lambda c: F.batchnorm_forward(np.zeros((0, 5)), np.ones(5), np.zeros(5),
                                                              {"mode": "train"}), ValueError, r"'x' is empty"),
    # one row in training mode: variance 0, every output would be beta (PyTorch refuses it too)
    Case("batchnorm train one row", lambda c: F.batchnorm_forward(c.x[:1], np.ones(5), np.zeros(5), {"mode": "train"}),
         ValueError, r"batchnorm_forward: training mode needs more than 1 row per batch"),
    Case("batchnorm_forward_train kernel one row", lambda c: _core.batchnorm_forward_train(c.x[:1], None, None),
         ValueError, r"'x' has 1 row; batch norm in training mode needs more than 1 row"),
    Case("dropout keep p = 0", lambda c: F.dropout_forward(c.x, {"p": 0.0, "mode": "train"}), ValueError,
         r"dropout_param\['p'\].*\(0, 1\]"),
    Case("dropout keep p = 1.5", lambda c: F.dropout_forward(c.x, {"p": 1.5, "mode": "train"}), ValueError,
         r"dropout_param\['p'\]"),
    Case("dropout keep p NaN", lambda c: F.dropout_forward(c.x, {"p": float("nan"), "mode": "train"}), ValueError,
         r"dropout_param\['p'\]"),
    Case("dropout keep p bool", lambda c: F.dropout_forward(c.x, {"p": True, "mode": "train"}), ValueError,
         r"dropout_param\['p'\]"),
    Case("maxout k = 0", lambda c: F.maxout_forward(c.x, 0), ValueError, r"'k' must be >= 1"),
    Case("maxout k float", lambda c: F.maxout_forward(c.x, 2.5), TypeError, r"'k' must be an integer"),
    Case("maxout k does not divide", lambda c: F.maxout_forward(c.x, 2), ValueError, r"groups of k = 2"),
    Case("elu alpha < 0", lambda c: F.elu_forward(c.x, -1.0), ValueError, r"'alpha'"),
    Case("leaky_relu slope NaN", lambda c: F.leaky_relu_forward(c.x, float("nan")), ValueError, r"'slope'"),
    Case("prelu slopes shape", lambda c: F.prelu_forward(c.x, np.ones(3)), ValueError, r"'a' must have shape"),
    Case("l2 penalty reg < 0", lambda c: F.l2_regularization(c.w, -1.0), ValueError, r"'reg'"),
    # ---- in-place outputs: read-only / non-contiguous / wrong dtype never get a silent copy --------
    Case("relu out read-only", lambda c: _core.relu_forward(c.x, out=c.readonly(np.empty_like(c.x))), ValueError,
         r"'out' is written in place but is read-only"),
    Case("relu out non-contiguous", lambda c: _core.relu_forward(c.x, out=_noncontig(c.x.shape)), ValueError,
         r"'out' .*C-contiguous"),
    Case("relu out float32 for float64", lambda c: _core.relu_forward(c.x, out=np.empty(c.x.shape, np.float32)),
         TypeError, r"'out' .*float64"),
    Case("relu out partly overlapping x", lambda c: _overlapping(), ValueError, r"output 'out' overlaps input 'x'"),
    Case("batchnorm running_mean read-only",
         lambda c: _core.batchnorm_forward_train(c.x, None, None, c.readonly(np.zeros(5)), np.ones(5)), ValueError,
         r"'running_mean' is written in place but is read-only"),
    Case("optimizer_step w read-only", lambda c: _core.optimizer_step("sgd", c.readonly(c.w), [], c.w,
                                                                      learning_rate=0.1),
         ValueError, r"'w' is written in place but is read-only"),
    Case("optimizer_step state non-contiguous", lambda c: _core.optimizer_step(
        "momentum", c.w.copy(), [_noncontig(c.w.shape)], c.w, learning_rate=0.1, momentum=0.9),
         ValueError, r"'state\[0\]' .*C-contiguous"),
    Case("dense_backward dw read-only", lambda c: _core.dense_backward(np.ones((4, 3)), c.x, c.w,
                                                                       dw=c.readonly(np.zeros_like(c.w))),
         ValueError, r"'dw' is written in place but is read-only"),
    # ---- update rules: hyperparameters --------------------------------------------------------
    Case("sgd learning_rate < 0", lambda c: F.sgd(c.w.copy(), c.w, {"learning_rate": -1e-3}), ValueError,
         r"'learning_rate'"),
    Case("sgd learning_rate NaN", lambda c: F.sgd(c.w.copy(), c.w, {"learning_rate": float("nan")}), ValueError,
         r"'learning_rate'"),
    Case("sgd learning_rate string", lambda c: F.sgd(c.w.copy(), c.w, {"learning_rate": "0.1"}), TypeError,
         r"'learning_rate' must be a number"),
    Case("momentum = 1", lambda c: F.sgd_momentum(c.w.copy(), c.w, {"momentum": 1.0}), ValueError, r"'momentum'"),
    Case("adam beta1 = 1", lambda c: F.adam(c.w.copy(), c.w, {"beta1": 1.0}), ValueError, r"'beta1'"),
    Case("adam beta2 < 0", lambda c: F.adam(c.w.copy(), c.w, {"beta2": -0.1}), ValueError, r"'beta2'"),
    Case("adam epsilon = 0", lambda c: F.adam(c.w.copy(), c.w, {"epsilon": 0.0}), ValueError, r"'epsilon'"),
    Case("adam dw shape", lambda c: F.adam(c.w.copy(), c.w[:2], {}), ValueError, r"'dw' must have shape"),
    Case("adam w int", lambda c: F.adam(c.w.astype(int), c.w, {}), TypeError, r"'w'"),
    Case("adam config not a dict", lambda c: F.adam(c.w.copy(), c.w, [0.1]), TypeError, r"config must be a dict"),
    Case("rmsprop decay_rate = 1", lambda c: F.rmsprop(c.w.copy(), c.w, {"decay_rate": 1.0}), ValueError,
         r"'decay_rate'"),
    # ---- layers -------------------------------------------------------------------------------
    Case("Dense out_features 0", lambda c: Dense(4, 0), ValueError, r"out_features"),
    Case("Dense out_features 2.5", lambda c: Dense(4, 2.5), ValueError, r"out_features"),
    Case("Dense out_features inf", lambda c: Dense(4, float("inf")), ValueError, r"out_features"),
    Case("Dense in_features 2**64", lambda c: Dense(2**64, 3), ValueError, r"in_features .*too large"),
    Case("Dropout p = 1", lambda c: Dropout(1.0), ValueError, r"Dropout: p"),
    Case("Dropout p < 0", lambda c: Dropout(-0.1), ValueError, r"Dropout: p"),
    Case("BatchNorm eps = 0", lambda c: BatchNorm(eps=0.0), ValueError, r"BatchNorm: eps"),
    Case("BatchNorm momentum 1.5", lambda c: BatchNorm(momentum=1.5), ValueError, r"BatchNorm: momentum"),
    Case("Maxout k = 0", lambda c: Maxout(0), ValueError, r"Maxout: k"),
    Case("ELU alpha < 0", lambda c: ELU(-1.0), ValueError, r"ELU: alpha"),
    Case("LeakyReLU slope string", lambda c: LeakyReLU("0.1"), TypeError, r"negative_slope"),
    Case("PReLU slopes != features", lambda c: fastnn.Sequential([Dense(4, 6), PReLU(5), Dense(6, 2)]), ValueError,
         r"num_parameters"),
    # ---- model construction --------------------------------------------------------------------
    Case("Sequential dtype float16", lambda c: fastnn.Sequential([Dense(4, 3)], dtype=np.float16), TypeError,
         r"dtype .*float16"),
    Case("Sequential dtype int32", lambda c: fastnn.Sequential([Dense(4, 3)], dtype=np.int32), TypeError, r"dtype"),
    Case("Sequential l2 < 0", lambda c: fastnn.Sequential([Dense(4, 3)], l2=-1e-4), ValueError, r"l2"),
    Case("Sequential seed < 0", lambda c: fastnn.Sequential([Dense(4, 3)], seed=-1), ValueError, r"seed"),
    Case("Sequential max_batch 0", lambda c: fastnn.Sequential([Dense(4, 3)], max_batch=0), ValueError, r"max_batch"),
    Case("Sequential max_batch 2**64", lambda c: fastnn.Sequential([Dense(4, 3)], max_batch=2**64), ValueError,
         r"max_batch"),
    Case("Sequential sizes do not chain", lambda c: fastnn.Sequential([Dense(4, 3), Dense(5, 2)]), ValueError,
         r"Dense\(5, 2\) receives 3"),
    Case("Sequential unknown loss", lambda c: fastnn.Sequential([Dense(4, 3)], loss="hinge2"), ValueError,
         r"unknown loss"),
    Case("absurd layer (1e12 parameters)", lambda c: fastnn.Sequential([Dense(10**6, 10**6), ReLU(), Dense(10**6, 2)]),
         (MemoryError, ValueError), r"parameters need more memory"),
    Case("absurd layer (size overflows)", lambda c: fastnn.Sequential([Dense(2**40, 2**40), Dense(2**40, 2)]),
         (MemoryError, ValueError), r"overflows|memory"),
    Case("absurd batch (max_batch 1e12)", lambda c: fastnn.Sequential([Dense(4, 3)], max_batch=10**12),
         (MemoryError, ValueError), r"batch of 1000000000000 rows"),
    Case("absurd batch (reserve 2**61)", lambda c: c.model()._net.reserve(2**61), (MemoryError, ValueError),
         r"rows"),
    Case("MLP dropout 1", lambda c: fastnn.MLP(4, [8], 3, dropout=1.0), ValueError, r"dropout"),
    Case("label_smoothing 1", lambda c: fastnn.losses.SoftmaxCrossEntropy(label_smoothing=1.0), ValueError,
         r"label_smoothing"),
    Case("SVM margin inf", lambda c: fastnn.losses.MulticlassSVM(margin=float("inf")), ValueError, r"margin"),
    # ---- training data -------------------------------------------------------------------------
    Case("fit X complex", lambda c: c.model().fit(c.X.astype(complex), c.Y, epochs=1), TypeError,
         r"X must hold numbers"),
    Case("fit X object", lambda c: c.model().fit(c.X.astype(object), c.Y, epochs=1), TypeError, r"X must hold numbers"),
    Case("fit X 1-D", lambda c: c.model().fit(c.X[:, 0], c.Y, epochs=1), ValueError, r"X must be 2-D"),
    Case("fit X features", lambda c: c.model().fit(c.X[:, :3], c.Y, epochs=1), ValueError, r"X has 3 features"),
    Case("fit X NaN", lambda c: c.model().fit(np.where(c.X > 2, np.nan, c.X), c.Y, epochs=1), ValueError,
         r"X contains NaN or infinity \(first at row \d+, column \d+\)"),
    Case("fit X inf", lambda c: c.model().fit(np.where(c.X > 2, -np.inf, c.X), c.Y, epochs=1), ValueError,
         r"X contains NaN or infinity"),
    Case("fit X zero-size", lambda c: c.model().fit(c.X[:0], c.Y[:0], epochs=1), ValueError, r"X is empty"),
    Case("fit X/y lengths", lambda c: c.model().fit(c.X, c.Y[:10], epochs=1), ValueError, r"y has 10 labels for 65"),
    Case("fit y out of range", lambda c: c.model().fit(c.X, c.Y + 1, epochs=1), ValueError,
         r"y\[\d+\] = 3 is not a class"),
    Case("fit y negative", lambda c: c.model().fit(c.X, c.Y - 1, epochs=1), ValueError, r"y\[\d+\] = -1"),
    Case("fit y fractional", lambda c: c.model().fit(c.X, c.Y + 0.5, epochs=1), TypeError, r"y must hold integer"),
    Case("fit y strings", lambda c: c.model().fit(c.X, c.Y.astype(str), epochs=1), TypeError, r"y must hold integer"),
    Case("fit y uint64 > int64", lambda c: c.model().fit(c.X, np.full(65, 2**63 + 5, np.uint64), epochs=1),
         ValueError, r"y\[0\] = 9223372036854775813"),
    Case("fit X_val features", lambda c: c.model().fit(c.X, c.Y, epochs=1, validation_data=(c.X[:, :3], c.Y)),
         ValueError, r"X_val has 3 features"),
    Case("fit validation_data not a pair", lambda c: c.model().fit(c.X, c.Y, epochs=1, validation_data=c.X),
         TypeError, r"validation_data"),
    Case("predict NaN", lambda c: c.model().predict(c.X * np.nan), ValueError, r"X contains NaN"),
    Case("mse y NaN", lambda c: fastnn.MLP(4, [8], 2, loss="mse").fit(c.X, c.X[:, :2] * np.nan, epochs=1),
         ValueError, r"y contains NaN"),
    # ---- training hyperparameters ----------------------------------------------------------------
    Case("fit batch_size 0", lambda c: c.model().fit(c.X, c.Y, epochs=1, batch_size=0), ValueError, r"batch_size"),
    Case("fit batch_size -1", lambda c: c.model().fit(c.X, c.Y, epochs=1, batch_size=-1), ValueError, r"batch_size"),
    Case("fit batch_size 2.5", lambda c: c.model().fit(c.X, c.Y, epochs=1, batch_size=2.5), ValueError, r"batch_size"),
    Case("fit epochs 0", lambda c: c.model().fit(c.X, c.Y, epochs=0), ValueError, r"epochs"),
    Case("fit batchnorm batch_size 1", lambda c: c.model(batchnorm=True).fit(c.X, c.Y, epochs=1, batch_size=1),
         ValueError, r"more than 1 row per batch"),
    Case("train_step batchnorm one row", lambda c: c.model(batchnorm=True).train_step(c.X[:1], c.Y[:1], "sgd"),
         ValueError, r"batch norm in training mode needs more than 1 row per batch, got a batch of 1 row"),
    Case("loss_and_grad batchnorm one row", lambda c: c.model(batchnorm=True).loss_and_grad(c.X[:1], c.Y[:1]),
         ValueError, r"batch norm in training mode needs more than 1 row per batch"),
    Case("train_epoch batchnorm last batch of 1 row", lambda c: c.model(batchnorm=True, max_batch=16)._net.train_epoch(
        c.X, c.Y, np.arange(65), 16, np.full(5, 0.1), np.zeros(5)), ValueError, r"make a batch of 1 row"),
    Case("SGD lr < 0", lambda c: optim.SGD(lr=-0.1), ValueError, r"SGD: lr"),
    Case("SGD lr NaN", lambda c: optim.SGD(lr=float("nan")), ValueError, r"SGD: lr"),
    Case("SGD lr string", lambda c: optim.SGD(lr="0.1"), TypeError, r"SGD: lr"),
    Case("SGD momentum 1", lambda c: optim.SGD(momentum=1.0), ValueError, r"SGD: momentum"),
    Case("Adam beta1 1", lambda c: optim.Adam(betas=(1.0, 0.999)), ValueError, r"Adam: beta1"),
    Case("Adam beta2 > 1", lambda c: optim.Adam(betas=(0.9, 1.5)), ValueError, r"Adam: beta2"),
    Case("Adam eps 0", lambda c: optim.Adam(eps=0.0), ValueError, r"Adam: eps"),
    Case("RMSProp decay 1", lambda c: optim.RMSProp(decay=1.0), ValueError, r"RMSProp: decay"),
    Case("unknown optimizer", lambda c: c.model().fit(c.X, c.Y, epochs=1, optimizer="adamax"), ValueError,
         r"unknown optimizer 'adamax'"),
    Case("train_step lr < 0", lambda c: c.model().train_step(c.X, c.Y, "sgd", lr=-1.0), ValueError,
         r"'learning_rate'"),
    Case("train_step momentum 1", lambda c: c.model().train_step(c.X, c.Y, "momentum", momentum=1.0), ValueError,
         r"'momentum'"),
    Case("enable_averaging decay 1", lambda c: c.model().enable_averaging(1.0), ValueError, r"decay"),
    Case("set_num_threads 0", lambda c: fastnn.set_num_threads(0), ValueError, r"set_num_threads: n"),
    Case("set_num_threads 1.5", lambda c: fastnn.set_num_threads(1.5), TypeError, r"set_num_threads: n"),
    Case("set_weights missing names", lambda c: c.model().set_weights({}), KeyError, r"missing \['0.bias'"),
    Case("set_weights wrong shape", lambda c: _set_weight(c, "0.weight", np.zeros((3, 3))), ValueError,
         r"'0.weight' has shape \(3, 3\)"),
    Case("set_weights strings", lambda c: _set_weight(c, "0.weight", np.full((4, 8), "a")), TypeError,
         r"'0.weight' must hold real numbers"),
    Case("set_weights NaN", lambda c: _set_weight(c, "0.bias", np.full(8, np.nan)), ValueError,
         r"'0.bias' contains NaN"),
    # ---- trainer and concurrency -----------------------------------------------------------------
    Case("Trainer model not a Sequential", lambda c: fastnn.Trainer("model"), TypeError, r"model must be"),
    Case("Trainer callbacks not callbacks", lambda c: fastnn.Trainer(c.model(), callbacks=[print]), TypeError,
         r"callbacks"),
    Case("balanced batches with MSE", lambda c: fastnn.Trainer(fastnn.MLP(4, [8], 2, loss="mse")).fit(
        c.X, c.X[:, :2], epochs=1, balanced=True), ValueError, r"balanced"),
    Case("one model from two threads", _two_threads_one_model, RuntimeError, r"another thread"),
    # ---- checkpoints ---------------------------------------------------------------------------
    Case("load truncated", lambda c: fastnn.load(c.truncated()), ValueError, r"trunc.safetensors .*not a readable"),
    Case("load bit-flipped tensor", lambda c: fastnn.load(c.flipped("tensor")), ValueError,
         r"flip-tensor.safetensors.*checksum"),
    Case("load bit-flipped metadata", lambda c: fastnn.load(c.flipped("meta")), ValueError,
         r"flip-meta.safetensors.*metadata fails its checksum"),
    Case("load foreign safetensors", lambda c: fastnn.load(_foreign(c)), ValueError, r"not a fastnn checkpoint"),
    Case("load random bytes", lambda c: fastnn.load(c.variant("junk.safetensors", os.urandom(4096))), ValueError,
         r"junk.safetensors .*not a readable"),
    Case("load a pickle", lambda c: fastnn.load(c.variant("model.pkl", b"\x80\x04\x95" + os.urandom(64))), ValueError,
         r"model.pkl"),
    Case("load missing keys", lambda c: fastnn.load(c.rewritten("missing.safetensors", _drop_tensor)), ValueError,
         r"missing.safetensors: not a valid fastnn checkpoint.*0.weight"),
    Case("load wrong tensor dtype", lambda c: fastnn.load(c.rewritten("f64.safetensors", _f64_tensor)), ValueError,
         r"'param/0.weight' has dtype float64"),
    Case("load malformed layers", lambda c: fastnn.load(c.rewritten("layers.safetensors", _bad_layers)), ValueError,
         r"layers.safetensors: not a valid fastnn checkpoint"),
    Case("load unknown loss class", lambda c: fastnn.load(c.rewritten("loss.safetensors", _unknown_loss)), ValueError,
         r"unknown loss"),
    Case("load missing file", lambda c: fastnn.load(c.tmp / "nope.safetensors"), FileNotFoundError,
         r"nope.safetensors"),
    Case("restore_into another architecture", lambda c: fastnn.io.restore_into(fastnn.MLP(4, [9], 3), c.good()),
         ValueError, r"different model"),
]




# ------------------------------------------------------------------------------------------------
# Rows for the newer modules (preprocessing, estimators, search configuration). Each row names the
# module it needs; without it the row is skipped with that reason.
# ------------------------------------------------------------------------------------------------
def _mod(name: str) -> Any:
    return importlib.import_module(name)


def _cfg(c: Ctx, text: str) -> Path:
    p = c.tmp / "search.toml"
    p.write_text(text)
    return p


def _mlp(kind: str, **params: Any) -> Any:
    import warnings

    est = _mod("fastnn.estimator")
    warnings.simplefilter("ignore")  # (convergence warnings of the 2-iteration fits)
    return getattr(est, kind)(max_iter=2, **params)


_PRE, _EST, _SEARCH, _AUG = "fastnn.preprocessing", "fastnn.estimator", "fastnn.search", "fastnn.augment"
_LR = "loguniform(1e-4, 1e-1)"

CASES += [
    # ---- preprocessing ---------------------------------------------------------------------------
    Case("StandardScaler transform before fit", lambda c: _mod(_PRE).StandardScaler().transform(c.x), ValueError,
         r"not fitted", needs=_PRE),
    Case("StandardScaler X complex", lambda c: _mod(_PRE).StandardScaler().fit(c.x.astype(complex)), TypeError,
         r"X must hold numbers", needs=_PRE),
    Case("StandardScaler X NaN", lambda c: _mod(_PRE).StandardScaler().fit(np.where(c.x > 1, np.nan, c.x)),
         ValueError, r"X contains NaN", needs=_PRE),
    Case("StandardScaler X 1-D", lambda c: _mod(_PRE).StandardScaler().fit(c.x[:, 0]), ValueError, r"X must be 2-D",
         needs=_PRE),
    Case("StandardScaler zero-size", lambda c: _mod(_PRE).StandardScaler().fit(c.x[:0]), ValueError,
         r"X has 0 samples", needs=_PRE),
    Case("StandardScaler features", lambda c: _mod(_PRE).StandardScaler().fit(c.x).transform(c.x[:, :3]), ValueError,
         r"X has 3 features", needs=_PRE),
    Case("StandardScaler overflowing values", lambda c: _mod(_PRE).StandardScaler().fit(c.x * 1e300), ValueError,
         r"too large", needs=_PRE),
    Case("StandardScaler out read-only", lambda c: _mod(_PRE).StandardScaler().fit(c.x).transform(
        c.x, out=c.readonly(np.empty_like(c.x))), ValueError, r"out must be .*writable", needs=_PRE),
    Case("StandardScaler dtype int32", lambda c: _mod(_PRE).StandardScaler().fit(c.x).transform(c.x, dtype=np.int32),
         TypeError, r"dtype must be float32 or float64", needs=_PRE),
    Case("MinMaxScaler range reversed", lambda c: _mod(_PRE).MinMaxScaler(feature_range=(1, 0)).fit(c.x), ValueError,
         r"feature_range", needs=_PRE),
    Case("PCA n_components too large", lambda c: _mod(_PRE).PCA(n_components=10).fit(c.x), ValueError,
         r"n_components=10", needs=_PRE),
    Case("PCA eps < 0", lambda c: _mod(_PRE).PCA(eps=-1.0).fit(c.x), ValueError, r"eps", needs=_PRE),
    Case("PCA absurd width (1e6 features)", lambda c: _mod(_PRE).PCA().fit(np.zeros((2, 10**6))), MemoryError,
         r"X has 1000000 features", needs=_PRE),
    Case("preprocessing from_dict unknown class", lambda c: _mod(_PRE).from_dict({"class": "Evil", "format": 1}),
         ValueError, r"unknown preprocessing class 'Evil'", needs=_PRE),
    Case("Augment flip 2", lambda c: _mod(_AUG).Augment(flip=2.0), ValueError, r"flip", needs=_AUG),
    Case("Augment noise_std < 0", lambda c: _mod(_AUG).Augment(noise_std=-1.0), ValueError, r"noise_std", needs=_AUG),
    # ---- estimators (scikit-learn API) -------------------------------------------------------------
    Case("MLPClassifier learning_rate_init < 0", lambda c: _mlp("MLPClassifier", learning_rate_init=-1.0).fit(c.X, c.Y),
         ValueError, r"learning_rate_init", needs=_EST),
    Case("MLPClassifier batch_size 0", lambda c: _mlp("MLPClassifier", batch_size=0).fit(c.X, c.Y), ValueError,
         r"batch_size", needs=_EST),
    Case("MLPClassifier batchnorm batch_size 1", lambda c: _mlp("MLPClassifier", batchnorm=True,
                                                                 batch_size=1).fit(c.X, c.Y),
         ValueError, r"more than 1 row per batch, got batch_size=1", needs=_EST),
    Case("MLPClassifier momentum 1", lambda c: _mlp("MLPClassifier", solver="sgd", momentum=1.0).fit(c.X, c.Y),
         ValueError, r"momentum", needs=_EST),
    Case("MLPClassifier dropout 1", lambda c: _mlp("MLPClassifier", dropout=1.0).fit(c.X, c.Y), ValueError,
         r"dropout", needs=_EST),
    Case("MLPClassifier epsilon 0", lambda c: _mlp("MLPClassifier", epsilon=0.0).fit(c.X, c.Y), ValueError,
         r"epsilon", needs=_EST),
    Case("MLPClassifier hidden size 0", lambda c: _mlp("MLPClassifier", hidden_layer_sizes=(0,)).fit(c.X, c.Y),
         ValueError, r"hidden_layer_sizes", needs=_EST),
    Case("MLPClassifier X/y lengths", lambda c: _mlp("MLPClassifier").fit(c.X, c.Y[:10]), ValueError,
         r"inconsistent numbers of samples", needs=_EST),
    Case("MLPClassifier X NaN", lambda c: _mlp("MLPClassifier").fit(np.where(c.X > 1, np.nan, c.X), c.Y), ValueError,
         r"X contains NaN", needs=_EST),
    Case("MLPClassifier one class", lambda c: _mlp("MLPClassifier").fit(c.X, np.zeros(len(c.X), int)), ValueError,
         r"at least 2 classes", needs=_EST),
    Case("MLPClassifier predict features", lambda c: _mlp("MLPClassifier").fit(c.X, c.Y).predict(c.X[:, :3]),
         ValueError, r"3 features", needs=_EST),
    Case("MLPRegressor y NaN", lambda c: _mlp("MLPRegressor").fit(c.X, np.where(c.Y > 1, np.nan, c.Y)), ValueError,
         r"y contains NaN", needs=_EST),
    # ---- search configuration -----------------------------------------------------------------------
    Case("search loguniform lo <= 0", lambda c: _mod(_SEARCH).loguniform(0.0, 1.0), ValueError, r"loguniform",
         needs=_SEARCH),
    Case("search uniform NaN", lambda c: _mod(_SEARCH).uniform(0.0, float("nan")), ValueError, r"hi", needs=_SEARCH),
    Case("search choice empty", lambda c: _mod(_SEARCH).choice([]), ValueError, r"choice", needs=_SEARCH),
    Case("search spec is code", lambda c: _mod(_SEARCH).parse_dist("__import__('os').system('true')", "lr"),
         ValueError, r"hyperparameter 'lr'", needs=_SEARCH),
    Case("search stages (0 trials)", lambda c: _mod(_SEARCH).Search({"lr": _LR}, c.tmp / "run", stages=[(0, 3)]),
         ValueError, r"stages", needs=_SEARCH),
    Case("search keep 1.5", lambda c: _mod(_SEARCH).Search({"lr": _LR}, c.tmp / "run", keep=1.5), ValueError,
         r"keep", needs=_SEARCH),
    Case("search workers 0", lambda c: _mod(_SEARCH).Search({"lr": _LR}, c.tmp / "run", workers=0), ValueError,
         r"workers", needs=_SEARCH),
    Case("search unknown hyperparameter", lambda c: _mod(_SEARCH).Search({"colour": "uniform(0, 1)"}, c.tmp / "run"),
         ValueError, r"unknown hyperparameters \['colour'\]", needs=_SEARCH),
    Case("search config not TOML", lambda c: _mod(_SEARCH).load_config(_cfg(c, "[space\nlr = 1")), ValueError,
         r"search.toml: not valid TOML", needs=_SEARCH),
    Case("search config unknown section", lambda c: _mod(_SEARCH).load_config(_cfg(
        c, f"[space]\nlr = '{_LR}'\n[evil]\nx = 1")), ValueError, r"unknown sections \['evil'\]", needs=_SEARCH),
]


def _ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


def test_the_table_is_large_and_names_are_unique():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_bad_input_raises_a_clear_exception(case: Case, ctx: Ctx):
    if case.needs is not None:
        pytest.importorskip(case.needs, reason=f"{case.needs} is not part of this build")
    with pytest.raises(case.exc, match=case.match):
        case.call(ctx)


def test_loss_hyperparameters_given_positionally_are_not_silently_dropped():
    """SoftmaxCrossEntropy(0.1) once set the loss's *kind* to 0.1 and trained without smoothing."""
    ls = fastnn.losses.SoftmaxCrossEntropy(0.1)
    assert ls.kind == "softmax" and ls.label_smoothing == 0.1 and ls.spec()["label_smoothing"] == 0.1
    svm = fastnn.losses.MulticlassSVM(2.0)
    assert svm.kind == "svm" and svm.margin == 2.0
    x = np.random.default_rng(0).standard_normal((6, 3))
    y = np.arange(6) % 3
    m = fastnn.Sequential([Dense(3, 3, bias=False)], loss=fastnn.losses.SoftmaxCrossEntropy(0.1), dtype=np.float64)
    m.set_weights({"0.weight": np.eye(3)})
    assert m.evaluate(x, y)["loss"] == pytest.approx(F.softmax_loss(x, y, label_smoothing=0.1)[0], rel=1e-12)
