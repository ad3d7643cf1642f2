"""Parity with PyTorch: the same weights give the same loss and gradients (float64, every layer
kind and loss that PyTorch has), the optimizers follow torch.optim's trajectories (float32 and
float64, 20 steps), the conventions that differ are pinned down explicitly (label smoothing,
multiclass SVM normalisation, CS231n momentum under a changing learning rate) and state dicts
round-trip between the two libraries.

Skipped when torch is not installed (CI installs torch==2.13.0).
"""

from __future__ import annotations

import fastnn
import fastnn.io
import numpy as np
import pytest
from fastnn import losses, optim
from fastnn.layers import ELU, BatchNorm, Dense, Dropout, LeakyReLU, PReLU, ReLU, Sigmoid, Tanh

torch = pytest.importorskip("torch", reason="PyTorch parity tests need torch (CI installs torch==2.13.0)")
F = torch.nn.functional

D, H, C = 10, 16, 5  # input features, hidden width, outputs
N = 48  # rows of the gradient-parity batches

# float64 gradients: both libraries compute the same formulas, differing only in summation order
# (a few hundred terms per dot product), i.e. ~1e-14 relative; 1e-10 still catches any formula slip.
RTOL64 = 1e-10


@pytest.fixture(autouse=True)
def _torch_one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def assert_close(actual, desired, rtol, what="", atol=0.0):
    """max |actual - desired| <= rtol * max |desired| + atol (relative to the tensor's scale, so that
    entries that cancel to ~0 are not held to an impossible elementwise relative bound; ``atol`` is
    for tensors that are analytically zero and hold only rounding noise)."""
    a = np.asarray(actual, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    assert a.shape == d.shape, f"{what}: shapes {a.shape} vs {d.shape}"
    scale = max(float(np.max(np.abs(d), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(a - d), initial=0.0))
    assert err <= rtol * scale + atol, (f"{what}: max abs diff {err:.3e} > {rtol:g} * {scale:.3e} + {atol:.1e} "
                                        f"(rel {err / scale:.3e})")


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def randomise(model: fastnn.Sequential, seed: int, running_stats: bool = False) -> None:
    """Non-trivial values for what initialisation sets to constants (biases, batch-norm scale and
    shift, PReLU slopes; running statistics on request), so every gradient path is exercised."""
    rng = np.random.default_rng(seed)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense) and layer.bias:
            model.params[f"{i}.bias"][...] = rng.normal(0.0, 0.1, layer.out_features)
        elif isinstance(layer, BatchNorm):
            if layer.affine:
                w = model.params[f"{i}.weight"]
                w[...] = rng.uniform(0.5, 1.5, w.shape)
                model.params[f"{i}.bias"][...] = rng.normal(0.0, 0.2, w.shape)
            if running_stats:
                rm = model.buffers[f"{i}.running_mean"]
                rm[...] = rng.normal(0.0, 0.3, rm.shape)
                model.buffers[f"{i}.running_var"][...] = rng.uniform(0.5, 2.0, rm.shape)
        elif isinstance(layer, PReLU):
            w = model.params[f"{i}.weight"]
            w[...] = rng.uniform(0.05, 0.4, w.shape)


def data(n: int, seed: int, loss: str = "softmax", classes: int = C):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n, D))
    if loss == "mse":
        y = rng.normal(0.0, 1.0, (n, classes))
    else:
        y = rng.integers(0, classes, n)
    return X, y


def torch_l2(model: fastnn.Sequential, tmodel, l2: float):
    """fastnn's model-level penalty 0.5 * l2 * |W|^2, over the weights of Dense layers with decay=True."""
    total = 0.0
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense) and layer.decay:
            total = total + 0.5 * l2 * (tmodel[i].weight ** 2).sum()
    return total


def torch_data_loss(kind: str, out, y, *, smoothing: float = 0.0, margin: float = 1.0):
    """The torch loss that equals fastnn's ``kind`` (conventions mapped, see the explicit tests below)."""
    if kind == "softmax":
        return F.cross_entropy(out, y, label_smoothing=smoothing)
    if kind == "svm":
        # fastnn sums the hinge over j != y; MultiMarginLoss also divides by the number of classes
        return out.shape[1] * F.multi_margin_loss(out, y, p=1, margin=margin)
    if kind == "mse":
        return F.mse_loss(out, y)
    raise ValueError(kind)


def torch_loss_and_grad(model, tmodel, X, y, kind, *, l2=0.0, smoothing=0.0, margin=1.0):
    """Loss and gradients of the torch twin, with fastnn's names and layouts."""
    tmodel.zero_grad(set_to_none=True)
    dt = torch.float64 if model.dtype == np.float64 else torch.float32
    xt = torch.from_numpy(np.asarray(X, dtype=model.dtype))
    yt = torch.from_numpy(np.asarray(y)).to(dt) if kind == "mse" else torch.from_numpy(np.asarray(y, dtype=np.int64))
    loss = torch_data_loss(kind, tmodel(xt), yt, smoothing=smoothing, margin=margin) + torch_l2(model, tmodel, l2)
    loss.backward()
    grads = {}
    for name, p in tmodel.named_parameters():
        g = p.grad.detach().numpy()
        i = int(name.partition(".")[0])
        grads[name] = g.T if isinstance(model.layers[i], Dense) and name.endswith(".weight") else g
    return float(loss.item()), grads


def compare_loss_and_grad(model, X, y, kind, *, l2=0.0, smoothing=0.0, margin=1.0, train=True, rtol=RTOL64):
    tmodel = model.to_torch()
    tmodel.train(train)
    loss_f, grads_f = model.loss_and_grad(X, y, train=train)
    loss_t, grads_t = torch_loss_and_grad(model, tmodel, X, y, kind, l2=l2, smoothing=smoothing, margin=margin)
    assert set(grads_f) == set(grads_t)
    assert_close(loss_f, loss_t, rtol, "loss")
    # a Dense bias right before a batch norm has an analytically zero gradient: both libraries give
    # rounding noise (~1e-17) there, so allow an absolute 1e-13 of the model's largest gradient entry
    atol = 1e-13 * max(float(np.max(np.abs(g))) for g in grads_t.values())
    for name in grads_t:
        assert_close(grads_f[name], grads_t[name], rtol, f"grad {name}", atol=atol)
    return loss_f, loss_t


# ----------------------------------------------------------------------------------------------
# 1. same weights -> same loss and gradients (float64)
# ----------------------------------------------------------------------------------------------
ARCHS = {
    # bias=False and decay=False (no L2 on that weight) are covered along the way
    "relu-leaky": lambda out: [Dense(D, H), ReLU(), Dense(H, H, bias=False), LeakyReLU(0.1), Dense(H, out)],
    "prelu-shared-and-per-feature": lambda out: [Dense(D, H), PReLU(), Dense(H, H), PReLU(H, init=0.1),
                                                 Dense(H, out)],
    "elu-tanh-sigmoid": lambda out: [Dense(D, H), ELU(0.7), Dense(H, H), Tanh(), Dense(H, H, decay=False),
                                     Sigmoid(), Dense(H, out)],
    # training-mode batch norm (batch statistics), first layer included; Dropout(p=0) is the identity
    "batchnorm": lambda out: [BatchNorm(D), Dense(D, H), BatchNorm(), ReLU(), Dropout(0.0), Dense(H, H),
                              BatchNorm(affine=False, eps=1e-3), Tanh(), Dense(H, out)],
}

LOSSES = {
    "softmax": (lambda: "softmax", {}),
    # fastnn eps' = 0.2 is torch's label_smoothing = 0.2 * C / (C - 1) (see test_label_smoothing_convention)
    "softmax-smoothed": (lambda: losses.SoftmaxCrossEntropy(label_smoothing=0.2), {"smoothing": 0.2 * C / (C - 1)}),
    "svm": (lambda: "svm", {}),
    "svm-margin-0.5": (lambda: losses.MulticlassSVM(margin=0.5), {"margin": 0.5}),
    "mse": (lambda: "mse", {}),
}


@pytest.mark.parametrize("l2", [0.0, 0.03])
@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_loss_and_grad_match_torch(arch, loss_name, l2):
    make_loss, torch_kw = LOSSES[loss_name]
    loss = make_loss()
    kind = loss if isinstance(loss, str) else loss.kind
    seed = 7 + 13 * list(ARCHS).index(arch) + list(LOSSES).index(loss_name)
    model = fastnn.Sequential(ARCHS[arch](C), loss=loss, l2=l2, dtype=np.float64, seed=seed)
    randomise(model, seed)
    X, y = data(N, seed, kind)
    loss_f, _ = compare_loss_and_grad(model, X, y, kind, l2=l2, **torch_kw)
    assert np.isfinite(loss_f) and loss_f > 0


@pytest.mark.parametrize("loss_name", ["softmax", "svm", "mse"])
def test_eval_mode_forward_and_loss_match_torch(loss_name):
    """Evaluation mode: batch norm on its running statistics, Dropout the identity in both libraries."""
    layers = [Dense(D, H), BatchNorm(), ReLU(), Dropout(0.5), Dense(H, H), PReLU(H), Dropout(0.3), Dense(H, C)]
    model = fastnn.Sequential(layers, loss=loss_name, l2=0.01, dtype=np.float64, seed=3)
    randomise(model, 3, running_stats=True)
    X, y = data(N, 4, loss_name)
    tmodel = model.to_torch().eval()
    with torch.no_grad():
        out_t = tmodel(torch.from_numpy(X))
        yt = torch.from_numpy(y)
        loss_t = torch_data_loss(loss_name, out_t, yt).item()
        penalty = float(torch_l2(model, tmodel, 0.01))
    assert_close(model.forward(X), out_t.numpy(), 1e-12, "eval forward")
    assert_close(model.evaluate(X, y)["loss"], loss_t, RTOL64, "evaluate() loss")
    loss_f, _ = model.loss_and_grad(X, y, train=False)
    assert_close(loss_f, loss_t + penalty, RTOL64, "loss_and_grad(train=False) loss")


# loss_and_grad(train=False) promises gradients in evaluation mode (running statistics, no dropout).
# These two tests isolate the layer whose evaluation-mode backward is checked: the evaluation forward
# must be matched by an evaluation backward (Dropout: the identity; BatchNorm: the affine map with the
# running statistics), not by the training-mode backward with masks/batch statistics never computed.
def test_eval_mode_grads_match_torch_dropout():
    model = fastnn.Sequential([Dense(D, H), ReLU(), Dropout(0.5), Dense(H, C)], dtype=np.float64, seed=5)
    randomise(model, 5)
    X, y = data(N, 6)
    compare_loss_and_grad(model, X, y, "softmax", train=False)


def test_eval_mode_grads_match_torch_batchnorm():
    model = fastnn.Sequential([Dense(D, H), BatchNorm(), ReLU(), Dense(H, C)], dtype=np.float64, seed=8)
    randomise(model, 8, running_stats=True)
    X, y = data(N, 9)
    compare_loss_and_grad(model, X, y, "softmax", train=False)


def test_label_smoothing_convention():
    # fastnn's smoothed target is 1 - eps on the true class and eps / (C - 1) on each other class;
    # torch's CrossEntropyLoss(label_smoothing=e) is (1 - e) one-hot + e / C on every class, i.e.
    # 1 - e + e / C on the true class and e / C elsewhere. The two agree when e / C = eps / (C - 1),
    # i.e. torch's e = eps * C / (C - 1), equivalently fastnn eps' = e * (C - 1) / C.
    e = 0.3
    eps_fast = e * (C - 1) / C
    model = fastnn.Sequential([Dense(D, C)], loss=losses.SoftmaxCrossEntropy(label_smoothing=eps_fast),
                              dtype=np.float64, seed=11)
    randomise(model, 11)
    X, y = data(N, 12)
    compare_loss_and_grad(model, X, y, "softmax", smoothing=e)
    # the same number means different targets in the two libraries
    same = fastnn.Sequential([Dense(D, C)], loss=losses.SoftmaxCrossEntropy(label_smoothing=e), dtype=np.float64,
                             seed=11)
    same.set_weights(model.get_weights())
    _, grads_same = same.loss_and_grad(X, y)
    _, grads_t = torch_loss_and_grad(same, same.to_torch(), X, y, "softmax", smoothing=e)
    assert rel_diff(grads_same["0.weight"], grads_t["0.weight"]) > 1e-2


def test_multiclass_svm_convention():
    # fastnn: Weston-Watkins L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + margin), averaged over rows.
    # torch.nn.MultiMarginLoss(p=1, margin) = sum_{j != y_i} max(0, margin - s_{y_i} + s_j) / C,
    # averaged over rows: it also divides by the number of classes, so fastnn = C * torch.
    model = fastnn.Sequential([Dense(D, C)], loss="svm", dtype=np.float64, seed=21)
    randomise(model, 21)
    X, y = data(N, 22)
    loss_f, grads_f = model.loss_and_grad(X, y)
    tmodel = model.to_torch()
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    loss_t = torch.nn.MultiMarginLoss(p=1, margin=1.0)(tmodel(xt), yt)
    loss_t.backward()
    assert_close(loss_f, C * loss_t.item(), RTOL64, "svm loss")
    assert_close(grads_f["0.weight"], C * tmodel[0].weight.grad.numpy().T, RTOL64, "svm grad 0.weight")
    assert_close(grads_f["0.bias"], C * tmodel[0].bias.grad.numpy(), RTOL64, "svm grad 0.bias")
    # and an independent NumPy statement of the formula
    s = X @ model.params["0.weight"] + model.params["0.bias"]
    m = np.maximum(0.0, s - s[np.arange(N), y][:, None] + 1.0)
    m[np.arange(N), y] = 0.0
    assert_close(loss_f, m.sum(axis=1).mean(), RTOL64, "svm loss (NumPy)")


def test_mse_convention():
    # fastnn's MSE is the mean over every element (N * outputs), like torch.nn.MSELoss() (reduction
    # "mean"), not the CS231n 0.5 * sum / N.
    model = fastnn.Sequential([Dense(D, H), Tanh(), Dense(H, 3)], loss="mse", dtype=np.float64, seed=31)
    randomise(model, 31)
    X, y = data(N, 32, "mse", classes=3)
    loss_f, _ = compare_loss_and_grad(model, X, y, "mse")
    tmodel = model.to_torch()
    with torch.no_grad():
        pred = tmodel(torch.from_numpy(X)).numpy()
    assert_close(loss_f, np.mean((pred - y) ** 2), RTOL64, "mse (NumPy)")
    assert_close(loss_f, torch.nn.MSELoss()(torch.from_numpy(pred), torch.from_numpy(y)).item(), RTOL64, "MSELoss")


def test_batchnorm_running_stats_follow_torch_momentum():
    # fastnn's BatchNorm(momentum=m) uses torch's convention, running = (1 - m) * running + m * batch
    # (CS231n's momentum is 1 - m), and both update running_var with the unbiased batch variance
    # (n / (n - 1)) while normalising with the biased one.
    layers = [BatchNorm(D, momentum=0.3), Dense(D, H), BatchNorm(momentum=0.1), ReLU(), Dense(H, C)]
    model = fastnn.Sequential(layers, dtype=np.float64, seed=41)
    randomise(model, 41, running_stats=True)
    tmodel = model.to_torch().train()
    opt = optim.SGD(lr=0.0)  # training-mode forward passes that leave the weights as they are
    rng = np.random.default_rng(42)
    for _ in range(4):
        xb = rng.normal(0.5, 2.0, (20, D))
        yb = rng.integers(0, C, 20)
        model.train_step(xb, yb, opt)
        with torch.no_grad():
            tmodel(torch.from_numpy(xb))
    for i in (0, 2):
        assert_close(model.buffers[f"{i}.running_mean"], tmodel[i].running_mean.numpy(), RTOL64, f"{i}.running_mean")
        assert_close(model.buffers[f"{i}.running_var"], tmodel[i].running_var.numpy(), RTOL64, f"{i}.running_var")
    # an independent NumPy statement for the first layer after one more batch: unbiased variance
    rm0, rv0 = model.buffers["0.running_mean"].copy(), model.buffers["0.running_var"].copy()
    xb = rng.normal(-0.5, 1.5, (6, D))
    model.train_step(xb, rng.integers(0, C, 6), opt)
    assert_close(model.buffers["0.running_mean"], 0.7 * rm0 + 0.3 * xb.mean(axis=0), RTOL64, "running_mean (NumPy)")
    assert_close(model.buffers["0.running_var"], 0.7 * rv0 + 0.3 * xb.var(axis=0, ddof=1), RTOL64,
                 "running_var (NumPy, unbiased)")


# ----------------------------------------------------------------------------------------------
# 2. optimizer trajectories: same initial weights, same batches, 20 steps
# ----------------------------------------------------------------------------------------------
STEPS, BATCH, ROWS = 20, 32, 160


def traj_layers():
    # no bias on the Dense before batch norm: its gradient is analytically zero, pure rounding noise
    # that the adaptive methods (Adam, RMSProp, Rprop, ...) would blow up into steps of size lr
    return [Dense(D, H, bias=False), BatchNorm(), ReLU(), Dense(H, H), Tanh(), Dense(H, H), PReLU(), Dense(H, C)]


def decay_groups(model, tmodel):
    """torch parameters split as fastnn decays them: Dense weights (decay=True) vs everything else."""
    decay, rest = [], []
    for name, p in tmodel.named_parameters():
        layer = model.layers[int(name.partition(".")[0])]
        (decay if isinstance(layer, Dense) and layer.decay and name.endswith(".weight") else rest).append(p)
    return decay, rest


OPTIMIZERS = {
    "sgd": (lambda: optim.SGD(lr=0.1), lambda d, r: torch.optim.SGD(d + r, lr=0.1)),
    # fastnn's CS231n momentum v = mu v - lr g; w += v equals torch's buf = mu buf + g; w -= lr buf
    # at a constant learning rate (v = -lr buf), see test_momentum_with_changing_lr for the difference
    "momentum": (lambda: optim.SGD(lr=0.05, momentum=0.9), lambda d, r: torch.optim.SGD(d + r, lr=0.05, momentum=0.9)),
    # CS231n Nesterov w += -mu v_prev + (1 + mu) v equals torch's nesterov=True step w -= lr (g + mu buf)
    "nesterov": (lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
                 lambda d, r: torch.optim.SGD(d + r, lr=0.05, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: optim.Adagrad(lr=0.05, eps=1e-8),
                lambda d, r: torch.optim.Adagrad(d + r, lr=0.05, eps=1e-8, initial_accumulator_value=0.0)),
    "rmsprop": (lambda: optim.RMSProp(lr=0.005, decay=0.9, eps=1e-8),
                lambda d, r: torch.optim.RMSprop(d + r, lr=0.005, alpha=0.9, eps=1e-8)),
    "adam": (lambda: optim.Adam(lr=0.01, betas=(0.9, 0.99), eps=1e-8),
             lambda d, r: torch.optim.Adam(d + r, lr=0.01, betas=(0.9, 0.99), eps=1e-8)),
    # fastnn's AdamW decays Dense weights only: torch gets two parameter groups
    "adamw": (lambda: optim.AdamW(lr=0.01, weight_decay=0.5),
              lambda d, r: torch.optim.AdamW([{"params": d, "weight_decay": 0.5}, {"params": r, "weight_decay": 0.0}],
                                             lr=0.01)),
    "adadelta": (lambda: optim.Adadelta(lr=1.0, rho=0.9, eps=1e-6),
                 lambda d, r: torch.optim.Adadelta(d + r, lr=1.0, rho=0.9, eps=1e-6)),
    # full batch: every step sees the whole data set
    "rprop": (lambda: optim.Rprop(lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)),
              lambda d, r: torch.optim.Rprop(d + r, lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0))),
}

# float32: both libraries round every operation to ~6e-8 but in different orders (GEMM blocking,
# reductions), so per-step gradients differ by ~1e-7 relative; over these 20 steps the weights drift
# apart by at most ~2e-6 (measured: 3e-7..5e-7 for most optimizers, 2e-6 for AdamW), so 1e-4 leaves a
# 50x margin for other CPUs/BLAS kernels, while gross convention slips (AdamW decaying biases,
# centered RMSprop, SGD dampening, Adadelta eps 1e-5) move the weights by 5e-2..2e-1. Small slips
# (torch's default Adagrad eps 1e-10 instead of 1e-8: 9e-6; Adam eps 1e-7: 2e-5) hide under the
# float32 tolerance, hence the float64 runs: there the drift is ~5e-15 and 1e-10 catches them too.
TRAJ_RTOL = {np.float32: 1e-4, np.float64: 1e-10}


def batches(full_batch: bool):
    X, y = data(ROWS, 101)
    for s in range(STEPS):
        if full_batch:
            yield X, y
        else:
            k = s % (ROWS // BATCH)
            yield X[k * BATCH:(k + 1) * BATCH], y[k * BATCH:(k + 1) * BATCH]


def torch_train_step(model, tmodel, topt, xb, yb, l2):
    topt.zero_grad(set_to_none=True)
    out = tmodel(torch.from_numpy(np.ascontiguousarray(xb, dtype=model.dtype)))
    loss = F.cross_entropy(out, torch.from_numpy(yb)) + torch_l2(model, tmodel, l2)
    loss.backward()
    topt.step()
    return float(loss.item())


def assert_same_state(model, tmodel, rtol, what):
    ours = model.to_torch_state_dict()
    theirs = tmodel.state_dict()
    assert list(ours) == list(theirs)
    for k, v in theirs.items():
        if not k.endswith("num_batches_tracked"):
            assert_close(ours[k], v.numpy(), rtol, f"{what}: {k}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_trajectory_matches_torch(name, l2, dtype):
    make_fast, make_torch = OPTIMIZERS[name]
    opt = make_fast()
    model = fastnn.Sequential(traj_layers(), input_dim=D, l2=l2, dtype=dtype, seed=55)
    randomise(model, 56)
    tmodel = model.to_torch().train()
    topt = make_torch(*decay_groups(model, tmodel))
    rtol = TRAJ_RTOL[dtype]
    for s, (xb, yb) in enumerate(batches(opt.full_batch)):
        loss_f = model.train_step(xb, yb, opt)
        loss_t = torch_train_step(model, tmodel, topt, xb, yb, l2)
        assert_close(loss_f, loss_t, rtol, f"step {s} loss")
        assert_same_state(model, tmodel, rtol, f"{name} after step {s + 1}")
    assert model.step == STEPS
    # the weights did move (a trajectory that stays put would prove nothing)
    start = fastnn.Sequential(traj_layers(), input_dim=D, dtype=dtype, seed=55)
    randomise(start, 56)
    assert rel_diff(model.params["0.weight"], start.params["0.weight"]) > 10 * rtol


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_momentum_with_changing_lr(nesterov):
    # fastnn keeps the CS231n velocity v = mu v - lr_t g (w += v), torch keeps buf = mu buf + g and
    # steps w -= lr_t buf. At a constant learning rate v = -lr buf and the steps coincide (asserted in
    # test_optimizer_trajectory_matches_torch). When the learning rate changes, fastnn's velocity still
    # carries the gradients scaled by the learning rate *at the time they were accumulated*, whereas
    # torch rescales its whole history by the new rate. Rescaling torch's buffer by lr_old / lr_new at
    # each change turns torch's update into fastnn's exactly (-v_t / lr_t obeys torch's recursion with
    # mu replaced by mu * lr_{t-1} / lr_t), which pins the difference down to this one convention.
    lrs = [0.1] * 5 + [0.02] * 5 + [0.05] * 10
    mu = 0.9
    runs = {}
    for rescale in (False, True):
        model = fastnn.Sequential(traj_layers(), input_dim=D, dtype=np.float64, seed=60)
        randomise(model, 61)
        opt = optim.SGD(lr=0.1, momentum=mu, nesterov=nesterov)
        tmodel = model.to_torch().train()
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=mu, nesterov=nesterov)
        prev = lrs[0]
        for lr, (xb, yb) in zip(lrs, batches(False), strict=True):
            for group in topt.param_groups:
                group["lr"] = lr
            if rescale and lr != prev:
                for p in tmodel.parameters():
                    buf = topt.state[p].get("momentum_buffer")
                    if buf is not None:
                        buf.mul_(prev / lr)
            prev = lr
            model.train_step(xb, yb, opt, lr=lr)
            torch_train_step(model, tmodel, topt, xb, yb, 0.0)
        runs[rescale] = (model, tmodel)
    model, tmodel = runs[False]
    diffs = [rel_diff(model.to_torch_state_dict()[k], v.numpy()) for k, v in tmodel.state_dict().items()
             if not k.endswith("num_batches_tracked")]
    assert max(diffs) > 1e-3, "with a changing learning rate the two momentum conventions should differ"
    model, tmodel = runs[True]
    assert_same_state(model, tmodel, TRAJ_RTOL[np.float64], "torch with its buffer rescaled at lr changes")


# ----------------------------------------------------------------------------------------------
# 3. export / import
# ----------------------------------------------------------------------------------------------
def every_layer():
    return [BatchNorm(D), Dense(D, H), BatchNorm(momentum=0.2, eps=1e-3), ReLU(), Dropout(0.25),
            Dense(H, H, bias=False), LeakyReLU(0.2), Dense(H, H), PReLU(), Dense(H, H), PReLU(H, init=0.1),
            Dense(H, H), ELU(0.5), Dense(H, H), Tanh(), Dense(H, H), BatchNorm(affine=False), Sigmoid(), Dense(H, C)]


def torch_every_layer(dtype):
    nn = torch.nn
    return nn.Sequential(nn.BatchNorm1d(D), nn.Linear(D, H), nn.BatchNorm1d(H, eps=1e-3, momentum=0.2), nn.ReLU(),
                         nn.Dropout(0.25), nn.Linear(H, H, bias=False), nn.LeakyReLU(0.2), nn.Linear(H, H),
                         nn.PReLU(), nn.Linear(H, H), nn.PReLU(H, init=0.1), nn.Linear(H, H), nn.ELU(0.5),
                         nn.Linear(H, H), nn.Tanh(), nn.Linear(H, H), nn.BatchNorm1d(H, affine=False), nn.Sigmoid(),
                         nn.Linear(H, C)).to(dtype)


def randomise_torch(module, seed):
    """Random weights and running statistics for a torch module (its init leaves BN/PReLU constant)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in module.state_dict().items():
            if k.endswith("num_batches_tracked"):
                v.fill_(3)
            elif k.endswith("running_var"):
                v.copy_(0.5 + 1.5 * torch.rand(v.shape, generator=gen, dtype=v.dtype))
            else:
                v.copy_(0.4 * torch.randn(v.shape, generator=gen, dtype=v.dtype))
    return module


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_state_dict_names_and_shapes_match_torch(dtype):
    model = fastnn.Sequential(every_layer(), dtype=dtype, seed=70)
    randomise(model, 71, running_stats=True)
    ours = model.to_torch_state_dict()
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    # an independently written torch twin (not model.to_torch()): same names, order, shapes, dtypes
    theirs = torch_every_layer(tdt).state_dict()
    assert list(ours) == list(theirs)
    for k, v in theirs.items():
        assert ours[k].shape == tuple(v.shape), k
        if k.endswith("num_batches_tracked"):
            assert ours[k].dtype == np.int64  # its value is fastnn's step counter; torch counts forward passes
        else:
            assert ours[k].dtype == dtype, k
    # and model.to_torch() carries exactly these values
    twin = model.to_torch().state_dict()
    assert list(twin) == list(ours)
    for k, v in twin.items():
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(v.numpy(), ours[k], err_msg=k)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            np.testing.assert_array_equal(ours[f"{i}.weight"], model.params[f"{i}.weight"].T)


def test_from_torch_forward_matches_torch():
    tmodule = randomise_torch(torch_every_layer(torch.float64), 80).eval()
    model = fastnn.io.from_torch(tmodule)
    assert model.dtype == np.float64
    assert [type(lay).__name__ for lay in model.layers] == [
        "BatchNorm", "Dense", "BatchNorm", "ReLU", "Dropout", "Dense", "LeakyReLU", "Dense", "PReLU", "Dense",
        "PReLU", "Dense", "ELU", "Dense", "Tanh", "Dense", "BatchNorm", "Sigmoid", "Dense"]
    X, _ = data(100, 81)
    with torch.no_grad():
        out_t = tmodule(torch.from_numpy(X)).numpy()
    assert_close(model.forward(X), out_t, 1e-12, "from_torch forward (eval)")
    # hyperparameters that the weights do not carry came across too
    assert model.layers[2].eps == 1e-3 and model.layers[2].momentum == 0.2
    assert model.layers[6].negative_slope == 0.2 and model.layers[12].alpha == 0.5
    assert model.layers[4].p == 0.25 and not model.layers[16].affine


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_load_torch_state_dict_round_trips_bit_exactly(dtype):
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    tmodule = randomise_torch(torch_every_layer(tdt), 90)
    model = fastnn.Sequential(every_layer(), dtype=dtype, seed=91)
    model.load_torch_state_dict(tmodule.state_dict())
    ours = model.to_torch_state_dict()
    for k, v in tmodule.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(ours[k], v.numpy(), err_msg=k)
    # and back into a fresh torch module
    back = torch_every_layer(tdt)
    back.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ours.items()})
    for k, v in tmodule.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(back.state_dict()[k], v), k
    # a torch -> fastnn -> torch model computes what the original did, bit for bit in eval mode
    X, _ = data(64, 92)
    xt = torch.from_numpy(X.astype(dtype))
    with torch.no_grad():
        assert torch.equal(back.eval()(xt), tmodule.eval()(xt))
