"""Shape and dtype rules of the primitives, on shapes whose dims are ints or symbols.

A symbolic dim is a string (``"N"``); two dims match when they are equal, and
a 1 broadcasts against anything. Errors are ValueErrors that name the op.
"""
from __future__ import annotations

from .op import FLOATS, REGISTRY


def format_shape(shape):
    """``(N, 4)``: a shape as users write it, symbolic sizes by name."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def strip_units(shape):
    """``shape`` without its leading unit axes: what broadcasting cannot tell apart."""
    shape = tuple(shape)
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return shape[i:]


def fit(shape, ndim):
    """``shape`` right-aligned to ``ndim`` dims: unit axes added or dropped in front."""
    shape = tuple(shape)
    if len(shape) > ndim:
        return shape[len(shape) - ndim:]  # the dropped leading axes are all 1
    return (1,) * (ndim - len(shape)) + shape


def broadcast_shapes(op, *shapes):
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        real = {d for d in dims if d != 1}
        if len(real) > 1:
            raise ValueError(f"{op}: cannot broadcast shapes {' and '.join(map(str, shapes))}")
        out.append(real.pop() if real else 1)
    return tuple(out)


def result_dtype(dtypes):
    floats = [d for d in dtypes if d in FLOATS]
    if "float64" in floats:
        return "float64"
    return "float32" if floats or "int64" not in dtypes else "int64"


def normalize_axes(op, axes, ndim):
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for ax in axes:
        if not isinstance(ax, int) or not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax!r} out of range for {ndim}D input")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def attributes(op_name, attrs, dtype=None):
    """``attrs`` of a new ``op_name`` node as plain built-in values (the op's schema).

    What a node is made from: never the caller's objects, whose ``repr`` could
    be anything. ``dtype`` is a leaf's own (a constant must fit it).
    """
    op = REGISTRY.get(op_name)
    if op is None:
        raise ValueError(f"unknown op {op_name!r}")
    return op.normalize(attrs, dtype)


def infer(op_name, shapes, dtypes, attrs):
    """Return (shape, dtype) of applying ``op_name``; raise ValueError if ill-formed."""
    attrs = attributes(op_name, attrs)
    op = REGISTRY[op_name]
    if op.arity is not None and op.arity != len(shapes):
        raise ValueError(f"{op_name} takes {op.arity} inputs, got {len(shapes)}")
    if op.elementwise:
        dtype = result_dtype(dtypes)
        if dtype == "int64" and not op.integer:
            dtype = "float32"  # a float op on integers gives float32, as in PyTorch
        return broadcast_shapes(op_name, *shapes), dtype
    return op.shape(shapes, dtypes, attrs)


def check_dims(op, shape):
    """A shape given as an attribute: ints, or names of sizes (identifiers)."""
    if not isinstance(shape, tuple):
        raise ValueError(f"{op}: a shape must be a tuple, got {type(shape).__name__}")
    for d in shape:
        if type(d) is str and not d.isidentifier() or type(d) not in (int, str) or \
                type(d) is int and d < 0:
            raise ValueError(f"{op}: a dim must be a non-negative int or the name of a size, "
                             f"got {d!r}")
    return shape


def static_size(shape):
    """The number of elements of ``shape``, or None if a dim is symbolic."""
    size = 1
    for d in shape:
        if isinstance(d, str):
            return None
        size *= d
    return size


def axes_source(axes):
    """Axes as a tuple literal: ``(0,)``, ``(0, 2)``."""
    return "(" + ", ".join(str(int(a)) for a in axes) + ("," if len(axes) == 1 else "") + ")"


def conv_length(op, length, kernel_size, stride, padding, dilation):
    """Output length of a 1-D window of ``kernel_size`` taps ``dilation`` apart, moved by
    ``stride`` over ``length`` padded by ``padding = (before, after)`` (torch's formula)."""
    if not isinstance(length, int):
        raise ValueError(f"{op}: the length must be a fixed size, got the symbolic size {length}")
    span = dilation * (kernel_size - 1) + 1
    out = (length + padding[0] + padding[1] - span) // stride + 1
    if out < 1:
        raise ValueError(f"{op}: input length {length} padded by {tuple(padding)} is shorter "
                         f"than the kernel span {span} (kernel_size {kernel_size}, dilation "
                         f"{dilation}): the output would be empty")
    return out
