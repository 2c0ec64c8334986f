"""The front end: symbolic values (:class:`Var`), the tracer, and module calls into graphs."""
from . import context, trace
from .composed import COMPOSED, index, index_key, pow_, rpow
from .var import (Var, apply, as_var, broadcast_to, cast, matmul, mean, numel, placeholder,
                  reduce_sum, reshape, transpose)

__all__ = ["Var", "apply", "as_var", "placeholder", "reduce_sum", "mean", "numel", "reshape",
           "broadcast_to", "cast", "matmul", "transpose", "context", "trace",
           "COMPOSED", "index", "index_key", "pow_", "rpow"]
