"""Backward over call records: what ``Tensor.backward`` runs.

A :class:`Call` is one run of a compiled program's forward part, kept for its
backward. :func:`run_backward` walks the calls a tensor depends on, newest
first, runs each program's compiled backward and commits the summed leaf
gradients only once every part has run. Nothing here differentiates by
itself: the graphs are the single source of truth.
"""
from __future__ import annotations

import heapq
import itertools
import operator
import threading
import weakref

import numpy as np

_VERSION = operator.attrgetter("_version")
_add = np.add
#: Held while gradients are added into ``.grad`` arrays: two threads' backwards through one
#: parameter each add their whole gradient, as under torch's AccumulateGrad lock.
_GRAD_LOCK = threading.Lock()
_ndarray = np.ndarray
_ORIGIN = operator.attrgetter("_origin")
#: calls and in-place writes draw their serials from one count: a write with a larger
#: serial than a call's came after it
_serials = itertools.count(1)
#: the serial of the latest in-place write anywhere (0: none yet)
LAST_WRITE = [0]
#: id of a base array -> serial of the latest in-place write into it (through any Tensor,
#: view or detached alias)
_WRITES = {}


def _root(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def note_write(array):
    """Record an in-place write into ``array``'s memory (what a backward compares)."""
    root = _root(array)
    key = id(root)
    if key not in _WRITES:
        weakref.finalize(root, _WRITES.pop, key, None)
    # the serial is drawn atomically: a write after a call always gets a larger one
    _WRITES[key] = LAST_WRITE[0] = next(_serials)


def extend_history(tensor, data, origin):
    """``tensor`` comes to stand for the result ``(data, origin)`` of an in-place op recorded
    into the graph (``b.masked_fill_(...)`` with grad). Calls that read it before keep
    differentiating into the history it had then (:func:`origin_at`), as torch's graph does."""
    past = getattr(tensor, "_past", None)
    if past is None:
        past = tensor._past = []
    past.append((tensor._version, tensor._origin))
    tensor.data, tensor._origin, tensor.requires_grad = data, origin, True
    tensor._version += 1


def origin_at(tensor, version):
    """The history ``tensor`` had at write count ``version`` (a call notes the counts of
    what it reads): the current one unless an in-place op extended it since."""
    if tensor._version != version:
        for upto, origin in getattr(tensor, "_past", ()):
            if version <= upto:
                return origin
    return tensor._origin


def written_since(arrays, serial):
    """Whether the memory under any of ``arrays`` was written after serial ``serial``."""
    return any(_WRITES.get(id(_root(a)), 0) > serial for a in arrays
               if isinstance(a, np.ndarray))


_FREED = ("Trying to backward through the graph a second time: the saved values of this "
          "call were freed by the first backward. Pass retain_graph=True to the first "
          "backward to backward through it again.")


class Call:
    """One run of a program's forward part, kept for its backward.

    It draws a serial from the count in-place writes draw from, and notes the write
    count of every tensor the run read; a backward that finds a write since, into
    what the run saved, refuses, as torch does, instead of differentiating at values
    that are gone. While nothing anywhere was written since, that check is one
    comparison.
    """

    __slots__ = ("entry", "outs", "tensors", "seq", "versions", "bound_versions")

    def __init__(self, entry, outs, tensors):
        self.entry, self.outs, self.tensors, self.seq = entry, outs, tensors, next(_serials)
        serial = LAST_WRITE[0]
        if entry.seen != serial:  # the bound tensors' versions change only with a write
            entry.bound_versions, entry.seen = [*map(_VERSION, entry.bound)], serial
        self.versions = [tensors[0]._version] if len(tensors) == 1 else \
            list(map(_VERSION, tensors))
        self.bound_versions = entry.bound_versions

    def check_saved(self, saved):
        """RuntimeError if a tensor this call read was written in place into ``saved``."""
        read = list(self.tensors) + list(self.entry.bound)
        for t, version in zip(read, self.versions + self.bound_versions):
            if t._version != version and any(
                    isinstance(a, np.ndarray) and np.may_share_memory(t.data, a) for a in saved):
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: a {t.dtype} tensor of shape {t.shape} is at "
                    f"version {t._version}; expected version {version}")

    def check_writes(self, saved):
        """RuntimeError if what this call saved was written in place after it ran."""
        if written_since(saved, self.seq):  # its own outputs too, and any alias of them
            raise RuntimeError("one of the variables needed for gradient computation has been "
                               "modified by an inplace operation (an output of this call, or "
                               "a detached alias of what it saved, was written after it ran)")
        if self.versions != list(map(_VERSION, self.tensors)) or \
                self.bound_versions != list(map(_VERSION, self.entry.bound)):
            self.check_saved(saved)

    def __lt__(self, other):
        return self.seq > other.seq  # newest first: later calls consume earlier ones

    def backward(self, upstream):
        """Run the backward part for ``{output key: gradient}``; return (tensor, its history
        when this call read it, gradient) triples, an iterator."""
        outs = self.outs
        if outs is None:
            raise RuntimeError(_FREED)
        entry = self.entry
        keys = entry.seed_keys
        if len(keys) == 1 and keys[0] in upstream:  # one output to differentiate: the common case
            seeds = [upstream[keys[0]]]
        else:
            seeds = [upstream[k] if k in upstream else self._zeros(k) for k in keys]
        saved = outs[entry.start:]  # residuals come last
        if LAST_WRITE[0] > self.seq:  # something somewhere was written in place since
            self.check_writes(saved)
        grads = entry.program.backward_fn(*seeds, *saved)
        if not set(map(id, seeds)).isdisjoint(map(id, grads)):
            # the identity's gradient is the caller's own array: hand on a copy
            grads = [g.copy() if any(g is s for s in seeds) else g for g in grads]
        targets = entry.grad_targets
        if entry.grad_inputs:  # positions of call arguments: this call's tensors, with the
            tensors, versions = self.tensors, self.versions  # history each had then
            origins = [origin_at(tensors[t], versions[t]) if t.__class__ is int else t._origin
                       for t in targets]
            targets = [tensors[t] if t.__class__ is int else t for t in targets]
        else:
            origins = map(_ORIGIN, targets)
        return zip(targets, origins, map(grads.__getitem__, entry.grad_index))

    def _zeros(self, key):
        """The gradient of an output nobody differentiated: zero."""
        i = dict(self.entry.results)[key]
        return np.zeros(np.shape(self.outs[i]), self.entry.program.dtype_of[key])


class LazyCall(Call):
    """An eval-mode forward whose gradient program is compiled on the first backward.

    The forward ran the eval program (no residuals saved); the backward runs
    the gradient program's forward again on the same arrays, then its backward.
    """

    __slots__ = ()

    def backward(self, upstream):
        if self.outs is None:
            raise RuntimeError(_FREED)
        entry = self.entry
        if entry.grad_entry is None:
            entry.grad_entry = entry.lazy()
        grad = entry.grad_entry
        if grad.params != entry.params:  # both trace the same module: the order is the same
            raise RuntimeError("the eval and gradient programs disagree on their inputs")
        args = self.outs  # for a lazy call: the arrays the eval forward ran on
        if LAST_WRITE[0] > self.seq:
            self.check_saved(args)
        call = Call(grad, grad.forward(*args), self.tensors)
        call.versions = self.versions  # the histories its tensors had when this call ran
        return call.backward(upstream)


def run_backward(root, grad, retain_graph=False):
    """Run the backward part of every call ``root`` depends on, newest first.

    Leaf gradients are summed and committed only once every part has run:
    a failure leaves every ``.grad`` untouched. Unless ``retain_graph``, the
    calls then drop what they saved (as torch frees its graph), and a second
    backward through them is a RuntimeError. The common case, one call whose
    gradients all go to leaves (a module's parameters, the user's inputs), runs
    without the walk (:func:`_one_call`), to the same effect.
    """
    origin = root._origin
    if origin is None:
        _commit_grads([(root, grad)], foreign=grad)
        return
    call, key = origin
    if _one_call(call, key, grad, retain_graph):
        return
    leaves, upstream, done, heap, pending = {}, {key: grad}, [], [], None
    while True:
        done.append(call)
        for tensor, origin, g in call.backward(upstream):
            if origin is None:
                summed = leaves.get(id(tensor))
                leaves[id(tensor)] = (tensor, g if summed is None else summed[1] + g)
                continue
            parent, out_key = origin
            if pending is None:  # the first call that another call made an input of
                pending = {}
            slot = pending.get(id(parent))
            if slot is None:
                slot = pending[id(parent)] = {}
                heapq.heappush(heap, parent)
            slot[out_key] = g if out_key not in slot else slot[out_key] + g
        if not heap:
            break
        call = heapq.heappop(heap)
        upstream = pending.pop(id(call))
    _commit_grads(leaves.values())
    if not retain_graph:
        for call in done:
            _free(call)


def _one_call(call, key, grad, retain_graph):
    """The common backward, without the walk: one call, whose gradients all go to distinct
    leaves, with nothing written in place since it ran. False, having done nothing, when
    the general walk is needed."""
    entry = call.entry
    outs = call.outs
    if call.__class__ is not Call or key != entry.direct or outs is None or \
            LAST_WRITE[0] > call.seq:
        return False
    targets = entry.fixed_targets  # the parameters, distinct
    if entry.grad_inputs:  # the arguments of this call come first
        positions = entry.input_positions
        if len(positions) == 1:  # one argument (a module's input): no list of ids
            target = call.tensors[positions[0]]
            if id(target) in entry.fixed_ids:
                return False  # one tensor is two targets: its gradients are summed
            targets = [target, *targets]
        else:
            inputs = list(map(call.tensors.__getitem__, positions))
            if not entry.fixed_ids.isdisjoint(map(id, inputs)) or \
                    len(set(map(id, inputs))) != len(inputs):
                return False  # one tensor is two targets
            targets = inputs + targets
    # a target whose gradient goes on into another call (a parameter too, after an in-place
    # op with a tensor that requires grad) needs the general walk
    for target in targets:
        if target._origin is not None:
            return False
    grads = entry.backward(grad, *outs[entry.start:])
    if not entry.grads_in_order:
        grads = map(grads.__getitem__, entry.grad_index)
    # the caller's array may come back as a gradient (an identity): foreign, so copied
    _commit_grads(zip(targets, grads), grad)
    if not retain_graph and entry.start < len(outs):  # what _free does, without the call
        call.outs = None
    return True


def _free(call):
    """Drop what ``call`` saved for its backward, as torch frees its graph's buffers: a
    second backward through it is then an error. A call that saved nothing (``x + 1``,
    ``sum``) keeps working, as torch's nodes without buffers do."""
    if call.__class__ is not Call or call.entry.start < len(call.outs):
        call.outs = None


def _commit_grads(pairs, foreign=None):
    """Apply the summed gradients ``(tensor, gradient)``, only once every backward part has
    run (a failure leaves every ``.grad`` untouched). No two tensors, and not the caller
    (``foreign``), share a ``.grad`` array. An existing ``.grad`` is added to in place, as
    torch's AccumulateGrad does (a reference to it sees the sum), when it can hold the sum."""
    with _GRAD_LOCK:
        handed = None  # ids of arrays already someone's: a second holder gets a copy
        for tensor, g in pairs:
            if not tensor.requires_grad:
                continue
            old = tensor.grad
            if old is not None:
                if old.__class__ is _ndarray and old.shape == g.shape and \
                        (old.dtype is g.dtype or old.dtype == g.dtype):
                    try:
                        _add(old, g, old)  # out= by position: the keyword costs a dict
                        continue
                    except ValueError:  # read-only
                        pass
                tensor.grad = old + g
                continue
            if handed is None:
                handed = {id(foreign)}
            if g.base is not None or id(g) in handed:
                g = g.copy()
            handed.add(id(g))
            tensor.grad = g


def zero_grads(tensors, set_to_none=True):
    """``.grad = None`` for each tensor, or with ``set_to_none=False`` its gradient zeroed in
    place (a new zero array when it cannot be written), as torch's ``zero_grad``."""
    for t in tensors:
        g = t.grad
        if g is None:
            continue
        if set_to_none:
            t.grad = None
        elif g.__class__ is np.ndarray and g.flags.writeable:
            g.fill(0)
        else:
            t.grad = np.zeros_like(g)
