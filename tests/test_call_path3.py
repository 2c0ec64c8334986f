"""The third pass over the call path (issue 11 item 4): a module called on one Tensor runs
its program in ``call_module`` without ``_execute`` (``Entry.plain``), and a gradient is
added into an existing ``.grad`` in place only when the shapes and dtypes match (else the
``.grad`` is replaced by the sum).

Each test calls a program many times first, so that the shortcut is the path taken, then
changes what a stale answer would get wrong: the batch size, the dtype, the mode, a
``requires_grad`` flag, a parameter's array, the grad mode, the ``.grad`` held. Values are
compared with the independent float64 NumPy BatchNorm of ``test_call_path`` (written from
the torch docs) and, for the eval-mode gradient, with the closed form written out here.
"""
import os
import sys
import threading

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_call_path import bn_reference, check_step, error_of, rng, state, warmed  # noqa: E402

TOL = dict(rtol=1e-4, atol=1e-5)


def entries(module):
    return list(module._programs.values())


def many_calls(bn, n=30, shape=(8, 4), seed=40):
    """``n`` forward and backward calls at ``shape``; the gradients they leave are dropped."""
    r = rng(seed)
    for _ in range(n):
        bn(Tensor(r.standard_normal(shape, dtype=np.float32))).backward(
            r.standard_normal(shape, dtype=np.float32))
    bn.weight.grad = bn.bias.grad = None


class _Two(nn.Module):
    """Two results: a tuple, not the one result the plain path hands out."""

    def forward(self, x):
        return x * 2.0, x + 1.0


def test_the_plain_path_is_taken_for_one_input_and_one_result_not_for_two_or_random_keys():
    bn, two, drop = nn.BatchNorm1d(4), _Two(), nn.Dropout(0.5)
    x = rng(1).standard_normal((8, 4, 3), dtype=np.float32)
    for _ in range(3):
        bn(Tensor(x))
        doubled, shifted = two(Tensor(x))
        kept = drop(Tensor(x)).data
    assert [e.plain for e in entries(bn)] == [True]
    assert [e.plain for e in entries(two)] == [False]
    assert [e.plain for e in entries(drop)] == [False]  # a random key among its inputs
    np.testing.assert_allclose(doubled.data, x * 2.0, rtol=1e-6)
    np.testing.assert_allclose(shifted.data, x + 1.0, rtol=1e-6)
    zeroed = kept == 0  # inverted dropout: zeros, or the input scaled by 1 / (1 - p)
    np.testing.assert_allclose(kept[~zeroed], x[~zeroed] * 2.0, rtol=1e-6)


def test_after_many_calls_each_batch_size_gets_its_own_reference_values_and_state():
    bn = warmed()
    many_calls(bn)
    compiled = len(bn._programs)
    for n, seed in ((8, 2), (3, 3), (17, 4), (8, 5)):  # one program, batch sizes interleaved
        r = rng(seed)
        check_step(bn, r.standard_normal((n, 4), dtype=np.float32),
                   r.standard_normal((n, 4), dtype=np.float32))
    assert len(bn._programs) == compiled


def test_the_count_and_a_cumulative_average_follow_every_one_of_many_calls():
    bn = nn.BatchNorm1d(4, momentum=None)  # running stats: plain averages over the batches
    r = rng(24)
    means, variances = [], []
    for calls in range(1, 41):
        n = 5 + calls % 4
        x = r.standard_normal((n, 4), dtype=np.float32) + calls % 3
        bn(Tensor(x)).backward(np.ones_like(x))
        means.append(x.astype(np.float64).mean(0))
        variances.append(x.astype(np.float64).var(0, ddof=1))
        assert type(bn.num_batches_tracked.data) is np.ndarray
        assert int(bn.num_batches_tracked.data) == calls
    # the first batch replaces the initial (0, 1) statistics: factor 1 / 1
    np.testing.assert_allclose(bn.running_mean.data, np.mean(means, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_var.data, np.mean(variances, 0), rtol=1e-4)


def test_after_many_calls_a_batch_of_one_is_refused_by_the_check_and_changes_no_state():
    bn = warmed()
    many_calls(bn)
    before = state(bn)
    fresh = nn.BatchNorm1d(4)
    one = rng(6).standard_normal((1, 4), dtype=np.float32)
    assert error_of(lambda: bn(Tensor(one))) == error_of(lambda: fresh(Tensor(one)))
    for kept, now in zip(before, state(bn)):
        np.testing.assert_array_equal(kept, now)
    x = rng(7).standard_normal((8, 4), dtype=np.float32)
    check_step(bn, x, np.ones_like(x))  # and the next call is as good as ever


def test_after_many_calls_a_float64_input_is_refused_then_runs_in_float64_once_converted():
    bn = warmed()
    many_calls(bn)
    before = state(bn)
    x = rng(8).standard_normal((8, 4))
    kind, message = error_of(lambda: bn(Tensor(x)))
    assert kind is TypeError and "float64" in message
    for kept, now in zip(before, state(bn)):
        np.testing.assert_array_equal(kept, now)
    bn.double()
    check_step(bn, x, rng(9).standard_normal((8, 4)))  # float64 tolerances: 1e-10
    assert bn.running_mean.dtype == np.float64


def test_after_many_calls_a_parameter_array_of_another_shape_is_refused_naming_it():
    bn = warmed()
    many_calls(bn)
    before = state(bn)
    keep = bn.weight.data
    bn.weight.data = np.ones(5, np.float32)
    kind, message = error_of(lambda: bn(Tensor(np.ones((8, 4), np.float32))))
    assert kind in (TypeError, ValueError) and "weight" in message
    for kept, now in zip(before, state(bn)):
        np.testing.assert_array_equal(kept, now)
    bn.weight.data = keep * 2  # a new array of the right shape: read at the next call
    x = rng(10).standard_normal((8, 4), dtype=np.float32)
    check_step(bn, x, np.ones_like(x))


def test_the_inputs_requires_grad_flipped_after_many_calls_gives_or_drops_its_gradient():
    bn = warmed()
    many_calls(bn)
    x = rng(11).standard_normal((8, 4), dtype=np.float32)
    dy = rng(12).standard_normal((8, 4), dtype=np.float32)
    check_step(bn, x, dy)  # requires grad: dx against the reference
    for _ in range(3):
        xt = Tensor(x)  # and not again: no gradient, the parameters' still right
        rm, rv = bn.running_mean.data.astype(np.float64), bn.running_var.data.astype(np.float64)
        w, b = bn.weight.data, bn.bias.data
        _, _, dw, db, _ = bn_reference(x, w, b, rm, rv, dy)
        bn(xt).backward(dy)
        assert xt.grad is None
        np.testing.assert_allclose(bn.weight.grad, dw, **TOL)
        np.testing.assert_allclose(bn.bias.grad, db, **TOL)
        bn.weight.grad = bn.bias.grad = None


def test_train_and_eval_switched_between_calls_use_batch_then_running_statistics():
    bn = warmed()
    many_calls(bn)
    x = rng(13).standard_normal((8, 4), dtype=np.float32)
    dy = rng(14).standard_normal((8, 4), dtype=np.float32)
    for _ in range(3):
        check_step(bn, x, dy)
        bn.eval()
        rm, rv = bn.running_mean.data.astype(np.float64), bn.running_var.data.astype(np.float64)
        w, b = bn.weight.data.astype(np.float64), bn.bias.data.astype(np.float64)
        before = state(bn)
        xt = Tensor(x, requires_grad=True)
        out = bn(xt)
        invstd = 1 / np.sqrt(rv + 1e-5)
        xhat = (x - rm) * invstd
        np.testing.assert_allclose(out.data, xhat * w + b, **TOL)
        out.backward(dy)  # the lazily compiled gradient program of the eval forward
        np.testing.assert_allclose(xt.grad, dy * w * invstd, **TOL)
        np.testing.assert_allclose(bn.weight.grad, (dy * xhat).sum(0), **TOL)
        np.testing.assert_allclose(bn.bias.grad, dy.astype(np.float64).sum(0), **TOL)
        for kept, now in zip(before, state(bn)):  # eval commits nothing
            np.testing.assert_array_equal(kept, now)
        bn.weight.grad = bn.bias.grad = None
        bn.train()


def test_under_no_grad_after_many_calls_nothing_is_recorded_but_the_statistics_move():
    bn = warmed()
    many_calls(bn)
    x = rng(15).standard_normal((8, 4), dtype=np.float32)
    rm, rv = bn.running_mean.data.astype(np.float64), bn.running_var.data.astype(np.float64)
    out_ref, _, _, _, (rm_ref, rv_ref) = bn_reference(x, bn.weight.data, bn.bias.data,
                                                      rm, rv, np.ones_like(x))
    with lucid.no_grad():
        out = bn(Tensor(x, requires_grad=True))
    assert out.requires_grad is False and out.is_leaf
    np.testing.assert_allclose(out.data, out_ref, **TOL)
    np.testing.assert_allclose(bn.running_mean.data, rm_ref, **TOL)
    np.testing.assert_allclose(bn.running_var.data, rv_ref, **TOL)
    with pytest.raises(ValueError, match="does not require grad"):
        out.backward(np.ones_like(x))


def test_a_parameter_frozen_after_many_calls_gets_no_gradient_then_one_again():
    bn = warmed()
    many_calls(bn)
    x = rng(16).standard_normal((8, 4), dtype=np.float32)
    dy = rng(17).standard_normal((8, 4), dtype=np.float32)
    bn.bias.requires_grad = False
    bn(Tensor(x)).backward(dy)
    assert bn.bias.grad is None
    bn.bias.requires_grad = True
    bn.weight.grad = None
    check_step(bn, x, dy)


# ------------------------------------------------------ adding into an existing .grad


def test_gradients_add_in_place_into_a_held_grad_across_many_calls():
    bn = warmed()
    x = rng(18).standard_normal((8, 4), dtype=np.float32)
    dy = rng(19).standard_normal((8, 4), dtype=np.float32)
    bn(Tensor(x)).backward(dy)
    held_w, held_b = bn.weight.grad, bn.bias.grad
    total_w, total_b = held_w.astype(np.float64), held_b.astype(np.float64)
    for _ in range(20):
        rm, rv = bn.running_mean.data.astype(np.float64), bn.running_var.data.astype(np.float64)
        _, _, dw, db, _ = bn_reference(x, bn.weight.data, bn.bias.data, rm, rv, dy)
        total_w, total_b = total_w + dw, total_b + db
        bn(Tensor(x)).backward(dy)
    assert bn.weight.grad is held_w and bn.bias.grad is held_b  # torch's AccumulateGrad
    np.testing.assert_allclose(held_w, total_w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(held_b, total_b, rtol=1e-4, atol=1e-4)


def called_with_reference(seed):
    """A warmed BatchNorm called many times, an input and upstream gradient from ``seed`` and
    ``seed + 1``, and the float64 reference's weight and bias gradients for them."""
    bn = warmed()
    many_calls(bn)
    x = rng(seed).standard_normal((8, 4), dtype=np.float32)
    dy = rng(seed + 1).standard_normal((8, 4), dtype=np.float32)
    rm, rv = bn.running_mean.data.astype(np.float64), bn.running_var.data.astype(np.float64)
    _, _, dw, db, _ = bn_reference(x, bn.weight.data, bn.bias.data, rm, rv, dy)
    return bn, x, dy, dw, db


@pytest.mark.parametrize("grad", [
    np.full(1, 2.0, np.float32),  # the sum has the parameter's shape: it does not fit
    np.full((2, 4), 2.0, np.float32),  # it fits, but has another shape than the gradient
    np.full(4, 2.0, np.float64),  # another dtype: float64 + float32 is float64
])
def test_a_grad_of_another_shape_or_dtype_is_replaced_by_the_sum(grad):
    bn, x, dy, dw, _ = called_with_reference(20)
    held = grad.copy()
    bn.weight.grad = held
    bn(Tensor(x)).backward(dy)
    expected = grad + dw.astype(np.float32)
    assert bn.weight.grad is not held and bn.weight.grad.shape == expected.shape
    assert bn.weight.grad.dtype == np.result_type(grad, np.float32)
    np.testing.assert_allclose(bn.weight.grad, expected, **TOL)
    np.testing.assert_array_equal(held, grad)  # the array it held is not written


def test_a_read_only_grad_and_one_of_a_broadcastable_shape_are_replaced_by_the_sum():
    bn, x, dy, dw, db = called_with_reference(22)
    frozen = np.ones(4, np.float32)
    frozen.flags.writeable = False
    bn.weight.grad = frozen
    wide = np.ones((1, 4), np.float32)  # (1, 4) + (4,) is (1, 4): a new array of that shape
    bn.bias.grad = wide
    bn(Tensor(x)).backward(dy)
    assert bn.weight.grad is not frozen and bn.weight.grad.flags.writeable
    np.testing.assert_allclose(bn.weight.grad, 1 + dw, **TOL)
    np.testing.assert_array_equal(frozen, np.ones(4))
    assert bn.bias.grad is not wide and bn.bias.grad.shape == (1, 4)
    np.testing.assert_array_equal(wide, np.ones((1, 4)))
    np.testing.assert_allclose(bn.bias.grad, 1 + db[None], **TOL)


def test_two_threads_backward_through_one_parameter_add_every_gradient():
    # the in-place add into .grad is locked, as torch's AccumulateGrad: none is lost
    linear = nn.Linear(300, 200)
    x = Tensor(np.ones((4, 300), np.float32))

    def run():
        for _ in range(100):
            linear(x).sum().backward()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.asarray(linear.weight.grad).tolist() == np.full((200, 300), 800.0).tolist()
    assert np.asarray(linear.bias.grad).tolist() == np.full(200, 800.0).tolist()
