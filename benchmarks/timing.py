"""Timing shared by the benchmarks: medians of calls interleaved in shuffled order."""
from __future__ import annotations

import statistics
import time

#: After a call, torch's OpenMP workers keep spinning for about 10 ms in torch's default
#: environment (measured here: a 20 ms sleep right after a BatchNorm step cost 8.5 ms of CPU
#: time). On a 2-core machine that spin takes a core from whatever runs next. Forcing
#: ``OMP_WAIT_POLICY=PASSIVE`` instead, as these benchmarks once did, made torch wake its
#: workers at every op: 590 us for a BatchNorm1d(64) step at (32, 64) that takes 69 us in
#: torch's own environment. So torch keeps its defaults, its calls run as a group of their
#: own each round, and the others start only after this pause.
SETTLE = 0.02


def measure(impls, rounds, order, apart=()):
    """``{name: median seconds}`` of each callable in ``impls`` over ``rounds`` rounds.

    Every round calls each implementation once, in an order ``order.shuffle``
    (a ``random.Random``) draws anew, so machine noise hits all of them alike;
    one warm-up call each first (compile caches, first-touch allocations).
    The names in ``apart`` (torch's, whose threads spin after a call) run
    first in each round, shuffled among themselves and after one untimed call
    that wakes their threads (as in a loop of torch calls), then :data:`SETTLE`
    seconds pass before the others run: spinning threads from one group
    never share the cores with the other's calls.
    """
    times = {name: [] for name in impls}
    groups = [[n for n in impls if n in apart], [n for n in impls if n not in apart]]
    groups = [g for g in groups if g]
    for f in impls.values():
        f()
    for _ in range(rounds):
        for names in groups:
            order.shuffle(names)
            if len(groups) > 1 and names is groups[0]:
                impls[names[0]]()
            for name in names:
                t0 = time.perf_counter()
                impls[name]()
                times[name].append(time.perf_counter() - t0)
            if len(groups) > 1 and names is groups[0]:
                time.sleep(SETTLE)
    return {name: statistics.median(t) for name, t in times.items()}
