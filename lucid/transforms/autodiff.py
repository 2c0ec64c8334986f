"""Reverse-mode autodiff as a graph transformation.

:func:`add_backward` appends the backward pass to a graph as ordinary nodes
(phase ``backward``): for an elementwise node, each input's contribution is
the upstream gradient times the op's sympy-derived partial, rebuilt from
primitives; for a structural node, the ``vjp`` of its record.
Contributions to one node are summed; broadcasting is undone by ``sum_to``.
"""
from __future__ import annotations

import networkx as nx
import sympy as sp

from ..graph import Phase
from ..ops import ARGS, FLOATS, REGISTRY, Kind
from .builder import Builder

OUT = sp.Symbol("out", real=True)


def add_backward(graph, seeds, wrt):
    """Add the gradients of the seeded outputs with respect to ``wrt``.

    Parameters
    ----------
    graph : Graph
        Edited in place.
    seeds : dict
        Output node name -> node name of its upstream gradient.
    wrt : list of str
        Nodes (usually placeholders) to differentiate with respect to.

    Returns
    -------
    dict
        ``wrt`` name -> node name of its gradient. A node no seeded output
        depends on gets an explicit zero.
    """
    forward = graph.topo()
    reach_back = set(seeds)
    for s in seeds:
        reach_back |= nx.ancestors(graph.nx, s)
    reach_fwd = set(wrt)
    for n in forward:  # values that depend differentiably on some wrt node (not a count)
        d = graph.node(n)
        if REGISTRY[d.op].differentiable and any(i in reach_fwd for i in d.inputs):
            reach_fwd.add(n)
    live = {n for n in reach_back & reach_fwd if graph.node(n).dtype in FLOATS}

    pending = {n: [] for n in live}
    for out, seed in seeds.items():
        if out in live:
            pending[out].append(seed)
    grads = {}
    for name in reversed(forward):
        if name not in live or not pending[name]:
            continue
        node = graph.node(name)
        b = Builder(graph, phase=Phase.BACKWARD, scope=node.scope)
        grads[name] = gn = b.fold("add", pending.pop(name))
        if REGISTRY[node.op].kind is Kind.LEAF:
            continue
        for inp, contribution in zip(node.inputs, _vjp(b, node, gn, live)):
            if inp in live and contribution is not None:
                want = graph.node(inp).dtype
                if b.dtype(contribution) != want:  # undo promotion, like cast's rule
                    contribution = b.apply("cast", contribution, dtype=want)
                pending[inp].append(contribution)
    result = {}
    for w in wrt:
        if w in grads:
            result[w] = grads[w]
        else:
            b = Builder(graph, phase=Phase.BACKWARD)
            zero = b.const(0, graph.node(w).dtype)
            result[w] = b.apply("broadcast_to", zero, shape=graph.node(w).shape)
    return result


def _vjp(b, node, gn, live):
    op = REGISTRY[node.op]
    if not op.elementwise:
        return op.vjp(b, node, gn)
    env = dict(zip(ARGS, node.inputs))
    env[OUT] = node.name
    dtype = b.dtype(gn)
    out = []
    for inp, partial in zip(node.inputs, op.partials):
        partial = _in_terms_of_output(op, partial)
        if partial == 0 or inp not in live:
            out.append(None)
            continue
        if partial == 1:
            term = gn
        elif partial == -1:
            term = b.apply("neg", gn)
        else:
            term = b.apply("mul", gn, b.from_sympy(partial, env, dtype))
        out.append(b.sum_to(term, b.shape(inp)))
    return out


def _in_terms_of_output(op, partial):
    """Reuse the forward result where the derivative contains it (exp, tanh)."""
    if op.arity == 1 and isinstance(op.expr, sp.Function):
        return partial.subs(op.expr, OUT)
    return partial
