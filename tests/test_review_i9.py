"""Regression tests for what the independent review of the training work found."""
from __future__ import annotations

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid import Tensor
from lucid.data import DataLoader, RandomSampler, TensorDataset
from lucid.nn import init

X = np.random.default_rng(0).standard_normal((6, 3))
Y = np.array([0, 1, 2, 0, 1, 2])


def _model():
    lucid.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4, 3)).to("float64")


def _step(model, opt):
    return lucid.compile(lambda v, t: F.cross_entropy(model(v), t),
                         lucid.placeholder((None, 3), "float64", name="x"),
                         lucid.placeholder((None,), "int64", name="y"), optimizer=opt)


def test_the_compiled_step_runs_modules_in_their_own_mode_as_the_eager_loop_does():
    """After model.eval(): running statistics normalise and stay, dropout is the identity."""
    eager, compiled = _model(), _model()
    eager.eval(), compiled.eval()
    o1 = lucid.optim.SGD(eager.parameters(), lr=0.1, momentum=0.9)
    o2 = lucid.optim.SGD(compiled.parameters(), lr=0.1, momentum=0.9)
    step = _step(compiled, o2)
    assert "uniform" not in {n.op for n in step.graph.nodes()}  # no dropout in eval
    for _ in range(3):
        o1.zero_grad()
        loss = F.cross_entropy(eager(Tensor(X)), Tensor(Y))
        loss.backward()
        o1.step()
        np.testing.assert_allclose(step(X, Y), loss.item(), rtol=1e-12)
    for (k, a), (_, b) in zip(eager.state_dict().items(), compiled.state_dict().items()):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, err_msg=k)
    np.testing.assert_array_equal(compiled[1].running_mean.data, np.zeros(4))  # untouched


def test_a_mode_changed_after_compiling_is_refused_and_changes_nothing():
    model = _model()
    opt = lucid.optim.Adam(model.parameters(), lr=0.01)
    step = _step(model, opt)
    step(X, Y)
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    model.eval()
    with pytest.raises(ValueError, match="traced in train mode and is now in eval mode"):
        step(X, Y)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), before[k], err_msg=k)
    model.train()
    step(X, Y)  # back in the traced mode: runs again


def test_a_fixed_setting_edited_in_place_is_noticed():
    lucid.manual_seed(0)
    model = nn.Linear(3, 3).to("float64")
    opt = lucid.optim.Adam([{"params": model.parameters(), "betas": [0.9, 0.999]}], lr=0.1)
    step = _step(model, opt)
    step(X, Y)
    opt.param_groups[0]["betas"][0] = 0.5  # the same list object, edited
    with pytest.raises(ValueError, match="fixed settings"):
        step(X, Y)


def test_max_and_min_along_a_dim_return_values_and_indices_by_name():
    x = Tensor([[1.0, 3.0, 2.0], [4.0, 0.0, 4.0]], dtype="float64", requires_grad=True)
    top = x.max(1)
    assert top.values.tolist() == [3.0, 4.0] and top.indices.tolist() == [1, 0]
    values, indices = x.min(dim=1, keepdim=True)
    assert values.tolist() == [[1.0], [0.0]] and indices.tolist() == [[0], [1]]
    top.values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]  # to the returned index only


def test_step_takes_a_closure_and_returns_its_loss():
    lucid.manual_seed(0)
    model = nn.Linear(3, 3).to("float64")
    opt = lucid.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.data.copy()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(X)), Tensor(Y))
        loss.backward()
        return loss

    with lucid.no_grad():  # torch's step(closure) enables grad for the closure
        loss = opt.step(closure)
    expected = before - 0.1 * model.weight.grad
    np.testing.assert_allclose(model.weight.data, expected, rtol=1e-12)
    assert loss.item() > 0 and opt.step() is None


def test_init_draws_from_a_lucid_generator():
    w = nn.Linear(3, 2).weight
    g = lucid.Generator()
    g.manual_seed(5)
    init.kaiming_uniform_(w, generator=g)
    first = w.data.copy()
    g.manual_seed(5)
    init.kaiming_uniform_(w, generator=g)
    np.testing.assert_array_equal(w.data, first)
    with pytest.raises(TypeError, match="generator"):
        init.normal_(w, generator="seed")


def test_shuffling_an_empty_dataset_is_refused_when_built():
    empty = TensorDataset(Tensor(np.zeros((0, 2))))
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(empty)
    with pytest.raises(ValueError, match="num_samples"):
        DataLoader(empty, shuffle=True)
    assert list(DataLoader(empty)) == []  # in order, an empty dataset is just empty


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_follow_torch_on_ties_and_nan(name):
    """torch's rule: the larger (smaller) operand gets the gradient, a tie half each, a NaN
    on either side NaN with the whole gradient to both."""
    a = np.array([1.0, 5.0, 2.0, np.nan, 0.0])
    b = np.array([3.0, 4.0, 2.0, 1.0, np.nan])
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = getattr(lucid, name)(x, y)
    (out * Tensor(np.arange(1.0, 6.0))).sum().backward()
    pick = np.maximum if name == "maximum" else np.minimum
    np.testing.assert_array_equal(out.data, pick(a, b))
    first = (a > b) if name == "maximum" else (a < b)
    second = (a < b) if name == "maximum" else (a > b)
    nan = np.isnan(a) | np.isnan(b)
    share = np.where(nan, 1.0, np.where(a == b, 0.5, 0.0))
    g = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(x.grad, g * (first + share))
    np.testing.assert_array_equal(y.grad, g * (second + share))
    same = (x.max(y) if name == "maximum" else x.min(y)).data  # torch.max(input, other)
    np.testing.assert_array_equal(same, pick(a, b))


def test_amax_and_amin_over_an_empty_dim_tuple_reduce_every_dim():
    x = Tensor([[1.0, 5.0], [3.0, 2.0]], dtype="float64")
    assert x.amin(dim=()).tolist() == 1.0 and x.amax(dim=[]).tolist() == 5.0
    assert x.amax(dim=(), keepdim=True).tolist() == [[5.0]]


def test_frozen_parameters_are_skipped_as_torchs_step_skips_them():
    """A fine-tuning script: the optimizer holds every parameter, the first layer is frozen.
    The compiled step trains the rest exactly as the eager loop does and leaves the frozen
    ones (and their optimizer state) alone; unfreezing after compiling is refused."""
    eager, compiled = _model(), _model()
    for m in (eager, compiled):
        m[0].weight.requires_grad = False
        m[0].bias.requires_grad = False
    o1 = lucid.optim.Adam(eager.parameters(), lr=0.01)
    o2 = lucid.optim.Adam(compiled.parameters(), lr=0.01)
    frozen = compiled[0].weight.data.copy()
    step = _step(compiled, o2)
    for i in range(4):
        lucid.manual_seed(i)  # the same dropout masks on both sides
        o1.zero_grad()
        loss = F.cross_entropy(eager(Tensor(X)), Tensor(Y))
        loss.backward()
        o1.step()
        lucid.manual_seed(i)
        np.testing.assert_allclose(step(X, Y), loss.item(), rtol=1e-12)
    np.testing.assert_array_equal(compiled[0].weight.data, frozen)
    assert compiled[0].weight not in o2.state and len(o2.state) == len(o1.state) == 4
    np.testing.assert_allclose(compiled[4].weight.data, eager[4].weight.data, rtol=1e-12)
    compiled[0].weight.requires_grad = True
    with pytest.raises(ValueError, match="requires_grad has changed"):
        step(X, Y)
    compiled[0].weight.requires_grad = False
    for p in compiled.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="no parameter that requires grad"):
        _step(compiled, lucid.optim.SGD(compiled.parameters(), lr=0.1))
