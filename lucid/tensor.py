"""The Tensor face: arrays that remember which compiled program made them.

A Tensor is data plus, when it came out of a program that can differentiate,
the *call* that produced it. ``backward`` walks those calls newest first and
runs each program's compiled backward; nothing here differentiates by itself,
the graphs are the single source of truth.
"""
from __future__ import annotations

import heapq
import numbers

import numpy as np

_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}


def as_dtype(dtype):
    """Normalise a dtype spelling (``"float64"``, ``np.float64``) to a numpy dtype."""
    try:
        d = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"unsupported dtype {dtype!r}") from e
    if d.name not in _DTYPES:
        raise TypeError(f"unsupported dtype {dtype!r}: lucid has float32, float64 and int64")
    return d


_FLOATS = (np.dtype("float32"), np.dtype("float64"))


def to_array(data, dtype=None, copy=True):
    """Convert user data to an ndarray: float32 by default, float64 arrays kept.

    A NumPy array that already has the wanted dtype is used as it is when
    ``copy`` is False (lucid never writes into an array it was given).
    """
    if not copy and data.__class__ is not np.ndarray and isinstance(data, Tensor):
        data = data.data
    if not copy and data.__class__ is np.ndarray and (
            data.dtype in _FLOATS if dtype is None else data.dtype == dtype):
        return data
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None:
        keep = isinstance(data, np.ndarray) and data.dtype == np.float64
        dtype = np.float64 if keep else np.float32
    dtype = as_dtype(dtype)
    try:
        raw = np.asarray(data)
    except ValueError:
        raise ValueError("Tensor data must be a rectangular nested list of numbers "
                         "(ragged data given)") from None
    if raw.dtype == object:
        raise ValueError("Tensor data must be a rectangular nested list of numbers (ragged or mixed data given)")
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be numeric, got {raw.dtype.name} data")
    return np.array(raw, dtype=dtype, copy=True if copy else None)


class Tensor:
    """An array with an optional gradient.

    Parameters
    ----------
    data : array_like
        Numbers; a nested list must be rectangular.
    requires_grad : bool
        Whether ``backward`` should fill ``.grad`` for this tensor.
    dtype : str or numpy dtype, optional
        ``"float32"`` (the default), ``"float64"`` or ``"int64"``.

    Notes
    -----
    Like ``torch.as_tensor``, a NumPy array that already has the dtype asked
    for (float32 or float64 when none is asked) is shared, not copied: lucid
    never writes into it, but changing it in place changes the Tensor.
    Lists, other dtypes and Tensors are copied.

    Examples
    --------
    >>> t = Tensor([[1.0, 2.0]], requires_grad=True)
    >>> t.shape, t.dtype
    ((1, 2), dtype('float32'))
    >>> print(t)
    Tensor([[1., 2.]], grad=None)
    """

    __slots__ = ("data", "requires_grad", "grad", "_origin", "__weakref__")
    __array_ufunc__ = None  # ndarray * Tensor defers to Tensor.__rmul__ (keeps the gradient)

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = to_array(data, dtype, copy=isinstance(data, Tensor))
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError("only floating point tensors can require gradients")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._origin = None  # (Call, output key) when a program made this tensor

    @classmethod
    def _wrap(cls, array, origin=None):
        t = cls.__new__(cls)
        if not isinstance(array, np.ndarray):
            array = np.asarray(array)  # 0-d results come back as NumPy scalars
        t.data, t.requires_grad, t.grad, t._origin = array, origin is not None, None, origin
        return t

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        grad = "None" if self.grad is None else np.array2string(self.grad, precision=4,
                                                                 separator=", ")
        return f"Tensor({body}, grad={grad})"

    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) · ``grad`` into ``.grad`` of every leaf and parameter.

        ``grad`` is the upstream gradient, of this tensor's shape; it may be
        left out only for a one-element tensor (it is then 1).
        """
        if not self.requires_grad:
            raise ValueError("backward: this tensor does not require grad "
                             "(no input or parameter of the program that made it does)")
        if grad is None:
            if self.data.size != 1:
                raise ValueError("backward: grad can be left out only for a one-element "
                                 f"output, this one has shape {self.shape}")
            grad = np.ones_like(self.data)
        grad = to_array(grad, self.data.dtype, copy=False)
        if grad.shape != self.shape:
            raise ValueError(f"backward: grad has shape {grad.shape}, expected {self.shape}")
        run_backward(self, grad)

    # -- a few eager ops, each compiled once per signature like a module ------------
    def __add__(self, other): return _binary("add", self, other)
    def __radd__(self, other): return _binary("add", other, self)
    def __sub__(self, other): return _binary("sub", self, other)
    def __rsub__(self, other): return _binary("sub", other, self)
    def __mul__(self, other): return _binary("mul", self, other)
    def __rmul__(self, other): return _binary("mul", other, self)
    def __truediv__(self, other): return _binary("div", self, other)
    def __rtruediv__(self, other): return _binary("div", other, self)
    def __neg__(self): return _unary(lambda x: -x, self)
    def __matmul__(self, other): return _binary("matmul", self, other)

    def sum(self, axis=None, keepdims=False):
        return _unary(lambda x: x.sum(axis, keepdims), self, ("sum", axis, keepdims))

    def mean(self, axis=None, keepdims=False):
        return _unary(lambda x: x.mean(axis, keepdims), self, ("mean", axis, keepdims))


def _binary(op, x, y):
    from . import eager  # noqa: PLC0415  (eager builds on this module)
    from .frontend import Var, apply, trace  # noqa: PLC0415

    if isinstance(x, Var) or isinstance(y, Var) or trace.current() is not None:
        return apply(op, x, y)  # recording a definition: the tensor is lifted
    if isinstance(y, numbers.Real) and not isinstance(y, bool):
        y = _scalar(y, x)
    elif isinstance(x, numbers.Real) and not isinstance(x, bool):
        x = _scalar(x, y)
    return eager.call_function(lambda a, b: apply(op, a, b), [x, y], (op,))


_SCALAR_DTYPES = {}  # (tensor dtype, scalar class) -> the dtype the scalar takes


def _scalar(value, other):
    """A Python number as the 0-d Tensor that stands for it beside the Tensor ``other``.

    It takes the dtype a constant would (an int stays int64 beside int64, a
    number takes a float tensor's dtype) but is a program input, not a
    constant, so one program serves every value and nothing differentiates it.
    """
    key = (other.data.dtype, value.__class__)
    dtype = _SCALAR_DTYPES.get(key)
    if dtype is None:
        from .ops import placeholder  # noqa: PLC0415
        from .ops.var import as_var  # noqa: PLC0415  (the one place that rule lives)

        like = placeholder((), other.data.dtype.name)
        dtype = _SCALAR_DTYPES[key] = np.dtype(as_var(value, like).dtype)
    return Tensor._wrap(np.asarray(value, dtype))


def _unary(fn, x, key=None):
    from . import eager  # noqa: PLC0415
    from .frontend import trace  # noqa: PLC0415

    if trace.current() is not None:
        return fn(trace.lift(x))
    return eager.call_function(fn, [x], key or (fn.__code__,))


def run_backward(root, grad):
    """Run the backward part of every call ``root`` depends on, newest first.

    Leaf gradients are summed and committed only once every part has run:
    a failure leaves every ``.grad`` untouched.
    """
    leaves = {}
    if root._origin is None:
        _accumulate(leaves, root, grad)
        _commit_grads(leaves, foreign=grad)
        return
    call, key = root._origin
    pending = {id(call): {key: grad}}
    heap = [call]
    while heap:
        call = heapq.heappop(heap)
        for tensor, g in call.backward(pending.pop(id(call))):
            if tensor._origin is None:
                _accumulate(leaves, tensor, g)
                continue
            parent, out_key = tensor._origin
            slot = pending.get(id(parent))
            if slot is None:
                slot = pending[id(parent)] = {}
                heapq.heappush(heap, parent)
            slot[out_key] = g if out_key not in slot else slot[out_key] + g
    _commit_grads(leaves)


def _accumulate(leaves, tensor, g):
    entry = leaves.get(id(tensor))
    leaves[id(tensor)] = (tensor, g if entry is None else entry[1] + g)


def _commit_grads(leaves, foreign=None):
    """Apply the summed gradients, only once every backward part has run (a failure leaves
    every ``.grad`` untouched). No two tensors, and not the caller, share a ``.grad`` array."""
    handed = {id(foreign)} if foreign is not None else set()
    for tensor, g in leaves.values():
        if not tensor.requires_grad:
            continue
        if tensor.grad is not None:
            tensor.grad = tensor.grad + g
            continue
        if id(g) in handed or g.base is not None:
            g = g.copy()
        handed.add(id(g))
        tensor.grad = g
