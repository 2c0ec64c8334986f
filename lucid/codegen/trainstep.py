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

from .program import Program, bound_value


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
    modes : list of (module, bool)
        Each module's ``training`` flag when traced; a call refuses if one changed.
    """

    def __init__(self, graph, optimizer, slots, state_outputs, bindings, updates, name,
                 passes=(), modes=()):
        self.optimizer = optimizer
        self._modes = list(modes)  # (module, its training flag when traced)
        self._host = [None] * len(slots)
        bindings = dict(bindings)
        for i, (placeholder, *_) in enumerate(slots):
            bindings[placeholder] = HostValue(self._host, i)
        super().__init__(graph, bindings=bindings, updates=updates, name=name, passes=passes)
        self._params = [[id(p) for p in g["params"]] for g in optimizer.param_groups]
        self._frozen = [(p, p.requires_grad) for g in optimizer.param_groups
                        for p in g["params"]]  # which ones it trains
        self._baked = [optimizer._baked(g) for g in optimizer.param_groups]
        self._state_keys = [(p, list(keys.items())) for p, keys in state_outputs]
        self._positions(slots)

    def _positions(self, slots):
        """Work out once where each feed goes and where each result comes from."""
        position = {p: i for i, p in enumerate(self.graph.inputs)}
        self._args = [(i, s) for i, s in enumerate(self._slots) if s.__class__ is int]
        self._tensors = [(i, s) for i, s in enumerate(self._slots)
                         if s.__class__ is not int and not isinstance(s, HostValue)]
        self._host_at = [position[placeholder] for placeholder, *_ in slots]
        reads, memos = {}, {}  # per parameter: its hyper-parameter and state feeds
        for placeholder, p, gi, kind, name in slots:
            dtype = p.data.dtype
            entry = reads.setdefault(id(p), (p, gi, [], [], dtype, p.data.shape,
                                             memos.setdefault(dtype, {})))
            (entry[2] if kind == "hyper" else entry[3]).append((position[placeholder], name))
        self._reads = list(reads.values())
        index, taken = dict(self._out_index), set()

        def out(key):  # a result two keys share is copied for the second (like Program)
            i = index[key]
            fresh, _ = i not in taken, taken.add(i)
            return i, fresh
        self._commits = [(t, *out(k)) for k, t in self.updates.items()]
        self._state_commits = [(p, [(name, *out(key)) for name, key in keys])
                               for p, keys in self._state_keys]
        self._loss = index[self.result_keys[0]]

    def __call__(self, *args, **kwargs):
        """Run one step on the placeholders' arrays; return the loss (a NumPy scalar)."""
        with self.lock:  # state is read, the step runs, state is written: one call at a time
            full = [None] * len(self._slots)
            self._read_host(full)
            if not kwargs and len(args) == self._n_user:
                for at, i in self._args:
                    full[at] = args[i]
                for at, bound in self._tensors:  # a Tensor's data, or a fresh random key
                    full[at] = bound_value(bound)
                if self.check_fn(*full):  # the common case: no conversion, nothing wrong
                    outs = self.step_fn(*full)
                    self._commit(outs)
                    return outs[self._loss]
            for i, at in enumerate(self._host_at):  # lists given, or something wrong: the
                self._host[i] = full[at]            # general path converts or names it
            return Program.__call__(self, *args, **kwargs)[self.result_keys[0]]

    def _read_host(self, full):
        """Put the ``state`` and ``hyper`` feeds, read from the optimizer now, in ``full``."""
        for module, training in self._modes:
            if module.training is not training:
                raise ValueError(f"{self.name}: {type(module).__name__} was traced in "
                                 f"{'train' if training else 'eval'} mode and is now in "
                                 f"{'train' if module.training else 'eval'} mode (.train() / "
                                 ".eval() since compiling); compile the step again in the "
                                 "mode it should run in")
        for p, trains in self._frozen:
            if p.requires_grad is not trains:
                raise ValueError(f"{self.name}: a parameter of shape {p.shape} was "
                                 f"{'trained' if trains else 'frozen'} when compiled and its "
                                 "requires_grad has changed since; compile the step again")
        opt = self.optimizer
        groups = opt.param_groups
        if len(groups) != len(self._params) or any(
                opt._baked(g) != baked or [id(p) for p in g["params"]] != ids
                for g, baked, ids in zip(groups, self._baked, self._params)):
            raise ValueError(f"{self.name}: the optimizer's parameters or fixed settings "
                             "(betas, momentum, weight decay, flags) changed since it was "
                             "compiled; compile the step again (the learning rate may change)")
        states = opt.state
        for p, gi, hypers, arrays, dtype, shape, memo in self._reads:
            state = states.get(p, _EMPTY)
            if hypers:
                values = opt._scalars(groups[gi], state)
                if len(memo) > 256:
                    memo.clear()
                for at, name in hypers:  # 0-d inputs shared by value: programs never write
                    value = values[name]  # their inputs
                    array = memo.get(value)
                    if array is None:
                        array = memo[value] = np.array(value, dtype)
                    full[at] = array
            for at, name in arrays:
                value = state.get(name)
                full[at] = np.zeros(shape, dtype) if value is None else value

    def _commit(self, outs):
        """Swap in the new parameters, buffers and optimizer state from ``step``'s results."""
        for tensor, i, fresh in self._commits:
            value = outs[i]
            tensor.data = np.array(value) if not fresh or value.__class__ is not np.ndarray \
                else value
        states, advance = self.optimizer.state, self.optimizer._advance
        for p, keys in self._state_commits:
            state = states.get(p)
            if state is None:
                state = states[p] = {}
            advance(state, {name: outs[i] if fresh and outs[i].__class__ is np.ndarray
                            else np.array(outs[i]) for name, i, fresh in keys})

    def commit(self, result):
        """:meth:`_commit` for the general path's ``{output key: array}``."""
        super().commit(result)
        states = self.optimizer.state
        for p, keys in self._state_keys:
            state = states.get(p)
            if state is None:
                state = states[p] = {}
            self.optimizer._advance(state, {name: np.asarray(result[key]) for name, key in keys})


_EMPTY = {}
