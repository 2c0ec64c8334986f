"""ConstantLR, SequentialLR and ChainedScheduler against torch's rules written out as closed forms."""
import math
import warnings

import pytest

import lucid
from lucid.optim.lr_scheduler import (ChainedScheduler, ConstantLR, CosineAnnealingLR,
                                      ExponentialLR, LinearLR, SequentialLR, StepLR)


def optimizer(*lrs):
    groups = [{"params": [lucid.nn.Parameter([1.0])], "lr": lr} for lr in lrs]
    return lucid.optim.SGD(groups, lr=lrs[0])


def rates(opt, sched, epochs):
    out = [sched.get_last_lr()]
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr())
        assert out[-1] == [g["lr"] for g in opt.param_groups]
    return out


def test_constant_lr_scales_then_restores():
    opt = optimizer(0.1, 0.3)
    got = rates(opt, ConstantLR(opt, factor=0.25, total_iters=3), 6)
    for epoch, row in enumerate(got):
        want = [b * (0.25 if epoch < 3 else 1.0) for b in (0.1, 0.3)]
        assert row == pytest.approx(want, rel=1e-15)


def test_constant_lr_closed_form_with_epoch_warns():
    opt = optimizer(0.2)
    sched = ConstantLR(opt, factor=0.5, total_iters=4)
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(6)
    assert sched.get_last_lr() == [0.2]
    with pytest.warns(UserWarning):
        sched.step(2)
    assert sched.get_last_lr() == [0.1]


@pytest.mark.parametrize("factor", [-0.1, 1.5])
def test_constant_lr_factor_range(factor):
    with pytest.raises(ValueError, match="between 0 and 1"):
        ConstantLR(optimizer(0.1), factor=factor)


def test_constant_lr_total_iters_checked():
    with pytest.raises(ValueError, match="total_iters"):
        ConstantLR(optimizer(0.1), total_iters=-1)
    with pytest.raises(ValueError, match="total_iters"):
        ConstantLR(optimizer(0.1), total_iters=2.5)


def test_sequential_warmup_then_cosine():
    base = 0.4
    opt = optimizer(base)
    warm = LinearLR(opt, start_factor=0.1, total_iters=3)
    cos = CosineAnnealingLR(opt, T_max=5)
    got = [r[0] for r in rates(opt, SequentialLR(opt, [warm, cos], milestones=[3]), 9)]
    want = [base * (0.1 + 0.9 * e / 3) for e in range(3)] + \
        [base * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(7)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_sequential_three_stages_each_from_its_epoch_zero():
    opt = optimizer(1.0, 2.0)
    sched = SequentialLR(opt, [ConstantLR(opt, factor=0.5, total_iters=10),
                               ExponentialLR(opt, gamma=0.5), StepLR(opt, step_size=2, gamma=0.1)],
                         milestones=[2, 5])
    got = rates(opt, sched, 8)
    factors = [0.5, 0.5, 1, 0.5, 0.25, 1, 1, 0.1, 0.1]
    for row, f in zip(got, factors):
        assert row == pytest.approx([f * 1.0, f * 2.0], rel=1e-12)


def test_chained_multiplies_the_rules():
    opt = optimizer(1.0)
    sched = ChainedScheduler([ConstantLR(opt, factor=0.5, total_iters=3),
                              ExponentialLR(opt, gamma=0.9)])
    got = [r[0] for r in rates(opt, sched, 6)]
    want = [(0.5 if e < 3 else 1.0) * 0.9 ** e for e in range(7)]
    assert got == pytest.approx(want, rel=1e-12)


def test_sequential_state_dict_resumes_the_same_rates():
    def build():
        opt = optimizer(0.5)
        return opt, SequentialLR(opt, [LinearLR(opt, 0.2, total_iters=2),
                                       ExponentialLR(opt, gamma=0.7)], milestones=[3])
    opt, sched = build()
    for _ in range(4):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert [s["last_epoch"] for s in state["_schedulers"]] == [2, 1]
    opt2, sched2 = build()
    sched2.load_state_dict(state)
    assert "_schedulers" in state  # loading leaves the caller's dict whole
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    assert rates(opt, sched, 4) == rates(opt2, sched2, 4)


def test_errors_name_the_problem():
    opt, other = optimizer(0.1), optimizer(0.1)
    a, b = ExponentialLR(opt, 0.9), ExponentialLR(other, 0.9)
    with pytest.raises(ValueError, match="at least one scheduler"):
        SequentialLR(opt, [], milestones=[])
    with pytest.raises(ValueError, match="same optimizer"):
        SequentialLR(opt, [a, b], milestones=[2])
    with pytest.raises(ValueError, match="number of milestones"):
        SequentialLR(opt, [a, ExponentialLR(opt, 0.5)], milestones=[1, 2])
    with pytest.raises(ValueError, match="increase"):
        SequentialLR(opt, [a, ExponentialLR(opt, 0.5), ExponentialLR(opt, 0.5)],
                     milestones=[3, 3])
    with pytest.raises(TypeError, match="not a learning-rate scheduler"):
        ChainedScheduler([a, "b"])
    with pytest.raises(TypeError, match="ChainedScheduler at index 1"):
        SequentialLR(opt, [a, ChainedScheduler([ExponentialLR(opt, 0.5)])], milestones=[2])
    with pytest.raises(ValueError, match="same optimizer"):
        ChainedScheduler([a], optimizer=other)


def test_failed_construction_leaves_the_rates():
    opt = optimizer(0.1)
    a = ExponentialLR(opt, 0.5)
    opt.step()
    a.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError):
            SequentialLR(opt, [a, ExponentialLR(opt, 0.5)], milestones=[1, 2])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
