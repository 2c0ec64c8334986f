"""Adding typed nodes to an existing Graph (what autodiff and rewrites use).

:class:`Builder` infers each new node's shape and dtype from the op's record,
and turns a sympy expression over existing nodes back into primitives
(:func:`lucid.ops.decompose`), which is how derived gradients become nodes.
"""
from __future__ import annotations

from ..graph import Phase
from ..ops import REGISTRY, decompose, infer
from ..ops.decompose import fold
from ..ops.shapes import attributes, normalize_axes


class Builder:
    """Adds nodes to ``graph`` in ``phase`` and ``scope``."""

    def __init__(self, graph, phase=Phase.BACKWARD, scope=""):
        self.g, self.phase, self.scope = graph, phase, scope

    def shape(self, n):
        return self.g.node(n).shape

    def dtype(self, n):
        return self.g.node(n).dtype

    def apply(self, op, *inputs, name="n", **attrs):
        attrs = attributes(op, attrs)
        shape, dtype = infer(op, [self.shape(i) for i in inputs],
                             [self.dtype(i) for i in inputs], attrs)
        return self.g.add(op, inputs, shape, dtype, attrs, name=name, phase=self.phase,
                          scope=self.scope, rule=REGISTRY[op].rule(inputs))

    def const(self, value, dtype):
        attrs = attributes("constant", {"value": value}, dtype)
        return self.g.add("constant", [], (), dtype, attrs, phase=self.phase,
                          scope=self.scope)

    # -- shape helpers used by the VJP rules ---------------------------------------
    def sum_to(self, n, shape):
        """Sum ``n`` over the axes along which ``shape`` was broadcast to it."""
        src = self.shape(n)
        if tuple(src) == tuple(shape):
            return n
        lead = len(src) - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, d in enumerate(shape) if d == 1 and src[lead + i] != 1)
        out = self.apply("sum", n, axes=normalize_axes("sum", axes, len(src)), keepdims=True)
        if tuple(self.shape(out)) != tuple(shape):
            out = self.apply("reshape", out, shape=tuple(shape))
        return out

    def keepdims(self, n, shape, axes):
        """Re-insert the reduced ``axes`` of ``shape`` as unit axes of ``n``."""
        target = tuple(1 if i in axes else d for i, d in enumerate(shape))
        return n if tuple(self.shape(n)) == target else self.apply("reshape", n, shape=target)

    # -- sympy -> nodes ---------------------------------------------------------------
    def from_sympy(self, expr, env, dtype):
        """Build ``expr`` (symbols bound to node names by ``env``) from primitives."""
        return decompose(expr, _Emit(self, env, dtype))

    def fold(self, op, nodes):
        """``op`` applied left to right over ``nodes`` (one node: itself)."""
        return fold(self, op, nodes)


class _Emit:
    """:func:`lucid.ops.decompose`'s callbacks, adding nodes."""

    def __init__(self, builder, env, dtype):
        self.b, self.env, self.dtype = builder, env, dtype

    def leaf(self, symbol):
        return self.env[symbol]

    def const(self, value):
        return self.b.const(value, self.dtype)

    def apply(self, op, *parts):
        return self.b.apply(op, *parts)
