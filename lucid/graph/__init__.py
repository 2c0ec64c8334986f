"""The static computation graph (networkx; no NumPy, no knowledge of what ops mean)."""
from .graph import RESERVED, Check, Graph, Node, Output
from .kinds import PHASES, OutKind, Phase, Role

__all__ = ["Graph", "Node", "Output", "Check", "Phase", "Role", "OutKind", "PHASES", "RESERVED"]
