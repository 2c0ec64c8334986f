"""DOT export of a graph, and rendering it with Graphviz.

:func:`to_dot` is a printer over the same graph as the listing: one DOT node
per graph node, an edge per input labelled with the value's type, fused
kernels as clusters, forward / backward / update nodes in distinct colours, and
a node's gradient rule in its tooltip. Every user string (keys, labels, scopes,
kernel ids) passes through :func:`quote`, so any name renders: the output holds
no identifier or label that Graphviz could read as syntax.

:func:`render` runs the ``dot`` program; nothing here needs it to be installed
until then.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from .printing import format_op, format_rule, format_type, kernel_of, node_order

FORMATS = ("svg", "png", "pdf")
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; "
                "macOS: brew install graphviz; conda: conda install graphviz)")

#: Fill and border colour per phase; placeholders keep their phase's colour.
PHASE_STYLE = {
    "forward": ("#dbe9f6", "#3b6ea5"),
    "backward": ("#fbe3d0", "#c0622b"),
    "update": ("#dcf0d8", "#3f8a3a"),
}
LEGEND = ("blue: forward    orange: backward    green: state update    "
          "double border: output    dashed edge: crosses phases")
CLUSTER_STYLE = {
    "kernel": {"style": "dashed,rounded", "color": "#7a4fa0"},
    "module": {"style": "rounded,filled", "fillcolor": "#f7f7f7", "color": "#999999"},
}
#: Node shape per placeholder role; computed nodes are rounded boxes.
ROLE_SHAPE = {"input": "invhouse", "grad": "invhouse", "param": "box",
              "buffer": "cylinder", "captured": "box"}


class GraphvizNotFound(FileNotFoundError):
    """Raised by :func:`render` when the Graphviz ``dot`` program is not on ``PATH``."""


def quote(text, backslash="\\\\") -> str:
    """``text`` as a double-quoted DOT string that Graphviz shows literally.

    Backslashes become ``backslash`` (escaped by default), quotes are escaped,
    line breaks become ``\\n``, ``&`` becomes ``&amp;`` (Graphviz would
    otherwise read ``&lt;`` as an entity) and other control characters, which
    SVG cannot hold, show as ``\\xNN``. Braces, ``<>`` and ``|`` need nothing:
    they are only syntax in record and HTML labels, which this module never emits.

    Examples
    --------
    >>> print(quote('a" ]; evil [label="x'))
    "a\\" ]; evil [label=\\"x"
    >>> print(quote("two\\nlines"))
    "two\\nlines"
    """
    out = []
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    for c in text:
        if c == "\\":
            out.append(backslash)
        elif c == '"':
            out.append('\\"')
        elif c == "&":
            out.append("&amp;")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append(" ")
        elif not _xml_safe(c):
            out.append(f"{backslash}x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _xml_safe(c: str) -> bool:
    """Whether SVG (XML 1.0) can hold ``c``; C0/C1 controls and surrogates it cannot."""
    o = ord(c)
    return not (o < 32 or 0x7F <= o < 0xA0 or 0xD800 <= o < 0xE000 or c in "\ufffe\uffff")


#: How tooltips show a backslash. Graphviz expands escapes in tooltips once or
#: twice depending on its version (2.43 turns an escaped ``\\N`` into the node
#: name), so no escaping is right everywhere; a look-alike character is.
TOOLTIP_BACKSLASH = "\u29f5"


def _attrs(**kw) -> str:
    quoted = (quote(v, TOOLTIP_BACKSLASH) if k == "tooltip" else quote(v) for k, v in kw.items())
    return "[" + ", ".join(f"{k}={q}" for k, q in zip(kw, quoted)) + "]"


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
    return f"{quote(name)} {_attrs(**style)};"


def _clusters(graph, group_by_module: bool):
    """Map each node to its innermost cluster and each cluster to its parent.

    Clusters are ``("module", path)`` and ``("kernel", id)``; a kernel sits in
    the innermost scope holding all its nodes, so the clusters nest properly.
    """
    parent, home = {}, {}

    def scope_cluster(path):
        if not group_by_module or not path:
            return None
        parts = path.split(".")
        for i in range(1, len(parts) + 1):
            key = ("module", ".".join(parts[:i]))
            parent.setdefault(key, ("module", ".".join(parts[:i - 1])) if i > 1 else None)
        return ("module", path)

    kernels = {}
    for n in graph.nx.nodes:
        if kernel_of(graph, n):
            kernels.setdefault(kernel_of(graph, n), []).append(n)
        else:
            home[n] = scope_cluster(graph.node(n).scope)
    for kid, members in kernels.items():
        scopes = [graph.node(m).scope.split(".") for m in members]
        common = []
        for parts in zip(*scopes):
            if len(set(parts)) > 1:
                break
            common.append(parts[0])
        parent[("kernel", kid)] = scope_cluster(".".join(common))
        for m in members:
            home[m] = ("kernel", kid)
    return home, parent


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
        for kind, key in children.get(cluster, []):
            # cluster ids are ours, the user's key only reaches the (quoted) label
            lines.append(f"{pad}subgraph {quote(f'cluster_{kind}_{len(lines)}')} {{")
            lines.append(f"{pad}  graph {_attrs(label=_short(f'{kind} {key}'), **CLUSTER_STYLE[kind])};")
            emit((kind, key), pad + "  ")
            lines.append(pad + "}")

    emit(None, "  ")
    return lines


def _edge_lines(graph):
    """One edge per (input, user) pair, labelled with the input's type."""
    node, lines = graph.node, []
    for n in (m for group in node_order(graph).values() for m in group):
        for i in dict.fromkeys(node(n).inputs):
            style = {"label": format_type(node(i))}
            if node(n).phase != node(i).phase:
                style["style"] = "dashed"
            lines.append(f"  {quote(i)} -> {quote(n)} {_attrs(**style)};")
    return lines


def to_dot(graph, path=None, rankdir="TB", group_by_module=False) -> str:
    """DOT source for ``graph``; also written to ``path`` (UTF-8) when given.

    Parameters
    ----------
    graph : Graph
    path : str or os.PathLike, optional
        File to write the DOT text to.
    rankdir : {"TB", "LR", "BT", "RL"}
        Direction the graph flows in.
    group_by_module : bool
        Draw each module scope (dotted path, nested) as a cluster.

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
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir must be TB, LR, BT or RL, got {rankdir!r}")
    font = {"fontname": "Helvetica"}
    lines = ["digraph lucid {",
             f"  graph {_attrs(rankdir=rankdir, fontsize='11', label=LEGEND, **font)};",
             f"  node {_attrs(shape='box', style='rounded,filled', fontsize='10', **font)};",
             f"  edge {_attrs(fontsize='8', color='#555555', **font)};"]
    lines += _cluster_lines(graph, group_by_module)
    lines += _edge_lines(graph)
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def render(graph, path, format=None, **options) -> str:  # noqa: A002  (Graphviz's word)
    """Draw ``graph`` to ``path`` with Graphviz ``dot``; return ``path``.

    Parameters
    ----------
    graph : Graph
    path : str or os.PathLike
        Output file; its extension picks the format unless ``format`` is given.
    format : {"svg", "png", "pdf"}, optional
    **options
        Passed to :func:`to_dot` (``rankdir``, ``group_by_module``).

    Raises
    ------
    GraphvizNotFound
        (a FileNotFoundError) when ``dot`` is not installed.
    RuntimeError
        When ``dot`` fails; the message holds its stderr.

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
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFound(f"rendering needs the Graphviz 'dot' program, which is not on "
                               f"PATH; {INSTALL_HINT}. graph.to_dot() works without it.")
    result = subprocess.run([dot, f"-T{fmt}", "-o", path], input=to_dot(graph, **options)
                            .encode("utf-8"), capture_output=True, check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"Graphviz dot failed (exit {result.returncode}) rendering "
                           f"{path!r}: {stderr}")
    return path
