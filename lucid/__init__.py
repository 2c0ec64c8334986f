"""lucid: a define-then-run deep-learning framework that is a small, honest compiler.

Modules become static graphs; every op carries a sympy-derived gradient rule;
a codegen pass emits fused, readable NumPy source and runs it. Every op is
also ``lucid.<name>`` (``lucid.exp``, ``lucid.mean``, ...), on symbolic values
and on Tensors alike.
"""
from . import functions, ops
from .compiler import compile, trace_graph
from .frontend import placeholder
from .eager import Tensor
from .eager.random import Generator

from . import nn  # noqa: E402  (nn builds on the names above)
from . import optim  # noqa: E402  (optim updates nn's Parameters)
from . import data  # noqa: E402  (datasets and loaders of Tensors)

__all__ = ["Tensor", "Generator", "placeholder", "compile", "trace_graph", "nn", "optim", "data"]
__version__ = "0.1.0"
ops.reserve(*globals())  # no op may be called lucid.compile or lucid.nn


def __getattr__(name):
    """``lucid.exp``, ``lucid.mean``, ...: read from the op records on first use."""
    fn = functions.public(name)
    globals()[name] = fn
    return fn


def __dir__():
    return sorted(set(globals()) | set(functions.names()))
