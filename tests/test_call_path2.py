"""Fast paths of the call path (issue 11 item 4, second pass): each remembers an answer
and must give it up the moment it would be stale.

Values are compared with independent float64 NumPy references written from the torch
docs; the answers of the remembered paths with those the slow path gives.
"""
import numpy as np
import pytest

import lucid
from lucid.codegen.program import Results
from lucid.eager import methods
from lucid.ops import REGISTRY, define_elementwise, define_many

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


# -- op methods installed on Tensor (no __getattr__, whose presence slows every read) -----

def test_tensor_has_no_getattr_and_reads_its_slots_directly():
    assert "__getattr__" not in vars(lucid.Tensor)
    assert all("__getattr__" not in vars(k) for k in lucid.Tensor.__mro__)
    t = lucid.Tensor([1.0, -2.0])
    np.testing.assert_array_equal(t.abs().data, [1.0, 2.0])  # an op method, installed
    assert lucid.Tensor.abs.__name__ == "abs"
    try:
        t.no_such_method
    except AttributeError as e:
        assert "no_such_method" in str(e)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def test_an_op_defined_later_is_a_method_and_a_rolled_back_one_is_not():
    with pytest.raises(ValueError):  # the second is refused: neither stays registered
        define_many([("cp2_triple", "a*3"), ("cp2_half", "a/2", {"integer": True})])
    assert "cp2_triple" not in REGISTRY
    assert not hasattr(lucid.Tensor, "cp2_triple") and not hasattr(lucid.Tensor, "cp2_half")
    define_elementwise("cp2_triple", "a*3")
    try:
        x = lucid.Tensor(np.array([1.0, -2.5, 4.0]), requires_grad=True)
        y = x.cp2_triple()
        np.testing.assert_array_equal(y.data, np.array([1.0, -2.5, 4.0]) * 3)
        y.backward(np.ones(3))
        np.testing.assert_array_equal(x.grad, [3.0, 3.0, 3.0])
    finally:
        del REGISTRY["cp2_triple"]  # the listener takes the method away again
    assert not hasattr(x, "cp2_triple")


def test_every_method_op_is_installed_and_an_explicit_attribute_wins():
    for name, op in REGISTRY.items():
        if op.method:
            assert name in methods._OFFERED and vars(lucid.Tensor)[name].__name__ == name
    explicit = object()
    lucid.Tensor.cp2_explicit = explicit  # as methods.py sets Tensor.to before the ops
    try:
        define_elementwise("cp2_explicit", "a + 1")
        assert lucid.Tensor.cp2_explicit is explicit and "cp2_explicit" not in methods._OFFERED
    finally:
        del lucid.Tensor.cp2_explicit
        REGISTRY.pop("cp2_explicit", None)  # dict.pop: no listener, nothing was installed


def test_calls_on_tensors_alone_take_their_own_programs():
    # t.sum(), t.exp(), lucid.maximum(a, b): all-Tensor calls take a short way to the program
    # cache; each op must still get its own program, and the long way the same one
    rng = np.random.default_rng(3)
    a = lucid.Tensor(rng.normal(size=(4, 5)).astype(np.float32))
    b = lucid.Tensor(rng.normal(size=(4, 5)).astype(np.float32))
    for _ in range(2):
        np.testing.assert_allclose(a.sum().data, a.data.astype(np.float64).sum(), rtol=1e-6)
        np.testing.assert_allclose(a.mean().data, a.data.astype(np.float64).mean(), rtol=1e-6)
        np.testing.assert_allclose(a.exp().data, np.exp(a.data), rtol=1e-6)
        np.testing.assert_allclose(a.tanh().data, np.tanh(a.data), rtol=1e-6)
        np.testing.assert_array_equal((-a).data, -a.data)
        np.testing.assert_array_equal(a.abs().data, np.abs(a.data))
        np.testing.assert_array_equal(lucid.maximum(a, b).data, np.maximum(a.data, b.data))
        np.testing.assert_array_equal(lucid.minimum(a, b).data, np.minimum(a.data, b.data))
        np.testing.assert_allclose(a.sum(dim=0).data, a.data.sum(0), rtol=1e-6)  # the long way
