"""Indexing, selection, comparisons, powers and extrema: structural records, one each.

``index`` is NumPy's ``x[key]``: the key (``attrs["key"]``) holds slices,
ints, new axes and *index inputs* (the op's further inputs, integer arrays),
so one record covers basic slicing (a view) and integer-array gathers. Its
gradient is ``index_grad``: the upstream gradient scattered back into zeros of
the input's shape, *added* where an index repeats (``np.add.at``).
"""
from __future__ import annotations

import numpy as np

from . import attributes as at_
from .nonfinite import source
from .shapes import axes_source, broadcast_shapes, reduced_shape, result_dtype
from .structural import structural

# A key item: ("slice", start, stop, step), ("int", i), ("new",) or ("array", k), where k is
# the position of the index input among the op's inputs after the first.


def key_items(what, key):
    """An ``index`` key as plain values: each item a tagged tuple of exact ints and Nones."""
    if not isinstance(key, (tuple, list)):
        raise ValueError(f"{what} must be a tuple of key items, got {type(key).__name__}")
    out = []
    for item in key:
        tag = item[0] if isinstance(item, (tuple, list)) and item else None
        if tag == "slice" and len(item) == 4:
            out.append(("slice",) + tuple(None if v is None else at_.integer(what, v)
                                          for v in item[1:]))
        elif tag in ("int", "array") and len(item) == 2:
            out.append((tag, at_.integer(what, item[1])))
        elif tag == "new" and len(item) == 1:
            out.append(("new",))
        else:
            raise ValueError(f"{what}: {item!r} is not a key item")
    return tuple(out)


def _optional_int(what, value):
    return None if value is None else at_.integer(what, value)


def _slice_len(dim, start, stop, step):
    if start is None and stop is None and step in (None, 1):
        return dim  # a full slice keeps even a symbolic size
    if isinstance(dim, str):
        raise ValueError(f"index: cannot slice the symbolic dim {dim} with "
                         f"{start}:{stop}:{step}; only ':' keeps it")
    return len(range(*slice(start, stop, step).indices(dim)))


def _index_shape(shapes, dtypes, attrs):
    src, key, out = shapes[0], attrs["key"], []
    if any(d not in ("int64",) for d in dtypes[1:]):
        raise ValueError(f"index: index arrays must be int64, got {dtypes[1:]}")
    arrays = [i for i, item in enumerate(key) if item[0] in ("array", "int")]
    advanced = any(item[0] == "array" for item in key)
    joined = broadcast_shapes("index", *[shapes[1 + key[i][1]] for i in arrays
                                         if key[i][0] == "array"]) if advanced else ()
    adjacent = arrays == list(range(arrays[0], arrays[-1] + 1)) if advanced else True
    axis, placed = 0, False
    for item in key:
        if item[0] == "new":
            out.append(1)
            continue
        if axis >= len(src):
            raise ValueError(f"index: too many indices for a {len(src)}D input")
        dim = src[axis]
        axis += 1
        if item[0] == "slice":
            out.append(_slice_len(dim, *item[1:]))
        elif item[0] == "int":
            if isinstance(dim, int) and not -dim <= item[1] < dim:
                raise IndexError(f"index {item[1]} is out of bounds for an axis of size {dim}")
        elif adjacent and not placed:
            out.extend(joined)
            placed = True
    out.extend(src[axis:])
    if advanced and not adjacent:
        out = list(joined) + out  # NumPy's rule: separated index arrays go first
    return tuple(out), dtypes[0]


def _key_source(key, indices, subscript=True):
    parts = []
    for item in key:
        if item[0] == "slice" and not subscript:  # a slice outside brackets is spelled out
            parts.append(f"slice({', '.join(repr(v) for v in item[1:])})")
        elif item[0] == "slice":
            parts.append(":".join("" if v is None else str(int(v)) for v in item[1:3]) +
                         ("" if item[3] in (None, 1) else f":{int(item[3])}"))
        elif item[0] == "int":
            parts.append(str(int(item[1])))
        elif item[0] == "new":
            parts.append("None")
        else:
            parts.append(indices[item[1]])
    return ", ".join(parts) + ("," if len(parts) == 1 else "")


def _key_value(key, indices):
    return tuple(slice(*item[1:]) if item[0] == "slice" else item[1] if item[0] == "int" else
                 None if item[0] == "new" else indices[item[1]] for item in key)


def _index_vjp(b, n, g):
    x, *indices = n.inputs
    back = b.apply("index_grad", g, *indices, key=n.attrs["key"], shape=b.shape(x))
    return (back,) + (None,) * len(indices)


def _scatter_run(at, dims, g, *indices):
    out = np.zeros(dims(at["shape"]), g.dtype)
    np.add.at(out, _key_value(at["key"], indices), g)
    return out


structural(
    "index", None, doc="x[attrs key]: slices, ints, new axes and integer index inputs",
    shape=_index_shape, vjp=_index_vjp,
    run=lambda at, dims, x, *ix: x[_key_value(at["key"], ix)],
    lower=lambda at, shape, x, *ix: f"{x}[{_key_source(at['key'], ix)}]",
    grad="index_grad(g, key) | none (indices)", view=True, alias=True, logical=True,
    attributes=at_.schema("index", key=key_items))

structural(
    "index_grad", None, doc="zeros of attrs shape with g added at x[attrs key] (repeats add up)",
    shape=lambda shapes, dtypes, attrs: (attrs["shape"], dtypes[0]),
    vjp=lambda b, n, g: (b.apply("index", g, *n.inputs[1:], key=n.attrs["key"]),) +
                        (None,) * (len(n.inputs) - 1),
    run=_scatter_run, attributes=at_.schema("index_grad", key=key_items, shape=at_.dims),
    # one expression: np.add.at accumulates where an index repeats, and returns None
    lower=lambda at, shape, g, *ix: (
        f"(_acc := np.zeros_like({g}, shape={shape(at['shape'])}), "
        f"np.add.at(_acc, ({_key_source(at['key'], ix, False)}), {g}), _acc)[2]"),
    grad="index(g, key) | none (indices)")


# -- comparisons: a bool that does not depend smoothly on the values: no gradient -------------
def _compare_shape(name):
    def shape(shapes, dtypes, attrs):
        return broadcast_shapes(name, *shapes), "bool"
    return shape


for _name, _np in [("eq", "equal"), ("ne", "not_equal"), ("lt", "less"),
                   ("le", "less_equal"), ("gt", "greater"), ("ge", "greater_equal")]:
    structural(_name, 2, doc=f"a {_np.replace('_', ' ')} b, elementwise (bool)",
               shape=_compare_shape(_name),
               run=lambda at, dims, x, y, f=getattr(np, _np): f(x, y),
               lower=lambda at, shape, x, y, f=_np: f"np.{f}({x}, {y})",
               grad="0 (a comparison is piecewise constant) | 0", differentiable=False,
               dunder=_name, method=True, logical=True)


# -- pow with a constant exponent: d(x**k) = k x**(k-1) ----------------------------------------
def _pow_shape(shapes, dtypes, attrs):
    k = attrs["exponent"]
    if type(k) not in (int, float):
        raise ValueError(f"pow: the exponent must be a number, got {k!r}")
    if dtypes[0] not in ("float32", "float64") and (type(k) is float or k < 0):
        raise ValueError(f"pow: a {dtypes[0]} tensor to the power {k!r}; convert it to a "
                         "float dtype first (x.to('float32'))")
    return shapes[0], dtypes[0]


def _pow_vjp(b, n, g):
    x, k = n.inputs[0], n.attrs["exponent"]
    dtype = result_dtype([b.dtype(x), "float32"])
    slope = b.apply("mul", b.apply("pow", x, exponent=k - 1), b.const(k, dtype))
    return (b.apply("mul", g, slope),)


structural(
    "pow", 1, doc="a ** attrs exponent (a constant)", shape=_pow_shape, vjp=_pow_vjp,
    run=lambda at, dims, x: np.power(x, at["exponent"]),
    lower=lambda at, shape, x: f"np.power({x}, {source(at['exponent'])})",
    grad="g * k * a ** (k - 1)",
    attributes=at_.schema("pow", exponent=lambda what, v: at_.number(v, "float64")))


# -- power with a tensor exponent: NumPy's real power; torch's values where 0**y is special ---
def _power_vjp(b, n, g):
    x, y = n.inputs
    dtype = b.dtype(n.name)
    zero = b.const(0, dtype)
    # d/dx = y x**(y-1), but 0 where y == 0 (also at x == 0, where the formula gives 0 * inf)
    slope = b.apply("mul", y, b.apply("power", x, b.apply("sub", y, b.const(1, dtype))))
    dx = b.apply("where", b.apply("eq", y, zero), zero, slope)
    # d/dy = x**y log x, but 0 where x == 0 and y >= 0 (NaN where log x is: x < 0)
    rate = b.apply("mul", n.name, b.apply("log", x))
    dy = b.apply("where", b.apply("eq", x, zero),
                 b.apply("where", b.apply("ge", y, zero), zero, rate), rate)
    return (b.sum_to(b.apply("mul", g, dx), b.shape(x)),
            b.sum_to(b.apply("mul", g, dy), b.shape(y)))


structural(
    "power", 2, doc="a ** b, elementwise (real: NaN for a negative base and a fractional b)",
    shape=lambda shapes, dtypes, attrs: (broadcast_shapes("power", *shapes),
                                         result_dtype(dtypes)),
    vjp=_power_vjp,
    run=lambda at, dims, x, y: np.power(x, y),
    lower=lambda at, shape, x, y: f"np.power({x}, {y})",
    grad="g * where(b == 0, 0, b * a ** (b - 1)) | g * where(a == 0 and b >= 0, 0, a ** b * log a)")


# -- where: the gradient goes to the side that was chosen ---------------------------------
def _where_shape(shapes, dtypes, attrs):
    if dtypes[0] != "bool":
        raise ValueError(f"where: the condition must be bool, got {dtypes[0]}")
    if dtypes[1] != dtypes[2]:
        raise ValueError(f"where: both sides must have one dtype, got {dtypes[1]} and {dtypes[2]}")
    return broadcast_shapes("where", *shapes), dtypes[1]


def _where_vjp(b, n, g):
    c, x, y = n.inputs
    zero = b.const(0, b.dtype(n.name))
    return (None, b.sum_to(b.apply("where", c, g, zero), b.shape(x)),
            b.sum_to(b.apply("where", c, zero, g), b.shape(y)))


structural(
    "where", 3, doc="a where the condition holds, else b", shape=_where_shape, vjp=_where_vjp,
    run=lambda at, dims, c, x, y: np.where(c, x, y),
    lower=lambda at, shape, c, x, y: f"np.where({c}, {x}, {y})",
    grad="none (condition) | where(c, g, 0) | where(c, 0, g)", logical=True)


# -- max and min over axes: the gradient is shared evenly among the extrema (torch's amax) ---
def _extreme_shape(shapes, dtypes, attrs):
    return reduced_shape(shapes[0], attrs["axes"], attrs["keepdims"]), dtypes[0]


def _extreme_vjp(b, n, g):
    x, axes = n.inputs[0], n.attrs["axes"]
    shape, dtype = b.shape(x), b.dtype(n.name)
    top = b.apply("broadcast_to", b.keepdims(n.name, shape, axes), shape=shape)
    hits = b.apply("cast", b.apply("eq", x, top), dtype=dtype)
    ties = b.apply("sum", hits, axes=axes, keepdims=True)
    spread = b.apply("broadcast_to", b.keepdims(g, shape, axes), shape=shape)
    return (b.apply("div", b.apply("mul", spread, hits),
                    b.apply("broadcast_to", ties, shape=shape)),)


for _name, _word in [("max", "maximum"), ("min", "minimum")]:
    structural(
        _name, 1, doc=f"{_word} over attrs axes, attrs keepdims", shape=_extreme_shape,
        vjp=_extreme_vjp,
        run=lambda at, dims, x, f=getattr(np, _name): f(x, axis=at["axes"],
                                                        keepdims=at["keepdims"]),
        lower=lambda at, shape, x, f=_name: f"np.{f}({x}, axis={axes_source(at['axes'])}"
                                            f"{', keepdims=True' if at['keepdims'] else ''})",
        grad=f"g / (number of {_word}s) at each {_word}, else 0",
        attributes=at_.schema(_name, axes=at_.ints, keepdims=at_.flag))


# -- argmax and argmin: a position, piecewise constant in the values: no gradient -----------
for _name, _word in [("argmax", "maximum"), ("argmin", "minimum")]:
    structural(
        _name, 1, doc=f"position of the first {_word} along attrs axis (None: flattened)",
        shape=lambda shapes, dtypes, attrs: (
            () if attrs["axis"] is None else
            reduced_shape(shapes[0], (attrs["axis"],), attrs["keepdims"]), "int64"),
        run=lambda at, dims, x, f=getattr(np, _name): f(x, axis=at["axis"],
                                                        keepdims=at["keepdims"]),
        lower=lambda at, shape, x, f=_name: f"np.{f}({x}, axis={at['axis']!r}"
                                            f"{', keepdims=True' if at['keepdims'] else ''})",
        grad="0 (a position)", differentiable=False,
        attributes=at_.schema(_name, axis=_optional_int, keepdims=at_.flag))


# -- uniform: random numbers that are a pure function of a key input ------------------------
def _uniform_shape(shapes, dtypes, attrs):
    if shapes[0] != () or dtypes[0] != "int64":
        raise ValueError(f"uniform: the key must be an int64 scalar, got {dtypes[0]}"
                         f"{list(shapes[0])}")
    if dtypes[1] not in ("float32", "float64"):
        raise ValueError(f"uniform: the shape source must be floating, got {dtypes[1]}")
    return shapes[1], dtypes[1]


structural(
    "uniform", 2, doc="numbers in [0, 1) of b's shape and dtype, drawn by a generator seeded "
                      "with the key a (the same key gives the same numbers)",
    shape=_uniform_shape,
    run=lambda at, dims, key, like: np.random.default_rng(int(key)).random(like.shape)
    .astype(like.dtype),
    lower=lambda at, shape, key, like: f"np.random.default_rng(int({key})).random("
                                       f"{like}.shape).astype({like}.dtype)",
    grad="0 (random numbers do not depend on the values) | 0", differentiable=False,
    logical=True)  # the int64 key must reach it as it is, not promoted to float
