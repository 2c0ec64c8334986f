"""The static computation graph: op applications held in a networkx DiGraph.

A node is one op application. Its attributes are the op's name, the ordered
names of its inputs, its attributes (axes, shapes, constant values), its shape
(ints, or strings naming symbolic sizes such as ``"N"``), its dtype, the phase
it belongs to (``forward``, ``backward`` or ``update``) and the module scope it
was recorded in. This layer knows nothing of NumPy; what a node *means* is the
business of :mod:`lucid.ops`, which is handed to :meth:`Graph.lint` as a
registry.
"""
from __future__ import annotations

import builtins
import itertools
import keyword
import re
from dataclasses import dataclass, field

import networkx as nx

PHASES = ("forward", "backward", "update")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Names a node may not take: they would shadow Python or the generated code's own names.
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) \
    | {"np", "numpy"}


def _free(name):
    """Whether a node may be called ``name`` in generated code.

    Builtins, keywords and ``np`` would shadow Python's own names; a leading
    underscore and ``size_`` are the generated code's own (``_t0``, ``_r1``,
    ``_buffer``, ``size_N``).
    """
    return name not in RESERVED and not name.startswith(("_", "size_"))


@dataclass(frozen=True)
class Node:
    """A read-only view of one node of a :class:`Graph`."""

    name: str
    op: str
    inputs: tuple
    attrs: dict
    shape: tuple
    dtype: str
    phase: str = "forward"
    scope: str = ""
    label: str = ""
    rule: dict = None
    kernel: str = ""


@dataclass
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
        Nodes keyed by name, with the attributes of :class:`Node`; an edge
        ``a -> b`` carries ``args``, the argument positions of ``a`` in ``b``.
    inputs : list of str
        Placeholder names, in call order.
    outputs : dict
        Output key (what a program returns it as) -> node name.
    checks : list of Check
        Run-time conditions on input sizes.
    """

    nx: nx.DiGraph = field(default_factory=nx.DiGraph)
    inputs: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)

    # -- building -------------------------------------------------------
    def fresh_name(self, hint: str = "n") -> str:
        """Return an unused node name: ``hint`` if free and legal, else ``n<k>``."""
        if hint != "n" and _IDENT.match(hint) and hint not in self.nx and _free(hint):
            return hint
        while True:
            name = f"n{next(self._counter)}"
            if name not in self.nx:
                return name

    def add(self, op, inputs, shape, dtype, attrs=None, *, name=None,
            phase="forward", scope="", label="", rule=None):
        """Add a node applying ``op`` to the named ``inputs``; return its name.

        ``rule`` is the node's gradient rule as :mod:`lucid.ops` describes it
        (input name -> sympy partial, or a sentence for structural ops); the
        graph only carries it, for printers and users to read.
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        for i in inputs:
            if i not in self.nx:
                raise ValueError(f"input {i!r} of new {op} node is not in the graph")
        name = self.fresh_name(name or "n")
        self.nx.add_node(name, op=op, inputs=tuple(inputs), attrs=dict(attrs or {}),
                         shape=tuple(shape), dtype=str(dtype), phase=phase,
                         scope=scope, label=label, rule=rule, kernel="")
        for pos, i in enumerate(inputs):
            if self.nx.has_edge(i, name):
                self.nx.edges[i, name]["args"].append(pos)
            else:
                self.nx.add_edge(i, name, args=[pos])
        if op == "placeholder":
            self.inputs.append(name)
        return name

    def node(self, name: str) -> Node:
        return Node(name=name, **self.nx.nodes[name])

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

    def symbols(self):
        """Symbolic sizes, each with the (placeholder, axis) that defines it."""
        found = {}
        for p in self.inputs:
            for axis, d in enumerate(self.nx.nodes[p]["shape"]):
                if isinstance(d, str):
                    found.setdefault(d, (p, axis))
        return found

    def copy(self) -> "Graph":
        g = Graph(nx=self.nx.copy(), inputs=list(self.inputs), outputs=dict(self.outputs),
                  checks=list(self.checks))
        for n in g.nx.nodes:
            g.nx.nodes[n]["attrs"] = dict(g.nx.nodes[n]["attrs"])
        for e in g.nx.edges:
            g.nx.edges[e]["args"] = list(g.nx.edges[e]["args"])
        g._counter = itertools.count(len(self.nx))
        return g

    # -- editing (used by rewrite passes) ------------------------------------
    def replace_uses(self, old: str, new: str) -> None:
        """Make every user of ``old`` (and every output) read ``new`` instead."""
        for user in list(self.nx.successors(old)):
            data = self.nx.nodes[user]
            data["inputs"] = tuple(new if i == old else i for i in data["inputs"])
            args = self.nx.edges[old, user]["args"]
            self.nx.remove_edge(old, user)
            if self.nx.has_edge(new, user):
                self.nx.edges[new, user]["args"].extend(args)
            else:
                self.nx.add_edge(new, user, args=list(args))
        for key, value in self.outputs.items():
            if value == old:
                self.outputs[key] = new

    def remove_unused(self) -> int:
        """Delete nodes no output depends on (placeholders stay); return how many."""
        live = set(self.inputs)
        for out in self.outputs.values():
            live.add(out)
            live |= nx.ancestors(self.nx, out)
        dead = [n for n in self.nx.nodes if n not in live]
        self.nx.remove_nodes_from(dead)
        return len(dead)

    # -- checking ------------------------------------------------------------
    def lint(self, registry=None) -> None:
        """Raise ValueError unless the graph is well formed.

        Checks acyclicity, legal unique names, that edges match the ordered
        inputs, that outputs exist and, given an op ``registry`` (mapping op
        name -> op with ``arity``), that every op is registered with the right
        number of inputs.
        """
        g = self.nx
        if not nx.is_directed_acyclic_graph(g):
            raise ValueError(f"graph has a cycle: {nx.find_cycle(g)}")
        for name, data in g.nodes(data=True):
            if not _IDENT.match(name) or not _free(name):
                raise ValueError(f"node name {name!r} is not a free identifier")
            expected = {}
            for pos, i in enumerate(data["inputs"]):
                expected.setdefault(i, []).append(pos)
            actual = {p: sorted(g.edges[p, name]["args"]) for p in g.predecessors(name)}
            if expected != actual:
                raise ValueError(f"node {name!r}: edges {actual} disagree with inputs {expected}")
            if data["phase"] not in PHASES:
                raise ValueError(f"node {name!r}: unknown phase {data['phase']!r}")
            if registry is not None:
                op = registry.get(data["op"])
                if op is None:
                    raise ValueError(f"node {name!r}: op {data['op']!r} is not registered")
                if op.arity is not None and op.arity != len(data["inputs"]):
                    raise ValueError(f"node {name!r}: {op.name} takes {op.arity} inputs, "
                                     f"got {len(data['inputs'])}")
        for p in self.inputs:
            if p not in g or g.nodes[p]["op"] != "placeholder":
                raise ValueError(f"input {p!r} is not a placeholder of the graph")
        sizes = self.symbols()
        for name, data in g.nodes(data=True):
            for d in data["shape"]:
                if isinstance(d, str) and (d not in sizes or not _IDENT.match(d)):
                    raise ValueError(f"node {name!r}: size {d!r} is not the size of any input")
        for key, out in self.outputs.items():
            if out not in g:
                raise ValueError(f"output {key!r} names missing node {out!r}")

    # -- inspecting (printers live in printing.py and dot.py) ------------------
    def __str__(self):
        """The typed listing: inputs, forward, backward and update nodes, outputs."""
        from .printing import listing  # noqa: PLC0415  (printing imports this module)
        return listing(self)

    def summary(self) -> str:
        """A table of the nodes: node, op, inputs, shape, dtype, kernel, phase."""
        from .printing import summary  # noqa: PLC0415
        return summary(self)

    def to_dot(self, path=None, rankdir="TB", group_by_module=False) -> str:
        """DOT text for Graphviz, also written to ``path`` if given (see :func:`.dot.to_dot`)."""
        from .dot import to_dot  # noqa: PLC0415
        return to_dot(self, path, rankdir=rankdir, group_by_module=group_by_module)

    def render(self, path, format=None, **options):  # noqa: A002
        """Draw the graph with Graphviz to an svg, png or pdf file (see :func:`.dot.render`)."""
        from .dot import render  # noqa: PLC0415
        return render(self, path, format=format, **options)
