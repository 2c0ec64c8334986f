"""The memory plan: scratch buffers assigned by live ranges.

A generated function keeps its large intermediate values in scratch arrays
that live between calls (one set per thread, see ``_buffer`` in the
prelude). Giving every value its own array would hold as many full-size
arrays as the function has items; instead each value takes a free array of
its shape and dtype when it is computed and gives it back after the last
statement that reads it, directly or through a view of it (a transpose,
a reshape). What a function holds between calls is then about the largest
set of values alive at one time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
