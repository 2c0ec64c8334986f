"""Selecting one position per line along an axis: ``take_along`` and its gradient.

``take_along(x, index, axis)`` is NumPy's ``take_along_axis`` with an int64
``index`` of ``x``'s shape but 1 along ``axis``: one position per line, such
as an ``argmax`` kept with ``keepdim`` (``x.max(dim)`` returns the value *at*
that position, so its gradient reaches only it, as torch's) or a class label.
With one position per line no position repeats, so the gradient is the
upstream gradient put back at the positions (``take_along_grad``).
"""
from __future__ import annotations

import numpy as np

from . import attributes as at_
from .structural import structural


def _axis(op, attrs, ndim):
    axis = attrs["axis"]
    if not 0 <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} out of range for a {ndim}D input")
    return axis


def _lines(op, shape, index, axis):
    """Raise unless ``index`` is ``shape`` with 1 along ``axis``."""
    want = tuple(1 if i == axis else d for i, d in enumerate(shape))
    if tuple(index) != want:
        raise ValueError(f"{op}: the index must have shape {want} (one position per line "
                         f"along axis {axis}), got {tuple(index)}")


def _take_shape(shapes, dtypes, attrs):
    x, index = shapes
    if dtypes[1] != "int64":
        raise ValueError(f"take_along: the index must be int64, got {dtypes[1]}")
    _lines("take_along", x, index, _axis("take_along", attrs, len(x)))
    return tuple(index), dtypes[0]


def _put_shape(shapes, dtypes, attrs):
    g, index = shapes
    if dtypes[1] != "int64":
        raise ValueError(f"take_along_grad: the index must be int64, got {dtypes[1]}")
    shape = at_.dims("take_along_grad", attrs["shape"])
    axis = _axis("take_along_grad", attrs, len(shape))
    _lines("take_along_grad", shape, index, axis)
    if tuple(g) != tuple(index):
        raise ValueError(f"take_along_grad: the gradient {tuple(g)} must have the index's "
                         f"shape {tuple(index)}")
    return shape, dtypes[0]


def _put_run(at, dims, g, index):
    out = np.zeros(dims(at["shape"]), g.dtype)
    np.put_along_axis(out, index, g, axis=at["axis"])
    return out


structural(
    "take_along", 2, doc="x at the int64 positions b along attrs axis (b: 1 along the axis)",
    shape=_take_shape,
    vjp=lambda b, n, g: (b.apply("take_along_grad", g, n.inputs[1], axis=n.attrs["axis"],
                                 shape=b.shape(n.inputs[0])), None),
    run=lambda at, dims, x, index: np.take_along_axis(x, index, axis=at["axis"]),
    lower=lambda at, shape, x, index: f"np.take_along_axis({x}, {index}, "
                                      f"axis={int(at['axis'])})",
    grad="take_along_grad(g, b) | none (positions)", logical=True,
    attributes=at_.schema("take_along", axis=at_.integer))

structural(
    "take_along_grad", 2, doc="zeros of attrs shape with a put at the positions b along "
                              "attrs axis",
    shape=_put_shape,
    vjp=lambda b, n, g: (b.apply("take_along", g, n.inputs[1], axis=n.attrs["axis"]), None),
    run=_put_run,
    # one expression: np.put_along_axis writes in place and returns None
    lower=lambda at, shape, g, index: (
        f"(_acc := np.zeros_like({g}, shape={shape(at['shape'])}), "
        f"np.put_along_axis(_acc, {index}, {g}, axis={int(at['axis'])}), _acc)[2]"),
    grad="take_along(g, b) | none (positions)", logical=True,
    attributes=at_.schema("take_along_grad", axis=at_.integer, shape=at_.dims))
