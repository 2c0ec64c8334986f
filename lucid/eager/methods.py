"""Tensor operators and methods, read from the op records, and eager dispatch.

:func:`dispatch` runs a lucid function on symbolic values directly (while a
definition is traced) or on Tensors through a compiled program, cached per
signature. Every ``Tensor`` operator comes from an op record's ``dunder``
(:func:`lucid.ops.operators`), every op method (``t.exp()``) from a record
that offers one: installed here, so that ``tensor.py`` needs no list of ops.
A Python number beside a Tensor is passed as a 0-d input, not baked in as a
constant, so one program serves every value.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

from .. import frontend
from ..frontend import Var, context
from ..ops import method_op, operators
from ..ops.attributes import number
from .programs import call_function
from .tensor import Tensor


def _frozen(value):
    """A cache-key form of an argument (lists become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def dispatch(name, fn, args, kwargs):
    """Run ``fn`` on Vars now, or on Tensors through a compiled, cached program.

    Arguments that are neither numbers, strings, tuples nor None are the
    tensors; the rest (axes, shapes, dtypes) are part of the cache key.
    """
    if context.current() is not None or any(isinstance(a, Var) for a in args):
        return fn(*args, **kwargs)
    arrays = [i for i, a in enumerate(args)
              if a is not None and not isinstance(a, (numbers.Number, tuple, list, str))]
    fixed = {i: a for i, a in enumerate(args) if i not in arrays}

    def traced(*tensors):
        full = {**fixed, **dict(zip(arrays, tensors))}
        return fn(*[full[i] for i in range(len(args))], **kwargs)

    key = (name, tuple(arrays), tuple((i, _frozen(v)) for i, v in fixed.items()),
           tuple((k, _frozen(v)) for k, v in sorted(kwargs.items())))
    return call_function(traced, [args[i] for i in arrays], key)


def binary(op, x, y):
    """``x <op> y`` with a Tensor on at least one side."""
    if isinstance(x, Var) or isinstance(y, Var) or context.current() is not None:
        return frontend.apply(op, x, y)  # recording a definition: the tensor is lifted
    if isinstance(y, numbers.Real) and not isinstance(y, bool):
        y = _scalar(y, x)
    elif isinstance(x, numbers.Real) and not isinstance(x, bool):
        x = _scalar(x, y)
    return call_function(functools.partial(frontend.apply, op), [x, y], (op,))


_SCALAR_DTYPES = {}  # (tensor dtype, scalar class) -> the dtype the scalar takes


def _scalar(value, other):
    """A Python number as the 0-d Tensor that stands for it beside the Tensor ``other``.

    It takes the dtype a constant would (an int stays int64 beside int64, a
    number takes a float tensor's dtype) but is a program input, not a
    constant, so one program serves every value and nothing differentiates it.
    """
    key = (other.data.dtype, value.__class__)
    dtype = _SCALAR_DTYPES.get(key)
    if dtype is None:  # frontend.as_var is the one place that rule lives
        like = frontend.placeholder((), other.data.dtype.name)
        dtype = _SCALAR_DTYPES[key] = np.dtype(frontend.as_var(value, like).dtype)
    number(value, dtype.name)  # finite and representable, as a constant would have to be
    return Tensor._wrap(np.asarray(value, dtype))


def _operator(op, arity, reflected=False):
    if arity == 1:
        return lambda self: dispatch(op, functools.partial(frontend.apply, op), (self,), {})
    if reflected:
        return lambda self, other: binary(op, other, self)
    return lambda self, other: binary(op, self, other)


def _method(self, name):
    op = method_op(name)  # t.exp(), t.tanh(), ...: any op whose record offers a method
    if op is None:
        raise AttributeError(f"'Tensor' object has no attribute {name!r}")
    return functools.partial(dispatch, op.name, functools.partial(frontend.apply, op.name),
                             (self,), {})


def _sum(self, axis=None, keepdims=False):
    return dispatch("sum", frontend.reduce_sum, (self, axis, keepdims), {})


def _mean(self, axis=None, keepdims=False):
    return dispatch("mean", frontend.mean, (self, axis, keepdims), {})


for _dunder, _reflected, _op in operators():
    _arity = 1 if _reflected is None else 2
    setattr(Tensor, _dunder, _operator(_op, _arity))
    if _reflected:
        setattr(Tensor, _reflected, _operator(_op, _arity, reflected=True))
Tensor.__getattr__ = _method
Tensor.sum, Tensor.mean = _sum, _mean
