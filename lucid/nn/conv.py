"""``Conv1d`` and ``conv1d``: windows as columns (``unfold1d``), times the flattened kernel.

A convolution is composed from primitives, so its gradients come from the
graph: ``unfold1d`` lays out every window of the padded input as one column
of ``C * K`` values, the kernel reshaped to ``(C_out, C * K)`` times the
columns of each batch item gives torch's ``(N, C_out, L_out)``, and the bias
is added per channel. Like torch's, the
operation is a cross-correlation (the kernel is not flipped).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import frontend as fe
from ..eager import Tensor, dispatch
from ..frontend import trace
from ..ops.shapes import format_shape
from . import init
from .layers import check_count
from .module import Module, Parameter

_PADDING_STRINGS = ("valid", "same")


def _single(name, value, minimum):
    """An int, or a one-item tuple of one, as torch's ``_single``; at least ``minimum``."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or a 1-tuple of an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _padding(padding, kernel_size, stride, dilation):
    """Padding before and after the sequence: an int, ``'valid'`` or ``'same'`` (torch puts
    the odd one of an odd total after)."""
    if isinstance(padding, str):
        if padding not in _PADDING_STRINGS:
            raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                             f"{list(_PADDING_STRINGS)}")
        if padding == "valid":
            return (0, 0)
        if stride != 1:
            raise ValueError("padding='same' is not supported for strided convolutions")
        total = dilation * (kernel_size - 1)
        return (total // 2, total - total // 2)
    p = _single("padding", padding, 0)
    return (p, p)


def _check_groups(groups):
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    return int(groups)


def _convolve(x, w, b, stride, padding, dilation, groups):
    """The convolution of Vars ``x`` (N, C, L) or (C, L) and ``w`` (C_out, C / groups, K)."""
    x, w = fe.as_var(x), fe.as_var(w)
    batched = x.ndim == 3
    if not batched:
        x = fe.reshape(x, (1,) + tuple(x.shape))
    c_out, c_group, k = w.shape
    columns = fe.apply("unfold1d", x, kernel_size=k, stride=stride, padding=padding,
                       dilation=dilation)  # (N, C * K, L_out)
    if groups == 1:
        y = fe.apply("stacked_matmul", fe.reshape(w, (c_out, c_group * k)), columns)
    else:  # group j's kernels meet group j's columns only (a group axis in the product)
        n, _, length = columns.shape
        columns = fe.reshape(columns, (n, groups, c_group * k, length))
        kernels = fe.reshape(w, (groups, c_out // groups, c_group * k))
        y = fe.reshape(fe.apply("stacked_matmul", kernels, columns), (n, c_out, length))
    if b is not None:
        y = y + fe.reshape(b, (c_out, 1))
    return y if batched else fe.reshape(y, tuple(y.shape[1:]))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A 1-D convolution (cross-correlation) over ``(N, C, L)`` or ``(C, L)`` input, as
    ``torch.nn.functional.conv1d``.

    ``weight`` is ``(C_out, C, K)``, ``bias`` ``(C_out,)``; ``padding`` is an
    int, ``'valid'`` or ``'same'`` (stride 1 only). The output length is
    ``(L + 2 * padding - dilation * (K - 1) - 1) // stride + 1``. With
    ``groups`` g, the channels split into g groups convolved apart: ``weight``
    is ``(C_out, C / g, K)`` and output channels ``j * C_out / g ...`` see
    input group ``j`` only.

    Examples
    --------
    >>> import lucid, lucid.nn.functional as F
    >>> x = lucid.Tensor([[[1.0, 2.0, 3.0, 4.0]]])
    >>> w = lucid.Tensor([[[1.0, 0.0, -1.0]]])
    >>> F.conv1d(x, w).data.tolist()
    [[[-2.0, -2.0]]]
    >>> F.conv1d(x, w, padding="same").data.tolist()
    [[[-2.0, -2.0, -2.0, 3.0]]]
    """
    groups = _check_groups(groups)
    if len(weight.shape) != 3:
        raise ValueError(f"conv1d: weight must be (out_channels, in_channels, kernel_size), "
                         f"got shape {format_shape(weight.shape)}")
    if len(input.shape) not in (2, 3):
        raise ValueError(f"conv1d: expected 2D (unbatched) or 3D (batched) input, got input "
                         f"of shape {format_shape(input.shape)}")
    if str(input.dtype) not in ("float32", "float64"):
        raise TypeError(f"conv1d: expected a floating input, got {input.dtype}")
    c_out, c_group, k = weight.shape
    if input.shape[-2] != c_group * groups:
        raise ValueError(f"conv1d: weight of shape {format_shape(weight.shape)} with groups="
                         f"{groups} expects input with {c_group * groups} channels, got "
                         f"{input.shape[-2]} channels in input of shape "
                         f"{format_shape(input.shape)}")
    if c_out % groups:
        raise ValueError(f"conv1d: weight of shape {format_shape(weight.shape)}: "
                         f"{c_out} output channels do not split into {groups} groups")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"conv1d: bias must have shape ({c_out},), got "
                         f"{format_shape(bias.shape)}")
    stride = _single("stride", stride, 1)
    dilation = _single("dilation", dilation, 1)
    pads = _padding(padding, k, stride, dilation)
    return dispatch("conv1d", _convolve, (input, weight, bias),
                    {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups})


class Conv1d(Module):
    """A 1-D convolution layer over ``(N, C_in, L)`` (or ``(C_in, L)``) input, as torch's.

    ``weight`` is ``(out_channels, in_channels, kernel_size)``; both it and
    ``bias`` are initialised as torch's (:func:`lucid.nn.init.kaiming_uniform_`
    with ``a = sqrt(5)``; the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    ``fan_in = in_channels / groups * kernel_size``). Only
    ``padding_mode='zeros'`` is supported (a ValueError otherwise).

    Examples
    --------
    >>> import lucid, lucid.nn as nn
    >>> conv = nn.Conv1d(8, 16, 3, padding=1)
    >>> conv
    Conv1d(8, 16, kernel_size=(3,), stride=(1,), padding=(1,))
    >>> conv(lucid.Tensor(np.zeros((4, 8, 10), np.float32))).shape
    (4, 16, 10)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype="float32"):
        super().__init__()
        groups = _check_groups(groups)
        if padding_mode != "zeros":
            raise ValueError(f"lucid's Conv1d supports padding_mode='zeros' only, got "
                             f"{padding_mode!r}")
        self.in_channels = check_count("in_channels", in_channels)
        self.out_channels = check_count("out_channels", out_channels)
        if self.in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if self.out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        self.kernel_size = (_single("kernel_size", kernel_size, 1),)
        self.stride = (_single("stride", stride, 1),)
        self.dilation = (_single("dilation", dilation, 1),)
        _padding(padding, self.kernel_size[0], self.stride[0], self.dilation[0])  # checked now
        self.padding = padding if isinstance(padding, str) else (_single("padding", padding, 0),)
        self.groups, self.padding_mode = groups, "zeros"
        shape = (self.out_channels, self.in_channels // groups, self.kernel_size[0])
        self.weight = Parameter(np.zeros(shape), dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_channels), dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init._reset_parameters(self.weight, self.bias)

    def __call__(self, *args):
        # a module call compiles with a symbolic batch axis 0, which an unbatched (C, L)
        # Tensor lacks: it runs as a batch of one, as torch's does
        if len(args) == 1 and isinstance(args[0], Tensor) and args[0].ndim == 2 and \
                trace.current() is None:
            return super().__call__(args[0].unsqueeze(0)).squeeze(0)
        return super().__call__(*args)

    def forward(self, x):
        x = fe.as_var(x)
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        return conv1d(x, self.weight, self.bias, self.stride[0], padding, self.dilation[0],
                      self.groups)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
               f"stride={self.stride}"
        if self.padding != (0,):
            text += f", padding={self.padding}"  # a string unquoted, as torch prints it
        if self.dilation != (1,):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")
