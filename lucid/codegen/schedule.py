"""Scheduling: which statements compute a function's nodes, in what order."""
from __future__ import annotations

from .emit import Statement, constant_expr, lower_node, node_comment


def schedule(graph, nodes, params, returns, optimize=True):
    """Statements computing ``returns`` from ``params`` over ``nodes`` (in topo order)."""
    params = set(params)
    needed = set(returns)
    for name in reversed(nodes):  # dead code: only what the returns need is emitted
        if name in needed:
            needed.update(graph.nx.nodes[name]["inputs"])
    inline = {}
    stmts = []
    for name in nodes:
        if name not in needed:
            continue
        d = graph.nx.nodes[name]
        if name in params or d["op"] == "placeholder":
            continue
        args = [inline.get(i, i) for i in d["inputs"]]
        if d["op"] == "constant" and name not in returns:
            inline[name] = constant_expr(d["attrs"]["value"])
            continue
        src = lower_node(graph, name, args)
        stmts.append(Statement(name, src, node_comment(graph, name),
                               reductions=int(d["op"] == "sum")))
    return stmts
