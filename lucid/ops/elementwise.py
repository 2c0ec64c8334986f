"""The elementwise primitives: one line each, the sympy expression is the definition.

Their partials are derived with ``sympy.diff`` (:class:`.op.Op`), their
reference evaluation and NumPy lowering read the same expression. A new one
is one call of :func:`define_elementwise`; it then works in traced
functions, on Tensors, in codegen and in the executor with no other edit.

>>> from lucid.ops import define_elementwise
>>> op = define_elementwise("softplus_demo", "log(1 + exp(a))")
>>> op.partials
(exp(a)/(exp(a) + 1),)
"""
from __future__ import annotations

import keyword
import re

import sympy as sp
from sympy.codegen.cfunctions import log1p

from .decompose import DryRun, NotBuildable, decompose, heads
from .op import ARGS, REGISTRY, RESERVED_NAMES, Kind, Op
from .parse import parse
from .reference import unsupported_heads

a, b = ARGS
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _check(op):
    """Refuse an op that a later compile could not handle, naming what is missing."""
    if op.integer:  # int64 in, int64 out: the expression must be integral for integers
        ints = {s: sp.Symbol(s.name, integer=True) for s in ARGS}
        if op.expr.xreplace(ints).is_integer is not True:
            raise ValueError(f"op {op.name!r}: integer=True, but {op.expr} is not an integer "
                             "for integer inputs")
    table = heads()
    for what, expr in [("definition", op.expr)] + [
            (f"derivative d/d{s}", p) for s, p in zip(ARGS, op.partials)]:
        missing = unsupported_heads(expr)
        if missing:
            raise ValueError(f"op {op.name!r}: its {what} {expr} uses {', '.join(missing)}, "
                             "which NumPy lowering does not cover")
        if what != "definition":
            try:
                decompose(expr, DryRun(), table)
            except NotBuildable as e:
                raise ValueError(f"op {op.name!r}: its {what} is {expr}, and {e} from the "
                                 "existing primitives; define the missing function as an "
                                 "elementwise op first (or together, with define_many)") from None


def define_many(defs):
    """Register several elementwise ops at once (their derivatives may use each other).

    ``defs``: ``{name: expression or string}``, or ``(name, expr, options)`` triples.
    All are checked after all are registered; on any failure none stays registered.
    """
    items = defs.items() if isinstance(defs, dict) else defs
    ops = []
    for entry in items:
        name, expr, *rest = entry
        ops.append(_make(name, expr, **(rest[0] if rest else {})))
    added = []
    try:
        for op in ops:
            if op.name in REGISTRY:
                raise ValueError(f"op {op.name!r} is already registered")
            REGISTRY[op.name] = op
            added.append(op.name)
        for op in ops:
            _check(op)
    except ValueError:
        for name in added:
            del REGISTRY[name]
        raise
    return ops


def define_elementwise(name, expr, *, integer=False, method=True, doc=""):
    """Register a new elementwise op defined by ``expr`` over ``a`` (and ``b``).

    Parameters
    ----------
    name : str
        A lowercase identifier, not already an op.
    expr : sympy expression or str
        In ``a`` (unary) or ``a`` and ``b`` (binary); a string may use numbers,
        ``+ - * / **`` and ``exp log sqrt tanh sin cos abs sign max min``.
    integer : bool
        Keep int64 inputs integral (else the op computes in float32).
    method : bool
        Offer it as ``Tensor.<name>``, ``Var.<name>`` and ``lucid.<name>``.

    Raises
    ------
    ValueError
        Bad name or expression, or a derivative that no existing primitive builds
        (``sin`` alone: its derivative is ``cos``).
    """
    return define_many([(name, expr, dict(integer=integer, method=method, doc=doc))])[0]


def _make(name, expr, *, integer=False, method=True, dunder="", doc=""):
    if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(f"op name must be a lowercase identifier, got {name!r}")
    if name in RESERVED_NAMES and name not in REGISTRY:
        raise ValueError(f"op name {name!r} is taken by an attribute of Tensor, Var or the "
                         "lucid package; choose another")
    if isinstance(expr, str):
        expr = parse(expr)
    if not isinstance(expr, sp.Expr):
        raise TypeError(f"op {name!r}: expr must be a sympy expression or a string, "
                        f"got {type(expr).__name__}")
    expr = expr.xreplace({sp.Symbol(s.name): s for s in ARGS})  # plain a, b -> real a, b
    extra = expr.free_symbols - set(ARGS)
    if extra:
        raise ValueError(f"op {name!r}: expr may only use a and b, found {sorted(map(str, extra))}")
    arity = 2 if b in expr.free_symbols else 1
    if a not in expr.free_symbols:
        raise ValueError(f"op {name!r}: expr must use a")
    return Op(name=name, arity=arity, kind=Kind.ELEMENTWISE, expr=expr, integer=integer,
              method=method, dunder=dunder, doc=doc)


# -- the primitives; the expression is the definition --------------------------------------
define_many([
    ("add", a + b, dict(integer=True, dunder="add", method=False)),
    ("sub", a - b, dict(integer=True, dunder="sub", method=False)),
    ("mul", a * b, dict(integer=True, dunder="mul", method=False)),
    ("div", a / b, dict(dunder="truediv", method=False)),
    ("neg", -a, dict(integer=True, dunder="neg", method=False)),
    ("exp", sp.exp(a), {}),
    ("log", sp.log(a), {}),
    ("log1p", log1p(a), dict(doc="log(1 + a), exact for tiny a")),
    ("sqrt", sp.sqrt(a), {}),
    ("rsqrt", 1 / sp.sqrt(a), {}),
    ("tanh", sp.tanh(a), {}),
    ("relu", sp.Max(a, 0), dict(integer=True)),
    ("step", sp.Heaviside(a, 0), dict(doc="0 where a <= 0, else 1 (NaN too, as torch's ReLU "
                                          "backward passes the gradient there)", method=False)),
    ("sign", sp.sign(a), dict(integer=True, doc="-1, 0 or 1")),
    ("abs", sp.Abs(a), dict(integer=True)),
    ("sin", sp.sin(a), {}),
    ("cos", sp.cos(a), {}),
    ("sigmoid", 1 / (1 + sp.exp(-a)), {}),
    # NumPy has no erf: the lowering calls lucid's helper (reference.HELPERS, special.erf)
    ("erf", sp.erf(a), {}),
])
