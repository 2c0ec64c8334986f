"""Optimizer steps compiled into the parameter and state arrays (lucid.optim.eager_step), and
``lucid.compile(..., donate=)`` under them.

Values: test_optim's NumPy transcriptions of torch's rules, run again with every parameter on
the compiled path (MIN_ELEMENTS = 0), and large parameters against the NumPy evaluation of
the same rule. In place: views of a parameter and the state arrays see the step, as torch's.
"""
import numpy as np
import pytest

import lucid
from lucid.nn import Parameter
from lucid.optim import eager_step

import test_optim as reference  # noqa: E402  (tests/ is on the path, as for the others)


@pytest.fixture
def compiled(monkeypatch):
    monkeypatch.setattr(eager_step, "MIN_ELEMENTS", 0)


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, dampening=0.3),
                                dict(momentum=0.8, nesterov=True, weight_decay=0.1),
                                dict(weight_decay=0.01, maximize=True)])
def test_sgd_compiled_against_torchs_rule(compiled, kw):
    reference.test_sgd(kw)


@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.1), dict(amsgrad=True),
                                dict(betas=(0.5, 0.9), eps=1e-3)])
def test_adam_compiled_against_torchs_rule(compiled, kw):
    reference.test_adam_and_adamw(kw)


CASES = [("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
         ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01))]


def steps(cls, kw, dtype, shape, path, layout=lambda a: a, steps=3):
    """Three steps of ``cls`` on one parameter, on ``path`` ("compiled" or "numpy")."""
    rng = np.random.default_rng(7)
    p = Parameter(np.zeros(1), dtype=dtype)
    p.data = layout(rng.normal(size=shape).astype(dtype))
    opt = getattr(lucid.optim, cls)([p], **kw)
    old = eager_step.MIN_ELEMENTS
    eager_step.MIN_ELEMENTS = 0 if path == "compiled" else 1 << 62
    try:
        for _ in range(steps):
            p.grad = rng.normal(size=p.data.shape).astype(dtype)
            opt.step()
    finally:
        eager_step.MIN_ELEMENTS = old
    return p, opt


@pytest.mark.parametrize("cls,kw", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_parameter_same_values_both_ways(cls, kw, dtype):
    shape = (256, 300)  # above MIN_ELEMENTS: the compiled path by default
    got, _ = steps(cls, kw, dtype, shape, "compiled")
    want, _ = steps(cls, kw, dtype, shape, "numpy")
    assert got.data.dtype == np.dtype(dtype)
    # float32: a value near 0 after x - lr g cancels: absolute
    atol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(got.data, want.data, rtol=1e-5 if dtype == "float32" else 1e-13,
                               atol=atol)


@pytest.mark.parametrize("cls,kw", CASES)
def test_parameter_and_state_are_written_in_place(compiled, cls, kw):
    rng = np.random.default_rng(3)
    p = Parameter(rng.normal(size=(40, 50)), dtype="float32")
    view = p.data[:, 10]  # a view of the parameter, as a torch view sees the step
    data = p.data
    opt = getattr(lucid.optim, cls)([p], **kw)
    p.grad = rng.normal(size=(40, 50)).astype(np.float32)
    opt.step()
    first = {k: v for k, v in opt.state[p].items() if isinstance(v, np.ndarray)}
    version = p._version
    opt.step()
    assert p.data is data and np.array_equal(view, p.data[:, 10]) and p._version == version + 1
    for k, before in first.items():  # the state arrays themselves were updated
        if k == "max_exp_avg_sq":  # a where (no out=): a new array each step
            assert not np.shares_memory(before, opt.state[p][k])
            continue
        assert np.shares_memory(before, opt.state[p][k])
        assert np.array_equal(before, opt.state[p][k])


@pytest.mark.parametrize("layout", ["transposed", "read-only", "grad is data"])
def test_unusual_arrays_step_as_the_numpy_rule_does(layout):
    cls, kw = "SGD", dict(lr=0.1, momentum=0.9)
    if layout == "grad is data":
        results = []
        for path in ("compiled", "numpy"):
            p = Parameter(np.linspace(-1, 1, 40000).reshape(200, 200), dtype="float32")
            opt = getattr(lucid.optim, cls)([p], **kw)
            eager_step.MIN_ELEMENTS, old = (0 if path == "compiled" else 1 << 62), \
                eager_step.MIN_ELEMENTS
            try:
                for _ in range(2):
                    p.grad = p.data  # the very same array
                    opt.step()
            finally:
                eager_step.MIN_ELEMENTS = old
            results.append(p.data.copy())
        np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
        return

    def shape_it(a):
        if layout == "transposed":
            return a.T  # not C-contiguous: computed from a copy, written back
        a.flags.writeable = False  # replaced, as lucid's in-place writes do
        return a
    got, _ = steps(cls, kw, "float32", (150, 300), "compiled", shape_it)
    want, _ = steps(cls, kw, "float32", (150, 300), "numpy", shape_it)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-6)


def test_a_wrong_shaped_gradient_fails_before_anything_changes(compiled):
    p = Parameter(np.ones((200, 200)), dtype="float32")
    opt = lucid.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones((200, 199), np.float32)
    with pytest.raises(ValueError):
        opt.step()
    assert (p.data == 1).all() and opt.state.get(p, {}) == {}


# ----------------------------------------------------------------------------- donate
def placeholders(*names, shape=(None,)):
    return [lucid.placeholder(shape, "float64", name=n) for n in names]


def test_donated_output_is_computed_into_its_input():
    def fn(a, b, k):
        return a * k + b * 2.0, b - a

    a, b = np.linspace(0, 1, 1000), np.linspace(1, 2, 1000)
    k = np.array(3.0)
    plain = lucid.compile(fn, *placeholders("a", "b"), lucid.placeholder((), "float64", "k"),
                          mode="eval")
    want = plain(a, b, k)
    donated = lucid.compile(fn, *placeholders("a", "b"), lucid.placeholder((), "float64", "k"),
                            mode="eval", donate={"out1": "b"})
    assert donated.donated == ["out1"]
    a2, b2 = a.copy(), b.copy()
    got = donated(a2, b2, k)
    assert got["out1"] is b2 or np.shares_memory(got["out1"], b2)
    np.testing.assert_array_equal(b2, want["out1"])
    np.testing.assert_array_equal(got["out0"], want["out0"])  # read b before it was written
    np.testing.assert_array_equal(a2, a)


def test_an_input_read_after_the_output_is_written_is_not_donated():
    def fn(a, b):
        return a * 2.0, a + b  # out0 first; a is read again by out1

    a, b = np.arange(500.0), np.ones(500)
    program = lucid.compile(fn, *placeholders("a", "b"), mode="eval", donate={"out0": "a"})
    a2 = a.copy()
    got = program(a2, b)
    np.testing.assert_array_equal(got["out1"], a + b)
    np.testing.assert_array_equal(got["out0"], a * 2)
    if program.donated == ["out0"]:  # computed last, after out1 read a: still right
        assert np.shares_memory(got["out0"], a2)
    else:
        np.testing.assert_array_equal(a2, a)


def test_the_donated_term_is_used_first_whatever_the_sum_order():
    def fn(g, buf, take, keep):
        return take * g + keep * buf  # buf's term is not the first: it must be read first

    g, buf = np.linspace(-1, 1, 700), np.linspace(2, 3, 700)
    scalars = [lucid.placeholder((), "float64", n) for n in ("take", "keep")]
    program = lucid.compile(fn, *placeholders("g", "buf"), *scalars, mode="eval",
                            donate={"out": "buf"})
    assert program.donated == ["out"]
    b2 = buf.copy()
    program(g, b2, np.array(0.25), np.array(0.75))
    np.testing.assert_allclose(b2, 0.25 * g + 0.75 * buf, rtol=1e-15)


@pytest.mark.parametrize("donate,error,match", [
    ({"out9": "a"}, ValueError, "no output 'out9'"),
    ({"out": "zz"}, ValueError, "no input 'zz'"),
    ({"out": "s"}, ValueError, "float64\\[\\]"),
    (["out", "a"], TypeError, "dict"),
    ({"out": ["a"]}, TypeError, "strings"),
])
def test_donate_arguments_are_checked(donate, error, match):
    with pytest.raises(error, match=match):
        lucid.compile(lambda a, s: a * s, *placeholders("a"),
                      lucid.placeholder((), "float64", "s"), mode="eval", donate=donate)


def test_donate_refuses_a_program_with_a_backward():
    with pytest.raises(ValueError, match="mode='eval' or backward=False"):
        lucid.compile(lambda a: a * a, *placeholders("a"), mode="eval", backward=True,
                      donate={"out": "a"})


@pytest.mark.parametrize("fn", [
    lambda x: 2.0 * x + 3.0 * lucid.transpose(x, 0, 1),  # review: a view read after the write
    lambda x: x * 2 + x[0:1, :],
    lambda x: 2.0 * x * lucid.exp(x) + lucid.transpose(x, 0, 1),
    lambda x: lucid.reshape(x, (16, 16)) * 2 + x,
])
def test_an_input_read_through_a_view_is_never_clobbered(fn):
    ph = lucid.placeholder((16, 16), "float64", name="x")
    x = np.random.default_rng(8).normal(size=(16, 16))
    want = lucid.compile(fn, ph, mode="eval")(x.copy())["out"]
    donated = lucid.compile(fn, ph, mode="eval", donate={"out": "x"})
    mine = x.copy()
    got = donated(mine)["out"]
    np.testing.assert_allclose(got, want, rtol=1e-15)
    if donated.donated:
        assert np.shares_memory(got, mine)
    else:
        np.testing.assert_array_equal(mine, x)


def test_two_outputs_of_one_value_donate_one_array():
    def fn(a, b):
        y = a * 2 + b
        return y, y

    program = lucid.compile(fn, *placeholders("a", "b"), mode="eval",
                            donate={"out0": "a", "out1": "b"})
    a, b = np.ones(300), np.full(300, 2.0)
    got = program(a, b)
    assert program.donated == ["out0"] and np.shares_memory(got["out0"], a)
    np.testing.assert_array_equal(b, 2.0)  # not donated: untouched
    np.testing.assert_array_equal(got["out1"], 4.0)


def test_default_paths_by_size():
    """Small parameters step on NumPy arrays (new state arrays each step), large ones in place."""
    for size, in_place in ((1000, False), (eager_step.MIN_ELEMENTS, True)):
        p = Parameter(np.ones(size), dtype="float32")
        opt = lucid.optim.SGD([p], lr=0.1, momentum=0.9)
        for _ in range(2):
            p.grad = np.ones(size, np.float32)
            before = opt.state.get(p, {}).get("momentum_buffer")
            opt.step()
        assert np.shares_memory(before, opt.state[p]["momentum_buffer"]) is in_place
        np.testing.assert_allclose(p.data, 1 - 0.1 - 0.1 * 1.9, rtol=1e-6)
