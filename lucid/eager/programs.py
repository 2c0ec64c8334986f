"""Running modules and functions on Tensors: compile once per signature, then call.

``module(tensor)`` traces the module with a placeholder whose batch size is
symbolic, compiles it (forward, backward when anything requires grad, and in
train mode the running-stat updates), caches the program on the module per
mode, dtype and non-batch shape, runs the forward part and commits the
buffer updates. The backward part runs later, from :meth:`Tensor.backward`.
Everything positional is worked out once per program (:class:`Entry`), so a
call costs little more than the generated functions themselves.

A program stays valid while nothing it traced changes: the versions of the
modules it recorded and the ``requires_grad`` flag and dtype of every
tensor it reads (its fingerprint). Any change anywhere moves one global
epoch; a program re-checks its fingerprint only when the epoch moved since
its last check, so a change to an unrelated module costs a short walk, not
a recompile, and an unchanged world costs one comparison.
"""
from __future__ import annotations

import itertools
import operator
import threading

import numpy as np

from .. import compiler
from ..frontend import placeholder
from ..frontend.trace import RandomKey
from ..graph import OutKind
from ..ops import REGISTRY
from ..runtime import bind_sizes
from .autograd import Call, LazyCall
from .grad import MODE, is_grad_enabled
from .tensor import Tensor, wrap

_function_programs = {}  # insertion-ordered: the oldest entry goes first
FUNCTION_CACHE = 256
#: The stamp of the latest change to any module's attributes, parameters, buffers or
#: children, or to a parameter's ``requires_grad`` (see :func:`changed`).
STRUCTURE = [0]
_stamps = itertools.count(1)
_recording = threading.local()  # .modules: {id: module} called while a program is traced
_DATA = operator.attrgetter("data")


def changed():
    """Record that something a program may have traced changed; return a fresh stamp.

    A module keeps the stamp of its own latest change as its version.
    """
    STRUCTURE[0] = stamp = next(_stamps)
    return stamp


def traced(module):
    """Note that ``module`` is recording its forward into the program being compiled."""
    modules = getattr(_recording, "modules", None)
    if modules is not None:
        modules[id(module)] = module


def as_tensor(value):
    return value if isinstance(value, Tensor) else Tensor(value)


class Entry:
    """A compiled program and how Tensors map onto its functions' positions."""

    __slots__ = ("program", "params", "slots", "forward", "check", "results", "kind", "updates",
                 "seed_keys", "grads", "lazy", "grad_entry", "epoch", "deps", "watched",
                 "fingerprint", "untracked", "bound", "start", "lock", "single",
                 "bound_versions", "seen", "ordered", "grad_index", "grad_targets",
                 "grad_inputs", "distinct", "tuple_type", "scalar_updates", "direct",
                 "backward", "grads_in_order", "input_positions", "fixed_targets", "fixed_ids",
                 "views", "plain")

    def __init__(self, program, n_inputs, grad_inputs, grad_params, lazy=None):
        self.program = program
        # an eval forward compiles its gradient program only when backward is first asked for
        self.lazy, self.grad_entry = lazy, None
        # a module's program: what it traced and their state then (see call_module)
        self.epoch, self.deps, self.watched, self.fingerprint = None, (), (), None
        # its forward called a module that is not its child (held in a list, say): which
        # module it will call next time cannot be checked, so any change recompiles it
        self.untracked = False
        graph, seeds = program.graph, program.seeds
        self.params = [p for p in graph.inputs if p not in seeds]
        users = [p for p in self.params if p not in program.bindings]
        # an int slot is the position of a call argument, else the bound Tensor itself
        self.slots = [program.bindings.get(p, users.index(p) if p in users else None)
                      for p in self.params]
        assert len(users) == n_inputs
        self.bound = [s for s in self.slots  # the Tensors it reads (a random key is none)
                      if s.__class__ is not int and s is not None and s.__class__ is not RandomKey]
        # their versions, as of in-place write serial ``seen`` (see autograd.Call)
        self.bound_versions, self.seen = None, None
        # the call's arguments in order, then the bound tensors: read without a test each
        self.ordered = len(self.slots) == n_inputs + len(self.bound) and all(
            s.__class__ is int and s == i if i < n_inputs else s is self.bound[i - n_inputs]
            for i, s in enumerate(self.slots))
        if seeds:
            self.forward, self.check = program.forward_fn, program.check_forward_fn
            returned = program._fwd_outputs
        else:
            self.forward, self.check = program.step_fn, program.check_fn
            returned = program._outputs
        self.start = len(returned) - len(program.residuals)  # what a backward reads comes last
        self.lock = program.lock if program.updates else None  # only state commits serialise
        outputs = graph.output_nodes()
        self.results = [(k, returned.index(outputs[k])) for k in program.result_keys]
        self.kind = program.result_kind
        self.tuple_type = getattr(program, "result_type", tuple)
        self.single = self.kind == "single"
        updates = [(t, returned.index(outputs[k]), graph.node(outputs[k]).shape == ())
                   for k, t in program.updates.items()]
        # a 0-d result may come back as a NumPy scalar: those alone are converted
        self.updates = [(t, i) for t, i, scalar in updates if not scalar]
        self.scalar_updates = [(t, i) for t, i, scalar in updates if scalar]
        self.seed_keys = [graph.meta[s]["seeds"] for s in seeds]
        back = program._bwd_outputs or []
        grad_of = {o.of: o.node for o in graph.outputs.values() if o.kind is OutKind.GRAD}
        # a gradient the backward does not compute is a constant 0 (the result reaches the
        # input only through comparisons or positions): nothing to accumulate
        self.grads = [(back.index(grad_of[key]), i) for key, i in grad_inputs
                      if grad_of[key] in back] + \
            [(back.index(grad_of[key]), t) for key, t in grad_params if grad_of[key] in back]
        self.grad_index = [i for i, _ in self.grads]
        self.grads_in_order = self.grad_index == list(range(len(back)))  # all, as returned
        self.grad_targets = [t for _, t in self.grads]  # a position, or the Tensor itself
        # the same targets split (call arguments come first): the positions of the arguments,
        # then the parameters
        self.input_positions = [t for t in self.grad_targets if t.__class__ is int]
        self.fixed_targets = [t for t in self.grad_targets if t.__class__ is not int]
        self.grad_inputs = bool(self.input_positions)
        self.fixed_ids = {id(t) for t in self.fixed_targets}
        # no parameter differentiated twice
        self.distinct = len(self.fixed_ids) == len(self.fixed_targets)
        # the output whose backward may skip the walk (see autograd._one_call): the only
        # one differentiated, with no parameter differentiated twice
        self.direct = self.seed_keys[0] if len(seeds) == 1 and self.distinct else None
        self.backward = program.backward_fn
        self.views = _views(program, self.params, self.slots)
        # one argument, read first, and one result handed out as it is: call_module runs it
        # without _execute
        self.plain = self.ordered and self.single and self.views is None and n_inputs == 1


def _views(program, params, slots):
    """The ops whose records say ``alias`` (reshape, transpose, basic indexing, detach) that
    make a program's one result out of its first argument, when that is all it does, at
    static shapes; else None. The Tensor face then hands out a NumPy view of the
    argument's data, so that a write through it reaches the argument, as through a torch
    view."""
    graph = program.graph
    results = [o.node for o in graph.outputs.values() if o.kind is OutKind.RESULT]
    if len(results) != 1 or not params or slots[0].__class__ is not int or slots[0] != 0:
        return None
    chain, name = [], results[0]
    while name != params[0]:
        node = graph.node(name)
        if node.op == "placeholder" or not REGISTRY[node.op].alias or \
                len(node.inputs) != 1 or any(d.__class__ is not int for d in node.shape) or \
                node.op == "reshape" and node.shape == graph.node(node.inputs[0]).shape:
            return None  # a reshape to the same shape is clone(), a copy
        chain.append((REGISTRY[node.op], node.attrs))
        name = node.inputs[0]
    return chain[::-1] or None


def _static(shape):
    return tuple(shape)


def _placeholders(specs, batch_symbolic):
    names = ["x"] if len(specs) == 1 else [f"x{i}" for i in range(len(specs))]
    out = []
    for name, (shape, dtype, _) in zip(names, specs):
        shape = ((None,) + shape[1:]) if batch_symbolic and shape else shape
        out.append(placeholder(shape, dtype.name, name=name))
    return out


def _compile(fn, specs, mode, grad_params, batch_symbolic, backward=True):
    """Compile ``fn`` for inputs described by ``specs`` ((shape, dtype, requires_grad) each),
    differentiating the ``(key, Parameter)`` pairs ``grad_params``.

    In eval mode with ``backward`` False, the gradient program is compiled
    only if a backward is asked for (see :class:`LazyCall`), for the same
    parameters: those that required grad when the forward was compiled.
    """
    phs = _placeholders(specs, batch_symbolic)
    grad_inputs = [(p.key, i) for i, (p, s) in enumerate(zip(phs, specs)) if s[2]]
    wrt = [k for k, _ in grad_inputs] + [k for k, _ in grad_params]
    if wrt and not backward:
        program = compiler.compile(fn, *phs, mode=mode, backward=False)
        return Entry(program, len(specs), [], [], lazy=lambda: _compile(
            fn, specs, mode, grad_params, batch_symbolic))
    program = compiler.compile(fn, *phs, mode=mode, backward=bool(wrt), wrt=wrt)
    return Entry(program, len(specs), grad_inputs, grad_params)


def _specs(tensors, grad=True):
    return [(t.data.shape, t.data.dtype, grad and t.requires_grad) for t in tensors]


def call_module(module, args):
    grad = MODE.enabled
    if len(args) != 1:
        tensors = [a if type(a) is Tensor else as_tensor(a) for a in args]
        key = [module.training, grad]
        for t in tensors:
            d = t.data
            key += (d.shape[1:], d.ndim, d.dtype, grad and t.requires_grad)
        key = tuple(key)
        entry = module._programs.get(key)
        if entry is None or entry.epoch != STRUCTURE[0] and not _current(entry):
            entry = _compile_module(module, key, tensors)
        return _execute(entry, tensors)
    # The common case, one argument: the key is built without a list and, if the program
    # hands out its one result as it is, _execute's lock and wrapping are written out here
    # (0.25-0.5 us of ~7, measured).
    t = args[0]
    if type(t) is not Tensor:
        t = as_tensor(t)
    d = t.data
    key = (module.training, grad, d.shape[1:], d.ndim, d.dtype, grad and t.requires_grad)
    entry = module._programs.get(key)
    if entry is None or entry.epoch != STRUCTURE[0] and not _current(entry):
        entry = _compile_module(module, key, [t])
    tensors = [t]
    if not entry.plain:
        return _execute(entry, tensors)
    lock = entry.lock  # read state, run, write state: one call at a time
    if lock is not None:
        lock.acquire()
    try:
        data = [t.data, *map(_DATA, entry.bound)]  # read under the lock, as _execute does
        outs = _forward(entry, data)
    finally:
        if lock is not None:
            lock.release()
    k, i = entry.results[0]
    if entry.grads:
        return wrap(outs[i], (Call(entry, outs, tensors), k))
    return wrap(outs[i], None if entry.lazy is None else (LazyCall(entry, data, tensors), k))


def _fingerprint(entry):
    return ([m._version for m in entry.deps],
            [(t.requires_grad, t.data.dtype) for t in entry.watched])


def _current(entry):
    """Whether nothing ``entry`` traced changed since it was compiled; if so, until the
    next change anywhere it is not checked again."""
    epoch = STRUCTURE[0]  # read first: a change during the walk leaves the entry unchecked
    if entry.untracked or _fingerprint(entry) != entry.fingerprint:
        return False
    entry.epoch = epoch
    return True


def _compile_module(module, key, tensors):
    programs = module._programs
    for k in [k for k, e in programs.items() if k != key and not _current(e)]:
        del programs[k]  # compiled before something it traced changed: never used again
    mode = "train" if module.training else "eval"
    epoch = STRUCTURE[0]
    grad = key[1]  # under no_grad nothing is differentiated
    grad_params = [(k, p) for k, p in module.named_parameters() if grad and p.requires_grad]
    check_dtypes(module, tensors)
    outer = getattr(_recording, "modules", None)
    _recording.modules = called = {}
    try:
        entry = _compile(module, _specs(tensors, grad), mode, grad_params, True,
                         backward=mode == "train")
    finally:
        _recording.modules = outer
    # what the program depends on: the module's tree, any module its forward called that
    # is not in it, and the tensors it reads or differentiates
    deps = {id(m): m for m in module.modules()}
    entry.untracked = any(id(m) not in deps for m in called.values())
    for m in called.values():
        deps.update((id(d), d) for d in m.modules())
    watched = {id(t): t for t in entry.program.bindings.values() if t.__class__ is not RandomKey}
    watched.update((id(p), p) for m in deps.values() for p in m._parameters.values()
                   if p is not None)
    entry.deps, entry.watched = tuple(deps.values()), tuple(watched.values())
    entry.fingerprint, entry.epoch = _fingerprint(entry), epoch
    programs[key] = entry
    return entry


def call_function(fn, tensors, key):
    """Run ``fn`` (a function of lucid values) on ``tensors``, compiled once per signature."""
    tensors = [t if t.__class__ is Tensor else as_tensor(t) for t in tensors]
    grad = is_grad_enabled()
    key = (key, tuple([(t.data.shape, t.data.dtype.char, grad and t.requires_grad)
                       for t in tensors]))
    entry = _function_programs.get(key)
    if entry is None:
        if len(_function_programs) >= FUNCTION_CACHE:  # e.g. one per shape: bounded
            del _function_programs[next(iter(_function_programs))]
        entry = _function_programs[key] = _compile(fn, _specs(tensors, grad), "eval", [], False)
    return _execute(entry, tensors)


def check_dtypes(module, tensors):
    """Refuse floating data of another precision than the module's floating parameters,
    as torch does, before anything runs (``x.to(...)`` or ``module.to(...)`` is the way)."""
    params = {p.data.dtype for p in module.parameters() if p.data.dtype.kind == "f"}
    for t in tensors:
        d = t.data.dtype
        if d.kind == "f" and params and d not in params:
            raise TypeError(f"{type(module).__name__}: input has dtype {d.name} but the "
                            f"module's parameters are {'/'.join(sorted(p.name for p in params))}"
                            f"; convert one side (x.to('{min(params).name}') or "
                            f"module.to('{d.name}'))")


def _forward(entry, args):
    """Check ``args`` (an error names the problem), run the forward, then commit the state
    updates: only after the whole forward succeeded. The caller holds the entry's lock."""
    if not entry.check(*args):
        program = entry.program
        bind_sizes(program.graph, dict(zip(entry.params, args)), skip=program.seeds)
    outs = entry.forward(*args)
    for tensor, i in entry.updates:
        tensor.data = outs[i]
    for tensor, i in entry.scalar_updates:
        tensor.data = np.asarray(outs[i])
    return outs


def _execute(entry, tensors):
    lock = entry.lock  # read state, run, write state: one call at a time
    if lock is not None:
        lock.acquire()
    try:
        if entry.ordered:
            args = list(map(_DATA, tensors + entry.bound))
        else:
            args = [tensors[s].data if s.__class__ is int else
                    s.data if s.__class__ is not RandomKey else s.draw() for s in entry.slots]
        outs = _forward(entry, args)
    finally:
        if lock is not None:
            lock.release()
    call = Call(entry, outs, tensors) if entry.grads else \
        LazyCall(entry, args, tensors) if entry.lazy else None
    if entry.single:
        k, i = entry.results[0]
        if entry.views is None:
            return wrap(outs[i], None if call is None else (call, k))
        view = args[0]  # the same values as outs[i], in the argument's memory
        for op, attrs in entry.views:
            view = op.run(attrs, _static, view)
        out = wrap(view, None if call is None else (call, k))
        out._base = tensors[0]
        return out
    results = [wrap(outs[i], (call, k) if call is not None and
                    outs[i].dtype.kind == "f" else None)  # indices: no grad
               for k, i in entry.results]
    if entry.kind == "tuple":
        return tuple(results) if entry.tuple_type is tuple else entry.tuple_type(*results)
    return dict(zip(entry.program.result_keys, results))
