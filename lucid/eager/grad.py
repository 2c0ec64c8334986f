"""Whether Tensor operations record for backward: ``no_grad`` and ``enable_grad``, as in torch.

The switch is per thread. Under ``no_grad`` a call on Tensors compiles and runs
its forward only, and what it returns has no history, so parameter updates
(``p -= lr * p.grad``) are plain in-place writes.
"""
from __future__ import annotations

import functools
import threading


class _State(threading.local):
    enabled = True  # a thread that never switched records: no attribute lookup fails


#: this thread's mode; ``MODE.enabled`` is what :func:`is_grad_enabled` returns (the call path
#: reads it without the call)
MODE = _State()


def is_grad_enabled():
    """Whether operations on Tensors are being recorded for ``backward``."""
    return MODE.enabled


class _GradMode:
    """A context manager that is also a decorator; restores the previous mode on exit."""

    enabled = True

    def __enter__(self):
        self._previous = MODE.enabled
        MODE.enabled = self.enabled

    def __exit__(self, *exc):
        MODE.enabled = self._previous
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapped


class no_grad(_GradMode):
    """Run Tensor operations without recording them for ``backward``.

    Examples
    --------
    >>> import lucid
    >>> w = lucid.Tensor([1.0, 2.0], requires_grad=True)
    >>> with lucid.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    enabled = False


class enable_grad(_GradMode):
    """Record Tensor operations again, inside a ``no_grad`` block or function."""

    enabled = True
