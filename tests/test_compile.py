"""Compiled programs against the reference executor and against float64 maths (SPEC.md).

Every graph built here is run twice, by the generated code (``program.run``) and by the
plain node-by-node executor (``lucid.runtime.executor.run``), which must agree on values,
gradients and running statistics, in dtype as well as in value.
"""
import itertools
import zlib

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.ops import REGISTRY
from lucid.runtime import run as reference_run

TOL = {"float32": 2e-5, "float64": 1e-11}
BN_EPS = 1e-5


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def assert_agree(program, feeds):
    """program.run and the reference executor give the same keys, dtypes and values."""
    program.graph.lint(REGISTRY)
    got, ref = program.run(feeds), reference_run(program.graph, feeds)
    assert list(got) == list(ref) == list(program.graph.outputs)
    for key, value in ref.items():
        dtype = program.graph.node(program.graph.outputs[key].node).dtype
        assert np.asarray(got[key]).dtype == value.dtype == np.dtype(dtype), key
        assert np.shape(got[key]) == value.shape, key
        tol = TOL.get(dtype, 0)
        np.testing.assert_allclose(got[key], value, rtol=tol, atol=tol, err_msg=key)
    return got


def bn_reference(x, gamma, beta, rm, rv, count, dy, *, train, track, momentum):
    """BatchNorm1d forward, backward and running-stat update in float64, from SPEC.md."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    axes = (0,) if x.ndim == 2 else (0, 2)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    g = np.ones(x.shape[1]) if gamma is None else gamma.astype(np.float64)
    if train or not track:
        mean, var = x.mean(axes), x.var(axes)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
    rstd = 1 / np.sqrt(var + BN_EPS)
    xhat = (x - mean.reshape(shape)) * rstd.reshape(shape)
    out = {"out": xhat * g.reshape(shape) + (0 if beta is None else beta.reshape(shape))}
    if gamma is not None:
        out["grad:weight"], out["grad:bias"] = (dy * xhat).sum(axes), dy.sum(axes)
    if train or not track:
        s1 = dy.sum(axes).reshape(shape)
        s2 = (dy * xhat).sum(axes).reshape(shape)
        out["grad:x"] = (g * rstd).reshape(shape) / m * (m * dy - s1 - xhat * s2)
    else:
        out["grad:x"] = dy * (g * rstd).reshape(shape)
    if train and track:
        f = 1 / (count + 1) if momentum is None else momentum
        out["running_mean"] = (1 - f) * rm + f * mean
        out["running_var"] = (1 - f) * rv + f * var * m / (m - 1)
        out["num_batches_tracked"] = count + 1
    return out


def make_bn(c, dtype, rng, **kw):
    bn = nn.BatchNorm1d(c, **kw).to(dtype)
    state = bn.state_dict()
    for key in state:
        if key in ("weight", "bias"):
            state[key] = rng.uniform(0.5, 2.0, c) * (1 if key == "weight" else rng.normal(size=c))
        elif key == "running_mean":
            state[key] = rng.normal(size=c)
        elif key == "running_var":
            state[key] = rng.uniform(0.5, 2.0, c)
        elif key == "num_batches_tracked":
            state[key] = np.array(3)
    bn.load_state_dict(state)
    return bn


BN_OPTIONS = list(itertools.product([2, 3], [True, False], [True, False], [0.1, None],
                                    ["train", "eval"], ["float32", "float64"]))


@pytest.mark.parametrize("ndim, affine, track, momentum, mode, dtype", BN_OPTIONS)
def test_batchnorm_program_agrees_with_executor_and_maths(ndim, affine, track, momentum, mode,
                                                          dtype):
    rng = rng_for(ndim, affine, track, momentum, mode, dtype)
    bn = make_bn(3, dtype, rng, affine=affine, track_running_stats=track, momentum=momentum)
    shape = (5, 3) if ndim == 2 else (4, 3, 2)
    x = rng.normal(1.0, 2.0, shape).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    placeholder = lucid.placeholder((None, 3) + (None,) * (ndim - 2), dtype, name="x")
    program = lucid.compile(bn, placeholder, mode=mode, backward=True)
    feeds = program.feeds((x, dy), {})
    got = assert_agree(program, feeds)
    data = {k: None if v is None else v.data for k, v in
            [("weight", bn.weight), ("bias", bn.bias), ("running_mean", bn.running_mean),
             ("running_var", bn.running_var), ("num_batches_tracked", bn.num_batches_tracked)]}
    ref = bn_reference(x, data["weight"], data["bias"], data["running_mean"], data["running_var"],
                       None if data["num_batches_tracked"] is None else int(data["num_batches_tracked"]),
                       dy, train=mode == "train", track=track, momentum=momentum)
    assert sorted(got) == sorted(ref)
    tol = {"float32": 2e-4, "float64": 1e-10}[dtype]
    for key, expected in ref.items():
        assert got[key].dtype == (np.int64 if key == "num_batches_tracked" else np.dtype(dtype))
        np.testing.assert_allclose(got[key], expected, rtol=tol, atol=tol, err_msg=key)


@pytest.mark.parametrize("dtype, how", [("float32", "module"), ("float64", "module"),
                                        ("float64", "placeholder_only")])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_mlp_program_agrees_with_executor(dtype, how, mode):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    if how == "module":
        model.to(dtype)
    rng = rng_for("mlp", dtype, how, mode)
    x = rng.normal(size=(6, 3)).astype(dtype)
    dy = rng.normal(size=(6, 2)).astype(dtype)
    program = lucid.compile(model, lucid.placeholder((None, 3), dtype, name="x"), mode=mode,
                            backward=True)
    got = assert_agree(program, program.feeds((x, dy), {}))
    assert got["out"].dtype == np.dtype(dtype)
    assert {k for k in got if k.startswith("grad:")} == {
        "grad:x", "grad:0.weight", "grad:0.bias", "grad:1.weight", "grad:1.bias",
        "grad:3.weight", "grad:3.bias"}
    if how == "module":  # each parameter's gradient comes back in its own dtype
        for key, p in model.named_parameters():
            assert got[f"grad:{key}"].dtype == p.dtype and got[f"grad:{key}"].shape == p.shape


def test_mlp_gradients_match_finite_differences_in_float64():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    model.to("float64")
    rng = rng_for("mlp-fd")
    x, dy = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    program = lucid.compile(model, lucid.placeholder((None, 3), "float64", name="x"))
    feeds = program.feeds((x, dy), {})
    grads = program.run(feeds)
    w_node = next(p for p in program.graph.inputs
                  if program.graph.node(p).key == "0.weight")
    for name, key in (("x", "grad:x"), (w_node, "grad:0.weight")):
        numeric = np.zeros_like(feeds[name])
        for idx in np.ndindex(numeric.shape):
            plus, minus = dict(feeds), dict(feeds)
            plus[name], minus[name] = feeds[name].copy(), feeds[name].copy()
            plus[name][idx] += 1e-6
            minus[name][idx] -= 1e-6
            numeric[idx] = np.sum((reference_run(program.graph, plus)["out"] -
                                   reference_run(program.graph, minus)["out"]) * dy) / 2e-6
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-6, atol=1e-8, err_msg=key)


def test_call_commits_running_stats_and_run_does_not():
    bn = nn.BatchNorm1d(2)
    program = lucid.compile(bn, lucid.placeholder((None, 2), name="x"))
    x = np.array([[1.0, 4.0], [3.0, 8.0]], np.float32)
    dy = np.ones_like(x)
    before = {k: v.copy() for k, v in bn.state_dict().items()}
    result = program.run(program.feeds((x, dy), {}))
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    np.testing.assert_allclose(result["running_mean"], [0.2, 0.6], rtol=1e-6)
    result = program(x, dy)
    np.testing.assert_allclose(bn.running_mean.data, [0.2, 0.6], rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * np.array([2.0, 8.0]), rtol=1e-6)
    assert int(bn.num_batches_tracked.data) == 1
    assert bn.running_mean.data.dtype == np.float32 and bn.running_mean.data.shape == (2,)
    program(x, dy)  # the bound buffers feed the next call
    np.testing.assert_allclose(bn.running_mean.data, [0.38, 1.14], rtol=1e-6)
    assert int(bn.num_batches_tracked.data) == 2
    np.testing.assert_array_equal(bn.weight.data, [1.0, 1.0])  # programs do not train


@pytest.mark.parametrize("ndim", [2, 3])
def test_forward_backward_split_gives_the_whole_step_gradients(ndim):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)) \
        if ndim == 2 else nn.BatchNorm1d(3, momentum=None)
    model.to("float64")
    rng = rng_for("split", ndim)
    shape = (5, 3) if ndim == 2 else (3, 3, 4)
    x = rng.normal(size=shape)
    placeholder = lucid.placeholder((None,) + shape[1:], "float64", name="x")
    program = lucid.compile(model, placeholder)
    dy = rng.normal(size=(5, 2) if ndim == 2 else shape)
    feeds = program.feeds((x, dy), {})
    whole = program.run(feeds)
    (seed,) = program.seeds
    forward, saved = program.run_forward({k: v for k, v in feeds.items() if k != seed})
    grads = program.run_backward(saved, {seed: dy})
    assert set(forward) | set(grads) == set(whole)
    assert all(k.startswith("grad:") for k in grads) and "out" in forward
    for key in whole:
        value = forward[key] if key in forward else grads[key]
        np.testing.assert_allclose(value, whole[key], rtol=1e-12, atol=1e-14, err_msg=key)
    dy2 = 2 * dy  # the saved residuals serve any upstream gradient: the gradient is linear in it
    twice = program.run_backward(saved, {seed: dy2})
    for key in grads:
        np.testing.assert_allclose(twice[key], 2 * grads[key], rtol=1e-12, atol=1e-14)





@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_backward_of_a_full_reduction_knows_the_batch_size(reduce):
    program = lucid.compile(lambda x: getattr(x, reduce)(),
                            lucid.placeholder((None, 3), "float64", name="x"))
    x = rng_for("reduce").normal(size=(4, 3))
    whole = program.run({"x": x, program.seeds[0]: np.array(2.0)})
    _, saved = program.run_forward({"x": x})
    grads = program.run_backward(saved, {program.seeds[0]: np.array(2.0)})
    expected = np.full((4, 3), 2.0 if reduce == "sum" else 2.0 / 12)
    np.testing.assert_allclose(whole["grad:x"], expected, rtol=1e-14)
    np.testing.assert_allclose(grads["grad:x"], expected, rtol=1e-14)


def test_backward_saves_only_what_it_needs():
    # No VJP term is built for an input that needs no gradient (here the constant 2.0).
    program = lucid.compile(lambda x: (x * 2.0).sum(), lucid.placeholder((None, 3), name="x"))
    assert program.graph.copy().remove_unused() == 0
    # d/dx sum(2x) = 2 reads nothing of x: only its batch size crosses to the backward.
    assert program.residuals == ["size_N"]


def test_integer_division_is_a_float_op():
    program = lucid.compile(lambda x: x / 2, lucid.placeholder((3,), "int64", name="x"),
                            mode="eval")
    got = assert_agree(program, {"x": np.array([1, 2, 3])})
    np.testing.assert_allclose(got["out"], [0.5, 1.0, 1.5])
    assert got["out"].dtype == np.float32


# ------------------------------------------------------------------------------- errors
@pytest.fixture
def bn_program():
    return lucid.compile(nn.BatchNorm1d(3), lucid.placeholder((None, 3), name="inp"))


@pytest.mark.parametrize("x, error, match", [
    (np.ones((4, 2), np.float32), ValueError, r"'inp' must have shape \(N, 3\)"),
    (np.ones((4, 3, 1), np.float32), ValueError, r"'inp' must have shape \(N, 3\)"),
    (np.ones((4, 3), np.float64), TypeError, "'inp' must have dtype float32"),
    (np.ones((4, 3), np.int64), TypeError, "'inp' must have dtype float32"),
])
def test_wrong_inputs_name_the_placeholder(bn_program, x, error, match):
    before = bn_program.bindings  # nothing is committed on failure
    state = [t.data.copy() for t in before.values()]
    with pytest.raises(error, match=match):
        bn_program(x, np.ones(x.shape, x.dtype))
    for t, s in zip(before.values(), state):
        np.testing.assert_array_equal(t.data, s)


def test_symbolic_size_must_agree_across_inputs():
    x, y = lucid.placeholder((None, 3), name="x"), lucid.placeholder((None, 3), name="y")
    program = lucid.compile(lambda x, y: x + y, x, y, mode="eval")
    with pytest.raises(ValueError, match="'y' must have shape .*N=4"):
        program(np.ones((4, 3), np.float32), np.ones((5, 3), np.float32))


def test_train_mode_needs_more_than_one_value_per_channel(bn_program):
    with pytest.raises(ValueError, match=r"more than 1 value per channel .*\(1, 3\)"):
        bn_program(np.ones((1, 3), np.float32), np.ones((1, 3), np.float32))
    assert int(bn_program.updates["num_batches_tracked"].data) == 0


@pytest.mark.parametrize("mode", ["test", "Train", None, ""])
def test_mode_must_be_train_or_eval(mode):
    with pytest.raises(ValueError, match="mode must be 'train' or 'eval'"):
        lucid.compile(nn.BatchNorm1d(2), lucid.placeholder((None, 2), name="x"), mode=mode)
