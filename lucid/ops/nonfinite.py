"""Infinite and NaN constants: opaque symbols to sympy, fixed tokens in generated source.

sympy's own ``oo`` and ``nan`` take part in its algebra (``x + oo`` becomes
``oo``, ``0*oo`` becomes ``nan``, ``oo - oo`` too), and codegen's rewrites
assume finite numbers. So a constant ``inf``, ``-inf`` or ``nan`` enters the
symbolic layer as an opaque symbol (``-inf`` as its negation), a new one at
every use (:func:`expr`), as opaque as an input array's element (which may
hold ``inf`` at run time too), and is bound to its value only where it is
computed: :func:`source` and the codegen printer write it as ``np.inf`` /
``np.nan`` (:func:`token`), never as a repr of a caller's object.

They are plain real symbols to sympy, as every atom is, on purpose: sympy
then applies only the rules it applies to any atom. A new symbol per use
keeps ``s - s`` and ``s/s`` from cancelling two uses of one constant, but
``0*s`` is 0 and a value used twice (``y - y`` for ``y = x + inf``) still
cancels, as it would for an input holding ``inf``. Telling it more
lets it rewrite more: a positive ``inf`` turns ``sqrt(x/inf)`` into
``sqrt(x)/sqrt(inf)`` (NaN for a negative ``x``, where torch has ``-0.0``), an
``infinite`` one turns ``log(x/inf)`` into the unsigned ``zoo``, which cannot
compile, and ``max(x, inf)`` into ``inf`` even for a NaN ``x``.

>>> e = expr(float("-inf")); token(-e), source(float("-inf"))
('np.inf', '-np.inf')
>>> expr(float("inf")) == expr(float("inf"))  # one symbol per use: never cancelled
False
"""
from __future__ import annotations

import math

import sympy as sp

#: token of each kind, by symbol name. The names start with ``_``, which no graph node's name
#: may, and every such symbol is a Dummy: no atom can be mistaken for one.
TOKENS = {"_inf": "np.inf", "_nan": "np.nan"}


def expr(value):
    """The sympy form of a constant: an Integer, a Float, or, for ``inf``, ``-inf`` and
    ``nan``, a new opaque symbol (negated for ``-inf``) each time it is asked for.

    A new symbol per use keeps sympy from cancelling two uses against each other:
    ``(x + inf) - inf`` stays ``x + s1 - s2``, NaN at run time as in torch, where one
    shared symbol would give ``x``.
    """
    if type(value) is int:
        return sp.Integer(value)
    if math.isnan(value):
        return sp.Dummy("_nan", real=True)
    if math.isinf(value):
        inf = sp.Dummy("_inf", real=True)
        return inf if value > 0 else -inf
    return sp.Float(value)


def token(symbol):
    """``np.inf`` or ``np.nan`` for a symbol :func:`expr` made, else None."""
    return TOKENS.get(symbol.name) if symbol.__class__ is sp.Dummy else None


def involves(e):
    """Whether a sympy expression holds a non-finite constant."""
    return any(token(s) for s in e.free_symbols)


def is_constant(e):
    """Whether a sympy expression is a number or built only from the non-finite symbols."""
    return e.is_number or all(token(s) for s in e.free_symbols)


def source(value):
    """NumPy source for a number attribute (an exact int or float): its repr if finite,
    else a fixed token."""
    if type(value) is int:
        return repr(value)
    value = float(value)
    if math.isnan(value):
        return "np.nan"
    if math.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(value)
