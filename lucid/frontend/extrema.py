"""Extrema and limits composed from the primitives: amax/amin, argmax/argmin, max/min,
``where``, ``masked_fill`` and ``clamp``, with torch's conventions for their gradients.

``amax``/``amin`` (and ``x.max()``) share the gradient evenly among ties;
``x.max(dim)`` returns ``(values, indices)`` with the values taken *at* the
indices (``take_along``), so the gradient reaches only the returned position.
"""
from __future__ import annotations

import collections
import math
import numbers

from ..ops import FLOATS
from ..ops.shapes import normalize_axes
from .var import Var, apply, as_var, cast, reshape as _reshape


def dim_args(dim, axis, keepdim, keepdims):
    """``(dim, keepdim)`` from torch's ``dim``/``keepdim`` or NumPy's ``axis``/``keepdims``."""
    if axis is not None:
        if dim is not None:
            raise TypeError("give dim or its alias axis, not both")
        dim = axis
    return dim, bool(keepdim if keepdims is None else keepdims)


def amax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The maximum over ``dim``; its gradient is shared evenly among tied maxima."""
    dim, keep = dim_args(dim, axis, keepdim, keepdims)
    x = as_var(x)
    dim = None if isinstance(dim, (tuple, list)) and not dim else dim  # torch: () is every dim
    return apply("max", x, axes=normalize_axes("max", dim, x.ndim), keepdims=keep)


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The minimum over ``dim``; its gradient is shared evenly among tied minima."""
    dim, keep = dim_args(dim, axis, keepdim, keepdims)
    x = as_var(x)
    dim = None if isinstance(dim, (tuple, list)) and not dim else dim  # torch: () is every dim
    return apply("min", x, axes=normalize_axes("min", dim, x.ndim), keepdims=keep)


def _position(op, x, dim, keepdim):
    x = as_var(x)
    if dim is None:  # of the flattened input; torch keeps every dim as 1 with keepdim
        at = apply(op, x, axis=None, keepdims=False)
        return _reshape(at, (1,) * x.ndim) if keepdim and x.ndim else at
    return apply(op, x, axis=normalize_axes(op, dim, x.ndim)[0], keepdims=bool(keepdim))


def argmax(x, dim=None, keepdim=False):
    """The position of the first maximum along ``dim`` (of the flattened input if None)."""
    return _position("argmax", x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    """The position of the first minimum along ``dim`` (of the flattened input if None)."""
    return _position("argmin", x, dim, keepdim)


class ReturnTypes(collections.namedtuple("ReturnTypes", ["values", "indices"])):
    """``(values, indices)``, also as ``.values`` / ``.indices`` (torch's ``return_types``)."""

    __slots__ = ()


def _extreme(op, x, dim, keepdim):
    """``(values, indices)`` along ``dim``: the values taken *at* the indices, so the
    gradient reaches only the returned position, as torch's ``max(dim)``."""
    x = as_var(x)
    (axis,) = normalize_axes(op, dim, x.ndim)
    at = apply(f"arg{op}", x, axis=axis, keepdims=True)
    values = apply("take_along", x, at, axis=axis)
    if keepdim:
        return ReturnTypes(values, at)
    shape = x.shape[:axis] + x.shape[axis + 1:]
    return ReturnTypes(_reshape(values, shape), _reshape(at, shape))


def max_(x, dim=None, keepdim=False):
    """``x.max()``: the maximum (gradient shared among ties, as ``amax``);
    ``x.max(dim)``: ``(values, indices)`` along ``dim``, the gradient to the index only.

    Examples
    --------
    >>> import lucid
    >>> x = lucid.Tensor([[1.0, 3.0, 3.0]], dtype="float64", requires_grad=True)
    >>> values, indices = x.max(1)
    >>> values.data.tolist(), indices.data.tolist()
    ([3.0], [1])
    >>> values.sum().backward(); x.grad.tolist()
    [[0.0, 1.0, 0.0]]
    """
    if isinstance(dim, Var):  # torch.max(input, other): the elementwise maximum
        return maximum(x, dim)
    return amax(x) if dim is None else _extreme("max", x, dim, keepdim)


def min_(x, dim=None, keepdim=False):
    """``x.min()``: the minimum (gradient shared among ties, as ``amin``);
    ``x.min(dim)``: ``(values, indices)`` along ``dim``, the gradient to the index only;
    ``x.min(other)``: :func:`minimum`."""
    if isinstance(dim, Var):
        return minimum(x, dim)
    return amin(x) if dim is None else _extreme("min", x, dim, keepdim)


def _pick(first, second, a, b):
    """``a`` where ``first(a, b)``, ``b`` where ``second(a, b)``; at a tie the mean of the
    two (torch splits a tie's gradient evenly), and where either is NaN their sum (NaN,
    with the whole gradient to each, as torch)."""
    a, b = as_var(a, b if isinstance(b, Var) else None), as_var(b, a if isinstance(a, Var) else None)
    middle = where(apply("eq", a, b), (a + b) * 0.5, a + b)
    return where(apply(first, a, b), a, where(apply(second, a, b), b, middle))


def maximum(input, other):
    """The elementwise maximum of two tensors (broadcast), as ``torch.maximum``; a NaN in
    either gives NaN, and a tie sends half the gradient to each.

    Examples
    --------
    >>> import lucid
    >>> a = lucid.Tensor([1.0, 5.0, 2.0], dtype="float64", requires_grad=True)
    >>> y = lucid.maximum(a, lucid.Tensor([3.0, 4.0, 2.0], dtype="float64"))
    >>> y.data.tolist()
    [3.0, 5.0, 2.0]
    >>> y.sum().backward(); a.grad.tolist()
    [0.0, 1.0, 0.5]
    """
    return _pick("gt", "lt", input, other)


def minimum(input, other):
    """The elementwise minimum of two tensors (broadcast), as ``torch.minimum``."""
    return _pick("lt", "gt", input, other)


def _both(p, q):
    return apply("eq", apply("add", p, q), 2)  # bools add as integers


def _either(p, q):
    return apply("gt", apply("add", p, q), 0)


def _replaced(beyond, x, bound):
    """Where ``bound`` replaces ``x`` in a clamp: ``beyond``, or where the bound is NaN, which
    torch's clamp propagates as ``maximum``/``minimum`` do."""
    if isinstance(bound, Var):
        return _either(beyond, apply("ne", bound, bound))
    if isinstance(bound, numbers.Real) and math.isnan(bound):
        return _either(apply("eq", x, x), apply("ne", x, x))  # everywhere
    return beyond


def clamp(x, min=None, max=None):
    """``x`` limited to ``[min, max]`` (numbers or tensors, broadcast), as ``torch.clamp``.

    torch's gradient convention: ``x`` gets it where ``min <= x <= max`` (not where ``x``
    is NaN), ``min`` where ``x < min < max``, ``max`` where ``x > max`` or ``max < min``;
    elsewhere (``x < min == max``, NaN) nothing does. A NaN in ``x`` or in a bound gives
    NaN, as torch's; there no bound gets a gradient (torch's rule may still give one).

    Examples
    --------
    >>> import lucid
    >>> x = lucid.Tensor([-2.0, 0.5, 1.0, 3.0], dtype="float64", requires_grad=True)
    >>> y = x.clamp(0.0, 1.0)
    >>> y.data.tolist()
    [0.0, 0.5, 1.0, 1.0]
    >>> y.sum().backward(); x.grad.tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    x = as_var(x)
    value = x  # max(x, min) then min(., max): NaN stays NaN, max wins when max < min
    if min is not None:
        value = where(_replaced(apply("lt", x, min), x, min), min, value)
    if max is not None:
        value = where(_replaced(apply("gt", value, max), x, max), max, value)
    out = apply("detach", value)  # the values; below, who gets the gradient where
    if max is not None:
        take = apply("gt", x, max) if min is None else \
            _either(apply("gt", x, max), apply("lt", max, min))
        out = where(_both(take, apply("eq", value, max)), max, out)  # not where a NaN won
    if min is not None:
        take = apply("lt", x, min) if max is None else \
            _both(apply("lt", x, min), apply("lt", min, max))
        out = where(_both(take, apply("eq", value, min)), min, out)
    keep = apply("ge", x, min) if max is None else apply("le", x, max) if min is None else \
        _both(apply("ge", x, min), apply("le", x, max))
    return where(keep, x, out)


def where(condition, x, y):
    """``x`` where ``condition`` holds, else ``y`` (broadcast; numbers take the other's dtype)."""
    like = next((v for v in (x, y) if isinstance(v, Var)), None)
    x, y = as_var(x, like), as_var(y, like)
    if x.dtype != y.dtype:
        dtype = sorted({x.dtype, y.dtype} & {"float32", "float64"} or {"int64"})[-1]
        x, y = cast(x, dtype), cast(y, dtype)
    return apply("where", condition, x, y)


def masked_fill(input, mask, value):
    """``input`` with ``value`` where the bool ``mask`` is True (broadcast), as
    ``torch.masked_fill``: the result keeps ``input``'s dtype, ``input`` gets the gradient
    where ``mask`` is False, and a 0-d tensor ``value`` the sum of it where ``mask`` is True.

    Examples
    --------
    >>> import lucid
    >>> x = lucid.Tensor([[1.0, 2.0, 3.0]], dtype="float64", requires_grad=True)
    >>> y = x.masked_fill(lucid.Tensor([[True, False, False]]), float("-inf"))
    >>> y.data.tolist()
    [[-inf, 2.0, 3.0]]
    >>> p = y.softmax(1); p.data.round(4).tolist()
    [[0.0, 0.2689, 0.7311]]
    >>> (p * lucid.Tensor([[1.0, 2.0, 3.0]], dtype="float64")).sum().backward()
    >>> x.grad.round(4).tolist()
    [[0.0, -0.1966, 0.1966]]
    """
    input, mask = as_var(input), as_var(mask)
    if mask.dtype != "bool":
        raise RuntimeError("masked_fill only supports boolean masks, but got mask with "
                           f"dtype {mask.dtype}")
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, (Var, numbers.Real)):
        raise TypeError(f"masked_fill: value must be a number or a 0-d tensor, got "
                        f"{type(value).__name__}")
    if isinstance(value, Var) and value.ndim:
        raise RuntimeError("masked_fill only supports a 0-dimensional value tensor, but got "
                           f"tensor with {value.ndim} dimension(s)")
    if input.dtype == "bool":  # a constant is never bool: fill in integers, compare back
        value = apply("ne", value, 0) if isinstance(value, Var) else int(value != 0)
        return apply("ne", masked_fill(cast(input, "int64"), mask, value), 0)
    fill = cast(value, input.dtype) if isinstance(value, Var) else _fill_value(value, input)
    return apply("where", mask, fill, input)


def _fill_value(value, input):
    """A number as a constant of ``input``'s dtype, converted as torch converts it
    (truncated for int64; an infinity or NaN fits a float dtype only); one out of the
    dtype's range is a RuntimeError, as torch's."""
    if input.dtype in FLOATS:
        value = float(value)
    elif math.isfinite(value):
        value = math.trunc(value)
    else:
        raise _overflow(value, input)
    try:
        return as_var(value, input)
    except ValueError:  # out of range: refused where constants are made (ops.attributes)
        raise _overflow(value, input) from None


def _overflow(value, input):
    return RuntimeError(f"masked_fill: value {value!r} cannot be converted to {input.dtype} "
                        "without overflow")
