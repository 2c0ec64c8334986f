"""Timing shared by the benchmarks: medians of calls interleaved in shuffled order."""
from __future__ import annotations

import statistics
import time


def measure(impls, rounds, order):
    """``{name: median seconds}`` of each callable in ``impls`` over ``rounds`` rounds.

    Every round calls each implementation once, in an order ``order.shuffle``
    (a ``random.Random``) draws anew, so machine noise hits all of them alike;
    one warm-up call each first (compile caches, first-touch allocations).
    """
    times = {name: [] for name in impls}
    names = list(impls)
    for f in impls.values():
        f()
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            impls[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}
