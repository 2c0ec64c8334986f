"""BatchNorm1d with PyTorch's semantics (see ../shared/SPEC.md), composed from primitives."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import frontend as F
from ..frontend import trace
from ..ops.shapes import format_shape
from ..eager import Tensor
from .layers import check_count
from .module import Module, Parameter


class BatchNorm1d(Module):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)`` input, per channel ``C``.

    Train mode normalises with the batch mean and biased variance and, when
    tracking, updates ``running_mean`` and ``running_var`` (unbiased) with
    factor ``momentum`` (``None``: cumulative average) and counts
    ``num_batches_tracked``; eval mode uses the running statistics.

    Examples
    --------
    >>> import lucid.nn as nn
    >>> from lucid import Tensor
    >>> bn = nn.BatchNorm1d(2)
    >>> y = bn(Tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]], requires_grad=True))
    >>> np.round(y.data.astype(float), 4).tolist()
    [[[-1.2247, 0.0, 1.2247], [-1.2247, 0.0, 1.2247]]]
    >>> bn.running_mean.data.tolist()
    [0.20000000298023224, 0.5]
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype="float32"):
        super().__init__()
        num_features = check_count("num_features", num_features)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
            raise ValueError(f"eps must be a non-negative number, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool) or
                                     not isinstance(momentum, numbers.Real) or
                                     not 0 <= momentum <= 1):
            raise ValueError(f"momentum must be a number in [0, 1] or None, got {momentum!r}")
        if math.isinf(eps):
            raise ValueError(f"eps must be finite, got {eps!r}")
        self.num_features, self.eps = num_features, float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        c = num_features
        self.weight = Parameter(np.ones(c), dtype=dtype) if affine else None
        self.bias = Parameter(np.zeros(c), dtype=dtype) if affine else None
        stats = track_running_stats
        self.register_buffer("running_mean", Tensor(np.zeros(c), dtype=dtype) if stats else None)
        self.register_buffer("running_var", Tensor(np.ones(c), dtype=dtype) if stats else None)
        self.register_buffer("num_batches_tracked", Tensor(0, dtype="int64") if stats else None)

    def forward(self, x):
        x = F.as_var(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.ndim}D input)")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected input with {self.num_features} channels "
                             f"(num_features), got {x.shape[1]} channels in shape {format_shape(x.shape)}")
        if x.dtype == "int64":
            x = F.cast(x, self._float_dtype())
        axes = (0,) if x.ndim == 2 else (0, 2)
        per_channel = (1, self.num_features) + (1,) * (x.ndim - 2)  # broadcasts against x
        if self.training or not self.track_running_stats:
            self._check_batch(x, axes)
            mean = F.mean(x, axes, keepdims=True, name="mean")
            xc = x - mean
            var = F.mean(xc * xc, axes, keepdims=True, name="var")
            xhat = xc * (var + self.eps).rsqrt()
            if self.training and self.track_running_stats:
                self._update_running_stats(x, axes, mean, var)
        else:
            mean = F.reshape(self.running_mean, per_channel)
            var = F.reshape(self.running_var, per_channel)
            xhat = (x - mean) * (var + self.eps).rsqrt()
        if not self.affine:
            return xhat
        return xhat * F.reshape(self.weight, per_channel) + F.reshape(self.bias, per_channel)

    def _float_dtype(self):
        t = self.weight if self.affine else self.running_mean
        return t.data.dtype.name if t is not None else "float32"

    def _check_batch(self, x, axes):
        message = "Expected more than 1 value per channel when training, got input size {shape}"
        dims = [x.shape[a] for a in axes]
        if all(isinstance(d, int) for d in dims):
            if math.prod(dims) <= 1:
                raise ValueError(message.format(shape=tuple(x.shape)))
        else:
            trace.require_size(x, axes, 1, message)

    def _update_running_stats(self, x, axes, mean, var):
        count = self.num_batches_tracked
        new_count = F.as_var(count) + 1
        trace.record_update(count, new_count)
        if self.momentum is None:  # cumulative moving average
            f = 1.0 / F.cast(new_count, self.running_mean.data.dtype.name)
        else:
            f = self.momentum
        c = (self.num_features,)
        m = F.numel(x, axes)
        unbiased = F.reshape(var, c) * (m / (m - 1))
        trace.record_update(self.running_mean,
                            (1 - f) * self.running_mean + f * F.reshape(mean, c))
        trace.record_update(self.running_var, (1 - f) * self.running_var + f * unbiased)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
