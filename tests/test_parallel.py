"""The parallel schedule (issue 11): channel slices of a generated function on a thread pool.

Results must not depend on the thread count, bit for bit; they must agree with the
reference executor; small calls never touch the pool; an error in a worker reaches the
caller as it would on one thread and changes no state. The size threshold is lowered
through its documented knob, ``lucid.codegen.parallel.MIN_ELEMENTS``, so the shapes stay
small and the tests fast. Nothing here is timed.
"""
import os
import re
import signal
import threading
import time

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor
from lucid.codegen import parallel
from lucid.runtime import run as reference_run


def counting_splits(program):
    """The program's hand-offs to the pool (the generated code's ``_split``), as
    ``(kernel name, size of the split axis)``."""
    namespace = program.step_fn.__globals__
    original, sizes = namespace["_split"], []

    def counted(kernel, size, *args, **options):
        sizes.append((kernel.__name__, size))
        return original(kernel, size, *args, **options)

    namespace["_split"] = counted
    return sizes


def results_by_thread_count(program, feeds, counts=(1, 2, 3)):
    """``{n: program.run(feeds)}`` for each thread count, every one asserted bit-identical to
    the first (the count stays at the last: the fixtures restore it)."""
    results = {}
    for n in counts:
        lucid.set_num_threads(n)
        results[n] = program.run(feeds)
    for n in counts[1:]:
        for key in results[counts[0]]:
            np.testing.assert_array_equal(results[n][key], results[counts[0]][key], err_msg=key)
    return results


def randomized(module, seed):
    rng = np.random.default_rng(seed)
    state = module.state_dict()
    for key, value in state.items():
        if not key.endswith("num_batches_tracked"):
            state[key] = rng.uniform(0.5, 1.5, value.shape).astype(value.dtype)
    module.load_state_dict(state)
    return module


def feeds_for(program, shape_of, seed):
    rng = np.random.default_rng(seed)
    feeds = {p: t.data for p, t in program.bindings.items()}
    for p in program.user_inputs():
        d = program.graph.node(p)
        shape = tuple(shape_of[s] if isinstance(s, str) else s for s in d.shape)
        feeds[p] = (rng.standard_normal(shape) * 3 + 1).astype(d.dtype)
    return feeds


def mlp(k, width):
    layers = []
    for _ in range(k):
        layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    return nn.Sequential(*layers)


CASES = {  # name -> (module, placeholder shape, sizes, mode)
    "bn2d_train": (lambda: nn.BatchNorm1d(7), (None, 7), {"N": 33}, "train"),
    "bn3d_train": (lambda: nn.BatchNorm1d(13), (None, 13, "L"), {"N": 9, "L": 11}, "train"),
    "bn2d_wide": (lambda: nn.BatchNorm1d(300), (None, 300), {"N": 17}, "train"),
    "bn3d_static_float64": (lambda: nn.BatchNorm1d(6).to("float64"), (40, 6, 9), {}, "train"),
    "layernorm": (lambda: nn.LayerNorm(24), (None, 24), {"N": 29}, "train"),
    "mlp": (lambda: mlp(2, 20), (None, 20), {"N": 23}, "train"),
    "bn3d_relu": (lambda: nn.Sequential(nn.BatchNorm1d(13), nn.ReLU()), (None, 13, "L"),
                  {"N": 9, "L": 11}, "train"),
}


def compiled(case):
    make, shape, sizes, mode = CASES[case]
    module = randomized(make(), 0)
    dtype = module.weight.data.dtype.name if hasattr(module, "weight") else "float32"
    placeholder = lucid.placeholder(shape, dtype, name="x")
    program = lucid.compile(module, placeholder, mode=mode)  # None is the batch size N
    return program, feeds_for(program, sizes, 1)


@pytest.mark.parametrize("case", CASES)
def test_results_are_bit_identical_for_any_thread_count(case, split_everything):
    program, feeds = compiled(case)
    assert "def _step_parallel(" in program.source
    calls = counting_splits(program)
    results = results_by_thread_count(program, feeds)
    assert calls  # the twin ran (with 2 and 3 threads)
    reference = reference_run(program.graph, feeds)
    for key, want in reference.items():
        np.testing.assert_allclose(results[2][key], want, rtol=2e-4, atol=2e-4, err_msg=key)


def test_a_relu_in_a_channel_slice_reads_zeros_of_the_slice(split_everything):
    program, feeds = compiled("bn3d_relu")
    kernel = program.source[program.source.index("def _step_part0("):]
    assert re.search(r"np\.maximum\(_zeros\((\w+)\.shape, np\.float32\), \w+, out=\1\)",
                     kernel[:kernel.index("def _step_parallel(")])
    results = results_by_thread_count(program, feeds)  # bit for bit as on one thread
    assert (results[2]["out"] == 0).mean() > 0.1  # the ReLU cut some (biases are positive)
    for key, want in reference_run(program.graph, feeds).items():
        np.testing.assert_allclose(results[2][key], want, rtol=2e-4, atol=2e-4, err_msg=key)


def centred(axes):
    def fn(x):
        xc = x - x.mean(axes, keepdims=True)
        return xc * lucid.rsqrt((xc * xc).mean(axes, keepdims=True) + 1e-5)
    return fn


FUNCTIONS = {  # name -> (function of x (and gamma, beta), input shapes, sizes)
    "norm_last_axis_3d": (centred(-1), [(None, 3, "L")], {"N": 10, "L": 7}),
    "norm_axes12_3d": (centred((1, 2)), [(None, 3, "L")], {"N": 10, "L": 7}),
    "softmax_rows": (lambda x: x.exp() / x.exp().sum(1, keepdims=True), [(None, 9)], {"N": 12}),
    "affine_norm": (lambda x, g, b: centred(-1)(x) * g + b, [(None, 3, 8), (8,), (8,)],
                    {"N": 11}),
}


@pytest.mark.parametrize("case", FUNCTIONS)
def test_composed_functions_split_bit_identically(case, split_everything):
    fn, shapes, sizes = FUNCTIONS[case]
    program = lucid.compile(fn, *[lucid.placeholder(shape, name=name)
                                  for shape, name in zip(shapes, ["x", "g", "b"])])
    assert "def _step_parallel(" in program.source
    feeds = feeds_for(program, sizes, 4)
    results = results_by_thread_count(program, feeds)
    for key, want in reference_run(program.graph, feeds).items():
        np.testing.assert_allclose(results[2][key], want, rtol=2e-4, atol=2e-4, err_msg=key)


@pytest.mark.parametrize("case", ["bn3d_train", "mlp"])
def test_forward_and_backward_split_alike(case, split_everything):
    program, feeds = compiled(case)
    seeds = {s: feeds.pop(s) for s in program.seeds}
    got = {}
    for n in (1, 2):
        lucid.set_num_threads(n)
        out, saved = program.run_forward(feeds)
        got[n] = (out, program.run_backward(saved, seeds))
    for part in (0, 1):
        for key in got[1][part]:
            np.testing.assert_array_equal(got[2][part][key], got[1][part][key], err_msg=key)


def test_tensor_face_gives_the_same_bits_on_two_threads(split_everything):
    x = np.random.default_rng(2).standard_normal((16, 6, 5)).astype(np.float32)
    grads = {}
    for n in (1, 2):
        lucid.set_num_threads(n)
        bn = randomized(nn.BatchNorm1d(6), 3)
        t = Tensor(x, requires_grad=True)
        (bn(t) * bn(t)).sum().backward()
        grads[n] = (t.grad.data, bn.weight.grad.data, bn.running_mean.data.copy())
    for a, b in zip(grads[1], grads[2]):
        np.testing.assert_array_equal(a, b)


def test_small_calls_keep_the_single_thread_path():
    program, feeds = compiled("bn3d_train")
    calls = counting_splits(program)
    before = lucid.get_num_threads()
    try:
        lucid.set_num_threads(2)
        program.run(feeds)  # 9 * 13 * 11 elements: far below MIN_ELEMENTS
    finally:
        lucid.set_num_threads(before)
    assert calls == []


def test_the_source_shows_the_slices(split_everything):
    program, _ = compiled("bn3d_train")
    source = program.source
    kernel = source[source.index("def _step_part0("):source.index("def _step_parallel(")]
    assert re.search(r"def _step_part0\(_lo, _hi, .*\bx\b", kernel)
    assert "    x = x[:, _lo:_hi]\n" in kernel
    assert "np.einsum('abc->b', x" in kernel  # each slice sums its own channels
    driver = source[source.index("def _step_parallel("):]
    assert "_split(_step_part0, 13, " in driver
    step = source[source.index("def step("):source.index("def check_forward(")]
    assert "if _worth(size_N * 13 * size_L, 13 * size_L) and x.flags.c_contiguous" in step


def test_static_rows_too_short_to_pay_get_no_twin():
    # (N, 256) split along its 256 channels: runs of 128 values a thread, below MIN_RUN
    program = lucid.compile(nn.BatchNorm1d(256), lucid.placeholder((None, 256), name="x"),
                            mode="train")
    assert 256 < 2 * parallel.MIN_RUN and "_parallel" not in program.source
    program = lucid.compile(nn.BatchNorm1d(8), lucid.placeholder((None, 8, "L"), name="x"),
                            mode="train")
    assert "def _step_parallel(" in program.source  # L unknown until called: decided then


def test_a_function_without_a_kept_axis_gets_no_twin():
    x = lucid.placeholder((None, 8), name="x")
    program = lucid.compile(lambda v: (v * v).sum(), x, mode="eval")  # sums every axis
    assert "_parallel" not in program.source


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.0, TypeError),
                                        ("2", TypeError), (True, TypeError), (None, TypeError)])
def test_set_num_threads_refuses_what_is_not_a_positive_int(bad, error):
    before = lucid.get_num_threads()
    with pytest.raises(error, match="positive int"):
        lucid.set_num_threads(bad)
    assert lucid.get_num_threads() == before


def test_set_and_get_num_threads():
    before = lucid.get_num_threads()
    try:
        lucid.set_num_threads(np.int64(3))
        assert lucid.get_num_threads() == 3 and type(lucid.get_num_threads()) is int
    finally:
        lucid.set_num_threads(before)
    assert before >= 1


def test_worth_needs_threads_elements_and_long_runs(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1000)
    monkeypatch.setattr(parallel, "MIN_RUN", 10)
    before = lucid.get_num_threads()
    try:
        lucid.set_num_threads(2)
        assert parallel.worth(1000, 20) and not parallel.worth(999, 20)
        assert not parallel.worth(10 ** 6, 19)  # each thread's run would be 9 values
        lucid.set_num_threads(1)
        assert not parallel.worth(10 ** 6, 10 ** 6)
    finally:
        lucid.set_num_threads(before)


def test_an_empty_split_axis_runs_one_call():
    assert parallel.split(lambda lo, hi: (np.zeros((hi - lo, 1)),), 0, (0,))[0].shape == (0, 1)


def test_bounds_cover_the_axis_once():
    assert parallel.bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert parallel.bounds(2, 3) == [(0, 1), (1, 2)]
    assert parallel.bounds(128, 1) == [(0, 128)]


def test_an_error_in_a_worker_reaches_the_caller_and_the_pool_survives(split_everything):
    lucid.set_num_threads(2)
    out = np.zeros(8)

    def kernel(lo, hi, out):
        if lo > 0:
            raise FloatingPointError(f"slice {lo}:{hi}")
        out[lo:hi] = 1
        return (np.arange(lo, hi),)

    with pytest.raises(FloatingPointError, match="slice 4:8"):
        parallel.split(kernel, 8, (0,), out)
    assert out[:4].tolist() == [1] * 4  # slice 0 finished before the error was raised
    names = []

    def fine(lo, hi):
        names.append(threading.current_thread().name)
        return (np.arange(lo, hi),)

    (joined,) = parallel.split(fine, 8, (0,))
    assert joined.tolist() == list(range(8))
    assert any(n.startswith("lucid-pool") for n in names)


def test_a_failed_parallel_call_changes_no_state(split_everything):
    program, feeds = compiled("bn3d_train")
    lucid.set_num_threads(2)
    args = [feeds[p] for p in program.user_inputs()]
    running = {k: t.data.copy() for k, t in program.updates.items()}
    namespace = program.step_fn.__globals__
    original = namespace["_split"]

    def failing(kernel, size, axes, *rest):
        def broken(lo, hi, *a):
            if lo > 0:
                raise MemoryError("worker ran out")
            return kernel(lo, hi, *a)
        return original(broken, size, axes, *rest)

    namespace["_split"] = failing
    try:
        with pytest.raises(MemoryError, match="worker ran out"):
            program(*args)
    finally:
        namespace["_split"] = original
    for key, tensor in program.updates.items():
        np.testing.assert_array_equal(tensor.data, running[key], err_msg=key)
    lucid.set_num_threads(2)
    two = program.run(feeds)
    lucid.set_num_threads(1)
    one = program.run(feeds)
    for key in one:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_workers(split_everything):
    lucid.set_num_threads(2)
    parallel.split(lambda lo, hi: (), 4, ())  # the parent has a worker now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child has none of the parent's threads: it starts its own worker
        try:
            (joined,) = parallel.split(lambda lo, hi: (np.arange(lo, hi),), 6, (0,))
            alive = any(t.name.startswith("lucid-pool") for t in threading.enumerate())
            os.write(write, b"ok" if alive and joined.tolist() == list(range(6)) else b"no")
        finally:
            os._exit(0)
    for _ in range(200):  # 10 s at most: without its own worker the child may hang
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's split hung")
    assert os.read(read, 2) == b"ok"
