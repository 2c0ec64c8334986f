"""Regressions from the independent review of the issue 11 work (thread-count bits, layouts).

Every case compares results at 1, 2 and 3 threads bit for bit, with the parallel thresholds
lowered through their documented knobs so that the twins run on small shapes.
"""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor
from lucid.codegen import parallel
from test_parallel import counting_splits


def by_threads(make, x):
    """(output, input gradient, module state) of one train step at 1, 2 and 3 threads."""
    results = []
    for n in (1, 2, 3):
        lucid.set_num_threads(n)
        module = make()
        t = Tensor(x, requires_grad=True)
        y = module(t)
        y.backward(Tensor(np.cos(np.arange(y.data.size, dtype=np.float32)).reshape(y.shape)))
        state = [np.asarray(v).copy() for v in module.state_dict().values()]
        results.append([y.data.copy(), t.grad.copy()] + state)
    return results


def assert_same_bits(results):
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("layout", ["F", "transposed view"])
def test_batchnorm_on_another_layout_gives_the_same_bits_at_any_thread_count(split_everything,
                                                                          layout):
    data = (np.random.default_rng(0).standard_normal((16, 6, 40)) * 2 + 3).astype(np.float32)
    x = np.asfortranarray(data) if layout == "F" else \
        np.ascontiguousarray(data.transpose(2, 1, 0)).transpose(2, 1, 0)
    assert not x.flags.c_contiguous
    results = by_threads(lambda: nn.BatchNorm1d(6), x)
    assert_same_bits(results)
    c_ordered = by_threads(lambda: nn.BatchNorm1d(6), np.ascontiguousarray(x))
    np.testing.assert_allclose(results[0][0], c_ordered[0][0], rtol=1e-5, atol=1e-5)


def test_a_slice_holds_two_rows_or_more(split_everything):
    # NumPy sums the one row of a (1, n) slice by another loop than the rows of the whole
    # (3, n) array for long rows: other bits. Slices of 2 or more rows sum alike.
    x = (np.random.default_rng(1).standard_normal((3, 30000)) * 2 + 3).astype(np.float32)
    assert_same_bits(by_threads(lambda: nn.LayerNorm(30000), x))
    assert parallel.bounds(3, min(3, max(1, 3 // 2))) == [(0, 3)]


def test_slices_of_a_split_are_two_wide(split_everything):
    seen = []

    def kernel(lo, hi):
        seen.append((lo, hi))
        return ()
    lucid.set_num_threads(3)
    for size in (1, 2, 3, 5, 7):
        seen.clear()
        parallel.split(kernel, size, ())
        assert sorted(seen)[0][0] == 0 and sorted(seen)[-1][1] == size
        assert all(hi - lo >= min(2, size) for lo, hi in seen)


def test_input_of_another_layout_runs_serially(split_everything):
    x = np.asfortranarray(np.random.default_rng(2).standard_normal((16, 6, 40)).astype(np.float32))
    program = lucid.compile(nn.BatchNorm1d(6), lucid.placeholder((None, 6, 40), name="x"),
                            mode="train")
    calls = counting_splits(program)
    lucid.set_num_threads(2)
    dy = np.ones((16, 6, 40), np.float32)
    program(x, dy)
    assert calls == []  # slices of an F-ordered array may sum in another order
    program(np.ascontiguousarray(x), dy)
    assert calls  # the same program splits C-ordered input


def test_a_saved_source_runs_on_its_own(tmp_path):
    import runpy
    from lucid.codegen.program import bound_value
    model = nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.ReLU())
    program = lucid.compile(model, lucid.placeholder((None, 4), name="x"), mode="train")
    assert "from lucid.ops.special import erf as _erf\n" in program.source
    path = tmp_path / "step.py"
    program.save(path)
    saved = runpy.run_path(str(path))  # NameError _erf before the source imported it
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    g = np.random.default_rng(4).standard_normal((5, 3)).astype(np.float32)
    args = [(x, g)[s] if isinstance(s, int) else bound_value(s) for s in program._slots]
    for a, b in zip(saved["step"](*args), program.step_fn(*args)):
        assert np.array_equal(a, b)


def test_a_division_by_a_lost_zero_is_a_clear_error():
    with pytest.raises(ValueError, match="divides by a constant zero"):
        lucid.compile(lambda t: 1 / (t * 0.0), lucid.placeholder((2,), name="t"))
    bn = nn.BatchNorm1d(4)
    with pytest.raises(ValueError, match="divides by a constant zero"):
        bn(Tensor(np.zeros((2, 4, 0), np.float32)))  # a mean over L = 0 (torch: empty)
    assert int(bn.num_batches_tracked.data) == 0 and not bn.running_mean.data.any()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mib, blocked", [(12, False), (20, True)])
def test_blocks_of_rows_from_16_mib_on_any_thread_count(threads, mib, blocked):
    before = lucid.get_num_threads()
    lucid.set_num_threads(threads)
    try:
        calls = []
        row = mib << 20 >> 10  # 1024 rows of `mib` KiB
        parallel.split(lambda lo, hi: calls.append((lo, hi)) or (), 1024, (), block=row)
        assert (len(calls) > threads) == blocked
        elements = (mib << 20) // 4  # float32 values
        assert parallel.worth_rows(elements, 1024, True) == blocked  # both thresholds: 2**22
        assert parallel.worth_rows(elements, 1024, False) == (blocked and threads > 1)
    finally:
        lucid.set_num_threads(before)
