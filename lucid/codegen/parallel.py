"""The thread pool that runs channel slices of a generated function.

A generated function whose large values are big enough has a parallel twin
(see :mod:`lucid.codegen.split`): a driver that computes what crosses
channels itself and hands each slice ``_lo:_hi`` of the channel axis to a
kernel function. :func:`split` runs those kernels: slice 0 on the calling
thread, the others on persistent worker threads (NumPy's ufuncs, einsum and
matmul release the GIL, so the slices run at the same time).

Every channel's values are computed by the same statements, in the same
order, whatever slice holds it: a reduction over the other axes of one
channel sums in the same order in a slice as in the whole array. So results
are bit-identical for any thread count (``tests/test_parallel.py`` checks it).

The threshold
-------------
Handing slices to the pool costs about 10-20 us per call (a queue put and
get per worker, the driver's extra allocations); splitting pays once the
work per call is a few hundred microseconds. ``MIN_ELEMENTS`` is the element
count of the split shape from which the parallel twin runs. Measured on the
2-core machine this was written on (``benchmarks/bench_batchnorm.py
--threshold``: BatchNorm1d train step, serial ``step`` against its parallel
twin at 2 threads, interleaved medians, for (N, C, L) from 2**14 to 2**20
elements), under load from other processes:

=========  =========  ===============
elements   shape      2 threads / 1
=========  =========  ===============
16 384     (16,64,16)   1.30 (slower)
65 536     (64,64,16)   0.89
131 072    (128,64,16)  0.80
262 144    (64,64,64)   0.73
1 048 576  (64,128,128) 0.62
=========  =========  ===============

The crossing is near 40 000 elements; ``MIN_ELEMENTS = 65536`` leaves a
margin for noise. Shapes below it keep the straight single-thread function
with no pool handoff.
"""
from __future__ import annotations

import operator
import os
import queue
import threading

import numpy as np

#: Element count of the split shape from which the parallel twin runs (measured: see above).
MIN_ELEMENTS = 1 << 20
#: Shortest contiguous run of values a thread's slice may have (measured: see above).
MIN_RUN = 2048


def _default_threads():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Pool:
    """Persistent daemon workers taking ``(kernel, args, reply)`` from one queue."""

    def __init__(self):
        self.threads = _default_threads()
        self.tasks = queue.SimpleQueue()
        self.workers = []
        self.lock = threading.Lock()

    def ensure(self, n):
        """Start workers until there are ``n`` (the caller runs one slice itself)."""
        with self.lock:
            while len(self.workers) < n:
                worker = threading.Thread(target=self._work, name=f"lucid-pool-{len(self.workers)}",
                                          daemon=True)
                worker.start()
                self.workers.append(worker)

    def _work(self):
        while True:
            index, kernel, args, reply = self.tasks.get()
            try:
                reply.put((index, kernel(*args), None))
            except BaseException as error:  # handed to the caller, who raises it
                reply.put((index, None, error))


_POOL = _Pool()


def set_num_threads(n):
    """Set the number of threads a compiled program may use, like ``torch.set_num_threads``.

    Only programs over values of at least ``MIN_ELEMENTS`` elements use more
    than one: their channels are split into ``n`` slices run side by side.
    Results do not depend on ``n``.

    Parameters
    ----------
    n : int
        A positive number of threads.

    Examples
    --------
    >>> import lucid
    >>> before = lucid.get_num_threads()
    >>> lucid.set_num_threads(1)
    >>> lucid.get_num_threads()
    1
    >>> lucid.set_num_threads(before)
    """
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads expects a positive int, got {type(n).__name__}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n}")
    _POOL.threads = n


def get_num_threads():
    """The number of threads compiled programs may use (default: the cores this process may run on).

    Examples
    --------
    >>> import lucid
    >>> lucid.get_num_threads() >= 1
    True
    """
    return _POOL.threads


def worth(elements, row):
    """Whether a function over ``elements`` values should run its parallel twin: ``row``
    is the number of values per index of the axes before the split axis (C * L for
    (N, C, L) split along C), of which each thread takes a contiguous run."""
    threads = _POOL.threads
    return threads > 1 and elements >= MIN_ELEMENTS and row >= MIN_RUN * threads


def bounds(size, parts):
    """``parts`` contiguous slices ``(lo, hi)`` of ``range(size)``, as equal as can be."""
    cuts = [size * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def split(kernel, size, axes, *args):
    """Run ``kernel(c0, c1, *args)`` on slices of ``range(size)``; join what they return.

    The kernel writes its large values into slices of arrays the caller
    allocated and returns its small per-channel values, which are joined
    along ``axes`` (one axis per returned value). Slice 0 runs on the
    calling thread. If any slice raises, the first error (in slice order)
    is raised once every slice has finished, so no worker still writes.
    """
    slices = bounds(size, min(_POOL.threads, size))
    if len(slices) > 1:
        _POOL.ensure(len(slices) - 1)
    reply = queue.SimpleQueue()
    for i, (c0, c1) in enumerate(slices[1:], 1):
        _POOL.tasks.put((i, kernel, (c0, c1) + args, reply))
    results, errors = [None] * len(slices), [None] * len(slices)
    try:
        results[0] = kernel(*slices[0], *args)
    except BaseException as error:
        errors[0] = error
    for _ in slices[1:]:
        index, result, error = reply.get()
        results[index], errors[index] = result, error
    for error in errors:
        if error is not None:
            raise error
    if len(results) == 1:
        return results[0]
    return tuple(np.concatenate([r[k] for r in results], axis=axis) for k, axis in enumerate(axes))


#: What a Program puts into the namespace of its generated source (see ``_worth`` there).
RUNTIME = {"_split": split, "_worth": worth}
