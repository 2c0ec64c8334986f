"""Neural-network modules, composed from lucid's primitives."""
from . import functional, init
from .activation import (GELU, Dropout, Flatten, Identity, LayerNorm, LogSoftmax, ModuleList,
                         Sigmoid, Softmax, Tanh)
from .batchnorm import BatchNorm1d
from .conv import Conv1d
from .layers import Linear, ReLU, Sequential
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Linear", "ReLU", "Sequential", "BatchNorm1d", "Conv1d",
           "functional", "init", "Identity", "Tanh", "Sigmoid", "GELU", "Softmax", "LogSoftmax",
           "Flatten", "Dropout",
           "LayerNorm", "ModuleList", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss",
           "BCEWithLogitsLoss"]
