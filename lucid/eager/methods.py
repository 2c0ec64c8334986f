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
import operator

import numpy as np

from .. import frontend
from ..frontend import Var, context
from ..ops import method_op, operators
from .grad import is_grad_enabled
from .programs import call_function
from .tensor import Tensor, as_dtype, check_inplace, write


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


def _composed(name, fn):
    def method(self, *args, **kwargs):
        return dispatch(name, fn, (self, *args), kwargs)
    method.__name__ = name
    method.__doc__ = fn.__doc__
    return method


def _to(self, dtype):
    """This tensor in ``dtype`` (itself if it already is, as in torch)."""
    dtype = as_dtype(dtype)
    if dtype == self.data.dtype:
        return self
    return dispatch("to", frontend.COMPOSED["to"][0], (self, dtype.name), {})


def _pow(self, exponent):
    if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool):
        return dispatch("pow", frontend.pow_, (self, exponent), {})
    return binary_fn("pow", frontend.pow_, self, exponent)


def _rpow(self, base):
    return binary_fn("rpow", frontend.rpow, self, base)


def binary_fn(name, fn, x, y):
    """``fn(x, y)`` with both as program inputs (a number beside a Tensor takes its dtype)."""
    if isinstance(x, Var) or isinstance(y, Var) or context.current() is not None:
        return fn(x, y)
    if isinstance(y, numbers.Real) and not isinstance(y, bool):
        y = _scalar(y, x)
    return call_function(fn, [x, y], (name,))


def _inplace(op):
    """``t <op>= other``: written into ``t`` under no_grad or when nothing records, as torch.

    When ``t`` has a history (or ``other`` requires grad) and grad mode is on,
    ``t`` comes to stand for the result, its history extended, as torch records
    an in-place op; a leaf that requires grad is refused (:func:`check_inplace`).
    """
    def method(self, other):
        check_inplace(self, f"{op}_")
        records = is_grad_enabled() and (
            self.requires_grad or isinstance(other, Tensor) and other.requires_grad)
        result = binary(op, Tensor._wrap(self.data, self._origin) if records else
                        self.detach(), other)
        if result.shape != self.shape:
            raise RuntimeError(f"output with shape {self.shape} doesn't match the broadcast "
                               f"shape {result.shape}")
        if records:
            if result.dtype != self.dtype:
                raise TypeError(f"in-place {op}: result type {result.dtype} can't be stored "
                                f"in a {self.dtype} tensor")
            self.data, self._origin, self.requires_grad = result.data, result._origin, True
        else:
            write(self, result.data)  # same_kind: float into an int tensor is a TypeError
        return self
    return method


def _getitem(self, key):
    spec, indices = index_key(key, self.shape)
    return dispatch("index", frontend.index, (self, spec, *indices), {})


def index_key(key, shape):
    """A NumPy-style key as the ``index`` op's key and its integer index arrays.

    Bool masks become the integer positions of their True elements (they are
    data, and the Tensor face knows the data); ints beside index arrays become
    0-d index arrays, as NumPy treats them.
    """
    key = key if isinstance(key, tuple) else (key,)
    items, arrays = [], []
    for k in key:
        if isinstance(k, Tensor):
            k = k.data
        if isinstance(k, list):
            k = np.asarray(k)
        if isinstance(k, np.ndarray) and k.dtype == bool:
            for a in np.nonzero(k):
                items.append(("array", len(arrays)))
                arrays.append(a.astype(np.int64))
        elif isinstance(k, np.ndarray):
            if k.dtype.kind not in "iu":
                raise IndexError(f"index arrays must be integer or bool, got {k.dtype}")
            items.append(("array", len(arrays)))
            arrays.append(k.astype(np.int64, copy=False))
        else:
            items.append(k)
    used = sum(1 for k in items if k is not None and k is not Ellipsis) + \
        sum(a.ndim - 1 for a in [np.asarray(k) for k in key if isinstance(k, (np.ndarray,
                                                                               list))
                                 if np.asarray(k).dtype == bool])
    if sum(k is Ellipsis for k in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if used > len(shape):
        raise IndexError(f"too many indices for tensor of dimension {len(shape)}")
    spec, advanced = [], any(isinstance(k, tuple) for k in items)
    for k in items:
        if k is Ellipsis:
            spec += [("slice", None, None, None)] * (len(shape) - used)
        elif k is None:
            spec.append(("new",))
        elif isinstance(k, slice):
            spec.append(("slice",) + tuple(None if v is None else operator.index(v)
                                           for v in (k.start, k.stop, k.step)))
        elif isinstance(k, tuple):
            spec.append(k)
        elif isinstance(k, numbers.Integral) and not isinstance(k, bool):
            if advanced:
                spec.append(("array", len(arrays)))
                arrays.append(np.asarray(int(k), np.int64))
            else:
                spec.append(("int", int(k)))
        else:
            raise IndexError(f"lucid indexes with ints, slices, None, ..., bool masks and "
                             f"integer arrays; got {type(k).__name__}")
    return tuple(spec), [Tensor._wrap(a) for a in arrays]


for _dunder, _reflected, _op in operators():
    _arity = 1 if _reflected is None else 2
    setattr(Tensor, _dunder, _operator(_op, _arity))
    if _reflected:
        setattr(Tensor, _reflected, _operator(_op, _arity, reflected=True))
for _name, (_fn, _is_method) in frontend.COMPOSED.items():
    if _is_method:
        setattr(Tensor, _name, _composed(_name, _fn))
for _dunder, _op in [("__iadd__", "add"), ("__isub__", "sub"), ("__imul__", "mul"),
                     ("__itruediv__", "div")]:
    setattr(Tensor, _dunder, _inplace(_op))
Tensor.__getattr__ = _method
Tensor.__getitem__ = _getitem
Tensor.__pow__, Tensor.__rpow__ = _pow, _rpow
Tensor.T = property(Tensor.t)
Tensor.to = _to
for _kind, _dtype in [("float", "float32"), ("double", "float64"), ("long", "int64"),
                      ("bool", "bool")]:
    setattr(Tensor, _kind, lambda self, _d=_dtype: self.to(_d))
