"""The reference executor: runs any graph node by node with NumPy.

It is deliberately plain (one array per node, no fusion, no buffer reuse):
the ground truth that generated code is checked against.
"""
from __future__ import annotations

import numpy as np

from ..ops import REGISTRY
from ..ops.shapes import format_shape


def bind_sizes(graph, feeds, skip=()):
    """Check ``feeds`` against the placeholders; return the symbol -> size binding.

    Raises ValueError naming the placeholder for a missing input, a wrong
    rank, a size that disagrees with the graph, or a failed run-time check,
    and TypeError for a wrong dtype.
    """
    sizes = {}
    for p in graph.inputs:
        if p in skip:
            continue
        node = graph.node(p)
        if p not in feeds:
            raise ValueError(f"missing input {p!r} ({node.key or p})")
        value = feeds[p]
        if not isinstance(value, np.ndarray):
            raise TypeError(f"input {p!r} must be a numpy array, got {type(value).__name__}")
        if value.dtype != node.dtype:
            raise TypeError(f"input {p!r} must have dtype {node.dtype}, got {value.dtype}")
        shape = node.shape
        if value.ndim != len(shape):
            raise ValueError(f"input {p!r} must have shape {format_shape(shape)}, got {value.shape}")
        for d, actual in zip(shape, value.shape):
            expected = sizes.setdefault(d, actual) if isinstance(d, str) else d
            if expected != actual:
                raise ValueError(f"input {p!r} must have shape {format_shape(shape)} "
                                 f"with {_bound(sizes)}, got {value.shape}")
    for check in graph.checks:
        if _size(check.dims, sizes) <= check.minimum:
            shape = tuple(sizes.get(d, d) for d in check.shape)
            raise ValueError(check.message.format(shape=shape))
    return sizes


def run(graph, feeds):
    """Evaluate every node of ``graph`` in order; return ``{output key: array}``."""
    sizes = bind_sizes(graph, feeds)

    def dims(shape):
        return tuple(sizes.get(d, d) if isinstance(d, str) else d for d in shape)

    values = {}
    for name in graph.topo():
        node = graph.node(name)
        op, attrs = REGISTRY[node.op], node.attrs
        args = [values[i] for i in node.inputs]
        if node.op == "placeholder":
            out = feeds[name]
        elif node.op == "constant":
            out = np.asarray(attrs["value"], dtype=node.dtype)
        elif op.elementwise:
            with np.errstate(all="ignore"):  # NaN and inf propagate as values
                out = op.evaluate(*args)
        else:
            out = op.run(attrs, dims, *args)
        values[name] = np.asarray(out).astype(node.dtype, copy=False)
    return {key: values[o.node] for key, o in graph.outputs.items()}


def _size(dims, sizes):
    total = 1
    for d in dims:
        total *= sizes[d] if isinstance(d, str) else d
    return total


def _bound(sizes):
    return ", ".join(f"{k}={v}" for k, v in sizes.items()) or "no sizes bound"
