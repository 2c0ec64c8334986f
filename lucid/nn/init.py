"""``lucid.nn.init``: torch's initialisation functions, drawing from lucid's generator.

Each function fills a Tensor (a Parameter usually) in place, as
``torch.nn.init`` does under ``no_grad``, and returns it. The numbers come
from :func:`lucid.eager.random.generator` (what ``lucid.manual_seed`` seeds)
unless a ``numpy.random.Generator`` is passed as ``generator``. The fan rules
are torch's: ``fan_in = size(1) * receptive field``, ``fan_out = size(0) *
receptive field``, the receptive field being the product of the dims after
the first two (a Conv1d kernel ``(out, in, k)`` has ``fan_in = in * k``).

Examples
--------
>>> import lucid
>>> from lucid.nn import init
>>> w = lucid.nn.Parameter(np.zeros((4, 3, 2)))
>>> init._calculate_fan_in_and_fan_out(w)
(6, 8)
>>> _ = lucid.manual_seed(0)
>>> bool(np.abs(init.kaiming_uniform_(w, a=5 ** 0.5).data).max() <= 1 / 6 ** 0.5)
True
>>> init.constant_(w, 0.5).data[0, 0].tolist()
[0.5, 0.5]
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ..eager import Tensor, no_grad
from ..eager.random import Generator, generator as _lucid_generator

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for ``nonlinearity`` (torch's table).

    ``linear``, the convolutions and ``sigmoid``: 1; ``tanh``: 5/3; ``relu``:
    sqrt(2); ``leaky_relu``: sqrt(2 / (1 + slope**2)), slope ``param`` (default
    0.01); ``selu``: 3/4.

    >>> calculate_gain("tanh")
    1.6666666666666667
    >>> round(calculate_gain("leaky_relu", 5 ** 0.5), 6)
    0.57735
    """
    if nonlinearity in _LINEAR:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, numbers.Real):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight of 2 or more dims (torch's rule)."""
    shape = _tensor(tensor).shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than "
                         "2 dimensions")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    if not isinstance(mode, str) or mode.lower() not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode.lower() == "fan_in" else fan_out


def _tensor(tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"expected a lucid Tensor, got {type(tensor).__name__}")
    return tensor


def _rng(generator):
    if generator is None or isinstance(generator, Generator):
        return _lucid_generator(generator)  # a lucid.Generator, as torch's init takes its own
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a lucid.Generator, a numpy.random.Generator or "
                        f"None, got {type(generator).__name__}")
    return generator


def _fill(tensor, values):
    with no_grad():
        return tensor.copy_(values)


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill ``tensor`` with values drawn from U(a, b)."""
    a, b, rng = _number("a", a), _number("b", b), _rng(generator)
    return _fill(_tensor(tensor), rng.uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill ``tensor`` with values drawn from N(mean, std**2)."""
    mean, std, rng = _number("mean", mean), _number("std", std), _rng(generator)
    if std < 0:
        raise ValueError(f"normal_ expects std >= 0.0, but found std {std}")
    return _fill(_tensor(tensor), rng.normal(mean, std, tensor.shape))


def constant_(tensor, val):
    """Fill ``tensor`` with ``val``."""
    return _fill(_tensor(tensor), _number("val", val))


def ones_(tensor):
    """Fill ``tensor`` with 1."""
    return constant_(tensor, 1.0)


def zeros_(tensor):
    """Fill ``tensor`` with 0."""
    return constant_(tensor, 0.0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = _number("gain", gain) * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std**2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = _number("gain", gain) * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def _empty(tensor):
    if 0 in _tensor(tensor).shape:
        warnings.warn("Initializing zero-element tensors is a no-op")
        return True
    return False


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound), ``bound = gain * sqrt(3 / fan)`` (He et al., 2015).

    ``gain = calculate_gain(nonlinearity, a)``; ``fan`` is ``fan_in`` or
    ``fan_out`` by ``mode``. torch's Linear and Conv1d use ``a = sqrt(5)``,
    which gives ``bound = 1 / sqrt(fan_in)``.
    """
    if _empty(tensor):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std**2), ``std = gain / sqrt(fan)`` (He et al., 2015)."""
    if _empty(tensor):
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def _reset_parameters(weight, bias):
    """The default of torch's Linear and Conv layers: ``kaiming_uniform_(weight, a=sqrt(5))``,
    then ``bias`` (if any) from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
