"""Conv1d and its op records, lucid.nn.init, and F.batch_norm / layer_norm / dropout.

References are float64 NumPy written from the definitions (a convolution by a
loop over output positions, torch's documented init bounds and fan rules,
batch and layer normalisation formulas), central differences, and the
reference executor.
"""
import math

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid import Tensor
from lucid.nn import init
from lucid.ops import REGISTRY
from lucid.runtime import run as reference_run


# -- references ---------------------------------------------------------------------------------
def conv_reference(x, w, b, stride=1, padding=(0, 0), dilation=1, groups=1):
    """``y[n, o, i] = b[o] + sum_{c,k} w[o, c, k] * xpad[n, g(o) * C/groups + c, i * stride +
    k * dilation]``, ``g(o)`` the group of output channel ``o``."""
    n, c, length = x.shape
    o, cg, k = w.shape
    xp = np.zeros((n, c, length + padding[0] + padding[1]))
    xp[:, :, padding[0]:padding[0] + length] = x
    count = (xp.shape[2] - dilation * (k - 1) - 1) // stride + 1
    y = np.zeros((n, o, count))
    for i in range(count):
        for out in range(o):
            first = out // (o // groups) * cg
            for tap in range(k):
                window = xp[:, first:first + cg, i * stride + tap * dilation]
                y[:, out, i] += window @ w[out, :, tap]
    return y if b is None else y + b[None, :, None]


def central_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


CASES = [  # (N, C, L, C_out, K, stride, padding, dilation, padding as pairs[, groups])
    (2, 3, 10, 4, 3, 1, 0, 1, (0, 0)),
    (2, 4, 9, 6, 3, 2, 1, 1, (1, 1), 2),
    (2, 3, 8, 3, 3, 1, "same", 2, (2, 2), 3),  # depthwise
    (1, 2, 7, 4, 2, 1, 0, 1, (0, 0), 2),
    (2, 3, 11, 4, 3, 2, 1, 2, (1, 1)),
    (1, 2, 7, 3, 2, 3, 2, 1, (2, 2)),
    (3, 1, 5, 2, 1, 1, 0, 1, (0, 0)),
    (2, 3, 9, 2, 4, 1, "same", 1, (1, 2)),  # even kernel: torch pads the odd one after
    (2, 2, 9, 3, 3, 1, "same", 2, (2, 2)),
    (2, 2, 6, 3, 3, 1, "valid", 1, (0, 0)),
]


@pytest.mark.parametrize("case", CASES)
def test_conv1d_values_and_gradients_against_the_definition(case):
    n, c, length, o, k, stride, padding, dilation, pads, *groups = case
    groups = groups[0] if groups else 1
    rng = np.random.default_rng(len(str(case)))
    x, w = rng.normal(size=(n, c, length)), rng.normal(size=(o, c // groups, k))
    b = rng.normal(size=o)
    ref = conv_reference(x, w, b, stride, pads, dilation, groups)
    g = rng.normal(size=ref.shape)
    xt, wt, bt = (Tensor(a, dtype="float64", requires_grad=True) for a in (x, w, b))
    y = F.conv1d(xt, wt, bt, stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(y.data, ref, rtol=1e-12, atol=1e-12)
    y.backward(g)

    def loss(xv=x, wv=w, bv=b):
        return float((conv_reference(xv, wv, bv, stride, pads, dilation, groups) * g).sum())
    np.testing.assert_allclose(xt.grad, central_grad(lambda v: loss(xv=v), x), atol=1e-7)
    np.testing.assert_allclose(wt.grad, central_grad(lambda v: loss(wv=v), w), atol=1e-7)
    np.testing.assert_allclose(bt.grad, central_grad(lambda v: loss(bv=v), b), atol=1e-7)


def test_conv1d_unbatched_and_without_bias():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(3, 8)), rng.normal(size=(5, 3, 3))
    y = F.conv1d(Tensor(x, dtype="float64"), Tensor(w, dtype="float64"), padding=1)
    assert y.shape == (5, 8)
    np.testing.assert_allclose(y.data, conv_reference(x[None], w, None, 1, (1, 1))[0],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_bn_relu_compiles_and_agrees_with_the_executor(mode, groups):
    lucid.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=groups,
                                  dtype="float64"),
                        nn.BatchNorm1d(6, dtype="float64"), nn.ReLU())
    rng = np.random.default_rng(2)
    net[1].running_var.data[...] = rng.uniform(0.5, 2, 6)
    program = lucid.compile(net, lucid.placeholder((None, 4, 11), dtype="float64"), mode=mode)
    program.graph.lint(REGISTRY)
    assert "unfold1d" in {program.graph.node(v).op for v in program.graph.nx.nodes}
    feeds = {p: t.data for p, t in program.bindings.items()}
    for p in program.graph.inputs:
        node = program.graph.node(p)
        shape = tuple(5 if isinstance(d, str) else d for d in node.shape)
        feeds.setdefault(p, rng.normal(size=shape).astype(node.dtype))
    ref, got = reference_run(program.graph, feeds), program.run(feeds)
    assert list(got) == list(ref)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-10, atol=1e-10, err_msg=key)
    # the forward against the definition: conv, then batch (train) or running (eval) statistics
    x = feeds[program.graph.inputs[0]]
    conv = net[0]
    z = conv_reference(x, conv.weight.data, conv.bias.data, 2, (2, 2), 2, groups)
    if mode == "train":
        mean, var = z.mean((0, 2), keepdims=True), z.var((0, 2), keepdims=True)
    else:
        mean = net[1].running_mean.data[None, :, None]
        var = net[1].running_var.data[None, :, None]
    want = np.maximum((z - mean) / np.sqrt(var + 1e-5), 0)
    np.testing.assert_allclose(got["out"], want, rtol=1e-10, atol=1e-10)


def test_unfold_and_fold_are_adjoint_and_match_their_reference_runs():
    """fold1d is unfold1d's VJP: <unfold(x), g> = <x, fold(g)>; lowering = reference run."""
    rng = np.random.default_rng(3)
    attrs = {"kernel_size": 3, "stride": 2, "padding": (1, 2), "dilation": 2}
    x = rng.normal(size=(2, 3, 12))
    for name, arg, extra in [("unfold1d", x, {}), ("fold1d", None, {"length": 12})]:
        op = REGISTRY[name]
        at = op.normalize({**attrs, **extra})
        if arg is None:
            arg = rng.normal(size=cols.shape)
        ref = op.run(at, None, arg)
        got = eval(op.lower(at, None, "arg"), {"np": np, "arg": arg})  # our own source
        np.testing.assert_array_equal(got, ref)
        if name == "unfold1d":
            cols = ref
            assert cols.shape == (2, 9, 6)
        else:
            folded = ref
    g = rng.normal(size=cols.shape)
    folded_g = REGISTRY["fold1d"].run(REGISTRY["fold1d"].normalize({**attrs, "length": 12}),
                                      None, g)
    assert math.isclose((cols * g).sum(), (x * folded_g).sum(), rel_tol=1e-12)
    assert folded.shape == x.shape


def test_stacked_products_match_numpy_and_each_other():
    rng = np.random.default_rng(4)
    a, b, g = rng.normal(size=(5, 4)), rng.normal(size=(3, 4, 6)), rng.normal(size=(3, 5, 6))
    for name, args, want in [
            ("stacked_matmul", (a, b), np.stack([a @ m for m in b])),
            ("stacked_matmul_nt", (g, b), sum(gm @ bm.T for gm, bm in zip(g, b)))]:
        op = REGISTRY[name]
        np.testing.assert_allclose(op.run({}, None, *args), want, rtol=1e-12)
        source = op.lower({}, None, "p", "q")
        np.testing.assert_allclose(eval(source, {"np": np, "p": args[0], "q": args[1]}), want,
                                   rtol=1e-12)


def test_conv_bad_inputs_raise_and_change_nothing():
    x = Tensor(np.zeros((2, 3, 8), np.float32))
    w = Tensor(np.zeros((4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv1d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv1d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="groups=3 expects input with 9 channels, got 3"):
        F.conv1d(x, w, groups=3)
    with pytest.raises(ValueError, match="do not split into 3 groups"):
        F.conv1d(x, Tensor(np.zeros((4, 1, 3), np.float32)), groups=3)
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        F.conv1d(x, w, groups=0)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv1d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Invalid padding string"):
        F.conv1d(x, w, padding="full")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv1d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="expects input with 3 channels, got 2"):
        F.conv1d(Tensor(np.zeros((2, 2, 8), np.float32)), w)
    with pytest.raises(ValueError, match="shorter than the kernel span 5"):
        F.conv1d(Tensor(np.zeros((2, 3, 4), np.float32)), w, dilation=2)
    with pytest.raises(TypeError, match="floating"):
        F.conv1d(Tensor(np.zeros((2, 3, 8), np.int64)), w)
    with pytest.raises(ValueError, match="at least 1"):
        nn.Conv1d(3, 4, 3, stride=0)
    conv = nn.Conv1d(3, 4, 3)
    before = {k: v.copy() for k, v in conv.state_dict().items()}
    with pytest.raises(ValueError):
        conv(Tensor(np.zeros((2, 5, 8), np.float32)))
    assert all(np.array_equal(before[k], v) for k, v in conv.state_dict().items())
    with pytest.raises(ValueError, match="must be a positive integer"):
        REGISTRY["unfold1d"].normalize({"kernel_size": 0, "stride": 1, "padding": (0, 0),
                                        "dilation": 1})


def test_conv1d_module_defaults_repr_and_symbolic_batch():
    conv = nn.Conv1d(8, 16, 3, padding="same", bias=False)
    assert repr(conv) == "Conv1d(8, 16, kernel_size=(3,), stride=(1,), padding=same, bias=False)"
    assert conv.weight.shape == (16, 8, 3) and conv.bias is None
    grouped = nn.Conv1d(8, 16, 3, groups=4)
    assert repr(grouped) == "Conv1d(8, 16, kernel_size=(3,), stride=(1,), groups=4)"
    assert grouped.weight.shape == (16, 2, 3)
    assert np.abs(grouped.bias.data).max() <= 1 / math.sqrt(6)  # fan_in = 8 / 4 * 3
    for batch in (1, 7):  # one program for every batch size
        assert conv(Tensor(np.ones((batch, 8, 5), np.float32))).shape == (batch, 16, 5)
    x = Tensor(np.random.default_rng(9).normal(size=(8, 5)).astype(np.float32),
               requires_grad=True)
    y = conv(x)  # unbatched (C, L), as torch's
    assert y.shape == (16, 5)
    np.testing.assert_allclose(y.data, conv_reference(x.data[None].astype(float),
                                                      conv.weight.data.astype(float), None,
                                                      padding=(1, 1))[0], rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert x.grad.shape == (8, 5) and conv.weight.grad.shape == (16, 8, 3)


# -- nn.init ------------------------------------------------------------------------------------
def test_gain_and_fan_rules_are_torch_s():
    assert init.calculate_gain("conv1d") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == 5 / 3 and init.calculate_gain("selu") == 0.75
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01 ** 2))
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "0.1")
    fans = init._calculate_fan_in_and_fan_out
    assert fans(Tensor(np.zeros((5, 3)))) == (3, 5)
    assert fans(Tensor(np.zeros((16, 8, 3)))) == (24, 48)
    assert fans(Tensor(np.zeros((4, 2, 3, 5)))) == (30, 60)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        fans(Tensor(np.zeros(4)))


def _seeded(seed):
    lucid.manual_seed(seed)
    return np.random.default_rng(seed)  # the same stream, for the NumPy transcription


@pytest.mark.parametrize("fn, args, draw", [
    (init.uniform_, (-0.5, 2.0), lambda r, s, f: r.uniform(-0.5, 2.0, s)),
    (init.normal_, (1.0, 0.3), lambda r, s, f: r.normal(1.0, 0.3, s)),
    (init.xavier_uniform_, (2.0,), lambda r, s, f: r.uniform(
        -2.0 * math.sqrt(6 / (f[0] + f[1])), 2.0 * math.sqrt(6 / (f[0] + f[1])), s)),
    (init.xavier_normal_, (), lambda r, s, f: r.normal(0, math.sqrt(2 / (f[0] + f[1])), s)),
    (init.kaiming_uniform_, (), lambda r, s, f: r.uniform(  # a = 0: gain sqrt(2 / (1 + 0))
        -math.sqrt(2) * math.sqrt(3 / f[0]), math.sqrt(2) * math.sqrt(3 / f[0]), s)),
    (init.kaiming_uniform_, (0.2,), lambda r, s, f: r.uniform(
        -math.sqrt(2 / 1.04) * math.sqrt(3 / f[0]), math.sqrt(2 / 1.04) * math.sqrt(3 / f[0]),
        s)),
    (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), (),
     lambda r, s, f: r.normal(0, math.sqrt(2) / math.sqrt(f[1]), s)),
])
def test_init_draws_match_a_numpy_transcription_of_torch_s_formulas(fn, args, draw):
    p = nn.Parameter(np.zeros((6, 4, 3)))
    data = p.data
    rng = _seeded(7)
    out = fn(p, *args)
    assert out is p and p.data is data and p.requires_grad  # in place, under no_grad
    np.testing.assert_allclose(p.data, draw(rng, (6, 4, 3), (12, 18)), rtol=1e-12)


def test_init_statistics_reproducibility_and_bad_arguments():
    lucid.manual_seed(0)
    w = Tensor(np.zeros((400, 200, 3)))
    init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.data.std() / (math.sqrt(2) / math.sqrt(600)) - 1) < 0.01
    init.xavier_uniform_(w)
    bound = math.sqrt(6 / (600 + 1200))
    assert w.data.max() <= bound and w.data.min() >= -bound
    assert abs(w.data.var() / (bound ** 2 / 3) - 1) < 0.01
    lucid.manual_seed(3)
    a = nn.Conv1d(8, 16, 3).weight.data.copy()
    lucid.manual_seed(3)
    assert np.array_equal(nn.Conv1d(8, 16, 3).weight.data, a)
    before = w.data.copy()
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(w, mode="fan_avg")
    with pytest.raises(ValueError, match="std >= 0"):
        init.normal_(w, std=-1.0)
    assert np.array_equal(w.data, before)
    assert np.array_equal(init.zeros_(w).data, np.zeros_like(before))
    assert np.array_equal(init.ones_(w).data, np.ones_like(before))
    assert init.constant_(w, 0.25).data.max() == 0.25
    with pytest.raises(TypeError):
        init.uniform_(np.zeros((2, 2)))


@pytest.mark.parametrize("make, shape", [(lambda: nn.Linear(5, 3), (3, 5)),
                                         (lambda: nn.Conv1d(4, 3, 2), (3, 4, 2))])
def test_layer_defaults_are_torch_s(make, shape):
    """weight ~ U(+-gain * sqrt(3 / fan_in)), gain = sqrt(2 / (1 + 5));
    bias ~ U(+-1 / sqrt(fan_in))."""
    rng = _seeded(11)
    layer = make()
    fan_in = math.prod(shape[1:])
    bound = math.sqrt(2 / 6) * math.sqrt(3 / fan_in)
    want_w = rng.uniform(-bound, bound, shape)
    want_b = rng.uniform(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), shape[0])
    np.testing.assert_allclose(layer.weight.data, want_w.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(layer.bias.data, want_b.astype(np.float32), rtol=1e-6)


# -- functional normalisation and dropout ---------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 2, 2)])
def test_batch_norm_functional_against_numpy(shape):
    rng = np.random.default_rng(5)
    x = rng.normal(2.0, 3.0, shape)
    axes = (0,) + tuple(range(2, len(shape)))
    per = (1, 3) + (1,) * (len(shape) - 2)
    w, b = rng.normal(size=3), rng.normal(size=3)
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2, 3)
    mean_t, var_t = Tensor(rm.copy()), Tensor(rv.copy())  # (a Tensor shares its array)
    xt = Tensor(x, dtype="float64", requires_grad=True)
    y = F.batch_norm(xt, mean_t, var_t, Tensor(w, dtype="float64"), Tensor(b, dtype="float64"),
                     training=True, momentum=0.3, eps=1e-3)
    m, v = x.mean(axes), x.var(axes)
    want = (x - m.reshape(per)) / np.sqrt(v.reshape(per) + 1e-3) * w.reshape(per) + b.reshape(per)
    np.testing.assert_allclose(y.data, want, rtol=1e-10, atol=1e-12)
    count = x.size // 3
    np.testing.assert_allclose(mean_t.data, 0.7 * rm + 0.3 * m, rtol=1e-12)
    np.testing.assert_allclose(var_t.data, 0.7 * rv + 0.3 * v * count / (count - 1), rtol=1e-12)
    y.backward(np.ones_like(x))  # sum of a normalised, affine output: only beta's share is left
    np.testing.assert_allclose(xt.grad, 0, atol=1e-9)
    ev = F.batch_norm(Tensor(x, dtype="float64"), mean_t, var_t, training=False)
    np.testing.assert_allclose(ev.data, (x - mean_t.data.reshape(per)) /
                               np.sqrt(var_t.data.reshape(per) + 1e-5), rtol=1e-10)
    with pytest.raises(ValueError, match="running_mean must be defined"):
        F.batch_norm(Tensor(x), None, None)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(Tensor(np.ones((1, 3))), None, None, training=True)


def test_batch_norm_functional_equals_the_module():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 4, 5)).astype(np.float32)
    bn = nn.BatchNorm1d(4)
    rm, rv = Tensor(np.zeros(4, np.float32)), Tensor(np.ones(4, np.float32))
    a = bn(Tensor(x))
    b = F.batch_norm(Tensor(x), rm, rv, bn.weight, bn.bias, training=True)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bn.running_mean.data, rm.data, rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.data, rv.data, rtol=1e-6)


def test_batch_norm_functional_in_a_traced_module_updates_its_buffers():
    class Norm(nn.Module):  # a torch-style module written with F.batch_norm
        def __init__(self, c):
            super().__init__()
            self.weight = nn.Parameter(np.ones(c, np.float32))
            self.bias = nn.Parameter(np.zeros(c, np.float32))
            self.register_buffer("running_mean", Tensor(np.zeros(c, np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(c, np.float32)))

        def forward(self, x):
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                self.bias, self.training, 0.1, 1e-5)
    x = np.random.default_rng(8).normal(size=(8, 3, 5)).astype(np.float32)
    mine, ref = Norm(3), nn.BatchNorm1d(3)
    for _ in range(3):
        np.testing.assert_allclose(mine(Tensor(x)).data, ref(Tensor(x)).data, rtol=1e-6)
    np.testing.assert_allclose(mine.running_mean.data, ref.running_mean.data, rtol=1e-6)
    np.testing.assert_allclose(mine.running_var.data, ref.running_var.data, rtol=1e-6)
    assert abs(mine.running_mean.data).max() > 0.01  # they did move
    mine.eval(), ref.eval()
    np.testing.assert_allclose(mine(Tensor(x)).data, ref(Tensor(x)).data, rtol=1e-6)


def test_layer_norm_functional_against_numpy():
    rng = np.random.default_rng(7)
    x, w, b = rng.normal(size=(3, 4, 5)), rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    y = F.layer_norm(Tensor(x, dtype="float64"), (4, 5), Tensor(w, dtype="float64"),
                     Tensor(b, dtype="float64"), eps=1e-4)
    m, v = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    np.testing.assert_allclose(y.data, (x - m) / np.sqrt(v + 1e-4) * w + b, rtol=1e-10)
    y1 = F.layer_norm(Tensor(x, dtype="float64"), 5)
    m, v = x.mean(2, keepdims=True), x.var(2, keepdims=True)
    np.testing.assert_allclose(y1.data, (x - m) / np.sqrt(v + 1e-5), rtol=1e-10)
    with pytest.raises(ValueError, match=r"expected input with shape \[\*, 4\]"):
        F.layer_norm(Tensor(x), (4,))


def test_dropout_functional():
    x = Tensor(np.ones((300, 100), np.float32), requires_grad=True)
    lucid.manual_seed(1)
    y = F.dropout(x, 0.25)
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.75, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75, rtol=1e-6)
    assert not np.array_equal(F.dropout(x, 0.25).data != 0, kept)  # a new mask each call
    lucid.manual_seed(1)
    assert np.array_equal(F.dropout(x, 0.25).data != 0, kept)  # reproducible
    assert F.dropout(x, 0.5, training=False) is x
    assert np.array_equal(F.dropout(x, 1.0).data, np.zeros((300, 100)))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)
    # traced: the key is a program input drawn at every call, so each run has its own mask
    program = lucid.compile(lambda v: F.dropout(v, 0.5), lucid.placeholder((None, 4)),
                            backward=False)
    ones = np.ones((500, 4), np.float32)
    lucid.manual_seed(3)
    first = program(ones)["out"]
    assert set(np.unique(first)) == {0.0, 2.0} and abs((first != 0).mean() - 0.5) < 0.05
    assert not np.array_equal(program(ones)["out"], first)
    lucid.manual_seed(3)
    np.testing.assert_array_equal(program(ones)["out"], first)


# -- the example's model, on synthetic data -------------------------------------------------------
def test_conv_bn_relu_network_learns_a_synthetic_sequence_task():
    """Classes told apart by where a bump sits in an 8-channel sequence, as the digits
    example reads its images; the eager loop written as a PyTorch script."""
    lucid.manual_seed(0)
    rng = np.random.default_rng(0)
    n, classes = 256, 4
    labels = rng.integers(0, classes, n)
    x = rng.normal(0, 0.5, (n, 8, 8)).astype(np.float32)
    x[np.arange(n), :, labels * 2] += 2.0
    model = nn.Sequential(nn.Conv1d(8, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 8, classes))
    opt = lucid.optim.Adam(model.parameters(), lr=1e-2)
    xs, ys = Tensor(x), Tensor(labels.astype(np.int64))
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(xs), ys)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    accuracy = (model(xs).data.argmax(1) == labels).mean()
    assert losses[-1] < 0.2 * losses[0] and accuracy > 0.95
