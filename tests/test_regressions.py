"""Regression tests for bugs an independent review found (each failed before its fix)."""
import threading

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor, ops
from lucid.runtime import run as reference_run

RNG = np.random.default_rng(42)


def _softmax(x):
    e = lucid.exp(x)
    return e / e.sum(1, keepdims=True)


class Softmax(nn.Module):
    def forward(self, x):
        return _softmax(x)


def test_split_forward_defines_every_temporary_it_uses():
    # the forward half once named a temporary that only the backward recomputes (NameError)
    x = lucid.placeholder((None, 5), "float64", name="x")
    program = lucid.compile(_softmax, x)
    a, g = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))
    outs, saved = program.run_forward({"x": a})
    grads = program.run_backward(saved, {program.seeds[0]: g})
    ref = reference_run(program.graph, {"x": a, program.seeds[0]: g})
    np.testing.assert_allclose(outs["out"], ref["out"], rtol=1e-12)
    np.testing.assert_allclose(grads["grad:x"], ref["grad:x"], rtol=1e-10, atol=1e-14)
    t = Tensor(a, requires_grad=True)
    Softmax()(t).backward(g)
    np.testing.assert_allclose(t.grad, ref["grad:x"], rtol=1e-10, atol=1e-14)


def test_a_sum_of_an_offset_input_stays_centred():
    # sum(x - 1e4) must not become sum(x) - 1e4 * N, which cancels in float32
    x = lucid.placeholder((None, 3), name="x")
    program = lucid.compile(lambda x: {"mean": x.mean(0), "s": (x - 1e4).sum(0)}, x, mode="eval")
    a = (1e4 + 0.1 * RNG.standard_normal((4096, 3))).astype(np.float32)
    exact = (a.astype(np.float64) - 1e4).sum(0)
    np.testing.assert_allclose(program.run({"x": a})["s"], exact, rtol=1e-3)


def test_output_keys_cannot_take_gradient_or_buffer_names():
    x = lucid.placeholder((None, 3), name="x")
    with pytest.raises(ValueError, match="output key 'grad:x' is taken"):
        lucid.compile(lambda x: {"out": x * 2, "grad:x": x * 5}, x)
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="running_mean"):
        lucid.compile(lambda x: {"out": bn(x), "batchnorm1d.running_mean": x.sum(0)}, x)


def test_toggling_requires_grad_recompiles():
    bn = nn.BatchNorm1d(3)
    bn.weight.requires_grad = False
    bn(Tensor(RNG.normal(size=(4, 3)).astype(np.float32))).backward(np.ones((4, 3), np.float32))
    assert bn.weight.grad is None and bn.bias.grad is not None
    bn.weight.requires_grad = True
    g = RNG.normal(size=(4, 3)).astype(np.float32)
    bn(Tensor(RNG.normal(size=(4, 3)).astype(np.float32))).backward(g)
    assert bn.weight.grad is not None and np.abs(bn.weight.grad).sum() > 0


def test_gradients_are_never_shared_arrays():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    x = Tensor([5.0, 6.0])
    (x * (a + b)).sum().backward()
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    a.grad *= 0
    np.testing.assert_array_equal(b.grad, [5.0, 6.0])
    leaf = Tensor([1.0, 2.0], requires_grad=True)
    g = np.array([1.0, 1.0], np.float32)
    leaf.backward(g)
    g[0] = 99.0
    np.testing.assert_array_equal(leaf.grad, [1.0, 1.0])


def test_program_outputs_naming_one_node_are_separate_arrays():
    x = lucid.placeholder((None, 3), "float64", name="x")
    program = lucid.compile(lambda x: {"a": x * 2.0, "b": x * 2.0}, x, mode="eval")
    out = program(RNG.normal(size=(4, 3)))
    assert not np.shares_memory(out["a"], out["b"])


def test_programs_sharing_a_module_count_every_batch_across_threads():
    bn = nn.BatchNorm1d(4)
    p2 = lucid.compile(bn, lucid.placeholder((None, 4), name="x"), mode="train")
    p3 = lucid.compile(bn, lucid.placeholder((None, 4, 2), name="x"), mode="train")
    x2, x3 = np.ones((8, 4), np.float32), np.ones((8, 4, 2), np.float32)

    def work(program, x):
        for _ in range(150):
            program(x, x)
    threads = [threading.Thread(target=work, args=(p2, x2)), threading.Thread(target=work, args=(p3, x3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(bn.num_batches_tracked.data) == 300


def test_shape_attributes_cannot_carry_code():
    x = lucid.placeholder((None, 3), name="x")
    with pytest.raises(ValueError, match="name of a size"):
        lucid.broadcast_to(x, ("N)+(__import__('os').system('echo PWNED'),", 3))
    with pytest.raises(ValueError, match="'K' is not the size of any input"):
        lucid.compile(lambda x: lucid.broadcast_to(x.sum(0, keepdims=True), ("K", 3)), x)


def test_modules_called_inside_a_traced_function_are_trained():
    lin, bn = nn.Linear(3, 2), nn.BatchNorm1d(2)
    x = lucid.placeholder((None, 3), name="x")
    program = lucid.compile(lambda x: lucid.relu(bn(lin(x))) * 2.0, x)
    assert {"grad:linear.weight", "grad:batchnorm1d.weight", "batchnorm1d.running_mean"} \
        <= set(program.graph.outputs)
    a, g = RNG.normal(size=(5, 3)).astype(np.float32), np.ones((5, 2), np.float32)
    out = program(a, g)
    ref = reference_run(program.graph, program.feeds((a, g), {}))  # state already committed
    assert int(bn.num_batches_tracked.data) == 1
    assert out["grad:linear.weight"].shape == (2, 3) and np.abs(out["grad:linear.weight"]).sum() > 0
    np.testing.assert_allclose(out["out"], ref["out"], rtol=1e-5, atol=1e-6)
    assert lin.training and bn.training  # the modules' own modes are put back
