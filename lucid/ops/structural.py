"""The structural primitives: the rules sympy cannot derive, one record per op.

Each record holds the op's shape rule, its vector-Jacobian rule (``vjp(b,
node, g)`` returns one gradient node, or None, per input, built with a
builder ``b`` from the upstream gradient ``g``), its reference evaluation
(``run(attrs, dims, *arrays)``) and its NumPy source (``lower(attrs, shape,
*args)``, ``shape`` turning a symbolic shape into source), with a comment
saying the convention.
"""
from __future__ import annotations

from math import prod

import numpy as np

from . import attributes as at_
from .op import REGISTRY, Kind, Op
from .shapes import (axes_source, broadcast_shapes, check_dims, normalize_axes, reduced_shape,
                     result_dtype, static_size)
from .op import DTYPES


def structural(name, arity, **fields):
    if name in REGISTRY:
        raise ValueError(f"op {name!r} is already registered")
    REGISTRY[name] = op = Op(name=name, arity=arity, kind=fields.pop("kind", Kind.STRUCTURAL),
                             **fields)
    return op


def _inverse(perm):
    return tuple(int(i) for i in np.argsort(perm))


# -- leaves: a program input and a scalar constant ---------------------------------------
structural("placeholder", 0, kind=Kind.LEAF, doc="a program input")
structural("constant", 0, kind=Kind.LEAF, doc="a scalar constant, attrs value",
           attributes=at_.constant_schema)


# -- sum: the gradient is the upstream gradient spread back over the reduced axes ------------
def _axes(op, attrs, shape):
    """The axes attribute, which must be sorted, distinct and in range (as ``normalize_axes``
    gives them)."""
    axes = attrs["axes"]
    if normalize_axes(op, axes, len(shape)) != axes:
        raise ValueError(f"{op}: axes {axes!r} must be sorted, distinct and in range(0, "
                         f"{len(shape)})")
    return axes


def _sum_shape(shapes, dtypes, attrs):
    return reduced_shape(shapes[0], _axes("sum", attrs, shapes[0]), attrs["keepdims"]), dtypes[0]


def _sum_vjp(b, n, g):
    shape = b.shape(n.inputs[0])
    return (b.apply("broadcast_to", b.keepdims(g, shape, n.attrs["axes"]), shape=shape),)


structural(
    "sum", 1, doc="sum over attrs axes, attrs keepdims", shape=_sum_shape, vjp=_sum_vjp,
    run=lambda at, dims, x: np.sum(x, axis=at["axes"], keepdims=at["keepdims"]),
    lower=lambda at, shape, x: f"np.sum({x}, axis={axes_source(at['axes'])}"
                               f"{', keepdims=True' if at['keepdims'] else ''})",
    grad="broadcast_to(g, x.shape)", view=True,
    attributes=at_.schema("sum", axes=at_.ints, keepdims=at_.flag))

# -- numel: a count of positions, constant in the values: no gradient ------------------------
structural(
    "numel", 1, doc="number of elements of the input over attrs axes",
    shape=lambda shapes, dtypes, attrs: (reduced_shape((), _axes("numel", attrs, shapes[0]), 0),
                                         result_dtype([dtypes[0], "float32"])),
    run=lambda at, dims, x: prod(x.shape[i] for i in at["axes"]),
    lower=lambda at, shape, x: " * ".join(f"{x}.shape[{i}]" for i in at["axes"]) or "1",
    grad="0 (a count does not depend on values)", differentiable=False,
    attributes=at_.schema("numel", axes=at_.ints))


# -- broadcast_to: summing over the broadcast axes undoes the copies --------------------------
def _broadcast_shape(shapes, dtypes, attrs):
    target = check_dims("broadcast_to", attrs["shape"])
    if broadcast_shapes("broadcast_to", shapes[0], target) != target:
        raise ValueError(f"broadcast_to: cannot broadcast {shapes[0]} to {target}")
    return target, dtypes[0]


structural(
    "broadcast_to", 1, doc="broadcast to attrs shape", shape=_broadcast_shape,
    vjp=lambda b, n, g: (b.sum_to(g, b.shape(n.inputs[0])),),
    run=lambda at, dims, x: np.broadcast_to(x, dims(at["shape"])),
    lower=lambda at, shape, x: f"np.broadcast_to({x}, {shape(at['shape'])})",
    grad="sum g over the broadcast axes", view=True, logical=True,
    attributes=at_.schema("broadcast_to", shape=at_.dims))


# -- reshape and transpose: linear bijections, the gradient is moved back -------------------
def _reshape_shape(shapes, dtypes, attrs):
    src, dst = shapes[0], check_dims("reshape", attrs["shape"])
    if static_size(src) is not None and static_size(dst) is not None:
        if static_size(src) != static_size(dst):
            raise ValueError(f"reshape: cannot reshape {src} into {dst}")
    elif sorted(d for d in src if isinstance(d, str)) != \
            sorted(d for d in dst if isinstance(d, str)) or \
            prod(d for d in src if isinstance(d, int)) != prod(d for d in dst if isinstance(d, int)):
        # With symbolic dims: the same size symbols, and the same product of the others.
        raise ValueError(f"reshape: cannot prove {src} and {dst} have the same size")
    return dst, dtypes[0]


structural(
    "reshape", 1, doc="reshape to attrs shape", shape=_reshape_shape,
    vjp=lambda b, n, g: (b.apply("reshape", g, shape=b.shape(n.inputs[0])),),
    run=lambda at, dims, x: np.reshape(x, dims(at["shape"])),
    lower=lambda at, shape, x: f"{x}.reshape({shape(at['shape'])})",
    grad="reshape(g, x.shape)", view=True, alias=True, logical=True,
    attributes=at_.schema("reshape", shape=at_.dims))


def _transpose_shape(shapes, dtypes, attrs):
    perm = attrs["perm"]
    if not isinstance(perm, tuple) or any(type(p) is not int for p in perm) or \
            sorted(perm) != list(range(len(shapes[0]))):
        raise ValueError(f"transpose: {perm!r} is not a permutation of {len(shapes[0])} axes")
    return tuple(shapes[0][p] for p in perm), dtypes[0]


structural(
    "transpose", 1, doc="permute axes by attrs perm", shape=_transpose_shape,
    vjp=lambda b, n, g: (b.apply("transpose", g, perm=_inverse(n.attrs["perm"])),),
    run=lambda at, dims, x: np.transpose(x, at["perm"]),
    lower=lambda at, shape, x: f"{x}.T" if tuple(at["perm"]) == (1, 0) else
                               f"{x}.transpose({tuple(int(p) for p in at['perm'])})",
    grad="transpose(g, inverse perm)", view=True, alias=True, logical=True,
    attributes=at_.schema("transpose", perm=at_.ints))


# -- matmul: d(A @ B) = dY @ B^T for A, A^T @ dY for B ----------------------------------------
def _as_matrices(x, y):
    """torch's matmul rule: a 1-D left operand is a row (1, k), a 1-D right one a column."""
    return ((1,) + tuple(x) if len(x) == 1 else tuple(x)), \
        (tuple(y) + (1,) if len(y) == 1 else tuple(y))


def _matmul_shape(shapes, dtypes, attrs):
    x, y = shapes
    if not x or not y:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes {x} "
                         f"and {y}")
    x2, y2 = _as_matrices(x, y)
    if x2[-1] != y2[-2]:
        raise ValueError(f"matmul: inner dimensions differ: {x} @ {y}")
    batch = broadcast_shapes("matmul", x2[:-2], y2[:-2])  # batch dims broadcast
    return batch + x2[-2:-1] * (len(x) > 1) + y2[-1:] * (len(y) > 1), result_dtype(dtypes)


def _swap_last(b, n):
    ndim = len(b.shape(n))
    return b.apply("transpose", n, perm=tuple(range(ndim - 2)) + (ndim - 1, ndim - 2))


def _matmul_vjp(b, n, g):
    x, y = n.inputs
    xs, ys = b.shape(x), b.shape(y)
    if len(xs) == len(ys) == 2:
        return (b.apply("matmul", g, _swap_last(b, y)), b.apply("matmul", _swap_last(b, x), g))
    # 1-D operands as matrices, the gradient as their product's shape; then back, with the
    # gradient summed over the batch dims an operand was broadcast along
    x2, y2 = _as_matrices(xs, ys)
    batch = broadcast_shapes("matmul", x2[:-2], y2[:-2])
    xm = x if len(xs) > 1 else b.apply("reshape", x, shape=x2)
    ym = y if len(ys) > 1 else b.apply("reshape", y, shape=y2)
    gm = b.apply("reshape", g, shape=batch + (x2[-2], y2[-1])) if min(len(xs), len(ys)) == 1 \
        else g
    gx = b.sum_to(b.apply("matmul", gm, _swap_last(b, ym)), x2)
    gy = b.sum_to(b.apply("matmul", _swap_last(b, xm), gm), y2)
    return (gx if len(xs) > 1 else b.apply("reshape", gx, shape=xs),
            gy if len(ys) > 1 else b.apply("reshape", gy, shape=ys))


structural(
    "matmul", 2, doc="matrix product as torch.matmul (1-D operands, broadcast batch dims)",
    shape=_matmul_shape, dunder="matmul", vjp=_matmul_vjp,
    run=lambda at, dims, x, y: x @ y,
    lower=lambda at, shape, x, y: f"{x} @ {y}", lower_into="np.matmul",
    grad="g @ b.T (summed over broadcast batch dims) | a.T @ g (likewise)")


# -- cast: the gradient goes back in the input's dtype ------------------------------------------
def _cast_shape(shapes, dtypes, attrs):
    if type(attrs["dtype"]) is not str or attrs["dtype"] not in DTYPES:
        raise ValueError(f"cast: unsupported dtype {attrs['dtype']!r}")
    return shapes[0], attrs["dtype"]


structural(
    "cast", 1, doc="convert to attrs dtype", shape=_cast_shape,
    vjp=lambda b, n, g: (b.apply("cast", g, dtype=b.dtype(n.inputs[0])),),
    run=lambda at, dims, x: x.astype(at["dtype"]),
    lower=lambda at, shape, x: f"{x}.astype(np.{at['dtype']})",
    grad="cast(g, x.dtype)", logical=True,
    attributes=at_.schema("cast", dtype=at_.dtype))


# -- detach: the value, with no gradient (torch's detach, for conventions such as clamp's) -----
structural(
    "detach", 1, doc="the input's value, through which no gradient flows",
    shape=lambda shapes, dtypes, attrs: (shapes[0], dtypes[0]),
    run=lambda at, dims, x: x, lower=lambda at, shape, x: f"{x}.view()",
    grad="0 (cut off)", view=True, alias=True, differentiable=False, logical=True)
