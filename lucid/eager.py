"""Running modules and functions on Tensors: compile once per signature, then call.

``module(tensor)`` traces the module with a placeholder whose batch size is
symbolic, compiles it (forward, backward when anything requires grad, and in
train mode the running-stat updates), caches the program on the module per
mode, dtype and non-batch shape, runs the forward part and commits the
buffer updates. The backward part runs later, from :meth:`Tensor.backward`.
"""
from __future__ import annotations

import itertools

from . import compiler
from .ops import placeholder
from .ops.executor import bind_sizes
from .tensor import Call, Tensor

_seq = itertools.count()
_function_programs = {}
#: Bumped whenever a module's structure or hyper-parameters change, so cached programs
#: never run with stale parameters or constants.
STRUCTURE = [0]


def as_tensor(value):
    return value if isinstance(value, Tensor) else Tensor(value)


def _placeholders(tensors, batch_symbolic):
    names = ["x"] if len(tensors) == 1 else [f"x{i}" for i in range(len(tensors))]
    out = []
    for name, t in zip(names, tensors):
        shape = ((None,) + t.shape[1:]) if batch_symbolic and t.ndim else t.shape
        out.append(placeholder(shape, t.dtype.name, name=name))
    return out


def _compile(fn, tensors, mode, params, batch_symbolic):
    phs = _placeholders(tensors, batch_symbolic)
    wrt = [p.key for p, t in zip(phs, tensors) if t.requires_grad]
    wrt += [key for key, p in params if p.requires_grad]
    program = compiler.compile(fn, *phs, mode=mode, backward=bool(wrt), wrt=wrt)
    inputs = [p for p in program.graph.inputs
              if p not in program.bindings and p not in program.seeds]
    targets = {}
    for name, ph, t in zip(inputs, phs, tensors):
        if t.requires_grad:
            targets[f"grad:{ph.key}"] = name
    for key, p in params:
        if p.requires_grad:
            targets[f"grad:{key}"] = key
    return program, inputs, targets


def call_module(module, args):
    tensors = [as_tensor(a) for a in args]
    mode = "train" if module.training else "eval"
    key = (mode, STRUCTURE[0], tuple((t.shape[1:], t.ndim, t.data.dtype.char, t.requires_grad)
                                     for t in tensors))
    entry = module._programs.get(key)
    if entry is None:
        params = list(module.named_parameters())
        entry = module._programs[key] = _compile(module, tensors, mode, params, True)
    return _execute(entry, tensors, {p: key for key, p in module.named_parameters()})


def call_function(fn, tensors, key):
    """Run ``fn`` (a function of lucid values) on ``tensors``, compiled once per signature."""
    tensors = [as_tensor(t) for t in tensors]
    key = (key, tuple((t.shape, t.data.dtype.char, t.requires_grad) for t in tensors))
    entry = _function_programs.get(key)
    if entry is None:
        entry = _function_programs[key] = _compile(fn, tensors, "eval", [], False)
    return _execute(entry, tensors, {})


def _execute(entry, tensors, param_keys):
    program, inputs, targets = entry
    feeds = {name: t.data for name, t in zip(inputs, tensors)}
    for p, tensor in program.bindings.items():
        feeds[p] = tensor.data
    bind_sizes(program.graph, feeds, skip=program.seeds)
    if program.seeds:
        result, saved = program.run_forward(feeds)
    else:
        result, saved = program.run(feeds, checked=True), None
    program.commit(result)
    call = None
    if program.seeds:
        by_key = dict(zip(inputs, tensors))
        by_key.update({key: p for p, key in param_keys.items()})
        bound = {k: by_key[v] for k, v in targets.items()}
        shapes = {k: result[k].shape for k in program.result_keys}
        call = Call(program, saved, bound, shapes, next(_seq))
    outs = [Tensor._wrap(result[k], (call, k) if call else None) for k in program.result_keys]
    if program.result_kind == "single":
        return outs[0]
    if program.result_kind == "tuple":
        return tuple(outs)
    return dict(zip(program.result_keys, outs))
