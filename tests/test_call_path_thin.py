"""The thinner call path (issue 11 item 4): what its shortcuts still do.

Each shortcut of the Tensor face's call path (Module.__call__ asking the tracer once,
Parameter.requires_grad read from its slot, 0-d state updates converted alone, a check
comparing a fully known shape as one tuple, a backward that takes the parameters as
leaves and looks only at the call's own arguments) against what it must keep: the
error of a module without forward, the recompile on a flag change, arrays for state,
refusals naming the input, and gradients summed before they meet ``.grad`` as torch
sums them. Values are compared with NumPy written from the maths, in float64 where it
matters, and with exact float32 rounding where the order of the sum is the point.
"""
import os
import sys

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_call_path import _AddBias, check_step, rng, warmed  # noqa: E402


def test_a_module_without_forward_is_refused_on_tensors_placeholders_and_compile():
    class Empty(nn.Module):
        pass

    m = Empty()
    calls = (lambda: m(Tensor(np.ones(2, np.float32))),
             lambda: m(lucid.placeholder((2,), name="x")),
             lambda: lucid.compile(m, lucid.placeholder((2,), name="x")))
    for call in calls:
        with pytest.raises(TypeError, match="Empty defines no forward"):
            call()
    assert m._programs == {}


def test_a_parameters_requires_grad_reads_as_set_and_a_change_is_seen_at_the_next_call():
    bn = warmed()
    x = rng(19).standard_normal((8, 4), dtype=np.float32)
    dy = rng(20).standard_normal((8, 4), dtype=np.float32)
    stamp = lucid.eager.STRUCTURE[0]
    bn.weight.requires_grad = 0
    assert bn.weight.requires_grad is False and lucid.eager.STRUCTURE[0] > stamp
    bn(Tensor(x)).backward(dy)
    assert bn.weight.grad is None
    np.testing.assert_allclose(bn.bias.grad, dy.astype(np.float64).sum(0), rtol=1e-5)
    bn.weight.requires_grad = True
    bn.bias.grad = None
    assert bn.weight.requires_grad is True
    check_step(bn, x, dy)  # both parameters differentiated again, against the reference


def test_state_updates_stay_arrays_after_calls_the_0d_count_included():
    bn = warmed(calls=3)
    program = lucid.compile(nn.BatchNorm1d(4), lucid.placeholder((None, 4), name="x"),
                            mode="train")
    x = rng(21).standard_normal((8, 4), dtype=np.float32)
    program(x, x)
    program(x, x)
    for count, calls in ((bn.num_batches_tracked, 3),
                         (program.updates["num_batches_tracked"], 2)):
        assert type(count.data) is np.ndarray and count.data.dtype == np.int64
        assert count.data.shape == () and int(count.data) == calls
    for t in (bn.running_mean, bn.running_var, program.updates["running_var"]):
        assert type(t.data) is np.ndarray and t.shape == (4,) and t.dtype == np.float32


def test_the_check_compares_a_fully_known_shape_as_one_tuple_and_still_refuses():
    lin = nn.Linear(3, 2)
    program = lucid.compile(lin, lucid.placeholder((None, 3), name="x"), mode="eval")
    start = program.source.index("def check(")
    assert program.source[start:program.source.index("\n\n", start)] == '''\
def check(x, weight, bias):
    return (type(x) is _ndarray
        and x.dtype is _float32
        and x.ndim == 2
        and x.shape[1] == 3
        and type(weight) is _ndarray
        and weight.dtype is _float32
        and weight.shape == (2, 3)
        and type(bias) is _ndarray
        and bias.dtype is _float32
        and bias.shape == (2,))'''
    x = rng(22).standard_normal((5, 3), dtype=np.float32)
    w, b = lin.weight.data, lin.bias.data
    assert program.check_fn(x, w, b) and not program.check_fn(x, w.tolist(), b)
    ref = x.astype(np.float64) @ w.T + b
    np.testing.assert_allclose(program(x)["out"], ref, rtol=1e-5)
    np.testing.assert_allclose(lin(Tensor(x)).data, ref, rtol=1e-5)  # the face's program
    for bad in (w.T.copy(), w.reshape(6), w[:1], w.astype(np.float64)):
        assert not program.check_fn(x, bad, b)
        lin.weight.data = bad
        for call in (lambda: program(x), lambda: lin(Tensor(x))):
            with pytest.raises((TypeError, ValueError), match="'weight'"):
                call()
        lin.weight.data = w
    np.testing.assert_allclose(lin(Tensor(x)).data, ref, rtol=1e-5)


def test_backward_with_a_tensor_grad_gives_the_arrays_result_and_keeps_neither():
    m = _AddBias(np.zeros(3, np.float32))
    x = Tensor(np.ones((2, 3), np.float32))
    seed = Tensor(np.array([1.0, 2.0, 3.0], np.float32))
    m(x).backward(seed)  # the bias's gradient is the seed itself: handed on as a copy
    assert not np.shares_memory(m.b.grad, seed.data)
    seed.data[:] = 0
    np.testing.assert_array_equal(m.b.grad, [1.0, 2.0, 3.0])
    m(x).backward(Tensor(np.array([1.0, 1.0, 1.0])))  # float64 for a float32 output: converted
    np.testing.assert_array_equal(m.b.grad, [2.0, 3.0, 4.0])
    assert m.b.grad.dtype == np.float32
    with pytest.raises(ValueError, match="grad has shape"):
        m(x).backward(Tensor(np.ones(4, np.float32)))
    np.testing.assert_array_equal(m.b.grad, [2.0, 3.0, 4.0])


class _TwoBiases(nn.Module):
    """y = x + a + b: a's and b's gradients are one value, the upstream gradient summed."""

    def __init__(self, shape=(3,)):
        super().__init__()
        self.a = nn.Parameter(np.zeros(shape, np.float32))
        self.b = nn.Parameter(np.zeros(shape, np.float32))

    def forward(self, x):
        return x + self.a + self.b


def test_parameters_whose_gradients_are_one_value_each_get_their_own_array():
    m = _TwoBiases()
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    seed = np.arange(6, dtype=np.float32).reshape(2, 3)
    for step in (1, 2):  # the second backward accumulates
        m(x).backward(seed)
        np.testing.assert_array_equal(m.a.grad, step * seed.sum(0))
        np.testing.assert_array_equal(m.b.grad, step * seed.sum(0))
        np.testing.assert_array_equal(x.grad, step * seed)
    assert not np.shares_memory(m.a.grad, m.b.grad)
    assert not any(np.shares_memory(g, seed) for g in (m.a.grad, m.b.grad, x.grad))
    m.a.grad += 1
    np.testing.assert_array_equal(m.b.grad, 2 * seed.sum(0))


def test_a_parameter_passed_as_the_input_of_its_own_module_sums_its_gradients():
    m = _TwoBiases((1, 3))
    seed = np.array([[1.0, 2.0, 4.0]], np.float32)
    m(m.a).backward(seed)  # y = a + a + b
    np.testing.assert_array_equal(m.a.grad, 2 * seed)
    np.testing.assert_array_equal(m.b.grad, seed)
    x = Tensor(np.zeros((1, 3), np.float32), requires_grad=True)
    m(x).backward(seed)  # a fresh input: the walk is skipped again, accumulating
    np.testing.assert_array_equal(m.a.grad, 3 * seed)
    np.testing.assert_array_equal(x.grad, seed)
    # summed first, then added to .grad, as torch does: 1 + 2**-24 + 2**-24 would round to 1
    m.a.grad = np.ones((1, 3), np.float32)
    m(m.a).backward(np.full((1, 3), 2.0 ** -24, np.float32))
    np.testing.assert_array_equal(m.a.grad, np.float32(1 + 2.0 ** -23))


def test_one_tensor_passed_twice_is_summed_before_it_is_added_to_its_grad():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    x.grad = np.ones(3, np.float32)
    (x * x).backward(np.full(3, 2.0 ** -24, np.float32))  # two gradients of 2**-24 each
    np.testing.assert_array_equal(x.grad, np.float32(1 + 2.0 ** -23))  # not 1: summed first


def test_a_parameter_given_a_history_in_place_passes_its_gradient_on():
    """torch: ``a += 2 * x`` on a parameter that does not require grad makes it stand for
    the sum (not a leaf); a backward through the module reaches x, and a's .grad stays None."""
    m = _TwoBiases((1, 3))
    m.a.requires_grad = False
    x = Tensor(np.ones((1, 3), np.float32), requires_grad=True)
    m.a += 2 * x
    assert not m.a.is_leaf and m.a.requires_grad
    seed = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    m(Tensor(np.ones((2, 3), np.float32))).backward(seed)
    np.testing.assert_array_equal(x.grad, 2 * seed.sum(0, keepdims=True))
    np.testing.assert_array_equal(m.b.grad, seed.sum(0, keepdims=True))
    assert m.a.grad is None
