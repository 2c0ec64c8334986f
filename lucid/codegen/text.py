"""The text of generated source: size names, shape tuples, comments and the ``def``.

Node names are checked identifiers (:meth:`lucid.graph.Graph.fresh_name`);
anything else a user wrote reaches the source only through :func:`comment`.
"""
from __future__ import annotations


def comment(text: str) -> str:
    """Make ``text`` safe inside a one-line ``#`` comment."""
    return text.encode("unicode_escape").decode("ascii")


def size_name(symbol: str) -> str:
    return f"size_{symbol}"


def shape_source(shape, channel=None) -> str:
    """``(size_N, 128)``; the axis ``channel`` (in a kernel over channel slices) is ``_width``."""
    dims = [size_name(d) if isinstance(d, str) else str(d) for d in shape]
    if channel is not None:
        dims[channel] = "_width"
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def describe(plan, it):
    """Comment lines naming the graph nodes an item implements, a few nodes a line.

    A shared factor that no node computes on its own is described by the
    nodes it is part of.
    """
    graph = plan.graph
    nodes, prefix = it.nodes, ""
    if not nodes:
        nodes, prefix = plan.part_of(it)[:3], "part of: "
    parts = []
    for n in nodes:
        d = graph.node(n)
        parts.append(f"{n} = {d.op}({', '.join(d.inputs)})")
    lines, line = [], prefix
    for p in parts:
        if line and line != prefix and len(line) + len(p) > 90:
            lines.append(line)
            line = ""
        line = f"{line}; {p}" if line and line != prefix else line + p
    return lines + [line] if line else lines


def function_source(fn_name, params, sizes, body, returns):
    """A complete ``def``: bind the size symbols, run the body, return a tuple."""
    lines = [f"def {fn_name}({', '.join(params)}):"]
    for dim, (param, axis) in sizes.items():
        lines.append(f"    {size_name(dim)} = {param}.shape[{axis}]")
    lines.extend(f"    {line}" for line in body)
    ret = ", ".join(returns)
    lines.append(f"    return ({ret}{',' if len(returns) == 1 else ''})")
    return "\n".join(lines) + "\n"
