"""Running modules and functions on Tensors: compile once per signature, then call.

``module(tensor)`` traces the module with a placeholder whose batch size is
symbolic, compiles it (forward, backward when anything requires grad, and in
train mode the running-stat updates), caches the program on the module per
mode, dtype and non-batch shape, runs the forward part and commits the
buffer updates. The backward part runs later, from :meth:`Tensor.backward`.
Everything positional is worked out once per program (:class:`Entry`), so a
call costs little more than the generated functions themselves.
"""
from __future__ import annotations

import itertools

import numpy as np

from . import compiler
from .frontend import placeholder
from .runtime import bind_sizes
from .tensor import Tensor

_seq = itertools.count()
_function_programs = {}  # insertion-ordered: the oldest entry goes first
FUNCTION_CACHE = 256
#: Bumped whenever a module's structure or hyper-parameters change, so cached programs
#: never run with stale parameters or constants.
STRUCTURE = [0]


def as_tensor(value):
    return value if isinstance(value, Tensor) else Tensor(value)


class Entry:
    """A compiled program and how Tensors map onto its functions' positions."""

    __slots__ = ("program", "params", "slots", "forward", "check", "results", "kind", "updates",
                 "seed_keys", "grads", "lazy", "grad_entry")

    def __init__(self, program, n_inputs, grad_inputs, grad_params, lazy=None):
        self.program = program
        # an eval forward compiles its gradient program only when backward is first asked for
        self.lazy, self.grad_entry = lazy, None
        graph, seeds = program.graph, program.seeds
        self.params = [p for p in graph.inputs if p not in seeds]
        users = [p for p in self.params if p not in program.bindings]
        # an int slot is the position of a call argument, else the bound Tensor itself
        self.slots = [program.bindings.get(p, users.index(p) if p in users else None)
                      for p in self.params]
        assert len(users) == n_inputs
        if seeds:
            self.forward, self.check = program.forward_fn, program.check_forward_fn
            returned = program._fwd_outputs
        else:
            self.forward, self.check = program.step_fn, program.check_fn
            returned = program._outputs
        outputs = graph.output_nodes()
        self.results = [(k, returned.index(outputs[k])) for k in program.result_keys]
        self.kind = program.result_kind
        self.updates = [(t, returned.index(outputs[k])) for k, t in program.updates.items()]
        self.seed_keys = [graph.node(s).key[len("grad:"):] for s in seeds]
        back = program._bwd_outputs or []
        self.grads = [(back.index(outputs[f"grad:{key}"]), i) for key, i in grad_inputs] + \
            [(back.index(outputs[f"grad:{key}"]), t) for key, t in grad_params]


def _placeholders(specs, batch_symbolic):
    names = ["x"] if len(specs) == 1 else [f"x{i}" for i in range(len(specs))]
    out = []
    for name, (shape, dtype, _) in zip(names, specs):
        shape = ((None,) + shape[1:]) if batch_symbolic and shape else shape
        out.append(placeholder(shape, dtype.name, name=name))
    return out


def _compile(fn, specs, mode, params, batch_symbolic, backward=True):
    """Compile ``fn`` for inputs described by ``specs`` ((shape, dtype, requires_grad) each).

    In eval mode with ``backward`` False, the gradient program is compiled
    only if a backward is asked for (see :class:`LazyCall`).
    """
    phs = _placeholders(specs, batch_symbolic)
    grad_inputs = [(p.key, i) for i, (p, s) in enumerate(zip(phs, specs)) if s[2]]
    grad_params = [(key, p) for key, p in params if p.requires_grad]
    wrt = [k for k, _ in grad_inputs] + [k for k, _ in grad_params]
    if wrt and not backward:
        program = compiler.compile(fn, *phs, mode=mode, backward=False)
        return Entry(program, len(specs), [], [], lazy=lambda: _compile(
            fn, specs, mode, params, batch_symbolic))
    program = compiler.compile(fn, *phs, mode=mode, backward=bool(wrt), wrt=wrt)
    return Entry(program, len(specs), grad_inputs, grad_params)


def _specs(tensors):
    return [(t.data.shape, t.data.dtype, t.requires_grad) for t in tensors]


def call_module(module, args):
    tensors = [a if a.__class__ is Tensor else as_tensor(a) for a in args]
    key = [module.training, STRUCTURE[0]]
    for t in tensors:
        d = t.data
        key += (d.shape[1:], d.ndim, d.dtype, t.requires_grad)
    key = tuple(key)
    entry = module._programs.get(key)
    if entry is None:
        stale = [k for k in module._programs if k[1] != STRUCTURE[0]]
        for k in stale:  # compiled before the module changed: never used again
            del module._programs[k]
        mode = "train" if module.training else "eval"
        entry = module._programs[key] = _compile(module, _specs(tensors), mode,
                                                 module.named_parameters(), True,
                                                 backward=mode == "train")
    return _execute(entry, tensors)


def call_function(fn, tensors, key):
    """Run ``fn`` (a function of lucid values) on ``tensors``, compiled once per signature."""
    tensors = [as_tensor(t) for t in tensors]
    key = (key, tuple((t.shape, t.data.dtype.char, t.requires_grad) for t in tensors))
    entry = _function_programs.get(key)
    if entry is None:
        if len(_function_programs) >= FUNCTION_CACHE:  # e.g. one per scalar value: bounded
            del _function_programs[next(iter(_function_programs))]
        entry = _function_programs[key] = _compile(fn, _specs(tensors), "eval", [], False)
    return _execute(entry, tensors)


def _execute(entry, tensors):
    with entry.program.lock:  # read state, run, write state: one call at a time
        args = [tensors[s].data if s.__class__ is int else s.data for s in entry.slots]
        if not entry.check(*args):
            program = entry.program
            bind_sizes(program.graph, dict(zip(entry.params, args)), skip=program.seeds)
        outs = entry.forward(*args)
        for tensor, i in entry.updates:  # only after the whole forward succeeded
            value = outs[i]
            tensor.data = value if value.__class__ is np.ndarray else np.asarray(value)
    call = Call(entry, outs, tensors) if entry.grads else \
        LazyCall(entry, args, tensors) if entry.lazy else None
    results = [Tensor._wrap(outs[i], (call, k) if call is not None else None)
               for k, i in entry.results]
    if entry.kind == "single":
        return results[0]
    if entry.kind == "tuple":
        return tuple(results)
    return dict(zip(entry.program.result_keys, results))


class Call:
    """One run of a program's forward part, kept for its backward."""

    __slots__ = ("entry", "outs", "tensors", "seq")

    def __init__(self, entry, outs, tensors):
        self.entry, self.outs, self.tensors, self.seq = entry, outs, tensors, next(_seq)

    def __lt__(self, other):
        return self.seq > other.seq  # newest first: later calls consume earlier ones

    def backward(self, upstream):
        """Run the backward part for ``{output key: gradient}``; yield (tensor, gradient)."""
        entry = self.entry
        program = entry.program
        seeds = []
        for key in entry.seed_keys:
            g = upstream.get(key)
            if g is None:  # an output nobody differentiated: its gradient is zero
                i = dict(entry.results)[key]
                g = np.zeros(np.shape(self.outs[i]), program.dtype_of[key])
            seeds.append(g)
        start = len(program._fwd_outputs) - len(program.residuals)  # residuals come last
        grads = program.backward_fn(*seeds, *self.outs[start:])
        given = {id(s) for s in seeds}
        for i, target in entry.grads:
            g = grads[i]
            if id(g) in given:
                g = g.copy()  # the identity's gradient is the caller's own array
            yield (self.tensors[target] if target.__class__ is int else target), g


class LazyCall(Call):
    """An eval-mode forward whose gradient program is compiled on the first backward.

    The forward ran the eval program (no residuals saved); the backward runs
    the gradient program's forward again on the same arrays, then its backward.
    """

    __slots__ = ()

    def backward(self, upstream):
        entry = self.entry
        if entry.grad_entry is None:
            entry.grad_entry = entry.lazy()
        grad = entry.grad_entry
        if grad.params != entry.params:  # both trace the same module: the order is the same
            raise RuntimeError("the eval and gradient programs disagree on their inputs")
        args = self.outs  # for a lazy call: the arrays the eval forward ran on
        return Call(grad, grad.forward(*args), self.tensors).backward(upstream)
