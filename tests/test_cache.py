"""The Tensor face's program caches: what recompiles, what does not, and that results follow.

Compiles are counted by wrapping :func:`lucid.compiler.compile`; every value is checked
against a NumPy computation.
"""
import numpy as np
import pytest

import lucid.nn as nn
from lucid import Tensor, compiler
from lucid.eager import programs

RNG = np.random.default_rng(7)


class Net(nn.Module):
    """Linear then BatchNorm1d."""

    def __init__(self, lin, bn):
        super().__init__()
        self.lin, self.bn = lin, bn

    def forward(self, x):
        return self.bn(self.lin(x))


def linear_ref(lin, x):
    return x @ lin.weight.data.T + lin.bias.data


def bn_train_ref(bn, x):
    mean, var = x.mean(0), x.var(0)
    return (x - mean) / np.sqrt(var + bn.eps) * bn.weight.data + bn.bias.data


def net_ref(net, x):
    return bn_train_ref(net.bn, linear_ref(net.lin, x))


def f64(*shape):
    return RNG.normal(size=shape)


# ------------------------------------------------------------------ unrelated changes
@pytest.mark.parametrize("change", [
    lambda m: setattr(m, "tag", 1),
    lambda m: setattr(m, "in_features", 3),
    lambda m: m.register_buffer("extra", Tensor([1.0])),
    lambda m: setattr(m.weight, "requires_grad", False),
    lambda m: m.to("float64"),
])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_changing_an_unrelated_module_recompiles_nothing(compiles, change, mode):
    bn = nn.BatchNorm1d(4, dtype="float64").train(mode == "train")
    x = f64(8, 4)
    first = bn(Tensor(x)).data
    (entry,) = bn._programs.values()
    assert compiles[0] == 1
    other = nn.Linear(3, 3)
    for _ in range(3):
        change(other)
        y = bn(Tensor(x))
    assert compiles[0] == 1
    assert list(bn._programs.values()) == [entry]  # the very same program object
    np.testing.assert_allclose(y.data, first, rtol=1e-12)


def test_train_eval_switches_reuse_both_programs(compiles):
    bn = nn.BatchNorm1d(4, dtype="float64")
    x = Tensor(f64(8, 4))
    for _ in range(3):
        bn.train()(x)
        bn.eval()(x)
    assert compiles[0] == 2


# ------------------------------------------------------------------ a child's changes
def make_net():
    return Net(nn.Linear(3, 4, dtype="float64"), nn.BatchNorm1d(4, dtype="float64"))


def test_a_childs_hyper_parameter_recompiles_the_parent(compiles):
    net, x = make_net(), f64(8, 3)
    np.testing.assert_allclose(net(Tensor(x)).data, net_ref(net, x), rtol=1e-10)
    net.eval()(Tensor(x))
    net.train()
    n = compiles[0]
    net.bn.eps = 10.0  # large enough to move every output
    y = net(Tensor(x)).data
    assert compiles[0] == n + 1
    np.testing.assert_allclose(y, net_ref(net, x), rtol=1e-10)
    assert len(net._programs) == 1  # the stale eval program was dropped, not kept
    net.bn.eps = 1e-5
    np.testing.assert_allclose(net(Tensor(x)).data, net_ref(net, x), rtol=1e-10)
    assert not np.allclose(y, net_ref(net, x))


def test_replacing_a_child_recompiles_and_forgets_the_old_one(compiles):
    net, x = make_net(), f64(8, 3)
    net(Tensor(x))
    old = net.lin
    net.lin = nn.Linear(3, 4, dtype="float64")
    np.testing.assert_allclose(net(Tensor(x)).data, net_ref(net, x), rtol=1e-10)
    n = compiles[0]
    old.tag = 1  # no longer part of net
    old.bias = None
    net(Tensor(x))
    assert compiles[0] == n


def test_a_grandchilds_change_reaches_the_grandparent(compiles):
    net, x = make_net(), f64(8, 3)
    outer = nn.Sequential(net)
    outer(Tensor(x))
    n = compiles[0]
    net.bn.eps = 10.0
    np.testing.assert_allclose(outer(Tensor(x)).data, net_ref(net, x), rtol=1e-10)
    assert compiles[0] == n + 1


def test_requires_grad_off_on_a_childs_weight_recompiles_the_parent(compiles):
    net, x = make_net(), f64(8, 3)
    g = f64(8, 4)
    net(Tensor(x)).backward(g)
    xhat = (bn_train_ref(net.bn, linear_ref(net.lin, x)) - net.bn.bias.data) / net.bn.weight.data
    np.testing.assert_allclose(net.bn.weight.grad, (xhat * g).sum(0), rtol=1e-10)
    net.zero_grad()
    n = compiles[0]
    net.bn.weight.requires_grad = False
    net(Tensor(x)).backward(g)
    assert compiles[0] == n + 1
    assert net.bn.weight.grad is None
    np.testing.assert_allclose(net.bn.bias.grad, g.sum(0), rtol=1e-12)
    np.testing.assert_allclose(net.lin.bias.grad, np.zeros(4), atol=1e-10)  # BN undoes shifts


def test_a_childs_dtype_change_recompiles_the_parent(compiles):
    net = Net(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = f64(8, 3).astype(np.float32)
    assert net(Tensor(x)).dtype == np.float32
    n = compiles[0]
    net.lin.to("float64")  # float32 input times float64 weight: float64 from there on
    y = net(Tensor(x))
    assert compiles[0] == n + 1
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.data, net_ref(net, x.astype(np.float64)), rtol=1e-6)


def test_a_conversion_that_changes_nothing_recompiles_nothing(compiles):
    net, x = make_net(), f64(8, 3)
    net(Tensor(x))
    net.to("float64")
    net(Tensor(x))
    assert compiles[0] == 1


# ------------------------------------------------------------------ sharing
def test_a_module_shared_by_two_parents(compiles):
    bn = nn.BatchNorm1d(4, dtype="float64")
    a = Net(nn.Linear(3, 4, dtype="float64"), bn)
    b = Net(nn.Linear(3, 4, dtype="float64"), bn)
    x = f64(8, 3)
    a(Tensor(x)), b(Tensor(x)), bn(Tensor(f64(8, 4)))
    assert compiles[0] == 3
    a.tag = 1  # a's own change: b and bn are untouched
    a(Tensor(x)), b(Tensor(x)), bn(Tensor(f64(8, 4)))
    assert compiles[0] == 4
    bn.eps = 10.0  # the shared child: all three recompile
    np.testing.assert_allclose(a(Tensor(x)).data, net_ref(a, x), rtol=1e-10)
    np.testing.assert_allclose(b(Tensor(x)).data, net_ref(b, x), rtol=1e-10)
    xb = f64(8, 4)
    np.testing.assert_allclose(bn(Tensor(xb)).data, bn_train_ref(bn, xb), rtol=1e-10)
    assert compiles[0] == 7


def test_a_parameter_shared_with_a_converted_module(compiles):
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight  # tied: b is not inside a, yet a.to converts b's weight
    x = f64(5, 3)
    b(Tensor(x, dtype="float32"))
    n = compiles[0]
    a.to("float64")
    y = b(Tensor(x))
    assert compiles[0] == n + 1
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.data, linear_ref(b, x), rtol=1e-6)


def test_a_module_called_without_being_a_child(compiles):
    class Holder(nn.Module):
        def __init__(self, bn):
            super().__init__()
            self.helpers = [bn]  # a plain list: not a registered child

        def forward(self, x):
            return self.helpers[0](x) * 2.0

    bn = nn.BatchNorm1d(4, dtype="float64")
    holder, x = Holder(bn), f64(8, 4)
    holder(Tensor(x))
    bn.eps = 10.0
    np.testing.assert_allclose(holder(Tensor(x)).data, 2 * bn_train_ref(bn, x), rtol=1e-10)
    assert compiles[0] == 2


def test_an_eval_backward_differentiates_what_required_grad_at_the_forward(compiles):
    bn = nn.BatchNorm1d(3, dtype="float64").eval()
    x, g = f64(4, 3), f64(4, 3)
    xhat = x / np.sqrt(1 + bn.eps)  # running statistics: mean 0, var 1
    y = bn(Tensor(x))
    bn.weight.requires_grad = False  # after the forward: this call still computes it...
    y.backward(g)
    assert bn.weight.grad is None  # ...but a parameter that no longer asks gets none
    np.testing.assert_allclose(bn.bias.grad, g.sum(0), rtol=1e-12)
    bn.zero_grad()
    bn.weight.requires_grad = True  # back as when the program was compiled
    bn(Tensor(x)).backward(g)
    np.testing.assert_allclose(bn.weight.grad, (xhat * g).sum(0), rtol=1e-10)
    np.testing.assert_allclose(bn.bias.grad, g.sum(0), rtol=1e-12)


# ------------------------------------------------------------------ Python scalars
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_program_serves_every_scalar(compiles, dtype):
    xv = RNG.normal(size=(5, 3)).astype(dtype)
    g = RNG.normal(size=(5, 3)).astype(dtype)
    scalars = np.linspace(-3.0, 4.0, 50)
    rtol = 1e-6 if dtype == "float32" else 1e-14
    for c in scalars:
        t = Tensor(xv, requires_grad=True)
        y = t * float(c)
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(y.data, xv * float(c))
        y.backward(g)
        np.testing.assert_allclose(t.grad, float(c) * g, rtol=rtol)  # d(t*c)/dt = c
        assert t.grad.dtype == np.dtype(dtype)
    assert compiles[0] == 1


@pytest.mark.parametrize("op, value, grad", [
    (lambda t, c: c - t, lambda x, c: c - x, lambda x, c: -np.ones_like(x)),
    (lambda t, c: c / t, lambda x, c: c / x, lambda x, c: -c / x ** 2),
    (lambda t, c: t / c, lambda x, c: x / c, lambda x, c: np.ones_like(x) / c),
    (lambda t, c: t + c, lambda x, c: x + c, lambda x, c: np.ones_like(x)),
])
def test_scalars_on_either_side(compiles, op, value, grad):
    xv = RNG.uniform(0.5, 2.0, size=(4, 3))
    for c in [2.0, 3.0, 7, -0.25, 11]:
        t = Tensor(xv, requires_grad=True)
        y = op(t, c)
        np.testing.assert_allclose(y.data, value(xv, c), rtol=1e-14)
        y.sum().backward()
        np.testing.assert_allclose(t.grad, grad(xv, c), rtol=1e-14)
    assert compiles[0] == 2  # the op, and the sum


def test_an_int64_tensor_and_int_scalars_stay_int64(compiles):
    xv = np.array([[1, -2, 3], [40, 5, -6]], np.int64)
    t = Tensor(xv, dtype="int64")
    for c in range(-3, 7):
        for y, ref in [(t * c, xv * c), (c - t, c - xv), (t + c, xv + c)]:
            assert y.dtype == np.int64
            np.testing.assert_array_equal(y.data, ref)
    assert compiles[0] == 3
    # a float scalar beside an int64 tensor is float32, as a constant in a graph is
    for c in [2.5, -0.5]:
        y = t * c
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y.data, (xv * c).astype(np.float32))
    assert (t / 4).dtype == np.float32
    np.testing.assert_allclose((t / 4).data, xv / 4, rtol=1e-7)


def test_a_float32_tensor_keeps_its_dtype_beside_any_scalar(compiles):
    t = Tensor(RNG.normal(size=(3,)).astype(np.float32))
    for c in [2, 2.5, np.float64(0.1), np.int64(3)]:
        y = t * c
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y.data, t.data * np.float32(c))
    assert compiles[0] == 1
