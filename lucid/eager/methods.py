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
from ..ops import REGISTRY, Kind, method_op, operators, reserve
from ..ops.attributes import number
from .autograd import extend_history, note_write
from .grad import is_grad_enabled, no_grad
from .programs import call_function
from .tensor import Tensor, as_dtype, check_inplace, write


def _frozen(value):
    """A cache-key form of an argument (lists become tuples). The type goes in too: 2, 2.0
    and True are equal keys to Python but not the same program (``int_tensor ** 2.0`` is
    float), and repr tells -0.0 from 0.0."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return (type(value), repr(value))


def dispatch(name, fn, args, kwargs):
    """Run ``fn`` on Vars now, or on Tensors through a compiled, cached program.

    Arguments that are neither numbers, strings, tuples nor None are the
    tensors; the rest (axes, shapes, dtypes) are part of the cache key.
    """
    if context.current() is not None or any(isinstance(a, Var) for a in args):
        return fn(*args, **kwargs)
    if not kwargs and all(type(a) is Tensor for a in args):  # t.sum(), t.exp(): the key below
        args = _zero_d(args) if len(args) > 1 else args
        return call_function(fn, list(args), (name, tuple(range(len(args))), (), ()))
    keywords = tuple(k for k, v in kwargs.items() if isinstance(v, (Tensor, Var)))
    if keywords:  # a tensor given by keyword (clamp(x, min=t)) is an input like the others
        args = args + tuple(kwargs[k] for k in keywords)
        kwargs = {k: v for k, v in kwargs.items() if k not in keywords}
        fn, name = functools.partial(_by_keyword, fn, len(args) - len(keywords), keywords), \
            (name, keywords)
    args = tuple(_zero_d(args)) if len(args) > 1 else args
    arrays = [i for i, a in enumerate(args)
              if a is not None and not isinstance(a, (numbers.Number, tuple, list, str))]
    fixed = {i: a for i, a in enumerate(args) if i not in arrays}

    def traced(*tensors):
        full = {**fixed, **dict(zip(arrays, tensors))}
        return fn(*[full[i] for i in range(len(args))], **kwargs)

    key = (name, tuple(arrays), tuple((i, _frozen(v)) for i, v in fixed.items()),
           tuple((k, _frozen(v)) for k, v in sorted(kwargs.items())))
    return call_function(traced, [args[i] for i in arrays], key)


def _by_keyword(fn, count, keywords, *args, **kwargs):
    """``fn`` with the trailing ``args`` passed as the ``keywords`` they came by."""
    return fn(*args[:count], **kwargs, **dict(zip(keywords, args[count:])))


def binary(op, x, y):
    """``x <op> y`` with a Tensor on at least one side."""
    if isinstance(x, Var) or isinstance(y, Var) or context.current() is not None:
        return frontend.apply(op, x, y)  # recording a definition: the tensor is lifted
    if isinstance(y, numbers.Real) and not isinstance(y, bool):
        y = _scalar(y, x)
    elif isinstance(x, numbers.Real) and not isinstance(x, bool):
        x = _scalar(x, y)
    x, y = _zero_d([x, y])
    if not REGISTRY[op].differentiable:  # a comparison: nothing to record
        with no_grad():
            return call_function(_applier(op), [x, y], (op,))
    return call_function(_applier(op), [x, y], (op,))


def _zero_d(operands):
    """torch's rule for 0-d tensors: beside float tensors with dimensions, a 0-d float
    tensor takes their dtype, as a Python number would (``float32 * float64 0-d`` is
    float32). Converted by a cast, through which the gradient flows."""
    if all(not isinstance(a, Tensor) or a.data.ndim for a in operands):
        return operands  # no 0-d tensor: the common case
    floats = [a.data.dtype for a in operands
              if isinstance(a, Tensor) and a.data.ndim and a.data.dtype.kind == "f"]
    if not floats:
        return operands
    dtype = max(floats, key=lambda d: d.itemsize)
    return [a.to(dtype.name) if isinstance(a, Tensor) and not a.data.ndim and
            a.data.dtype.kind == "f" and a.data.dtype != dtype else a for a in operands]


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
        return lambda self: apply_op(op, self)
    if reflected:
        return lambda self, other: binary(op, other, self)
    return lambda self, other: binary(op, self, other)


def apply_op(name, *args, **attrs):
    """``lucid.<op>(...)`` and ``t.<op>(...)``: the op applied now or through a program.

    For an elementwise op every argument is an operand: a Python number beside a
    Tensor is passed as a 0-d input (:func:`_scalar`), as in arithmetic.
    """
    if len(args) == 1 and not attrs and type(args[0]) is Tensor and context.current() is None:
        return call_function(_applier(name), [args[0]], (name, (0,), (), ()))  # t.exp()
    like = next((a for a in args if isinstance(a, Tensor)), None)
    if like is not None and REGISTRY[name].kind is Kind.ELEMENTWISE and \
            context.current() is None and not any(isinstance(a, Var) for a in args):
        args = tuple(_scalar(a, like) if isinstance(a, numbers.Real) and not isinstance(a, bool)
                     else a for a in args)
    return dispatch(name, _applier(name), args, attrs)  # which applies _zero_d


_APPLIERS = {}  # op name -> frontend.apply of it


def _applier(name):
    fn = _APPLIERS.get(name)
    if fn is None:
        fn = _APPLIERS[name] = functools.partial(frontend.apply, name)
    return fn


def _op_method(name, arity):
    """``t.<name>(...)`` for an op whose record offers a method (``t.exp()``)."""
    run = binary if arity == 2 else apply_op  # t.eq(u): as the operator would

    def method(self, *args, **attrs):
        return run(name, self, *args, **attrs)
    method.__name__ = method.__qualname__ = name
    return method


_OFFERED = set()  # the op methods installed on Tensor (an explicit attribute wins over one)


def _offer(name, op):
    """Keep ``Tensor.<name>`` in step with the op record ``name`` (None: removed).

    Installed rather than found by ``Tensor.__getattr__``: a class with ``__getattr__``
    pays on every attribute read (``t.data``), about 20 ns each on CPython 3.11.
    """
    if name in _OFFERED:
        delattr(Tensor, name)
        _OFFERED.discard(name)
    if op is not None and method_op(name) is op and not hasattr(Tensor, name):
        setattr(Tensor, name, _op_method(name, op.arity))
        _OFFERED.add(name)


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


def _inplace(op, compute=None):
    """``t <op>= other`` (or ``t.<op>_(*others)``, the result of ``compute(t, *others)``):
    written into ``t`` under no_grad or when nothing records, as torch.

    When ``t`` has a history (or an operand requires grad) and grad mode is on,
    ``t`` comes to stand for the result, its history extended, as torch records
    an in-place op; a leaf that requires grad is refused (:func:`check_inplace`).
    """
    compute = compute or functools.partial(binary, op)

    def method(self, *others):
        check_inplace(self, f"{op}_")
        records = is_grad_enabled() and (self.requires_grad or any(
            isinstance(o, Tensor) and o.requires_grad for o in others))
        before = Tensor._wrap(self.data, self._origin) if records else self.detach()
        result = compute(before, *[before if o is self else o for o in others])  # t += t: once
        if result.shape != self.shape:
            raise RuntimeError(f"output with shape {self.shape} doesn't match the broadcast "
                               f"shape {result.shape}")
        if not np.can_cast(result.dtype, self.dtype, "same_kind") or \
                records and result.dtype != self.dtype:
            raise RuntimeError(f"in-place {op}: result type {result.dtype} can't be cast to "
                               f"the desired output type {self.dtype}")
        if records:
            if getattr(self, "_base", None) is not None:
                raise RuntimeError(f"{op}_: lucid does not record an in-place op on a view into "
                                   "the graph (torch rewrites the base's history; lucid would "
                                   "leave it stale): clone() the view, or write under no_grad")
            extend_history(self, result.data, result._origin)
        else:
            write(self, result.data)
        return self
    return method


def _getitem(self, key):
    if isinstance(key, Tensor) or isinstance(key, tuple) and any(isinstance(k, Tensor)
                                                                  for k in key):
        key = tuple(k.data if isinstance(k, Tensor) else k for k in
                    (key if isinstance(key, tuple) else (key,)))
    spec, indices = frontend.index_key(key, self.shape)
    return dispatch("index", frontend.index, (self, spec, *[Tensor._wrap(a) for a in indices]),
                    {})


def _setitem(self, key, value):
    """``t[key] = value`` in place, under the rules of :meth:`Tensor.copy_`."""
    check_inplace(self, "__setitem__")
    if is_grad_enabled() and (self._origin is not None or
                              isinstance(value, Tensor) and value.requires_grad):
        raise RuntimeError("lucid does not record t[key] = value into a graph; build the "
                           "new value with lucid.where or indexing, or write under no_grad")
    if isinstance(key, Tensor) or isinstance(key, tuple):
        key = tuple(k.data if isinstance(k, Tensor) else k for k in
                    (key if isinstance(key, tuple) else (key,)))
    value = value.data if isinstance(value, Tensor) else np.asarray(value)
    if not np.can_cast(value.dtype, self.dtype, "same_kind") and value.ndim:
        raise RuntimeError(f"__setitem__: a {value.dtype} value can't be stored in a "
                           f"{self.dtype} tensor")
    if not self.data.flags.writeable:
        self.data = self.data.copy()
    self.data[key] = value
    self._version += 1
    note_write(self.data)


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
Tensor.masked_fill_ = _inplace("masked_fill", Tensor.masked_fill)
Tensor.__getitem__, Tensor.__setitem__ = _getitem, _setitem
Tensor.__pow__, Tensor.__rpow__ = _pow, _rpow
Tensor.T = property(Tensor.t)
Tensor.to = _to
for _kind, _dtype in [("float", "float32"), ("double", "float64"), ("long", "int64"),
                      ("bool", "bool")]:
    setattr(Tensor, _kind, lambda self, _d=_dtype: self.to(_d))
reserve(*dir(Tensor))  # an op named "data" or "grad" could never be a Tensor method
for _name, _record in list(REGISTRY.items()):  # after reserve: an op's own name stays free
    _offer(_name, _record)
REGISTRY.listeners.append(_offer)  # ops defined later (define_elementwise) too
