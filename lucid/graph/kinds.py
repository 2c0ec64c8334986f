"""The enums of the IR: node phases, placeholder roles, output kinds.

Each is a ``str`` enum, so it prints and compares as its value (``"forward"``).
"""
from __future__ import annotations

import enum


class _Named(str, enum.Enum):
    """Prints as its value (Python 3.10's str enums print as ``Class.MEMBER``)."""

    def __str__(self):
        return self.value

    def __format__(self, spec):
        return format(self.value, spec)


class Phase(_Named):
    """Which part of a program a node belongs to."""

    FORWARD = "forward"
    BACKWARD = "backward"
    UPDATE = "update"  # running-statistics and other state updates
    OPTIMIZER = "optimizer"  # the optimizer's per-parameter update of a training step



class Role(_Named):
    """What a placeholder stands for."""

    INPUT = "input"  # a user input of the program
    PARAM = "param"  # a module parameter (differentiated by default)
    BUFFER = "buffer"  # module state (running statistics)
    GRAD = "grad"  # an upstream gradient, the seed of the backward
    CAPTURED = "captured"  # a Tensor a traced function closed over
    STATE = "state"  # an optimizer's per-parameter state (exp_avg, momentum_buffer, ...)
    HYPER = "hyper"  # a hyper-parameter the host computes at each call (lr, bias corrections)



class OutKind(_Named):
    """What an output of a program is."""

    RESULT = "result"  # what the traced function returned
    GRAD = "grad"  # the gradient with respect to an input or parameter
    UPDATE = "update"  # the new value of a module buffer, parameter or optimizer state



PHASES = tuple(p.value for p in Phase)
