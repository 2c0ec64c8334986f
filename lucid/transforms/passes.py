"""Graph passes: small named ``Graph -> Graph`` functions in an ordered, printable pipeline.

A pass gets a copy of the graph it may edit, and :class:`Options` (what the
compile asked for); it returns the new graph. The caller's graph is never
changed. :data:`DEFAULT` is what :func:`lucid.compile` runs; pass your own
``Pipeline`` (``lucid.compile(..., passes=DEFAULT.with_pass(p, after="cse"))``)
to add one. A pass records which nodes it made in ``graph.meta[n]["pass"]``.

>>> from lucid.transforms import DEFAULT
>>> print(DEFAULT)
1. autodiff  append the backward pass (gradients of the outputs) as ordinary nodes
2. cse       merge nodes that apply the same op to the same inputs with the same attributes
3. dce       drop nodes no output depends on
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

from ..graph import OutKind, Phase, Role
from ..ops import FLOATS, REGISTRY
from .autodiff import add_backward


@dataclass(frozen=True)
class Options:
    """What a compile asked of the passes.

    ``backward``: add gradients; ``wrt``: placeholder names or keys to
    differentiate with respect to (None: every float input and parameter).
    """

    backward: bool = False
    wrt: tuple | None = None


@dataclass(frozen=True)
class Pass:
    """A named ``Graph -> Graph`` rewrite: ``run(graph, options)`` edits a copy and returns it."""

    name: str
    run: Callable
    doc: str = ""


@dataclass(frozen=True)
class Record:
    """What one pass did in one compile."""

    name: str
    nodes_before: int
    nodes_after: int
    seconds: float

    def __str__(self):
        return (f"{self.name:<10} {self.nodes_before:>6} -> {self.nodes_after:<6} nodes  "
                f"{1000 * self.seconds:7.1f} ms")


class Report(list):
    """The :class:`Record` of every pass of one compile; prints as a table."""

    def __str__(self):
        return "\n".join(map(str, self))


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of passes."""

    passes: tuple = field(default_factory=tuple)

    def run(self, graph, options=Options(), lint=None):
        """Run every pass on a copy of ``graph``; return ``(graph, Report of Records)``.

        ``lint``: a callable run on the graph after each pass (the tests pass
        ``lambda g: g.lint(REGISTRY)``).
        """
        records = Report()
        for p in self.passes:
            before, start = len(graph), time.perf_counter()
            copy = graph.copy()
            known = set(copy.nx.nodes)
            graph = p.run(copy, options)
            for n in graph.nx.nodes:
                if n not in known:
                    graph.meta.setdefault(n, {})["pass"] = p.name
            _say_rules_again(graph)
            records.append(Record(p.name, before, len(graph), time.perf_counter() - start))
            if lint is not None:
                lint(graph)
        return graph, records

    def with_pass(self, new, after=None):
        """A pipeline with ``new`` inserted after the pass named ``after`` (default: last)."""
        names = [p.name for p in self.passes]
        if new.name in names:
            raise ValueError(f"the pipeline already has a pass named {new.name!r}")
        if after is not None and after not in names:
            raise ValueError(f"no pass named {after!r} in {names}")
        at = names.index(after) + 1 if after is not None else len(names)
        return Pipeline(self.passes[:at] + (new,) + self.passes[at:])

    def without(self, name):
        return Pipeline(tuple(p for p in self.passes if p.name != name))

    def __str__(self):
        width = max((len(p.name) for p in self.passes), default=0)
        return "\n".join(f"{i}. {p.name.ljust(width)}  {p.doc}"
                         for i, p in enumerate(self.passes, 1))


def _say_rules_again(graph):
    """A node's rule names its inputs: after a pass rewired some, derive those rules again."""
    for name in graph.nx.nodes:
        node = graph.node(name)
        named = tuple(str(i) for i, _ in node.rule or ())
        if named != node.inputs[:len(named)]:
            graph.replace_node(replace(node, rule=REGISTRY[node.op].rule(node.inputs)))


# -- the passes ----------------------------------------------------------------------------
def autodiff(graph, options):
    """One upstream-gradient placeholder per float result; gradients as ``grad:<key>`` outputs."""
    if not options.backward:
        return graph
    node = graph.node
    results = {k: o.node for k, o in graph.outputs.items()
               if o.kind is OutKind.RESULT and node(o.node).dtype in FLOATS}
    candidates = [p for p in graph.inputs if node(p).role in (Role.INPUT, Role.PARAM)
                  and node(p).dtype in FLOATS]
    wrt = options.wrt
    if wrt is None:
        targets = candidates
    else:
        targets = [p for p in candidates if p in wrt or node(p).key in wrt]
        unknown = set(wrt) - {t for p in targets for t in (p, node(p).key)}
        if unknown:
            raise ValueError(f"cannot differentiate with respect to {sorted(unknown)}: "
                             "not a float input or parameter of this program")
    seeds = {}
    for key, n in results.items():
        d = node(n)
        seeds[n] = seed = graph.add("placeholder", [], d.shape, d.dtype, name=f"grad_{key}",
                                    role=Role.GRAD, key=f"grad:{key}", label=f"grad:{key}")
        graph.meta[seed] = {"seeds": key}  # the result whose upstream gradient it holds
    grads = add_backward(graph, seeds, targets)
    for p in targets:
        of = node(p).key or p
        graph.set_output(f"grad:{of}", grads[p], OutKind.GRAD, of=of)
    return graph


def cse(graph, options):
    """Keep one of each set of nodes of one module computing the same op of the same inputs
    and attributes."""
    seen = {}
    for name in graph.topo():
        d = graph.node(name)
        if d.op == "placeholder":
            continue
        try:
            # within one module only: values shared across modules would blur its boundary
            key = (d.op, d.inputs, tuple(sorted(d.attrs.items())), d.dtype, d.shape, d.scope)
            hash(key)
        except TypeError:  # an attribute that cannot be compared: keep the node
            continue
        first = seen.setdefault(key, name)
        if first != name and graph.node(first).phase in (Phase.FORWARD, d.phase):
            graph.replace_uses(name, first)  # never make the forward read a backward node
    return graph


def dce(graph, options):
    """Nodes that no output needs go (placeholders stay: they are the program's signature)."""
    graph.remove_unused()
    return graph


DEFAULT = Pipeline((
    Pass("autodiff", autodiff,
         "append the backward pass (gradients of the outputs) as ordinary nodes"),
    Pass("cse", cse, "merge nodes that apply the same op to the same inputs with the same attributes"),
    Pass("dce", dce, "drop nodes no output depends on"),
))
