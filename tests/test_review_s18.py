"""Findings of this session's review (issue 11 stop 18), each pinned against an independent
reference: tied weights (one Parameter in two modules) are one parameter, as in torch; the
sigmoid's gradient stays finite where the sigmoid saturates; Linear takes any leading axes."""
import numpy as np
import pytest
import sympy as sp

import lucid
import lucid.nn as nn
from lucid import Tensor
from lucid.ops import REGISTRY
from lucid.runtime import run as reference_run


def tied():
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight
    return nn.Sequential(first, nn.ReLU(), second), first, second


def reference_grads(x, w, b1, b2):
    """float64 gradients of sum(relu(x W^T + b1) W^T + b2), written from the maths: the
    tied W gets the sum of both uses."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    h = x @ w.T + b1
    r = np.maximum(h, 0)
    g = np.ones((len(x), 4))
    dh = (g @ w) * (h > 0)
    return {"w": g.T @ r + dh.T @ x, "b1": dh.sum(0), "b2": g.sum(0)}


def test_a_tied_weight_is_listed_once_and_kept_under_both_paths_in_the_state():
    model, first, second = tied()
    assert [k for k, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.bias"]
    assert len(model.parameters()) == 3
    assert [k for k, _ in model.named_parameters(remove_duplicate=False)] == \
        ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    model.load_state_dict(model.state_dict())  # both paths load into the one array


def test_a_tied_weight_gets_the_sum_of_both_uses_eager_compiled_and_in_one_step():
    model, first, second = tied()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    want = reference_grads(x, first.weight.data, first.bias.data, second.bias.data)
    model(Tensor(x)).sum().backward()
    np.testing.assert_allclose(first.weight.grad, want["w"], rtol=1e-5, atol=1e-5)
    assert second.weight.grad is first.weight.grad
    program = lucid.compile(model, lucid.placeholder((None, 4), name="x"), mode="train")
    got = program(x, np.ones((5, 4), np.float32))
    assert "grad:2.weight" not in got
    np.testing.assert_allclose(got["grad:0.weight"], want["w"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["grad:0.bias"], want["b1"], rtol=1e-5, atol=1e-5)
    before = first.weight.data.copy()
    lucid.optim.SGD(model.parameters(), lr=0.1).step()  # stepped once, not twice
    np.testing.assert_allclose(first.weight.data, before - 0.1 * want["w"], rtol=1e-5,
                               atol=1e-6)


def sigmoid_slope(x):
    """float64 d sigmoid / dx written from the maths in a form that cannot overflow."""
    e = np.exp(-np.abs(x.astype(np.float64)))
    return e / (1 + e) ** 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_sigmoid_gradient_stays_finite_where_sigmoid_saturates(dtype):
    # exp(-x)/(1+exp(-x))**2 is inf/inf = NaN once exp(-x) overflows (x < -88 in float32)
    x = np.array([-50, -89, -100, -800, -np.inf, -3, 0, 2, 50, 89, 800, np.inf], dtype)
    want = sigmoid_slope(x)
    with np.errstate(over="ignore"):
        t = Tensor(x, requires_grad=True)
        t.sigmoid().sum().backward()
        program = lucid.compile(nn.Sigmoid(), lucid.placeholder((None,), dtype, name="x"),
                                mode="train")
        compiled = program(x, np.ones_like(x))["grad:x"]
        reference = reference_run(program.graph, program.feeds((x, np.ones_like(x)), {}))
    for got in (np.asarray(t.grad), compiled, reference["grad:x"]):
        assert np.isfinite(got).all()
        # s (1 - s), as torch: 1 - s rounds to 0 for large x, so absolute error up to eps
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=np.finfo(dtype).eps)
        assert got[0] == pytest.approx(want[0], rel=1e-5)  # x = -50: 1.9e-22, kept


def test_the_stable_sigmoid_slope_is_the_derivative_sympy_gives():
    op = REGISTRY["sigmoid"]
    a = sp.Symbol("a", real=True)
    assert sp.simplify(op.partials[0] - sp.diff(op.expr, a)) == 0
    assert not op.partials[0].has(sp.Pow(1 + sp.exp(-a), -2))



@pytest.mark.parametrize("shape", [(6, 4), (2, 5, 4), (2, 3, 5, 4)])
def test_linear_takes_any_leading_axes_as_torch(shape):
    # torch's Linear maps (*, in) to (*, out): (batch, time, features) in sequence models
    linear = nn.Linear(4, 3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    w, b = linear.weight.data.astype(np.float64), linear.bias.data.astype(np.float64)
    y64 = x.astype(np.float64) @ w.T + b
    t = Tensor(x, requires_grad=True)
    y = linear(t)
    (y * y).sum().backward()
    g = 2 * y64  # d sum(y^2) / dy, from the maths
    np.testing.assert_allclose(y.data, y64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t.grad, g @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(linear.weight.grad, g.reshape(-1, 3).T @ x.reshape(-1, 4),
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(linear.bias.grad, g.reshape(-1, 3).sum(0), rtol=1e-5, atol=1e-4)


def test_linear_refuses_one_sample_without_a_batch_axis_and_a_wrong_width():
    linear = nn.Linear(4, 3)
    for bad in (np.ones(4, np.float32), np.ones((2, 5), np.float32)):
        with pytest.raises(ValueError, match=r"expected input of shape \(N, \.\.\., 4\)"):
            linear(Tensor(bad))


def test_sequential_items_are_replaced_sliced_and_appended_as_in_torch():
    seq = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    assert seq(Tensor(x)).shape == (3, 2)  # compiled once
    last = nn.Linear(4, 5)
    seq[-1] = last  # the program traced before must not be reused
    w, b = last.weight.data.astype(np.float64), last.bias.data.astype(np.float64)
    first = seq[0]
    h = np.maximum(x @ first.weight.data.T.astype(np.float64) + first.bias.data, 0)
    np.testing.assert_allclose(seq(Tensor(x)).data, h @ w.T + b, rtol=1e-5, atol=1e-5)
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 2 and tail[1] is last
    assert seq.append(nn.ReLU()) is seq and len(seq) == 4
    assert [k for k, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(IndexError, match="out of range"):
        seq[4] = nn.ReLU()
    with pytest.raises(TypeError, match="takes Modules"):
        seq[0] = 3
    assert seq[2] is last  # the failed assignments changed nothing


def test_named_parameters_takes_torchs_prefix_and_recurse():
    model, first, second = tied()
    assert [k for k, _ in model.named_parameters("net")] == \
        ["net.0.weight", "net.0.bias", "net.2.bias"]
    assert model.named_parameters(recurse=False) == [] and model.parameters(recurse=False) == []
    assert [k for k, _ in first.named_parameters(recurse=False)] == ["weight", "bias"]
    bn = nn.BatchNorm1d(3)
    assert [k for k, _ in bn.named_buffers(prefix="bn")] == \
        ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]


def test_a_compiled_program_refuses_to_run_on_a_parameter_its_module_replaced():
    # the program binds the tensors it traced: after m[2].weight = ... it would read the old
    # one, silently (review); now it says so, and an unrelated attribute changes nothing
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3))
    x, g = np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)
    program = lucid.compile(model, lucid.placeholder((None, 3), name="x"), mode="train")
    opt = lucid.optim.SGD(model.parameters(), lr=0.1)
    step = lucid.compile(lambda v: model(v).sum(), lucid.placeholder((None, 3), name="x"),
                         optimizer=opt)
    first = program(x, g)["out"]
    model.note = "anything"  # an attribute no program reads
    np.testing.assert_array_equal(program(x, g)["out"], first)
    step(x)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    model[2].weight = model[0].weight  # tie: the program's 2.weight is no longer the model's
    for run in (lambda: program(x, g), lambda: program.run(program.feeds((x, g), {})),
                lambda: step(x)):
        with pytest.raises(ValueError, match="Linear.weight was replaced"):
            run()
    after = model.state_dict()
    assert all(np.array_equal(after[k], before[k]) for k in ("0.weight", "0.bias", "2.bias"))
    again = lucid.compile(model, lucid.placeholder((None, 3), name="x"), mode="train")
    assert "grad:2.weight" not in again(x, g)  # compiled again: the tie is seen
