"""Recording: the context a definition runs in, and Vars -> Graph.

While a :class:`Tracer` is active, Tensors that the definition touches
(parameters, buffers, captured constants) are lifted into placeholders, module
calls push a scope, and modules report state updates (running statistics).
"""
from __future__ import annotations

import re

from ..graph import Check, Graph, OutKind, Phase, Role
from ..ops import REGISTRY
from .context import current, lift, scope, scope_path, tracing  # noqa: F401  (re-exported)
from .var import Var, cast


class Tracer:
    """What one definition records beside its Vars."""

    def __init__(self, names=None, mode="train"):
        self.names = dict(names or {})  # id(tensor) -> (dotted key, role)
        self.mode = mode
        self.lifted = {}  # id(tensor) -> (Var, tensor)
        self.updates = {}  # dotted key -> (Var, tensor)
        self.checks = []  # (Var of subject, axes, minimum, message)
        self.scopes = []
        self.module_paths = {}  # id(module) -> dotted path, for scopes
        self.modules = {}  # dotted path -> short description, for pictures (graph.modules)
        self.saved_modes = []  # (module, training flag) to put back after tracing

    def adopt(self, module, prefix=""):
        """Know ``module``'s parameters, buffers and submodules under ``prefix``, and record
        it in this tracer's mode (undone by :meth:`restore_modes`)."""
        dot = f"{prefix}." if prefix else ""
        for key, p in module.named_parameters():
            self.names.setdefault(id(p), (dot + key, Role.PARAM))
        for key, buf in module.named_buffers():
            self.names.setdefault(id(buf), (dot + key, Role.BUFFER))
        for path, m in module.named_modules():
            self.module_paths.setdefault(id(m), f"{dot}{path}" if path else prefix)
            self.modules.setdefault(self.module_paths[id(m)], describe(m))
            self.saved_modes.append((m, m.training))
            if self.mode is not None:  # None: each module as its own flag says
                object.__setattr__(m, "training", self.mode == "train")

    def adopt_free(self, module):
        """Adopt a module called inside a traced function, under a fresh name."""
        base = type(module).__name__.lower()
        taken = set(self.module_paths.values())
        name = next(f"{base}{i or ''}" for i in range(len(taken) + 1) if f"{base}{i or ''}" not in taken)
        self.adopt(module, name)

    def restore_modes(self):
        for m, flag in reversed(self.saved_modes):
            object.__setattr__(m, "training", flag)
        self.saved_modes.clear()

    def lift(self, tensor):
        entry = self.lifted.get(id(tensor))
        if entry is None:
            key, role = self.names.get(id(tensor), (f"const{len(self.lifted)}", Role.CAPTURED))
            var = Var("placeholder", shape=tensor.shape, dtype=str(tensor.dtype),
                      hint=identifier_hint(key), role=role, key=key)
            entry = self.lifted[id(tensor)] = (var, tensor)
        return entry[0]


def describe(module):
    """A module's short description: ``BatchNorm1d(128)``, ``Linear(64, 128)``.

    The positional part of its ``extra_repr``; failing that, its integer settings.
    """
    parts = [p.strip() for p in module.extra_repr().split(",") if p.strip()]
    shown = [p for p in parts if "=" not in p] or \
        [v for _, _, v in (p.partition("=") for p in parts) if v.strip().isdigit()]
    return f"{type(module).__name__}({', '.join(shown)})"


def identifier_hint(key):
    """A node-name hint for a dotted key: ``0.weight`` -> ``p0_weight``."""
    hint = re.sub(r"\W", "_", key, flags=re.ASCII)
    return hint if hint[:1].isalpha() else f"p{hint}"


def record_update(tensor, value):
    """Record that state ``tensor`` takes ``value`` when the program runs."""
    t = current()
    if t is None:
        raise RuntimeError("state updates can only be recorded while tracing")
    key, _ = t.names.get(id(tensor), (None, None))
    if key is None:
        raise ValueError("only a registered buffer can be updated")
    if value.dtype != str(tensor.dtype):  # a state keeps its dtype whatever the input's
        value = cast(value, str(tensor.dtype))
    t.updates[key] = (value, tensor)


class RandomKey:
    """A program input fed a fresh int64 key at every call (a dropout mask's key).

    Bound to its placeholder as a captured tensor is, but it holds no value and
    is no state: whoever calls the program asks :meth:`draw` for the key at each
    call (never while tracing), so the program stays a pure function of its
    inputs and each call's randomness comes from the generator at call time.
    """

    shape = ()
    dtype = "int64"

    def __init__(self, draw):
        self.draw = draw  # () -> int64 scalar array


def random_key(draw):
    """The placeholder of a :class:`RandomKey` fed by ``draw``, new at every use."""
    t = current()
    if t is None:
        raise RuntimeError("a random key can only be made while tracing")
    source = RandomKey(draw)
    n = sum(entry[1].__class__ is RandomKey for entry in t.lifted.values())
    t.names[id(source)] = (f"key{n}", Role.CAPTURED)  # t.lifted keeps source alive
    return t.lift(source)


def require_size(subject, axes, minimum, message):
    """Record a run-time check: the product of ``subject``'s ``axes`` must exceed ``minimum``."""
    t = current()
    if t is not None:
        t.checks.append((subject, tuple(axes), minimum, message))


def to_graph(outputs, updates=None, checks=(), inputs=(), names=None):
    """Build a Graph from Vars: ``outputs``/``updates`` map output keys to Vars.

    ``inputs`` fixes the order of the user placeholders; lifted placeholders
    follow in the order met. Returns the graph; placeholders keep the ``role``
    and the dotted ``key`` they were lifted with. ``names``, if given, is
    filled with Var uid -> node name.
    """
    g = Graph()
    names = {} if names is None else names
    order = []
    seen = set()

    def visit(v):  # iterative post-order keeps deep graphs off the recursion limit
        stack = [(v, False)]
        while stack:
            var, done = stack.pop()
            if done:
                order.append(var)
                continue
            if var.uid in seen:
                continue
            seen.add(var.uid)
            stack.append((var, True))
            stack.extend((i, False) for i in reversed(var.inputs))

    for v in inputs:
        visit(v)
    everything = list(outputs.values()) + list((updates or {}).values())
    for v in everything:
        visit(v)
    needed = set()
    for v in [*inputs, *outputs.values()]:
        _mark(v, needed)
    keys = unique_keys([v for v in order if v.op == "placeholder"])
    for var in order:
        phase = Phase.FORWARD if var.uid in needed else Phase.UPDATE
        inputs = [names[i.uid] for i in var.inputs]
        key = keys.get(var.uid, var.key)
        names[var.uid] = g.add(var.op, inputs, var.shape, var.dtype, var.attrs,
                               name=var.hint or "n", phase=phase, scope=var.scope,
                               label=key or var.hint, rule=REGISTRY[var.op].rule(inputs),
                               role=var.role, key=key)
    for key, v in outputs.items():
        g.set_output(key, names[v.uid])
    for key, v in (updates or {}).items():
        g.set_output(key, names[v.uid], OutKind.UPDATE, of=key)
    for subject, axes, minimum, message in checks:
        dims = tuple(subject.shape[ax] for ax in axes)
        g.checks.append(Check(dims, minimum, subject.shape, message))
    return g


def unique_keys(placeholders):
    """Var uid -> key, unique: a user input whose name is taken is shown as ``x_1``, ``x_2``.

    Names are labels only (inputs are bound by identity), but keys name gradients
    (``grad:x``), so two placeholders both called ``x`` must not share one. Lifted
    tensors keep their dotted keys: state is saved and updated under them.
    """
    taken = {v.key for v in placeholders if v.role is not Role.INPUT and v.key}
    out = {}
    for v in placeholders:
        if v.role is Role.INPUT and v.key:
            key, i = v.key, 0
            while key in taken:
                i += 1
                key = f"{v.key}_{i}"
            taken.add(key)
            out[v.uid] = key
    return out


def _mark(v, seen):
    stack = [v]
    while stack:
        var = stack.pop()
        if var.uid not in seen:
            seen.add(var.uid)
            stack.extend(var.inputs)
