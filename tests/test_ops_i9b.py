"""Issue 9, items 1-2 (second part): erf, gelu, clamp, min/amin/argmin, max(dim), softplus,
the tensor power, torch's matmul and broadcasting regression losses.

References are independent: ``math.erf``, NumPy formulas transcribed from torch's
documentation, and central finite differences in float64 of the reference executor;
gradients are also compared between generated code and the reference executor
(``check_program_gradients`` of test_ops) and, for erf, against the symbolic rule
with numbers substituted.
"""
import math
import os
import sys

import numpy as np
import pytest
import sympy as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ops import check_program_gradients, compile_weighted_sum, rng_for  # noqa: E402

import lucid  # noqa: E402
import lucid.nn as nn  # noqa: E402
import lucid.nn.functional as F  # noqa: E402
from lucid import Tensor  # noqa: E402
from lucid.ops import ARGS, REGISTRY  # noqa: E402
from lucid.ops.special import erf as erf_helper  # noqa: E402
from lucid.runtime import run as reference_run  # noqa: E402

MATH_ERF = np.vectorize(math.erf, otypes=[np.float64])
A = ARGS[0]


def t64(values, grad=False):
    return Tensor(np.asarray(values, np.float64), dtype="float64", requires_grad=grad)


def grad_of(fn, *values):
    """Gradients of ``sum(fn(*tensors))`` wrt each float64 input, run eagerly."""
    ts = [t64(v, True) for v in values]
    fn(*ts).sum().backward()
    return [t.grad for t in ts]


# ----------------------------------------------------------------------------- erf
def erf_grid():
    lin = np.linspace(-30, 30, 60001)
    logs = np.geomspace(1e-300, 30, 20000)
    edges = [0.46875, 4.0, 26.543, 5.9, 6.0, 1e-308, 5e-324, np.nextafter(0.46875, 1),
             np.nextafter(4.0, 5), 1e300, np.finfo(np.float64).max]
    return np.concatenate([lin, logs, -logs, edges, np.negative(edges)])


def test_erf_helper_matches_math_erf_to_1e_14_relative():
    x = erf_grid()
    got, want = erf_helper(x), MATH_ERF(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    assert_close_relative(got, want, 1e-14, x)


def assert_close_relative(got, want, rtol, x):
    zero = want == 0
    np.testing.assert_array_equal(got[zero], want[zero])
    rel = np.abs(got[~zero] - want[~zero]) / np.abs(want[~zero])
    assert rel.max() < rtol, (rel.max(), x[~zero][rel.argmax()])


def test_erf_helper_special_values():
    got = erf_helper(np.array([0.0, -0.0, np.inf, -np.inf, np.nan]))
    assert got[0] == 0 and not np.signbit(got[0])
    assert got[1] == 0 and np.signbit(got[1])  # erf(-0) = -0, as math.erf
    assert got[2] == 1.0 and got[3] == -1.0 and np.isnan(got[4])
    assert float(erf_helper(1e-300)) == pytest.approx(2 / math.sqrt(math.pi) * 1e-300, rel=1e-15)
    assert erf_helper(np.float64(0.5)).shape == ()


def test_erf_helper_keeps_float32_and_rounds_once():
    x = np.linspace(-5, 5, 1001).astype(np.float32)
    got = erf_helper(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, MATH_ERF(x.astype(np.float64)).astype(np.float32))


def test_erf_through_generated_code_and_reference_executor():
    x = erf_grid()
    x = x[np.abs(x) < 1e150]  # the derivative's x*x stays finite
    ph = lucid.placeholder((None,), "float64", name="x")
    program = lucid.compile(lambda v: lucid.erf(v), ph)
    assert "_erf(" in program.source and "import" not in program.source.split("def ")[-1]
    feeds = {"x": x, program.seeds[0]: np.ones_like(x)}
    for result in (program.run(feeds), reference_run(program.graph, feeds)):
        assert_close_relative(result["out"], MATH_ERF(x), 1e-14, x)
        # d erf / dx = 2/sqrt(pi) exp(-x^2), written out here from the maths
        np.testing.assert_allclose(result["grad:x"], 2 / math.sqrt(math.pi) * np.exp(-x * x),
                                   rtol=1e-13, atol=1e-300)


def test_erf_helper_cannot_be_shadowed_by_a_placeholder_name():
    ph = lucid.placeholder((3,), "float64", name="_erf")
    program = lucid.compile(lambda v: lucid.erf(v) + v, ph)
    assert "_erf" not in program.graph.inputs  # names starting with _ belong to codegen
    x = np.array([-1.0, 0.25, 3.0])
    out = program.run({program.graph.inputs[0]: x, program.seeds[0]: np.ones(3)})["out"]
    np.testing.assert_allclose(out, MATH_ERF(x) + x, rtol=1e-15)


def test_erf_derivative_is_sympys_diff_and_matches_finite_differences():
    op = REGISTRY["erf"]
    assert op.expr == sp.erf(A)
    assert op.partials == (sp.diff(sp.erf(A), A),)
    assert sp.simplify(op.partials[0] - 2 / sp.sqrt(sp.pi) * sp.exp(-A ** 2)) == 0
    for v in [-3.0, -0.7, 0.0, 0.2, 1.5, 4.5]:
        symbolic = float(op.partials[0].subs(A, v))
        numeric = (math.erf(v + 1e-6) - math.erf(v - 1e-6)) / 2e-6
        assert symbolic == pytest.approx(numeric, rel=1e-7, abs=1e-9)


def test_erf_gradient_three_ways_including_zero_and_large():
    x = np.array([[-4.5, -1.0, 0.0], [0.3, 2.0, 5.0], [-0.46875, 0.46875, 4.0],
                  [1e-3, -2.5, 3.3]])
    check_program_gradients(lambda v: lucid.erf(v), {"x": (("N", 3), x)})


def test_erf_on_tensors_float32_and_int():
    x = Tensor(np.array([-2.0, 0.0, 0.5], np.float32))
    out = lucid.erf(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, MATH_ERF([-2.0, 0.0, 0.5]), rtol=1e-7)
    y = lucid.erf(Tensor(np.array([1, 2], np.int64)))
    assert y.dtype == np.float32  # a float op on integers gives float32, as torch
    np.testing.assert_allclose(y.data, MATH_ERF([1, 2]), rtol=1e-7)


# ----------------------------------------------------------------------------- gelu
def gelu_reference(x, approximate):
    x = np.asarray(x, np.float64)
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + MATH_ERF(x / math.sqrt(2)))


def gelu_grad_reference(x, approximate):
    if approximate == "tanh":
        k = math.sqrt(2 / math.pi)
        u = k * (x + 0.044715 * x ** 3)
        th = np.tanh(u)
        return 0.5 * (1 + th) + 0.5 * x * (1 - th ** 2) * k * (1 + 3 * 0.044715 * x ** 2)
    return 0.5 * (1 + MATH_ERF(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_values_and_gradient_against_the_formulas(approximate):
    x = np.linspace(-8, 8, 161)
    out = F.gelu(t64(x), approximate=approximate)
    np.testing.assert_allclose(out.data, gelu_reference(x, approximate), rtol=1e-14, atol=1e-15)
    (g,) = grad_of(lambda v: F.gelu(v, approximate=approximate), x)
    np.testing.assert_allclose(g, gelu_grad_reference(x, approximate), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradient_three_ways(approximate):
    x = rng_for("gelu", approximate).normal(size=(4, 3)) * 2
    check_program_gradients(lambda v: F.gelu(v, approximate=approximate), {"x": (("N", 3), x)})


def test_gelu_module_float32_repr_and_bad_approximate():
    x = np.linspace(-3, 3, 13).astype(np.float32)
    for approximate in ("none", "tanh"):
        m = nn.GELU(approximate=approximate)
        assert repr(m) == f"GELU(approximate={approximate!r})"
        out = m(Tensor(x))
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.data, gelu_reference(x, approximate), rtol=2e-6, atol=1e-7)
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU(approximate="fast")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(Tensor(x), approximate="erf")


def test_gelu_has_no_rule_of_its_own():
    assert "gelu" not in REGISTRY
    ph = lucid.placeholder((None, 3), "float64", name="x")
    program = lucid.compile(lambda v: F.gelu(v), ph)
    assert {n.op for n in program.graph.nodes()} >= {"erf", "exp"}


# ----------------------------------------------------------------------------- clamp
def test_clamp_scalar_bounds_values_and_inclusive_gradient():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    out = t64(x).clamp(-1.0, 1.0)
    np.testing.assert_array_equal(out.data, np.clip(x, -1, 1))
    (g,) = grad_of(lambda v: v.clamp(min=-1.0, max=1.0), x)
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 1, 1, 0])  # min <= x <= max, inclusive
    (g,) = grad_of(lambda v: lucid.clamp(v, min=0.0), x)
    np.testing.assert_array_equal(g, (x >= 0).astype(float))
    (g,) = grad_of(lambda v: v.clip(max=0.0), x)
    np.testing.assert_array_equal(g, (x <= 0).astype(float))
    np.testing.assert_array_equal(t64(x).clip(max=0.0).data, np.minimum(x, 0))


def test_clamp_tensor_bounds_broadcast_with_torchs_gradients():
    rng = rng_for("clamp")
    x = rng.normal(size=(4, 3))
    lo, hi = rng.normal(size=3) - 0.5, rng.normal(size=(4, 1)) + 1.0
    lo[1] = 5.0  # min above max in column 1: torch gives max there
    want = np.minimum(np.maximum(x, lo), hi)
    out = lucid.clamp(t64(x), min=t64(lo), max=t64(hi))
    np.testing.assert_array_equal(out.data, want)
    gx, glo, ghi = grad_of(lambda a, b, c: lucid.clamp(a, b, c), x, lo, hi)
    # torch's clamp_backward_min_max, transcribed
    np.testing.assert_array_equal(gx, ((x >= lo) & (x <= hi)).astype(float))
    np.testing.assert_array_equal(glo, ((x < lo) & (lo < hi)).sum(0))
    np.testing.assert_array_equal(ghi, ((x > hi) | (hi < lo)).sum(1, keepdims=True))


def test_clamp_gradient_where_torch_gives_none_nan_and_equal_bounds():
    x = np.array([-1.0, 0.5, 2.0, np.nan, 0.2])
    lo = np.array([0.5, 0.5, 0.5, 0.0, 0.0])
    hi = np.array([0.5, 0.5, 0.5, 1.0, 1.0])
    out = lucid.clamp(t64(x), t64(lo), t64(hi))
    np.testing.assert_array_equal(out.data, [0.5, 0.5, 0.5, np.nan, 0.2])
    gx, glo, ghi = grad_of(lambda a, b, c: lucid.clamp(a, b, c), x, lo, hi)
    # x < min == max: torch's gradient reaches neither bound; a NaN x gets none either
    np.testing.assert_array_equal(gx, [0, 1, 0, 0, 1])
    np.testing.assert_array_equal(glo, [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(ghi, [0, 0, 1, 0, 0])
    for kw in [dict(min=0.0, max=1.0), dict(min=0.0), dict(max=1.0)]:
        (g,) = grad_of(lambda a: a.clamp(**kw), x)
        assert g[3] == 0 and np.isnan(t64(x).clamp(**kw).data[3])


def test_clamp_gradient_three_ways_away_from_the_kinks():
    rng = rng_for("clamp3")
    x = rng.uniform(-2, 2, (4, 3))
    x[np.abs(np.abs(x) - 1) < 0.05] = 0.3
    check_program_gradients(lambda v: lucid.clamp(v, -1.0, 1.0), {"x": (("N", 3), x)})
    lo = np.full(3, -0.5)
    lo[np.abs(x - lo).min(0) < 0.05] = -0.25
    check_program_gradients(lambda v, b: lucid.clamp(v, min=b),
                            {"x": (("N", 3), x), "b": ((3,), lo)})


def test_clamp_needs_a_bound_and_keeps_dtype_rules():
    with pytest.raises(ValueError, match="at least one of 'min' or 'max'"):
        lucid.clamp(t64([1.0]))
    with pytest.raises(ValueError, match="at least one"):
        t64([1.0]).clamp()
    ints = Tensor(np.array([-3, 0, 7], np.int64))
    out = ints.clamp(0, 5)
    assert out.dtype == np.int64 and out.data.tolist() == [0, 0, 5]
    assert ints.clamp(min=0.5).data.dtype == np.float32  # a float bound promotes, as torch
    f32 = Tensor(np.array([-3.0, 3.0], np.float32)).clamp(-1, 1)
    assert f32.dtype == np.float32 and f32.data.tolist() == [-1.0, 1.0]


# ------------------------------------------------------------------ min, amin, argmin, max(dim)
def test_min_amin_argmin_values_against_numpy():
    x = rng_for("min").normal(size=(3, 4, 5))
    t = t64(x)
    assert float(t.min().data) == x.min()
    np.testing.assert_array_equal(t.amin(1).data, x.min(1))
    np.testing.assert_array_equal(lucid.amin(t, (0, 2), keepdim=True).data,
                                  x.min((0, 2), keepdims=True))
    np.testing.assert_array_equal(t.argmin().data, np.argmin(x))
    np.testing.assert_array_equal(t.argmin(2).data, np.argmin(x, 2))
    np.testing.assert_array_equal(lucid.argmin(t, -1, keepdim=True).data,
                                  np.argmin(x, -1, keepdims=True))
    values, indices = t.min(1)
    np.testing.assert_array_equal(values.data, x.min(1))
    np.testing.assert_array_equal(indices.data, x.argmin(1))
    values, indices = t.min(1, keepdim=True)
    assert values.shape == (3, 1, 5) and indices.shape == (3, 1, 5)
    assert indices.dtype == np.int64


def test_amin_amax_split_the_gradient_evenly_over_ties():
    x = np.array([[1.0, 0.0, 0.0, 2.0], [3.0, 3.0, 3.0, -1.0]])
    (g,) = grad_of(lambda v: v.amin(1), x)
    np.testing.assert_array_equal(g, [[0, 0.5, 0.5, 0], [0, 0, 0, 1]])
    (g,) = grad_of(lambda v: v.amax(1), x)
    np.testing.assert_array_equal(g, [[0, 0, 0, 1], [1 / 3, 1 / 3, 1 / 3, 0]])
    (g,) = grad_of(lambda v: v.min(), np.array([2.0, -1.0, -1.0]))  # full reduction: amin
    np.testing.assert_array_equal(g, [0, 0.5, 0.5])


@pytest.mark.parametrize("kind", ["max", "min"])
def test_max_and_min_along_dim_send_the_gradient_to_the_returned_index_only(kind):
    x = np.array([[1.0, 5.0, 5.0, 0.0], [-2.0, -2.0, 7.0, -2.0]])
    w = np.array([10.0, 20.0])
    t = t64(x, True)
    values, indices = getattr(t, kind)(1)
    pick = x.argmax(1) if kind == "max" else x.argmin(1)  # the first extremum, as torch
    np.testing.assert_array_equal(indices.data, pick)
    (values * t64(w)).sum().backward()
    want = np.zeros_like(x)
    want[np.arange(2), pick] = w
    np.testing.assert_array_equal(t.grad, want)


@pytest.mark.parametrize("kind", ["max", "min"])
def test_max_and_min_along_dim_gradient_three_ways(kind):
    x = rng_for("extreme", kind).normal(size=(4, 3, 5))
    check_program_gradients(lambda v: getattr(v, kind)(2)[0], {"x": (("N", 3, 5), x)})
    check_program_gradients(lambda v: getattr(v, kind)(1, keepdim=True)[0],
                            {"x": (("N", 3, 5), x)})
    check_program_gradients(lambda v: getattr(lucid, "a" + kind)(v, 0),
                            {"x": (("N", 3, 5), x)})


def test_take_along_refuses_an_index_of_the_wrong_shape():
    x = lucid.placeholder((4, 3), "float64", name="x")
    i = lucid.placeholder((4, 2), "int64", name="i")
    with pytest.raises(ValueError, match="take_along: the index must have shape"):
        lucid.frontend.apply("take_along", x, i, axis=1)


# ----------------------------------------------------------------------------- softplus
def softplus_reference(x, beta, threshold):
    bx = beta * x
    return np.where(bx > threshold, x, np.log1p(np.exp(np.minimum(bx, threshold))) / beta)


@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 1.0)])
def test_softplus_against_torchs_formula(beta, threshold):
    x = np.concatenate([np.linspace(-40, 40, 161), [threshold / beta, 1e4, -1e4]])
    out = F.softplus(t64(x), beta=beta, threshold=threshold)
    np.testing.assert_allclose(out.data, softplus_reference(x, beta, threshold), rtol=1e-13,
                               atol=1e-300)
    (g,) = grad_of(lambda v: F.softplus(v, beta=beta, threshold=threshold), x)
    sig = 1 / (1 + np.exp(-np.clip(beta * x, -700, 700)))
    np.testing.assert_allclose(g, np.where(beta * x > threshold, 1.0, sig), rtol=1e-13,
                               atol=1e-300)
    assert np.isfinite(g).all()
    check_program_gradients(lambda v: F.softplus(v, beta=beta, threshold=threshold),
                            {"x": (("N", 3), rng_for("sp", beta).normal(size=(4, 3)) * 2)})


# ----------------------------------------------------------------------------- tensor power
def power_grad_reference(x, y):
    """torch's pow_backward_self and pow_backward_exponent, transcribed."""
    with np.errstate(all="ignore"):
        gx = np.where(y == 0, 0.0, y * np.power(x, y - 1))
        gy = np.where((x == 0) & (y >= 0), 0.0, np.power(x, y) * np.log(x))
    return gx, gy


def test_tensor_power_of_zero_and_negative_bases_is_the_real_power():
    x = np.array([-2.0, -2.0, 0.0, 0.0, 0.0, 3.0, -8.0, 2.0])
    y = np.array([2.0, 3.0, 0.0, 2.0, 0.5, -1.0, 1 / 3, 0.0])
    with np.errstate(all="ignore"):
        want = np.power(x, y)
        out = t64(x) ** t64(y)
    np.testing.assert_array_equal(out.data, want)
    assert out.data[0] == 4 and out.data[1] == -8 and out.data[2] == 1 and out.data[3] == 0
    assert np.isnan(out.data[6])  # a negative base to a fractional power: NaN, as torch
    with np.errstate(all="ignore"):
        gx, gy = grad_of(lambda a, b: a ** b, x, y)
    want_x, want_y = power_grad_reference(x, y)
    np.testing.assert_array_equal(gx, want_x)
    np.testing.assert_array_equal(np.isnan(gy), np.isnan(want_y))
    np.testing.assert_allclose(gy[~np.isnan(gy)], want_y[~np.isnan(want_y)], rtol=1e-15)
    assert gx[3] == 0 and gy[2] == 0 and gy[3] == 0 and np.isnan(gy[0])


def test_number_to_a_tensor_power():
    y = np.array([0.0, 1.0, 2.0, -1.0, 0.5])
    for base in (2.0, 0.0, -2.0):
        with np.errstate(all="ignore"):
            out = base ** t64(y)
            np.testing.assert_array_equal(out.data, np.power(base, y))
            (g,) = grad_of(lambda b: base ** b, y)
            np.testing.assert_array_equal(np.nan_to_num(g, nan=-7.0), np.nan_to_num(
                power_grad_reference(np.full_like(y, base), y)[1], nan=-7.0))
    ints = 2 ** Tensor(np.array([0, 3], np.int64))
    assert ints.dtype == np.int64 and ints.data.tolist() == [1, 8]
    assert (2.5 ** Tensor(np.array([0, 2], np.int64))).dtype == np.float32


def test_tensor_power_gradient_three_ways_with_broadcasting():
    rng = rng_for("power")
    x = rng.uniform(0.5, 2.0, (4, 3))
    y = rng.normal(size=3)
    check_program_gradients(lambda a, b: a ** b, {"x": (("N", 3), x), "y": ((3,), y)})
    check_program_gradients(lambda b: 1.7 ** b, {"y": (("N", 3), x)})


# ----------------------------------------------------------------------------- matmul
MATMUL_SHAPES = [
    ((3,), (3,)), ((4, 3), (3,)), ((3,), (3, 5)), ((2, 4, 3), (3, 5)), ((4, 3), (2, 3, 5)),
    ((2, 1, 4, 3), (5, 3, 2)), ((3,), (2, 3, 5)), ((2, 4, 3), (3,)), ((1, 4, 3), (6, 3, 2)),
]


@pytest.mark.parametrize("xs, ys", MATMUL_SHAPES)
def test_matmul_follows_torch_shapes_values_and_gradients(xs, ys):
    rng = rng_for("matmul", xs, ys)
    x, y = rng.normal(size=xs), rng.normal(size=ys)
    want = np.matmul(x, y)
    out = t64(x) @ t64(y)
    assert out.shape == want.shape
    np.testing.assert_allclose(out.data, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(lucid.matmul(t64(x), t64(y)).data, want, rtol=1e-13, atol=1e-13)
    # the gradients from the maths: promote 1-D operands, then sum over broadcast batch dims
    w = rng.normal(size=want.shape)
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y
    w2 = w.reshape(np.matmul(x2, y2).shape)
    gx2 = w2 @ np.swapaxes(y2, -1, -2)
    gy2 = np.swapaxes(x2, -1, -2) @ w2
    gx, gy = grad_of(lambda a, b: (a @ b) * t64(w), x, y)
    np.testing.assert_allclose(gx, _sum_to(gx2, x2.shape).reshape(xs), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gy, _sum_to(gy2, y2.shape).reshape(ys), rtol=1e-12, atol=1e-12)
    check_program_gradients(lambda a, b: a @ b, {"x": (xs, x), "y": (ys, y)})


def _sum_to(g, shape):
    lead = g.ndim - len(shape)
    g = g.sum(tuple(range(lead)))
    return g.sum(tuple(i for i, d in enumerate(shape) if d == 1), keepdims=True)


def test_matmul_with_a_symbolic_batch():
    rng = rng_for("matmul_N")
    check_program_gradients(lambda a, b: a @ b, {"x": (("N", 4, 3), rng.normal(size=(2, 4, 3))),
                                                 "y": ((3,), rng.normal(size=3))})


def test_matmul_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="at least 1 dimension"):
        lucid.matmul(t64(2.0), t64([1.0, 2.0]))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        t64(np.ones((2, 3))) @ t64(np.ones(4))
    with pytest.raises(ValueError, match="cannot broadcast"):
        t64(np.ones((2, 4, 3))) @ t64(np.ones((3, 3, 5)))


# ----------------------------------------------------------------- broadcasting regression losses
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("xs, ts", [((3, 4), (4,)), ((3, 1), (1, 4)), ((4,), (3, 4))])
def test_regression_losses_broadcast_the_target_like_torch(name, xs, ts):
    rng = rng_for(name, xs, ts)
    x, t = rng.normal(size=xs), rng.normal(size=ts)
    d = np.broadcast_to(x, np.broadcast_shapes(xs, ts)) - t
    each = d * d if name == "mse_loss" else np.abs(d)
    fn = getattr(F, name)
    for reduction, want in [("mean", each.mean()), ("sum", each.sum()), ("none", each)]:
        out = fn(t64(x), t64(t), reduction=reduction)
        assert out.shape == np.shape(want)
        np.testing.assert_allclose(out.data, want, rtol=1e-13)
    gx, gt = grad_of(lambda a, b: fn(a, b), x, t)
    slope = (2 * d if name == "mse_loss" else np.sign(d)) / d.size
    np.testing.assert_allclose(gx, _sum_to(slope, xs), rtol=1e-12)
    np.testing.assert_allclose(gt, -_sum_to(slope, ts), rtol=1e-12)


def test_regression_losses_refuse_shapes_that_do_not_broadcast():
    for fn in (F.mse_loss, F.l1_loss):
        with pytest.raises(ValueError, match="cannot broadcast"):
            fn(t64(np.ones((3, 4))), t64(np.ones(3)))


# ----------------------------------------------------------------------------- log1p, detach
def test_log1p_is_exact_for_tiny_arguments():
    x = np.array([1e-20, -1e-18, 1e-10, 0.5, 3.0])
    out = lucid.log1p(t64(x))
    np.testing.assert_allclose(out.data, [1e-20, -1e-18, 1e-10 - 5e-21, math.log(1.5),
                                          math.log(4.0)], rtol=1e-15)
    (g,) = grad_of(lucid.log1p, x)
    np.testing.assert_allclose(g, 1 / (1 + x), rtol=1e-15)


def test_detach_passes_the_value_and_no_gradient():
    rng = rng_for("detach")
    x = rng.normal(size=(4, 3))
    program, feeds = compile_weighted_sum(
        lambda v: v * lucid.frontend.apply("detach", v), {"x": (("N", 3), x)})
    for result in (program.run(feeds), reference_run(program.graph, feeds)):
        np.testing.assert_allclose(result["out"], np.sum(x * x * feeds["w"]), rtol=1e-14)
        np.testing.assert_allclose(result["grad:x"], x * feeds["w"], rtol=1e-14)  # not 2 x w
