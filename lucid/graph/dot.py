"""DOT export of a graph, and rendering it with Graphviz.

:func:`to_dot` prints a graph at one of two levels of detail. ``"op"`` (this
module) draws one DOT node per graph node and an edge per input labelled with
the value's type, fused kernels as clusters, forward / backward / update nodes
in distinct colours, and a node's gradient rule in its tooltip. ``"module"``
(:mod:`lucid.graph.modules`) draws one node per module call.

In a train graph the forward flows down one column and the backward flows back
up a second column beside it: backward edges are written head first with
``dir=back``, each gradient seed is ranked beside the output it seeds, and the
forward values the backward reads (residuals) are light edges that do not
take part in ranking. A fused kernel is drawn in the module and column of its
output; its members elsewhere stay in their own module's box.

:func:`render` runs the ``dot`` program; nothing here needs it to be installed
until then.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from . import modules
from .dotsyntax import (PHASE_STYLE, RESIDUAL_STYLE, TOOLTIP_BACKSLASH, attrs, column,
                        header, legend, module_title, quote, residual, write_text)  # noqa: F401
from .printing import format_op, format_rule, format_type, kernel_of, node_order

FORMATS = ("svg", "png", "pdf")
DETAILS = ("op", "module")
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; "
                "macOS: brew install graphviz; conda: conda install graphviz)")
LEGEND = "one box per op, double border: output, dashed box: fused kernel"
CLUSTER_STYLE = {
    "column": {"style": "solid", "color": "white", "fontsize": "12"},
    "kernel": {"style": "dashed,rounded", "color": "#7a4fa0"},
    "module": {"style": "rounded,filled", "fillcolor": "#f7f7f7", "color": "#999999"},
}
COLUMN_TITLE = {"forward": "forward \u2193", "backward": "backward \u2191",
                "update": "state update", "optimizer": "optimizer step"}
#: Node shape per placeholder role; computed nodes are rounded boxes.
ROLE_SHAPE = {"input": "invhouse", "grad": "invhouse", "param": "box",
              "buffer": "cylinder", "captured": "box",
              "state": "cylinder", "hyper": "note"}
_STDERR_LINES = 6  # of a failing dot's stderr in the error (2.43 can print hundreds)


class GraphvizNotFound(FileNotFoundError):
    """Raised by :func:`render` when the Graphviz ``dot`` program is not on ``PATH``."""


def node_label(graph, name: str) -> str:
    """The text in a node's box: placeholders show role and key, others op and name."""
    d = graph.node(name)
    outputs = [k for k, o in graph.outputs.items() if o.node == name]
    if d.op == "placeholder":
        lines = [str(d.key or name), f"{d.role or 'input'} {format_type(d)}"]
    elif d.op == "constant" and "value" in d.attrs:
        lines = [repr(d.attrs["value"])]
    else:
        lines = [format_op(d), name]
        if d.label and d.label != name:
            lines.append(d.label)
    lines += [f"\u2192 {k}" for k in outputs]
    return "\n".join(_short(line) for line in lines)


#: Label lines are cut here, tooltips at TOOLTIP_MAX: Graphviz 2.43 refuses a quoted
#: string of 16384 characters, and a name can be any length.
LABEL_MAX, TOOLTIP_MAX = 80, 4000


def _short(text, limit=LABEL_MAX):
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def node_tooltip(graph, name: str) -> str:
    """Hover text: the statement, type, phase, scope and the gradient rule."""
    d = graph.node(name)
    where = f"{format_type(d)}, {d.phase}" + (f", scope {d.scope}" if d.scope else "")
    lines = [f"{name} = {d.op}({', '.join(d.inputs)})", where]
    if kernel_of(graph, name):
        lines.append(f"kernel {kernel_of(graph, name)}")
    rule = format_rule(d.rule)
    if rule:
        lines.append("gradient rule:")
        lines += [f"  d/d{i}: {expr}" for i, expr in rule]
    if len(str(d.key)) > LABEL_MAX:
        lines.append(f"key {d.key}")  # the label shows it cut short
    return _short("\n".join(lines), TOOLTIP_MAX)


def _node_statement(graph, name: str) -> str:
    d = graph.node(name)
    fill, border = PHASE_STYLE.get(d.phase, ("white", "black"))
    style = {"label": node_label(graph, name), "tooltip": node_tooltip(graph, name),
             "fillcolor": fill, "color": border}
    if d.op == "placeholder":
        style["shape"] = ROLE_SHAPE.get(d.role, "box")
        style["style"] = "filled"
    elif d.op == "constant":
        style.update(shape="ellipse", style="filled", fontsize="9")
    if any(o.node == name for o in graph.outputs.values()):
        style["peripheries"] = "2"
    return f"{quote(name)} {attrs(**style)};"


def _clusters(graph, group_by_module: bool):
    """Map each node to its innermost cluster and each cluster to its parent.

    A train graph has a cluster per column, ``("column", "forward")``,
    ``("column", "backward")`` and ``("column", "update")``, so they never interleave. Inside them,
    when grouping, ``("module", path, column)`` nest by dotted path: a module's
    backward is its own box, mirrored beside its forward. Innermost are
    ``("kernel", id)``: a kernel is drawn in the module (when grouping) and
    column of its output, its last member in topological order; members from
    another module or column stay where they are, so no node leaves its
    module's box and no box straddles the columns.
    """
    two = len({column(graph.node(n)) for n in graph.nx.nodes}) > 1
    parent, home = {}, {}

    def cluster(n):
        d = graph.node(n)
        top = ("column", column(d)) if two else None
        if top is not None:
            parent[top] = None
        if not group_by_module or not d.scope:
            return top
        parts = d.scope.split(".")
        for i in range(1, len(parts) + 1):
            key = ("module", ".".join(parts[:i]), column(d))
            parent.setdefault(key, ("module", ".".join(parts[:i - 1]), column(d))
                              if i > 1 else top)
        return ("module", d.scope, column(d))

    kernels = {}
    for n in graph.topo():
        home[n] = cluster(n)
        if kernel_of(graph, n):
            kernels.setdefault(kernel_of(graph, n), []).append(n)
    for kid, members in kernels.items():
        out = members[-1]
        parent[("kernel", kid)] = home[out]
        for m in members:
            if home[m] == parent[("kernel", kid)]:
                home[m] = ("kernel", kid)
    return home, parent


def _cluster_label(graph, cluster) -> str:
    kind, key = cluster[0], cluster[1]
    if kind == "kernel":
        return f"kernel {key}"
    if kind == "column":
        return COLUMN_TITLE[key]
    title = module_title(graph, key)
    return {"backward": f"\u2202 {title}", "update": f"{title} update",
            "optimizer": f"{title} step"}.get(cluster[2], title)


def _cluster_lines(graph, group_by_module):
    """Node statements, each inside its (nested) cluster."""
    home, parent = _clusters(graph, group_by_module)
    children, members = {}, {}
    for cluster, up in parent.items():
        children.setdefault(up, []).append(cluster)
    for group in node_order(graph).values():
        for n in group:
            members.setdefault(home[n], []).append(n)
    lines = []

    def emit(cluster, pad):
        lines.extend(pad + _node_statement(graph, n) for n in members.get(cluster, []))
        for inner in children.get(cluster, []):
            # cluster ids are ours, the user's key only reaches the (quoted) label
            lines.append(f"{pad}subgraph {quote(f'cluster_{inner[0]}_{len(lines)}')} {{")
            style = attrs(label=_short(_cluster_label(graph, inner)), **CLUSTER_STYLE[inner[0]])
            lines.append(f"{pad}  graph {style};")
            emit(inner, pad + "  ")
            lines.append(pad + "}")

    emit(None, "  ")
    return lines


def _edge_lines(graph):
    """One edge per (input, user) pair, labelled with the input's type.

    Within the backward column an edge is written head first (``dir=back``)
    so the backward is ranked bottom-up; an edge between columns is a light
    residual that does not constrain ranks.
    """
    node, lines = graph.node, []
    for n in (m for group in node_order(graph).values() for m in group):
        for i in dict.fromkeys(node(n).inputs):
            style = {"label": format_type(node(i))}
            tail, head = i, n
            if residual(column(node(i)), column(node(n))):
                style = {"tooltip": f"{i} -> {n}: {format_type(node(i))}", **RESIDUAL_STYLE}
            elif column(node(n)) == "backward":
                tail, head, style["dir"] = n, i, "back"
            lines.append(f"  {quote(tail)} -> {quote(head)} {attrs(**style)};")
    return lines


def _seed_lines(graph):
    """Rank each gradient seed beside the output it seeds (invisible, so nothing is drawn)."""
    lines = []
    for n in graph.inputs:
        seeded = graph.outputs.get(graph.meta.get(n, {}).get("seeds", ""))
        if graph.node(n).role == "grad" and seeded is not None:
            lines.append(f"  {quote(seeded.node)} -> {quote(n)} "
                         f"{attrs(style='invis', minlen='0')};")
    return lines


def op_dot(graph, rankdir="TB", group_by_module=False) -> str:
    """The op-level DOT text of ``graph`` (see :func:`to_dot`)."""
    lines = header(rankdir, legend(graph, LEGEND))
    lines += _cluster_lines(graph, group_by_module)
    lines += _edge_lines(graph)
    lines += _seed_lines(graph)
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_dot(graph, path=None, rankdir="TB", group_by_module=False, detail="op") -> str:
    """DOT source for ``graph``; also written to ``path`` (UTF-8) when given.

    Parameters
    ----------
    graph : Graph
    path : str or os.PathLike, optional
        File to write the DOT text to.
    rankdir : {"TB", "LR", "BT", "RL"}
        Direction the forward flows in; the backward flows back beside it.
    group_by_module : bool
        At op level, draw each module scope (dotted path, nested) as a cluster
        labelled with the module's type. The module level always nests.
    detail : {"op", "module"}
        One node per op, or one node per module call (:mod:`lucid.graph.modules`).

    Examples
    --------
    >>> from lucid.graph import Graph
    >>> g = Graph()
    >>> x = g.add("placeholder", [], ("N", 3), "float32", role="input", key="x", name="x")
    >>> y = g.add("exp", [x], ("N", 3), "float32", name="y")
    >>> text = to_dot(g, rankdir="LR")
    >>> text.splitlines()[0], '"x" -> "y" [label="f32[N,3]"' in text
    ('digraph lucid {', True)
    """
    if detail not in DETAILS:
        raise ValueError(f"detail must be 'op' or 'module', got {detail!r}")
    text = (modules.module_dot(graph, rankdir) if detail == "module" else
            op_dot(graph, rankdir, group_by_module))
    if path is not None:
        write_text(path, text)
    return text


def render(graph, path, format=None, **options) -> str:  # noqa: A002  (Graphviz's word)
    """Draw ``graph`` to ``path`` with Graphviz ``dot``; return ``path``.

    Graphviz writes to a temporary file beside ``path``, renamed into place
    only when it succeeds: a failed render leaves nothing on disk.

    Parameters
    ----------
    graph : Graph
    path : str or os.PathLike
        Output file; its extension picks the format unless ``format`` is given.
    format : {"svg", "png", "pdf"}, optional
    **options
        Passed to :func:`to_dot` (``rankdir``, ``group_by_module``, ``detail``).

    Raises
    ------
    GraphvizNotFound
        (a FileNotFoundError) when ``dot`` is not installed.
    RuntimeError
        When ``dot`` fails; the message holds the start of its stderr.

    Examples
    --------
    >>> import lucid, lucid.nn as nn, tempfile, os
    >>> x = lucid.placeholder((None, 3), name="x")
    >>> g = lucid.compile(nn.Linear(3, 2), x, mode="eval").graph
    >>> out = render(g, os.path.join(tempfile.mkdtemp(), "linear.svg"))  # doctest: +SKIP
    """
    path = os.fspath(path)
    fmt = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"cannot render to {path!r}: format must be one of {FORMATS}, "
                         f"given by the file extension or format=, got {fmt or 'none'!r}")
    text = to_dot(graph, **options)
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFound(f"rendering needs the Graphviz 'dot' program, which is not on "
                               f"PATH; {INSTALL_HINT}. graph.to_dot() works without it.")
    partial = f"{path}.{os.getpid()}.partial"
    try:
        result = subprocess.run([dot, f"-T{fmt}", "-o", partial], input=text.encode("utf-8"),
                                capture_output=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"Graphviz dot failed (exit {result.returncode}) rendering "
                               f"{path!r}: {_first_lines(result.stderr)}")
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def _first_lines(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode("utf-8", "replace").strip().splitlines() if ln.strip()]
    more = len(lines) - _STDERR_LINES
    return "\n".join(lines[:_STDERR_LINES] + ([f"... ({more} more lines)"] if more > 0 else []))
