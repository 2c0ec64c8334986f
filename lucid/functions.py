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

from . import frontend
from .eager import apply_op, dispatch
from .ops import REGISTRY, Kind, reserve

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


def _op_function(name):
    fn = functools.partial(apply_op, name)
    fn.__doc__ = f"lucid.{name}: the {name} primitive ({REGISTRY[name].doc or REGISTRY[name].expr})."
    return fn


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


reserve(*COMPOSED)


def names():
    return sorted(set(COMPOSED) | {n for n, op in REGISTRY.items() if op.kind is not Kind.LEAF})
