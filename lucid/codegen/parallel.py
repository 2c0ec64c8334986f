"""The thread pool that runs channel slices of a generated function.

A generated function whose large values are big enough has a parallel twin
(see :mod:`lucid.codegen.twin`): a driver that computes what crosses
channels itself and hands each slice ``_lo:_hi`` of the channel axis to a
kernel function. :func:`split` runs those kernels: slice 0 on the calling
thread, the others on persistent worker threads (NumPy's ufuncs, einsum and
matmul release the GIL, so the slices run at the same time).

Every channel's values are computed by the same statements, in the same
order, whatever slice holds it: a reduction over the other axes of one
channel sums in the same order in a slice as in the whole array. So results
are bit-identical for any thread count (``tests/test_parallel.py`` checks it).

The thresholds
--------------
Handing slices to the pool costs 13 us at best (a queue put and get per
worker; ``split`` of an empty kernel: 18 us on 2 threads against 5 us on
one), 80-100 us when other processes keep the cores busy, plus the driver's
extra allocations. And a channel slice of (N, C, L) data is strided: runs of
``C/T * L`` values with gaps between them, which NumPy walks more slowly
than contiguous data when they are short or the data fits in cache (a
multiply over half the channels of (256, 256, 16) float32: 0.24 ms as a
strided view, 0.07 ms contiguous). So the twin runs only when the split
shape has at least ``MIN_ELEMENTS`` values *and* each thread's contiguous
run (``row / threads``, ``row`` the values per index before the split axis)
is at least ``MIN_RUN``.

Measured with ``python benchmarks/bench_batchnorm.py --threshold`` (the
BatchNorm1d train step's generated function on one thread against its twin
forced on at 2 threads, interleaved medians) on this 2-core machine, which
other processes were often using too. Ratio = 2 threads / 1 thread:

==========  ================  ==========  =============  =============
elements    shape             run/thread  quiet          busy
==========  ================  ==========  =============  =============
131 072     (128, 64, 16)     512         1.13 - 1.20    1.0 - 3.0
262 144     (64, 64, 64)      2 048       0.81 - 1.37    0.84 - 4.1
524 288     (64, 128, 64)     4 096       0.67 - 1.10    0.61 - 3.3
1 048 576   (64, 128, 128)    8 192       0.65 - 0.87    0.62 - 1.48
4 194 304   (64, 256, 256)    32 768      0.67 - 0.80    0.86 - 1.05
8 388 608   (64, 256, 512)    65 536      0.72 - 0.77    0.98 - 1.21
524 288     (2048, 256)       128         1.08 - 1.18    2.0 - 4.5
1 048 576   (512, 2048)       1 024       1.05 - 1.09    2.0
1 048 576   (256, 4096)       2 048       0.89 - 0.94    0.85 - 1.9
==========  ================  ==========  =============  =============

"quiet": the range over three runs (two for the last four rows) started
while the machine was idle; "busy": over 1-6 runs while other test suites
used both cores (there the second thread rarely gets a core and splitting
mostly costs). On a quiet machine the split paid from 2**19 values with
runs of 4 096 or more; runs of 2 048 broke even at best and shorter ones
lost. A (N, 256) BatchNorm (runs of 128) always stays on one thread: a
function whose rows are static and shorter than ``2 * MIN_RUN`` gets no twin
at all (read when compiling). Tests lower both to 1 to exercise the twin on
small shapes.

Those runs interleaved single calls of the two ways, so each call found the
caches as the other had left them. Run instead in blocks of consecutive calls
(``timing.measure`` with blocks, as a training loop calls a step: its own
data still cached from the call before; two runs, quiet machine), the split
cost more below 2**21 values and paid only from there:

==========  ================  ==========  =============
elements    shape             run/thread  blocks of calls
==========  ================  ==========  =============
524 288     (64, 128, 64)     4 096       1.30 - 1.34
1 048 576   (64, 128, 128)    8 192       1.04 - 1.10
2 097 152   (128, 128, 128)   8 192       0.70 - 0.72
4 194 304   (64, 256, 256)    32 768      0.60 - 0.67
8 388 608   (64, 256, 512)    65 536      0.57 - 0.68
1 048 576   (256, 4096)       2 048       0.95 - 1.01
==========  ================  ==========  =============

A split that loses 4-34 % in a loop to win when the data comes from memory
is not a default: ``MIN_ELEMENTS = 2**21``, ``MIN_RUN = 4096``.

The split by rows
-----------------
A function with no reduction (an eval BatchNorm, an activation) is split
along its leading axis: each thread takes contiguous rows, so no run is
short (splitting (64, 128, 256) along its 128 channels instead was slower
at every shape tried). Its driver computes what no row changes (per-channel
constants and their (C, L) layouts) once. A kernel whose passes share an
array (an eval BatchNorm: ``out = x * scale``, then ``out -= shift``) can
also take its rows in blocks of ``BLOCK_BYTES``, so that the second pass
finds the block in cache instead of reading the array again from memory;
that pays on one thread too, so the serial function hands such a call to
its twin from ``MIN_BLOCKED_BYTES`` (counted as float32) even at one thread.

Measured with ``python benchmarks/bench_batchnorm.py --threshold --mode eval``
(the eval BatchNorm1d's generated function; ratios to it on one thread with
whole passes; 2 threads; interleaved medians) in six runs, two while the
machine was quiet enough for a second thread to get a core ("quiet") and
four while other helpers' benchmarks and test suites kept one or both cores
busy ("busy"):

==========  ================  ===========  ===========  ==============  ==============
elements    shape             split quiet  split busy   blocks 512 KiB  split + blocks
                                                        (one thread)    (quiet)
==========  ================  ===========  ===========  ==============  ==============
65 536      (64, 64, 16)      2.4 - 3.4    1.68 - 1.71  1.10 - 1.28     2.4 - 3.4
131 072     (128, 64, 16)     1.70 - 1.82  1.37 - 1.41  1.04 - 1.06     1.69 - 2.00
262 144     (64, 64, 64)      0.94 - 1.12  1.23 - 1.25  1.04 - 1.08     1.01 - 1.14
524 288     (64, 128, 64)     1.00 - 1.04  1.20 - 1.22  1.04 - 1.11     1.07 - 1.10
524 288     (2048, 256)       0.81 - 0.87  1.15 - 1.18  1.08 - 1.14     0.89 - 0.91
1 048 576   (64, 128, 128)    0.75 - 0.79  0.74 - 1.04  0.73 - 1.10     0.85 - 0.90
1 048 576   (512, 2048)       0.69 - 0.74  1.01 - 1.15  0.92 - 1.15     0.79 - 0.87
2 097 152   (64, 128, 256)    0.49          0.75 - 0.96  0.74 - 0.82     0.50 - 0.55
2 097 152   (8192, 256)       0.55          0.92 - 2.14  0.83 - 0.95     0.55 - 0.56
4 194 304   (64, 256, 256)    0.55 - 0.65  0.93 - 1.11  0.75 - 0.85     0.52 - 0.55
8 388 608   (64, 256, 512)    0.62 - 0.68  0.90 - 1.12  0.75 - 0.97     0.55 - 0.61
==========  ================  ===========  ===========  ==============  ==============

On a quiet machine the split paid from 2**20 values and broke even at 2**19
(on a busy one it paid only from 2**21, and not always). Blocks paid in every
one of those runs from 2**21 float32 values (8 MiB) and cost 4-15 % below,
where the data fits in cache anyway;
blocks of 256 KiB and 1 MiB did about as well as ``BLOCK_BYTES = 512 KiB``.
Rechecked on a quiet machine (``program(x)`` of the eval BatchNorm1d with and
without blocks, interleaved, two runs each), blocks on one thread cost
2-7 % at 8 MiB ((64, 128, 256): 1.06 - 1.07, (8192, 256): 1.02 - 1.05) and
paid from 16 MiB ((64, 256, 256): 0.84, (16384, 256): 0.90, (128, 256, 256):
0.85, (64, 256, 512): 0.86 - 0.91); on two threads they paid a little at
8 MiB too (0.96 - 0.97). The busy runs' gain at 8 MiB came from other
processes taking the shared cache; with the cache flushed between calls
(32 MiB written), blocks paid at 8 MiB on one thread (0.88 - 0.94) and on two
(0.90 - 0.93).

Those were interleaved single calls too. In blocks of consecutive calls (as
above; two runs, 2 threads; ratios to one thread, whole passes):

==========  ================  ==========  ==============  ==============
elements    shape             split       blocks 512 KiB  split + blocks
                                          (one thread)
==========  ================  ==========  ==============  ==============
1 048 576   (64, 128, 128)    1.35 - 1.42  1.13 - 1.25    1.54 - 1.58
2 097 152   (64, 128, 256)    1.31 - 1.42  1.02 - 1.17    1.09 - 1.48
2 097 152   (8192, 256)       1.21 - 1.26  1.03 - 1.06    1.07 - 1.16
4 194 304   (64, 256, 256)    0.98 - 1.07  0.80 - 0.81    0.84 - 0.85
8 388 608   (64, 256, 512)    0.81 - 0.87  0.84 - 0.87    0.79 - 0.81
==========  ================  ==========  ==============  ==============

With its data still in the 32 MiB cache from the call before, one thread
streams it as fast as two: the split and blocks pay only from 2**22 values
(16 MiB), on any thread count. Hence ``MIN_ROWS_ELEMENTS = 2**22`` and
``MIN_BLOCKED_BYTES = 2**24``.
"""
from __future__ import annotations

import operator
import os
import queue
import threading

import numpy as np

#: Element count of the split shape from which the parallel twin runs (measured: see above).
MIN_ELEMENTS = 1 << 21
#: Shortest contiguous run of values a thread's slice may have (measured: see above).
MIN_RUN = 4096
#: Element count from which elementwise passes split by rows run in parallel (measured: see above).
MIN_ROWS_ELEMENTS = 1 << 22
#: Bytes of a block of rows a kernel making several passes takes at a time (measured: see above).
BLOCK_BYTES = 1 << 19
#: Bytes from which a split by rows goes in blocks, on one thread too (measured: see above).
MIN_BLOCKED_BYTES = 1 << 24


def _default_threads():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Pool:
    """Persistent daemon workers taking ``(kernel, args, reply)`` from one queue."""

    def __init__(self):
        self.threads = _default_threads()
        self.forget_workers()

    def forget_workers(self):
        """No workers (a forked child has none of its parent's threads): start anew."""
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
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL.forget_workers)


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


def worth_rows(elements, rows, blocked):
    """Whether a function of elementwise passes only, over ``elements`` values in ``rows``
    rows (its leading axis), should run its twin: each thread takes contiguous rows; if
    ``blocked`` (its kernels make several passes), in blocks of rows that stay in cache
    from one pass to the next, which pays on one thread too. (Elements are counted as
    float32: the cache a block fits is a rule of thumb, not exact.)"""
    if rows < 2:
        return False
    return (_POOL.threads > 1 and elements >= MIN_ROWS_ELEMENTS) or \
        (blocked and 4 * elements >= MIN_BLOCKED_BYTES)


def bounds(size, parts):
    """``parts`` contiguous slices ``(lo, hi)`` of ``range(size)``, as equal as can be."""
    cuts = [size * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def split(kernel, size, axes, *args, block=0):
    """Run ``kernel(c0, c1, *args)`` on slices of ``range(size)``; join what they return.

    The kernel writes its large values into slices of arrays the caller
    allocated and returns its small per-channel values, which are joined
    along ``axes`` (one axis per returned value). Slice 0 runs on the
    calling thread. If any slice raises, the first error (in slice order)
    is raised once every slice has finished, so no worker still writes.
    With ``block`` (the bytes of one index of the split axis: a row) and at
    least ``MIN_BLOCKED_BYTES`` in all, each slice runs as blocks of about
    ``BLOCK_BYTES``, one after the other.
    """
    if block and size * block >= MIN_BLOCKED_BYTES:
        kernel = _in_blocks(kernel, max(1, BLOCK_BYTES // block), axes)
    # two indices or more per slice: NumPy sums one row of a (1, n) slice by another loop
    # than the rows of a (2, n) one (other bits), while 2, 3 or more rows sum alike
    slices = bounds(size, min(_POOL.threads, max(1, size // 2))) if size > 0 else [(0, 0)]
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
    return results[0] if len(results) == 1 else _join(results, axes)


def _join(results, axes):
    return tuple(np.concatenate([r[k] for r in results], axis=axis) for k, axis in enumerate(axes))


def _in_blocks(kernel, rows, axes):
    """``kernel`` run on consecutive blocks of ``rows`` indices of its slice, joined."""
    def blocks(lo, hi, *args):
        if hi - lo <= rows:
            return kernel(lo, hi, *args)
        return _join([kernel(a, min(a + rows, hi), *args) for a in range(lo, hi, rows)], axes)
    blocks.__name__ = kernel.__name__
    return blocks


#: What a Program puts into the namespace of its generated source (see ``_worth`` there).
RUNTIME = {"_split": split, "_worth": worth, "_worth_rows": worth_rows}
