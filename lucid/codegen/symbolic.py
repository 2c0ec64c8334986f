"""Symbolic evaluation: a whole graph as sympy expressions over a few atoms.

Every elementwise node becomes an expression over *atoms*: the placeholders,
the results of opaque ops (matmul, reshape, ...), and one symbol per distinct
reduction. Reductions are treated as the linear maps they are: a sum over
some axes of a term splits into the factors that do not vary along those axes
(pulled out: per-channel scales, counts) and a monomial of factors that do
(summed). Equal monomials share one reduction, so ``sum(dy * xhat)`` and
``sum(dy * gamma * xc)`` become one pass over ``dy * xc``; a term linear in a
centred sum such as ``x - mean(x)`` is distributed only when that needs no
new reduction, which is how ``sum(x - mean(x))`` becomes exactly 0 while
``sum(dy * (x - mean))`` keeps its centred, non-cancelling form.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import sympy as sp

from ..ops import ARGS, REGISTRY, nonfinite
from ..ops.shapes import broadcast_shapes, fit, result_dtype, strip_units


@dataclass
class Atom:
    """A value the generated code materialises.

    ``kind``: ``input`` (a placeholder), ``reduce`` (``sum`` of ``expr``, a
    monomial, over ``axes``, keeping dims), ``op`` (structural op ``node``
    applied to ``args``, expressions), ``cast`` (``args[0]`` converted to
    ``dtype``) or ``let`` (``expr`` computed as a statement of its own: a cut
    in a deep chain).
    """

    symbol: sp.Symbol
    kind: str
    shape: tuple
    dtype: str
    expr: sp.Expr = None
    axes: tuple = ()
    node: str = ""
    args: tuple = ()
    nodes: list = field(default_factory=list)  # graph nodes this atom implements


#: How deeply an expression may nest before it is cut into a statement of its own: far below
#: Python's 200 nested parentheses and sympy's printer recursion, far above what fusion needs.
MAX_DEPTH = 40

#: Size symbol -> the symbolic dim it stands for (``size_N`` -> ``"N"``): how codegen tells
#: a size from a value, without reading names.
SIZES = {}


def size_symbol(dim):
    sym = sp.Symbol(f"size_{dim}", positive=True, integer=True)
    SIZES.setdefault(sym, dim)
    return sym


def size_dims(expr):
    """The symbolic dims whose sizes ``expr`` reads."""
    return [SIZES[s] for s in expr.free_symbols if s in SIZES]


def dim_expr(dim):
    return size_symbol(dim) if isinstance(dim, str) else sp.Integer(dim)


class Symbolic:
    """The symbolic form of a graph: atoms, and an expression for every node."""

    def __init__(self, graph):
        self.graph = graph
        self.atoms = {}  # symbol -> Atom, in creation (dependency) order
        self.reductions = {}  # (monomial, axes, ndim) -> symbol
        self.value = {}  # node name -> expression
        self.nonfinite = {}  # constant node -> its inf or nan, a new symbol at each use
        self.casts = {}  # (node, dtype) -> symbol of the converted value
        self.named = {}  # symbol naming a subexpression (a CSE temporary) -> the atoms it reads
        self._shape_cache = {}
        self.depths = {}  # subexpression -> its depth (sympy atoms are 0)
        for name in graph.topo():
            self.value[name] = self._bounded(name, self._evaluate(name))

    def _bounded(self, name, value):
        """``value``, or a statement holding it once its expression is :data:`MAX_DEPTH` deep.

        A long elementwise chain would otherwise become one expression that
        sympy's printer recurses through and Python's parser refuses (too
        many nested parentheses); a cut keeps both far away. The depth is that
        of the expression itself, after sympy's simplifications (a backward
        chain often collapses), counted once per subexpression.
        """
        if self._depth(value) <= MAX_DEPTH:
            return value
        sym = sp.Symbol(f"_d{sum(a.kind == 'let' for a in self.atoms.values())}", real=True)
        self.atoms[sym] = Atom(sym, "let", self.shape_of(value), self.dtype_of(value),
                               expr=value, nodes=[name])
        return sym

    def _depth(self, expr):
        """Nesting depth of ``expr``, without recursion, each subexpression measured once."""
        depths, stack = self.depths, [expr]
        while stack:
            e = stack[-1]
            if e in depths:
                stack.pop()
            elif not e.args:
                depths[e] = 0
                stack.pop()
            else:
                todo = [a for a in e.args if a not in depths]
                if todo:
                    stack.extend(todo)
                else:
                    depths[e] = 1 + max(depths[a] for a in e.args)
                    stack.pop()
        return depths[expr]

    # -- shapes ---------------------------------------------------------------------
    def shape_of(self, expr):
        """Broadcast shape of an expression: the shapes of its atoms, right-aligned."""
        cached = self._shape_cache.get(expr)
        if cached is None:
            shapes = [self.atoms[s].shape for s in self.reads(expr)]
            cached = broadcast_shapes("expression", *shapes) if shapes else ()
            self._shape_cache[expr] = cached
        return cached

    def dtype_of(self, expr):
        dtypes = [self.atoms[s].dtype for s in self.reads(expr)]
        return result_dtype(dtypes) if dtypes else "float32"

    def reads(self, expr):
        """The atoms ``expr`` reads, directly or through the named symbols in it (:meth:`name`)."""
        found = set()
        for s in expr.free_symbols:
            if s in self.atoms:
                found.add(s)
            elif s in self.named:
                found |= self.named[s]
        return found

    def name(self, symbol, expr):
        """Let ``symbol`` stand for ``expr`` in shapes and dtypes, so that they never need
        the expression written out over atoms (named before any query that contains it)."""
        self.named[symbol] = frozenset(self.reads(expr))

    def varies(self, expr, axes, ndim):
        shape = self.shape_of(expr)
        padded = fit(shape, ndim)
        return any(padded[a] != 1 for a in axes)

    # -- nodes -----------------------------------------------------------------------------
    def _atom(self, name, kind, **kw):
        d = self.graph.node(name)
        sym = sp.Symbol(name, real=True)
        self.atoms[sym] = Atom(sym, kind, d.shape, d.dtype, nodes=[name], **kw)
        return sym

    def _evaluate(self, name):
        d = self.graph.node(name)
        args = [self.value[i] if i not in self.nonfinite else nonfinite.expr(self.nonfinite[i])
                for i in d.inputs]
        if d.op == "placeholder":
            return self._atom(name, "input")
        if d.op == "constant":  # inf and nan as opaque symbols, never sympy's oo (nonfinite)
            value = nonfinite.expr(d.attrs["value"])
            if not value.is_number:
                self.nonfinite[name] = d.attrs["value"]
            return value
        op = REGISTRY[d.op]
        if op.elementwise:
            args = [self._promote(i, a, d.dtype) for i, a in zip(d.inputs, args)]
            if op.expr.func in (sp.Max, sp.Min, sp.Heaviside) and set(op.expr.args) & set(ARGS):
                # relu and step: sympy would ask a dozen assumptions of a large argument only
                # to find it cannot decide its sign; the value is the same unevaluated
                env = dict(zip(ARGS, args))
                return op.expr.func(*[env.get(x, x) for x in op.expr.args], evaluate=False)
            return op.expr.xreplace(dict(zip(ARGS, args)))
        special = SPECIAL.get(d.op)
        value = special(self, d, args) if special is not None else None
        return value if value is not None else self._atom(name, "op", args=tuple(args))

    def _promote(self, name, expr, dtype):
        """An input of a narrower dtype is converted first, as the node-by-node semantics do.

        Without this, an algebraic rewrite could move float32 arithmetic across
        the point where the graph promotes it to float64.
        """
        src = self.graph.node(name).dtype
        if src == dtype or nonfinite.is_constant(expr) or dtype == "int64":
            return expr
        key = (name, dtype)
        sym = self.casts.get(key)
        if sym is None:
            sym = self.casts[key] = sp.Symbol(f"_c{len(self.casts)}", real=True)
            self.atoms[sym] = Atom(sym, "cast", self.graph.node(name).shape, dtype,
                                   args=(expr,), nodes=[])
        return sym

    # -- reductions ------------------------------------------------------------------------
    def reduce(self, body, axes, in_shape, node, create=True):
        """``sum(body, axes, keepdims=True)`` as scales times shared reduction atoms.

        With ``create`` False nothing new is made: the result is None when it
        would need a reduction that does not exist yet.
        """
        axes, in_shape = tuple(axes), tuple(in_shape)
        ndim = len(in_shape)
        terms = []
        for term in sp.Add.make_args(body):
            scale, varying = [], []
            for f in sp.Mul.make_args(term):
                (varying if self.varies(f, axes, ndim) else scale).append(f)
            if varying and any(nonfinite.involves(f) for f in scale):
                # sum(inf * x) is NaN when x has both signs; inf * sum(x) need not be
                varying, scale = scale + varying, []
            terms.append((sp.Mul(*scale), varying))
        if any(not varying for _, varying in terms) and len(terms) > 1:
            # sum(x - c) = sum(x) - c*M subtracts two large numbers: keep the centred sum,
            # unless the two cancel exactly, as sum(x - mean(x)) = sum(x) - sum(x) = 0 does
            if self._distribute(terms, axes, in_shape, node, create=False) == 0 or \
                    self._centred(body, axes, in_shape) == 0:
                return sp.Integer(0)
            return self._reduction(body, axes, in_shape, node, create)
        return self._distribute(terms, axes, in_shape, node, create)

    def _centred(self, body, axes, in_shape):
        """``sum(body)`` when ``body`` is ``k*v + c`` for a ``v`` of several terms whose sum
        exists, ``c`` constant along ``axes``: ``k*sum(v) + c*M``; else None.

        This is how ``sum(x + b - mean(x + b))`` is seen to be exactly 0: ``x`` alone
        has no sum, ``x + b`` has. The caller keeps the value only if it is 0, so a sum
        is never split into two large numbers that nearly cancel.
        """
        ndim = len(in_shape)
        parts = {}
        for term in sp.Add.make_args(body):
            coeff, rest = term.as_coeff_Mul()
            parts[rest] = coeff
        for (mono, summed, n), sym in self.reductions.items():
            if n != ndim or not mono.is_Add:
                continue
            first_coeff, first = sp.Add.make_args(mono)[0].as_coeff_Mul()
            if first not in parts:
                continue
            k = parts[first] / first_coeff
            rest = sp.Add(body, *[-k * t for t in sp.Add.make_args(mono)])
            if any(self.varies(t, axes, ndim) for t in sp.Add.make_args(rest)):
                continue
            padded = fit(self.shape_of(mono), ndim)
            if summed != tuple(a for a in axes if padded[a] != 1):
                continue
            count = sp.Mul(*[dim_expr(in_shape[a]) for a in axes])
            constant = sp.Mul(*[dim_expr(in_shape[a]) for a in axes if padded[a] == 1])
            return k * sym * constant + rest * count
        return None

    def _distribute(self, terms, axes, in_shape, node, create):
        total = sp.Integer(0)
        for scale, varying in terms:
            if not varying:
                total += scale * sp.Mul(*[dim_expr(in_shape[a]) for a in axes])
                continue
            if len(varying) == 1 and varying[0].is_Add:
                trial = self.reduce(varying[0], axes, in_shape, node, create=False)
                if trial is not None:
                    total += scale * trial
                    continue
            atom = self._reduction(sp.Mul(*varying), axes, in_shape, node, create)
            if atom is None:
                return None
            total += scale * atom
        return total

    def _reduction(self, mono, axes, in_shape, node, create):
        ndim = len(in_shape)
        shape = self.shape_of(mono)
        padded = fit(shape, ndim)
        summed = tuple(a for a in axes if padded[a] != 1)
        constant = [dim_expr(in_shape[a]) for a in axes if padded[a] == 1]
        key = (mono, summed, ndim)
        sym = self.reductions.get(key)
        if sym is None:
            if not create:
                return None
            sym = sp.Symbol(f"_r{len(self.reductions)}", real=True)
            # leading unit axes are dropped: broadcasting cannot tell them apart
            kept = strip_units(tuple(1 if a in summed else d for a, d in enumerate(padded)))
            shift = len(shape) - ndim  # axes as the monomial's own array numbers them
            self.atoms[sym] = Atom(sym, "reduce", kept, self.dtype_of(mono), expr=mono,
                                   axes=tuple(a + shift for a in summed), nodes=[node])
            self.reductions[key] = sym
        elif create:
            self.atoms[sym].nodes.append(node)
        return sym * sp.Mul(*constant)


# -- the structural ops codegen sees through, one line each (everything else is an atom) ----
def _numel(sym, d, args):  # a count of positions is a product of sizes
    shape = sym.graph.node(d.inputs[0]).shape
    return sp.Mul(*[dim_expr(shape[a]) for a in d.attrs["axes"]])


def _sum(sym, d, args):  # a linear map: factors pulled out, equal monomials shared
    in_shape = sym.graph.node(d.inputs[0]).shape
    kept = sym.reduce(args[0], d.attrs["axes"], in_shape, d.name)
    if d.attrs["keepdims"] or _same_alignment(in_shape, d.attrs["axes"], d.shape):
        return kept
    return sym._atom(d.name, "op", args=(kept,))  # dropping inner axes: a reshape


def _reshape(sym, d, args):  # only leading unit axes change: broadcasting sees no difference
    if strip_units(sym.graph.node(d.inputs[0]).shape) == strip_units(d.shape):
        return args[0]
    return None


SPECIAL = {
    "numel": _numel,
    "broadcast_to": lambda sym, d, args: args[0],  # implicit in every fused expression
    "sum": _sum,
    "reshape": _reshape,
}


def _same_alignment(in_shape, axes, out_shape):
    kept = tuple(1 if i in axes else d for i, d in enumerate(in_shape))
    return strip_units(kept) == strip_units(out_shape)
