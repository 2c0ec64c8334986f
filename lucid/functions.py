"""``lucid.<name>``: every op, and the functions composed from them, for Vars and Tensors.

While a definition is being traced (or given a symbolic value) a function
records nodes; given Tensors it runs eagerly: the call is traced once per
signature, compiled and cached like a module call. The functions are read
from the op records (:func:`public`): an op made with
:func:`lucid.ops.define_elementwise` is ``lucid.<name>`` at once.

>>> import lucid
>>> lucid.exp(lucid.Tensor([0.0, 1.0], dtype="float64")).data.round(4).tolist()
[1.0, 2.7183]
"""
from __future__ import annotations

import functools

from . import frontend
from .codegen import parallel
from .eager import apply_op, binary, checkpoint, dispatch, grad, random
from .ops import REGISTRY, Kind, reserve

#: Functions composed from primitives (names as in PyTorch): ``frontend.COMPOSED``; every
#: other ``lucid.<op>`` applies the op of that name.
COMPOSED = {name: fn for name, (fn, _) in frontend.COMPOSED.items()}


def _op_function(name):
    def function(*args, **attrs):
        if REGISTRY[name].arity == 2 and len(args) == 2 and not attrs:
            return binary(name, *args)  # numbers and arrays on either side, as operators
        return apply_op(name, *args, **attrs)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"lucid.{name}: the {name} primitive ({REGISTRY[name].doc or REGISTRY[name].expr})."
    return function


def _composed(name, fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        return dispatch(name, fn, args, kwargs)
    return call


#: Autograd state and files, as in torch.
EXTRA = {"no_grad": grad.no_grad, "enable_grad": grad.enable_grad,
         "is_grad_enabled": grad.is_grad_enabled, "save": checkpoint.save,
         "load": checkpoint.load, "manual_seed": random.manual_seed,
         "set_num_threads": parallel.set_num_threads, "get_num_threads": parallel.get_num_threads}


def public(name):
    """The function ``lucid.<name>``; AttributeError if there is none."""
    if name in EXTRA:
        return EXTRA[name]
    if name in COMPOSED:
        return _composed(name, COMPOSED[name])
    op = REGISTRY.get(name)
    if op is None or op.kind is Kind.LEAF:
        raise AttributeError(f"module 'lucid' has no attribute {name!r}")
    return _op_function(name)


reserve(*COMPOSED)


def names():
    return sorted(set(COMPOSED) | set(EXTRA) | {n for n, op in REGISTRY.items() if op.kind is not Kind.LEAF})
