"""Lowering that costs what it should (issue 11): masks as comparisons, cancelled centred
sums, epilogues in place, a memory plan from liveness. Every program here is also checked
against the reference executor, value for value."""
import re

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.codegen import linear
from lucid.runtime import run as reference_run


def mlp(k, width=16, seed=0):
    """k blocks of Linear -> BatchNorm1d -> ReLU, with parameters drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(k):
        layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    model = nn.Sequential(*layers)
    for p in model.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
    return model


def agree_with_reference(program, *arrays, rtol=1e-4, atol=1e-4):
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
    step = program.source[program.source.index("def step"):program.source.index("def check_")]
    assert "heaviside" not in program.source
    assert step.count(" <= 0)))") == 2  # one mask per ReLU
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


def reductions(source, fn):
    body = source[source.index(f"def {fn}("):]
    body = body[:body.index("\n\n\ndef ") if "\n\n\ndef " in body else len(body)]
    return body.count("np.einsum(")


def test_linear_then_batchnorm_pays_no_extra_reduction():
    # sum(x@W.T + b - mean(x@W.T + b)) is exactly 0: forward sums x and xc*xc, nothing more
    program = lucid.compile(mlp(1), lucid.placeholder((None, 16), name="x"), mode="train")
    assert reductions(program.source, "forward") == 2
    assert reductions(program.source, "backward") == 2  # sum(dy'), sum(dy' * xc)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 16), dtype=np.float32)
    got = agree_with_reference(program, x, rng.standard_normal((32, 16), dtype=np.float32))
    assert not got["grad:0.bias"].any()  # BN removes the bias: its gradient is exactly 0


@pytest.mark.parametrize("centre", [
    lambda x, b: x + b - (x + b).mean(0, keepdim=True),  # a biased Linear before BN
    lambda x, b: 2 * x - b - (2 * x - b).mean(0, keepdim=True),
    lambda x, b: 3 * (x * b + x + b - (x * b + x + b).mean(0, keepdim=True)),
    lambda x, b: x * x + b - (x * x + b).mean(0, keepdim=True),
])
def test_centred_sums_of_several_terms_are_exactly_zero(centre):
    # x alone has no sum; x + b has (it is the mean's): sum(x + b - mean(x + b)) is 0
    ph = [lucid.placeholder((None, 300), name="x"), lucid.placeholder((300,), name="b")]
    program = lucid.compile(lambda x, b: centre(x, b).sum(0) + x.sum(0), *ph, mode="eval")
    body = program.source[program.source.index("def step("):]
    assert body.count("np.einsum(") == 1  # sum(x) alone: the centred sum is 0, its mean dead
    rng = np.random.default_rng(3)
    x, b = rng.standard_normal((8, 300), dtype=np.float32), rng.standard_normal(300, np.float32)
    np.testing.assert_allclose(program(x, b)["out"], x.sum(0, dtype=np.float64), rtol=1e-5)


def test_a_centred_sum_that_does_not_cancel_stays_centred():
    # sum(x + y - mean(x)) is not 0: it stays one pass over the centred value, never
    # sum(x + y) - N*mean(x), two large numbers that nearly cancel
    ph = [lucid.placeholder((None, 300), "float32", name=n) for n in ("x", "y")]
    program = lucid.compile(lambda x, y: (x + y - x.mean(0, keepdim=True)).sum(0), *ph,
                            mode="eval")
    body = program.source[program.source.index("def step("):]
    assert body.count("np.einsum(") == 2  # mean(x), then sum of the centred x + y - mean
    x = np.full((8, 300), 1e4, np.float32) + np.arange(8, dtype=np.float32)[:, None]
    y = np.full((8, 300), 0.5, np.float32)
    np.testing.assert_array_equal(program(x, y)["out"], 4.0)
    agree_with_reference(program, x, y)


def test_bias_add_goes_into_the_matmul_result():
    # the forward matmul writes into a scratch slot (np.matmul(..., out=n1)); the bias add
    # then goes into that same array
    program = lucid.compile(mlp(1), lucid.placeholder((None, 16), name="x"), mode="train")
    step = program.source[program.source.index("def step("):]
    matmul = next(l.split("out=")[1].rstrip(")") for l in step.splitlines()
                  if l.strip().startswith("np.matmul(x,"))
    assert f"np.add({matmul}, p0_bias, out={matmul})" in step.replace("_t0", matmul)


def test_scratch_held_is_the_peak_live_set_and_results_survive_reuse():
    program = lucid.compile(mlp(4), lucid.placeholder((None, 16), name="x"), mode="train")
    assert program.memory() == {"bytes_held": 0, "peak_live_bytes": 0, "buffers": 0,
                                "results_kept": 0, "constants_held": 0}
    rng = np.random.default_rng(4)
    x, dy = (rng.standard_normal((64, 16), dtype=np.float32) for _ in range(2))
    first = {k: np.array(v, copy=True) for k, v in program.run(program.feeds((x, dy), {})).items()}
    again = agree_with_reference(program, x, dy)  # every slot reused by a second call
    for key in first:
        np.testing.assert_array_equal(again[key], first[key], err_msg=key)
    mem = program.memory()
    one = 64 * 16 * 4
    assert mem["peak_live_bytes"] <= mem["bytes_held"] <= 1.5 * mem["peak_live_bytes"]
    # one full-size slot per value would be about 3 per block and pass, in step alone
    step = program.source[program.source.index("def step("):program.source.index("def check_")]
    values = step.count(" = _buffer(")
    assert mem["buffers"] < values and mem["bytes_held"] < values * one


def test_weight_gradients_are_c_contiguous():
    program = lucid.compile(mlp(2), lucid.placeholder((None, 16), name="x"), mode="train")
    rng = np.random.default_rng(5)
    got = program(*(rng.standard_normal((32, 16), dtype=np.float32) for _ in range(2)))
    assert got["grad:0.weight"].flags.c_contiguous and got["grad:3.weight"].flags.c_contiguous


SPECIAL = np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 1.5, -1.5, 1e-42, -1e-42],
                   np.float32)


@pytest.mark.parametrize("fn, operand, scale", [(lambda v: v.relu(), "x", 1),
                                                 (lambda v: (v * 3).relu(), "3*x", 3)])
def test_relu_reads_zeros_and_keeps_every_bit(fn, operand, scale):
    # np.maximum(0, x) takes a value at a time; against an array of zeros NumPy vectorises
    ph = lucid.placeholder((None, 300), name="x")
    program = lucid.compile(fn, ph, mode="eval")
    pattern = rf"np\.maximum\(_zeros\((\w+)\.shape, np\.float32\), {re.escape(operand)}, out=\1\)"
    assert re.search(pattern, program.source)
    x = np.resize(SPECIAL, (7, 300))
    got = program(x)["out"]
    want = reference_run(program.graph, program.feeds((x,), {}))["out"]
    assert got.view(np.int32).tolist() == want.view(np.int32).tolist()  # -0.0 and NaN too
    with np.errstate(over="ignore"):
        assert got.view(np.int32).tolist() == np.maximum(0, x * np.float32(scale)).view(
            np.int32).tolist()
    assert program.memory()["constants_held"] == 7 * 300 * 4


def test_relu_in_a_training_step_keeps_the_values_and_gradients_of_the_reference():
    program = lucid.compile(mlp(2, width=32), lucid.placeholder((None, 32), name="x"),
                            mode="train")
    assert program.source.count("np.maximum(_zeros(") == 2 * 2  # two ReLUs in step, forward
    rng = np.random.default_rng(6)
    agree_with_reference(program, *(rng.standard_normal((16, 32), dtype=np.float32)
                                    for _ in range(2)))


def test_the_zeros_helper_shares_one_read_only_vector_up_to_its_limit():
    namespace = {"np": np}
    exec(linear.HELPER, namespace)  # the helper as the generated module defines it
    zeros = namespace["_zeros"]
    a, b = zeros((4, 5), np.float32), zeros((2, 3), np.float32)
    assert a.shape == (4, 5) and a.dtype == np.float32 and not a.any()
    assert np.shares_memory(a, b) and not a.flags.writeable
    with pytest.raises(ValueError):
        b[0, 0] = 1.0
    assert zeros((3,), np.float64).dtype == np.float64  # one vector per dtype
    big = zeros((linear.ZEROS_LIMIT + 1,), np.float32)  # past the limit: nothing kept
    assert big.shape == () and big == 0 and big.dtype == np.float32
    assert sum(v.nbytes for v in namespace["_zeros_cache"].values()) == 20 * 4 + 3 * 8


def test_a_mask_kept_alone_passes_the_gradient_at_nan_as_every_other_mask():
    # BatchNorm -> ReLU keeps the ReLU's mask as an array of its own (three sums and
    # products read it); torch's ReLU backward, x <= 0 ? 0 : g, passes g where x is NaN
    model = nn.Sequential(nn.BatchNorm1d(300), nn.ReLU())
    program = lucid.compile(model, lucid.placeholder((None, 300), name="x"), mode="train")
    step = program.source[program.source.index("def step"):program.source.index("def check_")]
    assert re.search(r"np\.copyto\(\w+, \(~\(\w+ <= 0\)\)\)", step)
    rng = np.random.default_rng(7)
    x, dy = (rng.standard_normal((8, 300), dtype=np.float32) for _ in range(2))
    x[3, 5] = np.nan  # channel 5 normalises to NaN everywhere
    dbias = program(x, dy)["grad:0.bias"]
    assert dbias[5] == pytest.approx(float(dy[:, 5].astype(np.float64).sum()), rel=1e-5)
    centred = x[:, :5] - x[:, :5].mean(0)  # the other channels: dy where y = xhat > 0
    want = (dy[:, :5] * (centred / np.sqrt((centred ** 2).mean(0) + 1e-5) > 0)).sum(0)
    np.testing.assert_allclose(dbias[:5], want, rtol=1e-5)


@pytest.mark.parametrize("width", [3, 300])  # a small value and a large one (out= passes)
def test_step_is_one_at_nan_at_every_size(width):
    # lucid.step is torch's ReLU mask: 0 where x <= 0, else 1, NaN included
    program = lucid.compile(lambda v: lucid.step(v), lucid.placeholder((None, width), name="x"),
                            mode="eval")
    x = np.resize(np.array([np.nan, -0.0, 0.0, 1.0, -1.0, np.inf, -np.inf], np.float32),
                  (2, width))
    want = np.where(np.isnan(x) | (x > 0), 1.0, 0.0).astype(np.float32)
    assert program(x)["out"].tolist() == want.tolist()
    assert reference_run(program.graph, program.feeds((x,), {}))["out"].tolist() == want.tolist()
