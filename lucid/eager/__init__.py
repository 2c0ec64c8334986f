"""The Tensor face: eager calls compiled once per signature, and backward over call records."""
from . import checkpoint, grad, methods, random  # noqa: F401  (methods installs Tensor's operators and methods)
from .autograd import zero_grads
from .grad import enable_grad, is_grad_enabled, no_grad
from .methods import apply_op, binary, dispatch
from .programs import STRUCTURE, call_function, call_module, changed, traced
from .tensor import Tensor, as_dtype, to_array

__all__ = ["Tensor", "grad", "no_grad", "enable_grad", "is_grad_enabled", "binary", "as_dtype",
           "to_array", "dispatch", "apply_op", "call_module", "call_function",
           "changed", "traced", "STRUCTURE", "random", "zero_grads"]
