"""Running graphs without codegen: the reference executor and the input checks."""
from .executor import bind_sizes, run

__all__ = ["run", "bind_sizes"]
