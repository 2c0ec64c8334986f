"""Schedulers made of schedulers, as torch's: ``SequentialLR`` hands over from one to the next at
milestones; ``ChainedScheduler`` steps several at once, each multiplying what the others wrote."""
from __future__ import annotations

import bisect
import numbers

from .lr_base import LRScheduler


def _check_schedulers(kind, schedulers, optimizer):
    """The schedulers as a list, each a scheduler of ``optimizer`` (the first one's when None)."""
    if isinstance(schedulers, LRScheduler) or not hasattr(schedulers, "__iter__"):
        raise TypeError(f"{kind} expects a list of schedulers, got {type(schedulers).__name__}")
    schedulers = list(schedulers)
    if not schedulers:
        raise ValueError(f"{kind} expects at least one scheduler, but got no scheduler.")
    for i, scheduler in enumerate(schedulers):
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(f"{kind}: the scheduler at index {i} is a "
                            f"{type(scheduler).__name__}, not a learning-rate scheduler")
    optimizer = schedulers[0].optimizer if optimizer is None else optimizer
    for i, scheduler in enumerate(schedulers):
        if scheduler.optimizer is not optimizer:
            raise ValueError(f"{kind} expects all schedulers to belong to the same optimizer, but "
                             f"the {type(scheduler).__name__} at index {i} has another one")
    return schedulers, optimizer


class _Composite(LRScheduler):
    """The state dict of a scheduler of schedulers: its own attributes and each one's."""

    def get_lr(self):
        """The rates the schedulers last wrote."""
        return self._current()

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("_schedulers")
        self.__dict__.update(state)
        for scheduler, sub in zip(self._schedulers, saved):
            scheduler.load_state_dict(sub)


class SequentialLR(_Composite):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` from its epoch 0,
    and so on: torch's ``SequentialLR`` (warm-up then decay, say).

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import ConstantLR, ExponentialLR, SequentialLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=1.0)
    >>> warm = ConstantLR(opt, factor=0.5, total_iters=2)
    >>> decay = ExponentialLR(opt, gamma=0.5)
    >>> sched = SequentialLR(opt, [warm, decay], milestones=[2])
    >>> rates = [sched.get_last_lr()[0]]
    >>> for _ in range(4):
    ...     opt.step(); sched.step(); rates.append(sched.get_last_lr()[0])
    >>> rates
    [0.5, 0.5, 1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        schedulers, optimizer = _check_schedulers("SequentialLR", schedulers, optimizer)
        milestones = list(milestones)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("Sequential Schedulers expects number of schedulers provided to be one "
                             "more than the number of milestone points, but got number of "
                             f"schedulers {len(schedulers)} and the number of milestones to be "
                             f"equal to {len(milestones)}")
        if any(isinstance(m, bool) or not isinstance(m, numbers.Integral) for m in milestones):
            raise TypeError(f"SequentialLR milestones must be ints, got {milestones!r}")
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"SequentialLR milestones must increase, got {milestones!r}")
        for i, scheduler in enumerate(schedulers[1:], 1):
            if isinstance(scheduler, ChainedScheduler):  # torch fails at the milestone
                raise TypeError(f"SequentialLR cannot start the ChainedScheduler at index {i} at "
                                "its milestone: it has no epoch of its own")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral):
            raise TypeError(f"last_epoch must be an int, got {type(last_epoch).__name__}")
        if any("initial_lr" not in group for group in optimizer.param_groups):
            raise KeyError("SequentialLR needs 'initial_lr' in every parameter group (set by its "
                           "schedulers when they were built)")
        self._schedulers, self._milestones = schedulers, milestones
        self.last_epoch = int(last_epoch) + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:  # undo the schedulers' own first steps
            group["lr"] = group["initial_lr"]
        self._undo_first_steps(self)
        first = self._schedulers[bisect.bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def _undo_first_steps(self, scheduler):
        for sub in getattr(scheduler, "_schedulers", ()):
            if hasattr(sub, "_schedulers"):
                self._undo_first_steps(sub)
            else:
                sub.last_epoch -= 1

    def step(self):
        """Advance one epoch: the scheduler whose stretch this is steps (at a milestone, the
        next one starts from its epoch 0)."""
        self.last_epoch += 1
        index = bisect.bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Step every scheduler in ``schedulers`` at each ``step()``, in order: torch's
    ``ChainedScheduler`` (the rules that multiply the current rate compose).

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import ChainedScheduler, ConstantLR, ExponentialLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=1.0)
    >>> sched = ChainedScheduler([ConstantLR(opt, factor=0.5, total_iters=2),
    ...                           ExponentialLR(opt, gamma=0.5)])
    >>> rates = [sched.get_last_lr()[0]]
    >>> for _ in range(3):
    ...     opt.step(); sched.step(); rates.append(sched.get_last_lr()[0])
    >>> rates
    [0.5, 0.25, 0.25, 0.125]
    """

    def __init__(self, schedulers, optimizer=None):
        self._schedulers, self.optimizer = _check_schedulers("ChainedScheduler", schedulers,
                                                             optimizer)
        self._last_lr = self._current()

    def step(self):
        """Step each scheduler, in order."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = self._current()
