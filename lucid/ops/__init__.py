"""What each node means: one record per primitive (:class:`Op`), read by every other layer.

``REGISTRY`` holds them by name: the elementwise ones (a sympy expression each,
partials derived) from :mod:`.elementwise`, the structural ones (shape rule,
VJP, reference run, NumPy lowering) from :mod:`.structural`.
:func:`define_elementwise` adds one.
"""
from . import elementwise, gather, indexing, structural  # noqa: F401  (registers the primitives)
from . import conv  # noqa: F401  (after the records it builds on)
from .decompose import NotBuildable, decompose
from .elementwise import define_elementwise, define_many
from .op import (ARGS, CONVENTIONS, DTYPES, FLOATS, REGISTRY, RESERVED_NAMES, Kind, Op,
                 method_op, operators, reserve)
from .parse import parse
from .reference import NUMPY_FUNCTIONS
from .shapes import infer

__all__ = ["REGISTRY", "Op", "Kind", "ARGS", "CONVENTIONS", "FLOATS", "DTYPES",
           "NUMPY_FUNCTIONS", "RESERVED_NAMES", "reserve", "parse", "infer", "operators", "method_op", "define_elementwise", "define_many", "decompose", "NotBuildable"]
