"""What each node means: the primitives, their derived gradients, their NumPy lowering."""
from . import autodiff, executor, registry, structural, trace
from .registry import CONVENTIONS, REGISTRY, Elementwise, Op
from .var import (Var, apply, broadcast_to, cast, exp, log, matmul, mean, numel, placeholder,
                  reduce_sum, relu, reshape, rsqrt, sqrt, tanh, transpose)

__all__ = ["REGISTRY", "CONVENTIONS", "Op", "Elementwise", "Var", "apply", "placeholder",
           "reduce_sum", "mean", "numel", "reshape", "broadcast_to", "cast", "exp", "log",
           "sqrt", "rsqrt", "tanh", "relu", "matmul", "transpose", "autodiff", "executor",
           "registry", "structural", "trace"]
