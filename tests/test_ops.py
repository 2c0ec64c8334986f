"""The op registry: every elementwise rule three ways, every structural VJP through programs.

Gradients are checked against central finite differences in float64 (of ``op.evaluate``
and of the reference executor ``lucid.runtime.executor.run``), against the symbolic rule with
numbers substituted, and between the generated program and the reference executor.
"""
import zlib

import numpy as np
import pytest
import sympy as sp

import lucid
from lucid.frontend import apply
from lucid.ops import REGISTRY
from lucid.runtime import run as reference_run
from lucid.ops import ARGS

EPS = 1e-6
ELEMENTWISE = sorted(n for n, op in REGISTRY.items() if op.kind == "elementwise")
POSITIVE = {"log", "log1p", "sqrt", "rsqrt"}  # smooth only for a > 0 (log1p: a > -1)

def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def sample(name, shape, rng):
    """Points where ``name`` is smooth: positive for log/sqrt/rsqrt, else |v| in [0.3, 2]."""
    mag = rng.uniform(0.3, 2.0, shape)
    return mag if name in POSITIVE else mag * rng.choice([-1.0, 1.0], shape)


def evaluate(op, *arrays):
    return np.asarray(op.evaluate(*arrays), dtype=np.float64)  # step yields booleans


def central_difference(f, arrays, k):
    """d f / d arrays[k], elementwise-independent inputs; f returns an array or a scalar."""
    grad = np.zeros_like(arrays[k], dtype=np.float64)
    for idx in np.ndindex(arrays[k].shape):
        plus = [a.copy() for a in arrays]
        minus = [a.copy() for a in arrays]
        plus[k][idx] += EPS
        minus[k][idx] -= EPS
        step = float(plus[k][idx]) - float(minus[k][idx])  # what the dtype really moved
        grad[idx] = np.sum(np.asarray(f(*plus), np.float64) - np.asarray(f(*minus), np.float64)) / step
    return grad


# ----------------------------------------------------------------- the symbolic rules
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_substituted_rule_matches_finite_differences_of_evaluate(name):
    op = REGISTRY[name]
    rng = rng_for("subs", name)
    for _ in range(4):
        point = [float(v) for v in sample(name, (op.arity,), rng)]
        for k, partial in enumerate(op.partials):
            symbolic = float(partial.subs(dict(zip(ARGS, point))))
            numeric = central_difference(lambda *a: evaluate(op, *a),
                                         [np.array(v) for v in point], k)
            assert symbolic == pytest.approx(float(numeric), rel=1e-6, abs=1e-7), (name, k, point)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_lambdified_rule_matches_finite_differences_on_arrays(name):
    op = REGISTRY[name]
    rng = rng_for("lambdify", name)
    arrays = [sample(name, (3, 4), rng) for _ in range(op.arity)]
    for k, partial in enumerate(op.partials):
        symbolic = np.broadcast_to(sp.lambdify(ARGS[: op.arity], partial, "numpy")(*arrays),
                                   arrays[0].shape)
        numeric = _elementwise_fd(op, arrays, k)
        np.testing.assert_allclose(symbolic, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


def _elementwise_fd(op, arrays, k):
    """Per-element central differences: an elementwise op's Jacobian is diagonal."""
    plus = [a.copy() for a in arrays]
    minus = [a.copy() for a in arrays]
    plus[k] += EPS
    minus[k] -= EPS
    return (evaluate(op, *plus) - evaluate(op, *minus)) / (plus[k] - minus[k])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_partials_are_sympy_diff_of_the_expression(name):
    op = REGISTRY[name]
    assert len(op.partials) == op.arity
    for s, partial in zip(ARGS, op.partials):
        derived = sp.diff(op.expr, s)
        # The only points sympy leaves undefined: relu'(0) := 0, step' := 0 (CONVENTIONS).
        expected = derived.replace(sp.DiracDelta, lambda *_: sp.Integer(0)) \
                          .replace(sp.Heaviside, lambda x, *_: sp.Heaviside(x, 0))
        assert sp.simplify(partial - expected) == 0, (name, s, partial, expected)
        # sigmoid's partial is an equal form that cannot overflow (op.STABLE_FORMS)
        if not derived.has(sp.Heaviside, sp.DiracDelta) and name != "sigmoid":
            assert partial == derived


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_gradient_rule_exposes_sympy_expressions(name):
    op = REGISTRY[name]
    rule = op.gradient_rule()
    assert list(rule) == list(ARGS[: op.arity])
    for s, expr in rule.items():
        assert isinstance(expr, sp.Expr)
        assert expr.free_symbols <= set(ARGS)


def test_relu_gradient_at_zero_is_zero_and_step_gradient_is_zero():
    relu, step = REGISTRY["relu"], REGISTRY["step"]
    assert relu.partials[0].subs(ARGS[0], 0) == 0
    assert relu.partials[0].subs(ARGS[0], sp.Rational(1, 3)) == 1
    assert step.partials == (0,)
    x = lucid.placeholder((5,), "float64", name="x")
    program = lucid.compile(lambda x: apply("relu", x).sum() + apply("step", x).sum(), x)
    feeds = {"x": np.array([-1.0, 0.0, 0.0, 2.0, 3.0]), program.seeds[0]: np.array(1.0)}
    for result in (program.run(feeds), reference_run(program.graph, feeds)):
        np.testing.assert_array_equal(result["grad:x"], [0.0, 0.0, 0.0, 1.0, 1.0])
        assert float(result["out"]) == 5.0 + 2.0


# ------------------------------------------------ gradients through compiled programs
def compile_weighted_sum(fn, inputs):
    """Compile ``sum(fn(*xs) * w)`` with float64 placeholders; return (program, feeds).

    ``inputs`` maps a placeholder name to (shape with None for N, value).
    """
    phs = [lucid.placeholder(tuple(None if d == "N" else d for d in shape), str(v.dtype), name=k)
           for k, (shape, v) in inputs.items()]
    out = fn(*phs)
    w = lucid.placeholder(out.shape, "float64", name="w")

    def weighted(*args):
        return (fn(*args[:-1]) * args[-1]).sum()

    program = lucid.compile(weighted, *phs, w, mode="train")
    program.graph.lint(REGISTRY)
    sizes = {d: s for (shape, v) in inputs.values() for d, s in zip(shape, v.shape)
             if isinstance(d, str)}
    w_shape = tuple(sizes.get(d, d) for d in out.shape)
    feeds = {k: v for k, (_, v) in inputs.items()}
    feeds["w"] = rng_for("w", w_shape).normal(size=w_shape)
    feeds[program.seeds[0]] = np.array(1.0)
    assert program.graph.inputs == [*inputs, "w", program.seeds[0]]
    return program, feeds


def check_program_gradients(fn, inputs, rtol=1e-6):
    program, feeds = compile_weighted_sum(fn, inputs)
    compiled, reference = program.run(feeds), reference_run(program.graph, feeds)
    assert sorted(compiled) == sorted(reference) == sorted(["out"] + [f"grad:{k}" for k in inputs]
                                                           + ["grad:w"])
    names = list(feeds)

    def f(*values):
        return reference_run(program.graph, dict(zip(names, values)))["out"]

    for k in inputs:
        numeric = central_difference(f, list(feeds.values()), names.index(k))
        grad = compiled[f"grad:{k}"]
        assert grad.shape == feeds[k].shape and grad.dtype == feeds[k].dtype, k
        np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=1e-6, err_msg=f"grad:{k}")
        np.testing.assert_allclose(reference[f"grad:{k}"], grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(compiled["out"], reference["out"], rtol=1e-12)
    return compiled


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_gradient_through_compiled_program(name):
    op = REGISTRY[name]
    rng = rng_for("graph", name)
    inputs = {k: (("N", 3), sample(name, (4, 3), rng)) for k in "xy"[: op.arity]}
    check_program_gradients(lambda *xs: apply(name, *xs), inputs)


def test_gradient_of_an_unused_input_is_a_float_zero():
    x = lucid.placeholder((None, 3), "float64", name="x")
    y = lucid.placeholder((None, 3), "float64", name="y")
    program = lucid.compile(lambda x, y: (x * x).sum(), x, y)
    feeds = {"x": X43, "y": X43, program.seeds[0]: np.array(1.0)}
    for result in (reference_run(program.graph, feeds), program.run(feeds)):
        np.testing.assert_array_equal(result["grad:y"], np.zeros((4, 3)))
        assert result["grad:y"].dtype == np.float64


# ----------------------------------------------------------------- structural rules
R = rng_for("structural")
X43, X234 = R.normal(size=(4, 3)), R.normal(size=(2, 3, 4))
STRUCTURAL = {
    "sum_all": (lambda x: x.sum().reshape((1,)), {"x": (("N", 3), X43)}),
    "sum_axis0": (lambda x: x.sum(0), {"x": (("N", 3), X43)}),
    "sum_axis1_keep": (lambda x: x.sum(1, keepdims=True), {"x": (("N", 3), X43)}),
    "sum_axis_neg1": (lambda x: x.sum(-1), {"x": ((2, 3, 4), X234)}),
    "sum_axes02": (lambda x: x.sum((0, 2)), {"x": (("N", 3, "L"), X234)}),
    "sum_axes02_keep": (lambda x: x.sum((0, 2), keepdims=True), {"x": (("N", 3, "L"), X234)}),
    "mean_axis1": (lambda x: x.mean(1), {"x": (("N", 3), X43)}),
    "mean_axes02_keep": (lambda x: x.mean((0, 2), keepdims=True), {"x": (("N", 3, "L"), X234)}),
    "mean_all": (lambda x: x.mean().reshape((1, 1)), {"x": ((2, 3, 4), X234)}),
    "reshape": (lambda x: x.reshape(6, 4), {"x": ((2, 3, 4), X234)}),
    "reshape_unit": (lambda x: x.reshape(("N", 1, 3)), {"x": (("N", 3), X43)}),
    "transpose_T": (lambda x: x.T, {"x": (("N", 3), X43)}),
    "transpose_201": (lambda x: lucid.transpose(x, (2, 0, 1)), {"x": ((2, 3, 4), X234)}),
    "broadcast_row": (lambda x: lucid.broadcast_to(x, (4, 3)), {"x": ((3,), X43[0])}),
    "broadcast_col": (lambda x: lucid.broadcast_to(x, (4, 3)), {"x": ((4, 1), X43[:, :1])}),
    "matmul": (lambda x, y: x @ y, {"x": (("N", 3), X43), "y": ((3, 5), R.normal(size=(3, 5)))}),
    "matmul_T": (lambda x, y: x @ y.T, {"x": (("N", 3), X43), "y": ((2, 3), R.normal(size=(2, 3)))}),
    # broadcasting elementwise ops: the gradient is summed back to each input's shape
    "mul_NC_C": (lambda x, y: x * y, {"x": (("N", 3), X43), "y": ((3,), R.normal(size=3))}),
    "add_NCL_1C1": (lambda x, y: x + y, {"x": (("N", 3, "L"), X234),
                                         "y": ((1, 3, 1), R.normal(size=(1, 3, 1)))}),
    "div_C_NC": (lambda x, y: x / y, {"x": ((3,), R.normal(size=3)),
                                      "y": (("N", 3), R.uniform(0.5, 2.0, (4, 3)))}),
    "sub_N1_1C": (lambda x, y: x - y, {"x": ((4, 1), R.normal(size=(4, 1))),
                                       "y": ((1, 3), R.normal(size=(1, 3)))}),
    "scalar_constants": (lambda x: 3.0 - 2.5 * x / 4 + x * x - 1, {"x": (("N", 3), X43)}),
    "scalar_placeholder": (lambda x, y: x * y + y, {"x": (("N", 3), X43),
                                                    "y": ((), np.array(0.7))}),
}


@pytest.mark.parametrize("case", sorted(STRUCTURAL))
def test_structural_vjp_matches_finite_differences(case):
    fn, inputs = STRUCTURAL[case]
    check_program_gradients(fn, inputs)


def test_mean_gradient_is_one_over_count():
    x = X234
    grads = check_program_gradients(lambda x: x.mean((0, 2)), {"x": (("N", 3, "L"), x)})
    w = rng_for("w", (3,)).normal(size=(3,))
    np.testing.assert_allclose(grads["grad:x"], np.broadcast_to(w[None, :, None] / 8, x.shape),
                               rtol=1e-12)


def test_matmul_gradients_against_the_maths():
    x, y = X43, R.normal(size=(3, 5))
    grads = check_program_gradients(lambda a, b: a @ b, {"x": (("N", 3), x), "y": ((3, 5), y)})
    w = rng_for("w", (4, 5)).normal(size=(4, 5))
    np.testing.assert_allclose(grads["grad:x"], w @ y.T, rtol=1e-12)
    np.testing.assert_allclose(grads["grad:y"], x.T @ w, rtol=1e-12)


def test_cast_float32_to_float64_gradient_comes_back_in_float32():
    x32 = X43.astype(np.float32)
    inputs = {"x": (("N", 3), x32)}
    program, feeds = compile_weighted_sum(lambda x: lucid.cast(x, "float64") * 1.5, inputs)
    assert any(n.op == "cast" for n in program.graph.nodes())
    for result in (program.run(feeds), reference_run(program.graph, feeds)):
        assert result["out"].dtype == np.float64
        assert result["grad:x"].dtype == np.float32
        np.testing.assert_allclose(result["grad:x"], (1.5 * feeds["w"]).astype(np.float32),
                                   rtol=1e-6)
    names = list(feeds)
    numeric = central_difference(lambda *v: reference_run(program.graph, dict(zip(names, v)))["out"],
                                 list(feeds.values()), 0)
    np.testing.assert_allclose(program.run(feeds)["grad:x"], numeric, rtol=1e-5, atol=1e-6)


def test_gradient_comes_back_in_the_input_dtype_under_promotion():
    x32, y64 = X43.astype(np.float32), R.normal(size=3)
    program, feeds = compile_weighted_sum(lambda x, y: x * y, {"x": (("N", 3), x32),
                                                              "y": ((3,), y64)})
    grad_x = program.graph.outputs["grad:x"].node
    assert program.graph.node(grad_x).dtype == "float32"
    for result in (program.run(feeds), reference_run(program.graph, feeds)):
        assert result["grad:x"].dtype == np.float32 and result["grad:y"].dtype == np.float64
        np.testing.assert_allclose(result["grad:x"], feeds["w"] * y64, rtol=1e-6)
