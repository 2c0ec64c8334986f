"""Codegen: rewrite, fuse and emit a graph as Python/NumPy source, and run it."""
from .program import Program

__all__ = ["Program"]
