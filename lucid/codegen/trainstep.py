"""A training step as one program: forward, loss, backward and the optimizer's update.

:class:`TrainStep` is a :class:`Program` whose graph ends in the optimizer's
per-parameter update (phase ``optimizer``). Its inputs are the user's
placeholders, the bound parameters and buffers, the optimizer's state arrays
(role ``state``) and the hyper-parameters the host computes before each call
(role ``hyper``: learning rate, bias corrections, ...). A call reads them all,
runs the generated ``step`` and only then commits: the new parameters,
running statistics and optimizer state are swapped in (no copy), so a call
that fails changes nothing.

The optimizer is duck-typed (this layer cannot import ``lucid.optim``): it
offers ``param_groups``, ``state``, ``_scalars(group, state)``,
``_state_names(group)``, ``_advance(state, new)`` and ``_baked(group)``.
"""
from __future__ import annotations

import numpy as np

from .program import Program


class HostValue:
    """A placeholder's feed that the host computes each call (``.data``, like a Tensor's)."""

    __slots__ = ("values", "index")

    def __init__(self, values, index):
        self.values, self.index = values, index

    @property
    def data(self):
        return self.values[self.index]


class TrainStep(Program):
    """A compiled training step (see :func:`lucid.compile` with ``optimizer=``).

    Parameters
    ----------
    graph : Graph
        Forward, backward, running-stat updates and the optimizer's update.
    optimizer : lucid.optim.Optimizer
        Its ``param_groups`` and ``state`` are read before and written after each call.
    slots : list of (placeholder, param, group index, kind, name)
        Every ``state`` and ``hyper`` placeholder: what feeds it.
    state_outputs : list of (param, {state name: output key})
        Where each parameter's new state comes out.
    bindings, updates, name, passes
        As for :class:`Program` (parameters and buffers).
    """

    def __init__(self, graph, optimizer, slots, state_outputs, bindings, updates, name,
                 passes=()):
        self.optimizer = optimizer
        self._host = [None] * len(slots)
        bindings = dict(bindings)
        for i, (placeholder, *_) in enumerate(slots):
            bindings[placeholder] = HostValue(self._host, i)
        super().__init__(graph, bindings=bindings, updates=updates, name=name, passes=passes)
        self._reads = [(p, gi, kind, name, p.data.dtype, p.data.shape)
                       for _, p, gi, kind, name in slots]
        self._state_outputs = [(p, list(keys.items())) for p, keys in state_outputs]
        self._params = self._layout()
        self._baked = [optimizer._baked(g) for g in optimizer.param_groups]
        self._constants = {}
        self._loss = self.result_keys[0]

    def _layout(self):
        return [[id(p) for p in g["params"]] for g in self.optimizer.param_groups]

    def __call__(self, *args, **kwargs):
        """Run one step on the placeholders' arrays; return the loss (a NumPy scalar)."""
        with self.lock:  # state is read, the step runs, state is written: one call at a time
            self._read_host()
            result = super().__call__(*args, **kwargs)
        return result[self._loss]

    def _read_host(self):
        """Fill the ``state`` and ``hyper`` feeds from the optimizer, as it stands now."""
        opt = self.optimizer
        groups = opt.param_groups
        if len(groups) != len(self._params) or any(
                opt._baked(g) != baked or [id(p) for p in g["params"]] != ids
                for g, baked, ids in zip(groups, self._baked, self._params)):
            raise ValueError(f"{self.name}: the optimizer's parameters or fixed settings "
                             "(betas, momentum, weight decay, flags) changed since it was "
                             "compiled; compile the step again (the learning rate may change)")
        states, host, scalars = opt.state, self._host, None
        memo = self._constants  # 0-d inputs by value: programs never write their inputs
        if len(memo) > 256:
            memo.clear()
        for i, (p, gi, kind, name, dtype, shape) in enumerate(self._reads):
            state = states.get(p, _EMPTY)
            if kind == "hyper":
                if scalars is None or scalars[0] is not p:  # a parameter's names come together
                    scalars = (p, opt._scalars(groups[gi], state))
                key = (scalars[1][name], dtype)
                value = memo.get(key)
                if value is None:
                    value = memo[key] = np.array(key[0], dtype)
                host[i] = value
            else:
                value = state.get(name)
                host[i] = np.zeros(shape, dtype) if value is None else value

    def commit(self, result):
        """Swap in the new parameters, buffers and optimizer state (all computed already)."""
        super().commit(result)
        states = self.optimizer.state
        for p, keys in self._state_outputs:
            state = states.get(p)
            if state is None:
                state = states[p] = {}
            self.optimizer._advance(state, {name: np.asarray(result[key]) for name, key in keys})


_EMPTY = {}
