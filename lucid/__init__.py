"""lucid: a define-then-run deep-learning framework that is a small, honest compiler.

Modules become static graphs; every op carries a sympy-derived gradient rule;
a codegen pass emits fused, readable NumPy source and runs it.
"""
from .compiler import compile, trace_graph
from .ops import placeholder
from .tensor import Tensor

from . import nn  # noqa: E402  (nn builds on the names above)

__all__ = ["Tensor", "placeholder", "compile", "trace_graph", "nn"]
__version__ = "0.1.0"
