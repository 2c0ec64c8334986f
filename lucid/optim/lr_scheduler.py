"""Learning-rate schedulers, as ``torch.optim.lr_scheduler``: each ``step()`` writes a new
``group["lr"]`` into every parameter group of the optimizer.

The values follow torch's own (recursive, "chainable") update rules, not
only their closed forms: a schedule that multiplies the current ``lr`` does
so here too, so two schedulers on one optimizer compose as in torch, and
the floating-point values match torch's. ``step(epoch)`` (deprecated in
torch) uses the closed form where torch has one.

A compiled training step reads ``group["lr"]`` at every call, so a new rate
takes effect without recompiling.
"""
from __future__ import annotations

import bisect
import collections
import math
import numbers
import types

from .lr_base import LRScheduler, _positive_int, _real
from .lr_chain import ChainedScheduler, SequentialLR

__all__ = ["LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR",
           "ConstantLR", "CosineAnnealingLR", "SequentialLR", "ChainedScheduler"]


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(epoch)``; ``lr_lambda`` is one function or one per group.

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import LambdaLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=0.5)
    >>> sched = LambdaLR(opt, lambda epoch: 0.5 ** epoch)
    >>> for _ in range(2):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.125]
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != groups:
                raise ValueError(f"Expected {groups} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * groups
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda must be callable, got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self):
        """As the base's, with each lambda's ``__dict__`` when it is a callable object (plain
        functions and lambdas are not saved), as torch's."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
                               for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("lr_lambdas")
        self.__dict__.update(state)
        for fn, attrs in zip(self.lr_lambdas, saved):
            if attrs is not None:
                fn.__dict__.update(attrs)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs.

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import StepLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> rates = []
    >>> for _ in range(5):
    ...     opt.step(); sched.step(); rates.append(sched.get_last_lr()[0])
    >>> rates
    [1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _positive_int("step_size", step_size)
        self.gamma = _real("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each epoch in ``milestones`` (by ``gamma ** n`` at
    a milestone listed ``n`` times).

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import MultiStepLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=1.0)
    >>> sched = MultiStepLR(opt, milestones=[1, 3, 3], gamma=0.5)
    >>> rates = []
    >>> for _ in range(4):
    ...     opt.step(); sched.step(); rates.append(sched.get_last_lr()[0])
    >>> rates
    [0.5, 0.5, 0.125, 0.125]
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, numbers.Integral):
                raise TypeError(f"milestones must be ints, got {m!r}")
        self.milestones = collections.Counter(int(m) for m in milestones)
        self.gamma = _real("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._current()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._current()]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect.bisect_right(milestones, self.last_epoch)
                for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch.

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import ExponentialLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=1.0)
    >>> sched = ExponentialLR(opt, gamma=0.5)
    >>> opt.step(); sched.step(); opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = _real("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:  # resuming: the first step must not move one epoch ahead
            return self._current()
        return [lr * self.gamma for lr in self._current()]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the rate by a factor going linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` epochs, then keep it.

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import LinearLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=1.0)
    >>> sched = LinearLR(opt, start_factor=0.5, total_iters=2)
    >>> rates = [sched.get_last_lr()[0]]
    >>> for _ in range(3):
    ...     opt.step(); sched.step(); rates.append(sched.get_last_lr()[0])
    >>> rates
    [0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if not 0 < _real("start_factor", start_factor) <= 1:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and "
                             "less or equal to 1.")
        if not 0 <= _real("end_factor", end_factor) <= 1:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = _positive_int("total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._current()]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._current()
        change = self.end_factor - self.start_factor
        factor = 1.0 + change / (self.total_iters * self.start_factor +
                                 (self.last_epoch - 1) * change)
        return [lr * factor for lr in self._current()]

    def _get_closed_form_lr(self):
        change = self.end_factor - self.start_factor
        return [base * (self.start_factor + change * min(self.total_iters, self.last_epoch) /
                        self.total_iters) for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """Multiply the rate by ``factor`` until epoch ``total_iters``, then give it back.

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import ConstantLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=1.0)
    >>> sched = ConstantLR(opt, factor=0.5, total_iters=2)
    >>> rates = [sched.get_last_lr()[0]]
    >>> for _ in range(3):
    ...     opt.step(); sched.step(); rates.append(sched.get_last_lr()[0])
    >>> rates
    [0.5, 0.5, 1.0, 1.0]
    """

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        if not 0 <= _real("factor", factor) <= 1:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        if isinstance(total_iters, bool) or not isinstance(total_iters, numbers.Integral) \
                or total_iters < 0:
            raise ValueError(f"total_iters must be a non-negative integer, got {total_iters!r}")
        self.factor, self.total_iters = factor, int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._current()]
        if self.last_epoch != self.total_iters:
            return self._current()
        return [lr * (1.0 / self.factor) for lr in self._current()]

    def _get_closed_form_lr(self):
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the rate from ``base_lr`` to ``eta_min`` along half a cosine over ``T = T_max``
    epochs (then back up, periodically), by torch's recursive rule

    ``lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T)) / (1 + cos(pi (t-1) / T))``

    which tracks ``eta_min + (base_lr - eta_min) * (1 + cos(pi t / T_max)) / 2`` and, as
    in torch, steps by ``(base_lr - eta_min) * (1 - cos(pi / T_max)) / 2`` where that
    ratio would divide by zero (at ``t = T_max + 1``, modulo ``2 T_max``).

    Examples
    --------
    >>> import lucid
    >>> from lucid.optim.lr_scheduler import CosineAnnealingLR
    >>> opt = lucid.optim.SGD([lucid.nn.Parameter([1.0])], lr=1.0)
    >>> sched = CosineAnnealingLR(opt, T_max=2)
    >>> rates = []
    >>> for _ in range(4):
    ...     opt.step(); sched.step(); rates.append(round(sched.get_last_lr()[0], 12))
    >>> rates
    [0.5, 0.0, 0.5, 1.0]
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803 (torch's)
        self.T_max = _real("T_max", T_max)  # torch takes a float period too
        if not self.T_max > 0:
            raise ValueError(f"T_max must be positive, got {T_max!r}")
        self.eta_min = _real("eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, period = self.last_epoch, self.T_max
        if self._is_initial:
            return self._current()
        if self._step_count == 1 and t > 0:  # resumed: start from the closed form
            return self._get_closed_form_lr()
        if (t - 1 - period) % (2 * period) == 0:
            return [lr + (base - self.eta_min) * (1 - math.cos(math.pi / period)) / 2
                    for base, lr in zip(self.base_lrs, self._current())]
        return [(1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
                * (lr - self.eta_min) + self.eta_min for lr in self._current()]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base - self.eta_min) *
                (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]
