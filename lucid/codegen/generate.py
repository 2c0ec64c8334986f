"""Generating the source of a program: ``step`` and, with seeds, ``forward``/``backward``.

All three functions come from the same plan: ``step`` computes every item;
``forward`` the items no upstream gradient reaches, returning the forward
outputs and the residuals; ``backward`` the rest, from the seeds and the
residuals. Every value a function returns is freshly allocated; only values
that stay inside one call live in reused buffers.
"""
from __future__ import annotations

import sympy as sp

from .emit import Emitter, function_source

PRELUDE = '''import threading

import numpy as np

_local = threading.local()


def _buffer(slot, shape, dtype):
    """A scratch array reused across calls (one set per thread); never returned."""
    pool = _local.__dict__
    array = pool.get(slot)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = pool[slot] = np.empty(shape, dtype)
    return array
'''


def generate(plan, graph, seeds):
    """Return ``(source, (step outputs, forward returns, backward params, backward outputs))``.

    Names in the layout are graph node names for outputs and placeholders,
    generated names (``_t0``, ``_r1``, ``size_N``) for residuals.
    """
    outputs = list(plan.outputs)  # node names
    out_syms = [plan.outputs[n] for n in outputs]
    chunks = [PRELUDE]
    chunks.append(_function(plan, graph, "step", graph.inputs, plan.items, out_syms))
    layout = [outputs, None, None, None]
    if seeds:
        fwd_items = [it for it in plan.items if not it.backward]
        bwd_items = [it for it in plan.items if it.backward]
        fwd_out = [n for n in outputs if not _item(plan, n).backward]
        bwd_out = [n for n in outputs if _item(plan, n).backward]
        residuals = [str(r) for r in plan.residuals()]
        bwd_params = list(seeds) + residuals
        missing = [s for s in _sizes_needed(plan, bwd_items)
                   if s not in _sizes_available(plan, graph, bwd_params)]
        residuals += [f"size_{s}" for s in missing]
        bwd_params += [f"size_{s}" for s in missing]
        fwd_params = [p for p in graph.inputs if p not in seeds]
        chunks.append(_function(plan, graph, "forward", fwd_params, fwd_items,
                                [plan.outputs[n] for n in fwd_out] + residuals))
        chunks.append(_function(plan, graph, "backward", bwd_params, bwd_items,
                                [plan.outputs[n] for n in bwd_out], given=missing))
        layout = [outputs, fwd_out + residuals, bwd_params, bwd_out]
    return "\n\n".join(chunks), tuple(layout)


def _item(plan, node):
    sym = plan.outputs[node]
    return next(it for it in plan.items if it.symbol == sym)


def _function(plan, graph, name, params, items, returns, given=()):
    emitter = Emitter(plan, name, fresh={r for r in returns if isinstance(r, sp.Symbol)}
                      | {sp.Symbol(str(r), real=True) for r in returns})
    for it in items:
        emitter.item(it)
    sizes = {}
    available = _sizes_available(plan, graph, params)
    returned = [str(r)[len("size_"):] for r in returns if str(r).startswith("size_")]
    for s in _sizes_needed(plan, items) + returned:
        if s in available and s not in given:
            sizes[s] = available[s]
    return function_source(name, params, sizes, emitter.lines, [str(r) for r in returns])


def _sizes_needed(plan, items):
    needed = []
    for it in items:
        dims = [d for d in it.shape if isinstance(d, str)]
        for e in it.exprs():
            dims += [str(s)[len("size_"):] for s in e.free_symbols if str(s).startswith("size_")]
        full_shapes = [plan.sym.shape_of(plan._full(e)) for e in it.exprs()]
        dims += [d for shape in full_shapes for d in shape if isinstance(d, str)]
        for d in dims:
            if d not in needed:
                needed.append(d)
    return needed


def _sizes_available(plan, graph, params):
    """Size symbol -> (parameter, axis) it can be read from."""
    found = {}
    shapes = {str(s): a.shape for s, a in plan.sym.atoms.items()}
    shapes.update({str(it.symbol): it.shape for it in plan.items})
    for p in params:
        for axis, d in enumerate(shapes.get(str(p), ())):
            if isinstance(d, str):
                found.setdefault(d, (str(p), axis))
    return found
