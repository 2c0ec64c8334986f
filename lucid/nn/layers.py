"""Linear, ReLU and Sequential, composed from lucid's primitives."""
from __future__ import annotations

import numbers
import operator

import numpy as np

from .. import frontend as F
from ..ops.shapes import format_shape
from . import init
from .module import Module, Parameter


def check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


class Linear(Module):
    """``y = x @ weight.T + bias``; weight ``(out, in)``.

    Initialised as torch's: ``kaiming_uniform_(weight, a=sqrt(5))`` and the bias
    from U(-1/sqrt(in), 1/sqrt(in)) (:func:`lucid.nn.init._reset_parameters`).

    Examples
    --------
    >>> import lucid.nn as nn
    >>> nn.Linear(3, 2).weight.shape
    (2, 3)
    """

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        self.in_features = check_count("in_features", in_features)
        self.out_features = check_count("out_features", out_features)
        self.weight = Parameter(np.zeros((self.out_features, self.in_features)), dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_features), dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init._reset_parameters(self.weight, self.bias)

    def forward(self, x):
        x = F.as_var(x)
        if x.ndim < 2 or x.shape[-1] != self.in_features:  # (N, *, in), as torch's (*, in)
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expected input "
                             f"of shape (N, ..., {self.in_features}) (a batch axis first: "
                             f"x[None] for one sample), got {format_shape(x.shape)}")
        y = x @ F.transpose(self.weight, (1, 0))
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"


class ReLU(Module):
    """``max(x, 0)`` elementwise (gradient 0 at 0)."""

    def forward(self, x):
        return F.as_var(x).relu()


class Sequential(Module):
    """Children called in order, named ``"0"``, ``"1"``, ..."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            self._modules[str(i)] = _module(m, f" at {i}")

    def __getitem__(self, i):
        """The ``i``-th module; a slice is a Sequential of the same modules, as torch's."""
        modules = list(self._modules.values())
        return Sequential(*modules[i]) if isinstance(i, slice) else modules[i]

    def __setitem__(self, i, module):
        """Replace the ``i``-th module, as torch's ``seq[i] = module``."""
        module = _module(module)
        names = list(self._modules)
        if isinstance(i, bool) or not hasattr(i, "__index__"):
            raise TypeError(f"Sequential indices are ints, got {type(i).__name__}")
        i = operator.index(i)
        if not -len(names) <= i < len(names):
            raise IndexError(f"index {i} is out of range for a Sequential of {len(names)}")
        setattr(self, names[i], module)

    def __len__(self):
        return len(self._modules)

    def append(self, module):
        """Add ``module`` at the end, as torch's; returns the Sequential."""
        setattr(self, str(len(self._modules)), _module(module))
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


def _module(value, where=""):
    """``value`` if it is a Module, else the TypeError Sequential raises."""
    if not isinstance(value, Module):
        raise TypeError(f"Sequential takes Modules, got {type(value).__name__}{where}")
    return value
