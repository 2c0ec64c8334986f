"""Adding typed nodes to an existing Graph (what autodiff and rewrites use).

:class:`Builder` infers each new node's shape and dtype with the op's rule,
and can turn a sympy expression over existing nodes back into primitives,
which is how derived gradients become nodes of the graph.
"""
from __future__ import annotations

import sympy as sp

from .shapes import infer, normalize_axes
from .structural import gradient_rule


class Builder:
    """Adds nodes to ``graph`` in ``phase`` and ``scope``."""

    def __init__(self, graph, phase="backward", scope=""):
        self.g, self.phase, self.scope = graph, phase, scope

    def shape(self, n):
        return self.g.nx.nodes[n]["shape"]

    def dtype(self, n):
        return self.g.nx.nodes[n]["dtype"]

    def apply(self, op, *inputs, name="n", **attrs):
        shape, dtype = infer(op, [self.shape(i) for i in inputs],
                             [self.dtype(i) for i in inputs], attrs)
        return self.g.add(op, inputs, shape, dtype, attrs, name=name, phase=self.phase,
                          scope=self.scope, rule=gradient_rule(op, inputs))

    def const(self, value, dtype):
        return self.g.add("constant", [], (), dtype, {"value": value}, phase=self.phase,
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
        if expr.is_Symbol:
            return env[expr]
        if expr.is_Number:
            value = int(expr) if expr.is_Integer else float(expr)
            return self.const(value, dtype)
        if expr.is_Add:
            pos = [t for t in expr.args if not _negated(t)]
            neg = [-t for t in expr.args if _negated(t)]
            out = self.fold("add", [self.from_sympy(t, env, dtype) for t in pos]) if pos else None
            for t in neg:
                term = self.from_sympy(t, env, dtype)
                out = self.apply("neg", term) if out is None else self.apply("sub", out, term)
            return out
        if expr.is_Mul:
            coeff, rest = expr.as_coeff_Mul()
            if coeff == -1:
                return self.apply("neg", self.from_sympy(rest, env, dtype))
            num, den = sp.fraction(expr)
            if den != 1:
                return self.apply("div", self.from_sympy(num, env, dtype),
                                  self.from_sympy(den, env, dtype))
            return self.fold("mul", [self.from_sympy(t, env, dtype) for t in expr.args])
        if expr.is_Pow:
            return self._pow(expr.base, expr.exp, env, dtype)
        for func, op in _FUNCTIONS.items():
            if isinstance(expr, func):
                arg = [x for x in expr.args if x != 0][0]  # relu is Max(a, 0), step Heaviside(a, 0)
                return self.apply(op, self.from_sympy(arg, env, dtype))
        raise ValueError(f"no primitive builds {expr} (derived rule outside the op set)")

    def _pow(self, base, exp, env, dtype):
        b = self.from_sympy(base, env, dtype)
        if exp == sp.Rational(1, 2):
            return self.apply("sqrt", b)
        if exp == sp.Rational(-1, 2):
            return self.apply("rsqrt", b)
        if exp.is_Integer and exp > 0:
            return self.fold("mul", [b] * int(exp))
        if exp.is_Rational and exp < 0:
            return self.apply("div", self.const(1, dtype), self._pow(base, -exp, env, dtype))
        if exp.is_Rational and exp.q == 2:
            return self.apply("mul", self.apply("sqrt", b), self._pow(base, exp - sp.Rational(1, 2), env, dtype))
        raise ValueError(f"no primitive builds the power {base}**{exp}")

    def fold(self, op, nodes):
        out = nodes[0]
        for n in nodes[1:]:
            out = self.apply(op, out, n)
        return out


def _negated(term):
    return term.could_extract_minus_sign()


_FUNCTIONS = {sp.exp: "exp", sp.log: "log", sp.tanh: "tanh", sp.Heaviside: "step", sp.Max: "relu"}
