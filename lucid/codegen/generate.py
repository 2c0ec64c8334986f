"""Generating the source of a program: ``step`` and, with seeds, ``forward``/``backward``.

All three functions come from the same plan: ``step`` computes every item;
``forward`` the items no upstream gradient reaches, returning the forward
outputs and the residuals; ``backward`` the rest, from the seeds and the
residuals. Values that stay inside one call live in scratch buffers reused
by live range; a value a function returns goes into an array an earlier call
returned only when nobody holds that array any more (``_result``), else into
a new one.
"""
from __future__ import annotations

import sympy as sp

from dataclasses import replace

from ..graph import OutKind
from ..ops.reference import COSTLY, HELPERS
from . import linear, reduce
from .emit import Emitter, is_large
from .text import function_source, size_name
from .memory import last_uses
from .symbolic import size_dims
from .plan import VIEWS
from .twin import Region, choose, condition, kernel, schedule, too_small

PRELUDE = '''import threading

import numpy as np

def _worth(*sizes):
    """Whether to run the parallel twin: never in this source run on its own; a Program
    running it replaces this with its thread pool's test (lucid.codegen.parallel)."""
    return False

_worth_rows = _worth

_local = threading.local()


_ndarray = np.ndarray
_float32, _float64, _int64 = np.dtype("float32"), np.dtype("float64"), np.dtype("int64")
_bool = np.dtype("bool")


def _buffer(slot, shape, dtype):
    """A scratch array reused across calls (one set per thread); never returned."""
    pool = _local.__dict__
    array = pool.get(slot)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = pool[slot] = np.empty(shape, dtype)
    return array


def _result(slot, shape, dtype):
    """A new array for a value this call returns; a Program running this source replaces
    this with its own, which offers back an array an earlier call returned once nobody
    holds it any more (lucid.codegen.program.Results)."""
    return np.empty(shape, dtype)
''' + reduce.HELPER + linear.HELPER


def generate(plan, graph, seeds, donors=None):
    """Return ``(source, (step outputs, forward outputs, residuals, backward params,
    backward outputs))``: the forward function returns its outputs then the residuals.

    Names in the layout are graph node names for outputs and placeholders,
    generated names (``_t0``, ``_r1``, ``size_N``) for residuals. ``donors``
    (:func:`donors_of`) names the inputs whose arrays ``step`` may compute outputs into
    (``memory.donate``); the output keys it did are left in ``plan.donated``.
    """
    outputs = list(plan.outputs)  # node names
    out_syms = [plan.outputs[n] for n in outputs]
    chunks = [PRELUDE, check_source(graph, graph.inputs, "check")]
    twins = []  # the parallel twins and their kernels go last, after the functions they serve
    owner = {}  # value symbol -> (the first output key donated for it, input name)
    for key, (symbol, name) in (donors or {}).items():
        owner.setdefault(symbol, (key, name))  # two keys of one value: one array holds it
    plan.donated_symbols = set()  # the values computed into their input (by _function)
    chunks.append(_function(plan, graph, "step", graph.inputs, plan.items, out_syms, twins,
                            donors={s: name for s, (_, name) in owner.items()}))
    plan.donated = {owner[s][0] for s in plan.donated_symbols}  # their output keys
    layout = [outputs, None, None, None, None]
    if seeds:
        fwd_items, bwd_items = split(plan)
        backward = {it.symbol for it in plan.items if it.backward}
        fwd_out = [n for n in outputs if plan.outputs[n] not in backward]
        bwd_out = [n for n in outputs if plan.outputs[n] in backward]
        residuals = [str(r) for r in residuals_of(plan, fwd_items, bwd_items)]
        bwd_params = list(seeds) + residuals
        missing = [s for s in _sizes_needed(plan, bwd_items)
                   if s not in _sizes_available(plan, graph, bwd_params)]
        residuals += [size_name(s) for s in missing]
        bwd_params += [size_name(s) for s in missing]
        fwd_params = [p for p in graph.inputs if p not in seeds]
        chunks.append(check_source(graph, fwd_params, "check_forward"))
        chunks.append(_function(plan, graph, "forward", fwd_params, fwd_items,
                                [plan.outputs[n] for n in fwd_out] + residuals, twins))
        chunks.append(_function(plan, graph, "backward", bwd_params, bwd_items,
                                [plan.outputs[n] for n in bwd_out], twins, given=missing))
        layout = [outputs, fwd_out, residuals, bwd_params, bwd_out]
    body = "\n\n".join(chunks[1:] + twins)
    return "\n\n".join([_with_helpers(body), body]), tuple(layout)


def _with_helpers(body):
    """The prelude, importing the runtime helpers (``_erf``, ``_step``) the body calls, so
    that a saved source runs on its own (a Program binds the same objects)."""
    lines = [f"from {f.__module__} import {f.__name__} as {name}\n"
             for name, f in sorted(HELPERS.items()) if f"{name}(" in body]
    return PRELUDE.replace("import numpy as np\n", "import numpy as np\n" + "".join(lines), 1)


def check_source(graph, params, name):
    """A fast test that inputs have the dtypes and shapes compiled for (and pass the checks).

    It only answers True or False; on False the caller asks the slow path
    (:func:`lucid.runtime.bind_sizes`) for an error that names the problem.
    """
    conds, seen = [], {}
    for p in params:
        d = graph.node(p)
        conds += [f"type({p}) is _ndarray", f"{p}.dtype is _{d.dtype}"]
        if all(isinstance(dim, int) for dim in d.shape):  # one tuple comparison: ndim and sizes
            conds.append(f"{p}.shape == {tuple(int(dim) for dim in d.shape)!r}")
            continue
        conds.append(f"{p}.ndim == {len(d.shape)}")
        for axis, dim in enumerate(d.shape):
            if isinstance(dim, str) and dim not in seen:
                seen[dim] = f"{p}.shape[{axis}]"
            else:
                conds.append(f"{p}.shape[{axis}] == {seen.get(dim, dim)}")
    for check in graph.checks:
        if all(d in seen or isinstance(d, int) for d in check.dims):
            size = " * ".join(seen[d] if isinstance(d, str) else str(d) for d in check.dims)
            conds.append(f"{size or 1} > {check.minimum}")
    body = "\n        and ".join(conds) or "True"
    return f"def {name}({', '.join(params)}):\n    return ({body})\n"


def split(plan):
    """Forward and backward items, recomputing cheap large values in the backward.

    A large temporary that only an upstream-gradient-free elementwise
    expression uses in the forward, and that is computed from inputs and
    small values alone, is not saved: the forward inlines it (so an eval
    forward still folds to one scale and shift) and the backward recomputes
    it, trading one pass for an allocation and a pass. One computed with a
    costly function (``erf``: 50 passes' worth) is saved instead.
    """
    forward = [it for it in plan.items if not it.backward]
    backward = [it for it in plan.items if it.backward]
    large = {it.symbol: it for it in forward if it.kind == "let" and is_large(it.shape)}
    used_back = {f for it in backward for e in it.exprs() for f in e.free_symbols}
    readers = {}  # symbol -> the forward items reading it
    for u in forward:
        for f in set().union(*(e.free_symbols for e in u.exprs())):
            readers.setdefault(f, []).append(u)
    remat = {}
    for sym, it in large.items():
        users = readers.get(sym, [])
        cheap = not any(f in large for f in it.expr.free_symbols) and not it.expr.has(*COSTLY)
        if sym in used_back and cheap and len(users) == 1 and users[0].kind in ("let", "output"):
            remat[sym] = it
    if not remat:
        return forward, backward
    inline = {s: it.expr for s, it in remat.items()}
    fwd = []
    for it in forward:
        if it.symbol in remat:
            continue
        if it.expr is not None and it.expr.free_symbols & set(inline):
            it = replace(it, expr=it.expr.xreplace(inline))
        fwd.append(it)
    return fwd, list(remat.values()) + backward


def donors_of(graph, plan, seeds, donate, bindings):
    """``{output key: (symbol of its value, input name)}`` from ``donate`` (``{output key:
    placeholder name}``), checked: each a program input of the output's shape and dtype,
    donated once, in a program without a backward. ValueError/TypeError naming the problem."""
    if not donate:
        return None
    if not isinstance(donate, dict):
        raise TypeError(f"donate must be a dict {{output key: input name}}, got "
                        f"{type(donate).__name__}")
    if seeds:
        raise ValueError("donate: only a program without a backward can compute into its "
                         "inputs; compile with mode='eval' or backward=False")
    inputs = {graph.node(p).key or p: p for p in graph.inputs if p not in bindings}
    results = sorted(k for k, o in graph.outputs.items() if o.kind is OutKind.RESULT)
    by_symbol = {it.symbol: it for it in plan.items}
    donors, seen = {}, set()
    for key, name in donate.items():
        if not isinstance(key, str) or not isinstance(name, str):
            raise TypeError(f"donate: keys and values must be strings (an output key, an input "
                            f"name), got {key!r}: {name!r}")
        if key not in results:
            raise ValueError(f"donate: no output {key!r}; the outputs are {results}")
        if name not in inputs:
            raise ValueError(f"donate: no input {name!r}; the inputs are {sorted(inputs)}")
        if name in seen:
            raise ValueError(f"donate: input {name!r} is donated twice")
        seen.add(name)
        out, given = graph.node(graph.outputs[key].node), graph.node(inputs[name])
        if (tuple(out.shape), out.dtype) != (tuple(given.shape), given.dtype):
            raise ValueError(f"donate: output {key!r} is {out.dtype}{list(out.shape)}, input "
                             f"{name!r} {given.dtype}{list(given.shape)}")
        symbol = plan.outputs[graph.outputs[key].node]
        while symbol in by_symbol and by_symbol[symbol].kind == "output" and \
                by_symbol[symbol].expr.is_Symbol and by_symbol[symbol].expr in by_symbol:
            symbol = by_symbol[symbol].expr  # an output returned as it is: its value's item
        donors[key] = (symbol, inputs[name])
    return donors


def residuals_of(plan, forward, backward):
    """Forward values (items and placeholders) that backward items read, in order."""
    computed = {it.symbol for it in forward}
    local = {it.symbol for it in backward}
    inputs = {a.symbol for a in plan.sym.atoms.values() if a.kind == "input"}
    out = {}  # ordered, with constant-time membership
    for it in backward:
        for e in it.exprs():
            for f in sorted(e.free_symbols, key=str):
                keep = f in computed or (f in inputs and f not in plan.seeds)
                if keep and f not in local:
                    out.setdefault(f)
    return list(out)


def _escaping(plan, items, returns, views=True):
    """Symbols whose memory a function hands out: its returns and what they alias
    (through views too, unless ``views`` is False)."""
    by_symbol = {it.symbol: it for it in items}
    out = {sp.Symbol(str(r), real=True) for r in returns}
    todo = list(out)
    while todo:
        it = by_symbol.get(todo.pop())
        if it is None:
            continue
        aliases = []
        if it.kind == "output" and it.expr.is_Symbol:
            aliases = [it.expr]
        elif views and it.kind == "op" and plan.graph.node(it.node).op in VIEWS:
            aliases = [a for a in it.args if a.is_Symbol]
        for a in aliases:
            if a not in out:
                out.add(a)
                todo.append(a)
    return out


def _function(plan, graph, name, params, items, returns, twins, given=(), donors=None):
    """The source of function ``name``; if it has regions to split, the source of its
    parallel twin (``_<name>_parallel`` and its kernels, see :mod:`lucid.codegen.twin`)
    goes into ``twins``. A function computing values into donated inputs has no twin."""
    chosen = None if donors else choose(plan, items)
    if chosen and too_small(items, *chosen):
        chosen = None  # too small for any thread count to pay: no twin at all
    groups = schedule(plan, items, *chosen) if chosen else None
    emitter = _emitter(plan, name, params, items, returns)
    emitter.donors = dict(donors or {})
    emitter.twinned = bool(groups)  # then its sums take the forms its kernels can take
    for it in items:
        emitter.item(it)
    plan.memory[name] = list(emitter.pool.intervals)  # slot live ranges: Program.memory()
    plan.donated_symbols |= emitter.donated
    lines = emitter.lines
    if groups:
        sources, blocked = _twin(plan, graph, name, params, groups, returns, given, chosen)
        twins.extend(sources)
        test = condition(items, *chosen, blocked) + _c_ordered(plan, params, chosen[0])
        lines = [f"if {test}:  # big enough to split over threads?",
                 f"    return _{name}_parallel({', '.join(params)})"] + lines
    return _source(plan, graph, name, params, items, returns, given, emitter, lines)


def _c_ordered(plan, params, shape):
    """`` and x.flags.c_contiguous`` for each parameter of the split shape: NumPy sums the
    slices of another layout in another order than the whole, so such input runs serially
    (the same bits at any thread count)."""
    shapes = _shapes(plan)
    return "".join(f" and {p}.flags.c_contiguous" for p in params
                   if tuple(shapes.get(str(p), ())) == tuple(shape))


def _shapes(plan):
    """Name -> shape of every atom and planned item (residuals too)."""
    shapes = {str(s): a.shape for s, a in plan.sym.atoms.items()}
    shapes.update((str(it.symbol), it.shape) for it in plan.items)
    return shapes


def _emitter(plan, name, params, items, returns):
    # residuals are handed to our own backward, not to the caller: they may be views
    outputs = [r for r in returns if r in plan.output_symbols]
    return Emitter(plan, name, fresh=_escaping(plan, items, returns),
                   returned=_escaping(plan, items, outputs, views=False), params=params,
                   last=last_uses(plan, items), readers=_readers(items))


def _twin(plan, graph, name, params, groups, returns, given, chosen):
    """The driver ``_<name>_parallel`` and its kernels, over ``groups`` from ``schedule``;
    and whether a kernel takes blocks of rows."""
    items = [it for _, group in groups for it in group]
    emitter = _emitter(plan, name, params, items, returns)  # slots shared with the serial one
    emitter.twinned = True
    last = last_uses(plan, items)
    back = {sp.Symbol(str(r), real=True) for r in returns}
    shapes = _shapes(plan)
    sizes = {size_name(d) for d in _sizes_available(plan, graph, params)}
    driver, kernels, end, blocked = [], [], -1, False
    for region, group in groups:
        end += len(group)
        if not region:
            emitter.lines = driver
            for it in group:
                emitter.item(it)
            continue
        later = {s for s, i in last.items() if i > end} | back
        scope = set(map(str, params)) | {str(s) for s in emitter.defined} | sizes
        source, lines, blocks = kernel(emitter, name, len(kernels), group,
                                       Region(*chosen, driver=[]), scope, shapes, later)
        kernels.append(source)
        blocked = blocked or blocks
        driver.extend(lines)
    plan.memory[f"_{name}_parallel"] = list(emitter.pool.intervals)
    twin = _source(plan, graph, f"_{name}_parallel", params, items, returns, given, emitter,
                   driver)
    return kernels + [twin], blocked


def _source(plan, graph, name, params, items, returns, given, emitter, lines):
    """The ``def``: bind the sizes the body uses, run it, return ``returns``."""
    sizes = {}
    available = _sizes_available(plan, graph, params)
    by_name = {size_name(d): d for d in available}
    returned = [by_name[str(r)] for r in returns if str(r) in by_name]  # sizes as residuals
    used = "\n".join(lines)
    for s in _sizes_needed(plan, items) + returned:
        if s in available and s not in given and (size_name(s) in used or s in returned):
            sizes[s] = available[s]
    names = [str(emitter.alias.get(sp.Symbol(str(r), real=True), r)) for r in returns]
    return function_source(name, params, sizes, lines, names)


def _readers(items):
    """Symbol -> the items that read it."""
    found = {}
    for it in items:
        for f in {f for e in it.exprs() for f in e.free_symbols}:
            found.setdefault(f, []).append(it)
    return found


def _sizes_needed(plan, items):
    needed = []
    for it in items:
        dims = [d for d in it.shape if isinstance(d, str)]
        for e in it.exprs():
            dims += size_dims(e)
        full_shapes = [plan.sym.shape_of(e) for e in it.exprs()]
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
