"""An optimizer's eager step: its rule compiled once, run into the parameter and its state.

Evaluated with NumPy operators, a rule makes a new full-size array at every
operation and copies the result back: SGD with momentum on a 1024x1024 float32
weight took 3.9-4.8 ms a step (torch: 0.24-0.34 ms; ``benchmarks/bench_layers.py``),
most of it in fresh memory. Instead the rule (:meth:`Optimizer._traced_update`,
the same one ``lucid.compile(..., optimizer=)`` traces into a training step) is
compiled once per optimizer class, fixed settings, dtype and state, over 1-d
values of any length, and its outputs are computed into the donated parameter
and state arrays (``lucid.compile(..., donate=)``): SGD's step is five passes
over four arrays, 0.55-0.74 ms. What the generated code cannot compute in place
comes back new and is copied in. Small parameters keep the NumPy evaluation
(:data:`MIN_ELEMENTS`).
"""
from __future__ import annotations

import numpy as np

from ..compiler import compile as _compile
from ..eager.autograd import note_write
from ..eager.tensor import write
from ..frontend import placeholder
from ..frontend.var import apply

#: (class, fixed settings, dtype, state names, scalar names) -> the compiled rule
_PROGRAMS = {}
CACHE = 64  # one per optimizer configuration and dtype: bounded all the same
#: Parameters this big or bigger step compiled; smaller ones on NumPy arrays (see
#: step_in_place). Compiled / NumPy time, float32, interleaved medians on a quiet machine:
#: at 16384 values 1.19-1.44 (SGD with and without momentum, Adam, AdamW with amsgrad), at
#: 32768 1.00-1.21, at 65536 0.28-0.81 (NumPy's new 256 KiB arrays come from fresh pages),
#: at 1M 0.24-0.59.
MIN_ELEMENTS = 1 << 16


class TracedOps:
    """The functions a rule calls besides operators, on traced values (as
    ``lucid.compiler.GraphOps`` in a training step)."""

    @staticmethod
    def sqrt(v):
        return apply("sqrt", v)

    @staticmethod
    def maximum(a, b):
        # b where a < b, else a: one where, as the training step's (lucid.maximum's tie rule
        # for gradients would cost three comparisons and three wheres here)
        return apply("where", apply("lt", a, b), b, a)


def program_for(opt, group, dtype, names, scalars):
    """The compiled rule: ``(param, grad, *state, *scalars) -> (param, *state)``."""
    key = (type(opt), repr(opt._baked(group)), dtype.str, names, scalars)
    found = _PROGRAMS.get(key)
    if found is not None:
        return found
    inputs = [placeholder((None,), dtype.name, name=n) for n in ("param", "grad") + names]
    inputs += [placeholder((), dtype.name, name=n) for n in scalars]

    def rule(x, g, *rest):
        arrays = dict(zip(names, rest[:len(names)]))
        new_x, new = opt._traced_update(TracedOps, x, g, arrays,
                                        dict(zip(scalars, rest[len(names):])), group)
        return (new_x, *(new[k] for k in names))

    donate = {f"out{i}": n for i, n in enumerate(("param",) + names)}
    program = _compile(rule, *inputs, mode="eval", donate=donate)
    if len(_PROGRAMS) >= CACHE:
        del _PROGRAMS[next(iter(_PROGRAMS))]
    _PROGRAMS[key] = program
    return program


def _own(array, dtype, others):
    """``array`` flat, if it can be written in place and overlaps none of ``others``; else a
    flat copy (written, then stored)."""
    if array.__class__ is np.ndarray and array.dtype == dtype and array.flags.c_contiguous \
            and array.flags.writeable and not any(np.may_share_memory(array, o) for o in others):
        return array.reshape(-1), True
    return np.array(array, dtype).reshape(-1), False


class NumpyOps:
    """The functions a rule calls besides operators, on NumPy arrays."""

    sqrt = staticmethod(np.sqrt)
    maximum = staticmethod(np.maximum)


def step_in_place(opt, p, group):
    """One parameter's step: ``p.data`` and ``opt.state[p]`` updated in place where they can
    be (views of the parameter see it, as in torch), the step count advanced. A parameter
    of fewer than ``MIN_ELEMENTS`` values runs the rule on NumPy arrays instead: there the
    compiled call's fixed cost is more than the passes it saves."""
    data = p.data
    dtype = data.dtype
    state = opt.state.setdefault(p, {})
    names = tuple(opt._state_names(group))
    hyper = opt._scalars(group, state)
    if data.size < MIN_ELEMENTS or np.shape(p.grad) != data.shape:  # (torch refuses the
        # latter; the NumPy rule broadcasts or names the shapes, as before)
        arrays = {k: state[k] if k in state else np.zeros_like(data) for k in names}
        new_x, new = opt._traced_update(NumpyOps, data.astype(dtype, copy=True),
                                        np.asarray(p.grad, dtype), arrays, hyper, group)
        write(p, new_x)
        opt._advance(state, new)
        return
    program = program_for(opt, group, dtype, names, tuple(hyper))
    grad = np.asarray(p.grad, dtype).reshape(-1)
    x, in_place = _own(data, dtype, [grad])
    arrays = [x]
    for k in names:
        value = state.get(k)
        if value is None:
            arrays.append(np.zeros(data.size, dtype))
        else:
            arrays.append(_own(value, dtype, [grad] + arrays)[0])
    outs = program(x, grad, *arrays[1:], *[np.array(hyper[k], dtype) for k in hyper])
    new_x = outs["out0"]
    if not in_place or new_x is not x:  # a copy of the data, or a new array: written back
        if data.flags.writeable:
            np.copyto(data, new_x.reshape(data.shape), casting="same_kind")
        else:
            p.data = np.array(new_x.reshape(data.shape))
    p._version += 1
    note_write(p.data)
    opt._advance(state, {k: outs[f"out{i + 1}"].reshape(data.shape)
                         for i, k in enumerate(names)})
