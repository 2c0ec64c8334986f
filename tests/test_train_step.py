"""The whole training step as one program: ``lucid.compile(loss_fn, ..., optimizer=opt)``.

Compared against the eager loop (``zero_grad``, ``loss.backward()``, ``opt.step()``,
itself checked against NumPy transcriptions of torch's rules in test_optim.py) and,
for a linear model whose gradients are known in closed form, against an independent
float64 NumPy transcription of forward, gradient and update.
"""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid import Tensor
from lucid.graph import Phase
from lucid.ops import REGISTRY
from lucid.transforms import DEFAULT, Pass

RNG = np.random.default_rng(3)
X = RNG.normal(size=(6, 16, 5))  # six batches of 16 rows, 5 features
Y = RNG.integers(0, 3, size=(6, 16))


def mlp(seed=0, bn=True, dropout=0.0):
    lucid.manual_seed(seed)
    layers = [nn.Linear(5, 8)] + ([nn.BatchNorm1d(8)] if bn else []) + [nn.ReLU()]
    layers += [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(8, 3)).double()


def placeholders():
    return (lucid.placeholder((None, 5), "float64", name="x"),
            lucid.placeholder((None,), "int64", name="y"))


def eager_steps(model, opt, batches):
    for i in batches:
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(X[i])), Tensor(Y[i]))
        loss.backward()
        opt.step()
    return loss.item()


def compiled(model, opt):
    return lucid.compile(lambda x, y: F.cross_entropy(model(x), y), *placeholders(),
                         optimizer=opt)


def snapshot(model, opt):
    """Parameters, buffers and the optimizer's state_dict, copied."""
    state = {k: v.copy() for k, v in model.state_dict().items()}
    saved = opt.state_dict()
    return state, saved


def assert_same(a, b, rtol=1e-12, atol=1e-15):
    (ma, oa), (mb, ob) = a, b
    assert ma.keys() == mb.keys()
    for k in ma:
        np.testing.assert_allclose(ma[k], mb[k], rtol=rtol, atol=atol, err_msg=k)
    assert oa["param_groups"] == ob["param_groups"]
    assert oa["state"].keys() == ob["state"].keys()
    for i in oa["state"]:
        assert oa["state"][i].keys() == ob["state"][i].keys()
        for k, v in oa["state"][i].items():
            np.testing.assert_allclose(v, ob["state"][i][k], rtol=rtol, atol=atol,
                                       err_msg=f"state {i} {k}")


OPTIMIZERS = {
    "sgd": lambda ps: lucid.optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: lucid.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.2),
    "sgd_nesterov": lambda ps: lucid.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
    "sgd_decay": lambda ps: lucid.optim.SGD(ps, lr=0.1, momentum=0.5, weight_decay=0.01),
    "sgd_maximize": lambda ps: lucid.optim.SGD(ps, lr=0.01, weight_decay=0.1, maximize=True),
    "adam": lambda ps: lucid.optim.Adam(ps, lr=0.01),
    "adam_l2": lambda ps: lucid.optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), weight_decay=0.1),
    "amsgrad": lambda ps: lucid.optim.Adam(ps, lr=0.01, amsgrad=True),
    "adamw": lambda ps: lucid.optim.AdamW(ps, lr=0.01),
    "adamw_amsgrad_max": lambda ps: lucid.optim.AdamW(ps, lr=0.01, amsgrad=True, maximize=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_compiled_step_equals_the_eager_loop(name):
    steps = 7
    m1, m2 = mlp(), mlp()
    o1, o2 = OPTIMIZERS[name](m1.parameters()), OPTIMIZERS[name](m2.parameters())
    eager_loss = eager_steps(m1, o1, [i % 6 for i in range(steps)])
    step = compiled(m2, o2)
    for i in range(steps):
        loss = step(X[i % 6], Y[i % 6])
    assert loss.shape == () and abs(loss - eager_loss) <= 1e-12 * abs(eager_loss)
    assert_same(snapshot(m1, o1), snapshot(m2, o2))
    assert o2.state_dict()["state"] and all(
        s.get("step", steps) == steps for s in o2.state.values())


def test_two_param_groups_with_their_own_learning_rates():
    def make(model):
        first, last = model[0], model[-1]
        rest = [p for p in model.parameters() if all(p is not q for q in first.parameters())
                and all(p is not q for q in last.parameters())]
        return lucid.optim.SGD([{"params": first.parameters(), "lr": 0.2},
                                {"params": last.parameters(), "momentum": 0.9},
                                {"params": rest, "lr": 0.01}], lr=0.05)
    m1, m2 = mlp(), mlp()
    o1, o2 = make(m1), make(m2)
    eager_steps(m1, o1, range(6))
    step = compiled(m2, o2)
    for i in range(6):
        step(X[i], Y[i])
    assert_same(snapshot(m1, o1), snapshot(m2, o2))


def test_dropout_masks_follow_the_same_keys_as_the_eager_forward():
    """Both draw one key per step from lucid's generator at call time: the same seed
    before each step gives the same masks, so the same parameters."""
    m1, m2 = mlp(dropout=0.3), mlp(dropout=0.3)
    o1, o2 = lucid.optim.Adam(m1.parameters(), lr=0.01), lucid.optim.Adam(m2.parameters(), lr=0.01)
    step = compiled(m2, o2)
    for i in range(5):
        lucid.manual_seed(100 + i)
        eager_steps(m1, o1, [i])
        lucid.manual_seed(100 + i)
        step(X[i], Y[i])
    assert_same(snapshot(m1, o1), snapshot(m2, o2))
    lucid.manual_seed(7)  # a different seed, a different mask: the parameters move apart
    eager_steps(m1, o1, [5])
    lucid.manual_seed(8)
    step(X[5], Y[5])
    assert not np.allclose(m1[0].weight.data, m2[0].weight.data, rtol=1e-9, atol=0)


def test_eager_and_compiled_steps_mix_and_state_dict_carries_over():
    m1, m2 = mlp(), mlp()
    o1 = lucid.optim.Adam(m1.parameters(), lr=0.01, amsgrad=True)
    o2 = lucid.optim.Adam(m2.parameters(), lr=0.01, amsgrad=True)
    eager_steps(m1, o1, range(6))
    eager_steps(m2, o2, [0, 1])
    step = compiled(m2, o2)
    step(X[2], Y[2])
    step(X[3], Y[3])
    saved = o2.state_dict()
    o3 = lucid.optim.Adam(m2.parameters(), lr=0.01, amsgrad=True)
    o3.load_state_dict(saved)
    eager_steps(m2, o3, [4, 5])
    assert_same(snapshot(m1, o1), snapshot(m2, o3))


def test_a_new_learning_rate_takes_effect_without_recompiling():
    m1, m2 = mlp(), mlp()
    o1, o2 = lucid.optim.Adam(m1.parameters(), lr=0.01), lucid.optim.Adam(m2.parameters(), lr=0.01)
    step = compiled(m2, o2)
    source, fn = step.source, step.step_fn
    for i, lr in enumerate([0.01, 0.005, 0.02, 0.001]):
        o1.param_groups[0]["lr"] = o2.param_groups[0]["lr"] = lr
        eager_steps(m1, o1, [i])
        step(X[i], Y[i])
    assert step.source is source and step.step_fn is fn
    assert_same(snapshot(m1, o1), snapshot(m2, o2))


def test_a_changed_fixed_setting_is_refused_and_changes_nothing():
    model = mlp()
    opt = lucid.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = compiled(model, opt)
    step(X[0], Y[0])
    before = snapshot(model, opt)
    opt.param_groups[0]["momentum"] = 0.5
    with pytest.raises(ValueError, match="compile the step again"):
        step(X[1], Y[1])
    opt.param_groups[0]["momentum"] = 0.9
    assert_same(before, snapshot(model, opt), rtol=0)


def test_independent_numpy_transcription_of_a_linear_regression_step():
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(5, 8, 3)), rng.normal(size=(5, 8, 2))
    lucid.manual_seed(1)
    model = nn.Linear(3, 2).double()
    w, b = model.weight.data.copy(), model.bias.data.copy()
    opt = lucid.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    step = lucid.compile(lambda x, y: F.mse_loss(model(x), y),
                         lucid.placeholder((None, 3), "float64", name="x"),
                         lucid.placeholder((None, 2), "float64", name="y"), optimizer=opt)
    state = {"w": [0 * w, 0 * w], "b": [0 * b, 0 * b]}
    for t, (x, y) in enumerate(zip(xs, ys), 1):
        loss = step(x, y)
        r = x @ w.T + b - y
        np.testing.assert_allclose(loss, (r ** 2).mean(), rtol=1e-13)
        grads = {"w": 2 * r.T @ x / r.size, "b": 2 * r.sum(0) / r.size}
        new = {}
        for k, value in (("w", w), ("b", b)):
            m, v = state[k]
            value = value * (1 - 0.05 * 0.1)
            m = 0.9 * m + 0.1 * grads[k]
            v = 0.999 * v + 0.001 * grads[k] ** 2
            new[k] = value - 0.05 / (1 - 0.9 ** t) * m / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
            state[k] = [m, v]
        w, b = new["w"], new["b"]
    np.testing.assert_allclose(model.weight.data, w, rtol=1e-12)
    np.testing.assert_allclose(model.bias.data, b, rtol=1e-12)
    np.testing.assert_allclose(opt.state[model.weight]["exp_avg_sq"], state["w"][1], rtol=1e-12)
    assert opt.state[model.bias]["step"] == 5


def test_a_parameter_closed_over_outside_a_module_is_trained():
    w = nn.Parameter(np.array([1.0, -2.0]), dtype="float64")
    opt = lucid.optim.SGD([w], lr=0.25)
    step = lucid.compile(lambda x: ((x * w).sum() - 1) ** 2, lucid.placeholder((2,), "float64",
                                                                            name="x"),
                         optimizer=opt)
    step(np.array([1.0, 1.0]))  # loss (w0 + w1 - 1)^2 = 4, gradient 2 * (-2) * [1, 1]
    np.testing.assert_allclose(w.data, [2.0, -1.0], rtol=1e-15)


def test_a_failing_call_changes_nothing():
    model = mlp(dropout=0.2)
    opt = lucid.optim.Adam(model.parameters(), lr=0.01)
    step = compiled(model, opt)
    step(X[0], Y[0])
    before = snapshot(model, opt)
    with pytest.raises(ValueError):
        step(X[1][:, :4], Y[1])  # wrong feature count
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        step(X[1][:1], Y[1][:1])  # BatchNorm's run-time check
    with pytest.raises(TypeError):
        step(X[1].astype(np.float32), Y[1])
    assert_same(before, snapshot(model, opt), rtol=0)


def test_errors_are_clear():
    model = mlp()
    x, y = placeholders()
    opt = lucid.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scalar"):
        lucid.compile(lambda a, b: F.cross_entropy(model(a), b, reduction="none"), x, y,
                      optimizer=opt)
    with pytest.raises(ValueError, match="leave mode at its default"):
        lucid.compile(lambda a, b: F.cross_entropy(model(a), b), x, y, optimizer=opt,
                      mode="eval")
    with pytest.raises(TypeError, match="lucid.optim"):
        lucid.compile(lambda a, b: F.cross_entropy(model(a), b), x, y, optimizer=object())
    other = nn.Linear(2, 2).double()
    both = lucid.optim.SGD(model.parameters() + other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"does not use"):
        lucid.compile(lambda a, b: F.cross_entropy(model(a), b), x, y, optimizer=both)
    assert not both.state and all(o is None for o in (other.weight.grad, other.bias.grad))
    with pytest.raises(ValueError, match="leave mode at its default"):
        lucid.compile(lambda a, b: F.cross_entropy(model(a), b), x, y, optimizer=opt,
                      backward=False)
    with pytest.raises(ValueError, match="leave mode at its default"):
        lucid.compile(lambda a, b: F.cross_entropy(model(a), b), x, y, optimizer=opt,
                      wrt=["x"])
    with pytest.raises(ValueError, match="several outputs"):
        lucid.compile(lambda a, b: (F.cross_entropy(model(a), b), a.sum()), x, y, optimizer=opt)


def test_listing_dot_and_source_show_the_optimizer_phase():
    model = mlp()
    opt = lucid.optim.Adam(model.parameters(), lr=0.01)
    step = compiled(model, opt)
    step.graph.lint(REGISTRY)
    listing = str(step.graph)
    assert "\noptimizer:\n" in listing
    assert listing.index("\nbackward:") < listing.index("\noptimizer:")
    phases = {d.phase for d in step.graph.nodes()}
    assert Phase.OPTIMIZER in phases and Phase.UPDATE in phases
    assert "hyper" in listing and "state" in listing and "0.weight.exp_avg_sq" in listing
    dot = step.graph.to_dot()
    assert "optimizer step" in dot and "purple: optimizer step" in dot
    assert "optimizer step" in step.graph.to_dot(detail="module")
    assert step.user_inputs() == ["x", "y"]
    # the update is fused: one statement computes the new weight from the moments
    line = next(s for s in step.source.splitlines() if "np.sqrt(" in s and "0_weight_step_size" in s)
    assert "= " in line and "0_weight" in line.split("=", 1)[1]


class WithLoss(nn.Module):
    """A module whose forward returns the loss: compile takes it as the loss function."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        return F.cross_entropy(self.model(x), y, label_smoothing=0.1)


def test_a_module_returning_the_loss_in_float32_keeps_its_dtypes():
    m1, m2 = mlp().float(), mlp().float()
    o1 = lucid.optim.AdamW(m1.parameters(), lr=0.01, amsgrad=True)
    o2 = lucid.optim.AdamW(m2.parameters(), lr=0.01, amsgrad=True)
    step = lucid.compile(WithLoss(m2), lucid.placeholder((None, 5), name="x"),
                         lucid.placeholder((None,), "int64", name="y"), optimizer=o2)
    for i in range(5):
        o1.zero_grad()
        F.cross_entropy(m1(Tensor(X[i].astype(np.float32))), Tensor(Y[i]),
                        label_smoothing=0.1).backward()
        o1.step()
        loss = step(X[i].astype(np.float32), Y[i])
    assert loss.dtype == np.float32
    for t in m2.parameters() + list(o2.state[m2[0].weight].values())[1:]:
        assert t.dtype == np.float32
    assert_same(snapshot(m1, o1), snapshot(m2, o2), rtol=1e-4, atol=1e-6)  # float32 rounding


def test_lists_and_keyword_inputs_take_the_general_path_to_the_same_step():
    m1, m2 = mlp(), mlp()
    o1 = lucid.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9)
    o2 = lucid.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    eager_steps(m1, o1, range(3))
    step = compiled(m2, o2)
    step(X[0].tolist(), Y[0].tolist())
    step(x=X[1], y=Y[1])
    loss = step(X[2], Y[2])
    assert isinstance(loss, np.float64)
    assert_same(snapshot(m1, o1), snapshot(m2, o2))


def test_every_pass_of_the_training_step_leaves_a_well_formed_graph():
    seen = []

    def lint(graph, options):
        graph.lint(REGISTRY)
        seen.append({d.phase for d in graph.nodes()})
        return graph
    passes = DEFAULT.with_pass(Pass("lint", lint), after="autodiff")
    for after in ("cse", "dce"):
        passes = passes.with_pass(Pass(f"lint_{after}", lint), after=after)
    model = mlp()
    step = lucid.compile(lambda x, y: F.cross_entropy(model(x), y), *placeholders(),
                         optimizer=lucid.optim.SGD(model.parameters(), lr=0.1), passes=passes)
    assert [r.name for r in step.passes] == ["autodiff", "seed", "optimizer", "lint", "cse",
                                             "lint_cse", "dce", "lint_dce"]
    assert len(seen) == 3 and all(Phase.OPTIMIZER in phases for phases in seen)
    assert not any(step.graph.node(p).role == "grad" for p in step.graph.inputs)  # seed is 1
