"""The base of lucid's learning-rate schedulers (``lucid.optim.lr_scheduler``): ``last_epoch``,
``base_lrs``, ``step()``, ``get_last_lr()`` and the state dict, as torch's ``LRScheduler``."""
from __future__ import annotations

import abc
import numbers
import warnings

from .optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where "
    "possible. Please use `scheduler.step()` to step the scheduler. During the deprecation, if "
    "epoch is different from None, the closed form is used instead of the new chainable form, "
    "where available.")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return value


class LRScheduler(abc.ABC):
    """The base of every scheduler: ``last_epoch``, ``base_lrs``, ``step()``,
    ``get_last_lr()`` and ``state_dict()`` / ``load_state_dict()``.

    Building one with ``last_epoch=-1`` stores each group's ``lr`` as its
    ``initial_lr`` (unless already set) and takes a first step to epoch 0;
    resuming with ``last_epoch >= 0`` needs ``initial_lr`` in every group.
    """

    _is_initial = False  # True during the constructor's first step

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral):
            raise TypeError(f"last_epoch must be an int, got {type(last_epoch).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming scheduler with last_epoch >= 0")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._initial_step()

    def _initial_step(self):
        """The constructor's step to epoch 0 (also how SequentialLR starts a scheduler)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    @abc.abstractmethod
    def get_lr(self):
        """The learning rates of the groups at ``last_epoch``, one per group (each
        scheduler's rule; called by :meth:`step`)."""

    def step(self, epoch=None):
        """Advance one epoch (call it after ``optimizer.step()``) and write the new rates."""
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        """Move to the next epoch (or to ``epoch``, by the closed form where there is one) and
        write the rates."""
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The rates the last :meth:`step` wrote, one per parameter group."""
        return self._last_lr

    def state_dict(self):
        """Every attribute but the optimizer, as torch's."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)

    def _current(self):
        return [group["lr"] for group in self.optimizer.param_groups]
