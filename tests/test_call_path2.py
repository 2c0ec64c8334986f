"""Fast paths of the call path (issue 11 item 4, second pass): each remembers an answer
and must give it up the moment it would be stale.

Values are compared with independent float64 NumPy references written from the torch
docs; the answers of the remembered paths with those the slow path gives.
"""
import numpy as np

from lucid.codegen.program import Results

SMALL = (256, 256)  # float32: 256 KiB, over MIN_BYTES, under MIN_VOLUME on its own
LARGE = (1024, 1024)  # 4 MiB: over MIN_VOLUME


def _ring(results, slot):
    """The list of arrays ``results`` keeps for ``slot`` (the list, not the arrays: holding
    it does not hold them)."""
    return results._local.__dict__.setdefault(slot, [])


def test_results_after_many_new_answers_a_size_change_elsewhere_makes_arrays_kept():
    results = Results()
    assert SMALL[0] * SMALL[1] * 4 >= Results.MIN_BYTES
    for _ in range(50):  # always a new array, at a size the fast path remembers
        assert results.take("step.a", SMALL, np.float32).shape == SMALL
    assert results.kept_bytes() == 0
    results.take("step.b", LARGE, np.float32)  # the function's volume passes MIN_VOLUME
    ring = _ring(results, "step.a")
    out = results.take("step.a", SMALL, np.float32)
    assert any(out is a for a in ring)  # kept now: a remembered "new" would not be
    address = id(out)
    del out  # only the ring holds it: offered back
    assert id(results.take("step.a", SMALL, np.float32)) == address


def test_results_a_shrinking_slot_brings_the_volume_back_under_the_line():
    results = Results()
    results.take("step.b", LARGE, np.float32)
    ring = _ring(results, "step.a")
    out = results.take("step.a", SMALL, np.float32)
    assert any(out is a for a in ring)
    results.take("step.b", (4, 4), np.float32)  # the other slot shrinks: 256 KiB a call
    for _ in range(3):
        out = results.take("step.a", SMALL, np.float32)
        assert ring and not any(out is a for a in ring)


def test_results_other_functions_volume_does_not_count():
    results = Results()
    for _ in range(3):
        results.take("forward.a", SMALL, np.float32)
    results.take("backward.b", LARGE, np.float32)  # another function: its own volume
    out = results.take("forward.a", SMALL, np.float32)
    assert not _ring(results, "forward.a") and out.shape == SMALL


def test_results_same_slot_other_shape_or_dtype_gets_its_own_answer():
    results = Results()
    for _ in range(3):
        a = results.take("forward.y", (32, 64), np.float32)
    b = results.take("forward.y", (64, 32), np.float32)
    c = results.take("forward.y", (32, 64), np.float64)
    assert (a.shape, a.dtype) == ((32, 64), np.float32)
    assert (b.shape, b.dtype) == ((64, 32), np.float32)
    assert (c.shape, c.dtype) == ((32, 64), np.float64)
    assert results._sizes["forward.y"] == 32 * 64 * 8
