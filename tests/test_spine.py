"""Non-linear large values computed in place along their spine (lucid.codegen.spine).

Every program is checked against the reference executor (an independent tree walk) and, where
the maths is short, against float64 NumPy written from it; special values included.
"""
import numpy as np
import pytest

import lucid
from lucid.runtime import run as reference_run

from test_buffers_reuse import body  # noqa: E402  (tests/ is on the path)

X = lucid.placeholder((None, 24), "float64", name="x")
ROW = lucid.placeholder((None, 1), "float64", name="r")
Y = lucid.placeholder((None, 24), "float64", name="y")

EXPRESSIONS = {
    "sigmoid": lambda x, r, y: 1 / (1 + lucid.exp(-x)),
    "sigmoid grad": lambda x, r, y: y * (1 - 1 / (1 + lucid.exp(-x))) / (1 + lucid.exp(-x)),
    "softmax-like": lambda x, r, y: lucid.exp(x - r) * (y * r - r * r),
    "nested": lambda x, r, y: lucid.tanh(lucid.exp(x * 0.1) * y + r) * x - lucid.sqrt(
        lucid.abs(y) + 1.0) / (x * x + 2.0),
    "log1p": lambda x, r, y: lucid.log1p(lucid.abs(x) * r * r) * y,
    "division chain": lambda x, r, y: x / (y * y + 1.0) / (r * r + 0.5) - 2.0 / (x * x + 3.0),
    "powers": lambda x, r, y: 1 / lucid.sqrt(x * x + 1.0) + lucid.sqrt(y * y + r * r) ** 2,
    "negations": lambda x, r, y: -lucid.exp(-(x * y)) - (1 - x) * (2 - y),
}


def feeds(seed, n=9):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 24)) * 3, rng.normal(size=(n, 24))
    x[0, :6] = [0.0, -0.0, 800.0, -800.0, np.inf, np.nan]  # exp overflows, inf, NaN
    return {"x": x, "r": rng.normal(size=(n, 1)), "y": y}


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_in_place_along_the_spine_agrees_with_the_executor(name):
    program = lucid.compile(EXPRESSIONS[name], X, ROW, Y, mode="eval")
    step = body(program)
    assert "np.copyto(" not in step and "np.asarray(" not in step, step
    for seed in (1, 2):
        f = feeds(seed)
        want = reference_run(program.graph, f)["out"]
        with np.errstate(all="ignore"):
            got = program.run(f)["out"]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_sigmoid_is_four_passes_into_the_result_with_its_values():
    program = lucid.compile(EXPRESSIONS["sigmoid"], X, ROW, Y, mode="eval")
    lines = [s.strip() for s in body(program).splitlines() if s.strip().startswith("np.")]
    out = lines[0].split("out=")[1].rstrip(")")
    assert lines == [f"np.negative(x, out={out})", f"np.exp({out}, out={out})",
                     f"np.add({out}, 1, out={out})", f"np.divide(1, {out}, out={out})"]
    x = np.array([[-1000.0, -1.0, 0.0, 2.0, 1000.0] + [0.5] * 19])
    with np.errstate(over="ignore"):
        got = program.run({"x": x, "r": np.zeros((1, 1)), "y": x})["out"]
    np.testing.assert_allclose(got[0, :5], [0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-2)), 1.0],
                               rtol=1e-15)


def test_float32_keeps_its_dtype_and_agrees():
    phs = [lucid.placeholder(p.shape, "float32", name=n)
           for p, n in ((X, "x"), (ROW, "r"), (Y, "y"))]
    program = lucid.compile(EXPRESSIONS["nested"], *phs, mode="eval")
    f = {k: v.astype(np.float32) for k, v in feeds(4).items()}
    with np.errstate(all="ignore"):
        got = program.run(f)["out"]
    assert got.dtype == np.float32
    want = reference_run(program.graph, f)["out"]
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("fn", [
    lambda a, b: 1 / (lucid.clamp(a, 0.1, 5.0) * lucid.clamp(b, 0.1, 5.0)),
    lambda a, b: 1 / (lucid.relu(a) * lucid.erf(b)),
    lambda a, b: 1 / (lucid.maximum(a, b) * lucid.erf(b)),
])
def test_a_product_of_denominators_only(fn):
    """Review: every factor a reciprocal of a value off the spine once raised IndexError."""
    program = lucid.compile(fn, X, Y, mode="eval")
    f = feeds(6)
    del f["r"]
    with np.errstate(all="ignore"):
        got = program.run(f)["out"]
        want = reference_run(program.graph, f)["out"]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_small_static_values_are_left_to_numpy_whole():
    """Below spine.MIN_ELEMENTS values a call's fixed cost outweighs the temporaries."""
    small = lucid.placeholder((16, 16), "float64", name="x")
    program = lucid.compile(lambda x: lucid.sqrt(x * x + 1.0) * lucid.exp(-x), small, mode="eval")
    assert "np.sqrt((x*x) + 1.0)*np.exp(-x)" in body(program)  # one expression, as before
    x = np.linspace(-2, 2, 256).reshape(16, 16)
    np.testing.assert_allclose(program(x)["out"], np.sqrt(x * x + 1) * np.exp(-x), rtol=1e-15)
