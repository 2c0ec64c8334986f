"""Symbolic values: what lucid code manipulates while a graph is being defined.

A :class:`Var` is an immutable expression node: an op applied to other Vars,
with its shape and dtype inferred when it is made (so a bad shape fails at
definition time, naming the op). :func:`lucid.ops.trace.to_graph` turns the
Vars reachable from some outputs into a :class:`lucid.graph.Graph`.
"""
from __future__ import annotations

import itertools
import numbers

from . import trace
from .shapes import infer, normalize_axes

_uid = itertools.count()


class Var:
    """A symbolic array: ``op(*inputs)`` with a known (possibly symbolic) shape and dtype."""

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "hint", "scope", "role", "key", "uid")
    __array_priority__ = 1000  # make ndarray + Var defer to Var

    def __init__(self, op, inputs=(), attrs=None, *, shape=None, dtype=None, hint="",
                 role="", key=""):
        self.op, self.inputs, self.attrs = op, tuple(inputs), dict(attrs or {})
        if shape is None:
            shape, dtype = infer(op, [v.shape for v in self.inputs],
                                 [v.dtype for v in self.inputs], self.attrs)
        self.shape, self.dtype = tuple(shape), dtype
        self.hint, self.role, self.key = hint, role, key
        self.scope = trace.scope_path()
        self.uid = next(_uid)

    # -- description -----------------------------------------------------------
    @property
    def ndim(self):
        return len(self.shape)

    @property
    def graph(self):
        """The forward graph of everything this value depends on."""
        return trace.to_graph({"out": self})

    def __repr__(self):
        dims = ",".join(map(str, self.shape))
        return f"Var({self.op}, {self.dtype}[{dims}])"

    def __bool__(self):
        raise TypeError("a symbolic lucid value has no truth value at definition time")

    # -- arithmetic --------------------------------------------------------------
    def __add__(self, other): return apply("add", self, other)
    def __radd__(self, other): return apply("add", other, self)
    def __sub__(self, other): return apply("sub", self, other)
    def __rsub__(self, other): return apply("sub", other, self)
    def __mul__(self, other): return apply("mul", self, other)
    def __rmul__(self, other): return apply("mul", other, self)
    def __truediv__(self, other): return apply("div", self, other)
    def __rtruediv__(self, other): return apply("div", other, self)
    def __neg__(self): return apply("neg", self)
    def __matmul__(self, other): return apply("matmul", self, other)
    def __rmatmul__(self, other): return apply("matmul", other, self)

    def sum(self, axis=None, keepdims=False):
        return reduce_sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list))
                       else shape)

    @property
    def T(self):
        return apply("transpose", self, perm=tuple(reversed(range(self.ndim))))


def as_var(value, like=None):
    """Coerce ``value`` to a Var: Vars pass, scalars become constants, Tensors are lifted."""
    if isinstance(value, Var):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        lifted = trace.lift(value)
        if lifted is not None:
            return lifted
        raise TypeError(f"cannot use a {type(value).__name__} in a lucid graph; "
                        "use a lucid Tensor, a Var or a Python number")
    dtype = like.dtype if like is not None and like.dtype != "int64" else "float32"
    if like is not None and like.dtype == "int64" and isinstance(value, numbers.Integral):
        dtype = "int64"
    return Var("constant", attrs={"value": value}, shape=(), dtype=dtype)


def apply(op, *args, name="", **attrs):
    """Apply primitive ``op`` to ``args`` (Vars, numbers or Tensors)."""
    like = next((x for x in args if isinstance(x, Var)), None)
    if like is None:
        like = next((as_var(x) for x in args if not isinstance(x, numbers.Real)), None)
    return Var(op, [as_var(x, like) for x in args], attrs, hint=name)


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
    if str(dtype) not in ("float32", "float64", "int64"):
        raise ValueError(f"placeholder dtype must be float32, float64 or int64, got {dtype!r}")
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
        dims.append(d if isinstance(d, str) else int(d))
    if name is not None and not isinstance(name, str):
        raise TypeError(f"placeholder name must be a string, got {type(name).__name__}")
    return Var("placeholder", shape=tuple(dims), dtype=str(dtype), hint=name or "x",
               role="input", key=name or "")


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


def reshape(x, shape):
    return apply("reshape", x, shape=tuple(shape))


def broadcast_to(x, shape):
    return apply("broadcast_to", x, shape=tuple(shape))


def cast(x, dtype):
    x = as_var(x)
    return x if x.dtype == dtype else apply("cast", x, dtype=str(dtype))


def exp(x): return apply("exp", x)
def log(x): return apply("log", x)
def sqrt(x): return apply("sqrt", x)
def rsqrt(x): return apply("rsqrt", x)
def tanh(x): return apply("tanh", x)
def relu(x): return apply("relu", x)
def matmul(x, y): return apply("matmul", x, y)
def transpose(x, perm): return apply("transpose", x, perm=tuple(perm))
