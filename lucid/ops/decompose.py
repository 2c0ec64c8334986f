"""From a sympy expression back to primitives: how a derived rule becomes graph nodes.

:func:`decompose` walks an expression and calls ``emit.apply(op, *parts)`` for
every primitive it needs (``emit.leaf`` for a symbol, ``emit.const`` for a
number). Autodiff's builder emits graph nodes this way; registering an op
emits nothing (:class:`DryRun`), which is how a derivative that no primitive
builds is refused when the op is defined rather than at compile time.

A function head (``exp``, ``Max(., 0)``, ``sin``) is built by the elementwise
op whose expression is that head applied to ``a`` (and constants): the
records say which, nothing here lists them.
"""
from __future__ import annotations

import sympy as sp

from .op import ARGS, REGISTRY
from .reference import NUMPY_FUNCTIONS


class NotBuildable(ValueError):
    """An expression needs a function that no primitive computes."""


def heads():
    """``{(sympy function, other args): op name}`` for unary ops that are one function call."""
    found = {}
    for op in REGISTRY.values():
        e = op.expr
        if op.elementwise and op.arity == 1 and e.func in NUMPY_FUNCTIONS and ARGS[0] in e.args:
            rest = tuple(x for x in e.args if x != ARGS[0])
            if all(x.is_Number for x in rest):
                found.setdefault((e.func, frozenset(rest)), op.name)
    return found


def decompose(expr, emit, table=None):
    """Build ``expr`` from primitives through ``emit``; return what ``emit`` returns for it."""
    table = heads() if table is None else table
    if expr.is_Symbol:
        return emit.leaf(expr)
    if expr.is_number:  # a number, or a constant expression such as 2/sqrt(pi)
        if not expr.is_real or not expr.is_finite:
            raise NotBuildable(f"no primitive builds the constant {expr}")
        return emit.const(int(expr) if expr.is_Integer else float(expr))
    if expr.is_Add:
        pos = [t for t in expr.args if not t.could_extract_minus_sign()]
        neg = [-t for t in expr.args if t.could_extract_minus_sign()]
        out = fold(emit, "add", [decompose(t, emit, table) for t in pos]) if pos else None
        for t in neg:
            term = decompose(t, emit, table)
            out = emit.apply("neg", term) if out is None else emit.apply("sub", out, term)
        return out
    if expr.is_Mul:
        coeff, rest = expr.as_coeff_Mul()
        if coeff == -1:
            return emit.apply("neg", decompose(rest, emit, table))
        num, den = sp.fraction(expr)
        if den != 1:
            return emit.apply("div", decompose(num, emit, table), decompose(den, emit, table))
        return fold(emit, "mul", [decompose(t, emit, table) for t in expr.args])
    if expr.is_Pow:
        return _pow(expr.base, expr.exp, emit, table)
    if expr.func in NUMPY_FUNCTIONS:  # Max and Min are no sympy Functions
        arg = [x for x in expr.args if not x.is_Number]
        rest = frozenset(x for x in expr.args if x.is_Number)
        op = table.get((expr.func, rest))
        if op is not None and len(arg) == 1:
            return emit.apply(op, decompose(arg[0], emit, table))
        if expr.func in (sp.Max, sp.Min) and "relu" in REGISTRY:
            return _extremum(expr, emit, table)
    raise NotBuildable(f"no primitive builds {expr}")


def _extremum(expr, emit, table):
    """``max(p, q) = q + relu(p - q)`` and ``min(p, q) = p - relu(p - q)``."""
    p, *rest = expr.args
    q = rest[0] if len(rest) == 1 else expr.func(*rest)
    gap = emit.apply("relu", decompose(p - q, emit, table))
    if expr.func is sp.Max:
        return emit.apply("add", decompose(q, emit, table), gap)
    return emit.apply("sub", decompose(p, emit, table), gap)
def _pow(base, exp, emit, table):
    if exp == sp.Rational(1, 2):
        return emit.apply("sqrt", decompose(base, emit, table))
    if exp == sp.Rational(-1, 2):
        return emit.apply("rsqrt", decompose(base, emit, table))
    if exp.is_Integer and exp > 0:
        return fold(emit, "mul", [decompose(base, emit, table)] * int(exp))
    if exp.is_Rational and exp < 0:
        return emit.apply("div", emit.const(1), _pow(base, -exp, emit, table))
    if exp.is_Rational and exp.q == 2:
        return emit.apply("mul", emit.apply("sqrt", decompose(base, emit, table)),
                          _pow(base, exp - sp.Rational(1, 2), emit, table))
    raise NotBuildable(f"no primitive builds the power {base}**{exp}")


def fold(emit, op, parts):
    """``op(op(p0, p1), p2) ...`` through ``emit`` (a builder, or a :class:`DryRun`)."""
    out = parts[0]
    for p in parts[1:]:
        out = emit.apply(op, out, p)
    return out


class DryRun:
    """An ``emit`` that builds nothing: only checks that every step has a primitive."""

    def leaf(self, symbol):
        return symbol

    def const(self, value):
        return value

    def apply(self, op, *parts):
        if op not in REGISTRY:
            raise NotBuildable(f"no primitive {op!r}")
        return op
