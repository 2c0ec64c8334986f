"""The functional forms of the normalisation and dropout layers, as torch's.

``batch_norm``, ``layer_norm`` and ``dropout`` take Tensors (run eagerly,
compiled once per signature) or symbolic values (recorded into the graph
being traced). ``nn.BatchNorm1d``, ``nn.LayerNorm`` and ``nn.Dropout`` build
their graphs with the same helpers (:func:`normalize_batch`, :func:`channel_affine`,
:func:`running_stats`, :func:`normalize_layer`, :func:`drop`), so each formula
is written once, and BatchNorm's graph, which codegen turns into its closed
form, is the one it always was.

>>> import numpy as np, lucid
>>> import lucid.nn.functional as F
>>> x = lucid.Tensor([[1.0, 2.0], [3.0, 6.0]])
>>> mean, var = lucid.Tensor(np.zeros(2, np.float32)), lucid.Tensor(np.ones(2, np.float32))
>>> F.batch_norm(x, mean, var, training=True).data.round(4).tolist()
[[-1.0, -1.0], [1.0, 1.0]]
>>> mean.data.astype(float).round(4).tolist(), var.data.astype(float).round(4).tolist()
([0.2, 0.4], [1.1, 1.7])
>>> F.layer_norm(x, (2,)).data.round(4).tolist()
[[-1.0, 1.0], [-1.0, 1.0]]
"""
from __future__ import annotations

import math
import numbers

from .. import frontend as fe
from ..eager import Tensor, dispatch, no_grad
from ..eager.random import new_key
from ..frontend import Var, context, trace
from ..ops.shapes import format_shape

_SMALL_BATCH = "Expected more than 1 value per channel when training, got input size {shape}"


def _tracing(x):
    return context.current() is not None or isinstance(x, Var)


def _shape(x):
    return tuple(x.shape)


# -- batch normalisation ----------------------------------------------------------------------
def check_batch(x, axes):
    """Refuse a training batch with one value per channel (now, or at run time when a size
    is symbolic), as torch does."""
    dims = [x.shape[a] for a in axes]
    if all(isinstance(d, int) for d in dims):
        if math.prod(dims) <= 1:
            raise ValueError(_SMALL_BATCH.format(shape=tuple(x.shape)))
    else:
        trace.require_size(x, axes, 1, _SMALL_BATCH)


def normalize_batch(x, running_mean, running_var, batch_stats, eps):
    """``(xhat, mean, var)``: batch normalisation over every axis but 1, before the affine
    step, on Vars.

    With ``batch_stats`` the batch mean and biased variance normalise (and are
    returned, kept as unit axes); otherwise the running ones do (and ``mean``,
    ``var`` are None).
    """
    axes = (0,) + tuple(range(2, x.ndim))
    if not batch_stats:
        shape = _per_channel(x)
        xhat = (x - fe.reshape(running_mean, shape)) * \
            (fe.reshape(running_var, shape) + eps).rsqrt()
        return xhat, None, None
    mean = fe.mean(x, axes, keepdims=True, name="mean")
    xc = x - mean
    var = fe.mean(xc * xc, axes, keepdims=True, name="var")
    return xc * (var + eps).rsqrt(), mean, var


def channel_affine(xhat, weight, bias):
    """``xhat * weight + bias`` with per-channel (axis 1) ``weight`` and ``bias``."""
    if weight is not None:
        xhat = xhat * fe.reshape(weight, _per_channel(xhat))
    return xhat if bias is None else xhat + fe.reshape(bias, _per_channel(xhat))


def _per_channel(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)  # broadcasts against x


def running_stats(x, mean, var, running_mean, running_var, factor):
    """The new running mean and (unbiased) variance after a training batch, on Vars:
    ``(1 - factor) * running + factor * batch``."""
    axes = (0,) + tuple(range(2, x.ndim))
    c = (x.shape[1],)
    m = fe.numel(x, axes)
    unbiased = fe.reshape(var, c) * (m / (m - 1))
    return ((1 - factor) * running_mean + factor * fe.reshape(mean, c),
            (1 - factor) * running_var + factor * unbiased)


def _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, update):
    x = fe.as_var(x)
    xhat, mean, var = normalize_batch(x, running_mean, running_var, training, eps)
    new = None if update is None else running_stats(
        x, mean, var, fe.as_var(running_mean), fe.as_var(running_var), momentum)
    if update == "record":  # the buffers of a module being traced
        trace.record_update(running_mean, new[0])
        trace.record_update(running_var, new[1])
    y = channel_affine(xhat, weight, bias)
    return (y,) + new if update == "return" else y


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over ``(N, C, *)`` input, per channel ``C``, as torch's.

    In training the batch mean and biased variance normalise, and the running
    statistics (if given) move towards the batch's (the variance unbiased) by
    ``momentum``, in place; otherwise the running statistics normalise. While
    a module is traced, running statistics must be its registered buffers.
    """
    if len(_shape(input)) < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C, ...), got "
                         f"{format_shape(_shape(input))}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("running_mean must be defined in evaluation mode")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    c = _shape(input)[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and _shape(t) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},) for input of shape "
                             f"{format_shape(_shape(input))}, got {format_shape(_shape(t))}")
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"batch_norm: momentum must be a number, got {momentum!r}")
    if training:
        check_batch(input, (0,) + tuple(range(2, len(_shape(input)))))
    # the new statistics are recorded as state updates while tracing (registered buffers),
    # returned by the program otherwise and written in place here
    update = None if not training or not isinstance(running_mean, Tensor) else \
        "record" if _tracing(input) else "return"
    args = (input, running_mean, running_var, weight, bias)
    options = {"training": bool(training), "momentum": float(momentum), "eps": float(eps),
               "update": update}
    out = dispatch("batch_norm", _batch_norm, args, options)
    if not isinstance(out, tuple):
        return out
    y, new_mean, new_var = out  # eager: the running statistics move now, as torch's do
    with no_grad():
        running_mean.copy_(new_mean.data)
        running_var.copy_(new_var.data)
    return y


# -- layer normalisation ----------------------------------------------------------------------
def normalize_layer(x, k, weight, bias, eps):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``k`` axes, on Vars."""
    x = fe.as_var(x)
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = fe.mean(x, axes, keepdims=True, name="mean")
    xc = x - mean
    var = fe.mean(xc * xc, axes, keepdims=True, name="var")
    y = xc * (var + eps).rsqrt()
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def _normalized_shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        return (int(normalized_shape),)
    if not isinstance(normalized_shape, (tuple, list)) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
            for d in normalized_shape):
        raise TypeError(f"normalized_shape must be a positive int or a tuple of them, got "
                        f"{normalized_shape!r}")
    return tuple(int(d) for d in normalized_shape)


def check_layer_input(x, normalized_shape):
    k = len(normalized_shape)
    if k == 0 or tuple(_shape(x)[len(_shape(x)) - k:]) != normalized_shape or \
            len(_shape(x)) < k:
        raise ValueError(f"Given normalized_shape={list(normalized_shape)}, expected input "
                         f"with shape [*, {', '.join(map(str, normalized_shape))}], but got "
                         f"input of size {format_shape(_shape(x))}")


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation over the last dims ``normalized_shape`` (biased variance), as
    torch's; ``weight`` and ``bias`` have shape ``normalized_shape``."""
    normalized_shape = _normalized_shape(normalized_shape)
    check_layer_input(input, normalized_shape)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and _shape(t) != normalized_shape:
            raise ValueError(f"layer_norm: {name} must have shape {normalized_shape}, got "
                             f"{format_shape(_shape(t))}")
    return dispatch("layer_norm", normalize_layer, (input, len(normalized_shape), weight, bias),
                    {"eps": float(eps)})


# -- dropout ------------------------------------------------------------------------------------
def check_probability(p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")
    return float(p)


def drop(x, p, key):
    """``x`` with each element zeroed with probability ``p`` and the rest scaled by
    ``1 / (1 - p)``, the mask drawn by the ``uniform`` op from the int64 ``key``."""
    x = fe.as_var(x)
    if p == 1:
        return x * 0
    keep = fe.cast(fe.apply("ge", fe.apply("uniform", key, x), p), x.dtype)
    return x * keep * (1.0 / (1.0 - p))


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` when
    ``training``; otherwise return ``input``. Each call draws a new mask from lucid's
    generator (``lucid.manual_seed`` makes it reproducible).

    Called while a definition is traced (a module's ``forward`` compiled once
    and run many times) the key is a program input drawn from lucid's
    generator at every run, as ``nn.Dropout``'s is.
    """
    p = check_probability(p)
    if inplace:
        raise ValueError("dropout: inplace=True is not supported; use the returned tensor")
    if not training or p == 0:
        return input
    if _tracing(input):
        return drop(input, p, trace.random_key(new_key))
    key = Tensor(new_key(), dtype="int64")
    return dispatch("dropout", drop, (input, p, key), {})
