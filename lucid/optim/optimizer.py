"""The optimizer base: parameter groups, ``zero_grad`` and ``state_dict``, as torch's.

A step updates ``p.data`` in place (views of a parameter see it) and keeps
per-parameter state (``exp_avg``, ``momentum_buffer``, ...) as NumPy arrays of
the parameter's dtype.

Each optimizer writes its per-parameter rule once, in :meth:`Optimizer._traced_update`,
over operands that are NumPy arrays or symbolic values: :meth:`Optimizer.step` runs
it compiled into the parameter and state arrays themselves (:mod:`.eager_step`;
small parameters on NumPy arrays), and ``lucid.compile(loss_fn, ..., optimizer=opt)``
traces it into the training step's graph (the compiler cannot import this package: it
calls these methods by name). What may change between calls (the learning rate a
scheduler sets, Adam's bias corrections, the first step of a momentum buffer)
reaches the rule as scalars the host computes at each call (:meth:`_scalars`);
what is fixed (betas, momentum, weight decay, flags) is read from the group as
Python values and named by :meth:`_baked`, so a compiled step can notice a change.
"""
from __future__ import annotations

import abc
import copy

import numpy as np

from ..eager import Tensor, changed, enable_grad, zero_grads
from .eager_step import step_in_place


class Optimizer(abc.ABC):
    #: group settings a rule reads as Python values (a compiled step refuses their change)
    BAKED = ()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}  # Parameter -> {name: value}
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        mine = set()
        for p in params:
            if not isinstance(p, Tensor) or p.data.dtype.kind != "f":
                raise TypeError(f"optimizer can only optimize floating Tensors, got "
                                f"{type(p).__name__}")
            if id(p) in mine:  # torch warns that this will be an error; it steps p twice
                raise ValueError("optimizer contains a parameter group with duplicate parameters")
            if id(p) in seen:
                raise ValueError("some parameters appear in more than one parameter group")
            mine.add(id(p))
        full = {**self.defaults, **group, "params": params}
        self._check(full)
        self.param_groups.append(full)

    def _check(self, group):
        if not group["lr"] >= 0:
            raise ValueError(f"Invalid learning rate: {group['lr']}")

    def zero_grad(self, set_to_none=True):
        """Drop every gradient (``None``), or with ``set_to_none=False`` fill it with zeros
        (in place, as torch's)."""
        zero_grads([p for g in self.param_groups for p in g["params"]], set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure``, if given, is called
        first (with gradients enabled) and its loss returned, as torch's ``step(closure)``."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    step_in_place(self, p, group)
        return loss

    # -- the rule and what a compiled step needs around it ------------------------------
    @abc.abstractmethod
    def _traced_update(self, ns, x, g, arrays, scalars, group):
        """One parameter's step: ``(new x, {state name: new array})``.

        ``x``, ``g`` and the ``arrays`` (``{name: array}`` for :meth:`_state_names`,
        zeros before the first step) are NumPy arrays or symbolic values alike;
        ``scalars`` (:meth:`_scalars`) are floats or 0-d symbolic values; ``ns``
        offers ``sqrt`` and ``maximum``. Only operators and ``ns`` may touch operands.
        """

    @abc.abstractmethod
    def _state_names(self, group):
        """The per-parameter arrays the rule reads and writes, in order."""

    @abc.abstractmethod
    def _scalars(self, group, state):
        """``{name: float}``: what the host computes for the coming step of one parameter
        from its group and its ``state`` before the step (the same names every call)."""

    def _advance(self, state, new):
        """Record a finished step: the new state arrays (and counters) in ``state``."""
        state.update(new)

    def _baked(self, group):
        """The group's settings the rule reads as Python values, to compare later (the
        compiled step keeps a deep copy, so a list edited in place is noticed)."""
        return tuple((k, group[k]) for k in self.BAKED)

    def state_dict(self):
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``,
        parameters numbered in group order, as torch's."""
        index = {}
        groups = []
        for g in self.param_groups:
            ids = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("loaded state dict has a different number of parameter groups "
                             "or parameters in a group")
        params = {i: p for saved, g in zip(groups, self.param_groups)
                  for i, p in zip(saved["params"], g["params"])}
        state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            state[p] = {k: np.array(v, p.data.dtype) if isinstance(v, np.ndarray) and
                        v.dtype.kind == "f" else copy.deepcopy(v) for k, v in s.items()}
        self.state = state
        for saved, g in zip(groups, self.param_groups):
            g.update({k: v for k, v in saved.items() if k != "params"})
        changed()

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
