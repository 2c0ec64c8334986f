"""The static computation graph: op applications held in a networkx DiGraph.

A node is one op application, stored once as a frozen :class:`Node` under the
networkx node's ``"node"`` attribute: the op's name, the ordered names of its
inputs (the only place operands are kept; edges and users are derived from
them), attributes (axes, shapes, constant values), shape (ints, or strings
naming symbolic sizes such as ``"N"``), dtype, :class:`Phase` and module
scope. Outputs are :class:`Output` specs. What passes learn about nodes
(fused kernels, say) goes into the ``meta`` side table, never into the nodes.
This layer knows nothing of NumPy or of what ops mean; :meth:`Graph.lint` is
handed the op registry.
"""
from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass, field, replace

import networkx as nx

from . import dot, export, printing
from .kinds import PHASES, OutKind, Phase, Role


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Names a node may not take: they would shadow Python or the generated code's own names.
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) \
    | {"np", "numpy"}


#: Longer hints give ``n<k>`` names: the key keeps the user's name, the code stays readable.
MAX_NAME = 64


def _free(name):
    """Whether a node may be called ``name`` in generated code.

    Builtins, keywords and ``np`` would shadow Python's own names; a leading
    underscore and ``size_`` are the generated code's own (``_t0``, ``_r1``,
    ``_buffer``, ``size_N``).
    """
    return name not in RESERVED and not name.startswith(("_", "size_"))


class Attrs(dict):
    """A node's attributes: a dict that cannot change (a pass makes a new node instead)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("node attributes are read-only; replace the node instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __reduce__(self):
        return (Attrs, (dict(self),))


@dataclass(frozen=True)
class Node:
    """One node of a :class:`Graph`.

    ``attrs`` is a read-only mapping. ``rule`` is the node's gradient rule as
    :mod:`lucid.ops` describes it (input name -> sympy partial, or a sentence
    for structural ops); the graph only carries it, for printers and users to
    read, and ``lint(registry)`` checks that it names the node's inputs. ``role`` and ``key`` are
    a placeholder's: what it stands for, and the user-facing name (``x``,
    ``0.weight``, ``grad:out``).
    """

    name: str
    op: str
    inputs: tuple
    attrs: dict
    shape: tuple
    dtype: str
    phase: Phase = Phase.FORWARD
    scope: str = ""
    label: str = ""
    rule: tuple = ()
    role: Role | None = None
    key: str = ""


@dataclass(frozen=True)
class Output:
    """An output of a graph: the node it returns and what it is.

    ``of`` is, for a gradient, the key of the input or parameter it is the
    gradient of; for an update, the key of the buffer it replaces.
    """

    node: str
    kind: OutKind = OutKind.RESULT
    of: str = ""


@dataclass(frozen=True)
class Check:
    """A run-time condition on symbolic sizes, checked before a program runs.

    The product of ``dims`` (ints and size symbols) must exceed ``minimum``;
    ``message`` may mention ``{shape}``, which reads ``shape`` with the sizes
    of this call.
    """

    dims: tuple
    minimum: int
    shape: tuple
    message: str


@dataclass
class Graph:
    """A static computation graph.

    Attributes
    ----------
    nx : networkx.DiGraph
        Nodes keyed by name, each holding its :class:`Node` as ``"node"``; an
        edge ``a -> b`` exists when ``a`` is an input of ``b``.
    inputs : list of str
        Placeholder names, in call order.
    outputs : dict
        Output key (what a program returns it as) -> :class:`Output`.
    checks : list of Check
        Run-time conditions on input sizes.
    meta : dict
        Node name -> dict of what passes found out (``{"kernel": "_t3"}``).
    modules : dict
        Module scope (dotted path) -> what the module is (``"BatchNorm1d(128)"``),
        recorded by the tracer for pictures; empty for hand-built graphs.
    """

    nx: nx.DiGraph = field(default_factory=nx.DiGraph)
    inputs: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)
    _next: int = field(default=0, repr=False)  # the k of the next ``n<k>`` name to try

    # -- building -------------------------------------------------------
    def fresh_name(self, hint: str = "n") -> str:
        """Return an unused node name: ``hint`` if free, legal and short, else ``n<k>``."""
        if hint != "n" and isinstance(hint, str) and len(hint) <= MAX_NAME and \
                _IDENT.match(hint) and hint not in self.nx and _free(hint):
            return hint
        while True:
            name, self._next = f"n{self._next}", self._next + 1
            if name not in self.nx:
                return name

    def add(self, op, inputs, shape, dtype, attrs=None, *, name=None, phase=Phase.FORWARD,
            scope="", label="", rule=(), role=None, key=""):
        """Add a node applying ``op`` to the named ``inputs``; return its name."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        phase = Phase(phase)
        role = Role(role) if role is not None else (Role.INPUT if op == "placeholder" else None)
        for i in inputs:
            if i not in self.nx:
                raise ValueError(f"input {i!r} of new {op} node is not in the graph")
        name = self.fresh_name(name or "n")
        self.nx.add_node(name, node=Node(name, op, tuple(inputs), Attrs(attrs or {}),
                                         tuple(shape), str(dtype), phase, scope, label,
                                         tuple(rule or ()), role, key))
        for i in inputs:
            self.nx.add_edge(i, name)
        if op == "placeholder":
            self.inputs.append(name)
        return name

    def set_output(self, key, node, kind=OutKind.RESULT, of=""):
        """Return ``node`` from a program as ``key``."""
        self.outputs[key] = Output(node, OutKind(kind), of)

    def node(self, name: str) -> Node:
        return self.nx.nodes[name]["node"]

    def replace_node(self, node: Node) -> None:
        """Swap in an edited record (same name and inputs; for rewrites and tests)."""
        old = self.node(node.name)
        if old.inputs != node.inputs:
            raise ValueError("replace_node keeps the inputs; use replace_uses to rewire")
        self.nx.nodes[node.name]["node"] = node

    def __contains__(self, name):
        return name in self.nx

    def __len__(self):
        return self.nx.number_of_nodes()

    def users(self, name):
        """Names of the nodes that take ``name`` as an input."""
        return list(self.nx.successors(name))

    def topo(self):
        """Node names in a deterministic topological order (insertion order breaks ties)."""
        order = {n: i for i, n in enumerate(self.nx.nodes)}
        return list(nx.lexicographical_topological_sort(self.nx, key=order.__getitem__))

    def nodes(self):
        return [self.node(n) for n in self.topo()]

    def output_nodes(self):
        """``{output key: node name}``."""
        return {k: o.node for k, o in self.outputs.items()}

    def symbols(self):
        """Symbolic sizes, each with the (placeholder, axis) that defines it."""
        found = {}
        for p in self.inputs:
            for axis, d in enumerate(self.node(p).shape):
                if isinstance(d, str):
                    found.setdefault(d, (p, axis))
        return found

    def copy(self) -> "Graph":
        g = Graph(nx=self.nx.copy(), inputs=list(self.inputs), outputs=dict(self.outputs),
                  checks=list(self.checks), meta={n: dict(m) for n, m in self.meta.items()},
                  modules=dict(self.modules), _next=self._next)
        return g

    # -- editing (used by rewrite passes) ------------------------------------
    def replace_uses(self, old: str, new: str) -> None:
        """Make every user of ``old`` (and every output) read ``new`` instead.

        A user's ``rule`` names its inputs; the pass that rewires it says the
        rule again (this layer does not know what ops mean).
        """
        for user in list(self.nx.successors(old)):
            node = self.node(user)
            inputs = tuple(new if i == old else i for i in node.inputs)
            self.nx.nodes[user]["node"] = replace(node, inputs=inputs)
            self.nx.remove_edge(old, user)
            self.nx.add_edge(new, user)
        for key, out in self.outputs.items():
            if out.node == old:
                self.outputs[key] = replace(out, node=new)

    def remove_unused(self) -> int:
        """Delete nodes no output depends on (placeholders stay); return how many."""
        live, todo = set(), [o.node for o in self.outputs.values()]
        while todo:  # one walk back from every output at once
            n = todo.pop()
            if n not in live:
                live.add(n)
                todo.extend(self.nx.predecessors(n))
        live.update(self.inputs)
        dead = [n for n in self.nx.nodes if n not in live]
        self.nx.remove_nodes_from(dead)
        for n in dead:
            self.meta.pop(n, None)
        return len(dead)

    # -- checking ------------------------------------------------------------
    def lint(self, registry=None) -> None:
        """Raise ValueError unless the graph is well formed.

        Checks acyclicity, legal unique names, that edges are exactly the
        inputs, that outputs exist and, given an op ``registry`` (mapping op
        name -> op with ``arity``), that every op is registered with the right
        number of inputs.
        """
        g = self.nx
        if not nx.is_directed_acyclic_graph(g):
            raise ValueError(f"graph has a cycle: {nx.find_cycle(g)}")
        for name in g.nodes:
            node = g.nodes[name].get("node")
            if not isinstance(node, Node) or node.name != name:
                raise ValueError(f"node {name!r} has no Node record of its own name")
            if not _IDENT.match(name) or not _free(name):
                raise ValueError(f"node {name!r} is not a free identifier")
            if set(node.inputs) != set(g.predecessors(name)):
                raise ValueError(f"node {name!r}: edges from {sorted(g.predecessors(name))} "
                                 f"disagree with inputs {list(node.inputs)}")
            if not isinstance(node.phase, Phase):
                raise ValueError(f"node {name!r}: unknown phase {node.phase!r}")
            if registry is not None:
                op = registry.get(node.op)
                if op is None:
                    raise ValueError(f"node {name!r}: op {node.op!r} is not registered")
                if op.arity is not None and op.arity != len(node.inputs):
                    raise ValueError(f"node {name!r}: {op.name} takes {op.arity} inputs, "
                                     f"got {len(node.inputs)}")
                named = tuple(str(i) for i, _ in node.rule or ())
                if named != node.inputs[:len(named)]:
                    raise ValueError(f"node {name!r}: its gradient rule names "
                                     f"{[str(i) for i, _ in node.rule]}, its inputs are "
                                     f"{list(node.inputs)}")
                try:  # attributes and dtype reach generated source: the op's schema says
                    op.check_node(node)
                except ValueError as e:
                    raise ValueError(f"node {name!r}: {e}") from None
        for p in self.inputs:
            if p not in g or self.node(p).op != "placeholder":
                raise ValueError(f"input {p!r} is not a placeholder of the graph")
        sizes = self.symbols()
        for name in g.nodes:
            for d in self.node(name).shape:
                if isinstance(d, str) and (d not in sizes or not _IDENT.match(d)):
                    raise ValueError(f"node {name!r}: size {d!r} is not the size of any input")
        for key, out in self.outputs.items():
            if not isinstance(out, Output) or out.node not in g:
                raise ValueError(f"output {key!r} names missing node {out!r}")

    # -- inspecting (the printers are lucid.graph.printing and lucid.graph.dot) ------------
    def __str__(self):
        """The typed listing: inputs, forward, backward and update nodes, outputs."""
        return printing.listing(self)

    def summary(self) -> str:
        """A table of the nodes: node, op, inputs, shape, dtype, kernel, phase."""
        return printing.summary(self)

    def to_dot(self, path=None, rankdir="TB", group_by_module=False, detail="op") -> str:
        """DOT text for Graphviz, also written to ``path`` if given (see :func:`.dot.to_dot`).

        ``detail="module"`` draws one node per module call instead of one per op.
        """
        return dot.to_dot(self, path, rankdir=rankdir, group_by_module=group_by_module,
                          detail=detail)

    def to_json(self, path=None) -> str:
        """The whole graph as JSON in a stable schema (see :mod:`lucid.graph.export`)."""
        return export.to_json(self, path)

    def render(self, path, format=None, **options):  # noqa: A002
        """Draw the graph with Graphviz to an svg, png or pdf file (see :func:`.dot.render`)."""
        return dot.render(self, path, format=format, **options)
