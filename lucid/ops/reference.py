"""What a sympy function is in NumPy, and a plain evaluator of elementwise expressions.

:data:`NUMPY_FUNCTIONS` is the one table from sympy function heads to NumPy
functions: codegen's printer writes them, :func:`evaluate` calls them (the
reference executor's elementwise semantics, deliberately a tree walk and not
the printer, so generated code is checked against an independent path).
An elementwise op may use only these heads. A head NumPy lacks (``erf``) is
computed by a runtime helper of :mod:`.special`: :data:`HELPERS` binds the name
generated code calls it by, which codegen puts in a program's namespace.
"""
from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import log1p

from . import special

#: Functions NumPy lacks: the name generated code calls -> lucid's vectorised helper.
#: The names start with ``_``, which no graph node's name may (they cannot be shadowed).
HELPERS = {"_erf": special.erf, "_step": special.step}

#: sympy head -> name of the NumPy function computing it elementwise.
NUMPY_FUNCTIONS = {
    sp.exp: "exp",
    sp.log: "log",
    log1p: "log1p",  # log(1 + x), exact for tiny x
    sp.tanh: "tanh",
    sp.sin: "sin",
    sp.cos: "cos",
    sp.Abs: "absolute",
    sp.sign: "sign",
    sp.Max: "maximum",  # n-ary heads fold pairwise
    sp.Min: "minimum",
    sp.Heaviside: "_step",  # Heaviside(x, h): h at 0, and 1 at NaN (a helper, as torch's mask)
    sp.erf: "_erf",  # a helper (HELPERS), not a NumPy function
}
#: Heads that cost tens of NumPy passes a value (erf: about 10 ns against 0.2 for a
#: multiply): a large value computed with one is kept for the backward, not recomputed there
#: (``codegen.generate.split``).
COSTLY = (sp.erf,)


def numpy_function(name):
    """The function a :data:`NUMPY_FUNCTIONS` name calls: ``np.<name>`` or a helper."""
    return HELPERS[name] if name in HELPERS else getattr(np, name)


def unsupported_heads(expr):
    """Function heads in ``expr`` that NumPy cannot compute through :data:`NUMPY_FUNCTIONS`."""
    missing = {type(f).__name__ for f in expr.atoms(sp.Function) if f.func not in NUMPY_FUNCTIONS}
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan, sp.I):
        missing.add("an infinite or complex constant")
    return sorted(missing)


def evaluate(expr, env):
    """Evaluate ``expr`` with NumPy, symbols bound to arrays by ``env``."""
    if expr.is_Symbol:
        return env[expr]
    if expr.is_number:  # also pi and sqrt(pi), which derivatives bring in
        return int(expr) if expr.is_Integer else float(expr)
    args = [evaluate(x, env) for x in expr.args]
    if expr.is_Add:
        out = args[0]
        for x in args[1:]:
            out = out + x
        return out
    if expr.is_Mul:
        out = args[0]
        for x in args[1:]:
            out = out * x
        return out
    if expr.is_Pow:
        base, exp = args
        if expr.exp == sp.Rational(1, 2):
            return np.sqrt(base)
        if expr.exp == sp.Rational(-1, 2):
            return 1 / np.sqrt(base)
        if expr.exp.is_Integer:
            return base ** exp if exp > 0 else 1 / base ** -exp
        return np.power(base, exp)
    if expr.func is sp.Heaviside and len(args) == 1:
        args.append(0.5)  # sympy's value at 0
    fn = numpy_function(NUMPY_FUNCTIONS[expr.func])
    out = args[0]
    for x in args[1:]:
        out = fn(out, x)
    return fn(out) if len(args) == 1 else out
