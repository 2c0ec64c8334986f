"""The parallel twin of a generated function: channel slices run on the thread pool.

A function whose reductions all keep one axis of its main shape (the
channels of a BatchNorm: axis 1 of (N, C) or (N, C, L)) can compute each
slice of that axis on its own. Its twin ``_step_parallel`` is a driver that
computes everything crossing channels (matmuls, reshapes, scalars, running
statistics) itself and hands each *region* (a run of statements that stay
within a channel: elementwise passes over the main shape, reductions
keeping the axis, per-channel constants) to a kernel ``_step_part0(_lo, _hi,
...)``: the same statements the serial function has, on the slices
``x[:, _lo:_hi]`` of its arrays. The driver allocates the region's large
values whole; each kernel writes its slice of them and returns its slice of
the small per-channel values later statements read, which
:func:`lucid.codegen.parallel.split` joins.

A function with no reduction at all (an eval BatchNorm, an activation: only
elementwise passes over one large shape) is split along its *leading* axis
instead: each kernel takes the rows ``x[_lo:_hi]``, one contiguous block of
memory, so every pass keeps the longest inner loops NumPy can have. What no
row changes (per-channel constants and their layouts) its driver computes
once, and a kernel whose passes share an array is handed blocks of rows
small enough to stay in cache from one pass to the next (see :func:`_hoist`
and the thresholds in :mod:`lucid.codegen.parallel`).

The serial function stays as it was and starts with one test (see
:func:`condition`): below a measured size, or with one thread, it runs
itself (no pool handoff).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..ops.shapes import fit
from . import parallel
from .linear import is_large
from .text import shape_source, size_name


@dataclass
class Region:
    """Emitting a kernel: the split shape and axis, and what the driver allocates for it."""

    shape: tuple
    axis: int
    driver: list  # the driver's lines: full-size allocations go there
    full: dict = field(default_factory=dict)  # name -> channel position, allocated whole

    def position(self, shape):
        """The axis of ``shape`` (broadcast against the split shape) holding the channels."""
        pos = self.axis - (len(self.shape) - len(shape))
        if 0 <= pos < len(shape) and shape[pos] == self.shape[self.axis] and \
                self.shape[self.axis] != 1:
            return pos
        return None

    def allocate(self, name, shape, source):
        """Allocate ``name`` whole in the driver; return the kernel's slice of it."""
        self.driver.append(f"{name} = {source}")
        self.full[name] = self.position(shape)
        return sliced(name, self.full[name])


def sliced(name, pos):
    return f"{name}[{':, ' * pos}_lo:_hi]"


def choose(plan, items):
    """``(shape, axis)`` to split ``items`` along, or None: the shape most reductions sum
    over, and its axis the most of them keep (the others run in the driver); with no
    reduction, the leading axis of the shape most elementwise passes cover."""
    sums = {}
    for it in items:
        if it.kind == "reduce":
            sums.setdefault(tuple(plan.sym.shape_of(it.expr)), []).append(set(it.axes))
    if not sums:
        return _leading(items)
    shape = max(sums, key=lambda s: len(sums[s]))
    keep = {a: sum(a not in axes for axes in sums[shape])
            for a, d in enumerate(shape) if d != 1}
    axis = max(keep, key=keep.get, default=None)
    return (shape, axis) if axis is not None and keep[axis] and is_large(shape) else None


def _leading(items):
    """``(shape, 0)`` for the large shape most elementwise passes cover, or None."""
    passes = {}
    for it in items:
        computes = it.kind == "let" or (it.kind == "output" and not it.expr.is_Atom)
        if computes and is_large(it.shape) and it.shape and it.shape[0] != 1:
            passes[tuple(it.shape)] = passes.get(tuple(it.shape), 0) + 1
    return (max(passes, key=passes.get), 0) if passes else None


def has_reductions(items):
    return any(it.kind == "reduce" for it in items)


def condition(items, shape, axis, blocked):
    """The source of the serial function's test whether to run its twin instead.

    ``_worth(elements, row)`` (:func:`lucid.codegen.parallel.worth`) for a split
    of reductions, ``row`` the values per index of the axes before the split axis
    (C * L for (N, C, L)); ``_worth_rows(elements, rows, blocked)``
    (:func:`lucid.codegen.parallel.worth_rows`) for elementwise passes split by rows,
    ``blocked`` if a kernel makes several passes over its rows.
    """
    dims = [size_name(d) if isinstance(d, str) else str(d) for d in shape]
    if has_reductions(items):
        return f"_worth({' * '.join(dims)}, {' * '.join(dims[axis:])})"
    return f"_worth_rows({' * '.join(dims)}, {dims[0]}, {blocked})"


def too_small(items, shape, axis):
    """Whether static sizes already rule the twin out at any thread count: rows shorter
    than ``2 * MIN_RUN`` for a split of reductions, fewer values than both
    ``MIN_ROWS_ELEMENTS`` and blocks need for elementwise passes split by rows."""
    least = min(parallel.MIN_ROWS_ELEMENTS, parallel.MIN_BLOCKED_BYTES // 4)
    dims, least = (shape[axis:], 2 * parallel.MIN_RUN) if has_reductions(items) else \
        (shape, least)
    return all(isinstance(d, int) for d in dims) and math.prod(dims) < least


def schedule(plan, items, shape, axis):
    """Items in groups ``[(region?, items)]``, in an order where each region is one run.

    Statements outside regions move up to as soon as their operands exist
    (the driver runs them before handing out slices); a region is kept only
    if it holds a pass over the whole split shape, and a reduction if the
    function has any. Returns
    None when no region is kept.
    """
    region = Region(tuple(shape), axis, [])
    symbols = {it.symbol for it in items}
    deps = {it.symbol: {f for e in it.exprs() for f in e.free_symbols if f in symbols}
            for it in items}
    inside = {it.symbol: _inside(plan, it, region) for it in items}
    reduces = has_reductions(items)
    done, pending, groups = set(), list(items), []
    while pending:
        for want in (False, True):
            group, rest = [], []
            for it in pending:
                if inside[it.symbol] == want and deps[it.symbol] <= done:
                    group.append(it)
                    done.add(it.symbol)
                else:
                    rest.append(it)
            pending = rest
            if group:
                groups.append((want and _worth_splitting(group, region, reduces), group))
    return groups if any(r for r, _ in groups) else None


def _worth_splitting(group, region, reduces):
    """A region holds a pass over the whole split shape, and a reduction if there are any."""
    return (not reduces or has_reductions(group)) and \
        any(it.kind != "reduce" and tuple(it.shape) == region.shape for it in group)


def _inside(plan, it, region):
    """Whether ``it`` computes channel by channel: an elementwise value over the split
    shape or per channel, or a reduction keeping the channel axis, reading only values
    that broadcast against the split shape (sliced where they have the channel axis)."""
    if region.position(it.shape) is None:
        return False
    if it.kind == "reduce":
        if tuple(plan.sym.shape_of(it.expr)) != region.shape or region.axis in it.axes:
            return False
    elif it.kind == "output":
        if not (is_large(it.shape) and not it.expr.is_Atom and
                tuple(plan.sym.shape_of(it.expr)) == tuple(it.shape)):
            return False  # only an output computed in place into its own array
    elif it.kind != "let" or not _broadcasts(it.shape, region.shape):
        return False
    return all(_broadcasts(plan.sym.shape_of(f), region.shape)
               for e in it.exprs() for f in e.free_symbols)


def _broadcasts(shape, target):
    return all(d in (1, t) for d, t in zip(fit(shape, len(target)), target))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = re.compile(r"'[^']*'")


def kernel(emitter, fn, index, group, region, scope, shapes, later):
    """Emit ``group`` as kernel ``_<fn>_part<index>``; return ``(source, driver lines,
    blocked)``, ``blocked`` when the driver hands it blocks of rows (see :func:`_hoist`).

    ``scope`` holds the names the driver has bound; ``shapes`` their shapes
    (to slice the ones with a channel axis); ``later`` the symbols read after
    the region (its small values the kernel must return).
    """
    outer_lines, outer_expanded = emitter.lines, emitter.expanded
    body = emitter.lines = []
    emitter.expanded, emitter.region = {}, region
    try:
        for it in group:
            emitter.item(it)
    finally:
        emitter.lines, emitter.expanded, emitter.region = outer_lines, outer_expanded, None
    rows = not has_reductions(group)
    hoisted, varying = _hoist(body, {p for p in scope if _slices(region, shapes, p)},
                              f"_part{index}") if rows else ([], set())
    scope = scope | set(region.full)
    read = set()
    for line in body:
        if not line.startswith("#"):
            read.update(_NAME.findall(_STRING.sub("", line)))
    params = sorted(n for n in read if n in scope or any(_assigns(h, n) for h in hoisted))
    computed = [it for it in group if str(it.symbol) not in region.full]
    exports = [it for it in computed if it.symbol in later]
    for it in computed:
        if it.symbol not in later:
            emitter.defined.discard(it.symbol)  # lives in the kernel only
    name = f"_{fn}_part{index}"
    lines = [f"def {name}({', '.join(['_lo', '_hi'] + params)}):",
             f'    """Slice _lo:_hi of axis {region.axis} of {fn}\'s '
             f'{shape_source(region.shape)} values."""']
    if "_width" in read:
        lines.append("    _width = _hi - _lo")
    for p in params:  # (the arrays allocated for the region are sliced where first written)
        if _slices(region, shapes, p):
            lines.append(f"    {p} = {sliced(p, region.position(shapes[p]))}")
    lines.extend(f"    {line}" for line in body)
    ret = ", ".join(str(it.symbol) for it in exports)
    lines.append(f"    return ({ret}{',' if len(exports) == 1 else ''})")
    size = region.shape[region.axis]
    size = size_name(size) if isinstance(size, str) else str(size)
    axes = [region.position(it.shape) for it in exports]
    args = [name, size, str(tuple(axes))] + params
    passes = [set(_NAME.findall(_STRING.sub("", line))) & varying for line in body
              if not line.startswith("#") and not _SLICE.match(line)]
    blocked = any(sum(n in p for p in passes) > 1 for n in varying)
    if blocked:  # an array two passes read or write: its block stays in cache between them
        itemsize = max(np.dtype(it.dtype).itemsize for it in group)
        dims = [size_name(d) if isinstance(d, str) else str(d) for d in region.shape[1:]]
        args.append(f"block={' * '.join(dims + [str(itemsize)])}")
    call = f"_split({', '.join(args)})"
    target = ", ".join(str(it.symbol) for it in exports)
    driver = [f"# axis {region.axis} in slices on the thread pool: {name}",
              f"{target}{',' if len(exports) == 1 else ''} = {call}" if exports else call]
    allocated = ["# arrays the slices write into, allocated whole"] if region.driver else []
    if hoisted:
        hoisted.insert(0, f"# what {name} reads that no row changes, computed once")
    return "\n".join(lines) + "\n", allocated + region.driver + hoisted + driver, blocked


_SLICE = re.compile(r"(\w+) = \1\[")  # a kernel's slice of an array the driver allocated
_ASSIGN = re.compile(r"(\w+) = (.*)$")


def _slices(region, shapes, name):
    """Whether the kernel takes its slice of parameter ``name`` (not allocated for it)."""
    return name in shapes and name not in region.full and region.position(shapes[name]) is not None


def _assigns(line, name):
    found = _ASSIGN.match(line)
    return found is not None and found.group(1) == name


def _hoist(body, varying, prefix):
    """Take out of a row kernel's ``body`` (in place) the statements no row changes:
    per-channel constants and their layouts, which the driver then computes once rather
    than every block of rows. ``varying`` holds the parameters the kernel slices; a
    statement depends on the rows if it reads the slice bounds or a value that does, or
    writes into an array (``out=``). Returns the statements taken out and the names of
    the values that depend on the rows. The kernel numbers its layouts ``_e0, _e1, ...``
    afresh; taken into the driver they become ``<prefix>_e0, ...``, so that they cannot
    rebind a layout of the driver's own."""
    varying = set(varying) | {"_lo", "_hi", "_width"}
    hoisted, kept = [], []
    for line in body:
        found = None if line.startswith("#") else _ASSIGN.match(line)
        if found is None:
            kept.append(line)
            continue
        reads = set(_NAME.findall(_STRING.sub("", found.group(2))))
        if reads & varying or "out=" in found.group(2):
            varying.add(found.group(1))
            kept.append(line)
        else:
            hoisted.append(line)
    layouts = sorted(found.group(1) for found in map(_ASSIGN.match, hoisted)
                     if re.fullmatch(r"_e\d+", found.group(1)))
    if layouts:
        rename = re.compile(r"\b(%s)\b" % "|".join(layouts))
        hoisted = [rename.sub(lambda m: prefix + m.group(1), line) for line in hoisted]
        kept = [line if line.startswith("#") else rename.sub(lambda m: prefix + m.group(1), line)
                for line in kept]
    body[:] = kept
    return hoisted, varying - {"_lo", "_hi", "_width"}
