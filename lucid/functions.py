"""``lucid.<name>``: every op, and the functions composed from them, for Vars and Tensors.

While a definition is being traced (or given a symbolic value) a function
records nodes; given Tensors it runs eagerly: the call is traced once per
signature, compiled and cached like a module call. The functions are read
from the op records (:func:`public`): an op made with
:func:`lucid.ops.define_elementwise` is ``lucid.<name>`` at once.

>>> import lucid
>>> lucid.exp(lucid.Tensor([0.0, 1.0])).data.round(4).tolist()
[1.0, 2.7183]
"""
from __future__ import annotations

import functools
import numbers

from . import eager, frontend
from .frontend import Var, context
from .ops import REGISTRY, Kind

#: Functions composed from primitives (names as in NumPy and PyTorch); every other
#: ``lucid.<op>`` applies the op of that name.
COMPOSED = {
    "sum": frontend.reduce_sum,
    "reduce_sum": frontend.reduce_sum,
    "mean": frontend.mean,
    "numel": frontend.numel,
    "reshape": frontend.reshape,
    "broadcast_to": frontend.broadcast_to,
    "cast": frontend.cast,
    "transpose": frontend.transpose,
    "matmul": frontend.matmul,
}


def _frozen(value):
    """A cache-key form of an attribute (lists become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def dispatch(name, fn, args, kwargs):
    """Run ``fn`` on Vars now, or on Tensors through a compiled, cached program."""
    if context.current() is not None or any(isinstance(a, Var) for a in args):
        return fn(*args, **kwargs)
    arrays = [i for i, a in enumerate(args)
              if not isinstance(a, numbers.Number) and not isinstance(a, (tuple, list, str))
              and a is not None]
    fixed = {i: a for i, a in enumerate(args) if i not in arrays}

    def traced(*tensors):
        full = dict(fixed, **dict(zip(arrays, tensors)))
        return fn(*[full[i] for i in range(len(args))], **kwargs)

    key = (name, tuple(arrays), tuple((i, _frozen(v)) for i, v in fixed.items()),
           tuple((k, _frozen(v)) for k, v in sorted(kwargs.items())))
    return eager.call_function(traced, [args[i] for i in arrays], key)


def _op_function(name):
    def apply_op(*args, **attrs):
        return dispatch(name, functools.partial(frontend.apply, name), args, attrs)
    apply_op.__name__ = apply_op.__qualname__ = name
    apply_op.__doc__ = f"lucid.{name}: the {name} primitive ({REGISTRY[name].doc or REGISTRY[name].expr})."
    return apply_op


def _composed(name, fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        return dispatch(name, fn, args, kwargs)
    return call


def public(name):
    """The function ``lucid.<name>``; AttributeError if there is none."""
    if name in COMPOSED:
        return _composed(name, COMPOSED[name])
    op = REGISTRY.get(name)
    if op is None or op.kind is Kind.LEAF:
        raise AttributeError(f"module 'lucid' has no attribute {name!r}")
    return _op_function(name)


def names():
    return sorted(set(COMPOSED) | {n for n, op in REGISTRY.items() if op.kind is not Kind.LEAF})
