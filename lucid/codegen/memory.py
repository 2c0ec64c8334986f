"""The memory plan: scratch buffers assigned by live ranges.

A generated function keeps its large intermediate values in scratch arrays
that live between calls (one set per thread, see ``_buffer`` in the
prelude). Giving every value its own array would hold as many full-size
arrays as the function has items; instead each value takes a free array of
its shape and dtype when it is computed and gives it back after the last
statement that reads it, directly or through a view of it (a transpose,
a reshape). What a function holds between calls is then about the largest
set of values alive at one time.

A value the caller donated an input for (``lucid.compile(..., donate=)``, as
JAX's ``donate_argnums``) goes into that input's array instead, when that is
safe (:func:`donate`): an optimizer's step writes its parameter in place.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import sympy as sp

from .plan import VIEWS


def last_uses(plan, items):
    """Symbol -> index of the last item reading it, directly or through a value that may
    share its memory (a view, a cast, an output returned as it is)."""
    last, shares = {}, {}
    for i, it in enumerate(items):
        reads = {f for e in it.exprs() for f in e.free_symbols}
        for f in reads:
            last[f] = i
        if it.kind in ("output", "cast") or \
                (it.kind == "op" and plan.graph.node(it.node).op in VIEWS):
            shares[it.symbol] = reads
    for i in reversed(range(len(items))):  # a view of a view: the later one first
        symbol = items[i].symbol
        for base in shares.get(symbol, ()):
            last[base] = max(last.get(base, i), last.get(symbol, i))
    return last


@dataclass
class Pool:
    """Free scratch slots of one function, by shape and dtype, and each slot's users."""

    fn: str
    free: dict = field(default_factory=dict)  # (shape source, dtype) -> free slot names
    live: dict = field(default_factory=dict)  # owner -> (slot, key, first item index)
    intervals: list = field(default_factory=list)  # (slot, first, last item index)
    slots: list = field(default_factory=list)

    def take(self, owner, name, key, index):
        """A slot for ``owner``: a free one of this shape and dtype, else a new one named
        after its first owner (``step._t3``)."""
        free = self.free.get(key)
        slot = free.pop() if free else f"{self.fn}.{name}"
        if slot not in self.slots:
            self.slots.append(slot)
        self.live[owner] = (slot, key, index)
        return slot

    def give(self, owner, index):
        slot, key, first = self.live.pop(owner)
        self.free.setdefault(key, []).append(slot)
        self.intervals.append((slot, first, index))


def peak_bytes(intervals, nbytes):
    """Largest total size of the slots alive at one item, ``nbytes`` giving each slot's size."""
    events = sorted({i for _, first, last in intervals for i in (first, last)})
    return max((sum(nbytes.get(slot, 0) for slot, first, last in intervals
                    if first <= t <= last) for t in events), default=0)


def donate(emitter, name, it, donor):
    """Have ``emitter`` compute item ``it`` into the array of input ``donor`` (a caller's
    ``donate=``), overwriting it, if that is safe: nothing after ``it`` reads the input,
    no returned value is (a view of) it, and ``it``'s statements read the input only up to
    the first that writes it (its term goes first, see ``into``'s ``first``). Else emit
    nothing and answer False."""
    e = emitter
    symbol = sp.Symbol(donor, real=True)
    atom = e.plan.sym.atoms.get(symbol)
    if e.region is not None or atom is None or atom.kind != "input" or \
            (tuple(atom.shape), atom.dtype) != (tuple(it.shape), it.dtype) or \
            e.last.get(donor, -1) > e.index or symbol in e.fresh or viewed(e.plan, symbol):
        return False
    mark, saved = len(e.lines), (copy.deepcopy(e.pool), e.scratch, list(e.passing))
    e.lines.append(f"{name} = {donor}  # computed into the donated input")
    e.into(it.expr, name, it.shape, it.dtype, first=symbol)
    if read_after_write(e.lines[mark + 1:], name, donor):
        del e.lines[mark:]
        e.pool, e.scratch, e.passing = saved
        return False
    e.donated.add(it.symbol)
    return True


def viewed(plan, symbol):
    """Whether any value may share ``symbol``'s memory (a view, a cast, an output returned
    as it is): a statement reading it after the donated input is written would read the
    new values under another name."""
    for it in plan.items:
        if it.kind == "cast" or (it.kind == "output" and it.expr.is_Symbol) or \
                (it.kind == "op" and plan.graph.node(it.node).op in VIEWS):
            if any(symbol in e.free_symbols for e in it.exprs()):
                return True
    return False


def read_after_write(lines, dest, name):
    """Whether a statement of ``lines`` reads ``name`` after one has written ``dest``."""
    word, written = re.compile(rf"\b{re.escape(name)}\b"), False
    for line in lines:
        if line.lstrip().startswith("#"):
            continue
        if written and word.search(line):
            return True
        written = written or f"out={dest})" in line or line.startswith(
            (f"np.copyto({dest},", f"{dest} ="))
    return False
