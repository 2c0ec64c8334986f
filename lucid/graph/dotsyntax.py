"""DOT syntax shared by the op-level and module-level printers: quoting, attributes, styles.

Every user string (keys, labels, scopes, kernel ids, module types) passes
through :func:`quote`, so the output holds no identifier or label that
Graphviz could read as syntax.
"""
from __future__ import annotations

#: Fill and border colour per phase; placeholders keep their phase's colour.
PHASE_STYLE = {
    "forward": ("#dbe9f6", "#3b6ea5"),
    "backward": ("#fbe3d0", "#c0622b"),
    "update": ("#dcf0d8", "#3f8a3a"),
    "optimizer": ("#ece0f5", "#7a4fa0"),
}
#: Edges that carry a forward value into the backward (residuals): light, and
#: left out of the ranking so the two columns stay apart.
RESIDUAL_STYLE = {"color": "#c9c9c9", "arrowsize": "0.5", "constraint": "false"}
FONT = {"fontname": "Helvetica"}


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


def attrs(**kw) -> str:
    """``[k="v", ...]`` with every value quoted (tooltips with a look-alike backslash)."""
    return _attrs(**kw)


def header(rankdir, legend, **graph_attrs) -> list:
    """The opening lines of a ``digraph``: layout settings and default styles.

    No ``newrank``: with the backward in its own column, cluster-by-cluster
    ranking lays out every train graph the tests draw, while ``newrank=true``
    makes Graphviz 2.43 lose residual edges between module boxes in LR
    layouts ("Pshortestpath failed"). ``tests/test_views.py`` draws both.
    """
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir must be TB, LR, BT or RL, got {rankdir!r}")
    settings = _attrs(rankdir=rankdir, fontsize="11", label=legend,
                      **graph_attrs, **FONT)
    return ["digraph lucid {",
            f"  graph {settings};",
            f"  node {_attrs(shape='box', style='rounded,filled', fontsize='10', **FONT)};",
            f"  edge {_attrs(fontsize='8', color='#555555', **FONT)};"]


_KEY = {"forward": "blue: forward (flows down)", "backward": "orange: backward (flows back up)",
        "update": "green: state update", "optimizer": "purple: optimizer step"}


def legend(graph, first: str) -> str:
    """The caption: ``first``, then the colours of the phases ``graph`` has."""
    phases = {column(graph.node(n)) for n in graph.nx.nodes}
    keys = [text for phase, text in _KEY.items() if phase in phases]
    if "backward" in phases:
        keys.append("grey edge: forward value read by the backward")
    return first + "\n" + "    ".join(keys)


def column(node) -> str:
    """Which column a node is drawn in: its phase, with gradient seeds in ``"backward"``.

    The backward is drawn flowing back up beside the forward, state updates
    down a narrow column of their own beside the forward values they read.
    """
    return "backward" if node.role == "grad" else str(node.phase)


def residual(tail_column, head_column) -> bool:
    """Whether an edge joins the backward column to another: drawn light, not ranked."""
    return tail_column != head_column and "backward" in (tail_column, head_column)


def module_title(graph, scope: str) -> str:
    """``1: BatchNorm1d(128)`` when the tracer recorded the module's type, else ``module 1``."""
    kind = graph.modules.get(scope)
    return f"{scope}: {kind}" if kind else f"module {scope}"


def write_text(path, text) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
