"""The thin call path (issue 11 item 4) keeps every check: what a call after earlier calls
of the same program does when its inputs, the module's tensors or the world changed.

Values are compared with an independent float64 NumPy BatchNorm written from the torch
docs (biased variance to normalise, unbiased for the running variance); errors with
those a fresh module gives for the same input.
"""
import threading

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor


def rng(seed=0):
    return np.random.default_rng(seed)


def bn_reference(x, w, b, rm, rv, dy, eps=1e-5, momentum=0.1):
    """Train-mode BatchNorm1d on (N, C): output, input/weight/bias gradients, new stats."""
    x, w, b, dy = (np.asarray(a, np.float64) for a in (x, w, b, dy))
    n = x.shape[0]
    mean, var = x.mean(0), x.var(0)
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    dw, db = (dy * xhat).sum(0), dy.sum(0)
    dx = w * invstd / n * (n * dy - db - xhat * dw)
    stats = ((1 - momentum) * rm + momentum * mean,
             (1 - momentum) * rv + momentum * var * n / (n - 1))
    return xhat * w + b, dx, dw, db, stats


def warmed(c=4, calls=3, seed=0):
    """A BatchNorm1d(c) with non-trivial parameters, called (forward and backward) a few
    times, so that later calls take the path of a program already compiled and used."""
    bn = nn.BatchNorm1d(c)
    r = rng(seed)
    bn.weight.data[:] = r.uniform(0.5, 1.5, c)
    bn.bias.data[:] = r.uniform(-0.5, 0.5, c)
    for _ in range(calls):
        bn(Tensor(r.standard_normal((8, c), dtype=np.float32), requires_grad=True)).backward(
            np.ones((8, c), np.float32))
    bn.weight.grad = bn.bias.grad = None
    return bn


def state(bn):
    return [t.data.copy() for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]


def error_of(fn):
    with pytest.raises((TypeError, ValueError, RuntimeError)) as info:
        fn()
    return type(info.value), str(info.value)


def check_step(bn, x, dy):
    """One train step through the Tensor face, against the reference."""
    w, b = bn.weight.data.astype(np.float64), bn.bias.data.astype(np.float64)
    rm, rv = bn.running_mean.data.astype(np.float64), bn.running_var.data.astype(np.float64)
    out_ref, dx_ref, dw_ref, db_ref, (rm_ref, rv_ref) = bn_reference(x, w, b, rm, rv, dy)
    xt = Tensor(x, requires_grad=True)
    out = bn(xt)
    out.backward(dy)
    tol = dict(rtol=1e-4, atol=1e-5) if x.dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.data, out_ref, **tol)
    np.testing.assert_allclose(xt.grad, dx_ref, **tol)
    np.testing.assert_allclose(bn.weight.grad, dw_ref, **tol)
    np.testing.assert_allclose(bn.bias.grad, db_ref, **tol)
    np.testing.assert_allclose(bn.running_mean.data, rm_ref, **tol)
    np.testing.assert_allclose(bn.running_var.data, rv_ref, **tol)
    bn.weight.grad = bn.bias.grad = None


# ----------------------------------------------------------------- input changes after calls
def test_a_new_batch_size_reuses_the_program_and_is_still_checked(compiles):
    bn = warmed()
    before = compiles[0]
    for n in (8, 16, 3):
        x = rng(n).standard_normal((n, 4), dtype=np.float32)
        check_step(bn, x, rng(n + 1).standard_normal((n, 4), dtype=np.float32))
    assert compiles[0] == before  # the batch size is symbolic: one program serves all
    kept = state(bn)
    fresh = error_of(lambda: nn.BatchNorm1d(4)(Tensor(np.ones((1, 4), np.float32))))
    assert error_of(lambda: bn(Tensor(np.ones((1, 4), np.float32)))) == fresh
    assert all(np.array_equal(a, b) for a, b in zip(state(bn), kept))  # no state changed


def test_a_new_channel_count_after_calls_raises_as_for_a_fresh_module():
    bn = warmed()
    kept = state(bn)
    bad = np.ones((8, 5), np.float32)
    fresh = error_of(lambda: nn.BatchNorm1d(4)(Tensor(bad)))
    assert fresh[0] is ValueError and "4 channels" in fresh[1]
    assert error_of(lambda: bn(Tensor(bad))) == fresh
    assert all(np.array_equal(a, b) for a, b in zip(state(bn), kept))


def test_a_dtype_change_after_calls_is_refused_then_compiles_once_converted(compiles):
    bn = warmed()
    x = rng(3).standard_normal((8, 4))
    message = error_of(lambda: bn(Tensor(x)))  # float64 data, float32 module
    assert message[0] is TypeError and "float64" in message[1]
    before = compiles[0]
    bn.to("float64")
    check_step(bn, x, rng(4).standard_normal((8, 4)))
    assert compiles[0] == before + 1
    check_step(bn, x, rng(5).standard_normal((8, 4)))
    assert compiles[0] == before + 1


@pytest.mark.parametrize("layout", ["strided", "fortran", "negative stride"])
def test_non_contiguous_inputs_give_the_reference_values(layout):
    bn = warmed()
    wide = rng(6).standard_normal((8, 8), dtype=np.float32)
    x = {"strided": wide[:, ::2], "fortran": np.asfortranarray(wide[:, :4]),
         "negative stride": wide[::-1, 4:]}[layout]
    assert not x.flags.c_contiguous
    check_step(bn, x, rng(7).standard_normal((8, 4), dtype=np.float32))


# --------------------------------------------------- the module's own tensors changed
def test_a_bound_array_of_the_wrong_dtype_or_shape_is_named_and_changes_no_state():
    bn = warmed()
    kept, weight = state(bn), bn.weight.data
    x = Tensor(np.ones((8, 4), np.float32), requires_grad=True)  # the program already used
    bn.weight.data = weight.astype(np.float64)
    kind, message = error_of(lambda: bn(x))
    assert kind is TypeError and "'weight'" in message and "float64" in message
    bn.weight.data = np.ones(5, np.float32)
    kind, message = error_of(lambda: bn(x))
    assert kind is ValueError and "'weight'" in message and "(5,)" in message
    assert all(np.array_equal(a, b) for a, b in zip(state(bn), kept))
    bn.weight.data = weight
    check_step(bn, rng(8).standard_normal((8, 4), dtype=np.float32),
               rng(9).standard_normal((8, 4), dtype=np.float32))


def test_an_array_reshaped_in_place_is_checked_again():
    """The same array object with a new shape: a cache keyed by identity would miss it."""
    bn = warmed()
    x = Tensor(np.ones((8, 4), np.float32), requires_grad=True)  # the programs already used
    bn.eval()(x)
    bn.train()
    kept = state(bn)
    bn.running_mean.data.shape = (2, 2)
    for training in (True, False):
        kind, message = error_of(lambda: bn.train(training)(x))
        assert kind is ValueError and "'running_mean'" in message and "(2, 2)" in message
    bn.running_mean.data.shape = (4,)
    assert all(np.array_equal(a, b) for a, b in zip(state(bn), kept))


def test_changing_the_module_after_calls_recompiles():
    bn = warmed()
    bn.eps = 0.5
    x = rng(10).standard_normal((8, 4), dtype=np.float32)
    out = bn(Tensor(x)).data
    ref = bn_reference(x, bn.weight.data, bn.bias.data, 0, 1, x, eps=0.5)[0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    bn.weight.requires_grad = False
    bn(Tensor(x)).backward(np.ones((8, 4), np.float32))
    assert bn.weight.grad is None and bn.bias.grad is not None


# -------------------------------------------- in-place writes between forward and backward
def linear_step(lin, x):
    return (lin(x) ** 2).sum()


def test_a_view_written_in_place_between_forward_and_backward_refuses():
    lin = nn.Linear(3, 2)
    for _ in range(3):  # calls before, so the bound tensors' versions are the kept snapshot
        linear_step(lin, Tensor(rng(11).standard_normal((4, 3)), dtype="float32")).backward()
    lin.weight.grad = lin.bias.grad = None
    x = Tensor(rng(12).standard_normal((4, 3)), dtype="float32", requires_grad=True)
    out = linear_step(lin, x)  # the weight's gradient needs x's values
    alias = x.detach()
    with lucid.no_grad():
        alias[1] = 3.0  # a write into x's memory through another Tensor
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()
    assert x.grad is None and lin.weight.grad is None


def test_a_parameter_updated_between_forward_and_backward_refuses_after_earlier_steps():
    lin = nn.Linear(3, 2)
    x = Tensor(rng(13).standard_normal((4, 3)), dtype="float32", requires_grad=True)
    weight = lin.weight  # written as an optimizer writes it: the module's program stays
    for _ in range(3):  # steps as an optimizer takes them: each writes the parameters
        linear_step(lin, x).backward()
        with lucid.no_grad():
            weight -= 0.1 * Tensor(weight.grad)
        lin.weight.grad = lin.bias.grad = x.grad = None
    w = lin.weight.data.astype(np.float64)
    out = linear_step(lin, x)
    with lucid.no_grad():
        weight -= 1.0  # the input's gradient needs the weight as it was
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()
    assert x.grad is None and lin.weight.grad is None
    with lucid.no_grad():
        weight += 1.0
    assert len(lin._programs) == 1
    out = linear_step(lin, x)  # a fresh forward after the write is fine
    with lucid.no_grad():
        Tensor([1.0]).zero_()  # and so is a write elsewhere before its backward
    out.backward()
    y = x.data.astype(np.float64) @ w.T + lin.bias.data
    np.testing.assert_allclose(x.grad, 2 * y @ w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("when", ["between", "before"])
def test_a_write_to_an_unrelated_tensor_does_not_refuse(when):
    bn = warmed()
    other = Tensor([1.0, 2.0])
    x = rng(14).standard_normal((8, 4), dtype=np.float32)
    dy = rng(15).standard_normal((8, 4), dtype=np.float32)
    w, b = bn.weight.data.copy(), bn.bias.data.copy()
    rm, rv = bn.running_mean.data.copy(), bn.running_var.data.copy()
    if when == "before":
        with lucid.no_grad():
            other += 1
    xt = Tensor(x, requires_grad=True)
    out = bn(xt)
    if when == "between":
        with lucid.no_grad():
            other += 1
    out.backward(dy)
    _, dx, dw, db, _ = bn_reference(x, w, b, rm, rv, dy)
    np.testing.assert_allclose(xt.grad, dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.weight.grad, dw, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(other.data, [2.0, 3.0])


# ------------------------------------------------------------------------- the Tensor face
def test_a_tensor_over_an_ndarray_shares_or_converts_as_before():
    for dtype in (np.float32, np.float64, np.int64, np.bool_):
        a = np.zeros(3, dtype)
        assert Tensor(a).data is a  # kept dtypes: shared, as torch.from_numpy
    for dtype, want in ((np.float16, np.float32), (np.int32, np.int64)):
        a = np.zeros(3, dtype)
        t = Tensor(a)
        assert t.dtype == want and not np.shares_memory(t.data, a)
    a = np.zeros(3, np.float32)
    t = Tensor(a, dtype="float64")
    assert t.dtype == np.float64 and not np.shares_memory(t.data, a)
    with pytest.raises(TypeError, match="floating point"):
        Tensor(np.zeros(3, np.int64), requires_grad=True)


def test_backward_takes_any_grad_that_converts_and_never_keeps_the_callers_array():
    x = Tensor(np.arange(3.0, dtype=np.float32), requires_grad=True)
    for grad in ([1.0, 2.0, 3.0], np.array([1.0, 2.0, 3.0]), Tensor([1.0, 2.0, 3.0])):
        (x + 0.0).backward(grad)  # float64 data for a float32 output: converted
    np.testing.assert_array_equal(x.grad, [3.0, 6.0, 9.0])
    assert x.grad.dtype == np.float32
    seed = np.ones(3, np.float32)
    y = Tensor(np.zeros(3, np.float32), requires_grad=True)
    (y + 0.0).backward(seed)  # the identity's gradient is the seed itself
    assert not np.shares_memory(y.grad, seed)
    seed[:] = 7
    np.testing.assert_array_equal(y.grad, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="grad has shape"):
        (y + 0.0).backward(np.ones(4, np.float32))


def test_grad_mode_is_per_thread_and_on_in_a_new_thread():
    seen = []
    with lucid.no_grad():
        thread = threading.Thread(target=lambda: seen.append(lucid.is_grad_enabled()))
        thread.start()
        thread.join()
        assert not lucid.is_grad_enabled()
    assert seen == [True] and lucid.is_grad_enabled()


def test_running_statistics_commits_are_serialised_across_threads():
    bn = warmed()
    program = lucid.compile(nn.BatchNorm1d(4), lucid.placeholder((None, 4), name="x"),
                            mode="train")
    start, calls = int(bn.num_batches_tracked.data), 40
    x = rng(16).standard_normal((8, 4), dtype=np.float32)

    def work():
        for _ in range(calls):
            bn(Tensor(x))
            program(x, x)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(bn.num_batches_tracked.data) == start + 4 * calls
    assert int(program.updates["num_batches_tracked"].data) == 4 * calls
    # the same input every time: the running mean is a geometric mix towards x's mean
    mean = x.astype(np.float64).mean(0)
    keep = 0.9 ** (4 * calls)
    np.testing.assert_allclose(program.updates["running_mean"].data, (1 - keep) * mean,
                               rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------- Program.__call__
def test_program_calls_check_every_time_and_commit_only_on_success():
    bn = nn.BatchNorm1d(4)
    train = lucid.compile(bn, lucid.placeholder((None, 4), name="x"), mode="train")
    evaluate = lucid.compile(bn, lucid.placeholder((None, 4), name="x"), mode="eval")
    assert not evaluate.updates  # no state to commit: no lock is taken
    x = rng(17).standard_normal((8, 4), dtype=np.float32)
    for _ in range(3):
        out = train(x, x)
    ref = bn_reference(x, np.ones(4), np.zeros(4), 0, 1, x)[0]
    np.testing.assert_allclose(out["out"], ref, rtol=1e-4, atol=1e-5)
    kept = [t.data.copy() for t in train.updates.values()]
    for args in ((np.ones((1, 4), np.float32),) * 2, (x.astype(np.float64), x),
                 (np.ones((8, 5), np.float32), x), (x,)):
        with pytest.raises((TypeError, ValueError)):
            train(*args)
    assert all(np.array_equal(t.data, k) for t, k in zip(train.updates.values(), kept))
    assert int(train.updates["num_batches_tracked"].data) == 3
    rm, rv = (train.updates[k].data.astype(np.float64) for k in ("running_mean", "running_var"))
    got = evaluate(x)["out"]
    np.testing.assert_allclose(got, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-4, atol=1e-5)


# ------------------------------------------- backward of one call: the walk skipped or not
class _AddBias(nn.Module):
    """y = b + sum(x): b's gradient is the upstream gradient itself."""

    def __init__(self, b):
        super().__init__()
        self.b = nn.Parameter(b)

    def forward(self, x):
        return self.b + x.sum()


def test_an_identity_gradient_never_hands_on_the_callers_array():
    m = _AddBias(np.zeros(3, np.float32))
    x = Tensor(np.ones((2, 3), np.float32))
    seed = np.array([1.0, 2.0, 3.0], np.float32)
    m(x).backward(seed)
    assert m.b.grad is not seed and not np.shares_memory(m.b.grad, seed)
    seed[:] = 0
    np.testing.assert_array_equal(m.b.grad, [1.0, 2.0, 3.0])
    m(x).backward(np.array([1.0, 1.0, 1.0], np.float32))  # accumulates
    np.testing.assert_array_equal(m.b.grad, [2.0, 3.0, 4.0])


def test_one_tensor_passed_twice_and_a_chain_of_calls_sum_their_gradients():
    x = Tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    (x * x).backward(np.ones(3, np.float32))  # both inputs of one call are x
    np.testing.assert_allclose(x.grad, 2 * np.array([1.0, 2.0, 3.0]))
    x.grad = None
    bn = warmed(3)
    h = x.reshape(1, 3) * Tensor(np.ones((4, 3), np.float32))  # the module's input has a history
    r = rng(18).standard_normal((4, 3)).astype(np.float32)
    with lucid.no_grad():
        h += Tensor(r)
    bn(h).backward(np.ones((4, 3), np.float32))  # sums to 0 through the normalisation
    np.testing.assert_allclose(x.grad, np.zeros(3), atol=1e-5)
    assert bn.weight.grad is not None
