"""The static computation graph (networkx; no NumPy)."""
from .graph import PHASES, Check, Graph, Node

__all__ = ["Graph", "Node", "Check", "PHASES"]
