"""Lowering that costs what it should (issue 11): masks as comparisons, cancelled centred
sums, epilogues in place, a memory plan from liveness. Every program here is also checked
against the reference executor, value for value."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.runtime import run as reference_run


def mlp(k, width=16):
    layers = []
    for _ in range(k):
        layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    return nn.Sequential(*layers)


def agree_with_reference(program, *arrays, rtol=1e-4, atol=1e-5):
    feeds = program.feeds(arrays, {})
    want = reference_run(program.graph, feeds)
    got = program.run(feeds)
    assert set(got) == set(want)
    for key in want:
        assert np.asarray(got[key]).dtype == np.asarray(want[key]).dtype, key
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol, err_msg=key)
    return got


def test_relu_backward_is_a_comparison_not_heaviside():
    program = lucid.compile(mlp(2), lucid.placeholder((None, 16), name="x"), mode="train")
    backward = program.source[program.source.index("def backward"):]
    assert "heaviside" not in program.source
    assert backward.count(" > 0)") == 2  # one mask per ReLU
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 16), dtype=np.float32)
    agree_with_reference(program, x, rng.standard_normal((32, 16), dtype=np.float32))


def test_a_step_against_scalars_only_keeps_its_float_dtype():
    # 0.5 * (x > 0) would be float64 and -(x > 0) an error: there np.heaviside stays
    ph = lucid.placeholder((None, 300), name="x")
    program = lucid.compile(lambda v: lucid.step(v) * 0.5 - lucid.step(v), ph, mode="eval")
    x = np.linspace(-1, 1, 600, dtype=np.float32).reshape(2, 300)
    out = agree_with_reference(program, x)["out"]
    assert out.dtype == np.float32 and set(np.unique(out)) == {0.0, -0.5}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_masked_products_keep_dtype_and_values(dtype):
    ph = lucid.placeholder((None, 300), dtype=dtype, name="x")
    program = lucid.compile(lambda v: (v * 3.0).relu().sum() + (v * v).relu().sum(), ph,
                            mode="train")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 300)).astype(dtype)
    x[0, :5] = 0.0  # relu's derivative at 0 is 0, as the rules table says
    got = agree_with_reference(program, x, np.ones((), dtype))
    assert got["grad:x"].dtype == dtype
    assert np.all(got["grad:x"][0, :5] == 0)
