"""Activations, shape helpers, Dropout, LayerNorm and ModuleList, composed from primitives."""
from __future__ import annotations

import numbers

import numpy as np

from .. import frontend as F
from ..eager.random import new_key
from ..frontend import trace
from ..frontend.composed import flatten, gelu, log_softmax, softmax
from .layer_fns import check_layer_input, check_probability, drop, normalize_layer
from .module import Module, Parameter


class Identity(Module):
    """Returns its input (extra constructor arguments are ignored, as torch's)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return F.as_var(x)


class Tanh(Module):
    def forward(self, x):
        return F.as_var(x).tanh()


class Sigmoid(Module):
    def forward(self, x):
        return F.as_var(x).sigmoid()


class GELU(Module):
    """``x/2 (1 + erf(x/sqrt(2)))``, or its tanh approximation (``approximate="tanh"``),
    as torch's GELU.

    >>> import lucid
    >>> import lucid.nn as nn
    >>> nn.GELU(approximate="tanh")
    GELU(approximate='tanh')
    >>> nn.GELU()(lucid.Tensor([1.0], dtype="float64")).data.round(6).tolist()
    [0.841345]
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


def _legacy_dim(dim, ndim):
    # torch's rule when no dim is given (deprecated there): 0 for 0-, 1- and 3-D input, else 1
    return dim if dim is not None else 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        x = F.as_var(x)
        return softmax(x, _legacy_dim(self.dim, x.ndim))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        x = F.as_var(x)
        return log_softmax(x, _legacy_dim(self.dim, x.ndim))


class Flatten(Module):
    """Joins dims ``start_dim..end_dim`` (by default all but the batch dim)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x):
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zeroes each element with probability ``p`` in train mode and scales the rest by
    ``1 / (1 - p)``; in eval mode it is the identity (the eval graph has no node for it).

    The mask is drawn inside the program by the ``uniform`` op from a key that is a
    program input (so the program stays a pure function of its inputs), fed at every
    call with a fresh key from lucid's generator. Like torch's, the layer holds no
    state: ``lucid.manual_seed(s)`` right before a forward fixes its mask, whenever
    the model was built.

    Examples
    --------
    >>> import numpy as np, lucid
    >>> d, x = lucid.nn.Dropout(0.5), lucid.Tensor(np.ones((2, 4), np.float32))
    >>> _ = lucid.manual_seed(0); a = d(x).numpy()
    >>> _ = lucid.manual_seed(0); bool((d(x).numpy() == a).all()), sorted(set(a.ravel().tolist()))
    (True, [0.0, 2.0])
    >>> d.state_dict()
    OrderedDict()
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = check_probability(p)

    def forward(self, x):
        x = F.as_var(x)
        if not self.training or self.p == 0:
            return x
        key = trace.random_key(new_key)  # one per call site: two calls, two masks
        return drop(x, self.p, key)

    def extra_repr(self):
        return f"p={self.p}, inplace=False"


class LayerNorm(Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last dims
    ``normalized_shape`` (biased variance), as torch's LayerNorm."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype="float32"):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(d) for d in normalized_shape)
        self.eps, self.elementwise_affine = float(eps), bool(elementwise_affine)
        self.weight = Parameter(np.ones(self.normalized_shape), dtype=dtype) \
            if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape), dtype=dtype) \
            if elementwise_affine and bias else None

    def forward(self, x):
        x = F.as_var(x)
        check_layer_input(x, self.normalized_shape)
        return normalize_layer(x, len(self.normalized_shape), self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, " \
               f"elementwise_affine={self.elementwise_affine}"


class ModuleList(Module):
    """Modules held in a list, registered as children ``"0"``, ``"1"``, ..."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i):
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))
