"""Infinite and NaN constants, and masked_fill, as torch has them.

``x + float("inf")``, ``x.clamp(max=inf)``, ``where(m, x, -inf)``, ``x.masked_fill(mask,
-inf)`` before a softmax. Every value and gradient is compared with an independent float64
NumPy reference written from the maths (and, where the function is finite, with central
differences of that reference), on the Tensor face and through ``lucid.compile``; every
compiled program is also run by the reference executor, which it must agree with, and its
source may spell a non-finite constant only as ``np.inf`` / ``np.nan``.
"""
import re
import warnings

import numpy as np
import pytest
import sympy as sp

import lucid
from lucid import Tensor
from numeric_helpers import numeric_grad
from lucid.ops import REGISTRY
from lucid.ops.attributes import constant, number
from lucid.runtime import run as reference_run

INF, NAN = float("inf"), float("nan")
X = np.array([[1.5, -2.0, 0.5, 3.0], [-0.25, 2.0, -1.0, 0.75]])
W = np.array([[0.5, -1.0, 2.0, 1.5], [1.0, 0.25, -0.5, 2.0]])
TOL = {"float32": 1e-5, "float64": 1e-12}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():  # inf - inf and 0 * inf are the point here
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            yield


def close(got, want, dtype="float64"):
    tol = TOL.get(dtype, 0)  # exact for integers and bools
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)  # NaN == NaN


def assert_agree(program, feeds):
    """The generated code, whole and split into forward and backward, equals the executor."""
    program.graph.lint(REGISTRY)
    ref, got = reference_run(program.graph, feeds), program.run(feeds)
    assert list(got) == list(ref)
    for key, value in ref.items():
        assert np.asarray(got[key]).dtype == value.dtype, key
        close(got[key], value, value.dtype.name)
    if program.seeds:
        forward, saved = program.run_forward({k: v for k, v in feeds.items()
                                              if k not in program.seeds})
        grads = program.run_backward(saved, {s: feeds[s] for s in program.seeds})
        for key, value in {**forward, **grads}.items():
            close(value, ref[key], ref[key].dtype.name)
    return got


def assert_tokens_only(program):
    """Non-finite values appear in the source only as the fixed tokens; sympy held none."""
    assert not re.search(r"(?<!np\.)\b(inf|nan|oo|zoo)\b", program.source)
    assert not any(v.has(sp.oo, -sp.oo, sp.zoo, sp.nan) for v in program.plan.sym.value.values())


# name, lucid function, NumPy forward, NumPy gradient of sum(w * f(a))
CASES = [
    ("add inf", lambda v: v + INF, lambda a: a + np.inf, lambda a, w: w),
    ("-inf minus", lambda v: -INF - v, lambda a: -np.inf - a, lambda a, w: -w),
    ("mul -inf", lambda v: v * -INF, lambda a: a * -np.inf, lambda a, w: w * -np.inf),
    ("div by inf", lambda v: v / INF, lambda a: a / np.inf, lambda a, w: w / np.inf),
    ("inf over", lambda v: INF / v, lambda a: np.inf / a, lambda a, w: -w * np.inf / a ** 2),
    ("add nan", lambda v: v + NAN, lambda a: a + np.nan, lambda a, w: w),
    ("mul nan", lambda v: v * NAN, lambda a: a * np.nan, lambda a, w: w * np.nan),
    ("clamp max inf", lambda v: v.clamp(max=INF), lambda a: a, lambda a, w: w),
    ("clamp min -inf", lambda v: lucid.clamp(v, min=-INF), lambda a: a, lambda a, w: w),
    ("clamp -inf, 0.6", lambda v: v.clamp(-INF, 0.6), lambda a: np.minimum(a, 0.6),
     lambda a, w: w * (a <= 0.6)),
    ("where -inf", lambda v: lucid.where(v > 0, v, -INF), lambda a: np.where(a > 0, a, -np.inf),
     lambda a, w: w * (a > 0)),
    ("additive mask", lambda v: v + lucid.where(v > 1, -INF, 0.0),
     lambda a: a + np.where(a > 1, -np.inf, 0.0), lambda a, w: w),
    ("maximum -inf", lambda v: lucid.maximum(v, -INF), lambda a: a, lambda a, w: w),
    ("minimum inf", lambda v: lucid.minimum(v, INF), lambda a: a, lambda a, w: w),
    ("sqrt(x / inf)", lambda v: (v / INF).sqrt(), lambda a: np.sqrt(a / np.inf),  # -0.0 at a < 0
     lambda a, w: w * 0.5 / np.sqrt(a / np.inf) / np.inf),
    ("pow inf", lambda v: v ** INF, lambda a: np.power(a, np.inf),
     lambda a, w: w * np.inf * np.power(a, np.inf)),
    ("exp(-inf x)", lambda v: (v * -INF).exp(), lambda a: np.exp(a * -np.inf),
     lambda a, w: w * np.exp(a * -np.inf) * -np.inf),
    ("relu(x - inf)", lambda v: (v - INF).relu(), lambda a: np.zeros_like(a),
     lambda a, w: np.zeros_like(a)),
    ("tanh(x + inf) x", lambda v: (v + INF).tanh() * v, lambda a: a, lambda a, w: w),
    ("sum over -inf", lambda v: (lucid.where(v > 0, v, -INF).exp() * v).sum(1, keepdim=True) + v,
     lambda a: (np.exp(np.where(a > 0, a, -np.inf)) * a).sum(1, keepdims=True) + a,
     lambda a, w: w.sum(1, keepdims=True) * (a > 0) * np.exp(a) * (1 + a) + w),
]


@pytest.mark.parametrize("name, fn, forward, grad", CASES, ids=[c[0] for c in CASES])
def test_tensor_face_values_and_gradients(name, fn, forward, grad):
    t = Tensor(X, dtype="float64", requires_grad=True)
    y = fn(t)
    assert y.dtype == np.float64
    close(y.data, forward(X))
    y.backward(Tensor(W, dtype="float64"))
    close(t.grad, grad(X, W))
    if np.isfinite(forward(X)).all() and np.isfinite(grad(X, W)).all():  # where defined
        close(t.grad, numeric_grad(forward, X, W), "float32")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, fn, forward, grad", CASES, ids=[c[0] for c in CASES])
def test_compiled_agrees_with_executor_and_numpy(name, fn, forward, grad, dtype):
    program = lucid.compile(fn, lucid.placeholder(X.shape, name="x", dtype=dtype))
    assert_tokens_only(program)
    x, w = X.astype(dtype), W.astype(dtype)
    got = assert_agree(program, {"x": x, program.seeds[0]: w})
    close(got["out"], forward(X).astype(dtype), dtype)
    close(got["grad:x"], grad(X, W).astype(dtype), dtype)
    signed = ~np.isnan(forward(X))  # and the sign of a zero: sqrt(-2 / inf) is -0.0
    assert (np.signbit(got["out"]) == np.signbit(forward(X)))[signed].all()


@pytest.mark.parametrize("fn", [lambda v: (INF * (v - v.mean(0, keepdim=True))).sum(0),
                                lambda v: (v * INF - v.mean(0, keepdim=True) * INF).sum(0)])
def test_an_infinite_factor_stays_inside_a_sum(fn):
    """sum(inf * (x - mean)) is inf - inf, NaN as in torch; pulled out of the sum it would
    be inf * sum(x - mean), which the algebra makes inf * 0."""
    want = (np.inf * (X - X.mean(0, keepdims=True))).sum(0)
    assert np.isnan(want).all()
    close(fn(Tensor(X, dtype="float64")).data, want)
    program = lucid.compile(fn, lucid.placeholder(X.shape, name="x", dtype="float64"),
                            backward=False)
    close(assert_agree(program, {"x": X})["out"], want)


def test_batchnorm_of_an_infinitely_scaled_loss_agrees_with_the_executor():
    bn = lucid.nn.BatchNorm1d(4).to("float64")
    program = lucid.compile(lambda v: bn(v) * INF, lucid.placeholder((None, 4), name="x",
                                                                     dtype="float64"))
    feeds = {**program.feeds((np.vstack([X, -X[::-1] * 2]),), {}), program.seeds[0]: np.ones((4, 4))}
    got = assert_agree(program, feeds)
    # dgamma = sum(dy * xhat) with dy = inf: inf - inf over a centred xhat, as torch
    assert np.isnan(got["grad:batchnorm1d.weight"]).all()
    assert (got["grad:batchnorm1d.bias"] == np.inf).all()


def test_comparisons_with_nonfinite_constants():
    a = np.array([1.0, -np.inf, np.inf, np.nan, 0.0])
    checks = [(lambda v: v < INF, a < np.inf), (lambda v: v > -INF, a > -np.inf),
              (lambda v: v.eq(INF), a == np.inf), (lambda v: v.eq(NAN), a == np.nan),
              (lambda v: v.ne(NAN), a != np.nan), (lambda v: v.ge(-INF), a >= -np.inf)]
    x = lucid.placeholder(a.shape, name="x", dtype="float64")
    assert (Tensor(a, dtype="float64") == INF).data.tolist() == (a == np.inf).tolist()
    for fn, want in checks:
        assert fn(Tensor(a, dtype="float64")).data.tolist() == want.tolist()
        program = lucid.compile(fn, x, backward=False)
        assert assert_agree(program, {"x": a})["out"].tolist() == want.tolist()


def test_constants_accept_nonfinite_floats_and_refuse_them_as_integers():
    assert constant(INF, "float32") == INF and constant(-INF, "float64") == -INF
    assert np.isnan(constant(NAN, "float32")) and np.isnan(number(np.float32("nan"), "float64"))
    for value in (INF, -INF, NAN):
        with pytest.raises(ValueError, match="out of range for int64"):
            constant(value, "int64")
    x = lucid.placeholder((3,), name="x", dtype="int64")  # int * inf is float, as in torch
    program = lucid.compile(lambda v: v * -INF, x, backward=False)
    out = assert_agree(program, {"x": np.array([2, 0, -1])})["out"]
    assert out.dtype == np.float32 and out[[0, 2]].tolist() == [-np.inf, np.inf] and np.isnan(out[1])
    eager = Tensor(np.array([2, 0, -1])) * -INF
    assert eager.dtype == np.float32 and np.array_equal(eager.data, out, equal_nan=True)


def test_where_of_two_constants_keeps_the_float_dtype():
    program = lucid.compile(lambda v: lucid.where(v > 0, -INF, 0.0), lucid.placeholder(
        (4,), name="x", dtype="float32"), backward=False)
    assert "np.float32(-np.inf)" in program.source
    out = assert_agree(program, {"x": np.array([1.0, -1.0, 2.0, 0.0], np.float32)})["out"]
    assert out.dtype == np.float32 and out.tolist() == [-np.inf, 0.0, -np.inf, 0.0]


# --------------------------------------------------------------- softmax over -inf entries
Z = np.array([[-np.inf, 2.0, 3.0, 0.5], [-np.inf, -np.inf, -np.inf, -np.inf],
              [1.0, -np.inf, 0.5, -1.0]])
WZ = np.array([[1.0, 2.0, 3.0, -1.0], [1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, 1.0]])


def softmax_ref(z):
    """exp(z - max) / sum: a -inf entry gets 0, a row of -inf only is NaN (as torch)."""
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def log_softmax_ref(z):
    shifted = z - z.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


GRADS = {"softmax": lambda p, w: p * (w - (p * w).sum(1, keepdims=True)),
         "log_softmax": lambda p, w: w - p * w.sum(1, keepdims=True)}
REFS = {"softmax": softmax_ref, "log_softmax": log_softmax_ref}


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_of_a_tensor_holding_minus_inf(fn):
    t = Tensor(Z, dtype="float64", requires_grad=True)
    y = getattr(t, fn)(1)
    close(y.data, REFS[fn](Z))
    assert np.isnan(y.data[1]).all()
    y.backward(Tensor(WZ, dtype="float64"))
    want = GRADS[fn](softmax_ref(Z), WZ)
    close(t.grad, want)
    assert np.isnan(t.grad[1]).all() and (t.grad[0, 0] == (1.0 if fn == "log_softmax" else 0.0))
    program = lucid.compile(lambda v: getattr(v, fn)(1), lucid.placeholder(Z.shape, name="z",
                                                                         dtype="float64"))
    got = assert_agree(program, {"z": Z, program.seeds[0]: WZ})
    close(got["out"], REFS[fn](Z))
    close(got["grad:z"], want)


MASK = np.array([[True, False, False, True], [True, True, True, True],
                 [False, True, False, False]])


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_masked_fill_then_softmax_gives_masked_entries_nothing(fn):
    x = np.arange(12.0).reshape(3, 4) / 4 - 1

    def forward(a):
        return REFS[fn](np.where(MASK, -np.inf, a))
    want_grad = np.where(MASK, 0.0, GRADS[fn](softmax_ref(np.where(MASK, -np.inf, x)), WZ))
    t = Tensor(x, dtype="float64", requires_grad=True)
    y = getattr(t.masked_fill(Tensor(MASK), -INF), fn)(1)
    close(y.data, forward(x))
    if fn == "softmax":
        assert (y.data[MASK & ~MASK.all(1, keepdims=True)] == 0).all()
    y.backward(Tensor(WZ, dtype="float64"))
    close(t.grad, want_grad)
    assert (t.grad[MASK] == 0).all()  # the fully masked row too, as torch
    # central differences over the finite rows and entries (a -inf entry is constant)
    rows, w = ~MASK.all(1), np.where(MASK, 0.0, WZ)
    t = Tensor(x, dtype="float64", requires_grad=True)
    getattr(t.masked_fill(Tensor(MASK), -INF), fn)(1).backward(Tensor(w, dtype="float64"))
    finite = lambda a: np.where(MASK, 0.0, forward(a))[rows]  # noqa: E731
    close(t.grad[rows], numeric_grad(finite, x, w[rows])[rows], "float32")
    program = lucid.compile(lambda v, m: getattr(v.masked_fill(m, -INF), fn)(1),
                            lucid.placeholder((None, 4), name="x", dtype="float64"),
                            lucid.placeholder((None, 4), name="m", dtype="bool"))
    assert_tokens_only(program)
    got = assert_agree(program, {"x": x, "m": MASK, program.seeds[0]: WZ})
    close(got["out"], forward(x))
    close(got["grad:x"], want_grad)


def test_large_masked_softmax_agrees_with_the_executor():
    """Big enough for the sliced and blocked forms of the generated code."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 2048, 64)).astype(np.float32)
    mask = rng.random((2048, 64)) < 0.3
    mask[:5] = True
    program = lucid.compile(lambda v, m: lucid.where(v > 2, INF, v).masked_fill(m, -INF)
                            .clamp(max=INF).softmax(1) * v,
                            lucid.placeholder(("N", 64), name="x"),
                            lucid.placeholder(("N", 64), name="m", dtype="bool"))
    assert_tokens_only(program)
    got = assert_agree(program, {"x": x, "m": mask, program.seeds[0]: w})
    want = softmax_ref(np.where(mask, -np.inf, np.where(x > 2, np.inf, x)).astype(np.float64)) * x
    np.testing.assert_allclose(got["out"], want, rtol=1e-5, atol=1e-6)
    assert np.isnan(got["out"][:5]).all()


# --------------------------------------------------------------- masked_fill
def test_masked_fill_broadcasts_and_routes_the_gradient():
    mask = np.array([[True, False, True, False]])
    t = Tensor(X, dtype="float64", requires_grad=True)
    y = lucid.masked_fill(t, Tensor(mask), 7.5)
    close(y.data, np.where(mask, 7.5, X))
    y.backward(Tensor(W, dtype="float64"))
    close(t.grad, np.where(mask, 0.0, W))
    close(t.grad, numeric_grad(lambda a: np.where(mask, 7.5, a), X, W), "float32")
    wide = Tensor(X[0], dtype="float64").masked_fill(Tensor(MASK[:2]), 1.0)  # torch broadcasts
    assert wide.shape == (2, 4) and wide.data.tolist() == np.where(MASK[:2], 1.0, X[0]).tolist()


def test_masked_fill_with_a_0d_tensor_value_sends_it_the_masked_gradient():
    mask = np.array([[True, False, True, False], [False, False, True, True]])
    t = Tensor(X, dtype="float32", requires_grad=True)
    v = Tensor(2.0, dtype="float64", requires_grad=True)
    y = t.masked_fill(Tensor(mask), v)
    assert y.dtype == np.float32  # the input's dtype, as torch
    close(y.data, np.where(mask, 2.0, X).astype(np.float32), "float32")
    y.backward(Tensor(W, dtype="float32"))
    assert v.grad.dtype == np.float64 and np.isclose(v.grad, W[mask].sum())
    close(t.grad, np.where(mask, 0.0, W), "float32")
    program = lucid.compile(lambda a, m, b: a.masked_fill(m, b),
                            lucid.placeholder(X.shape, name="x", dtype="float64"),
                            lucid.placeholder(X.shape, name="m", dtype="bool"),
                            lucid.placeholder((), name="v", dtype="float64"))
    got = assert_agree(program, {"x": X, "m": mask, "v": np.array(-INF), program.seeds[0]: W})
    close(got["out"], np.where(mask, -np.inf, X))
    close(got["grad:v"], W[mask].sum())
    close(got["grad:x"], np.where(mask, 0.0, W))


def test_masked_fill_converts_the_value_to_the_input_dtype_as_torch():
    ints = Tensor(np.array([1, 2, 3]))
    mask = Tensor(np.array([True, True, False]))
    assert ints.masked_fill(mask, 2.7).data.tolist() == [2, 2, 3]
    assert ints.masked_fill(mask, -2.7).dtype == np.int64
    assert ints.masked_fill(mask, -2.7).data.tolist() == [-2, -2, 3]
    assert ints.masked_fill(mask, Tensor(3.7)).data.tolist() == [3, 3, 3]
    flags = Tensor(np.array([True, False, False]))
    assert flags.masked_fill(mask, 0.5).data.tolist() == [True, True, False]
    assert flags.masked_fill(mask, 0).data.tolist() == [False, False, False]
    assert Tensor(X).masked_fill(Tensor(MASK[:2]), True).data[MASK[:2]].tolist() == [1.0] * 6


@pytest.mark.parametrize("call, error, message", [
    (lambda t: t.masked_fill(Tensor(np.array([1, 0, 1, 0])), 0.0), RuntimeError,
     "only supports boolean masks, but got mask with dtype int64"),
    (lambda t: t.masked_fill(Tensor(np.ones(4, np.float32)), 0.0), RuntimeError,
     "dtype float32"),
    (lambda t: t.masked_fill(Tensor(np.ones(4, bool)), Tensor([1.0])), RuntimeError,
     "0-dimensional value tensor, but got tensor with 1 dimension"),
    (lambda t: t.long().masked_fill(Tensor(np.ones(4, bool)), INF), RuntimeError,
     "cannot be converted to int64"),
    (lambda t: t.masked_fill(Tensor(np.ones(4, bool)), "1"), TypeError, "got str"),
    (lambda t: (t > 0).masked_fill(Tensor(np.ones(4, bool)), "1"), TypeError, "got str"),
])
def test_masked_fill_refuses_what_torch_refuses(call, error, message):
    with pytest.raises(error, match=message):
        call(Tensor(X[0]))


def test_masked_fill_in_place_follows_the_in_place_rules():
    t = Tensor(X.copy(), dtype="float64")
    data = t.data
    assert t.masked_fill_(Tensor(MASK[0]), -INF) is t
    assert t.data is data and t.data.tolist() == np.where(MASK[0], -np.inf, X).tolist()
    before = t.data.copy()
    for bad in [lambda: t.masked_fill_(Tensor(np.ones((3, 2, 4), bool)), 1.0),  # broadcasts t
                lambda: t.masked_fill_(Tensor(np.ones(4)), 1.0)]:  # not a bool mask
        with pytest.raises(RuntimeError):
            bad()
        assert np.array_equal(t.data, before)  # a failed call changes nothing
    leaf = Tensor(X, dtype="float64", requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        leaf.masked_fill_(Tensor(MASK[0]), 0.0)
    assert leaf.data.tolist() == X.tolist()
    y = leaf * 2
    y.masked_fill_(Tensor(MASK[0]), -INF)
    assert y.data.tolist() == np.where(MASK[0], -np.inf, 2 * X).tolist()
    y.backward(Tensor(W, dtype="float64"))
    close(leaf.grad, np.where(MASK[0], 0.0, 2 * W))


# --------------------------------------------------------------- nothing reaches the source
class Evil(float):
    """A float whose text is code: what a repr of user data in the source would run."""

    def __repr__(self):
        return "__import__('os').system('echo PWNED')"

    __str__ = __repr__
    __format__ = lambda self, spec: repr(self)  # noqa: E731


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0.5"])
def test_a_hostile_float_cannot_reach_the_generated_source(value):
    v = Evil(value)
    fns = [lambda a, m: a + v, lambda a, m: a.clamp(max=v), lambda a, m: lucid.where(m, a, v),
           lambda a, m: a.masked_fill(m, v), lambda a, m: a ** v, lambda a, m: lucid.maximum(a, v)]
    for fn in fns:
        program = lucid.compile(fn, lucid.placeholder(X.shape, name="x", dtype="float64"),
                                lucid.placeholder(X.shape, name="m", dtype="bool"))
        assert "PWNED" not in program.source and "__import__" not in program.source
        assert_tokens_only(program)
        for name in program.graph.topo():
            node = program.graph.node(name)
            assert all(type(a) in (int, float, bool, str, tuple) for a in node.attrs.values())
        assert_agree(program, {"x": X, "m": MASK[:2], program.seeds[0]: W})
