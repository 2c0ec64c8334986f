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

import copy

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
        Each module traced, with its ``training`` flag then; a call refuses if a mode, a
        parameter's ``requires_grad`` or a fixed optimizer setting changed since.
    """

    def __init__(self, graph, optimizer, slots, state_outputs, bindings, updates, name,
                 passes=(), modes=()):
        self.optimizer = optimizer
        self._modules = [m for m, _ in modes]  # every module traced, to compare modes
        self._host = [None] * len(slots)
        bindings = dict(bindings)
        for i, (placeholder, *_) in enumerate(slots):
            bindings[placeholder] = HostValue(self._host, i)
        super().__init__(graph, bindings=bindings, updates=updates, name=name, passes=passes)
        self._held = [p for g in optimizer.param_groups for p in g["params"]]
        # what the graph was built for, copied (a list edited in place must differ)
        self._compiled_for = copy.deepcopy(self._setup())
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
        if self.holders is not None:
            self.holders.check(self.name)
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
        setup = self._setup()
        if setup != self._compiled_for:
            raise ValueError(f"{self.name}: {self._changed(setup)} since it was compiled; "
                             "compile the step again (the learning rate may change freely)")
        opt = self.optimizer
        groups = opt.param_groups
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

    def _setup(self):
        """What the graph was built for: each module's mode, which parameters train, and the
        optimizer's groups with their fixed settings."""
        opt = self.optimizer
        return (tuple(m.training for m in self._modules),
                tuple(p.requires_grad for p in self._held),
                tuple((opt._baked(g), tuple(map(id, g["params"]))) for g in opt.param_groups))

    def _changed(self, setup):
        """Name what differs between ``setup`` and the compiled one."""
        modes, trains, groups = setup
        for m, now, then in zip(self._modules, modes, self._compiled_for[0]):
            if now is not then:
                return (f"{type(m).__name__} was traced in {'train' if then else 'eval'} mode "
                        f"and is now in {'train' if now else 'eval'} mode (.train() / .eval())")
        for p, now, then in zip(self._held, trains, self._compiled_for[1]):
            if now is not then:
                return (f"a parameter of shape {p.shape} was "
                        f"{'trained' if then else 'frozen'} and its requires_grad has changed")
        return ("the optimizer's parameters or fixed settings (betas, momentum, weight decay, "
                "flags) changed")

    def _commit(self, outs):
        """Swap in the new parameters, buffers and optimizer state from ``step``'s results."""
        for tensor, i, fresh in self._commits:
            value = outs[i]
            tensor.data = np.array(value) if not fresh or value.__class__ is not np.ndarray \
                else value
        for p, keys in self._state_commits:
            self._advance(p, {name: outs[i] if fresh and outs[i].__class__ is np.ndarray
                              else np.array(outs[i]) for name, i, fresh in keys})

    def commit(self, result):
        """:meth:`_commit` for the general path's ``{output key: array}``."""
        super().commit(result)
        for p, keys in self._state_keys:
            self._advance(p, {name: np.asarray(result[key]) for name, key in keys})

    def _advance(self, p, new):
        """Record ``p``'s new optimizer state, as the optimizer's own step does."""
        self.optimizer._advance(self.optimizer.state.setdefault(p, {}), new)


_EMPTY = {}
