"""The split by rows (issue 11): functions of elementwise passes only on the thread pool.

An eval BatchNorm, an activation or any function with no reduction has no channel to
keep, so its twin splits the leading axis: each thread writes contiguous rows. Results
must be bit-identical for any thread count, agree with the serial function, the reference
executor and an independent float64 NumPy form; small calls never touch the pool. The
threshold is lowered through its documented knob,
``lucid.codegen.parallel.MIN_ROWS_ELEMENTS``, so the shapes stay small. Nothing is timed.
"""
import math
import re
import threading

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid import Tensor
from lucid.codegen import parallel
from lucid.runtime import run as reference_run
from test_parallel import counting_splits, results_by_thread_count  # the pool hand-offs; bit identity


@pytest.fixture
def split_rows(monkeypatch):
    """Every function of elementwise passes runs its twin (threshold 1), without blocks
    (their threshold out of reach); threads restored."""
    monkeypatch.setattr(parallel, "MIN_ROWS_ELEMENTS", 1)
    monkeypatch.setattr(parallel, "MIN_BLOCKED_BYTES", 1 << 60)
    before = lucid.get_num_threads()
    yield
    lucid.set_num_threads(before)


def counting_kernel_calls(program, name="_step_part0", threads=None):
    """The row ranges the kernel ``name`` is called on (into ``threads``: by thread)."""
    namespace = program.step_fn.__globals__
    original, ranges = namespace[name], []

    def counted(lo, hi, *args):
        ranges.append((lo, hi))
        if threads is not None:
            threads.setdefault(threading.get_ident(), []).append((lo, hi))
        return original(lo, hi, *args)

    namespace[name] = counted
    return ranges


def eval_bn(c, dtype="float32"):
    rng = np.random.default_rng(c)
    bn = nn.BatchNorm1d(c).to(dtype)
    state = bn.state_dict()
    for key in ("weight", "bias", "running_mean", "running_var"):
        state[key] = rng.uniform(0.5, 1.5, c).astype(dtype)
    bn.load_state_dict(state)
    return bn.eval()


def bn_reference(x, bn):
    """torch's eval BatchNorm1d in float64: (x - running_mean) / sqrt(running_var + eps) *
    weight + bias, per channel (axis 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var, weight, bias = (np.asarray(bn.state_dict()[k], np.float64).reshape(shape)
                               for k in ("running_mean", "running_var", "weight", "bias"))
    return (x.astype(np.float64) - mean) / np.sqrt(var + bn.eps) * weight + bias


def gelu_reference(x):
    erf = np.vectorize(math.erf)
    x = x.astype(np.float64)
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


CASES = {  # name -> (module or function, placeholder shape, sizes, float64 reference or None)
    "bn_eval_3d": (lambda: eval_bn(13), (None, 13, "L"), {"N": 9, "L": 11}, "bn"),
    "bn_eval_2d": (lambda: eval_bn(7), (None, 7), {"N": 33}, "bn"),
    "bn_eval_static_float64": (lambda: eval_bn(6, "float64"), (40, 6, 9), {}, "bn"),
    "relu": (lambda: nn.ReLU(), (None, 5, 7), {"N": 10}, lambda x: np.maximum(x, 0)),
    "gelu_affine": (lambda: (lambda v: F.gelu(v) * 3.0 - 1.0), (None, 17), {"N": 21},
                    lambda x: gelu_reference(x) * 3 - 1),
}


def compiled(case):
    make, shape, sizes, _ = CASES[case]
    module = make()
    dtype = "float64" if "float64" in case else "float32"
    program = lucid.compile(module, lucid.placeholder(shape, dtype, name="x"), mode="eval")
    rng = np.random.default_rng(1)
    feeds = {p: t.data for p, t in program.bindings.items()}
    (x,) = program.user_inputs()
    full = tuple(sizes[d] if isinstance(d, str) else d for d in program.graph.node(x).shape)
    feeds[x] = (rng.standard_normal(full) * 3 + 1).astype(dtype)
    return module, program, feeds


@pytest.mark.parametrize("case", CASES)
def test_rows_split_bit_identically_and_agree_with_the_references(case, split_rows):
    module, program, feeds = compiled(case)
    assert "def _step_parallel(" in program.source and "_worth_rows(" in program.source
    sizes = counting_splits(program)
    results = {}
    for n in (1, 2, 3):
        lucid.set_num_threads(n)
        results[n] = program.run(feeds)
    x = feeds[program.user_inputs()[0]]
    assert sizes == [("_step_part0", x.shape[0])] * 2  # by rows, with 2 and 3 threads
    serial = program.step_fn.__globals__["step"]
    lucid.set_num_threads(1)
    (alone,) = serial(*[feeds[p] for p in program.graph.inputs])
    for n in (1, 2, 3):
        (out,) = results[n].values()
        assert out.dtype == x.dtype and out.shape == x.shape
        np.testing.assert_array_equal(out, alone)
    (want,) = reference_run(program.graph, feeds).values()
    np.testing.assert_allclose(alone, want, rtol=1e-5, atol=1e-5)
    reference = CASES[case][3]
    exact = bn_reference(x, module) if reference == "bn" else reference(x)
    tol = 1e-12 if x.dtype == np.float64 else 2e-5
    np.testing.assert_allclose(alone, exact, rtol=tol, atol=tol * 10)


def test_the_kernel_takes_contiguous_rows(split_rows):
    _, program, _ = compiled("bn_eval_3d")
    source = program.source
    kernel = source[source.index("def _step_part0("):source.index("def _step_parallel(")]
    assert "    x = x[_lo:_hi]\n" in kernel and "[:, _lo:_hi]" not in kernel
    assert re.search(r"np\.multiply\(x, _part0_e0, out=_out_\w+\)", kernel)  # into its rows
    driver = source[source.index("def _step_parallel("):]
    assert re.search(r"_out_\w+ = _result\('step\._out_\w+', \(size_N, 13, size_L\), np\.float32\)",
                     driver)
    assert "_split(_step_part0, size_N, (), " in driver
    step = source[source.index("def step("):source.index("def _step_part0(")]
    assert "if _worth_rows(size_N * 13 * size_L, size_N, True) and x.flags.c_contiguous:" in step


def test_fewer_rows_than_threads(split_rows):
    _, program, feeds = compiled("bn_eval_2d")
    feeds["x"] = feeds["x"][:2]
    results = {}
    for n in (1, 3):
        lucid.set_num_threads(n)
        results[n] = program.run(feeds)["out"]
    np.testing.assert_array_equal(results[3], results[1])
    assert results[3].shape == (2, 7)


def test_small_calls_keep_the_single_thread_path():
    _, program, feeds = compiled("bn_eval_3d")
    sizes = counting_splits(program)
    before = lucid.get_num_threads()
    try:
        lucid.set_num_threads(2)
        program.run(feeds)  # 9 * 13 * 11 elements: far below MIN_ROWS_ELEMENTS
    finally:
        lucid.set_num_threads(before)
    assert sizes == []


def test_static_shapes_below_the_threshold_get_no_twin():
    program = lucid.compile(eval_bn(8), lucid.placeholder((64, 8, 16), name="x"), mode="eval")
    assert 64 * 8 * 16 < parallel.MIN_ROWS_ELEMENTS and "_parallel" not in program.source


def test_worth_rows_needs_threads_elements_and_two_rows(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ROWS_ELEMENTS", 1000)
    monkeypatch.setattr(parallel, "MIN_BLOCKED_BYTES", 1 << 60)
    before = lucid.get_num_threads()
    try:
        lucid.set_num_threads(2)
        assert parallel.worth_rows(1000, 2, False) and not parallel.worth_rows(999, 2, False)
        assert not parallel.worth_rows(10 ** 6, 1, False)  # one row: nothing to split
        lucid.set_num_threads(1)
        assert not parallel.worth_rows(10 ** 6, 100, False)
    finally:
        lucid.set_num_threads(before)


def test_forward_by_rows_and_backward_by_channels(split_rows, monkeypatch):
    # a per-channel gate: the forward has no reduction, the backward sums the gate's
    # gradient per channel
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)
    monkeypatch.setattr(parallel, "MIN_RUN", 1)
    program = lucid.compile(lambda x, g: (x * g).relu(), lucid.placeholder((None, 5, 6), name="x"),
                            lucid.placeholder((5, 1), name="g"), mode="train")
    source = program.source
    assert "    if _worth_rows(size_N * 5 * 6, size_N, False) and x.flags.c_contiguous" in source[source.index("def forward("):]
    assert "    if _worth(size_N * 5 * 6, 5 * 6) and " in source[source.index("def backward("):]
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal((12, 5, 6)).astype(np.float32),
             "g": rng.standard_normal((5, 1)).astype(np.float32)}
    (seed,) = program.seeds
    dy = rng.standard_normal((12, 5, 6)).astype(np.float32)
    got = {}
    for n in (1, 2, 3):
        lucid.set_num_threads(n)
        out, saved = program.run_forward(feeds)
        got[n] = {**out, **program.run_backward(saved, {seed: dy})}
    for n in (2, 3):
        for key in got[1]:
            np.testing.assert_array_equal(got[n][key], got[1][key], err_msg=key)
    want = reference_run(program.graph, {**feeds, seed: dy})
    assert set(got[2]) == set(want)
    for key, value in got[2].items():
        np.testing.assert_allclose(value, want[key], rtol=2e-5, atol=2e-5, err_msg=key)
    x, g = (feeds[k].astype(np.float64) for k in ("x", "g"))
    y = x * g
    np.testing.assert_allclose(got[2]["out"], np.maximum(y, 0), rtol=1e-6)
    np.testing.assert_allclose(got[2]["grad:x"], (y > 0) * dy * g, rtol=1e-6)
    np.testing.assert_allclose(got[2]["grad:g"], ((y > 0) * dy * x).sum((0, 2))[:, None],
                               rtol=1e-4, atol=1e-4)


def test_tensor_face_eval_gives_the_same_bits_on_two_threads(split_rows):
    x = np.random.default_rng(2).standard_normal((16, 6, 5)).astype(np.float32)
    bn = eval_bn(6)
    out = {}
    for n in (1, 2):
        lucid.set_num_threads(n)
        out[n] = bn(Tensor(x)).data
    np.testing.assert_array_equal(out[2], out[1])
    np.testing.assert_allclose(out[2], bn_reference(x, bn), rtol=2e-5, atol=2e-5)


def test_the_driver_computes_the_per_channel_constants_once(split_rows):
    _, program, _ = compiled("bn_eval_3d")
    source = program.source
    kernel = source[source.index("def _step_part0("):source.index("def _step_parallel(")]
    driver = source[source.index("def _step_parallel("):]
    assert re.match(r"def _step_part0\(_lo, _hi, _out_n\d+, _part0_e0, _part0_e1, x\):", kernel)
    assert "broadcast_to" not in kernel and "np.sqrt" not in kernel
    assert driver.count("_part0_e0 = np.ascontiguousarray(np.broadcast_to(") == 1
    assert "block=13 * size_L * 4)" in driver  # bytes of one row


def test_blocks_of_rows_on_one_thread_give_the_same_bits(split_rows, monkeypatch):
    _, program, feeds = compiled("bn_eval_3d")  # rows of 13 * 11 float32: 572 bytes
    lucid.set_num_threads(1)
    (whole,) = program.run(feeds).values()  # 9 * 572 bytes: below the blocks' threshold
    monkeypatch.setattr(parallel, "MIN_BLOCKED_BYTES", 9 * 572)
    monkeypatch.setattr(parallel, "MIN_ROWS_ELEMENTS", 1 << 60)  # only blocks: one thread
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 2 * 572)
    ranges = counting_kernel_calls(program)
    (blocked,) = program.run(feeds).values()  # the twin, on one thread
    np.testing.assert_array_equal(blocked, whole)
    assert ranges == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)]  # two rows a block, in order
    np.testing.assert_allclose(blocked, bn_reference(feeds["x"], CASES["bn_eval_3d"][0]()),
                               rtol=2e-5, atol=2e-5)


def test_blocks_split_over_threads(split_rows, monkeypatch):
    _, program, feeds = compiled("bn_eval_3d")
    lucid.set_num_threads(1)
    (whole,) = program.run(feeds).values()
    monkeypatch.setattr(parallel, "MIN_BLOCKED_BYTES", 1)
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 2 * 572)
    by_thread = {}
    counting_kernel_calls(program, threads=by_thread)
    lucid.set_num_threads(2)
    (blocked,) = program.run(feeds).values()
    np.testing.assert_array_equal(blocked, whole)
    # rows 0:4 on the calling thread, 4:9 on a worker; each in blocks of two rows, in order
    assert by_thread.pop(threading.get_ident()) == [(0, 2), (2, 4)]
    assert list(by_thread.values()) == [[(4, 6), (6, 8), (8, 9)]]


def test_a_single_pass_is_not_blocked(split_rows):
    program = lucid.compile(lambda v: v * 2.0, lucid.placeholder((None, 8), name="x"))
    assert "block=" not in program.source and "_worth_rows(size_N * 8, size_N, False)" in \
        program.source


def test_worth_rows_blocks_on_one_thread_from_its_size(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ROWS_ELEMENTS", 1 << 60)
    monkeypatch.setattr(parallel, "MIN_BLOCKED_BYTES", 4000)
    before = lucid.get_num_threads()
    try:
        lucid.set_num_threads(1)
        assert parallel.worth_rows(1000, 10, True) and not parallel.worth_rows(999, 10, True)
        assert not parallel.worth_rows(1000, 10, False)  # one pass: nothing stays in cache
        assert not parallel.worth_rows(1000, 1, True)
    finally:
        lucid.set_num_threads(before)


def two_regions(x, z, w, v):
    a = x * w + 1
    b = a.reshape(-1, 6, 4) * v + z * v  # on other rows: computed by the driver
    return a, b, b.reshape(-1, 4, 6) * w - 1


def test_two_row_kernels_with_the_driver_between(split_rows):
    placeholders = [lucid.placeholder(s, name=n) for s, n in
                    [((None, 4, 6), "x"), ((None, 6, 4), "z"), ((4, 1), "w"), ((6, 1), "v")]]
    program = lucid.compile(two_regions, *placeholders, mode="eval")
    driver = program.source[program.source.index("def _step_parallel("):]
    # each kernel's layouts get their own names in the driver, apart from the driver's own
    assert "_part0_e0 = " in driver and "_part1_e0 = " in driver and "    _e0 = " in driver
    rng = np.random.default_rng(7)
    feeds = {"x": rng.standard_normal((10, 4, 6)), "z": rng.standard_normal((10, 6, 4)),
             "w": rng.standard_normal((4, 1)), "v": rng.standard_normal((6, 1))}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    sizes = counting_splits(program)
    results = results_by_thread_count(program, feeds)
    assert [k for k, _ in sizes] == ["_step_part0", "_step_part1"] * 2
    x, z, w, v = (feeds[k].astype(np.float64) for k in "xzwv")
    a = x * w + 1
    b = a.reshape(-1, 6, 4) * v + z * v
    want = [a, b, b.reshape(-1, 4, 6) * w - 1]
    reference = reference_run(program.graph, feeds)
    for got, exact, key in zip(results[2].values(), want, reference):
        np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, reference[key], rtol=1e-6, atol=1e-6)
