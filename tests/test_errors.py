"""Issue 5, items 1 and 2: clear errors for bad input, and nothing changed by a failed call.

Every bad input gives a ValueError or TypeError whose message names the problem (never a
NumPy internals message), and leaves every parameter, buffer, ``num_batches_tracked`` and
``.grad`` exactly as it was. A good call after a failed one gives exactly what it gives on a
twin that never saw the failure.
"""
import math
import re

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor

NUMPY_WORDING = re.compile(r"setting an array element|inhomogeneous|could not broadcast|"
                           r"operands could not|not aligned|could not convert|ufunc|"
                           r"index \d+ is out of bounds|object arrays are not supported")


def raises(exc, *patterns):
    """pytest.raises(exc, match=first) that also checks the other patterns and NumPy wording."""
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc, match=patterns[0])
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *args):
            suppressed = self.ctx.__exit__(*args)
            message = str(self.info.value)
            for p in patterns[1:]:
                assert re.search(p, message), (p, message)
            assert not NUMPY_WORDING.search(message), message
            return suppressed
    return Check()


# -- snapshots ---------------------------------------------------------------------------------
def snapshot(module, *tensors):
    state = {}
    items = module.named_parameters() + module.named_buffers()
    items += [(f"tensor{i}", t) for i, t in enumerate(tensors)]
    for key, t in items:
        state[key] = (t.data.copy(), None if t.grad is None else t.grad.copy())
    return state


def assert_unchanged(before, module, *tensors):
    after = snapshot(module, *tensors)
    assert list(after) == list(before)
    for key, (data, grad) in before.items():
        new_data, new_grad = after[key]
        assert new_data.dtype == data.dtype and np.array_equal(new_data, data), key
        assert (new_grad is None) == (grad is None), key
        if grad is not None:
            assert new_grad.dtype == grad.dtype and np.array_equal(new_grad, grad), key


def model(seed=0):
    """Linear -> BatchNorm1d (cumulative average, so num_batches_tracked matters)."""
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, momentum=None))
    rng = np.random.default_rng(seed)
    m[0].weight.data = rng.standard_normal((3, 4)).astype(np.float32)
    m[0].bias.data = rng.standard_normal(3).astype(np.float32)
    return m


def twin(m):
    other = model()
    other.load_state_dict(m.state_dict())
    return other


def data(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- constructors ---------------------------------------------------------------------------
@pytest.mark.parametrize("value, exc, pattern", [
    (0, ValueError, r"num_features must be positive, got 0"),
    (-3, ValueError, r"num_features must be positive, got -3"),
    (2.5, TypeError, r"num_features must be an int, got float"),
    ("4", TypeError, r"num_features must be an int, got str"),
    (True, TypeError, r"num_features must be an int, got bool"),
])
def test_batchnorm_num_features(value, exc, pattern):
    with raises(exc, pattern):
        nn.BatchNorm1d(value)


@pytest.mark.parametrize("eps", [-1, math.nan, math.inf])
def test_batchnorm_eps(eps):
    with raises(ValueError, r"eps must be", re.escape(repr(eps))):
        nn.BatchNorm1d(3, eps=eps)


@pytest.mark.parametrize("momentum", [-0.1, 1.5, math.nan, "0.1"])
def test_batchnorm_momentum(momentum):
    with raises((ValueError, TypeError), r"momentum must be a number in \[0, 1\]",
                re.escape(repr(momentum))):
        nn.BatchNorm1d(3, momentum=momentum)


@pytest.mark.parametrize("args, exc, pattern", [
    ((0, 2), ValueError, r"in_features must be positive, got 0"),
    ((-1, 2), ValueError, r"in_features must be positive, got -1"),
    ((2.0, 2), TypeError, r"in_features must be an int, got float"),
    ((2, 0), ValueError, r"out_features must be positive, got 0"),
    ((2, -1), ValueError, r"out_features must be positive, got -1"),
    ((2, 2.0), TypeError, r"out_features must be an int, got float"),
])
def test_linear_features(args, exc, pattern):
    with raises(exc, pattern):
        nn.Linear(*args)


# -- the Tensor face: bad inputs change nothing --------------------------------------------
BN_BAD = [
    ((5,), "train", [r"expected 2D or 3D input \(got 1D input\)"]),
    ((2, 3, 4, 5), "eval", [r"expected 2D or 3D input \(got 4D input\)"]),
    ((5, 4), "train", [r"3 channels", r"got 4 channels"]),
    ((5, 4, 2), "eval", [r"3 channels", r"got 4 channels"]),
    ((1, 3), "train", [r"Expected more than 1 value per channel when training, "
                       r"got input size \(1, 3\)"]),
    ((1, 3, 1), "train", [r"Expected more than 1 value per channel when training, "
                          r"got input size \(1, 3, 1\)"]),
]


@pytest.mark.parametrize("shape, mode, patterns", BN_BAD)
def test_batchnorm_bad_input_tensor_face(shape, mode, patterns):
    bn = nn.BatchNorm1d(3, momentum=None)
    good = Tensor(data((6, 3)), requires_grad=True)
    bn(good).backward(data((6, 3), 2))  # grads and stats exist before the failure
    bn.train(mode == "train")
    before = snapshot(bn, good)
    bad = Tensor(data(shape), requires_grad=True)
    with raises(ValueError, *patterns):
        bn(bad)
    assert_unchanged(before, bn, good)
    assert bad.grad is None


def test_one_value_per_channel_is_fine_in_eval():
    bn = nn.BatchNorm1d(3)
    bn.running_mean.data = np.array([1, 2, 3], np.float32)
    bn.eval()
    before = snapshot(bn)
    x = data((1, 3))
    y = bn(Tensor(x))
    np.testing.assert_allclose(y.data, (x - [1, 2, 3]) / np.sqrt(1 + 1e-5), rtol=1e-6)
    assert_unchanged(before, bn)


@pytest.mark.parametrize("shape", [(5,), (5, 3), (2, 4, 3)])
def test_linear_bad_input(shape):
    lin = nn.Linear(4, 2)
    before = snapshot(lin)
    with raises(ValueError, r"Linear\(4, 2\) expected input of shape \(N, \.\.\., 4\)"):
        lin(Tensor(data(shape)))
    assert_unchanged(before, lin)


@pytest.mark.parametrize("shape", [(1, 4), (3,), (5, 5)])
def test_failed_call_then_good_call_matches_twin(shape):
    a = model()
    x0, x1 = data((6, 4), 3), data((6, 4), 4)
    a(Tensor(x0)).backward(data((6, 3), 5))
    b = twin(a)
    for p, q in zip(a.parameters(), b.parameters()):
        q.grad = p.grad.copy()
    before = snapshot(a)
    with pytest.raises(ValueError):
        a(Tensor(data(shape)))
    assert_unchanged(before, a)
    xa, xb = Tensor(x1, requires_grad=True), Tensor(x1, requires_grad=True)
    ya, yb = a(xa), b(xb)
    ya.backward(data((6, 3), 6))
    yb.backward(data((6, 3), 6))
    assert np.array_equal(ya.data, yb.data) and np.array_equal(xa.grad, xb.grad)
    assert_unchanged(snapshot(b), a)


# -- backward with bad gradients ------------------------------------------------------------
BAD_GRADS = [
    (np.ones((6, 2), np.float32), ValueError, [r"grad has shape \(6, 2\), expected \(6, 3\)"]),
    (np.ones(3, np.float32), ValueError, [r"grad has shape \(3,\), expected \(6, 3\)"]),
    (np.full((6, 3), "a"), TypeError, [r"numeric"]),
    ([["a", "b", "c"]] * 6, TypeError, [r"numeric"]),
    (None, ValueError, [r"grad can be left out only for a one-element output",
                        r"shape \(6, 3\)"]),
]


@pytest.mark.parametrize("grad, exc, patterns", BAD_GRADS)
def test_backward_bad_gradient(grad, exc, patterns):
    a = model()
    a(Tensor(data((6, 4), 7), requires_grad=True)).backward(data((6, 3), 8))
    b = twin(a)
    for p, q in zip(a.parameters(), b.parameters()):
        q.grad = p.grad.copy()
    x, xb = Tensor(data((6, 4)), requires_grad=True), Tensor(data((6, 4)), requires_grad=True)
    y, yb = a(x), b(xb)
    before = snapshot(a, x)
    with raises(exc, *patterns):
        y.backward(grad)
    assert_unchanged(before, a, x)
    # the same output still differentiates, exactly as on a twin that never failed
    dy = data((6, 3), 9)
    y.backward(Tensor(dy))
    yb.backward(dy)
    assert np.array_equal(y.data, yb.data)
    assert_unchanged(snapshot(b, xb), a, x)


def test_backward_without_gradient_on_a_scalar_works():
    x = Tensor(data((6, 3)), requires_grad=True)
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((6, 3), 2, np.float32))


# -- Tensor data -------------------------------------------------------------------------
@pytest.mark.parametrize("value, exc, pattern", [
    ([[1, 2], [3]], ValueError, r"rectangular"),
    ([[1, 2], [3, [4]]], ValueError, r"rectangular"),
    ("abc", TypeError, r"numeric"),
    ([["a", "b"]], TypeError, r"numeric"),
    (np.array([object(), object()]), (TypeError, ValueError), r"numbers|numeric"),
    ([1, None], (TypeError, ValueError), r"numbers|numeric"),
    ({"a": 1}, (TypeError, ValueError), r"numbers|numeric"),
])
def test_tensor_bad_data(value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        Tensor(value)


@pytest.mark.parametrize("value", [[[1, 2], [3]], [[1.0], [2.0, 3.0]]])
def test_ragged_tensor_message_is_lucids_own(value):
    with raises(ValueError, r"rectangular"):
        Tensor(value)


# -- compiled programs: wrong feeds ---------------------------------------------------------
def compiled(mode="train"):
    m = model()
    return m, lucid.compile(m, lucid.placeholder((None, 4), name="features"), mode=mode)


def feeds_of(program, **given):
    feeds = {p: t.data for p, t in program.bindings.items()}
    feeds.update(given)
    return feeds


BAD_FEEDS = [  # (features, grad_out), exception, patterns: the placeholder is named
    ((data((6, 5)), data((6, 3))), ValueError, [r"'features'", r"\(N, 4\)", r"\(6, 5\)"]),
    ((data((6,)), data((6, 3))), ValueError, [r"'features'", r"\(N, 4\)", r"\(6,\)"]),
    ((data((6, 4, 1)), data((6, 3))), ValueError, [r"'features'", r"\(6, 4, 1\)"]),
    ((data((6, 4)).astype(np.float64), data((6, 3))), TypeError,
     [r"'features'", r"float32", r"float64"]),
    ((data((6, 4)).astype(np.int64), data((6, 3))), TypeError, [r"'features'", r"int64"]),
    ((data((6, 4)), data((5, 3))), ValueError, [r"'grad_out'", r"N=6", r"\(5, 3\)"]),
    ((data((6, 4)),), ValueError, [r"missing input 'grad_out'"]),
    ((), ValueError, [r"missing input 'features'"]),
    ((data((1, 4)), data((1, 3))), ValueError, [r"Expected more than 1 value per channel"]),
]


@pytest.mark.parametrize("args, exc, patterns", BAD_FEEDS)
def test_program_called_positionally(args, exc, patterns):
    m, program = compiled()
    program(data((6, 4), 11), data((6, 3), 12))
    before = snapshot(m)
    with raises(exc, *patterns):
        program(*args)
    assert_unchanged(before, m)
    # a good call now gives what a twin program that never failed gives
    other = twin(m)
    twin_program = lucid.compile(other, lucid.placeholder((None, 4), name="features"))
    x, dy = data((6, 4), 13), data((6, 3), 14)
    got, want = program(x, dy), twin_program(x, dy)
    assert list(got) == list(want)
    for key in want:
        assert np.array_equal(got[key], want[key]), key
    assert_unchanged(snapshot(other), m)


@pytest.mark.parametrize("args, exc, patterns", BAD_FEEDS)
def test_program_run_with_feeds(args, exc, patterns):
    m, program = compiled()
    before = snapshot(m)
    feeds = feeds_of(program, **dict(zip(["features", "grad_out"], args)))
    with raises(exc, *patterns):
        program.run(feeds)
    assert_unchanged(before, m)


def test_program_eval_wrong_dtype_names_placeholder():
    m, program = compiled("eval")
    before = snapshot(m)
    with raises(TypeError, r"'features'", r"float32", r"<U1|str"):
        program(np.full((2, 4), "a"))
    with raises(TypeError, r"'features'", r"object"):
        program(np.array([[object()] * 4] * 2))
    with raises(TypeError, r"takes 1 positional inputs", r"got 2"):
        program(data((2, 4)), data((2, 4)))
    assert_unchanged(before, m)


# -- load_state_dict ---------------------------------------------------------------------
def _changed_state(m, bad_key, bad_value):
    """Every entry a valid new value except ``bad_key``: all or nothing must write none."""
    state = {k: (v + 1 if v.dtype.kind == "f" else v + 3) for k, v in m.state_dict().items()}
    state[bad_key] = bad_value
    return state


@pytest.mark.parametrize("edit, patterns", [
    (lambda s: s.pop("1.running_var"), [r"missing keys \['1.running_var'\]"]),
    (lambda s: s.update(extra=np.ones(3)), [r"unexpected keys \['extra'\]"]),
    (lambda s: s.update({"0.weight": np.ones((4, 3))}),
     [r"'0.weight'", r"\(4, 3\)", r"\(3, 4\)"]),
    (lambda s: s.update({"1.num_batches_tracked": np.zeros(2)}),
     [r"'1.num_batches_tracked'", r"\(2,\)"]),
])
def test_load_state_dict_is_all_or_nothing(edit, patterns):
    m = model()
    m(Tensor(data((6, 4)))).backward(data((6, 3), 2))
    state = _changed_state(m, "1.bias", np.zeros(3, np.float32) + 7)
    edit(state)
    before = snapshot(m)
    with raises(ValueError, *patterns):
        m.load_state_dict(state)
    assert_unchanged(before, m)


def test_load_state_dict_non_numeric_entry():
    m = model()
    before = snapshot(m)
    with raises(TypeError, r"'1.bias'", r"not numeric"):
        m.load_state_dict(_changed_state(m, "1.bias", np.array(["a", "b", "c"])))
    assert_unchanged(before, m)


# -- placeholder and compile arguments --------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(shape=3), TypeError, r"placeholder shape must be a tuple, got int"),
    (dict(shape=(-1, 3)), ValueError, r"placeholder dims must be non-negative.*-1"),
    (dict(shape=(2.5, 3)), ValueError, r"placeholder dims must be non-negative.*2\.5"),
    (dict(shape=(True, 3)), ValueError, r"placeholder dims must be non-negative.*True"),
    (dict(shape=("a b", 3)), ValueError, r"symbolic dim 'a b' must be an identifier"),
    (dict(shape=("1N", 3)), ValueError, r"symbolic dim '1N' must be an identifier"),
    (dict(shape=(2, 3), dtype="int32"), ValueError, r"placeholder dtype must be.*int32"),
    (dict(shape=(2, 3), dtype="float16"), ValueError, r"placeholder dtype must be.*float16"),
    (dict(shape=(2, 3), dtype=None), ValueError, r"placeholder dtype must be.*None"),
    (dict(shape=(2, 3), name=3), TypeError, r"placeholder name must be a string, got int"),
    (dict(shape=(2, 3), name=b"x"), TypeError, r"placeholder name must be a string"),
])
def test_placeholder_arguments(kwargs, exc, pattern):
    with raises(exc, pattern):
        lucid.placeholder(**kwargs)


@pytest.mark.parametrize("mode", ["test", "TRAIN", None, 1])
def test_compile_mode(mode):
    bn = nn.BatchNorm1d(3)
    before = snapshot(bn)
    with raises(ValueError, r"mode must be 'train' or 'eval'", re.escape(repr(mode))):
        lucid.compile(bn, lucid.placeholder((None, 3), name="x"), mode=mode)
    assert bn.training
    assert_unchanged(before, bn)


def test_compile_non_placeholder():
    with raises(TypeError, r"compile takes lucid.placeholder"):
        lucid.compile(nn.BatchNorm1d(3), np.ones((2, 3), np.float32))


# -- mixed dtypes must not corrupt state -------------------------------------------------------
def test_float64_input_keeps_float32_buffers():
    bn = nn.BatchNorm1d(3)
    x = Tensor(data((6, 3)), dtype="float64")
    try:
        bn(x)
    except (TypeError, ValueError):  # rejecting mixed dtypes up front is fine too
        assert_unchanged(snapshot(nn.BatchNorm1d(3)), bn)
        return
    assert bn.running_mean.dtype == bn.running_var.dtype == np.float32
    bn(x)  # the same call again
    assert int(bn.num_batches_tracked.data) == 2
