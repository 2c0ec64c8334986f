"""The recording context: which tracer (if any) is active on this thread, and its scope.

Kept apart from :mod:`.var` and :mod:`.trace` so that both can read it: a Var
asks for its module scope when it is made, the tracer module builds Vars.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

_local = threading.local()


def current():
    """The innermost active tracer of this thread, or None."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextmanager
def tracing(tracer):
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(tracer)
    try:
        yield tracer
    finally:
        stack.pop()


@contextmanager
def scope(name):
    t = current()
    if t is None:
        yield
        return
    t.scopes.append(name)
    try:
        yield
    finally:
        t.scopes.pop()


def scope_path():
    """The dotted path of the innermost module being recorded ("" at the top)."""
    t = current()
    return t.scopes[-1] if t is not None and t.scopes else ""


def lift(value):
    """The Var standing for a Tensor in the current definition, or None."""
    t = current()
    if t is None or not hasattr(value, "shape") or not hasattr(value, "data"):
        return None
    return t.lift(value)
