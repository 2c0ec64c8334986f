"""Small torch-parity fixes: argmax/argmin(keepdim=True) over all dims, duplicate parameters."""
import numpy as np
import pytest

import lucid


@pytest.mark.parametrize("fn, ref", [(lucid.argmax, np.argmax), (lucid.argmin, np.argmin)])
@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 4)])
def test_arg_extreme_over_all_dims_keeps_every_dim(fn, ref, shape):
    data = np.random.default_rng(1).permutation(np.prod(shape)).reshape(shape).astype(np.float32)
    got = fn(lucid.Tensor(data), keepdim=True)
    assert got.shape == (1,) * len(shape)  # torch: keepdim over the flattened input
    assert got.data.item() == ref(data)
    assert fn(lucid.Tensor(data)).shape == ()
    program = lucid.compile(lambda t: fn(t, keepdim=True), lucid.placeholder(shape, name="t"))
    np.testing.assert_array_equal(program(data)["out"], np.full((1,) * len(shape), ref(data)))


def test_duplicate_parameter_in_one_group_is_named_as_such():
    p, q = lucid.nn.Parameter([1.0]), lucid.nn.Parameter([2.0])
    with pytest.raises(ValueError, match="group with duplicate parameters"):
        lucid.optim.SGD([p, q, p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        lucid.optim.SGD([{"params": [p]}, {"params": [q, p]}], lr=0.1)
    opt = lucid.optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="duplicate"):
        opt.add_param_group({"params": [q, q]})
    assert len(opt.param_groups) == 1  # the failed call added nothing


@pytest.mark.parametrize("k", [0.5, 2.0, 1.0, -1.5])
def test_integer_tensor_to_a_float_power_is_float32(k):
    data = np.array([1, 4, 9])
    got = lucid.Tensor(data) ** k
    assert got.dtype == np.float32  # torch: the default float dtype
    np.testing.assert_allclose(got.data, data.astype(np.float64) ** k, rtol=1e-6)


def test_int_and_float_exponents_are_different_programs():
    # the eager cache keyed 2 and 2.0 alike (equal to Python), so the second call got the
    # first one's program and its dtype
    x = lucid.Tensor(np.array([1, 4]))
    assert (x ** 2.0).dtype == np.float32
    assert (x ** 2).dtype == np.int64
    assert (x ** 2.0).dtype == np.float32
    with pytest.raises(ValueError, match="to the power -1"):
        x ** -1  # torch: integers to negative integer powers are not allowed


def test_relu_gradient_at_nan_passes_as_torchs_in_executor_and_generated_code():
    from lucid.runtime.executor import run
    x = np.array([-1.0, np.nan, 2.0, 0.0], np.float32)
    g = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    program = lucid.compile(lambda t: lucid.relu(t), lucid.placeholder((4,), name="t"))
    compiled = program(x, g)["grad:t"]
    reference = run(program.graph, {"t": x, "grad_out": g})["grad:t"]
    # torch: x <= 0 ? 0 : g, so the NaN input passes its gradient on (torch 2.13: [0, 2, 3, 0])
    np.testing.assert_array_equal(compiled, [0.0, 2.0, 3.0, 0.0])
    np.testing.assert_array_equal(reference, compiled)  # np.heaviside gave NaN here
    t = lucid.Tensor(x, requires_grad=True)
    lucid.nn.ReLU()(t).backward(lucid.Tensor(g))
    np.testing.assert_array_equal(t.grad, compiled)


def test_step_helper_values():
    from lucid.ops.special import step
    x = np.array([-2.0, -0.0, 0.0, 1e-30, np.inf, -np.inf, np.nan], np.float32)
    np.testing.assert_array_equal(step(x, 0), [0, 0, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(step(x, 1), [0, 1, 1, 1, 1, 0, 1])
    assert step(x, 0).dtype == np.float32 and step(np.array([3]), 0).dtype == np.float64


def _linear_grads():
    lin = lucid.nn.Linear(3, 2)
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    return lin, x, x.sum(axis=0)  # d sum(x @ W.T + b) / dW[i, j] = sum_n x[n, j]


def test_gradients_accumulate_into_the_existing_grad_array():
    lin, x, row = _linear_grads()
    lin(lucid.Tensor(x)).sum().backward()
    held = lin.weight.grad
    lin(lucid.Tensor(x)).sum().backward()
    assert lin.weight.grad is held  # torch: AccumulateGrad adds in place
    np.testing.assert_allclose(held, np.tile(2 * row, (2, 1)), rtol=1e-6)
    np.testing.assert_allclose(lin.bias.grad, [8.0, 8.0])


def test_read_only_or_other_dtype_grad_is_replaced_not_written():
    lin, x, row = _linear_grads()
    frozen = np.zeros((2, 3), np.float32)
    frozen.flags.writeable = False
    lin.weight.grad = frozen
    lin.bias.grad = np.ones(2, np.float64)  # a gradient the user set in another dtype
    lin(lucid.Tensor(x)).sum().backward()
    assert lin.weight.grad is not frozen and not frozen.any()
    np.testing.assert_allclose(lin.weight.grad, np.tile(row, (2, 1)), rtol=1e-6)
    np.testing.assert_allclose(lin.bias.grad, [5.0, 5.0])


@pytest.mark.parametrize("how", ["module", "optimizer"])
def test_zero_grad_set_to_none_false_zeroes_in_place(how):
    lin, x, _ = _linear_grads()
    opt = lucid.optim.SGD(lin.parameters(), lr=0.1)
    lin(lucid.Tensor(x)).sum().backward()
    held = lin.weight.grad
    (lin if how == "module" else opt).zero_grad(set_to_none=False)
    assert lin.weight.grad is held and not held.any()
    (lin if how == "module" else opt).zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_a_grad_of_another_dtype_is_not_narrowed_in_place():
    lin = lucid.nn.Linear(4, 4).double()
    lin.weight.grad = np.full((4, 4), 0.1, np.float16)  # torch refuses the assignment
    lin(lucid.Tensor(np.ones((3, 4)) / 3)).sum().backward()
    assert lin.weight.grad.dtype == np.float64  # old + g, as before: no half-precision sum
    np.testing.assert_allclose(lin.weight.grad, float(np.float16(0.1)) + 1.0, rtol=1e-12)
