"""Programs: a graph compiled to Python functions over NumPy, ready to call.

A program holds the graph it was compiled from, the generated ``source`` and
the functions built from it: ``step`` (the whole graph), and for graphs with
a backward pass ``forward`` (everything the upstream gradients do not
reach, plus the residuals the backward needs) and ``backward``.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import weakref

import numpy as np

from ..frontend.trace import RandomKey
from ..graph import OutKind, Role
from ..ops import REGISTRY
from ..ops.reference import HELPERS
from ..runtime import bind_sizes
from . import parallel
from .cache import filename_for
from .generate import donors_of, generate
from .memory import peak_bytes
from .plan import Plan

_NAMESPACE = {"np": np, **HELPERS}  # helpers for what NumPy lacks (erf)
STATE_LOCK = threading.RLock()


class Program:
    """A compiled graph.

    Parameters
    ----------
    graph : Graph
        The graph to compile (forward, and optionally backward and updates).
        It is not changed: the program keeps its own copy, whose ``meta``
        records the fused kernel of each node. Placeholders of role ``grad``
        hold upstream gradients; they split the program into ``forward`` and
        ``backward`` functions.
    bindings : dict
        Placeholder name -> Tensor whose current ``.data`` feeds it by default,
        or :class:`~lucid.frontend.trace.RandomKey` whose ``draw()`` feeds it a
        fresh key at every call.
    updates : dict
        Output key -> Tensor that takes the output's value after a call.
    donate : dict
        Output key -> placeholder name: ``lucid.compile``'s ``donate``.
    """

    def __init__(self, graph, bindings=None, updates=None, name="program", passes=(), donate=None):
        graph.lint(REGISTRY)  # names, dtypes and attributes reach the source: check them first
        self.graph = graph = graph.copy()
        self.seeds = [p for p in graph.inputs if graph.node(p).role is Role.GRAD]
        self.bindings = dict(bindings or {})
        self.updates = dict(updates or {})
        self.name = name
        self.passes = passes  # what each graph pass did: lucid.transforms.Record, one per pass
        self.result_keys = [k for k, o in graph.outputs.items() if o.kind is OutKind.RESULT]
        self.result_kind = "single" if self.result_keys == ["out"] else "dict"
        self.dtype_of = {k: graph.node(o.node).dtype for k, o in graph.outputs.items()}
        self.plan = Plan(graph, self.seeds)
        donors = donors_of(graph, self.plan, self.seeds, donate, self.bindings)
        self.source, layout = generate(self.plan, graph, self.seeds, donors)
        self.donated = sorted(self.plan.donated)  #: output keys computed into their donated input
        self._outputs, fwd_out, residuals, self._bwd_inputs, self._bwd_outputs = layout
        self.residuals = residuals or []
        self._fwd_outputs = fwd_out + self.residuals if fwd_out is not None else None
        self.results = Results()
        #: what checks, before a call, that the modules still hold the tensors bound here
        #: (set by lucid.compile: :class:`lucid.compiler.Holders`); None: nothing to check
        self.holders = None
        self._fns, self._scratch, self._constants = _build(self.source, name, self.results)
        # programs that update state (running statistics) serialise their calls: several
        # programs (2D and 3D input, train step and Tensor face) may share one module's buffers
        self.lock = STATE_LOCK if self.updates else contextlib.nullcontext()
        users = self.user_inputs()
        self._n_user = len(users)
        self._slots = [self.bindings.get(p, users.index(p) if p in users else None)
                       for p in graph.inputs]
        self._out_index = [(k, self._outputs.index(o.node)) for k, o in graph.outputs.items()]
        seen = set()
        self._shared = []  # keys naming a node an earlier key names: they get a copy
        for k, o in graph.outputs.items():
            (self._shared.append(k) if o.node in seen else seen.add(o.node))
        self.step_fn = self._fns["step"]
        self.check_fn = self._fns["check"]
        self.check_forward_fn = self._fns.get("check_forward")
        self.forward_fn = self._fns.get("forward")
        self.backward_fn = self._fns.get("backward")
        for item in self.plan.items:  # the program's own copy of the graph, never the caller's
            if len(item.nodes) > 1:
                for n in item.nodes:
                    graph.meta.setdefault(n, {})["kernel"] = str(item.symbol)

    # -- calling ------------------------------------------------------------------------
    def user_inputs(self):
        """Placeholders a caller supplies positionally: inputs without a binding."""
        return [p for p in self.graph.inputs if p not in self.bindings]

    def feeds(self, args, kwargs):
        names = self.user_inputs()
        if len(args) > len(names):
            raise TypeError(f"{self.name} takes {len(names)} positional inputs "
                            f"({', '.join(names)}), got {len(args)}")
        if self.holders is not None:
            self.holders.check(self.name)
        feeds = {p: bound_value(t) for p, t in self.bindings.items()}
        feeds.update(zip(names, args))
        for key, value in kwargs.items():
            node = self._by_key(key)
            feeds[node] = value
        return {k: (v if isinstance(v, np.ndarray) else np.asarray(v)) for k, v in feeds.items()}

    def _by_key(self, key):
        for p in self.graph.inputs:
            if key == p or key == self.graph.node(p).key:
                return p
        raise TypeError(f"{self.name} has no input named {key!r}")

    def run(self, feeds, checked=False):
        """Run the whole program on ``{placeholder: array}``; return ``{output key: array}``.

        Pure: nothing bound to the program changes. Inputs are checked
        against the placeholders unless the caller already did (``checked``).
        """
        try:
            args = [feeds[p] for p in self.graph.inputs]
        except KeyError:
            bind_sizes(self.graph, feeds)  # raises, naming the missing input
        if not checked and not self.check_fn(*args):
            bind_sizes(self.graph, feeds)  # names what is wrong (or finds it acceptable)
        values = dict(zip(self._outputs, self.step_fn(*args)))
        result = {key: values[o.node] for key, o in self.graph.outputs.items()}
        for key in self._shared:
            result[key] = np.array(result[key], copy=True)
        return result

    def __call__(self, *args, **kwargs):
        """Run on arrays (positional: :meth:`user_inputs`), then commit state updates.

        Returns ``{output key: array}``. Bound tensors (parameters, buffers)
        feed the inputs not given; updated buffers are written only after the
        whole call succeeded.
        """
        updates = self.updates
        if updates:  # read state, run, write state: one call at a time
            self.lock.acquire()
        try:
            if kwargs or len(args) != self._n_user:
                result = self.run(self.feeds(args, kwargs))
            else:  # the common case, positions worked out once in __init__
                # (the other path checks the holders in feeds)
                if self.holders is not None:
                    self.holders.check(self.name)
                full = [args[s] if s.__class__ is int else
                        s.data if s.__class__ is not RandomKey else s.draw() for s in self._slots]
                if not self.check_fn(*full):  # lists or scalars given? else name the problem
                    full = [a if a.__class__ is np.ndarray else np.asarray(a) for a in full]
                    if not self.check_fn(*full):
                        bind_sizes(self.graph, dict(zip(self.graph.inputs, full)))
                outs = self.step_fn(*full)
                result = {key: outs[i] for key, i in self._out_index}
                for key in self._shared:
                    result[key] = np.array(result[key], copy=True)
            if updates:
                self.commit(result)
        finally:
            if updates:
                self.lock.release()
        return result

    def commit(self, result):
        for key, tensor in self.updates.items():
            value = result[key]  # 0-d results come back as NumPy scalars
            tensor.data = value if value.__class__ is np.ndarray else np.asarray(value)

    def run_forward(self, feeds):
        """Forward part only: returns ``({output key: array}, residuals)``."""
        values = self.forward_fn(*[feeds[p] for p in self.graph.inputs if p not in self.seeds])
        values = dict(zip(self._fwd_outputs, values))
        result = {key: values[o.node] for key, o in self.graph.outputs.items() if o.node in values}
        saved = {r: values[r] for r in self.residuals}
        return result, saved

    def run_backward(self, saved, seeds):
        """Backward part: ``saved`` from :meth:`run_forward`, ``seeds`` the upstream gradients."""
        args = [seeds[p] if p in seeds else saved[p] for p in self._bwd_inputs]
        values = dict(zip(self._bwd_outputs, self.backward_fn(*args)))
        return {key: values[o.node] for key, o in self.graph.outputs.items() if o.node in values}

    def provenance(self):
        """Which statement computes each graph node, and which pass made the node.

        One row per planned statement (in ``step``'s order): its name in the
        generated source, whether it runs in the backward half, the nodes it
        computes and, for each, the pass that created it (``trace`` for the
        nodes traced from the user's definition). Recorded while compiling
        (``plan.provenance``, ``graph.meta``), not searched for.

        Examples
        --------
        >>> import lucid
        >>> x = lucid.placeholder((None, 3), name="x")
        >>> print(lucid.compile(lambda v: (v * v).sum(), x).provenance())  # doctest: +SKIP
        statement  half      nodes (pass)
        _out_n1    forward   n1 (trace), n0 (trace)
        _out_n6    backward  n6 (autodiff), n4 (autodiff), ...
        """
        rows = [("statement", "half", "nodes (pass)")]
        for it in self.plan.items:
            nodes = self.plan.provenance.nodes.get(it.symbol) or []
            part = "" if nodes else "part of: "
            nodes = nodes or self.plan.provenance.part_of.get(it.symbol, [])
            made = ", ".join(f"{n} ({self.graph.meta.get(n, {}).get('pass', 'trace')})"
                             for n in nodes)
            if not made and it.kind == "output":
                part, made = "", f"returns {it.expr}"
            rows.append((str(it.symbol), "backward" if it.backward else "forward", part + made))
        width = [max(len(r[i]) for r in rows) for i in range(2)]
        return "\n".join(f"{a.ljust(width[0])}  {b.ljust(width[1])}  {c}".rstrip()
                         for a, b, c in rows)

    def memory(self):
        """Scratch memory the calling thread holds between calls, against the plan's peak.

        Returns ``{"bytes_held", "peak_live_bytes", "buffers", "results_kept",
        "constants_held"}``: the bytes of the scratch arrays this thread's calls have left
        allocated, the largest total of scratch values alive at one statement of one
        function (slots are assigned by live range, so the two are close), the number of
        scratch arrays, the bytes of the returned arrays kept to be written again once
        nobody holds them (:class:`Results`; the caller may still hold some), and the
        bytes of the read-only vectors of ones (sums as matrix products) and zeros
        (``max(x, 0)``) kept for all threads. NumPy's own temporaries are not counted.
        All zero before the first call.

        Examples
        --------
        >>> import numpy as np, lucid
        >>> x = lucid.placeholder((None, 300), name="x")
        >>> program = lucid.compile(lambda v: ((v - v.mean(0)) ** 2).sum(), x, mode="eval")
        >>> _ = program(np.ones((4, 300), np.float32))
        >>> program.memory()
        {'bytes_held': 4800, 'peak_live_bytes': 4800, 'buffers': 1, 'results_kept': 0, \
'constants_held': 32}

        (The constants are four float64 ones: the mean sums the rows as a matrix product.)
        """
        nbytes = {slot: a.nbytes for slot, a in self._scratch.__dict__.items()}
        peak = max([peak_bytes(ranges, nbytes) for ranges in self.plan.memory.values()],
                   default=0)
        # list() copies each cache at once (GIL): another thread may be adding a dtype's vector
        constants = [a for cache in self._constants for a in list(cache.values())]
        return {"bytes_held": sum(nbytes.values()), "peak_live_bytes": peak,
                "buffers": len(nbytes), "results_kept": self.results.kept_bytes(),
                "constants_held": sum(a.nbytes for a in constants)}

    def save(self, path):
        """Write the generated source to ``path`` (a new file is private to you: mode 0600).

        The source is otherwise kept in memory only (see :mod:`lucid.codegen.cache`).
        """
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(self.source)

    def __repr__(self):
        return f"<lucid Program {self.name}: {len(self.graph)} nodes, inputs {self.user_inputs()}>"


def bound_value(bound):
    """What a binding feeds at this call: a Tensor's current data, a fresh random key."""
    return bound.draw() if bound.__class__ is RandomKey else bound.data


def _refs(ring, i):
    return sys.getrefcount(ring[i])


# An array only its ring holds reads as _ALONE in _refs: the ring's reference and the one
# passed to getrefcount (2 on CPython 3.11). Measured here with the same function, not
# assumed: the count may differ between interpreter versions. Any other holder adds at
# least one: a dict or Tensor the caller kept, a view or slice (its .base is the array),
# a memoryview or anything built on the buffer protocol.
_ALONE = _refs([np.empty(0)], 0)


_ITEMSIZE = {}  # dtype (as generated code names it, np.float32) -> bytes per value


class Results:
    """The arrays a program's calls returned, offered back once nobody holds them.

    A generated function asks ``take(slot, shape, dtype)`` for the array a large
    returned value goes into. It gets one that an earlier call of this thread
    returned for the same slot if no one else holds a reference to it (nor a weak
    one), so nobody can observe what is written into it; else a new one. Up to
    :attr:`KEEP` arrays are kept per slot: the one the caller holds (a parameter's
    current value) and the one before it, which a training step's swap has let go
    of. That is double buffering: the next values go into arrays nobody can see
    until they are committed, and pages once faulted in stay mapped.

    Examples
    --------
    >>> import numpy as np
    >>> results = Results()
    >>> first = results.take("step.y", (512, 1024), np.float32)  # 2 MiB
    >>> results.take("step.y", (512, 1024), np.float32) is first  # `first` holds it: new
    False
    >>> address = id(first)
    >>> del first  # now only the ring refers to it
    >>> id(results.take("step.y", (512, 1024), np.float32)) == address
    True
    >>> results.take("step.z", (2, 3), np.float32).nbytes < Results.MIN_BYTES  # always new
    True
    """

    KEEP = 2

    #: Whether keeping pays, measured (interleaved medians, quiet machine): glibc serves a
    #: new array from memory just freed, still in cache, where a kept array has gone cold
    #: since its last call and writing it first reads it in. Keeping every size made
    #: BatchNorm1d at (128, 64, 16), 512 KiB of results a call, 4-60 % slower (the more
    #: other work between calls, the worse); but when a call returns a lot, glibc maps it
    #: afresh and faults it in: keeping only arrays from 1 MiB left the k-block step of
    #: bench_mlp.py (k >= 4: its 256 KiB weight gradients, 1.25 MiB and more a call) 12-13 %
    #: slower, and from 4 MiB the wide training step took 1536 page faults a step. So a
    #: generated function (``step``, ``forward``, ``backward``) keeps its results when they
    #: come to more than MIN_VOLUME a call, each array of MIN_BYTES or more; the rest are
    #: new. Measured side by side (two runs): the k-block step at k = 4 returns 1.5 MiB,
    #: 3.6-3.8 ms kept against 4.0-4.2 new; BatchNorm1d's train forward at (128, 64, 16)
    #: returns 1 MiB (output and residual), forward + backward 0.35-0.38 ms new against
    #: 0.40-0.45 kept, its eval forward (512 KiB) 88-99 us new against 112-136 kept. The
    #: line lies between 1 and 1.5 MiB here: MIN_VOLUME = 1.25 MiB.
    MIN_BYTES = 1 << 16
    MIN_VOLUME = 5 << 18

    def __init__(self):
        self._local = threading.local()  # per thread: slot -> the arrays it returned lately
        self._sizes = {}  # slot -> bytes of its latest array
        self._volume = {}  # function (the slot prefix, "step") -> their sum, about a call (threads
        # share both: a lost update between threads only moves the estimate)
        # slot -> (shape, dtype) for which the answer was a new array, while no slot's size
        # changed since: the answer depends only on the sizes, so it stands (a race between
        # threads can at worst leave one stale entry, and a new array is never wrong)
        self._new = {}

    def take(self, slot, shape, dtype):
        if self._new.get(slot) == (shape, dtype):  # every call at a fixed size, once known
            return np.empty(shape, dtype)
        itemsize = _ITEMSIZE.get(dtype)
        if itemsize is None:
            itemsize = _ITEMSIZE[dtype] = np.dtype(dtype).itemsize
        nbytes = math.prod(shape) * itemsize
        fn = slot[:slot.find(".")]
        before = self._sizes.get(slot, 0)
        if before != nbytes:
            self._new.clear()  # the volume moved: answers given at the old sizes may not hold
            self._sizes[slot] = nbytes
            self._volume[fn] = self._volume.get(fn, 0) + nbytes - before
        if nbytes < self.MIN_BYTES or self._volume.get(fn, 0) <= self.MIN_VOLUME:
            self._new[slot] = (shape, dtype)
            return np.empty(shape, dtype)
        rings = self._local.__dict__
        ring = rings.get(slot)
        if ring is None:
            ring = rings[slot] = []
        spare = 0  # what to stop keeping for a new array: an unheld one, else the oldest
        for i in range(len(ring)):
            if _refs(ring, i) == _ALONE and not weakref.getweakrefcount(ring[i]):
                array = ring[i]
                if array.shape == shape and array.dtype == dtype:
                    return array
                spare = i
        array = np.empty(shape, dtype)
        if len(ring) == self.KEEP:
            del ring[spare]
        ring.append(array)
        return array

    def kept_bytes(self):
        """Bytes of the arrays this thread keeps to offer back (the caller may hold some)."""
        return sum(a.nbytes for ring in self._local.__dict__.values() for a in ring)


def _build(source, name, results):
    filename = filename_for(source, name)  # in memory unless LUCID_CACHE_DIR: see .cache
    namespace = dict(_NAMESPACE)
    exec(compile(source, filename, "exec"), namespace)  # our own generated source
    namespace.update(parallel.RUNTIME)  # the thread pool for the parallel twins
    namespace["_result"] = results.take  # returned arrays offered back when unheld
    return {k: v for k, v in namespace.items()
            if k in ("step", "forward", "backward", "check", "check_forward")}, \
        namespace["_local"], \
        (namespace["_ones_cache"], namespace["_zeros_cache"])  # for memory()
