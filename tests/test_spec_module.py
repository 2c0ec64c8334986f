"""Specification tests for lucid's Tensor / nn.Module conventions (ground truth: SPEC.md)."""
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spec_reference as ref  # noqa: E402

import lucid  # noqa: E402,F401
import lucid.nn as nn  # noqa: E402
from lucid import Tensor  # noqa: E402

EPS = 1e-5


# ----------------------------------------------------------------------------- helpers

class Net(nn.Module):
    def __init__(self, affine=True, track_running_stats=True):
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4, affine=affine, track_running_stats=track_running_stats)

    def forward(self, x):
        return self.bn(self.linear(x))


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Net()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.block(x))


NET_KEYS = {"linear.weight", "linear.bias", "bn.weight", "bn.bias", "bn.running_mean",
            "bn.running_var", "bn.num_batches_tracked"}


def params(module):
    return dict(module.named_parameters())


def grads_copy(module):
    return {k: None if p.grad is None else np.array(p.grad, copy=True)
            for k, p in params(module).items()}


def sd_equal(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
        assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype, k


def trained_net(seed=0, steps=3):
    rng = np.random.default_rng(seed)
    net = Net()
    for _ in range(steps):
        net(Tensor(rng.normal(size=(5, 3)) * 2 + 1, dtype="float32"))
    return net


# ----------------------------------------------------------------------------- Tensor

def test_tensor_basics_and_default_dtype():
    t = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(t.data, np.ndarray)
    assert t.shape == (2, 2) and isinstance(t.shape, tuple)
    assert t.dtype == np.float32
    assert t.requires_grad is False
    assert t.grad is None
    np.testing.assert_array_equal(np.asarray(t), np.array([[1, 2], [3, 4]], dtype=np.float32))
    assert Tensor([1, 2, 3]).dtype == np.int64  # integers stay integers, as in torch
    assert Tensor([1.5], dtype="float64").dtype == np.float64
    assert Tensor([1.5], requires_grad=True).requires_grad is True
    for text in (repr(t), str(t)):
        assert text.startswith("Tensor(") and text.rstrip().endswith("grad=None)"), text


def test_parameter_is_tensor_requiring_grad():
    lin = nn.Linear(3, 2)
    for p in lin.parameters():
        assert isinstance(p, nn.Parameter)
        assert isinstance(p, Tensor)
        assert p.requires_grad is True
        assert p.grad is None


# ----------------------------------------------------------------------------- Linear

def test_linear_shapes_and_init_range():
    lin = nn.Linear(100, 50)
    assert lin.weight.shape == (50, 100)
    assert lin.bias.shape == (50,)
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    bound = 1 / math.sqrt(100)
    w, b = lin.weight.data, lin.bias.data
    assert np.all(np.abs(w) <= bound + 1e-7) and np.all(np.abs(b) <= bound + 1e-7)
    # Uniform on [-bound, bound]: fills the range, std = bound / sqrt(3), mean ~ 0.
    assert w.max() > 0.95 * bound and w.min() < -0.95 * bound
    assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.05 * bound
    assert abs(float(w.mean())) < 0.05 * bound
    assert len(np.unique(b)) > 40
    # Two layers are not initialised identically.
    assert not np.array_equal(nn.Linear(100, 50).weight.data, w)


def test_linear_without_bias():
    lin = nn.Linear(3, 2, bias=False)
    assert getattr(lin, "bias", None) is None
    assert len(list(lin.parameters())) == 1
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    y = lin(Tensor(x, dtype="float32"))
    np.testing.assert_allclose(y.data, x @ lin.weight.data.T.astype(np.float64), rtol=1e-5,
                               atol=1e-6)


def test_linear_forward_backward():
    rng = np.random.default_rng(1)
    lin = nn.Linear(4, 3)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    g = rng.normal(size=(5, 3)).astype(np.float32)
    t = Tensor(x, requires_grad=True, dtype="float32")
    y = lin(t)
    assert y.shape == (5, 3) and y.dtype == np.float32
    W, b = lin.weight.data.astype(np.float64), lin.bias.data.astype(np.float64)
    np.testing.assert_allclose(y.data, ref.linear_forward(x, W, b), rtol=1e-5, atol=1e-5)
    y.backward(g)
    dx, dW, db = ref.linear_backward(g, x, W)
    np.testing.assert_allclose(t.grad, dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lin.weight.grad, dW, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lin.bias.grad, db, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- backward forms

def test_backward_accepts_tensor_or_ndarray():
    rng = np.random.default_rng(2)
    net = Net()
    net.to("float64")
    x = rng.normal(size=(4, 3))
    g = rng.normal(size=(4, 4))
    results = []
    for upstream in (g, Tensor(g, dtype="float64")):
        net.zero_grad()
        t = Tensor(x, requires_grad=True, dtype="float64")
        net(t).backward(upstream)
        results.append((np.array(t.grad), grads_copy(net)))
    (gx0, gp0), (gx1, gp1) = results
    np.testing.assert_allclose(gx1, gx0, rtol=1e-12, atol=1e-14)
    for k in gp0:
        assert gp0[k] is not None, k
        np.testing.assert_allclose(gp1[k], gp0[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_backward_without_grad_for_single_element_output():
    lin = nn.Linear(3, 1)
    x = Tensor([[1.0, -2.0, 0.5]], requires_grad=True)
    y = lin(x)
    assert y.shape == (1, 1)
    y.backward()
    np.testing.assert_allclose(x.grad, lin.weight.data, rtol=1e-6)
    np.testing.assert_allclose(lin.weight.grad, [[1.0, -2.0, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(lin.bias.grad, [1.0], rtol=1e-6)

    bn = nn.BatchNorm1d(1)
    bn.eval()
    t = Tensor([[2.0]], requires_grad=True)
    out = bn(t)
    np.testing.assert_allclose(out.data, [[2.0 / math.sqrt(1 + EPS)]], rtol=1e-6)
    out.backward()
    np.testing.assert_allclose(t.grad, [[1.0 / math.sqrt(1 + EPS)]], rtol=1e-6)
    np.testing.assert_allclose(bn.bias.grad, [1.0], rtol=1e-6)
    np.testing.assert_allclose(bn.weight.grad, [2.0 / math.sqrt(1 + EPS)], rtol=1e-6)


def test_input_without_requires_grad_still_fills_parameter_grads():
    net = Net()
    x = Tensor(np.random.default_rng(3).normal(size=(6, 3)), dtype="float32")
    net(x).backward((np.ones((6, 4)) * np.arange(1, 7)[:, None]).astype(np.float32))
    assert x.grad is None
    for name, p in params(net).items():
        assert p.grad is not None, name
        assert np.asarray(p.grad).shape == p.shape, name


def test_gradient_flows_through_nested_modules():
    rng = np.random.default_rng(4)
    model = Outer()
    model.to("float64")
    names = set(params(model))
    assert names == {"block.linear.weight", "block.linear.bias", "block.bn.weight",
                     "block.bn.bias", "head.weight", "head.bias"}
    x = rng.normal(size=(5, 3))
    g = rng.normal(size=(5, 2))
    t = Tensor(x, requires_grad=True, dtype="float64")
    y = model(t)
    y.backward(g)
    p = {k: v.data.astype(np.float64) for k, v in params(model).items()}
    h = ref.linear_forward(x, p["block.linear.weight"], p["block.linear.bias"])
    z, cache = ref.forward_train(h, p["block.bn.weight"], p["block.bn.bias"])
    out = ref.linear_forward(z, p["head.weight"], p["head.bias"])
    np.testing.assert_allclose(y.data, out, rtol=1e-10, atol=1e-10)
    dz, dWh, dbh = ref.linear_backward(g, z, p["head.weight"])
    dh, dgamma, dbeta = ref.backward_train(dz, cache)
    dx, dW, db = ref.linear_backward(dh, x, p["block.linear.weight"])
    pm = params(model)
    np.testing.assert_allclose(t.grad, dx, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(pm["head.weight"].grad, dWh, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(pm["head.bias"].grad, dbh, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(pm["block.bn.weight"].grad, dgamma, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(pm["block.bn.bias"].grad, dbeta, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(pm["block.linear.weight"].grad, dW, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(pm["block.linear.bias"].grad, db, atol=1e-9)


# ----------------------------------------------------------------------------- accumulation

def test_grad_accumulates_over_two_backward_calls_and_zero_grad_resets():
    rng = np.random.default_rng(5)
    net = Net()
    net.to("float64")
    x = rng.normal(size=(6, 3))
    g = rng.normal(size=(6, 4))
    t = Tensor(x, requires_grad=True, dtype="float64")

    net(t).backward(g)
    g1 = grads_copy(net)
    gx1 = np.array(t.grad)
    for k, v in g1.items():
        assert v is not None, k
        assert np.abs(v).max() > 1e-3 or k == "linear.bias", k

    net(t).backward(g)
    g2 = grads_copy(net)
    for k in g1:
        np.testing.assert_allclose(g2[k], 2 * g1[k], rtol=1e-10, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(t.grad, 2 * gx1, rtol=1e-10, atol=1e-12)

    net.zero_grad()
    for k, p in params(net).items():
        assert p.grad is None, k

    net(t).backward(g)
    for k, v in grads_copy(net).items():
        np.testing.assert_allclose(v, g1[k], rtol=1e-10, atol=1e-12, err_msg=k)

    # Manually dropping one grad: only that one restarts.
    net.bn.weight.grad = None
    net(t).backward(g)
    g4 = grads_copy(net)
    np.testing.assert_allclose(g4["bn.weight"], g1["bn.weight"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g4["bn.bias"], 2 * g1["bn.bias"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g4["linear.weight"], 2 * g1["linear.weight"], rtol=1e-10,
                               atol=1e-12)


def test_zero_grad_with_affine_false_and_float32_accumulation():
    net = Net(affine=False)
    assert set(params(net)) == {"linear.weight", "linear.bias"}
    x = Tensor(np.random.default_rng(6).normal(size=(4, 3)), requires_grad=True, dtype="float32")
    g = np.random.default_rng(7).normal(size=(4, 4)).astype(np.float32)
    net(x).backward(g)
    first = np.array(net.linear.weight.grad)
    net(x).backward(g)
    np.testing.assert_allclose(net.linear.weight.grad, 2 * first, rtol=1e-5, atol=1e-6)
    net.zero_grad()
    assert net.linear.weight.grad is None and net.linear.bias.grad is None


# ----------------------------------------------------------------------------- train / eval

def test_train_eval_propagate_to_submodules():
    model = Outer()
    assert model.training and model.block.training and model.block.bn.training
    model.eval()
    assert not model.training and not model.block.training and not model.block.bn.training
    assert not model.head.training
    model.train()
    assert model.training and model.block.bn.training


def test_eval_mode_model_updates_nothing():
    net = trained_net()
    net.eval()
    before = net.state_dict()
    for N in (1, 4):
        y = net(Tensor(np.ones((N, 3)) * 3.0, requires_grad=True, dtype="float32"))
        y.backward(np.ones((N, 4), dtype=np.float32))
    sd_equal(before, net.state_dict())


# ----------------------------------------------------------------------------- state_dict

def test_state_dict_keys_and_values():
    net = trained_net()
    sd = net.state_dict()
    assert set(sd) == NET_KEYS
    for k, v in sd.items():
        assert isinstance(v, np.ndarray), k
    np.testing.assert_array_equal(sd["linear.weight"], net.linear.weight.data)
    np.testing.assert_array_equal(sd["linear.bias"], net.linear.bias.data)
    np.testing.assert_array_equal(sd["bn.weight"], net.bn.weight.data)
    np.testing.assert_array_equal(sd["bn.running_mean"], net.bn.running_mean.data)
    np.testing.assert_array_equal(sd["bn.running_var"], net.bn.running_var.data)
    assert sd["bn.running_mean"].shape == (4,)
    assert sd["bn.num_batches_tracked"].shape == ()
    assert np.issubdtype(sd["bn.num_batches_tracked"].dtype, np.integer)
    assert int(sd["bn.num_batches_tracked"]) == 3
    assert sd["linear.weight"].dtype == np.float32
    assert sd["bn.running_var"].dtype == np.float32
    # Trained running stats are not the initial ones.
    assert not np.allclose(sd["bn.running_mean"], 0.0)


def test_state_dict_returns_copies():
    net = trained_net()
    sd = net.state_dict()
    ref_copy = {k: np.array(v, copy=True) for k, v in sd.items()}
    for k in sd:
        if sd[k].ndim:
            sd[k][...] = 123.0
    sd_equal(ref_copy, net.state_dict())
    # Later training does not change an earlier state_dict either.
    sd2 = net.state_dict()
    net(Tensor(np.random.default_rng(8).normal(size=(5, 3)), dtype="float32"))
    sd_equal(ref_copy, sd2)
    assert int(net.state_dict()["bn.num_batches_tracked"]) == 4


@pytest.mark.parametrize("affine,track,keys", [
    (False, True, {"linear.weight", "linear.bias", "bn.running_mean", "bn.running_var",
                   "bn.num_batches_tracked"}),
    (True, False, {"linear.weight", "linear.bias", "bn.weight", "bn.bias"}),
    (False, False, {"linear.weight", "linear.bias"}),
])
def test_state_dict_keys_without_affine_or_tracking(affine, track, keys):
    assert set(Net(affine=affine, track_running_stats=track).state_dict()) == keys


def test_nested_state_dict_names():
    keys = set(Outer().state_dict())
    assert keys == {"block." + k for k in NET_KEYS} | {"head.weight", "head.bias"}


def test_load_state_dict_round_trip():
    rng = np.random.default_rng(9)
    a = trained_net(seed=1)
    sd = a.state_dict()
    b = Net()
    b.load_state_dict(sd)
    sd_equal(sd, b.state_dict())
    assert int(b.bn.num_batches_tracked.data) == 3
    # Same outputs and gradients in eval mode ...
    a.eval()
    b.eval()
    x = rng.normal(size=(4, 3))
    g = rng.normal(size=(4, 4)).astype(np.float32)
    ya, yb = a(Tensor(x, dtype="float32")), b(Tensor(x, dtype="float32"))
    np.testing.assert_array_equal(ya.data, yb.data)
    ya.backward(g)
    yb.backward(g)
    for k, p in params(a).items():
        np.testing.assert_array_equal(p.grad, params(b)[k].grad, err_msg=k)
    # ... and identical running-stat trajectories in train mode (momentum uses the same count).
    a.train()
    b.train()
    for _ in range(2):
        x = rng.normal(size=(5, 3))
        np.testing.assert_array_equal(a(Tensor(x, dtype="float32")).data, b(Tensor(x, dtype="float32")).data)
    sd_equal(a.state_dict(), b.state_dict())


def test_load_state_dict_restores_num_batches_tracked_for_cumulative_average():
    # momentum=None: f = 1 / num_batches_tracked, so the loaded count matters.
    rng = np.random.default_rng(10)
    a = nn.BatchNorm1d(2, momentum=None)
    r = ref.RefBatchNorm1d(2, momentum=None)
    for _ in range(3):
        x = rng.normal(size=(4, 2))
        a(Tensor(x, dtype="float32"))
        r(x)
    b = nn.BatchNorm1d(2, momentum=None)
    b.load_state_dict(a.state_dict())
    x = rng.normal(size=(4, 2))
    b(Tensor(x, dtype="float32"))
    r(x)
    assert int(b.num_batches_tracked.data) == 4
    np.testing.assert_allclose(b.running_mean.data, r.running_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.running_var.data, r.running_var, rtol=1e-5, atol=1e-6)


def _perturbed(sd):
    out = {}
    for k, v in sd.items():
        if np.issubdtype(v.dtype, np.integer):
            out[k] = v + 7
        else:
            out[k] = v + 1.5
    return out


def test_load_state_dict_rejects_missing_key_and_changes_nothing():
    net = trained_net()
    before = net.state_dict()
    for missing in ("linear.weight", "bn.running_var", "bn.num_batches_tracked"):
        bad = _perturbed(before)
        del bad[missing]
        with pytest.raises((ValueError, KeyError)):
            net.load_state_dict(bad)
        sd_equal(before, net.state_dict())


def test_load_state_dict_rejects_unexpected_key_and_changes_nothing():
    net = trained_net()
    before = net.state_dict()
    bad = _perturbed(before)
    bad["bn.extra"] = np.zeros(4, dtype=np.float32)
    with pytest.raises((ValueError, KeyError)):
        net.load_state_dict(bad)
    sd_equal(before, net.state_dict())


@pytest.mark.parametrize("key,shape", [("linear.weight", (3, 4)), ("bn.weight", (3,)),
                                       ("bn.running_mean", (5,)), ("linear.bias", (4, 1))])
def test_load_state_dict_rejects_wrong_shape_and_changes_nothing(key, shape):
    net = trained_net()
    before = net.state_dict()
    bad = _perturbed(before)
    bad[key] = np.zeros(shape, dtype=np.float32)
    with pytest.raises(ValueError):
        net.load_state_dict(bad)
    sd_equal(before, net.state_dict())
    # The module still computes with its old values.
    net.eval()
    x = np.ones((2, 3))
    h = ref.linear_forward(x, before["linear.weight"], before["linear.bias"])
    y, _ = ref.forward_eval(h, before["bn.running_mean"], before["bn.running_var"],
                            before["bn.weight"], before["bn.bias"])
    np.testing.assert_allclose(net(Tensor(x, dtype="float32")).data, y, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- dtypes

def test_default_dtype_is_float32_everywhere():
    net = Net()
    for k, v in net.state_dict().items():
        if k != "bn.num_batches_tracked":
            assert v.dtype == np.float32, k
    t = Tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]], requires_grad=True)
    y = net(t)
    assert y.dtype == np.float32
    y.backward(np.ones((2, 4), dtype=np.float32))
    assert np.asarray(t.grad).dtype == np.float32
    for k, p in params(net).items():
        assert np.asarray(p.grad).dtype == np.float32, k


def test_to_float64_converts_parameters_buffers_outputs():
    rng = np.random.default_rng(11)
    net = trained_net(seed=2)
    sd32 = net.state_dict()
    net.to("float64")
    for k, p in params(net).items():
        assert p.dtype == np.float64, k
        assert p.data.dtype == np.float64, k
    assert net.bn.running_mean.dtype == np.float64
    assert net.bn.running_var.dtype == np.float64
    nb = np.asarray(net.bn.num_batches_tracked.data)
    assert np.issubdtype(nb.dtype, np.integer) and int(nb) == 3
    sd64 = net.state_dict()
    for k in sd32:
        np.testing.assert_array_equal(sd64[k], sd32[k].astype(sd64[k].dtype), err_msg=k)
        if k != "bn.num_batches_tracked":
            assert sd64[k].dtype == np.float64, k

    x = rng.normal(size=(5, 3))
    g = rng.normal(size=(5, 4))
    t = Tensor(x, requires_grad=True, dtype="float64")
    y = net(t)
    assert y.dtype == np.float64
    h = ref.linear_forward(x, sd64["linear.weight"], sd64["linear.bias"])
    yr, cache = ref.forward_train(h, sd64["bn.weight"], sd64["bn.bias"])
    np.testing.assert_allclose(y.data, yr, rtol=1e-10, atol=1e-10)
    y.backward(g)
    dh, dgamma, dbeta = ref.backward_train(g, cache)
    dx, dW, db = ref.linear_backward(dh, x, sd64["linear.weight"])
    assert np.asarray(t.grad).dtype == np.float64
    np.testing.assert_allclose(t.grad, dx, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(net.linear.weight.grad, dW, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(net.bn.weight.grad, dgamma, rtol=1e-9, atol=1e-10)
    for p in params(net).values():
        assert np.asarray(p.grad).dtype == np.float64
    rm, rv, _ = ref.update_running(sd64["bn.running_mean"], sd64["bn.running_var"], 3,
                                   cache["mean"], cache["var"], cache["M"], 0.1)
    np.testing.assert_allclose(net.bn.running_mean.data, rm, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.bn.running_var.data, rv, rtol=1e-12, atol=1e-14)
    assert net.bn.running_var.dtype == np.float64


def test_integer_input_becomes_float32_in_batchnorm():
    bn = nn.BatchNorm1d(2)
    data = [[1, 2], [3, 5], [4, 4]]
    t = Tensor(data)
    y = bn(t)
    assert y.dtype == np.float32
    yr, cache = ref.forward_train(np.array(data, dtype=np.float64))
    np.testing.assert_allclose(y.data, yr, rtol=1e-5, atol=1e-5)
    mean, var, M = ref.batch_stats(np.array(data, dtype=np.float64))
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * mean, rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * var * M / (M - 1), rtol=1e-6)
    assert bn.running_mean.dtype == np.float32

    data3 = [[[1, 2, 6], [0, 0, 3]], [[2, 2, 2], [1, 5, 9]]]
    y3 = bn(Tensor(data3))
    assert y3.dtype == np.float32
    np.testing.assert_allclose(y3.data, ref.forward_train(np.array(data3, float))[0],
                               rtol=1e-5, atol=1e-5)


def test_integer_input_through_linear():
    lin = nn.Linear(2, 3)
    y = lin(Tensor([[1, 2], [3, -4]]))
    assert y.dtype == np.float32
    W, b = lin.weight.data.astype(float), lin.bias.data.astype(float)
    np.testing.assert_allclose(y.data, ref.linear_forward([[1, 2], [3, -4]], W, b),
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- Sequential / ReLU

def test_relu_values_and_grad():
    relu = nn.ReLU()
    x = np.array([[-1.5, 2.0, 0.25], [3.0, -0.5, -2.0]])
    t = Tensor(x, requires_grad=True, dtype="float32")
    y = relu(t)
    np.testing.assert_array_equal(y.data, np.maximum(x, 0).astype(np.float32))
    g = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    y.backward(g)
    np.testing.assert_array_equal(t.grad, g * (x > 0))
    assert len(list(relu.parameters())) == 0


def test_sequential_linear_bn_relu_linear():
    rng = np.random.default_rng(12)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    model.to("float64")
    plist = list(model.parameters())
    assert len(plist) == 6
    assert len(params(model)) == 6
    W1, b1, gamma, beta, W2, b2 = [p.data.astype(np.float64) for p in plist]
    assert W1.shape == (5, 4) and gamma.shape == (5,) and W2.shape == (2, 5)
    x = rng.normal(size=(7, 4))
    g = rng.normal(size=(7, 2))
    t = Tensor(x, requires_grad=True, dtype="float64")
    y = model(t)
    h = ref.linear_forward(x, W1, b1)
    z, cache = ref.forward_train(h, gamma, beta)
    a = np.maximum(z, 0)
    out = ref.linear_forward(a, W2, b2)
    np.testing.assert_allclose(y.data, out, rtol=1e-10, atol=1e-10)
    y.backward(g)
    da, dW2, db2 = ref.linear_backward(g, a, W2)
    dz = da * (z > 0)
    dh, dgamma, dbeta = ref.backward_train(dz, cache)
    dx, dW1, db1 = ref.linear_backward(dh, x, W1)
    expected = [dW1, db1, dgamma, dbeta, dW2, db2]
    for p, e in zip(plist, expected):
        np.testing.assert_allclose(p.grad, e, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(t.grad, dx, rtol=1e-9, atol=1e-10)
    # Sequential's eval reaches the BatchNorm inside.
    model.eval()
    before = model.state_dict()
    model(Tensor(x[:1], dtype="float64"))
    sd_equal(before, model.state_dict())
