"""Text views of a graph: a typed listing (like a jaxpr) and a summary table.

The listing puts one node on each line, ``name:type = op[attrs] inputs``, where
the type is a short dtype and a shape whose symbolic sizes print by name
(``f32[N,3]``). Placeholders come first, as the graph's inputs, with their role
and the user-facing key they stand for; then the forward, backward and update
nodes under their own headers; then the outputs, ``key = node``.

User strings (keys, labels) print as they are when that is unambiguous and as a
Python string literal otherwise, so every node stays on one line.
"""
from __future__ import annotations

from .kinds import PHASES

_DTYPES = {"float32": "f32", "float64": "f64", "int64": "i64"}
_SUMMARY_COLUMNS = ("node", "op", "inputs", "shape", "dtype", "kernel", "phase")


def short_dtype(dtype: str) -> str:
    """``float32`` -> ``f32``; unknown dtypes print unchanged."""
    return _DTYPES.get(dtype, dtype)


def format_dim(d) -> str:
    """A size: an int, or a symbol's name (quoted if it is not an identifier)."""
    if isinstance(d, str) and not d.isidentifier():
        return repr(d)
    return str(d)


def format_shape(shape) -> str:
    """``('N', 3)`` -> ``[N,3]``; a scalar is ``[]``."""
    return "[" + ",".join(format_dim(d) for d in shape) + "]"


def format_type(node) -> str:
    """A node's type: ``f32[N,3]``."""
    return short_dtype(node.dtype) + format_shape(node.shape)


def format_value(v) -> str:
    """An attribute value, compactly: tuples without quotes around size names."""
    if isinstance(v, tuple):
        inner = ", ".join(format_value(e) for e in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, str):
        return v if v.isidentifier() else repr(v)
    return repr(v)


def format_op(node) -> str:
    """``sum[axes=(0,), keepdims=True]``; an op without attributes is its bare name."""
    attrs = node.attrs
    if node.op == "placeholder" or not attrs:
        return node.op
    inner = ", ".join(f"{k}={format_value(v)}" for k, v in attrs.items())
    return f"{node.op}[{inner}]"


def show(text: str) -> str:
    """A user string as it is if it reads unambiguously on one line, else its repr."""
    plain = text and text.isprintable() and not any(c.isspace() or c in "'\"\\" for c in text)
    return text if plain else repr(text)


def format_rule(rule) -> list:
    """A gradient rule as ``(input, text)`` pairs; ``None`` and ``()`` give ``[]``."""
    if not rule:
        return []
    pairs = rule.items() if isinstance(rule, dict) else rule
    return [(str(i), str(expr)) for i, expr in pairs]


def kernel_of(graph, name) -> str:
    """The fused kernel a pass put ``name`` in (the ``meta`` side table), or ``""``."""
    return graph.meta.get(name, {}).get("kernel", "")


def node_order(graph) -> dict:
    """Node names grouped for printing: ``inputs``, then each phase, in topological order."""
    order = graph.topo()
    node = graph.node
    placeholders = list(graph.inputs) + [n for n in order if node(n).op == "placeholder"
                                         and n not in graph.inputs]
    groups = {"inputs": placeholders}
    for phase in PHASES:
        groups[phase] = [n for n in order
                         if node(n).op != "placeholder" and node(n).phase == phase]
    return groups


def listing(graph) -> str:
    """The typed listing of ``graph``, one line per node.

    Examples
    --------
    >>> from lucid.graph import Graph
    >>> g = Graph()
    >>> x = g.add("placeholder", [], ("N", 3), "float32", role="input", key="x", name="x")
    >>> s = g.add("sum", [x], (1, 3), "float32", {"axes": (0,), "keepdims": True}, name="s")
    >>> g.set_output("out", s)
    >>> print(listing(g))
    inputs:
      x:f32[N,3]  input x
    forward:
      s:f32[1,3] = sum[axes=(0,), keepdims=True] x
    outputs:
      out = s
    """
    groups = node_order(graph)
    node = graph.node
    lines = []
    if groups["inputs"]:
        lines.append("inputs:")
        typed = [f"{n}:{format_type(node(n))}" for n in groups["inputs"]]
        roles = [str(node(n).role or "") for n in groups["inputs"]]
        width, role_width = max(map(len, typed)), max(map(len, roles))
        for n, t, role in zip(groups["inputs"], typed, roles):
            key = show(str(node(n).key or n))
            lines.append(f"  {t.ljust(width)}  {role.ljust(role_width)} {key}".rstrip())
    for phase in PHASES:
        if groups[phase]:
            lines.append(f"{phase}:")
            lines.extend(f"  {statement(graph, n)}" for n in groups[phase])
    if graph.outputs:
        lines.append("outputs:")
        lines.extend(f"  {show(str(k))} = {o.node}" for k, o in graph.outputs.items())
    return "\n".join(lines)


def statement(graph, name: str) -> str:
    """One line of the listing: ``mean:f32[1,3] = div n0 n1``, then the label if it differs."""
    node = graph.node(name)
    line = " ".join([f"{name}:{format_type(node)} =", format_op(node), *node.inputs])
    label = node.label or ""
    if label and label != name:
        line += f"  # {show(label)}"
    return line


def summary(graph) -> str:
    """A table of ``graph``: node, op, inputs, shape, dtype, fused kernel and phase.

    Rows follow the listing's order (inputs, forward, backward, update); a
    node outside any fused kernel shows ``-`` in the kernel column.

    Examples
    --------
    >>> from lucid.graph import Graph
    >>> g = Graph()
    >>> x = g.add("placeholder", [], ("N", 3), "float32", role="input", key="x", name="x")
    >>> y = g.add("exp", [x], ("N", 3), "float32", name="y")
    >>> print(summary(g))
    node  op           inputs  shape  dtype    kernel  phase
    ----  -----------  ------  -----  -------  ------  -------
    x     placeholder  -       [N,3]  float32  -       forward
    y     exp          x       [N,3]  float32  -       forward
    """
    rows = []
    for group in node_order(graph).values():
        for n in group:
            d, kernel = graph.node(n), kernel_of(graph, n)
            rows.append((n, d.op, ", ".join(d.inputs) or "-", format_shape(d.shape),
                         d.dtype, show(kernel) if kernel else "-", str(d.phase)))
    widths = [max(len(r[i]) for r in [_SUMMARY_COLUMNS, *rows])
              for i in range(len(_SUMMARY_COLUMNS))]
    table = [_SUMMARY_COLUMNS, tuple("-" * w for w in widths), *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)
