"""Neural-network modules, composed from lucid's primitives."""
from .batchnorm import BatchNorm1d
from .layers import Linear, ReLU, Sequential
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Linear", "ReLU", "Sequential", "BatchNorm1d"]
