"""The module-level view of a graph: one DOT node per module call.

People read a model's structure first and its ops second, so this view
collapses every module scope to one node per phase: its forward
(``1: BatchNorm1d(128)`` with its output type), in a train graph its backward
(mirrored beside the forward, flowing back up) and its state update. Inputs,
gradient seeds and the program's results and input gradients keep their own
nodes; parameters, buffers and constants fold into the module that holds
them, and a module's parameter gradients and buffer updates are listed in its
backward and update nodes. Ops outside any module keep one node each.

Edges are the op-level edges between groups, labelled with the type they
carry when there is one; the forward values the backward reads are light
residual edges, as at op level (see :mod:`lucid.graph.dot`).
"""
from __future__ import annotations

from .dotsyntax import (PHASE_STYLE, RESIDUAL_STYLE, attrs, column, header, legend,
                        module_title, quote, residual)
from .printing import format_type, kernel_of

LEGEND = "one box per module call, double border: output"
_PHASE_TITLE = {"forward": "{}", "backward": "\u2202 {}  (backward)", "update": "{}  (update)",
                "optimizer": "{}  (optimizer step)"}
_CLUSTER = {"style": "rounded,dashed", "color": "#999999"}


def group_of(graph, name: str) -> tuple:
    """The module-level node that op-level node ``name`` belongs to.

    ``("module", scope, phase)`` for what a module computes and holds,
    ``("node", name)`` for inputs, gradient seeds and ops outside any module.
    """
    d = graph.node(name)
    own = d.op == "placeholder" and d.role in ("input", "grad")
    if own or not d.scope:
        return ("node", name)
    return ("module", d.scope, str(d.phase))


def groups(graph) -> dict:
    """Module-level node -> its op-level nodes, in topological order."""
    found = {}
    for n in graph.topo():
        found.setdefault(group_of(graph, n), []).append(n)
    return found


def _exit(graph, members) -> str:
    """The member whose value the group hands on: the last one read outside it or returned."""
    inside, returned = set(members), {o.node for o in graph.outputs.values()}
    leaving = [m for m in members
               if m in returned or any(u not in inside for u in graph.users(m))]
    return (leaving or members)[-1]


def _module_node(graph, key, members, listed) -> dict:
    _, scope, phase = key
    ops = [m for m in members if graph.node(m).op not in ("placeholder", "constant")]
    kernels = sorted({kernel_of(graph, m) for m in ops if kernel_of(graph, m)})
    lines = [_PHASE_TITLE[phase].format(module_title(graph, scope))]
    if phase not in ("update", "optimizer"):
        lines.append(format_type(graph.node(_exit(graph, members))))
    lines += listed
    counts = [_count(len(ops), "op")] + ([_count(len(kernels), "kernel")] if kernels else [])
    lines.append(" \u00b7 ".join(counts))
    held = [graph.node(m).key for m in members if graph.node(m).op == "placeholder"]
    tip = [f"module {scope}, {phase}", "ops: " + ", ".join(graph.node(m).op for m in ops)]
    tip += (["holds: " + ", ".join(held)] if held else [])
    tip += (["kernels: " + ", ".join(kernels)] if kernels else [])
    fill, border = PHASE_STYLE[phase]
    return {"label": "\n".join(lines), "tooltip": "\n".join(tip),
            "fillcolor": fill, "color": border}


def _count(n, word):
    return f"{n} {word}{'s' * (n != 1)}"


def _single_node(graph, name, listed) -> dict:
    d = graph.node(name)
    fill, border = PHASE_STYLE[column(d)]
    if d.op == "placeholder":
        return {"label": f"{d.key or name}\n{d.role} {format_type(d)}", "shape": "invhouse",
                "style": "filled", "fillcolor": fill, "color": border,
                "tooltip": f"{name}: {d.role} {d.key}"}
    label = "\n".join([d.op, format_type(d), *listed])
    return {"label": label, "fillcolor": fill, "color": border,
            "tooltip": f"{name} = {d.op}({', '.join(d.inputs)})"}


def _outputs_listed(graph):
    """Which outputs get a node of their own; the rest are listed in their group's label.

    Results and the gradients of user inputs stand alone; parameter gradients
    and buffer updates are listed in the module they belong to.
    """
    users = {graph.node(p).key for p in graph.inputs if graph.node(p).role == "input"}
    own, listed = {}, {}
    for key, out in graph.outputs.items():
        g = group_of(graph, out.node)
        if out.kind == "result" or g[0] == "node" or (out.kind == "grad" and out.of in users):
            own[key] = out
        else:
            listed.setdefault(g, []).append(f"\u2192 {key}")
    return own, listed


def _edges(graph, ids, own):
    """Group-to-group edges with the types they carry; backward ones written head first."""
    carried, columns = {}, {}
    for a, b in graph.nx.edges:
        ga, gb = group_of(graph, a), group_of(graph, b)
        if ga != gb:
            carried.setdefault((ga, gb), set()).add(format_type(graph.node(a)))
            columns[ga, gb] = (column(graph.node(a)), column(graph.node(b)))
    lines = []
    for (ga, gb), types in carried.items():
        lines.append(_edge(ids[ga], ids[gb], *columns[ga, gb], types))
    for i, (key, out) in enumerate(own.items()):
        side = column(graph.node(out.node))
        lines.append(_edge(ids[group_of(graph, out.node)], f"out{i}", side, side,
                           {format_type(graph.node(out.node))}))
    return lines


def _edge(tail, head, tail_column, head_column, types):
    label = next(iter(types)) if len(types) == 1 else f"{len(types)} values"
    style = {"label": label}
    if residual(tail_column, head_column):
        style = {"tooltip": ", ".join(sorted(types)), **RESIDUAL_STYLE}
    elif head_column == "backward":
        tail, head, style["dir"] = head, tail, "back"
    return f"  {quote(tail)} -> {quote(head)} {attrs(**style)};"


def module_dot(graph, rankdir="TB") -> str:
    """DOT text of the module-level view of ``graph``.

    Examples
    --------
    >>> import lucid, lucid.nn as nn
    >>> x = lucid.placeholder((None, 3), name="x")
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    >>> text = module_dot(lucid.compile(net, x, mode="eval").graph)
    >>> "1: BatchNorm1d(4)\\\\nf32[N,4]" in text, text.count("->")
    (True, 4)
    """
    found = groups(graph)
    ids = {key: f"g{i}" for i, key in enumerate(found)}
    own, listed = _outputs_listed(graph)
    lines = header(rankdir, legend(graph, LEGEND))
    clusters = {}
    for key, members in found.items():
        if key[0] == "module":
            style = _module_node(graph, key, members, listed.get(key, []))
            parent = key[1].rpartition(".")[0]
        else:
            style = _single_node(graph, key[1], listed.get(key, []))
            parent = ""
        clusters.setdefault(parent, []).append(f"{quote(ids[key])} {attrs(**style)};")
    lines += _nested(graph, clusters)
    for i, (key, out) in enumerate(own.items()):
        d = graph.node(out.node)
        fill, border = PHASE_STYLE[column(d)]
        style = attrs(label="\n".join([key, format_type(d)]), shape="house", style="filled",
                      peripheries="2", fillcolor=fill, color=border)
        lines.append(f"  {quote(f'out{i}')} {style};")
    lines += _edges(graph, ids, own)
    for n in graph.inputs:  # rank each gradient seed beside the output it seeds
        seeded = [i for i, k in enumerate(own) if k == graph.meta.get(n, {}).get("seeds")]
        if graph.node(n).role == "grad" and seeded:
            lines.append(f"  {quote(f'out{seeded[0]}')} -> {quote(ids[('node', n)])} "
                         f"{attrs(style='invis', minlen='0')};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _nested(graph, clusters) -> list:
    """Node statements inside a cluster per parent module (``enc`` around ``enc.0``)."""
    lines = [f"  {s}" for s in clusters.pop("", [])]
    for k, (scope, statements) in enumerate(sorted(clusters.items())):
        lines.append(f"  subgraph {quote(f'cluster_module_{k}')} {{")
        lines.append(f"    graph {attrs(label=module_title(graph, scope), **_CLUSTER)};")
        lines += [f"    {s}" for s in statements]
        lines.append("  }")
    return lines
