"""The rules that cannot be derived with sympy, one line per op.

For each structural op: its vector-Jacobian rule (``vjp(b, node, g)`` returns
one gradient node, or None, per input, built with a :class:`Builder` ``b``
from the upstream gradient ``g``), its NumPy evaluation for the reference
executor (``run(attrs, dims, *arrays)``) and its NumPy source for generated
code (``src(attrs, shape, *args)``, with ``shape`` turning a symbolic shape
into source). ``dims`` resolves a symbolic shape to ints.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Callable

import numpy as np
import sympy as sp


@dataclass(frozen=True)
class Structural:
    vjp: Callable
    run: Callable
    src: Callable
    grad: str = ""  # the rule in words, for printers


def gradient_rule(op_name, inputs):
    """A node's gradient rule: ``((input, d out / d input), ...)``.

    Elementwise ops give their sympy-derived partials with the input names
    substituted; structural ops give their rule in words.
    """
    from .registry import ARGS, REGISTRY  # noqa: PLC0415

    op = REGISTRY[op_name]
    if op.kind == "leaf":
        return ()
    if op.kind == "elementwise":
        env = {a: sp.Symbol(i, real=True) for a, i in zip(ARGS, inputs)}
        return tuple((i, p.xreplace(env)) for i, p in zip(inputs, op.partials))
    words = RULES[op_name].grad.split(" | ")
    return tuple(zip(inputs, words))


def _inverse(perm):
    return tuple(int(i) for i in np.argsort(perm))


def _sum_vjp(b, n, g):
    x = n.inputs[0]
    shape = b.shape(x)
    return (b.apply("broadcast_to", b.keepdims(g, shape, n.attrs["axes"]), shape=shape),)


def _axes_src(axes):
    return f"({axes[0]},)" if len(axes) == 1 else str(tuple(axes))


RULES = {
    # sum: the gradient is the upstream gradient spread back over the reduced axes.
    "sum": Structural(
        _sum_vjp,
        lambda at, dims, x: np.sum(x, axis=at["axes"], keepdims=at["keepdims"]),
        lambda at, shape, x: f"np.sum({x}, axis={_axes_src(at['axes'])}"
                             f"{', keepdims=True' if at['keepdims'] else ''})",
        "broadcast_to(g, x.shape)"),
    # numel: a count of positions, constant in the values: no gradient.
    "numel": Structural(
        lambda b, n, g: (None,),
        lambda at, dims, x: prod(x.shape[i] for i in at["axes"]),
        lambda at, shape, x: f"{x}.shape[{at['axes'][0]}]" if len(at["axes"]) == 1 else
                             " * ".join(f"{x}.shape[{i}]" for i in at["axes"]),
        "0 (a count does not depend on values)"),
    # broadcast_to: summing over the broadcast axes undoes the copies.
    "broadcast_to": Structural(
        lambda b, n, g: (b.sum_to(g, b.shape(n.inputs[0])),),
        lambda at, dims, x: np.broadcast_to(x, dims(at["shape"])),
        lambda at, shape, x: f"np.broadcast_to({x}, {shape(at['shape'])})",
        "sum g over the broadcast axes"),
    # reshape and transpose: linear bijections, the gradient is moved back.
    "reshape": Structural(
        lambda b, n, g: (b.apply("reshape", g, shape=b.shape(n.inputs[0])),),
        lambda at, dims, x: np.reshape(x, dims(at["shape"])),
        lambda at, shape, x: f"{x}.reshape({shape(at['shape'])})",
        "reshape(g, x.shape)"),
    "transpose": Structural(
        lambda b, n, g: (b.apply("transpose", g, perm=_inverse(n.attrs["perm"])),),
        lambda at, dims, x: np.transpose(x, at["perm"]),
        lambda at, shape, x: f"{x}.T" if tuple(at["perm"]) == (1, 0) else
                             f"{x}.transpose({tuple(at['perm'])})",
        "transpose(g, inverse perm)"),
    # matmul: d(A @ B) = dY @ B^T for A, A^T @ dY for B.
    "matmul": Structural(
        lambda b, n, g: (b.apply("matmul", g, b.apply("transpose", n.inputs[1], perm=(1, 0))),
                         b.apply("matmul", b.apply("transpose", n.inputs[0], perm=(1, 0)), g)),
        lambda at, dims, x, y: x @ y,
        lambda at, shape, x, y: f"{x} @ {y}",
        "g @ b.T | a.T @ g"),
    # cast: the gradient goes back in the input's dtype.
    "cast": Structural(
        lambda b, n, g: (b.apply("cast", g, dtype=b.dtype(n.inputs[0])),),
        lambda at, dims, x: x.astype(at["dtype"]),
        lambda at, shape, x: f"{x}.astype(np.{at['dtype']})",
        "cast(g, x.dtype)"),
}
