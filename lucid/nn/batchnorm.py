"""BatchNorm1d with PyTorch's semantics (see ../shared/SPEC.md), composed from primitives."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import frontend as F
from ..frontend import trace
from ..ops.shapes import format_shape
from ..eager import Tensor
from .layer_fns import channel_affine, check_batch, normalize_batch, running_stats
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
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            check_batch(x, axes)
        xhat, mean, var = normalize_batch(x, self.running_mean, self.running_var, batch_stats,
                                          self.eps)
        if self.training and self.track_running_stats:
            self._update_running_stats(x, mean, var)
        return channel_affine(xhat, self.weight, self.bias)

    def _float_dtype(self):
        t = self.weight if self.affine else self.running_mean
        return t.data.dtype.name if t is not None else "float32"

    def _update_running_stats(self, x, mean, var):
        count = self.num_batches_tracked
        new_count = F.as_var(count) + 1
        trace.record_update(count, new_count)
        if self.momentum is None:  # cumulative moving average
            f = 1.0 / F.cast(new_count, self.running_mean.data.dtype.name)
        else:
            f = self.momentum
        new_mean, new_var = running_stats(x, mean, var, self.running_mean, self.running_var, f)
        trace.record_update(self.running_mean, new_mean)
        trace.record_update(self.running_var, new_var)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
