"""Attribute schemas: each op's attributes, normalised to plain built-in values.

Attributes are printed into generated source, so an op record says what each of
its attributes may hold, and a node is made only from the normalised values:
exact ``int``, ``bool``, ``float`` and ``str`` (never a subclass, whose ``repr``
or ``str`` could be anything), tuples of them, and dtype names from the fixed set.
:meth:`lucid.ops.Op.normalize` applies a record's schema when a node is created;
:meth:`lucid.ops.Op.check_node` (what ``Graph.lint`` calls) re-checks a finished node,
so a hand-built graph cannot carry code either.
"""
from __future__ import annotations

import math
import numbers
import operator

from .op import DTYPES, FLOATS, plain  # noqa: F401  (plain: re-exported)

_LIMITS = {"int64": 2**63, "float32": 3.4028234663852886e38, "float64": math.inf}


def integer(what, value):
    """``value`` as an exact ``int``: a real integer (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer, got {type(value).__name__}")
    return operator.index(value)  # always an exact int (Python 3.10+)


def ints(what, values):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{what} must be a sequence of integers, got {type(values).__name__}")
    return tuple(integer(what, v) for v in values)


def flag(what, value):
    if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
        raise ValueError(f"{what} must be a bool, got {value!r}")
    return value is True or value == 1


def identifier(what, value):
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    value = str.__str__(value)  # an exact str, whatever a subclass's __str__ says
    if not value.isidentifier() or not value.isascii():
        raise ValueError(f"{what} must be an ASCII identifier, got {value!r}")
    return value


def dims(what, values):
    """A shape attribute: non-negative ints and names of sizes."""
    if not isinstance(values, (tuple, list)):
        raise ValueError(f"{what}: a shape must be a tuple, got {type(values).__name__}")
    out = []
    for d in values:
        try:
            d = identifier(what, d) if isinstance(d, str) else integer(what, d)
        except ValueError:
            d = -1
        if type(d) is int and d < 0:
            raise ValueError(f"{what}: a dim must be a non-negative int or the name of a size, "
                             f"got {values[len(out)]!r}")
        out.append(d)
    return tuple(out)


def dtype_name(value, what="dtype"):
    """The name in :data:`DTYPES` that ``value`` (a name, NumPy dtype or type) denotes.

    The returned string is lucid's own constant, never the caller's object.
    """
    name = value if isinstance(value, str) else getattr(value, "__name__", None) \
        if isinstance(value, type) else getattr(value, "name", None)
    for d in DTYPES:
        if isinstance(name, str) and str.__str__(name) == d:
            return d
    raise ValueError(f"{what} must be one of {', '.join(DTYPES)}, got {value!r}")


def number(value, dtype):
    """A Python or NumPy real number (a Fraction too) as the checked :func:`constant` it makes."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"a constant must be a real number, got {type(value).__name__}")
    return constant(operator.index(value) if isinstance(value, numbers.Integral)
                    else float(value), dtype)


def constant(value, dtype):
    """A scalar constant: an exact int or float, representable in ``dtype``.

    ``inf``, ``-inf`` and ``nan`` are floats like any other, as in torch
    (:mod:`.nonfinite` says how they are computed); they fit a float dtype only.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)):
        raise ValueError(f"a constant must be a Python int or float, got "
                         f"{type(value).__name__} {value!r}")
    value = operator.index(value) if isinstance(value, numbers.Integral) else float(value)
    finite = type(value) is int or math.isfinite(value)
    if not finite and dtype not in FLOATS:
        raise ValueError(f"constant {value!r} is out of range for {dtype}")
    if finite and abs(value) >= _LIMITS.get(dtype, 0) and \
            not (dtype == "int64" and value == -2**63):
        text = repr(value) if len(repr(value)) < 40 else f"{repr(value)[:12]}... " \
            f"({len(repr(value))} digits)"
        raise ValueError(f"constant {text} is out of range for {dtype}")
    if dtype == "int64" and type(value) is not int:
        raise ValueError(f"an int64 constant must be an integer, got {value!r}")
    return value



def schema(op, **fields):
    """An op's attribute schema: exactly these keys, each normalised by its function.

    ``schema("sum", axes=ints, keepdims=flag)`` gives the ``attributes`` of an
    :class:`lucid.ops.Op`: ``(attrs, dtype) -> attrs``.
    """
    def normalize(attrs, dtype=None):
        _keys(op, attrs, fields)
        return {key: fn(f"{op} {key}", attrs[key]) for key, fn in fields.items()}
    return normalize


def constant_schema(attrs, dtype=None):
    """A constant's one attribute, ``value``, checked against the node's dtype."""
    _keys("constant", attrs, ("value",))
    return {"value": constant(attrs["value"], dtype)}


def dtype(what, v):
    return dtype_name(v, what)


def _keys(op, attrs, names):
    if set(attrs) != set(names):
        raise ValueError(f"{op} takes attributes {sorted(names)}, got {sorted(map(repr, attrs))}")


def positive(what, value):
    """A count that must be at least 1 (a kernel size, a stride, a dilation)."""
    value = integer(what, value)
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value}")
    return value


def paddings(what, values):
    """Padding before and after an axis: two non-negative ints."""
    values = ints(what, values)
    if len(values) != 2 or min(values) < 0:
        raise ValueError(f"{what} must be two non-negative integers, got {values!r}")
    return values
