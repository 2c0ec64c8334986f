"""Reductions in the form measurement chose (issue 11; lucid/codegen/reduce.py).

Every form the rule can pick is run as the source it lowers to and compared
with exact sums (``math.fsum``, per channel) of the same data; the matrix
product with ones is held to the error of the einsum it replaces on data with
a large common offset and long sums; generated programs agree with float64
NumPy and the reference executor below and above the batch size where the
form switches; functions with a parallel twin keep einsum, so their bits do
not depend on the thread count. Nothing here is timed.
"""
import math
import re

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.codegen import generate, parallel, reduce
from lucid.codegen.reduce import BLAS_LIMIT, Form
from lucid.runtime import run as reference_run
from numeric_helpers import batchnorm_reference
from test_parallel import results_by_thread_count


def helpers():
    """The generated module's ``_ones`` (from the prelude every program starts with)."""
    namespace = {}
    exec(generate.PRELUDE, namespace)
    return namespace


def evaluate(lines, **arrays):
    namespace = {"np": np, "_ones": helpers()["_ones"], **arrays}
    exec("\n".join(lines), namespace)
    return namespace["s"]


def exact(x, axes):
    """Per-channel sums of ``x`` over ``axes``, exactly rounded (math.fsum)."""
    moved = np.moveaxis(np.asarray(x, np.float64), 1, 0).reshape(x.shape[1], -1)
    assert axes in ((0,), (0, 2))
    return np.array([math.fsum(row) for row in moved])


def error(got, x, axes):
    """The largest error per channel in units of ``u * sum |x|`` (u: the unit roundoff)."""
    scale = exact(np.abs(x), axes) * np.finfo(x.dtype).eps / 2
    return float(np.max(np.abs(np.asarray(got, np.float64) - exact(x, axes)) / scale))


SPECS = {(0,): "ab->b", (0, 2): "abc->b"}


# -- the rule --------------------------------------------------------------------------
@pytest.mark.parametrize("args, form", [
    ((1, "float32", True, (0,), ("N", 256), False), Form.ONES64),  # the mean of raw data
    ((1, "float32", True, (0, 2), (64, 8, 16), False), Form.ONES64),
    ((1, "float32", True, (0,), ("N", 256), True), Form.EINSUM64),
    ((1, "float32", True, (0, 2), (64, 256, 32), False), Form.EINSUM64),  # 2**19 values
    ((1, "float32", True, (1,), ("N", 256), False), Form.EINSUM64),
    ((1, "float32", False, (0,), ("N", 256), False), Form.ONES),  # a backward sum
    ((1, "float64", False, (0,), (32, 64), False), Form.ONES),
    ((1, "float32", False, (0, 2), ("N", 64, 16), False), Form.ONES),
    ((1, "float32", False, (0,), ("N", 256), True), Form.EINSUM),  # a twin's kernels slice it
    ((2, "float32", False, (0,), ("N", 256), False), Form.EINSUM),  # a product
    ((1, "float32", False, (0,), (4096, 256), False), Form.EINSUM),  # BLAS would thread
    ((1, "float32", False, (0,), ("N", 512, 1024), False), Form.EINSUM),
    ((1, "float32", False, (1,), ("N", 256), False), Form.EINSUM),  # other layouts
    ((1, "float32", False, (0, 1), ("N", 256), False), Form.EINSUM),
    ((1, "float32", False, (0,), ("N", 8, 16), False), Form.EINSUM),
    ((1, "int64", False, (0,), ("N", 256), False), Form.EINSUM),  # not a BLAS type
])
def test_the_rule_picks_the_measured_form(args, form):
    assert reduce.choose(*args) is form


def test_a_batch_size_known_at_run_time_is_tested_against_the_limit():
    lines = reduce.lower(Form.ONES, "s", "abc->b", ["x"], ("N", 64, "L"), "float32")
    assert lines[0] == f"if size_N * size_L <= {BLAS_LIMIT // 64}:  " \
                       "# one BLAS thread (reduce.BLAS_LIMIT): a product with ones"
    assert lines[1:] == ["    s = _ones(size_N, np.float32) @ (x @ _ones(size_L, np.float32))",
                         "else:", "    s = np.einsum('abc->b', x)"]
    assert reduce.lower(Form.ONES, "s", "ab->b", ["x"], (32, 64), "float64") == \
        ["s = _ones(32, np.float64) @ x"]


# -- values ------------------------------------------------------------------------------
CASES = [((4096, 64), (0,)), ((1024, 256), (0,)), ((32768, 8), (0,)), ((256, 64, 16), (0, 2)),
         ((64, 8, 512), (0, 2))]


@pytest.mark.parametrize("shape, axes", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_form_agrees_with_exact_sums_on_offset_data(shape, axes, dtype):
    # a large common offset over long sums: where a running sum loses the most digits
    rng = np.random.default_rng(len(shape) * 7 + shape[0])
    x = (1e4 + rng.standard_normal(shape)).astype(dtype)
    spec, n = SPECS[axes], x.size // x.shape[1]
    errors = {}
    for form in [Form.EINSUM, Form.ONES] + \
            ([Form.EINSUM64, Form.ONES64] if dtype == "float32" else []):
        got = evaluate(reduce.lower(form, "s", spec, ["x"], shape, dtype), x=x)
        assert got.dtype == dtype and got.shape == (shape[1],)
        errors[form] = error(got, x, axes)
        assert errors[form] <= n, (form, errors)  # the bound of a sum in any order
    # BLAS keeps SIMD partial sums: no worse than the einsum it replaces
    assert errors[Form.ONES] <= max(1.5 * errors[Form.EINSUM], 4), errors
    if dtype == "float32":  # accumulated in float64: within an ulp of the result
        assert errors[Form.EINSUM64] <= 1 and errors[Form.ONES64] <= 1, errors


@pytest.mark.parametrize("form", [Form.ONES, Form.ONES64])
@pytest.mark.parametrize("axes, shape, sizes", [((0,), ("N", 7), [5, BLAS_LIMIT // 7 + 3]),
                                                ((0, 2), ("N", 3, 16), [4, BLAS_LIMIT // 48 + 1])])
def test_both_sides_of_the_runtime_test_agree_with_exact_sums(form, axes, shape, sizes):
    lines = reduce.lower(form, "s", SPECS[axes], ["x"], shape, "float32")
    rng = np.random.default_rng(4)
    n_small, n_large = sizes
    assert n_small * math.prod(shape[1:]) <= BLAS_LIMIT < n_large * math.prod(shape[1:])
    for n in sizes:
        x = (1e3 + rng.standard_normal((n,) + shape[1:])).astype(np.float32)
        s = evaluate(lines, x=x, size_N=n)
        assert s.dtype == np.float32 and error(s, x, axes) <= (1 if form is Form.ONES64 else n)
        dtype = np.float64 if form is Form.ONES64 else np.float32
        data, ones = x.astype(dtype), np.ones(n, dtype)
        blas = ones @ data if len(shape) == 2 else ones @ (data @ np.ones(shape[2], dtype))
        # the BLAS form below the limit, einsum above it
        want = blas if n == n_small else np.einsum(SPECS[axes], x, dtype=dtype)
        np.testing.assert_array_equal(s, want.astype(np.float32))


def test_ones_are_read_only_and_kept_between_calls():
    ones = helpers()["_ones"]
    cache = ones.__globals__["_ones_cache"]
    a = ones(5, np.float32)
    assert a.shape == (5,) and a.dtype == np.float32 and np.all(a == 1)
    assert ones(5, np.float64).dtype == np.float64 and ones(5, np.float64).shape == (5,)
    with pytest.raises(ValueError):
        a[0] = 2
    kept = cache[np.float32]
    assert ones(3, np.float32).base is kept  # shorter: a view of the vector kept
    for n in range(1, 200):  # many batch sizes: one vector per dtype, the longest
        assert ones(n, np.float32).shape == (n,) and np.all(ones(n, np.float32) == 1)
    assert len(cache) == 2 and cache[np.float32].shape == (199,)
    assert not cache[np.float32].flags.writeable


# -- in generated programs -------------------------------------------------------------------
def batchnorm(shape, seed=0):
    bn = nn.BatchNorm1d(shape[1])
    rng = np.random.default_rng(seed)
    bn.weight.data[:] = rng.uniform(0.5, 1.5, shape[1])
    bn.bias.data[:] = rng.uniform(-0.5, 0.5, shape[1])
    return lucid.compile(bn, lucid.placeholder(shape, name="x"), mode="train"), bn


@pytest.mark.parametrize("shape, sizes", [((None, 7), [33, BLAS_LIMIT // 7 + 5]),
                                          ((None, 3, 16), [9, BLAS_LIMIT // 48 + 2])])
def test_batchnorm_backward_sums_with_ones_and_agrees_on_both_sides(shape, sizes):
    program, bn = batchnorm(shape)
    backward = program.source[program.source.index("def backward("):]
    # sum(dy): a product with ones (then a reshape to (C, 1) for 3D)
    assert re.search(r"\n        _r\d+ = \(?_ones\(size_N, np\.float32\) @ \(?grad_out\b", backward)
    forward = program.source[program.source.index("def forward("):
                             program.source.index("def backward(")]
    # the mean: float32 data summed in float64 (matmul converting it)
    assert re.search(r"\n        _r\d+ = (np\.matmul\(_ones\(size_N, np\.float64\), x|"
                     r"\(_ones\(size_N, np\.float64\) @ np\.matmul\(x), .*dtype=np\.float64",
                     forward), forward
    assert "_ones(size_N, np.float32)" not in forward
    rng = np.random.default_rng(5)
    for n in sizes:
        full = (n,) + shape[1:]
        x = (3 + rng.standard_normal(full)).astype(np.float32)
        dy = rng.standard_normal(full).astype(np.float32)
        feeds = program.feeds((x, dy), {})
        got = program.run(feeds)
        _, dx, dgamma, dbeta = batchnorm_reference(x, dy, bn.weight.data)
        np.testing.assert_allclose(got["grad:bias"], dbeta, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(got["grad:weight"], dgamma, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(got["grad:x"], dx, rtol=1e-3, atol=1e-4)
        if n < 100:  # the reference executor, node by node (small sizes: it is slow)
            for key, want in reference_run(program.graph, feeds).items():
                np.testing.assert_allclose(got[key], want, rtol=2e-4, atol=2e-4, err_msg=key)


def test_static_shapes_use_ones_without_a_test():
    program, bn = batchnorm((32, 64))
    assert "_r2 = _ones(32, np.float32) @ grad_out" in program.source
    assert "size_N" not in program.source
    program4k, _ = batchnorm((4096, 256))  # 2**20 values: BLAS would thread, einsum stays
    assert "_ones(" not in program4k.source.split(reduce.HELPER)[1]


def test_functions_with_a_parallel_twin_keep_einsum():
    # (N, 128, 256) has a twin at the measured thresholds: its sums stay einsum serially too
    program, _ = batchnorm((None, 128, 256))
    assert "def _step_parallel(" in program.source
    body = program.source[program.source.index("def check("):]
    assert "@ _ones(" not in body and "_ones(size_N" not in body


@pytest.mark.parametrize("shape, n", [((None, 7), 33), ((None, 3, 16), 9)])
def test_twin_bits_do_not_depend_on_the_thread_count(shape, n, monkeypatch):
    # with thresholds of 1 these small shapes get a twin: the form the rule picks without
    # one (ones) must give way to einsum in the serial function and in every kernel alike
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)
    monkeypatch.setattr(parallel, "MIN_RUN", 1)
    before = lucid.get_num_threads()
    try:
        program, _ = batchnorm(shape)
        assert "def _step_parallel(" in program.source
        assert "_ones(size_N" not in program.source
        rng = np.random.default_rng(6)
        full = (n,) + shape[1:]
        feeds = program.feeds(((rng.standard_normal(full) + 1e3).astype(np.float32),
                               rng.standard_normal(full).astype(np.float32)), {})
        results_by_thread_count(program, feeds)
    finally:
        lucid.set_num_threads(before)
