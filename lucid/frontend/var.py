"""Symbolic values: what lucid code manipulates while a graph is being defined.

A :class:`Var` is an immutable expression node: an op applied to other Vars,
with its shape and dtype inferred from the op's record when it is made (so a
bad shape fails at definition time, naming the op).
:func:`lucid.frontend.trace.to_graph` turns the Vars reachable from some
outputs into a :class:`lucid.graph.Graph`. Its operators and its op methods
(``v.exp()``) come from the op records.
"""
from __future__ import annotations

import functools
import itertools
import numbers
import operator

from ..graph import Role
from ..ops import DTYPES, FLOATS, REGISTRY, infer, method_op, operators, reserve
from ..ops.attributes import dtype_name
from ..ops.shapes import attributes
from ..ops.shapes import normalize_axes
from . import context

_uid = itertools.count()


class Var:
    """A symbolic array: ``op(*inputs)`` with a known (possibly symbolic) shape and dtype."""

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "hint", "scope", "role", "key", "uid")
    __array_priority__ = 1000  # make ndarray + Var defer to Var

    def __init__(self, op, inputs=(), attrs=None, *, shape=None, dtype=None, hint="",
                 role=None, key=""):
        self.op, self.inputs = op, tuple(inputs)
        if shape is not None:
            dtype = dtype_name(dtype)
        self.attrs = attributes(op, attrs, dtype)  # plain built-ins: they reach the source
        if shape is None:
            shape, dtype = infer(op, [v.shape for v in self.inputs],
                                 [v.dtype for v in self.inputs], self.attrs)
        self.shape, self.dtype = tuple(shape), dtype
        self.hint, self.role, self.key = hint, role, key
        self.scope = context.scope_path()
        self.uid = next(_uid)

    # -- description -----------------------------------------------------------
    @property
    def ndim(self):
        return len(self.shape)

    def size(self, dim=None):
        """The shape, or the size of axis ``dim``, as torch's ``x.size()``: an int, or the
        name of a symbolic size (the batch, ``"N"``), which ``view``/``reshape`` accept."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return len(self.shape)

    def __repr__(self):
        dims = ",".join(map(str, self.shape))
        return f"Var({self.op}, {self.dtype}[{dims}])"

    def __bool__(self):
        raise TypeError("a symbolic lucid value has no truth value at definition time")

    def __getattr__(self, name):
        op = method_op(name)  # v.exp(), v.tanh(), ...: any op whose record offers a method
        if op is None:
            raise AttributeError(f"'Var' object has no attribute {name!r}")
        return functools.partial(apply, op.name, self)

def _operator(op, reflected=False):
    if reflected:
        return lambda self, other: apply(op, other, self)
    return lambda self, *other: apply(op, self, *other)


for _dunder, _reflected, _op in operators():
    if _dunder in ("__eq__", "__ne__"):
        continue  # a Var stays a dict key and a list member; v.eq(w) compares
    setattr(Var, _dunder, _operator(_op))
    if _reflected:
        setattr(Var, _reflected, _operator(_op, reflected=True))
reserve(*dir(Var))  # an op named "shape" or "T" could never be a Var method


def as_var(value, like=None):
    """Coerce ``value`` to a Var: Vars pass, scalars become constants, Tensors are lifted."""
    if isinstance(value, Var):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        lifted = context.lift(value)
        if lifted is not None:
            return lifted
        if hasattr(value, "data") and hasattr(value, "requires_grad"):
            raise TypeError("a Tensor goes into a primitive through lucid.<op>(t), t.<op>() "
                            "or a Module; frontend.apply takes it only while tracing")
        raise TypeError(f"cannot use a {type(value).__name__} in a lucid graph; "
                        "use a lucid Tensor, a Var or a Python number")
    kind = None if like is None else "int64" if like.dtype == "bool" else like.dtype
    dtype = kind if kind is not None and kind != "int64" else "float32"
    if kind == "int64" and isinstance(value, numbers.Integral):
        dtype = "int64"
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    return Var("constant", attrs={"value": value}, shape=(), dtype=dtype)


def apply(op, *args, name="", **attrs):
    """Apply primitive ``op`` to ``args`` (Vars, numbers or Tensors)."""
    like = next((x for x in args if isinstance(x, Var)), None)
    if like is None:
        like = next((as_var(x) for x in args if not isinstance(x, numbers.Real)), None)
    inputs = [as_var(x, like) for x in args]
    record = REGISTRY[op]
    if not record.logical:  # arithmetic on bools counts in integers, as in torch
        inputs = [Var("cast", [v], {"dtype": "int64"}) if v.dtype == "bool" else v
                  for v in inputs]
        floats = sorted({v.dtype for v in inputs if v.dtype in FLOATS})
        if floats and not record.elementwise:  # (codegen promotes inside elementwise ops)
            inputs = [Var("cast", [v], {"dtype": floats[-1]}) if v.dtype == "int64" else v
                      for v in inputs]
    return Var(op, inputs, attrs, hint=name)


def placeholder(shape, dtype="float32", name=None):
    """A symbolic program input.

    A ``None`` dim is a symbolic size (``N`` for axis 0, ``L`` for axis 2,
    ``D<k>`` elsewhere); a string dim names its symbol. One compiled program
    serves every value of its symbolic sizes.

    Examples
    --------
    >>> import lucid
    >>> x = lucid.placeholder((None, 4), name="x")
    >>> x.shape
    ('N', 4)
    """
    dtype = dtype_name(dtype, "placeholder dtype")  # looked at once: lucid's own string
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"placeholder shape must be a tuple, got {type(shape).__name__}")
    dims = []
    for axis, d in enumerate(shape):
        if d is None:
            d = {0: "N", 2: "L"}.get(axis, f"D{axis}")
        elif isinstance(d, str):
            if not d.isidentifier():
                raise ValueError(f"symbolic dim {d!r} must be an identifier")
        elif isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"placeholder dims must be non-negative ints, None or names; got {d!r}")
        dims.append(str(d) if isinstance(d, str) else int(d))
    if name is not None and not isinstance(name, str):
        raise TypeError(f"placeholder name must be a string, got {type(name).__name__}")
    return Var("placeholder", shape=tuple(dims), dtype=dtype, hint=name or "x",
               role=Role.INPUT, key=name or "")


# -- composed functions: everything below is built from the primitives --------------
def reduce_sum(x, axis=None, keepdims=False, name=""):
    x = as_var(x)
    return apply("sum", x, axes=normalize_axes("sum", axis, x.ndim), keepdims=bool(keepdims),
                 name=name)


def numel(x, axis=None):
    x = as_var(x)
    return apply("numel", x, axes=normalize_axes("numel", axis, x.ndim))


def mean(x, axis=None, keepdims=False, name=""):
    """Mean over ``axis``: ``div(sum(x), count)``, the count taken at run time."""
    x = as_var(x)
    return apply("div", reduce_sum(x, axis, keepdims), numel(x, axis), name=name)


def _dims(shape):
    return tuple(d if isinstance(d, str) else operator.index(d) for d in shape)


def reshape(x, shape):
    return apply("reshape", x, shape=_dims(shape))


def broadcast_to(x, shape):
    return apply("broadcast_to", x, shape=_dims(shape))


def cast(x, dtype):
    x = as_var(x)
    return x if x.dtype == dtype else apply("cast", x, dtype=str(dtype))


def matmul(x, y):
    return apply("matmul", x, y)


def transpose(x, perm):
    return apply("transpose", x, perm=tuple(operator.index(p) for p in perm))
