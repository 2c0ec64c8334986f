"""Module and Parameter: PyTorch's container conventions over lucid graphs.

Calling a module on symbolic values records its ``forward`` into a graph;
calling it on Tensors compiles that graph once per signature and runs it
(see :mod:`lucid.eager`).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .. import eager
from ..compiler import new_tracer
from ..frontend import Var, trace
from ..frontend.trace import current
from ..eager import Tensor, as_dtype, call_module, zero_grads

_INTERNAL = ("_parameters", "_buffers", "_modules", "_programs", "_version", "training")
_TABLES = ("_parameters", "_buffers", "_modules")


_REQUIRES_GRAD = Tensor.requires_grad  # the slot Parameter's property stores into


class Parameter(Tensor):
    """A Tensor that a Module owns and trains (``requires_grad`` defaults to True)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def _set_requires_grad(self, value):
        # which gradients a program computes depends on it; the owning modules are unknown
        # here, so programs re-check their fingerprints (which hold the flags) on next call
        _REQUIRES_GRAD.__set__(self, bool(value))
        eager.changed()

    # read straight from Tensor's slot: a C call, no Python frame (a backward reads it)
    requires_grad = property(_REQUIRES_GRAD.__get__, _set_requires_grad,
                             doc="Whether ``backward`` fills ``.grad`` (a change recompiles).")

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of lucid modules: subclasses assign children and parameters, define ``forward``.

    Examples
    --------
    >>> import lucid.nn as nn
    >>> from lucid import Tensor
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.bn = nn.BatchNorm1d(2)
    ...     def forward(self, x):
    ...         return self.bn(x)
    >>> [k for k, _ in Net().named_parameters()]
    ['bn.weight', 'bn.bias']
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_programs", {})
        object.__setattr__(self, "_version", eager.changed())
        object.__setattr__(self, "training", True)

    # -- attributes ---------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call super().__init__() before assigning attributes")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, (Parameter, Module)) or name in params or name in buffers:
            _check_name(self, name, value)
        if isinstance(value, Parameter) or (name in params and value is None):
            _drop(name, buffers, modules, self.__dict__)
            params[name] = value
        elif name in params:
            raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                            "(a Parameter or None expected)")
        elif isinstance(value, Module):
            _drop(name, buffers, self.__dict__)
            modules[name] = value
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"buffer {name!r} must be a Tensor or None")
            buffers[name] = value
        else:
            _drop(name, modules)
            object.__setattr__(self, name, value)
        if name not in _INTERNAL:
            _touch(self)  # programs tracing this module may hold the old value

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(table)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_buffer(self, name, tensor):
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"buffer {name!r} must be a Tensor or None")
        name = _check_name(self, name, tensor)  # before anything changes
        _not_held(self, name, "_buffers")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        _touch(self)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter {name!r} must be a Parameter or None")
        name = _check_name(self, name, param)  # before anything changes
        _not_held(self, name, "_parameters")
        self.__dict__.pop(name, None)
        self._parameters[name] = param
        _touch(self)

    # -- traversal -----------------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return list(self._modules.values())

    def _named(self, table, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for path, module in modules:
            for name, t in getattr(module, table).items():
                if t is not None:
                    key = ".".join(p for p in (prefix, path, name) if p)
                    if key in seen:  # registration refuses this; a later edit deeper down can't be
                        raise ValueError(f"two {table[1:-1]} have the path {key!r}: rename one")
                    seen.add(key)
                    yield key, t

    def _paths(self, skip=None):
        """Every dotted path in this module's tree (entries, and their contents), but ``skip``."""
        for table in _TABLES:
            for name, value in getattr(self, table).items():
                if name != skip:
                    yield name
                    if isinstance(value, Module):
                        yield from (f"{name}.{p}" for p in value._paths())

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``[(dotted path, parameter)]``, as torch's: paths start with ``prefix``; without
        ``recurse`` only this module's own; a parameter shared by two modules (tied weights)
        comes once, under its first path, unless ``remove_duplicate=False``."""
        return _distinct(self._named("_parameters", prefix, recurse), remove_duplicate)

    def parameters(self, recurse=True):
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return _distinct(self._named("_buffers", prefix, recurse), remove_duplicate)

    def buffers(self, recurse=True):
        return [b for _, b in self.named_buffers(recurse=recurse)]

    # -- modes and state ----------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Drop every parameter's gradient (``None``), or with ``set_to_none=False`` fill it
        with zeros in place, as torch's."""
        zero_grads(self.parameters(), set_to_none)

    def _state(self):
        state = self.named_parameters(remove_duplicate=False) + \
            self.named_buffers(remove_duplicate=False)  # tied: every path
        if len({key for key, _ in state}) != len(state):
            raise ValueError("a parameter and a buffer have the same path: rename one")
        return OrderedDict(state)

    def state_dict(self):
        """Parameters and buffers by dotted name, as copies."""
        return OrderedDict((key, t.data.copy()) for key, t in self._state().items())

    def load_state_dict(self, state_dict):
        """Copy values in; all or nothing: every entry is checked before any is written."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict takes a mapping of names to arrays, "
                            f"got {type(state_dict).__name__}")
        own = self._state()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        staged = {}
        for key, t in own.items():
            value = state_dict[key]
            try:
                value = np.asarray(value.data if isinstance(value, Tensor) else value)
            except ValueError:
                raise ValueError(f"load_state_dict: entry {key!r} is not a rectangular "
                                 "array") from None
            if value.shape != t.shape:
                raise ValueError(f"load_state_dict: entry {key!r} has shape {value.shape}, "
                                 f"the module's has {t.shape}")
            if value.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: entry {key!r} is not numeric ({value.dtype})")
            if t.dtype.kind in "iu" and value.dtype.kind == "f":  # a count: cast exactly or not at all
                info = np.iinfo(t.dtype)
                if not (np.isfinite(value).all() and (value == np.round(value)).all()
                        and (value >= info.min).all() and (value <= info.max).all()):
                    raise ValueError(f"load_state_dict: entry {key!r} must hold whole numbers "
                                     f"for its {t.dtype} buffer, got {value.tolist()!r}")
            staged[key] = value.astype(t.dtype, copy=True)
        for key, value in staged.items():
            own[key].data = value

    def to(self, dtype):
        """Convert floating parameters and buffers to ``dtype`` (``"float32"``/``"float64"``)."""
        dtype = as_dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Module.to takes a floating dtype, got {dtype}")
        for t in self.parameters() + self.buffers():
            if t.data.dtype.kind == "f":
                t.data = t.data.astype(dtype)
                t.grad = None if t.grad is None else t.grad.astype(dtype)
        # programs' fingerprints hold the dtypes they read, even of a parameter shared with a
        # module outside this one: have them all re-check
        eager.changed()
        return self

    def float(self):
        return self.to("float32")

    def double(self):
        return self.to("float64")

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, *args):
        if current() is None:  # not tracing: Tensors in, the module's compiled program runs
            for a in args:
                if type(a) is not Tensor and isinstance(a, Var):  # a Tensor is no Var
                    return self._trace_call(args)
            return call_module(self, args)  # compiling traces: _trace_call checks forward
        return self._trace_call(args)

    def _trace_call(self, args):
        if not hasattr(self, "forward"):
            raise TypeError(f"{type(self).__name__} defines no forward()")
        t = current()
        if t is None:  # a direct call on placeholders: record with this module as root
            tracer = new_tracer(self, "train" if self.training else "eval")
            try:
                with trace.tracing(tracer):
                    return self._trace_call(args)
            finally:
                tracer.restore_modes()
        if id(self) not in t.module_paths:  # a module called inside a traced function
            t.adopt_free(self)
        eager.traced(self)
        with trace.scope(t.module_paths[id(self)]):
            return self.forward(*args)

    # -- copies ----------------------------------------------------------------------------
    def __getstate__(self):
        """Copies (``copy.deepcopy``, ``pickle``) leave compiled programs behind: a copy
        compiles its own on first call."""
        state = dict(self.__dict__)
        state["_programs"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        object.__setattr__(self, "_version", eager.changed())

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def _touch(module):
    """Give ``module`` a new version: the programs that traced it re-check before running."""
    object.__setattr__(module, "_version", eager.changed())


def _check_name(module, name, value):
    """``name`` for a parameter, buffer or child ``value``; ValueError if it would collide.

    Refused: names that shadow the module's own machinery (``_parameters``,
    ``training``, methods), and names whose dotted paths would equal another
    entry's (a parameter ``"a.b"`` beside a child ``a`` holding ``b``).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a parameter, buffer or module name must be a non-empty string, "
                         f"got {name!r}")
    name = str.__str__(name)
    if name in _INTERNAL or hasattr(type(module), name):
        raise ValueError(f"{name!r} would shadow {type(module).__name__}'s own attribute; "
                         "choose another name")
    new = {name} | ({f"{name}.{p}" for p in value._paths()} if isinstance(value, Module) else set())
    clash = sorted(new & set(module._paths(skip=name)))
    if clash:
        raise ValueError(f"registering {name!r} would make path {clash[0]!r} name two "
                         "entries of the module; choose another name")
    return name


def _not_held(module, name, table):
    """Refuse to register ``name`` in ``table`` while another table holds it (as PyTorch does)."""
    for other in _TABLES:
        if other != table and name in getattr(module, other):
            raise ValueError(f"{name!r} is already a {other[1:-1].rstrip('s')} of "
                             f"{type(module).__name__}; delete it first")


def _drop(name, *tables):
    for table in tables:
        table.pop(name, None)


def _distinct(named, remove_duplicate):
    """``named`` as a list, each tensor once (its first path) if ``remove_duplicate``."""
    if not remove_duplicate:
        return list(named)
    out, seen = [], set()
    for key, t in named:
        if id(t) not in seen:
            seen.add(id(t))
            out.append((key, t))
    return out
