"""Emitting Python source: statements over NumPy, one per node or fused group.

A :class:`Statement` assigns one expression to one name, with a comment
naming the graph node(s) it implements. Node names are checked identifiers
(see :meth:`lucid.graph.Graph.fresh_name`); anything a user wrote that is not
an identifier only reaches the source through :func:`comment`.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..ops.registry import REGISTRY, to_numpy_source
from ..ops.structural import RULES


@dataclass
class Statement:
    target: str
    expr: str
    comment: str
    reductions: int = 0  # full passes over an array this statement reduces


def comment(text: str) -> str:
    """Make ``text`` safe inside a one-line ``#`` comment."""
    return text.encode("unicode_escape").decode("ascii")


def size_name(symbol: str) -> str:
    return f"size_{symbol}"


def shape_source(shape) -> str:
    dims = [size_name(d) if isinstance(d, str) else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def literal(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"constant must be a number, got {type(value).__name__}")
    return repr(float(value)) if isinstance(value, float) else repr(int(value))


def node_comment(graph, name) -> str:
    d = graph.nx.nodes[name]
    args = ", ".join(d["inputs"])
    return comment(f"{name} = {d['op']}({args})")


def symbol(name):
    return sp.Symbol(name, real=True)


def node_expression(graph, name, arg_exprs):
    """The sympy expression of elementwise node ``name`` with its args substituted."""
    op = REGISTRY[graph.nx.nodes[name]["op"]]
    a_b = sp.symbols("a b", real=True)
    return op.expr.xreplace(dict(zip(a_b, arg_exprs)))


def lower_node(graph, name, arg_src) -> str:
    """Source of one node, given the source of each of its inputs."""
    d = graph.nx.nodes[name]
    op, attrs = d["op"], d["attrs"]
    if op == "constant":
        return literal(attrs["value"])
    if REGISTRY[op].kind == "elementwise":
        expr = node_expression(graph, name, [s if isinstance(s, sp.Basic) else symbol(s)
                                             for s in arg_src])
        return to_numpy_source(expr)
    args = [to_numpy_source(s) if isinstance(s, sp.Basic) else s for s in arg_src]
    return RULES[op].src(attrs, shape_source, *args)


def constant_expr(value):
    """A constant node's value as a sympy number, to be inlined where it is used."""
    literal(value)  # type check
    return sp.Integer(value) if isinstance(value, int) else sp.Float(value)


def function_source(fn_name, params, symbols, statements, returns) -> str:
    """A complete ``def``: bind the size symbols, run the statements, return a tuple."""
    lines = [f"def {fn_name}({', '.join(params)}):"]
    for sym, (placeholder, axis) in symbols.items():
        lines.append(f"    {size_name(sym)} = {placeholder}.shape[{axis}]")
    for st in statements:
        lines.append(f"    # {st.comment}")
        lines.append(f"    {st.target} = {st.expr}")
    ret = ", ".join(returns)
    lines.append(f"    return ({ret}{',' if len(returns) == 1 else ''})")
    return "\n".join(lines) + "\n"
