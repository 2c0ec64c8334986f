"""Planning: from the symbolic form to an ordered list of items to compute.

Common subexpressions across every reduction body, op argument and output
are found once (``sympy.cse``); what remains is a list of items (temporaries,
reductions, opaque ops, outputs) in dependency order, each marked forward or
backward by whether an upstream gradient reaches it. Items no output needs
are never planned (dead code); constants were folded by sympy on the way.
Each graph node is then assigned to the item that computes it
(``plan.provenance``), which is what the generated comments name.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..ops import REGISTRY, Kind
from .symbolic import SIZES, Symbolic


class _Views:
    """``op in VIEWS``: the op's lowering may return a view of its input (its record says
    so; a ``sum`` atom is lowered as a reshape of its reduction, see ``Emitter.op``)."""

    def __contains__(self, op):
        return op == "sum" or REGISTRY[op].view


VIEWS = _Views()


@dataclass
class Item:
    """One thing the generated code computes."""

    symbol: sp.Symbol
    kind: str  # "let", "reduce", "op", "cast" or "output"
    expr: sp.Expr = None  # let/output: the value; reduce: the monomial summed
    args: tuple = ()  # op: argument expressions
    shape: tuple = ()
    dtype: str = "float32"
    axes: tuple = ()
    node: str = ""  # op/output: the graph node
    backward: bool = False
    nodes: list = field(default_factory=list)  # graph nodes it implements, for comments

    def exprs(self):
        return (self.expr,) if self.expr is not None else self.args


@dataclass
class Provenance:
    """Where each graph node is computed: recorded while planning, never searched for."""

    item: dict  # node name -> symbol of the item whose statement computes the node's value
    nodes: dict  # item symbol -> the nodes it computes, its own first (the lists in Item.nodes)
    part_of: dict  # symbol of an item with no nodes -> the nodes it is a part of


class Plan:
    """Items computing ``graph.outputs``, with forward/backward marks and residuals."""

    def __init__(self, graph, seeds=()):
        self.graph = graph
        self.sym = Symbolic(graph)
        self.seeds = {sp.Symbol(s, real=True) for s in seeds}
        outputs = list(dict.fromkeys(o.node for o in graph.outputs.values()))
        atoms = self._reachable([self.sym.value[n] for n in outputs])
        roots = []
        for a in atoms:
            roots.extend([a.expr] if a.expr is not None else list(a.args))
        roots.extend(self.sym.value[n] for n in outputs)
        replacements, reduced = sp.cse(roots, symbols=sp.numbered_symbols("_t", real=True),
                                       order="none")
        self.temps = dict(replacements)
        self.known = {e: t for t, e in replacements}  # value -> temporary holding it
        for t, e in replacements:  # dependencies first: shapes never need them written out
            self.sym.name(t, e)
        it = iter(reduced)
        items = {}
        for a in atoms:
            if a.expr is not None:  # a reduction, or a cut in a deep chain
                items[a.symbol] = Item(a.symbol, a.kind, expr=next(it), shape=a.shape,
                                       dtype=a.dtype, axes=a.axes, nodes=list(a.nodes))
            else:
                args = tuple(next(it) for _ in a.args)
                items[a.symbol] = Item(a.symbol, a.kind, args=args, shape=a.shape, dtype=a.dtype,
                                       node=a.node or (a.nodes[0] if a.nodes else ""),
                                       nodes=list(a.nodes))
        for t, e in replacements:
            items[t] = Item(t, "let", expr=e, shape=self.sym.shape_of(e),
                            dtype=self.sym.dtype_of(e))
        self.outputs = {}
        for n in outputs:
            d = graph.node(n)
            sym = sp.Symbol(f"_out_{n}", real=True)
            items[sym] = Item(sym, "output", expr=next(it), shape=d.shape, dtype=d.dtype,
                              node=n)
            self.outputs[n] = sym
        self.output_symbols = set(self.outputs.values())
        self._reuse_roots(items)
        self._reuse_products(items)
        self.items = self._order(items)
        self.scalars = {s for s in self.sym.atoms if self.sym.atoms[s].shape == ()} | \
            {it.symbol for it in self.items if it.shape == ()} | \
            {f for it in self.items for e in it.exprs() for f in e.free_symbols if f in SIZES}
        self._mark_backward()
        self.provenance = self._trace_provenance()
        self.memory = {}  # function -> [(scratch slot, first item, last item)], by generate

    def _reuse_roots(self, items):
        """Write b**(k/2) with a temporary that already holds 1/sqrt(b): rstd**3, not a pow."""
        roots = {e.base: t for t, e in self.temps.items() if e.is_Pow and e.exp == sp.Rational(-1, 2)}
        if not roots:
            return

        def half_power(e):
            return e.is_Pow and e.base in roots and e.exp.is_Rational and e.exp.q == 2

        holders = set(roots.values())
        for sym, it in items.items():
            if sym in holders:
                continue
            if it.expr is not None:
                it.expr = it.expr.replace(half_power, lambda e: roots[e.base] ** int(-2 * e.exp))
            it.args = tuple(a.replace(half_power, lambda e: roots[e.base] ** int(-2 * e.exp))
                            for a in it.args)

    def _reuse_products(self, items):
        """Read a product a temporary holds from it: ``t*k`` for ``a*b*k`` once ``t = a*b``.

        ``sympy.cse`` matches the factors common to several products only
        sometimes (it depends on the order it meets them); a backward that
        multiplies ``dy*mask`` again where a temporary already holds it pays one
        more pass over the data.
        """
        products = [(t, frozenset(e.args)) for t, e in self.temps.items()
                    if e.is_Mul and not e.args[0].is_Number and len(e.args) >= 2]
        if not products:
            return

        def holds(e):
            return e.is_Mul and any(f < frozenset(e.args) for _, f in products)

        def reuse(e):
            args = frozenset(e.args)
            for t, f in products:  # several may apply: t5*w*mask*dy is t6*t9
                if f <= args and len(f) < len(args):
                    args = (args - f) | {t}
            return sp.Mul(*args)

        for sym, it in items.items():
            if it.expr is not None:
                it.expr = it.expr.replace(holds, reuse)
            it.args = tuple(a.replace(holds, reuse) for a in it.args)

    # -- helpers ------------------------------------------------------------------------
    def _reachable(self, exprs):
        """Atoms the expressions depend on, dependencies first."""
        atoms = self.sym.atoms

        def reads(s):
            a = atoms[s]
            return [f for e in ([a.expr] if a.expr is not None else a.args)
                    for f in sorted(e.free_symbols, key=str) if f in atoms]

        roots = [s for e in exprs for s in sorted(e.free_symbols, key=str) if s in atoms]
        return [atoms[s] for s in _postorder(roots, reads) if atoms[s].kind != "input"]

    def _order(self, items):
        def reads(sym):
            return [f for e in items[sym].exprs() for f in sorted(e.free_symbols, key=str)
                    if f in items]

        roots = [s for s in self.outputs.values() if s in items]
        return [items[s] for s in _postorder(roots, reads)]

    def _mark_backward(self):
        """Backward: what a seed reaches, and every gradient output (even a constant one)."""
        back = set(self.seeds)
        for item in self.items:
            if (item.kind == "output" and self.graph.node(item.node).phase == "backward") or \
                    any(f in back for e in item.exprs() for f in e.free_symbols):
                item.backward = True
                back.add(item.symbol)

    def _trace_provenance(self):
        """Assign every live graph node to the item that computes it, in one pass.

        A node belongs to an item when its value is that item: the output it
        is, the atom that recorded it (its value that atom times a count), the
        temporary or atom its value equals. Every other node was inlined into
        its users, so (users first) it belongs to the earliest item among
        theirs. Placeholders, constants, nodes whose value is a placeholder's
        and nodes no output needs belong to none.
        """
        graph, atoms, topo = self.graph, self.sym.atoms, self.graph.topo()
        position = {it.symbol: i for i, it in enumerate(self.items)}
        owner = {}
        for it in self.items:
            for n in atoms[it.symbol].nodes if it.symbol in atoms else ():
                # a sum with a factor pulled out, or split over several reductions, is
                # computed where the reductions are scaled and combined: not here
                if _counts(self.sym.value[n], it.symbol):
                    owner.setdefault(n, it.symbol)
        owner.update((it.node, it.symbol) for it in self.items
                     if it.kind == "output" and not it.expr.is_Symbol)
        held = self._temps_by_value()

        def reads_atoms(n):
            return any(f in atoms for f in self.sym.value[n].free_symbols)

        item_of = {}
        for n in reversed(topo):
            v = self.sym.value[n]
            if n in owner:
                item_of[n] = owner[n]
            elif REGISTRY[graph.node(n).op].kind is Kind.LEAF or \
                    (v in atoms and atoms[v].kind == "input"):
                continue
            elif held.get(v, v) in position:  # a temporary's value, or an item's own symbol
                item_of[n] = held.get(v, v)
            else:  # a user whose value lost every atom of n's (numel, a folded 0) never read it
                users = [item_of[u] for u in graph.users(n) if u in item_of
                         and (reads_atoms(u) or not reads_atoms(n))]
                if users:
                    item_of[n] = min(users, key=position.__getitem__)
        nodes = {it.symbol: [] for it in self.items}
        for n in topo:  # an item's own nodes first, then those it holds or inlines
            if n in owner:
                nodes[owner[n]].append(n)
        for n in topo:
            if n in item_of and n not in owner:
                nodes[item_of[n]].append(n)
        for it in self.items:
            it.nodes = nodes[it.symbol]
        return Provenance(item_of, nodes, self._parts(nodes))

    def _temps_by_value(self):
        """Temporary holding each value over atoms alone, each expanded once from its parts'."""
        full = {}
        for t, e in self.temps.items():  # dependencies first
            full[t] = e.xreplace({s: full[s] for s in e.free_symbols if s in full})
        return {v: t for t, v in reversed(full.items())}  # the first temporary, if two hold one

    def _parts(self, nodes):
        """For an item with no nodes, the nodes it is part of: an atom's recorded ones, else
        those of the first item using it."""
        first_user = {}
        for it in self.items:
            for e in it.exprs():
                for f in e.free_symbols:
                    first_user.setdefault(f, it.symbol)
        part = {}
        for it in reversed(self.items):  # users come later: their parts are known
            if nodes[it.symbol]:
                continue
            recorded = self.sym.atoms[it.symbol].nodes if it.symbol in self.sym.atoms else []
            user = first_user.get(it.symbol)
            if recorded or user is not None:
                part[it.symbol] = list(recorded) or nodes[user] or part.get(user, [])
        return part

    def part_of(self, item):
        """For an item with no nodes of its own, the graph nodes it is a part of."""
        return self.provenance.part_of.get(item.symbol, [])

    def aliases_input(self, expr):
        """Whether ``expr`` is an input or a view of one (returning it would share memory)."""
        if expr in self.sym.atoms:
            a = self.sym.atoms[expr]
            return a.kind == "input" or (a.kind == "op" and self.graph.node(a.nodes[0]).op
                                         in VIEWS and all(self.aliases_input(x) for x in a.args))
        return False


def _postorder(roots, children):
    """Depth-first post-order from ``roots`` (each child before its parent, each once).

    Iterative: a chain of thousands of statements must not hit Python's recursion limit.
    """
    order, seen = [], set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(children(root)))]
        while stack:
            node, pending = stack[-1]
            for child in pending:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(children(child))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _counts(value, symbol):
    """Whether ``value`` is ``symbol`` times a count (numbers and sizes only)."""
    return {f for f in value.free_symbols if f not in SIZES} == {symbol}
