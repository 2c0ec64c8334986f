"""Infinite and NaN constants: opaque symbols to sympy, fixed tokens in generated source.

sympy's own ``oo`` and ``nan`` take part in its algebra (``x + oo`` becomes
``oo``, ``0*oo`` becomes ``nan``, ``oo - oo`` too), and codegen's rewrites
assume finite numbers. So a constant ``inf``, ``-inf`` or ``nan`` enters the
symbolic layer as one of two symbols, :data:`INF` (``-inf`` is ``-INF``) and
:data:`NAN`, as opaque as an input array's element (which may hold ``inf``
at run time too), and is bound to its value only where it is computed:
:func:`source` and the codegen printer write it as ``np.inf`` / ``np.nan``,
never as a repr of a caller's object.

Both are plain real symbols to sympy, as every atom is, on purpose: sympy
then applies only the rules it applies to any atom (``0*s``, ``s - s`` and
``s/s`` cancel, which an input holding ``inf`` meets as well). Telling it more
lets it rewrite more: a positive ``inf`` turns ``sqrt(x/inf)`` into
``sqrt(x)/sqrt(inf)`` (NaN for a negative ``x``, where torch has ``-0.0``), an
``infinite`` one turns ``log(x/inf)`` into the unsigned ``zoo``, which cannot
compile, and ``max(x, inf)`` into ``inf`` even for a NaN ``x``.

>>> expr(float("-inf")), source(float("-inf"))
(-_inf, '-np.inf')
"""
from __future__ import annotations

import math

import sympy as sp

#: ``inf`` (``-inf`` is ``-INF``) and ``nan``. The names start with ``_``, which no graph
#: node's name may, so no atom can be mistaken for them.
INF = sp.Symbol("_inf", real=True)
NAN = sp.Symbol("_nan", real=True)
SYMBOLS = frozenset((INF, NAN))
#: symbol -> the NumPy token generated code spells it with.
TOKENS = {INF: "np.inf", NAN: "np.nan"}


def expr(value):
    """The sympy form of a constant: an Integer, a Float, or ``INF``, ``-INF``, ``NAN``."""
    if type(value) is int:
        return sp.Integer(value)
    if math.isnan(value):
        return NAN
    if math.isinf(value):
        return INF if value > 0 else -INF
    return sp.Float(value)


def is_constant(e):
    """Whether a sympy expression is a number or built only from the non-finite symbols."""
    return e.is_number or e.free_symbols <= SYMBOLS


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
