"""Dropout, LayerNorm and the small modules: values against NumPy, dropout statistics,
seeding and the eval graph without a dropout node."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor


def test_dropout_statistics_seeding_and_eval():
    lucid.manual_seed(0)
    d = nn.Dropout(0.3)
    x = Tensor(np.ones((200, 50), np.float32), requires_grad=True)
    y = d(x)
    kept = y.data != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.data[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.7, rtol=1e-6)  # the mask of that call
    assert not np.array_equal(d(x).data != 0, kept)  # a new mask each call
    lucid.manual_seed(0)
    assert np.array_equal(nn.Dropout(0.3)(x).data != 0, kept)  # reproducible
    d.eval()
    assert d(x).data is not None and np.array_equal(d(x).data, x.data)
    ops = {}
    for mode in ("train", "eval"):
        net = nn.Sequential(nn.Linear(50, 50), d).train(mode == "train")
        graph = lucid.trace_graph(net, lucid.placeholder((None, 50)), mode=mode)[0]
        graph.lint()
        ops[mode] = {graph.node(n).op for n in graph.nx.nodes}
    assert "uniform" in ops["train"] and "uniform" not in ops["eval"]
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_layernorm_against_numpy():
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    ln = nn.LayerNorm((4, 5), dtype="float64")
    ln.weight.data[...] = np.random.default_rng(1).normal(size=(4, 5))
    t = Tensor(x, requires_grad=True, dtype="float64")
    y = ln(t)
    m = x.mean((1, 2), keepdims=True)
    v = ((x - m) ** 2).mean((1, 2), keepdims=True)
    np.testing.assert_allclose(y.data, (x - m) / np.sqrt(v + 1e-5) * ln.weight.data, rtol=1e-10)


def test_small_modules():
    x = np.random.default_rng(0).normal(size=(2, 3, 2))
    t = Tensor(x, dtype="float32")
    np.testing.assert_allclose(nn.Tanh()(t).data, np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(t).data, 1 / (1 + np.exp(-x)), rtol=1e-6)
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(nn.Softmax(1)(t).data, e / e.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(nn.LogSoftmax(1)(t).data, np.log(e / e.sum(1, keepdims=True)),
                               rtol=1e-5, atol=1e-6)
    assert nn.Flatten()(t).shape == (2, 6)
    np.testing.assert_array_equal(nn.Identity(3)(t).data, t.data)
    ml = nn.ModuleList([nn.Tanh(), nn.Linear(2, 2)])
    assert len(ml) == 2 and [k for k, _ in ml.named_parameters()] == ["1.weight", "1.bias"]
