"""The Tensor face: conversions, printing, and gradients through module calls and arithmetic.

Every gradient is compared with a float64 reference derived by hand from the maths.
"""
import numpy as np
import pytest

import lucid.nn as nn
from lucid import Tensor


def rng_for(seed):
    return np.random.default_rng(seed)


def leaf(array):
    return Tensor(array, requires_grad=True, dtype="float64")


# -------------------------------------------------------------------------- conversions
@pytest.mark.parametrize("data, dtype, expected", [
    ([1.0, 2.0], None, np.float32),
    ([1, 2], None, np.int64),  # integer data stays integral, as in torch
    (3.5, None, np.float32),
    (np.array([1.0, 2.0]), None, np.float64),  # a float64 array keeps its precision
    (np.array([1.0, 2.0], np.float32), None, np.float32),
    (np.array([1, 2], np.int64), None, np.int64),
    (np.array([1, 2], np.int32), None, np.int64),
    ([True, False], None, np.bool_),
    ([1.0, 2.0], "float64", np.float64),
    (np.array([1.0], np.float32), np.float64, np.float64),
    ([1, 2], "int64", np.int64),
])
def test_conversions(data, dtype, expected):
    t = Tensor(data, dtype=dtype)
    assert t.dtype == expected
    np.testing.assert_array_equal(t.data, np.asarray(data, np.float64))
    assert t.grad is None and not t.requires_grad


def test_tensor_copies_lists_and_converted_arrays_but_shares_a_same_dtype_array():
    # Documented like torch.as_tensor: an ndarray of the wanted dtype is shared, not copied.
    data = [1.0, 2.0]
    assert Tensor(data).data.tolist() == [1.0, 2.0]
    a64 = np.array([1.0, 2.0])
    t32 = Tensor(a64, dtype="float32")
    a64[0] = 7.0
    assert t32.data[0] == 1.0  # converted: a copy
    shared = Tensor(a64)
    assert shared.data is a64 and shared.dtype == np.float64
    t = Tensor(shared)
    a64[1] = 9.0
    assert t.data[1] == 2.0  # a Tensor of a Tensor is a copy


@pytest.mark.parametrize("data", [[[1.0, 2.0], [3.0]], [[1.0], 2.0], None, [1.0, None], {"a": 1}])
def test_ragged_or_missing_data_is_a_value_error(data):
    with pytest.raises(ValueError, match="rectangular"):
        Tensor(data)


@pytest.mark.parametrize("data", [["a", "b"], "text", [1.0, "a"]])
def test_non_numeric_data_is_a_type_error(data):
    with pytest.raises(TypeError, match="numeric"):
        Tensor(data)


@pytest.mark.parametrize("kwargs", [{"dtype": "complex64"}, {"dtype": "float16"},
                                    {"dtype": "int64", "requires_grad": True}])
def test_unsupported_dtypes_are_type_errors(kwargs):
    with pytest.raises(TypeError):
        Tensor([1, 2], **kwargs)


def test_print_form():
    t = Tensor([1.0, 2.0], requires_grad=True)
    assert str(t) == "Tensor([1., 2.], grad=None)"
    assert repr(Tensor([[1.5, -2.0]])) == "Tensor([[ 1.5, -2. ]], grad=None)"
    (t * t).sum().backward()
    assert str(t) == "Tensor([1., 2.], grad=[2., 4.])"


# ------------------------------------------------------- gradients through arithmetic
def test_arithmetic_chain_against_hand_derivation():
    rng = rng_for(1)
    xv, yv = rng.normal(size=(4, 3)), rng.uniform(0.5, 2.0, (4, 3))
    x, y = leaf(xv), leaf(yv)
    z = ((x * y - x / y + 2.0) - 3.0 * y).mean()
    assert z.dtype == np.float64 and z.shape == ()
    np.testing.assert_allclose(z.data, np.mean(xv * yv - xv / yv + 2.0 - 3.0 * yv), rtol=1e-14)
    z.backward()
    n = xv.size
    np.testing.assert_allclose(x.grad, (yv - 1 / yv) / n, rtol=1e-12)
    np.testing.assert_allclose(y.grad, (xv + xv / yv ** 2 - 3.0) / n, rtol=1e-12)


def test_matmul_and_axis_sums_against_hand_derivation():
    rng = rng_for(2)
    av, bv, cv = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=(5,))
    a, b, c = leaf(av), leaf(bv), leaf(cv)
    h = (a @ b + c).sum(axis=0)  # (5,)
    dh = rng.normal(size=(5,))
    h.backward(Tensor(dh, dtype="float64"))  # the upstream gradient as a Tensor
    g = np.broadcast_to(dh, (4, 5))
    np.testing.assert_allclose(a.grad, g @ bv.T, rtol=1e-12)
    np.testing.assert_allclose(b.grad, av.T @ g, rtol=1e-12)
    np.testing.assert_allclose(c.grad, 4 * dh, rtol=1e-12)


def test_reused_tensor_gets_every_contribution():
    xv = np.array([1.0, -2.0, 3.0])
    x = leaf(xv)
    y = x * x + x  # the same leaf three times
    z = (y * x).sum(axis=0, keepdims=True)
    z.backward(np.ones(1))
    np.testing.assert_allclose(x.grad, 3 * xv ** 2 + 2 * xv, rtol=1e-14)


def test_module_chain_against_hand_derivation():
    rng = rng_for(3)
    model = nn.Sequential(nn.Linear(3, 4, dtype="float64"), nn.ReLU(),
                          nn.Linear(4, 2, dtype="float64"))
    xv = rng.normal(size=(6, 3))
    x = leaf(xv)
    y = model(x)
    out = ((y - 1.0) * (y - 1.0)).mean()  # module calls, then Tensor arithmetic
    out.backward()
    w1, b1 = model[0].weight.data, model[0].bias.data
    w2, b2 = model[2].weight.data, model[2].bias.data
    pre = xv @ w1.T + b1
    hidden = np.maximum(pre, 0)
    yv = hidden @ w2.T + b2
    np.testing.assert_allclose(out.data, np.mean((yv - 1) ** 2), rtol=1e-12)
    dy = 2 * (yv - 1) / yv.size
    dhidden = dy @ w2 * (pre > 0)
    np.testing.assert_allclose(model[2].weight.grad, dy.T @ hidden, rtol=1e-10)
    np.testing.assert_allclose(model[2].bias.grad, dy.sum(0), rtol=1e-10)
    np.testing.assert_allclose(model[0].weight.grad, dhidden.T @ xv, rtol=1e-10)
    np.testing.assert_allclose(model[0].bias.grad, dhidden.sum(0), rtol=1e-10)
    np.testing.assert_allclose(x.grad, dhidden @ w1, rtol=1e-10)


def test_batchnorm_then_arithmetic_in_float32():
    x = Tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]], requires_grad=True)
    bn = nn.BatchNorm1d(2)
    y = bn(x)
    (y * 1.0).sum().backward()  # SPEC errata: an all-ones upstream gives dx = 0
    np.testing.assert_allclose(y.data, [[[-1.2247, 0, 1.2247]] * 2], atol=1e-4)
    np.testing.assert_allclose(x.grad, np.zeros((1, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(bn.weight.grad, [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(bn.bias.grad, [3.0, 3.0])
    assert x.grad.dtype == bn.weight.grad.dtype == np.float32


# ----------------------------------------------------------------- accumulation, errors
def test_grads_accumulate_until_zero_grad():
    model = nn.Linear(2, 1, dtype="float64")
    xv = np.array([[1.0, 2.0], [3.0, -1.0]])
    model(Tensor(xv, dtype="float64")).sum().backward()
    first = model.weight.grad.copy()
    np.testing.assert_allclose(first, [xv.sum(0)], rtol=1e-14)
    model(Tensor(xv, dtype="float64")).sum().backward()
    np.testing.assert_allclose(model.weight.grad, 2 * first, rtol=1e-14)
    np.testing.assert_allclose(model.bias.grad, [4.0])
    model.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None
    model(Tensor(xv, dtype="float64")).sum().backward()
    np.testing.assert_allclose(model.weight.grad, first, rtol=1e-14)
    model.weight.grad = None
    model(Tensor(xv, dtype="float64")).sum().backward()
    np.testing.assert_allclose(model.weight.grad, first, rtol=1e-14)
    np.testing.assert_allclose(model.bias.grad, [4.0])  # bias was not reset: 2 + 2


def test_leaf_grad_is_not_aliased_to_the_upstream_gradient():
    x = leaf([1.0, 2.0])
    y = x * 1.0
    dy = np.array([1.0, 1.0])
    y.backward(dy)
    x.grad[0] = 5.0
    y2 = x + 0.0
    y2.backward(dy)
    np.testing.assert_array_equal(dy, [1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [6.0, 2.0])


def test_backward_without_grad_only_for_one_element_outputs():
    x = leaf([[1.0, 2.0]])
    (x * 3.0).sum(axis=1).backward()  # shape (1,): one element
    np.testing.assert_array_equal(x.grad, [[3.0, 3.0]])
    with pytest.raises(ValueError, match="one-element"):
        (x * 3.0).backward()
    np.testing.assert_array_equal(x.grad, [[3.0, 3.0]])


def test_backward_needs_a_graph():
    with pytest.raises(ValueError, match="does not require grad"):
        (Tensor([1.0, 2.0]) * 2.0).sum().backward()


@pytest.mark.parametrize("grad", [np.ones(3), np.ones((2, 1)), np.ones((1, 2, 1)), 1.0])
def test_wrong_grad_shape_is_a_value_error_and_changes_nothing(grad):
    x = leaf([[1.0], [2.0]])
    (x * 2.0).backward(np.ones((2, 1)))
    model = nn.Linear(1, 2, dtype="float64")
    y = model(x)  # (2, 2)
    y.backward(np.ones((2, 2)))
    before = [x.grad.copy(), model.weight.grad.copy(), model.bias.grad.copy()]
    with pytest.raises(ValueError, match=r"grad has shape .*expected \(2, 2\)"):
        model(x).backward(grad)
    for old, new in zip(before, [x.grad, model.weight.grad, model.bias.grad]):
        np.testing.assert_array_equal(old, new)


# ----------------------------------------------------------- reflected operands (PyTorch)
def test_number_divided_by_tensor():
    x = leaf([1.0, 4.0])
    y = 2.0 / x
    np.testing.assert_allclose(y.data, [2.0, 0.5])
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [-2.0, -0.125])


def test_ndarray_times_tensor_stays_a_tensor():
    x = leaf([1.0, 4.0])
    y = np.array([3.0, 5.0]) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 5.0])


def test_mixed_precision_grads_keep_each_leaf_dtype():
    a, b = Tensor([1.0, 2.0], requires_grad=True), leaf([3.0, 4.0])
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])


def test_integer_tensor_division_gives_float32():
    y = Tensor([1, 2, 3], dtype="int64") / 2
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, [0.5, 1.0, 1.5])


def test_module_returning_a_full_sum_backpropagates():
    class Total(nn.Module):
        def forward(self, x):
            return x.sum()

    x = leaf(np.ones((4, 3)))
    Total()(x).backward()
    np.testing.assert_array_equal(x.grad, np.ones((4, 3)))
