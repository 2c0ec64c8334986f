"""Timing shared by the benchmarks: medians of calls interleaved in shuffled order."""
from __future__ import annotations

import statistics
import time

#: After a call, torch's OpenMP workers keep spinning for about 10 ms in torch's default
#: environment (measured here: a 20 ms sleep right after a BatchNorm step cost 8.5 ms of CPU
#: time). On a 2-core machine that spin takes a core from whatever runs next. Forcing
#: ``OMP_WAIT_POLICY=PASSIVE`` instead, as these benchmarks once did, made torch wake its
#: workers at every op: 590 us for a BatchNorm1d(64) step at (32, 64) that takes 69 us in
#: torch's own setting. So a benchmark with a torch column leaves torch its defaults and
#: measures in blocks (``measure(..., blocks=BLOCKS)``), with this pause before each block.
SETTLE = 0.02
#: Blocks per implementation when a benchmark measures in blocks.
BLOCKS = 10


def measure(impls, rounds, order, blocks=None):
    """``{name: median seconds}`` of each callable in ``impls`` over ``rounds`` calls each.

    One warm-up call each first (compile caches, first-touch allocations). By
    default every round calls each implementation once, in an order
    ``order.shuffle`` (a ``random.Random``) draws anew, so machine noise hits
    all of them alike.

    With ``blocks``, each implementation runs in that many blocks of consecutive
    calls, as in a user's loop, the blocks of all implementations in a shuffled
    order each cycle, so drift over the run is shared. Before each block
    :data:`SETTLE` seconds pass and the implementation runs once untimed: no
    one's spinning threads (torch's OpenMP workers, BLAS's) share the cores
    with another's calls, and no block starts cold. Every implementation then
    meets the caches as its own loop leaves them, not as another's leaves them.
    """
    times = {name: [] for name in impls}
    names = list(impls)
    for f in impls.values():
        f()
    if blocks is None:
        for _ in range(rounds):
            _calls(impls, names, order, times)
        return {name: statistics.median(t) for name, t in times.items()}
    size = max(1, -(-rounds // blocks))
    for start in range(0, rounds, size):
        order.shuffle(names)
        for name in names:
            time.sleep(SETTLE)
            impls[name]()
            for _ in range(min(size, rounds - start)):
                _calls(impls, [name], order, times)
    return {name: statistics.median(t) for name, t in times.items()}


def _calls(impls, names, order, times):
    """One call of each of ``names``, in a shuffled order, timed."""
    order.shuffle(names)
    for name in names:
        t0 = time.perf_counter()
        impls[name]()
        times[name].append(time.perf_counter() - t0)
