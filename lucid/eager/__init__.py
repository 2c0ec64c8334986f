"""The Tensor face: eager calls compiled once per signature, and backward over call records."""
from . import methods  # noqa: F401  (installs Tensor's operators and op methods)
from .methods import apply_op, dispatch
from .programs import STRUCTURE, call_function, call_module, changed, traced
from .tensor import Tensor, as_dtype, to_array

__all__ = ["Tensor", "as_dtype", "to_array", "dispatch", "apply_op", "call_module", "call_function",
           "changed", "traced", "STRUCTURE"]
