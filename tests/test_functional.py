"""The CS231n-compatible functional API: the assignment notebooks' published reference values and
checks, reproduced to the notebooks' tolerances, plus the dict and cache conventions."""

from __future__ import annotations

import fastnn.functional as F
import numpy as np
import pytest


def rel_error(x, y):
    """The notebooks' relative error."""
    return np.max(np.abs(x - y) / (np.maximum(1e-8, np.abs(x) + np.abs(y))))


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """CS231n's numeric gradient of f(x) contracted with df (copying f's output each time)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), copy=True)
        x[ix] = old - h
        neg = np.array(f(x), copy=True)
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def eval_numerical_gradient(f, x, h=1e-5):
    """CS231n's numeric gradient of a scalar function."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fp = f(x)
        x[ix] = old - h
        fm = f(x)
        x[ix] = old
        grad[ix] = (fp - fm) / (2 * h)
        it.iternext()
    return grad


# ----------------------------------------------------------------------------------------------
# Published notebook values
# ----------------------------------------------------------------------------------------------


def test_affine_forward_notebook_value():
    num_inputs, input_shape, output_dim = 2, (4, 5, 6), 3
    input_size = num_inputs * np.prod(input_shape)
    weight_size = output_dim * np.prod(input_shape)
    x = np.linspace(-0.1, 0.5, num=input_size).reshape(num_inputs, *input_shape)
    w = np.linspace(-0.2, 0.3, num=weight_size).reshape(np.prod(input_shape), output_dim)
    b = np.linspace(-0.3, 0.1, num=output_dim)
    out, _ = F.affine_forward(x, w, b)
    correct_out = np.array([[1.49834967, 1.70660132, 1.91485297],
                            [3.25553199, 3.5141327, 3.77273342]])
    assert out.dtype == np.float64
    assert rel_error(out, correct_out) < 1e-9  # notebook: "around e-9 or less"


def test_relu_forward_notebook_value():
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    out, _ = F.relu_forward(x)
    correct_out = np.array([[0., 0., 0., 0.],
                            [0., 0., 0.04545455, 0.13636364],
                            [0.22727273, 0.31818182, 0.40909091, 0.5]])
    assert rel_error(out, correct_out) < 5e-8  # notebook: "around 5e-8"


N_, D_ = 4, 5


def _wdw():
    w = np.linspace(-0.4, 0.6, num=N_ * D_).reshape(N_, D_)
    dw = np.linspace(-0.6, 0.4, num=N_ * D_).reshape(N_, D_)
    return w, dw


def test_sgd_momentum_notebook_value():
    w, dw = _wdw()
    v = np.linspace(0.6, 0.9, num=N_ * D_).reshape(N_, D_)
    config = {"learning_rate": 1e-3, "velocity": v}
    next_w, _ = F.sgd_momentum(w, dw, config=config)
    expected_next_w = np.asarray([
        [0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
        [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
        [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
        [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]])
    expected_velocity = np.asarray([
        [0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
        [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
        [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
        [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]])
    assert rel_error(next_w, expected_next_w) < 1e-8
    assert rel_error(expected_velocity, config["velocity"]) < 1e-8


def test_rmsprop_notebook_value():
    w, dw = _wdw()
    cache = np.linspace(0.6, 0.9, num=N_ * D_).reshape(N_, D_)
    config = {"learning_rate": 1e-2, "cache": cache}
    next_w, _ = F.rmsprop(w, dw, config=config)
    expected_next_w = np.asarray([
        [-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
        [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
        [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
        [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]])
    expected_cache = np.asarray([
        [0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
        [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
        [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
        [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]])
    assert rel_error(expected_next_w, next_w) < 1e-7  # notebook: "around e-7 or less"
    assert rel_error(expected_cache, config["cache"]) < 1e-8


def test_adam_notebook_value():
    w, dw = _wdw()
    m = np.linspace(0.6, 0.9, num=N_ * D_).reshape(N_, D_)
    v = np.linspace(0.7, 0.5, num=N_ * D_).reshape(N_, D_)
    config = {"learning_rate": 1e-2, "m": m, "v": v, "t": 5}
    next_w, _ = F.adam(w, dw, config=config)
    expected_next_w = np.asarray([
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]])
    expected_v = np.asarray([
        [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]])
    expected_m = np.asarray([
        [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]])
    # the notebook prints next_w error 1.1395691798535431e-07 ("around e-7 or less"): the
    # expected values carry 8 decimals
    assert rel_error(expected_next_w, next_w) < 2e-7
    assert rel_error(expected_v, config["v"]) < 1e-8
    assert rel_error(expected_m, config["m"]) < 1e-8
    assert config["t"] == 6


def test_batchnorm_training_statistics_notebook_check():
    np.random.seed(231)
    N, D1, D2, D3 = 200, 50, 60, 3
    X = np.random.randn(N, D1)
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    a = np.maximum(0, X.dot(W1)).dot(W2)
    assert np.all(np.abs(a.mean(0)) > 1)  # not normalised before
    a_norm, _ = F.batchnorm_forward(a, np.ones(D3), np.zeros(D3), {"mode": "train"})
    np.testing.assert_allclose(a_norm.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(a_norm.std(0), 1, atol=1e-4)
    gamma = np.asarray([1.0, 2.0, 3.0])
    beta = np.asarray([11.0, 12.0, 13.0])
    a_norm, _ = F.batchnorm_forward(a, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(a_norm.mean(0), beta, atol=1e-10)
    np.testing.assert_allclose(a_norm.std(0), gamma, rtol=1e-4)


def test_batchnorm_test_time_notebook_check():
    np.random.seed(231)
    N, D1, D2, D3 = 200, 50, 60, 3
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    bn_param = {"mode": "train"}
    gamma, beta = np.ones(D3), np.zeros(D3)
    for _ in range(50):
        X = np.random.randn(N, D1)
        a = np.maximum(0, X.dot(W1)).dot(W2)
        F.batchnorm_forward(a, gamma, beta, bn_param)
    bn_param["mode"] = "test"
    X = np.random.randn(N, D1)
    a = np.maximum(0, X.dot(W1)).dot(W2)
    a_norm, _ = F.batchnorm_forward(a, gamma, beta, bn_param)
    # notebook: "means should be close to zero and stds close to one, but noisier"
    assert np.all(np.abs(a_norm.mean(0)) < 0.2)
    assert np.all(np.abs(a_norm.std(0) - 1) < 0.15)


def test_dropout_statistics_notebook_check():
    np.random.seed(231)
    x = np.random.randn(500, 500) + 10
    for p in [0.25, 0.4, 0.7]:
        out, _ = F.dropout_forward(x, {"mode": "train", "p": p})
        out_test, _ = F.dropout_forward(x, {"mode": "test", "p": p})
        assert abs(out.mean() - x.mean()) < 0.05 * x.mean()
        assert abs((out == 0).mean() - (1 - p)) < 0.01
        assert out_test.mean() == x.mean()
        assert (out_test == 0).mean() == 0


# ----------------------------------------------------------------------------------------------
# Gradient checks as the notebooks run them (float64)
# ----------------------------------------------------------------------------------------------


def test_affine_backward_gradient_check():
    np.random.seed(231)
    x = np.random.randn(10, 2, 3)
    w = np.random.randn(6, 5)
    b = np.random.randn(5)
    dout = np.random.randn(10, 5)
    dx_num = eval_numerical_gradient_array(lambda x: F.affine_forward(x, w, b)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda w: F.affine_forward(x, w, b)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda b: F.affine_forward(x, w, b)[0], b, dout)
    _, cache = F.affine_forward(x, w, b)
    dx, dw, db = F.affine_backward(dout, cache)
    assert dx.shape == x.shape
    assert rel_error(dx_num, dx) < 1e-9 and rel_error(dw_num, dw) < 1e-9 and rel_error(db_num, db) < 1e-9


def test_relu_backward_gradient_check():
    np.random.seed(231)
    x = np.random.randn(10, 10)
    dout = np.random.randn(*x.shape)
    dx_num = eval_numerical_gradient_array(lambda x: F.relu_forward(x)[0], x, dout)
    _, cache = F.relu_forward(x)
    # notebook: "around 3e-12" (it prints 3.2756349136310288e-12 for this seed)
    assert rel_error(dx_num, F.relu_backward(dout, cache)) < 1e-11


def test_affine_relu_gradient_check():
    np.random.seed(231)
    x = np.random.randn(2, 3, 4)
    w = np.random.randn(12, 10)
    b = np.random.randn(10)
    dout = np.random.randn(2, 10)
    out, cache = F.affine_relu_forward(x, w, b)
    np.testing.assert_allclose(out, np.maximum(0, x.reshape(2, -1) @ w + b), rtol=1e-13)
    dx, dw, db = F.affine_relu_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda x: F.affine_relu_forward(x, w, b)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda w: F.affine_relu_forward(x, w, b)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda b: F.affine_relu_forward(x, w, b)[0], b, dout)
    assert rel_error(dx_num, dx) < 1e-8 and rel_error(dw_num, dw) < 1e-8 and rel_error(db_num, db) < 1e-8


@pytest.mark.parametrize("backward", [F.batchnorm_backward, F.batchnorm_backward_alt])
def test_batchnorm_backward_gradient_check(backward):
    np.random.seed(231)
    N, D = 4, 5
    x = 5 * np.random.randn(N, D) + 12
    gamma = np.random.randn(D)
    beta = np.random.randn(D)
    dout = np.random.randn(N, D)
    bn_param = {"mode": "train"}

    def fx(x):
        return F.batchnorm_forward(x, gamma, beta, dict(bn_param))[0]

    def fg(a):
        return F.batchnorm_forward(x, a, beta, dict(bn_param))[0]

    def fb(b):
        return F.batchnorm_forward(x, gamma, b, dict(bn_param))[0]

    dx_num = eval_numerical_gradient_array(fx, x, dout)
    da_num = eval_numerical_gradient_array(fg, gamma.copy(), dout)
    db_num = eval_numerical_gradient_array(fb, beta.copy(), dout)
    _, cache = F.batchnorm_forward(x, gamma, beta, bn_param)
    dx, dgamma, dbeta = backward(dout, cache)
    assert rel_error(dx_num, dx) < 1e-8
    assert rel_error(da_num, dgamma) < 1e-10
    assert rel_error(db_num, dbeta) < 1e-10


def test_batchnorm_test_mode_backward_gradient_check():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    bn_param = {"mode": "test", "running_mean": rng.standard_normal(4), "running_var": rng.uniform(0.5, 2, 4)}
    dout = rng.standard_normal((6, 4))
    _, cache = F.batchnorm_forward(x, gamma, beta, bn_param)
    dx, dgamma, dbeta = F.batchnorm_backward(dout, cache)
    def fx(x):
        return F.batchnorm_forward(x, gamma, beta, bn_param)[0]

    def fg(g):
        return F.batchnorm_forward(x, g, beta, bn_param)[0]

    dx_num = eval_numerical_gradient_array(fx, x, dout)
    dg_num = eval_numerical_gradient_array(fg, gamma, dout)
    assert rel_error(dx_num, dx) < 1e-8 and rel_error(dg_num, dgamma) < 1e-8
    np.testing.assert_allclose(dbeta, dout.sum(0))


def test_dropout_backward_gradient_check():
    np.random.seed(231)
    x = np.random.randn(10, 10) + 10
    dout = np.random.randn(*x.shape)
    dropout_param = {"mode": "train", "p": 0.2, "seed": 123}
    out, cache = F.dropout_forward(x, dropout_param)
    dx = F.dropout_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda xx: F.dropout_forward(xx, dropout_param)[0], x, dout)
    assert rel_error(dx, dx_num) < 1e-10  # notebook: "around e-10 or less"


def test_losses_at_chance_and_gradients():
    np.random.seed(231)
    num_classes, num_inputs = 10, 50
    x = 0.001 * np.random.randn(num_inputs, num_classes)
    y = np.random.randint(num_classes, size=num_inputs)
    dx_num = eval_numerical_gradient(lambda x: F.svm_loss(x, y)[0], x, h=1e-5)
    loss, dx = F.svm_loss(x, y)
    assert abs(loss - 9) < 0.02  # notebook: "around 9"
    assert rel_error(dx_num, dx) < 1e-8
    dx_num = eval_numerical_gradient(lambda x: F.softmax_loss(x, y)[0], x, h=1e-5)
    loss, dx = F.softmax_loss(x, y)
    assert abs(loss - np.log(10)) < 0.01  # notebook: "around 2.3"
    assert rel_error(dx_num, dx) < 1e-8


@pytest.mark.parametrize(
    "name,fwd,bwd",
    [
        ("leaky", lambda x: F.leaky_relu_forward(x, 0.05), F.leaky_relu_backward),
        ("elu", lambda x: F.elu_forward(x, 1.3), F.elu_backward),
        ("tanh", F.tanh_forward, F.tanh_backward),
        ("sigmoid", F.sigmoid_forward, F.sigmoid_backward),
    ],
)
def test_activation_gradient_checks(name, fwd, bwd):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 7))
    x[np.abs(x) < 1e-3] = 0.1
    dout = rng.standard_normal(x.shape)
    _, cache = fwd(x)
    dx = bwd(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda x: fwd(x)[0], x, dout)
    assert rel_error(dx_num, dx) < 1e-8


def test_prelu_and_maxout_gradient_checks():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 2, 3))
    x[np.abs(x) < 1e-3] = 0.1
    a = rng.uniform(0.1, 0.3, 6)
    dout = rng.standard_normal(x.shape)
    _, cache = F.prelu_forward(x, a)
    dx, da = F.prelu_backward(dout, cache)
    assert rel_error(eval_numerical_gradient_array(lambda x: F.prelu_forward(x, a)[0], x, dout), dx) < 1e-8
    assert rel_error(eval_numerical_gradient_array(lambda a: F.prelu_forward(x, a)[0], a, dout), da) < 1e-8

    x = rng.standard_normal((4, 12))
    out, cache = F.maxout_forward(x, 3)
    np.testing.assert_array_equal(out, x.reshape(4, 4, 3).max(2))
    dout = rng.standard_normal(out.shape)
    dx = F.maxout_backward(dout, cache)
    assert rel_error(eval_numerical_gradient_array(lambda x: F.maxout_forward(x, 3)[0], x, dout), dx) < 1e-8


# ----------------------------------------------------------------------------------------------
# Conventions: dtypes, dicts, caches, in-place updates
# ----------------------------------------------------------------------------------------------


def test_float32_in_float32_out_everywhere():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    b = np.zeros(4, np.float32)
    out, cache = F.affine_forward(x, w, b)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in F.affine_backward(out, cache))
    for fwd in (F.relu_forward, F.tanh_forward, F.sigmoid_forward, F.elu_forward, F.leaky_relu_forward):
        o, c = fwd(x)
        assert o.dtype == np.float32
    o, c = F.batchnorm_forward(x, np.ones(6, np.float32), np.zeros(6, np.float32), bp := {"mode": "train"})
    assert o.dtype == np.float32 and bp["running_mean"].dtype == np.float32
    assert all(g.dtype == np.float32 for g in F.batchnorm_backward(o, c))
    o, c = F.dropout_forward(x, {"mode": "train", "p": 0.5})
    assert o.dtype == np.float32 and F.dropout_backward(o, c).dtype == np.float32
    loss, dx = F.softmax_loss(x, np.array([0, 1, 2, 3, 4, 5, 0, 1]))
    assert isinstance(loss, float) and dx.dtype == np.float32
    for rule in (F.sgd, F.sgd_momentum, F.nesterov_momentum, F.adagrad, F.rmsprop, F.adam, F.adamw):
        next_w, config = rule(w.copy(), w, None)
        assert next_w.dtype == np.float32
        for k, v in config.items():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32, (rule.__name__, k)


def test_update_rules_update_w_in_place_and_keep_state_in_config():
    w = np.ones((3, 4))
    dw = np.full((3, 4), 0.5)
    next_w, config = F.sgd(w, dw)
    assert next_w is w and config["learning_rate"] == 1e-2
    np.testing.assert_allclose(w, 1 - 0.005)
    w = np.ones((3, 4))
    next_w, config = F.adam(w, dw)
    assert next_w is w and config["t"] == 1 and config["m"].shape == (3, 4)
    next_w, config = F.adam(w, dw, config)
    assert config["t"] == 2


def test_update_rules_never_lose_a_write_to_read_only_or_strided_arrays():
    base = np.ones((4, 6))
    w = base[:, ::2]  # strided: cannot be written in place by the kernel
    dw = np.ones((4, 3))
    next_w, _ = F.sgd(w, dw, {"learning_rate": 0.1})
    np.testing.assert_allclose(next_w, 0.9)
    np.testing.assert_allclose(base, 1.0)  # w untouched; the result is next_w
    v = np.zeros((4, 3))
    v.flags.writeable = False
    config = {"learning_rate": 0.1, "velocity": v}
    next_w, config = F.sgd_momentum(np.ones((4, 3)), dw, config)
    assert config["velocity"] is not v
    np.testing.assert_allclose(config["velocity"], -0.1)  # updated state is in config


def test_state_of_the_wrong_precision_is_converted_and_stored():
    w = np.ones((2, 3), np.float32)
    config = {"velocity": np.zeros((2, 3))}  # float64 state for float32 weights
    F.sgd_momentum(w, np.ones((2, 3), np.float32), config)
    assert config["velocity"].dtype == np.float32
    with pytest.raises(ValueError, match="'velocity' must have shape"):
        F.sgd_momentum(w, np.ones((2, 3), np.float32), {"velocity": np.zeros(5)})


def test_bn_param_is_mutated_in_place():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)) + 5
    bn_param = {"mode": "train"}
    F.batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    rm = bn_param["running_mean"]
    np.testing.assert_allclose(rm, 0.1 * x.mean(0))  # momentum 0.9 from zeros
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * x.var(0))
    F.batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    assert bn_param["running_mean"] is rm  # updated in place, as a dict the user holds expects
    np.testing.assert_allclose(rm, 0.19 * x.mean(0))


def test_dropout_seed_reproduces_and_unseeded_differs():
    x = np.ones((64, 64))
    a, _ = F.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    b, _ = F.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    c, _ = F.dropout_forward(x, {"mode": "train", "p": 0.5})
    d, _ = F.dropout_forward(x, {"mode": "train", "p": 0.5})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(c, d)
    state = np.random.get_state()[1].copy()
    F.dropout_forward(x, {"mode": "train", "p": 0.5})
    np.testing.assert_array_equal(state, np.random.get_state()[1])  # global RNG untouched
    e, _ = F.dropout_forward(x, {"mode": "train", "p": 1.0})
    np.testing.assert_array_equal(e, x)


def test_label_smoothing_targets():
    x = np.zeros((1, 5))
    loss, dx = F.softmax_loss(x, np.array([2]), label_smoothing=0.2)
    # uniform prediction p = 0.2; target 0.8 on class 2 and 0.05 elsewhere
    np.testing.assert_allclose(dx, [[0.15, 0.15, -0.6, 0.15, 0.15]])
    np.testing.assert_allclose(loss, np.log(5))


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: F.batchnorm_forward(np.ones((3, 2)), np.ones(2), np.zeros(2), {}), ValueError, "mode"),
        (lambda: F.batchnorm_forward(np.ones((3, 2)), np.ones(3), np.zeros(2), {"mode": "train"}),
         ValueError, "'gamma'"),
        (lambda: F.batchnorm_forward(np.ones((0, 2)), np.ones(2), np.zeros(2), {"mode": "train"}),
         ValueError, "empty"),
        (lambda: F.dropout_forward(np.ones(3), {"mode": "train", "p": 0.0}), ValueError, r"\(0, 1\]"),
        (lambda: F.dropout_forward(np.ones(3), {"mode": "train", "p": 1.5}), ValueError, r"\(0, 1\]"),
        (lambda: F.dropout_forward(np.ones(3), {"mode": "train"}), ValueError, "'p'"),
        (lambda: F.softmax_loss(np.ones((2, 3)), np.array([0, 3])), ValueError, r"y\[1\] = 3"),
        (lambda: F.softmax_loss(np.ones((2, 3)), np.array([0, -1])), ValueError, r"y\[1\] = -1"),
        (lambda: F.svm_loss(np.ones((2, 3)), np.array([0.0, 1.0])), TypeError, "integer"),
        (lambda: F.softmax_loss(np.ones((2, 3)), np.array([0, 1, 2])), ValueError, r"\(2,\)"),
        (lambda: F.affine_forward(np.ones((2, 3)), np.ones((4, 5)), np.ones(5)), ValueError, "'w'"),
        (lambda: F.affine_forward(np.ones((2, 3)), np.ones((3, 5)), np.ones(4)), ValueError, "'b'"),
        (lambda: F.affine_forward(np.ones((2, 3), int), np.ones((3, 5)), np.ones(5)), TypeError, "'x'"),
        (lambda: F.sgd(np.ones(3), np.ones(3), {"learning_rate": -1.0}), ValueError, "learning_rate"),
        (lambda: F.sgd_momentum(np.ones(3), np.ones(3), {"momentum": 1.0}), ValueError, "momentum"),
        (lambda: F.adam(np.ones(3), np.ones(3), {"beta1": 1.0}), ValueError, "beta1"),
        (lambda: F.rmsprop(np.ones(3), np.ones(3), {"epsilon": 0.0}), ValueError, "epsilon"),
        (lambda: F.sgd(np.ones(3), np.ones(4)), ValueError, "'dw'"),
        (lambda: F.maxout_forward(np.ones((2, 7)), 3), ValueError, "groups of k"),
        (lambda: F.elu_forward(np.ones(3), -1.0), ValueError, "alpha"),
        (lambda: F.affine_forward(np.ones(3), np.ones((3, 5)), np.ones(5)), ValueError,
         "'x' must have at least 2"),
        (lambda: F.affine_forward(np.ones((2, 3)), np.ones((3, 5, 1)), np.ones(5)), ValueError,
         "'w' must have 2"),
        (lambda: F.softmax_loss(np.ones((0, 3)), np.array([], int)), ValueError, "empty"),
        (lambda: F.svm_loss(np.ones((2, 3)), [[0], [1]]), ValueError, r"shape \(2,\)"),
        (lambda: F.softmax_loss(np.ones((2, 3), np.complex128), np.array([0, 1])), TypeError, "complex128"),
        (lambda: F.dropout_forward(np.ones(3), {"mode": "train", "p": float("nan")}), ValueError, "'p'"),
        (lambda: F.dropout_forward(np.ones(3), {"mode": "eval", "p": 0.5}), ValueError, "mode"),
        (lambda: F.maxout_forward(np.ones((2, 6)), 0), ValueError, "'k'"),
        (lambda: F.relu_backward(np.ones((2, 3)), np.ones((3, 2))), ValueError, "must match dout"),
        (lambda: F.adam(np.ones(3, np.int64), np.ones(3)), TypeError, "'w'"),
        (lambda: F.batchnorm_forward(np.ones((3, 2)), np.ones(2), np.zeros(2), {"mode": "train", "eps": 0.0}),
         ValueError, "eps"),
        (lambda: F.batchnorm_forward(np.ones((3, 2)), np.ones(2), np.zeros(2),
                                     {"mode": "train", "momentum": 1.5}), ValueError, "momentum"),
    ],
)
def test_bad_input_gets_a_clear_exception(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
