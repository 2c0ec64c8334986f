"""Specification tests for lucid.nn.BatchNorm1d (ground truth: /work/shared/SPEC.md).

Written from the spec only; compared against the float64 reference in spec_reference.py,
against central finite differences, and against the hand-checked numbers of the SPEC errata.
"""
import math
import os
import re
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spec_reference as ref  # noqa: E402

import lucid  # noqa: E402,F401
import lucid.nn as nn  # noqa: E402
from lucid import Tensor  # noqa: E402

EPS = 1e-5
TOL = {"float32": 1e-4, "float64": 1e-10}


# ----------------------------------------------------------------------------- helpers

def check(actual, expected, dtype, scale=None, what=""):
    """Relative check with an absolute floor scaled to the magnitude of the reference."""
    assert actual is not None, f"{what}: got None"
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    tol = TOL[dtype]
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=tol, atol=tol * scale,
                               err_msg=what)


def set_affine(bn, gamma, beta):
    sd = bn.state_dict()
    sd["weight"] = np.array(gamma)
    sd["bias"] = np.array(beta)
    bn.load_state_dict(sd)


def make_bn(C, dtype, rng, **kw):
    """BatchNorm1d in `dtype` with random (non-trivial) gamma/beta when affine."""
    bn = nn.BatchNorm1d(C, **kw)
    if dtype == "float64":
        bn.to("float64")
    gamma = beta = None
    if bn.weight is not None:
        gamma = (rng.uniform(0.5, 2.0, C) * rng.choice([-1.0, 1.0], C)).astype(dtype)
        beta = rng.normal(size=C).astype(dtype)
        set_affine(bn, gamma, beta)
    return bn, gamma, beta


def random_input(rng, shape, dtype):
    nd = len(shape)
    C = shape[1]
    scale = ref.per_channel(rng.uniform(0.5, 3.0, C), nd)
    shift = ref.per_channel(rng.normal(size=C) * 2.0, nd)
    return (rng.normal(size=shape) * scale + shift).astype(dtype)


def snapshot(bn):
    """Exact copies of parameters, buffers and num_batches_tracked."""
    out = {}
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        t = getattr(bn, name)
        out[name] = None if t is None else np.array(t.data, copy=True)
    return out


def assert_same_snapshot(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if a[k] is None:
            assert b[k] is None, k
        else:
            assert b[k] is not None, k
            assert a[k].dtype == b[k].dtype, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def nbt(bn):
    t = bn.num_batches_tracked
    arr = np.asarray(t.data)
    assert arr.shape == (), f"num_batches_tracked must be 0-d, got shape {arr.shape}"
    assert np.issubdtype(arr.dtype, np.integer), f"num_batches_tracked dtype {arr.dtype}"
    return int(arr)


class SeedModel(nn.Module):
    """The second example of the seed page, verbatim."""

    def __init__(self):
        super(SeedModel, self).__init__()
        self.linear = nn.Linear(in_features=3, out_features=2)
        self.batch_norm = nn.BatchNorm1d(num_features=2)

    def forward(self, x):
        x = self.linear(x)
        x = self.batch_norm(x)
        return x


def linear_bn_reference(x, W, b, gamma, beta, g, train=True, rm=None, rv=None):
    """Hand-chained float64 reference for Linear -> BatchNorm1d."""
    h = ref.linear_forward(x, W, b)
    if train:
        y, cache = ref.forward_train(h, gamma, beta, EPS)
        dh, dgamma, dbeta = ref.backward_train(g, cache)
    else:
        y, cache = ref.forward_eval(h, rm, rv, gamma, beta, EPS)
        dh, dgamma, dbeta = ref.backward_eval(g, cache)
    dx, dW, db = ref.linear_backward(dh, x, W)
    return dict(h=h, y=y, dh=dh, dx=dx, dW=dW, db=db, dgamma=dgamma, dbeta=dbeta)


# ----------------------------------------------------------------------------- reference self-check

@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6)])
def test_reference_backward_matches_its_own_finite_differences(shape):
    # Guards the hand-written reference itself (no lucid involved).
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    gamma = rng.normal(size=shape[1])
    beta = rng.normal(size=shape[1])
    g = rng.normal(size=shape)
    _, cache = ref.forward_train(x, gamma, beta)
    dx, dgamma, dbeta = ref.backward_train(g, cache)
    h = 1e-6

    def loss(xx, gg, bb):
        return float(np.sum(ref.forward_train(xx, gg, bb)[0] * g))

    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = (loss(xp, gamma, beta) - loss(xm, gamma, beta)) / (2 * h)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-7)
    for j in range(shape[1]):
        e = np.zeros(shape[1])
        e[j] = h
        np.testing.assert_allclose(
            dgamma[j], (loss(x, gamma + e, beta) - loss(x, gamma - e, beta)) / (2 * h), rtol=1e-6)
        np.testing.assert_allclose(
            dbeta[j], (loss(x, gamma, beta + e) - loss(x, gamma, beta - e)) / (2 * h), rtol=1e-6)


def test_reference_running_stats_by_hand():
    # M = 3 values [1, 2, 3]: mean 2, biased var 2/3, unbiased var 1.
    m, v, n = ref.update_running(np.zeros(1), np.ones(1), 0, np.array([2.0]), np.array([2 / 3]),
                                 3, 0.1)
    np.testing.assert_allclose(m, [0.2])
    np.testing.assert_allclose(v, [1.0])
    assert n == 1
    # momentum=None: cumulative average, f = 1 / num_batches_tracked.
    m, v, n = ref.update_running(np.array([4.0]), np.array([3.0]), 1, np.array([1.0]),
                                 np.array([1.0]), 2, None)
    np.testing.assert_allclose(m, [2.5])
    np.testing.assert_allclose(v, [2.5])
    assert n == 2


# ----------------------------------------------------------------------------- seed example 1

def test_seed_example_1_exact():
    input_tensor = Tensor([[
        [1.0, 2.0, 3.0],
        [4.0, 5.0, 6.0],
    ]], requires_grad=True)  # Shape: (1, 2, 3)
    batch_norm = nn.BatchNorm1d(num_features=2)
    output = batch_norm(input_tensor)
    assert output.shape == (1, 2, 3)
    assert output.dtype == np.float32
    expected = np.array([[[-1.2247, 0.0, 1.2247], [-1.2247, 0.0, 1.2247]]])
    np.testing.assert_allclose(output.data, expected, atol=1e-4)
    # Exactly: xhat = (x - 2) / sqrt(2/3 + eps).
    np.testing.assert_allclose(output.data[0, 0], np.array([-1, 0, 1]) / math.sqrt(2 / 3 + EPS),
                               rtol=1e-5, atol=1e-6)

    for text in (repr(output), str(output)):
        assert text.startswith("Tensor("), text
        assert text.rstrip().endswith("grad=None)"), text
        assert "1.224" in text, text

    output.backward(Tensor([[
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0],
    ]]))
    gx = input_tensor.grad
    assert gx is not None
    assert np.asarray(gx).shape == (1, 2, 3)
    # SPEC erratum: the true input gradient is exactly 0 (not +-0.6124).
    np.testing.assert_allclose(gx, np.zeros((1, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(batch_norm.weight.grad, [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(batch_norm.bias.grad, [3.0, 3.0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batch_norm.running_mean.data, [0.2, 0.5], rtol=1e-6)
    np.testing.assert_allclose(batch_norm.running_var.data, [1.0, 1.0], rtol=1e-6)
    assert nbt(batch_norm) == 1


def test_seed_example_1_nonuniform_grad_is_not_zero():
    # The example-1 input with a non-constant dy: checks the formula, not just the zero case.
    x = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    g = np.array([[[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]]])
    t = Tensor(x, requires_grad=True, dtype="float32")
    bn = nn.BatchNorm1d(2)
    y = bn(t)
    y.backward(Tensor(g, dtype="float32"))
    _, cache = ref.forward_train(x)
    dx, dgamma, dbeta = ref.backward_train(g, cache)
    check(t.grad, dx, "float32")
    check(bn.weight.grad, dgamma, "float32")
    check(bn.bias.grad, dbeta, "float32")


# ----------------------------------------------------------------------------- seed example 2

def test_seed_example_2_single_sample_train_raises_and_changes_nothing():
    model = SeedModel()
    assert model.training and model.batch_norm.training
    before = model.state_dict()
    bn_before = snapshot(model.batch_norm)
    input_data = Tensor([[1.0, 2.0, 3.0]], requires_grad=True)  # Shape: (1, 3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        model(input_data)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert_same_snapshot(bn_before, snapshot(model.batch_norm))
    assert nbt(model.batch_norm) == 0
    for p in model.parameters():
        assert p.grad is None


def test_seed_example_2_single_sample_eval_mode():
    model = SeedModel()
    model.eval()
    assert model.batch_norm.training is False
    x = np.array([[1.0, 2.0, 3.0]])
    input_data = Tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    output = model(input_data)
    assert output.shape == (1, 2)
    W = model.linear.weight.data.astype(np.float64)
    b = model.linear.bias.data.astype(np.float64)
    g = np.array([[-1.0, 1.0]])
    r = linear_bn_reference(x, W, b, np.ones(2), np.zeros(2), g, train=False,
                            rm=np.zeros(2), rv=np.ones(2))
    # Eval with fresh running stats: y = h / sqrt(1 + eps).
    np.testing.assert_allclose(r["y"], r["h"] / math.sqrt(1 + EPS))
    check(output.data, r["y"], "float32")
    output.backward(Tensor([[-1.0, 1.0]]))
    check(input_data.grad, r["dx"], "float32")
    check(model.linear.weight.grad, r["dW"], "float32")
    check(model.linear.bias.grad, r["db"], "float32")
    check(model.batch_norm.weight.grad, r["dgamma"], "float32")
    check(model.batch_norm.bias.grad, r["dbeta"], "float32")
    np.testing.assert_array_equal(model.batch_norm.running_mean.data, np.zeros(2))
    np.testing.assert_array_equal(model.batch_norm.running_var.data, np.ones(2))
    assert nbt(model.batch_norm) == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seed_example_2_batch_of_two_train_mode(dtype):
    model = SeedModel()
    # fixed weights: with random ones the two rows can land close together in a channel,
    # and a batch-of-two variance near 0 turns float32 rounding into a flaky failure
    model.linear.weight.data[:] = [[0.5, -0.8, 0.3], [-0.2, 0.9, 0.4]]
    model.linear.bias.data[:] = [0.1, -0.2]
    if dtype == "float64":
        model.to("float64")
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    g = np.array([[-1.0, 1.0], [0.25, 2.0]])
    t = Tensor(x, requires_grad=True, dtype=dtype)
    out = model(t)
    assert out.shape == (2, 2)
    assert out.dtype == np.dtype(dtype)
    W = model.linear.weight.data.astype(np.float64)
    b = model.linear.bias.data.astype(np.float64)
    r = linear_bn_reference(x, W, b, np.ones(2), np.zeros(2), g)
    check(out.data, r["y"], dtype)
    out.backward(Tensor(g, dtype=dtype))
    check(t.grad, r["dx"], dtype)
    check(model.linear.weight.grad, r["dW"], dtype)
    # BN after Linear in train mode: d/d(linear.bias) is 0 in exact arithmetic.
    check(model.linear.bias.grad, r["db"], dtype, scale=max(1.0, np.abs(r["dh"]).max() * 2))
    check(model.batch_norm.weight.grad, r["dgamma"], dtype)
    check(model.batch_norm.bias.grad, r["dbeta"], dtype)
    mean, var, M = ref.batch_stats(r["h"])
    rm, rv, n = ref.update_running(np.zeros(2), np.ones(2), 0, mean, var, M, 0.1)
    check(model.batch_norm.running_mean.data, rm, dtype)
    check(model.batch_norm.running_var.data, rv, dtype)
    assert nbt(model.batch_norm) == 1
    # Batch of 2 = M of 2: unbiased variance is twice the biased one.
    np.testing.assert_allclose(rv, 0.9 + 0.1 * 2 * var)


# ----------------------------------------------------------------------------- reference matrix

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("momentum", [0.1, None, 0.0, 1.0])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_matches_reference(affine, track, momentum, ndim, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((affine, track, momentum, ndim, dtype)).encode()))
    C, L = 3, 5
    bn, gamma, beta = make_bn(C, dtype, rng, momentum=momentum, affine=affine,
                              track_running_stats=track)
    r = ref.RefBatchNorm1d(C, eps=EPS, momentum=momentum, affine=affine,
                           track_running_stats=track, weight=gamma, bias=beta)
    assert bn.training is True
    assert bn.eps == pytest.approx(EPS)
    assert bn.momentum == momentum
    if affine:
        assert bn.weight.shape == (C,) and bn.bias.shape == (C,)
        assert len(list(bn.parameters())) == 2
    else:
        assert bn.weight is None and bn.bias is None
        assert len(list(bn.parameters())) == 0
    if track:
        assert bn.running_mean.shape == (C,) and bn.running_var.shape == (C,)
        assert bn.running_mean.dtype == np.dtype(dtype)
        assert bn.running_var.dtype == np.dtype(dtype)
        assert nbt(bn) == 0
    else:
        assert bn.running_mean is None and bn.running_var is None
        assert bn.num_batches_tracked is None

    for step, N in enumerate([4, 7, 4, 2]):
        shape = (N, C) if ndim == 2 else (N, C, L)
        xnp = random_input(rng, shape, dtype)
        x = Tensor(xnp, requires_grad=True, dtype=dtype)
        y = bn(x)
        y_ref = r(xnp)
        assert y.shape == shape
        assert y.dtype == np.dtype(dtype)
        check(y.data, y_ref, dtype, what=f"step {step} forward")

        g = rng.normal(size=shape).astype(dtype)
        bn.zero_grad()
        y.backward(g)
        dx, dgamma, dbeta = r.backward(g)
        assert np.asarray(x.grad).dtype == np.dtype(dtype)
        check(x.grad, dx, dtype, what=f"step {step} dx")
        if affine:
            check(bn.weight.grad, dgamma, dtype, what=f"step {step} dgamma")
            check(bn.bias.grad, dbeta, dtype, what=f"step {step} dbeta")
        if track:
            check(bn.running_mean.data, r.running_mean, dtype, what=f"step {step} running_mean")
            check(bn.running_var.data, r.running_var, dtype, what=f"step {step} running_var")
            assert bn.running_mean.dtype == np.dtype(dtype)
            assert nbt(bn) == step + 1
        else:
            assert bn.running_mean is None and bn.num_batches_tracked is None

    if track and momentum == 0.0:
        np.testing.assert_array_equal(bn.running_mean.data, np.zeros(C))
        np.testing.assert_array_equal(bn.running_var.data, np.ones(C))

    # Eval: running statistics (or batch statistics when not tracking); nothing updated.
    bn.eval()
    r.eval()
    assert bn.training is False
    before = snapshot(bn)
    for N in (6, 3):
        shape = (N, C) if ndim == 2 else (N, C, L)
        xnp = random_input(rng, shape, dtype)
        x = Tensor(xnp, requires_grad=True, dtype=dtype)
        y = bn(x)
        check(y.data, r(xnp), dtype, what="eval forward")
        g = rng.normal(size=shape).astype(dtype)
        bn.zero_grad()
        y.backward(g)
        dx, dgamma, dbeta = r.backward(g)
        check(x.grad, dx, dtype, what="eval dx")
        if affine:
            check(bn.weight.grad, dgamma, dtype, what="eval dgamma")
            check(bn.bias.grad, dbeta, dtype, what="eval dbeta")
        assert_same_snapshot(before, snapshot(bn))

    # Back to train mode: batch statistics again and updates resume.
    bn.train()
    r.train()
    assert bn.training is True
    shape = (5, C) if ndim == 2 else (5, C, L)
    xnp = random_input(rng, shape, dtype)
    check(bn(Tensor(xnp, dtype=dtype)).data, r(xnp), dtype, what="train again")
    if track:
        check(bn.running_mean.data, r.running_mean, dtype)
        check(bn.running_var.data, r.running_var, dtype)
        assert nbt(bn) == 5


@pytest.mark.parametrize("eps", [1e-3, 0.5, 0.0])
def test_nondefault_eps_is_used(eps):
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm1d(4, eps=eps)
    bn.to("float64")
    assert bn.eps == pytest.approx(eps)
    x = rng.normal(size=(6, 4, 2)) * 0.1
    g = rng.normal(size=x.shape)
    t = Tensor(x, requires_grad=True, dtype="float64")
    y = bn(t)
    y_ref, cache = ref.forward_train(x, eps=eps)
    check(y.data, y_ref, "float64")
    y.backward(g)
    check(t.grad, ref.backward_train(g, cache)[0], "float64")
    bn.eval()
    x2 = rng.normal(size=(3, 4, 2))
    rm, rv, _ = ref.update_running(np.zeros(4), np.ones(4), 0, cache["mean"], cache["var"],
                                   cache["M"], 0.1)
    check(bn(Tensor(x2, dtype="float64")).data, ref.forward_eval(x2, rm, rv, eps=eps)[0],
          "float64")


# ----------------------------------------------------------------------------- batch sizes

@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_different_batch_sizes_same_module(ndim, dtype):
    rng = np.random.default_rng(11 + ndim)
    C, L = 4, 3
    bn, gamma, beta = make_bn(C, dtype, rng)
    r = ref.RefBatchNorm1d(C, weight=gamma, bias=beta)
    for step, N in enumerate([2, 5, 17, 2, 17, 5]):
        shape = (N, C) if ndim == 2 else (N, C, L)
        xnp = random_input(rng, shape, dtype)
        x = Tensor(xnp, requires_grad=True, dtype=dtype)
        y = bn(x)
        assert y.shape == shape
        check(y.data, r(xnp), dtype, what=f"N={N} forward")
        g = rng.normal(size=shape).astype(dtype)
        bn.zero_grad()
        y.backward(g)
        dx, dgamma, dbeta = r.backward(g)
        check(x.grad, dx, dtype, what=f"N={N} dx")
        check(bn.weight.grad, dgamma, dtype, what=f"N={N} dgamma")
        check(bn.bias.grad, dbeta, dtype, what=f"N={N} dbeta")
        check(bn.running_mean.data, r.running_mean, dtype, what=f"N={N} running_mean")
        check(bn.running_var.data, r.running_var, dtype, what=f"N={N} running_var")
        assert nbt(bn) == step + 1
    bn.eval()
    r.eval()
    for N in (2, 5, 17, 1):
        shape = (N, C) if ndim == 2 else (N, C, L)
        xnp = random_input(rng, shape, dtype)
        check(bn(Tensor(xnp, dtype=dtype)).data, r(xnp), dtype, what=f"eval N={N}")


@pytest.mark.parametrize("L", [1, 2, 7])
def test_3d_length_varies(L):
    # Same channels, different L: statistics over (0, 2), M = N * L.
    rng = np.random.default_rng(L)
    bn = nn.BatchNorm1d(2, momentum=None)
    bn.to("float64")
    r = ref.RefBatchNorm1d(2, momentum=None)
    for N in (3, 2):
        x = rng.normal(size=(N, 2, L))
        check(bn(Tensor(x, dtype="float64")).data, r(x), "float64")
    check(bn.running_mean.data, r.running_mean, "float64")
    check(bn.running_var.data, r.running_var, "float64")


# ----------------------------------------------------------------------------- finite differences

def _fd_check(loss_fn, analytic, points, h=1e-6, what=""):
    """points: list of (array, setter) where setter(new_array) installs a perturbed value."""
    for arr, setter, grad in points:
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            p, m = arr.copy(), arr.copy()
            p[i] += h
            m[i] -= h
            setter(p)
            lp = loss_fn()
            setter(m)
            lm = loss_fn()
            num[i] = (lp - lm) / (2 * h)
        setter(arr)
        scale = max(1.0, float(np.abs(num).max()))
        np.testing.assert_allclose(np.asarray(grad, dtype=np.float64), num, rtol=1e-5,
                                   atol=1e-6 * scale, err_msg=what)


@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 4)])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_finite_differences_batchnorm(shape, mode):
    rng = np.random.default_rng(42 + len(shape))
    C = shape[1]
    bn, gamma, beta = make_bn(C, "float64", rng)
    # Give the running statistics non-trivial values first.
    for _ in range(2):
        bn(Tensor(random_input(rng, shape, "float64"), dtype="float64"))
    if mode == "eval":
        bn.eval()
    x = random_input(rng, shape, "float64")
    g = rng.normal(size=shape)
    state = {"x": x}

    t = Tensor(x, requires_grad=True, dtype="float64")
    y = bn(t)
    y.backward(g)
    gx = np.array(t.grad)
    gw = np.array(bn.weight.grad)
    gb = np.array(bn.bias.grad)

    def loss():
        out = bn(Tensor(state["x"], dtype="float64"))
        return float(np.sum(np.asarray(out.data, dtype=np.float64) * g))

    def set_x(v):
        state["x"] = v

    def set_param(name):
        def setter(v):
            sd = bn.state_dict()
            sd[name] = v
            bn.load_state_dict(sd)
        return setter

    _fd_check(loss, None, [
        (x, set_x, gx),
        (np.array(bn.weight.data, dtype=np.float64), set_param("weight"), gw),
        (np.array(bn.bias.data, dtype=np.float64), set_param("bias"), gb),
    ], what=f"{mode} {shape}")


def test_finite_differences_linear_then_batchnorm():
    rng = np.random.default_rng(7)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 4)
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x):
            return self.bn(self.linear(x))

    model = Net()
    model.to("float64")
    sd = model.state_dict()
    sd["bn.weight"] = rng.uniform(0.5, 2.0, 4)
    sd["bn.bias"] = rng.normal(size=4)
    model.load_state_dict(sd)
    x = rng.normal(size=(6, 3))
    g = rng.normal(size=(6, 4))
    state = {"x": x}
    t = Tensor(x, requires_grad=True, dtype="float64")
    y = model(t)
    assert y.dtype == np.float64
    y.backward(g)
    grads = {name: np.array(p.grad) for name, p in dict(model.named_parameters()).items()}
    assert set(grads) == {"linear.weight", "linear.bias", "bn.weight", "bn.bias"}

    # Also against the hand-chained reference.
    r = linear_bn_reference(x, sd["linear.weight"], sd["linear.bias"], sd["bn.weight"],
                            sd["bn.bias"], g)
    check(y.data, r["y"], "float64")
    check(t.grad, r["dx"], "float64")
    check(grads["linear.weight"], r["dW"], "float64")
    check(grads["linear.bias"], r["db"], "float64")
    check(grads["bn.weight"], r["dgamma"], "float64")
    check(grads["bn.bias"], r["dbeta"], "float64")

    def loss():
        out = model(Tensor(state["x"], dtype="float64"))
        return float(np.sum(np.asarray(out.data, dtype=np.float64) * g))

    def set_x(v):
        state["x"] = v

    def set_param(name):
        def setter(v):
            d = model.state_dict()
            d[name] = v
            model.load_state_dict(d)
        return setter

    points = [(x, set_x, np.array(t.grad))]
    for name in ("linear.weight", "linear.bias", "bn.weight", "bn.bias"):
        points.append((np.array(sd[name], dtype=np.float64), set_param(name), grads[name]))
    _fd_check(loss, None, points, what="linear->bn")


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("training", [True, False])
def test_error_1d_input(training):
    bn = nn.BatchNorm1d(3)
    if not training:
        bn.eval()
    before = snapshot(bn)
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 1D input\)"):
        bn(Tensor([1.0, 2.0, 3.0]))
    assert_same_snapshot(before, snapshot(bn))


@pytest.mark.parametrize("training", [True, False])
def test_error_4d_input(training):
    bn = nn.BatchNorm1d(3)
    if not training:
        bn.eval()
    before = snapshot(bn)
    with pytest.raises(ValueError, match=r"expected 2D or 3D input.*4D"):
        bn(Tensor(np.ones((2, 3, 4, 5)), dtype="float32"))
    assert_same_snapshot(before, snapshot(bn))
    assert nbt(bn) == 0


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 11), (4, 11, 2)])
def test_error_wrong_channel_count_names_both_numbers(shape, training):
    bn = nn.BatchNorm1d(6)
    if not training:
        bn.eval()
    before = snapshot(bn)
    with pytest.raises(ValueError) as info:
        bn(Tensor(np.ones(shape), dtype="float32"))
    msg = str(info.value)
    assert re.search(r"\b6\b", msg), msg
    assert re.search(r"\b11\b", msg), msg
    assert_same_snapshot(before, snapshot(bn))
    assert nbt(bn) == 0


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1)])
@pytest.mark.parametrize("track", [True, False])
def test_error_one_value_per_channel_in_train_mode(shape, track):
    rng = np.random.default_rng(5)
    bn, _, _ = make_bn(3, "float32", rng, track_running_stats=track)
    before = snapshot(bn)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        bn(Tensor(np.ones(shape), requires_grad=True, dtype="float32"))
    assert_same_snapshot(before, snapshot(bn))
    if track:
        assert nbt(bn) == 0
    assert bn.weight.grad is None and bn.bias.grad is None
    # The module still works afterwards, and only that later call counts.
    x = random_input(rng, (4, 3), "float32")
    y = bn(Tensor(x, dtype="float32"))
    r = ref.RefBatchNorm1d(3, weight=before["weight"], bias=before["bias"])
    check(y.data, r(x), "float32")
    if track:
        assert nbt(bn) == 1
        check(bn.running_mean.data, r.running_mean, "float32")
        check(bn.running_var.data, r.running_var, "float32")


def test_error_after_training_leaves_trained_state_unchanged():
    rng = np.random.default_rng(9)
    bn, _, _ = make_bn(3, "float32", rng)
    for _ in range(3):
        bn(Tensor(random_input(rng, (5, 3), "float32"), dtype="float32"))
    before = snapshot(bn)
    assert nbt(bn) == 3
    for bad in (np.ones((1, 3)), np.ones((1, 3, 1)), np.ones((5, 4)), np.ones(3),
                np.ones((2, 3, 2, 2))):
        with pytest.raises(ValueError):
            bn(Tensor(bad, dtype="float32"))
        assert_same_snapshot(before, snapshot(bn))
    assert nbt(bn) == 3


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 3, 4)])
def test_single_sample_fine_in_eval_mode(shape):
    rng = np.random.default_rng(13)
    bn, gamma, beta = make_bn(3, "float32", rng)
    r = ref.RefBatchNorm1d(3, weight=gamma, bias=beta)
    x0 = random_input(rng, (6, 3), "float32")
    bn(Tensor(x0, dtype="float32"))
    r(x0)
    bn.eval()
    r.eval()
    before = snapshot(bn)
    x = random_input(rng, shape, "float32")
    t = Tensor(x, requires_grad=True, dtype="float32")
    y = bn(t)
    check(y.data, r(x), "float32")
    g = rng.normal(size=shape).astype("float32")
    y.backward(g)
    dx, dgamma, dbeta = r.backward(g)
    check(t.grad, dx, "float32")
    check(bn.weight.grad, dgamma, "float32")
    check(bn.bias.grad, dbeta, "float32")
    assert_same_snapshot(before, snapshot(bn))


def test_one_sample_with_length_is_fine_in_train_mode():
    # (1, C, L) with L > 1 has M = L > 1 values per channel.
    rng = np.random.default_rng(17)
    bn = nn.BatchNorm1d(3)
    r = ref.RefBatchNorm1d(3)
    x = random_input(rng, (1, 3, 4), "float32")
    check(bn(Tensor(x, dtype="float32")).data, r(x), "float32")
    check(bn.running_var.data, r.running_var, "float32")
    assert nbt(bn) == 1


@pytest.mark.parametrize("num_features", [0, -1])
def test_constructor_rejects_nonpositive_num_features(num_features):
    with pytest.raises(ValueError):
        nn.BatchNorm1d(num_features)


def test_constructor_rejects_float_num_features():
    with pytest.raises((ValueError, TypeError)):
        nn.BatchNorm1d(2.5)


@pytest.mark.parametrize("eps", [-1.0, float("nan")])
def test_constructor_rejects_bad_eps(eps):
    with pytest.raises(ValueError):
        nn.BatchNorm1d(3, eps=eps)


@pytest.mark.parametrize("momentum", [-0.1, 1.5])
def test_constructor_rejects_bad_momentum(momentum):
    with pytest.raises(ValueError):
        nn.BatchNorm1d(3, momentum=momentum)


@pytest.mark.parametrize("kw", [dict(momentum=0.0), dict(momentum=1.0), dict(momentum=None),
                                dict(eps=0.0), dict(affine=False),
                                dict(track_running_stats=False)])
def test_constructor_accepts_boundary_values(kw):
    bn = nn.BatchNorm1d(3, **kw)
    y = bn(Tensor(np.arange(6.0).reshape(2, 3) + np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]), dtype="float32"))
    assert y.shape == (2, 3)


def test_default_construction_values():
    bn = nn.BatchNorm1d(5)
    assert bn.eps == pytest.approx(1e-5)
    assert bn.momentum == pytest.approx(0.1)
    assert isinstance(bn.weight, nn.Parameter) and isinstance(bn.weight, Tensor)
    assert bn.weight.requires_grad and bn.bias.requires_grad
    np.testing.assert_array_equal(bn.weight.data, np.ones(5))
    np.testing.assert_array_equal(bn.bias.data, np.zeros(5))
    np.testing.assert_array_equal(bn.running_mean.data, np.zeros(5))
    np.testing.assert_array_equal(bn.running_var.data, np.ones(5))
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        assert t.dtype == np.float32
        assert t.shape == (5,)
    assert nbt(bn) == 0
    assert bn.weight.grad is None and bn.bias.grad is None


# ----------------------------------------------------------------------------- graph independence

def test_backward_of_older_output_uses_its_own_batch_statistics():
    # Two forward calls before any backward: each output keeps its own graph and statistics.
    rng = np.random.default_rng(21)
    bn, gamma, beta = make_bn(3, "float64", rng)
    r1 = ref.RefBatchNorm1d(3, weight=gamma, bias=beta)
    r2 = ref.RefBatchNorm1d(3, weight=gamma, bias=beta)
    x1 = random_input(rng, (4, 3), "float64")
    x2 = random_input(rng, (6, 3), "float64") * 3.0
    t1 = Tensor(x1, requires_grad=True, dtype="float64")
    t2 = Tensor(x2, requires_grad=True, dtype="float64")
    y1 = bn(t1)
    y2 = bn(t2)
    g1 = rng.normal(size=x1.shape)
    g2 = rng.normal(size=x2.shape)
    y1.backward(g1)
    r1(x1)
    dx1, dgamma1, dbeta1 = r1.backward(g1)
    check(t1.grad, dx1, "float64")
    check(bn.weight.grad, dgamma1, "float64")
    y2.backward(g2)
    r2(x2)
    dx2, dgamma2, dbeta2 = r2.backward(g2)
    check(t2.grad, dx2, "float64")
    check(bn.weight.grad, dgamma1 + dgamma2, "float64")
    check(bn.bias.grad, dbeta1 + dbeta2, "float64")


def test_mode_switch_between_forward_and_backward_keeps_train_gradient():
    rng = np.random.default_rng(22)
    bn, gamma, beta = make_bn(3, "float64", rng)
    x = random_input(rng, (5, 3, 2), "float64")
    g = rng.normal(size=x.shape)
    t = Tensor(x, requires_grad=True, dtype="float64")
    y = bn(t)
    bn.eval()
    y.backward(g)
    _, cache = ref.forward_train(x, gamma, beta)
    dx, dgamma, dbeta = ref.backward_train(g, cache)
    check(t.grad, dx, "float64")
    check(bn.weight.grad, dgamma, "float64")
    check(bn.bias.grad, dbeta, "float64")
