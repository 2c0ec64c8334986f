"""Shape and dtype rules of the primitives, on shapes whose dims are ints or symbols.

A symbolic dim is a string (``"N"``); two dims match when they are equal, and
a 1 broadcasts against anything. Errors are ValueErrors that name the op.
"""
from __future__ import annotations

from .registry import DTYPES, FLOATS, REGISTRY


#: Elementwise ops that keep integers integral; every other one computes in float.
INTEGER_OPS = {"add", "sub", "mul", "neg", "relu"}


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


def infer(op_name, shapes, dtypes, attrs):
    """Return (shape, dtype) of applying ``op_name``; raise ValueError if ill-formed."""
    op = REGISTRY[op_name]
    if op.kind == "elementwise":
        dtype = result_dtype(dtypes)
        if dtype == "int64" and op_name not in INTEGER_OPS:
            dtype = "float32"  # a float op on integers gives float32, as in PyTorch
        return broadcast_shapes(op_name, *shapes), dtype
    rule = _RULES[op_name]
    return rule(shapes, dtypes, attrs)


def _sum(shapes, dtypes, attrs):
    return reduced_shape(shapes[0], attrs["axes"], attrs["keepdims"]), dtypes[0]


def _target(op, shape):
    """A shape given as an attribute: ints, or names of sizes (identifiers)."""
    for d in shape:
        if isinstance(d, str) and not d.isidentifier() or \
                not isinstance(d, (int, str)) or isinstance(d, bool) or \
                isinstance(d, int) and d < 0:
            raise ValueError(f"{op}: a dim must be a non-negative int or the name of a size, "
                             f"got {d!r}")
    return tuple(shape)


def _broadcast_to(shapes, dtypes, attrs):
    target = _target("broadcast_to", attrs["shape"])
    if broadcast_shapes("broadcast_to", shapes[0], target) != target:
        raise ValueError(f"broadcast_to: cannot broadcast {shapes[0]} to {target}")
    return target, dtypes[0]


def _reshape(shapes, dtypes, attrs):
    src, dst = shapes[0], _target("reshape", attrs["shape"])
    if _static_size(src) is not None and _static_size(dst) is not None:
        if _static_size(src) != _static_size(dst):
            raise ValueError(f"reshape: cannot reshape {src} into {dst}")
    elif sorted(map(str, (d for d in src if d != 1))) != sorted(map(str, (d for d in dst if d != 1))):
        # With symbolic dims only moves and unit axes are provably right.
        raise ValueError(f"reshape: cannot prove {src} and {dst} have the same size")
    return dst, dtypes[0]


def _transpose(shapes, dtypes, attrs):
    perm = tuple(attrs["perm"])
    if sorted(perm) != list(range(len(shapes[0]))):
        raise ValueError(f"transpose: {perm} is not a permutation of {len(shapes[0])} axes")
    return tuple(shapes[0][p] for p in perm), dtypes[0]


def _matmul(shapes, dtypes, attrs):
    (a, b) = shapes
    if len(a) != 2 or len(b) != 2:
        raise ValueError(f"matmul: expected two 2D operands, got shapes {a} and {b}")
    if a[1] != b[0]:
        raise ValueError(f"matmul: inner dimensions differ: {a} @ {b}")
    return (a[0], b[1]), result_dtype(dtypes)


def _cast(shapes, dtypes, attrs):
    if attrs["dtype"] not in DTYPES:
        raise ValueError(f"cast: unsupported dtype {attrs['dtype']!r}")
    return shapes[0], attrs["dtype"]


def _static_size(shape):
    size = 1
    for d in shape:
        if isinstance(d, str):
            return None
        size *= d
    return size


_RULES = {
    "sum": _sum,
    "numel": lambda shapes, dtypes, attrs: ((), result_dtype([dtypes[0], "float32"])),
    "broadcast_to": _broadcast_to,
    "reshape": _reshape,
    "transpose": _transpose,
    "matmul": _matmul,
    "cast": _cast,
}
