"""Regression tests for what this session's review found (clamp with NaN bounds; in-place ops
on a tensor an earlier call consumed). References: NumPy's maximum/minimum, which propagate
NaN as torch's clamp does, and the gradients written out from the maths."""
import warnings

import numpy as np
import pytest

import lucid
from lucid import Tensor

NAN = float("nan")


def reference_clamp(x, lo, hi):
    out = x if lo is None else np.maximum(x, lo)  # maximum/minimum propagate NaN from either side
    return out if hi is None else np.minimum(out, hi)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lo, hi", [(NAN, None), (None, NAN), (NAN, 1.0), (0.0, NAN), (NAN, NAN),
                                    (0.0, 1.0), (1.0, 0.0), (None, float("inf"))])
def test_clamp_with_number_bounds_propagates_nan_as_torch(dtype, lo, hi):
    x = np.array([-2.0, 0.5, NAN, 3.0], dtype)
    t = Tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = lucid.clamp(t, min=lo, max=hi)
    want = reference_clamp(x, lo, hi)
    np.testing.assert_array_equal(y.data, want)  # NaN == NaN here
    assert y.dtype == dtype
    y.sum().backward()
    inside = (x >= (-np.inf if lo is None else lo)) & (x <= (np.inf if hi is None else hi))
    np.testing.assert_array_equal(t.grad, inside.astype(dtype))  # NaN compares False: no gradient


def test_clamp_of_an_integer_tensor_with_a_nan_bound_is_float_nan():
    y = lucid.clamp(Tensor(np.array([-2, 0, 3])), min=NAN)
    assert y.dtype == "float32" and np.isnan(y.data).all()


def test_clamp_with_tensor_bounds_holding_nan_against_numpy_and_the_gradient_rule():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, lo, hi = (rng.normal(size=7) for _ in range(3))
        for a in (x, lo, hi):
            a[rng.random(7) < 0.2] = NAN
        ts = [Tensor(a.copy(), requires_grad=True) for a in (x, lo, hi)]
        y = lucid.clamp(ts[0], min=ts[1], max=ts[2])
        want = reference_clamp(x, lo, hi)
        np.testing.assert_array_equal(y.data, want)
        y.sum().backward()
        # torch's rule where the result is a number: x where lo <= x <= hi, hi where x > hi or
        # hi < lo, lo where x < lo < hi
        finite = ~np.isnan(want)
        with np.errstate(invalid="ignore"):
            to_x = (x >= lo) & (x <= hi)
            to_hi = ((x > hi) | (hi < lo)) & ~to_x
            to_lo = (x < lo) & (lo < hi)
        for t, rule in zip(ts, (to_x, to_lo, to_hi)):
            got = np.zeros(7) if t.grad is None else t.grad
            np.testing.assert_array_equal(got[finite], rule[finite].astype(float))


MASK = np.array([True, False, True])
X = np.array([0.5, 1.0, 1.5], np.float32)


def test_an_in_place_op_leaves_an_earlier_consumer_differentiating_the_old_value():
    a = Tensor(X, requires_grad=True)
    b = a * 1.0
    c = b.exp()
    b.masked_fill_(Tensor(MASK), 0.0)  # c read b before: its gradient goes to a through a * 1.0
    c.sum().backward()
    np.testing.assert_allclose(a.grad, np.exp(X), rtol=1e-6)


def test_old_and_new_values_of_a_tensor_written_in_place_both_differentiate():
    a = Tensor(X, requires_grad=True)
    b = a * 2.0
    c = b.exp()
    b.masked_fill_(Tensor(MASK), 0.0)
    (c + b * 3.0).sum().backward()
    np.testing.assert_allclose(a.grad, 2 * np.exp(2 * X) + 6 * ~MASK, rtol=1e-6)


def test_two_in_place_ops_each_consumer_sees_its_own_version():
    a = Tensor(X, requires_grad=True)
    b = a * 1.0
    c = b.exp()      # exp(a)
    b += 1.0
    d = b * b        # (a + 1)**2
    b *= 3.0         # 3 (a + 1)
    (c + d + b).sum().backward()
    np.testing.assert_allclose(a.grad, np.exp(X) + 2 * (X + 1) + 3, rtol=1e-6)
    assert b._version == 2


def test_an_eval_module_call_before_an_in_place_op_differentiates_the_old_value():
    lucid.manual_seed(0)
    lin = lucid.nn.Linear(3, 2).eval()  # eval: the gradient program is compiled on backward
    a = Tensor(X.reshape(1, 3), requires_grad=True)
    b = a * 2.0
    y = lin(b)
    b.masked_fill_(Tensor(MASK), 0.0)
    y.sum().backward()
    np.testing.assert_allclose(a.grad, 2 * lin.weight.data.sum(0, keepdims=True), rtol=1e-6)


@pytest.mark.parametrize("dtype, value", [("int64", 1e20), ("int64", 2**63), ("int64", NAN),
                                          ("int64", float("inf")), ("float32", 1e39),
                                          ("float32", -1e39)])
def test_masked_fill_with_a_value_out_of_the_dtypes_range_is_a_runtime_error_as_torch(dtype, value):
    x = Tensor(np.zeros(2, dtype))
    with pytest.raises(RuntimeError, match="cannot be converted"):
        x.masked_fill(Tensor(np.array([True, False])), value)


def test_masked_fill_converts_values_in_range_as_torch():
    m = Tensor(np.array([True, False]))
    assert Tensor(np.zeros(2, np.int64)).masked_fill(m, -7.9).data.tolist() == [-7, 0]
    assert Tensor(np.zeros(2)).masked_fill(m, 1e300).data.tolist() == [1e300, 0.0]
    assert Tensor(np.zeros(2, np.float32)).masked_fill(m, -np.inf).data.tolist() == [-np.inf, 0.0]


INF = float("inf")


@pytest.mark.parametrize("f", [lambda v: (v + INF) - INF, lambda v: v - INF + INF,
                               lambda v: v + NAN - NAN, lambda v: v * INF / INF],
                         ids=["add-sub", "sub-add", "nan", "mul-div"])
def test_two_uses_of_a_non_finite_constant_do_not_cancel(f):
    # inf - inf and inf / inf are NaN at run time, as in torch and the node-by-node executor
    x = np.array([1.0, -2.0, 0.5], np.float64)
    t = Tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = f(t)
        assert np.isnan(y.data).all()
        program = lucid.compile(f, lucid.placeholder((3,), "float64", name="x"), mode="eval")
        assert np.isnan(program(x)["out"]).all()


def test_a_module_whose_forward_adds_and_subtracts_inf_gives_nan():
    class Shift(lucid.nn.Module):
        def forward(self, v):
            return (v + INF) - INF
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(Shift()(Tensor(np.ones((2, 3), np.float32))).data).all()


def _grid():
    return Tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32))


@pytest.mark.parametrize("write, want", [
    (lambda x: x.view(6).zero_(), np.zeros((2, 3))),
    (lambda x: x.T.__setitem__(0, 9.0), [[9, 2, 3], [9, 5, 6]]),
    (lambda x: x[0].copy_(Tensor(np.array([7.0, 7.0, 7.0], np.float32))), [[7, 7, 7], [4, 5, 6]]),
    (lambda x: x[:, 1:].__imul__(10.0), [[1, 20, 30], [4, 50, 60]]),
    (lambda x: x.reshape(3, 2).permute(1, 0)[1].__isub__(1.0), [[1, 1, 3], [3, 5, 5]]),
    (lambda x: x.unsqueeze(0).flatten()[5:].__iadd__(1.0), [[1, 2, 3], [4, 5, 7]]),
])
def test_a_write_through_a_view_reaches_the_tensor_as_in_torch(write, want):
    # NumPy's views are the reference: the same keys on x.data
    x = _grid()
    write(x)
    np.testing.assert_array_equal(x.data, np.asarray(want, np.float32))


def test_a_view_sees_later_writes_to_its_base_and_clone_does_not():
    x = _grid()
    row, twin = x[1], x.clone()
    x[1, 0] = 100.0
    assert row.data.tolist() == [100.0, 5.0, 6.0]
    assert twin.data[1, 0] == 4.0


def test_an_in_place_op_recorded_on_a_view_is_refused_and_changes_nothing():
    x = Tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    a = x * 2.0
    v = a[1:]
    with pytest.raises(RuntimeError, match="view"):
        v += 10.0
    assert a.data.tolist() == [2.0, 4.0, 6.0] and v.data.tolist() == [4.0, 6.0]
    (a * a).sum().backward()
    np.testing.assert_allclose(x.grad, 8 * x.data)


def test_gradients_through_views_are_unchanged():
    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    (x.T[1:] * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 3, 3], [0, 3, 3]])


def test_a_reduction_is_no_view_and_takes_a_recorded_in_place_op():
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), requires_grad=True)
    s = x.sum(0)
    assert not np.shares_memory(s.data, x.data)
    s *= 2.0  # recorded: s is a new value, not a view
    s.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 2), 2.0))


def _t(values, dtype, requires_grad=False):
    return Tensor(np.asarray(values, dtype), requires_grad=requires_grad)


@pytest.mark.parametrize("make, dtype", [
    (lambda: _t([1, 2], "float32") * _t(2.5, "float64"), "float32"),  # 0-d: like a number
    (lambda: _t(2.5, "float64") - _t([1, 2], "float32"), "float32"),
    (lambda: _t([1, 2], "int64") * _t(2.5, "float64"), "float64"),  # a higher kind keeps its dtype
    (lambda: _t([1, 2], "int64") * _t(2.5, "float32"), "float32"),
    (lambda: _t([1, 2], "float32") * _t(3, "int64"), "float32"),
    (lambda: _t(2.5, "float64") * _t(2.5, "float64"), "float64"),
    (lambda: _t([1, 2], "float64") * _t(2.5, "float32"), "float64"),
    (lambda: lucid.maximum(_t([1, 2], "float32"), _t(1.5, "float64")), "float32"),
    (lambda: lucid.where(_t([True, False], "bool"), _t([1, 2], "float32"), _t(0.5, "float64")),
     "float32"),
    (lambda: _t([1, 2], "float32").clamp(min=_t(1.5, "float64")), "float32"),
])
def test_a_zero_d_tensor_promotes_as_torch_does(make, dtype):
    # torch's rule: 0-d tensors promote like numbers beside tensors of the same kind
    assert make().dtype == dtype


def test_a_zero_d_float64_factor_of_a_float32_tensor_gets_its_gradient():
    x = _t([1.0, 2.0], "float32", requires_grad=True)
    g = _t(3.0, "float64", requires_grad=True)
    y = x * g
    assert y.dtype == "float32"
    y.sum().backward()
    assert g.grad.dtype == np.float64 and float(g.grad) == 3.0
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    a = x * 1.0
    a += _t(2.0, "float64")  # torch: allowed, the result stays float32
    assert a.dtype == "float32" and a.data.tolist() == [3.0, 4.0]


def test_a_second_backward_through_calls_that_saved_nothing_works_as_in_torch():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x + 1.0  # add and sum save nothing for their backward
    y.sum().backward()
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    z = x * x  # saves x: freed after the first backward, as torch's buffers
    z.sum().backward()
    with pytest.raises(RuntimeError):
        z.sum().backward()
