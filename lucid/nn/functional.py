"""``lucid.nn.functional``: torch's activation and loss functions, composed from primitives.

Every function takes Tensors (run eagerly, compiled once per signature, with
gradients) or symbolic values (recorded into the graph being traced). The
formulas are torch's documented ones; nothing here has a gradient rule of
its own: autodiff derives it from the primitives.

Class-index targets select their class with a comparison against the class
positions (``target == arange(C)``, the positions a small int64 Tensor): the
gradient goes only to the selected logit, a target equal to ``ignore_index``
selects nothing, so it contributes neither loss nor weight.

>>> import lucid
>>> import lucid.nn.functional as F
>>> x = lucid.Tensor([[2.0, 0.0, 0.0]], dtype="float64", requires_grad=True)
>>> loss = F.cross_entropy(x, lucid.Tensor([0]))
>>> round(loss.item(), 4)
0.2395
>>> loss.backward(); x.grad.round(4).tolist()
[[-0.213, 0.1065, 0.1065]]
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import frontend as fe
from ..eager import Tensor, dispatch
from ..frontend import as_var
from ..frontend.composed import (gelu as _gelu, log_softmax as _log_softmax,
                                 softmax as _softmax, softplus as _softplus, where)
from ..ops.shapes import broadcast_shapes

_REDUCTIONS = ("none", "mean", "sum")
_CLASSES = {}  # C -> the int64 Tensor arange(C): one per class count, shared by every call


def _reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction "
                         f"(one of {', '.join(map(repr, _REDUCTIONS))})")
    return reduction


def _reduce(loss, reduction):
    if reduction == "mean":
        return fe.mean(loss)
    return fe.reduce_sum(loss) if reduction == "sum" else loss


def _shape(x):
    return tuple(x.shape)


def _dtype(x):
    return str(x.dtype)


# -- activations --------------------------------------------------------------------------
def relu(input):
    return dispatch("relu", lambda x: as_var(x).relu(), (input,), {})


def tanh(input):
    return dispatch("tanh", lambda x: as_var(x).tanh(), (input,), {})


def sigmoid(input):
    return dispatch("sigmoid", lambda x: as_var(x).sigmoid(), (input,), {})


def gelu(input, approximate="none"):
    """torch's ``gelu``: ``x/2 (1 + erf(x/sqrt(2)))``; ``approximate="tanh"``:
    ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    >>> import lucid
    >>> import lucid.nn.functional as F
    >>> x = lucid.Tensor([-1.0, 0.0, 2.0], dtype="float64")
    >>> F.gelu(x).data.round(6).tolist()
    [-0.158655, 0.0, 1.9545]
    >>> F.gelu(x, approximate="tanh").data.round(6).tolist()
    [-0.158808, 0.0, 1.954598]
    """
    return dispatch("gelu", _gelu, (input,), {"approximate": approximate})


def softplus(input, beta=1.0, threshold=20.0):
    """torch's ``softplus``: ``log(1 + exp(beta x)) / beta``, and ``x`` where
    ``beta x > threshold``.

    >>> import lucid
    >>> import lucid.nn.functional as F
    >>> F.softplus(lucid.Tensor([0.0, 30.0], dtype="float64")).data.round(6).tolist()
    [0.693147, 30.0]
    """
    return dispatch("softplus", _softplus, (input,), {"beta": beta, "threshold": threshold})


def softmax(input, dim):
    return dispatch("softmax", _softmax, (input,), {"dim": dim})


def log_softmax(input, dim):
    """``x - max - log(sum(exp(x - max)))`` along ``dim``: finite for any finite logits."""
    return dispatch("log_softmax", _log_softmax, (input,), {"dim": dim})


def linear(input, weight, bias=None):
    """``input @ weight.T + bias``."""
    def run(x, w, b):
        y = fe.matmul(x, fe.transpose(w, (1, 0)))
        return y if b is None else y + b
    return dispatch("linear", run, (input, weight, bias), {})


# -- regression losses ---------------------------------------------------------------------
def _pair(name, fn, input, target, reduction):
    # torch broadcasts a target of another shape against the input (with a warning)
    broadcast_shapes(name, _shape(input), _shape(target))
    return dispatch(name, fn, (input, target), {"reduction": _reduction(reduction)})


def _mse(x, y, reduction):
    d = as_var(x) - y
    return _reduce(d * d, reduction)


def _l1(x, y, reduction):
    return _reduce(fe.apply("abs", as_var(x) - y), reduction)


def mse_loss(input, target, reduction="mean"):
    """``(input - target) ** 2``, reduced (torch.nn.functional.mse_loss)."""
    return _pair("mse_loss", _mse, input, target, reduction)


def l1_loss(input, target, reduction="mean"):
    """``|input - target|``, reduced (gradient ``sign``: 0 where they are equal, as torch)."""
    return _pair("l1_loss", _l1, input, target, reduction)


# -- classification losses ----------------------------------------------------------------
def _classes(n):
    t = _CLASSES.get(n)
    if t is None:
        t = _CLASSES[n] = Tensor(np.arange(n, dtype=np.int64))
    return t


def _check_class_target(name, input, target, weight, ignore_index):
    """torch's checks on ``(N, C, d...)`` or ``(C,)`` input and int64 ``(N, d...)`` or ``()``
    target; on data it can see, targets in ``[0, C)`` or ``ignore_index``."""
    shape, tshape = _shape(input), _shape(target)
    if len(shape) < 1:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-d input")
    if _dtype(target) != "int64":
        raise TypeError(f"{name}: class-index targets must be int64 (torch.long), got "
                        f"{_dtype(target)}")
    expected = shape[:1] + shape[2:] if len(shape) > 1 else ()
    if tshape != expected:
        raise ValueError(f"{name}: expected target of shape {expected} for input of shape "
                         f"{shape}, got {tshape}")
    c = shape[1] if len(shape) > 1 else shape[0]
    if not isinstance(c, numbers.Integral):
        raise ValueError(f"{name}: the class dimension must have a known size, got {c!r}")
    if weight is not None and _shape(weight) != (c,):
        raise ValueError(f"{name}: weight must have shape ({c},), got {_shape(weight)}")
    if isinstance(target, Tensor):
        t = target.data
        bad = (t != ignore_index) & ((t < 0) | (t >= c))
        if bad.any():
            raise IndexError(f"{name}: Target {int(t[bad].flat[0])} is out of bounds "
                             f"(classes 0..{c - 1})")
    return int(c)


def _per_class(v, ndim):
    """A ``(C,)`` value laid along the class axis (1) of an ``ndim``-D input."""
    return v if ndim == 1 else fe.reshape(v, (1, v.shape[0]) + (1,) * (ndim - 2))


def _select(logp, target, classes, weight, ignore_index):
    """``(-w[t] * logp[t], w[t], 1)`` per sample; all 0 where ``t`` is no class."""
    logp, ndim = as_var(logp), len(logp.shape)
    if 0 <= ignore_index < classes.shape[0]:  # a real class to ignore: make it select nothing
        target = where(fe.apply("eq", target, ignore_index), -1, target)
    t = as_var(target) if ndim == 1 else fe.reshape(target, (target.shape[0], 1) +
                                                      tuple(target.shape[1:]))
    hit = fe.apply("eq", t, _per_class(as_var(classes), ndim))
    axis = 0 if ndim == 1 else 1
    valid = fe.cast(hit, logp.dtype)
    w = valid if weight is None else where(hit, _per_class(as_var(weight), ndim), 0)
    picked = fe.reduce_sum(logp * w, axis)
    return -picked, fe.reduce_sum(w, axis), fe.reduce_sum(valid, axis)


def _nll(logp, target, classes, weight, reduction, ignore_index, label_smoothing=0.0):
    loss, w, valid = _select(logp, target, classes, weight, ignore_index)
    if reduction == "mean":
        loss = fe.reduce_sum(loss) / fe.reduce_sum(w)
    elif reduction == "sum":
        loss = fe.reduce_sum(loss)
    if not label_smoothing:
        return loss
    # torch: (1 - e) * nll + e / C * smooth, smooth = -sum_c w_c logp_c, 0 where ignored,
    # its mean normalised like nll's (by the selected weights)
    logp, ndim = as_var(logp), len(logp.shape)
    axis, c = (0, logp.shape[0]) if ndim == 1 else (1, logp.shape[1])
    each = logp if weight is None else logp * _per_class(as_var(weight), ndim)
    smooth = -fe.reduce_sum(each, axis) * valid
    if reduction == "mean":
        smooth = fe.reduce_sum(smooth) / fe.reduce_sum(w)
    elif reduction == "sum":
        smooth = fe.reduce_sum(smooth)
    return loss * (1 - label_smoothing) + smooth * (label_smoothing / c)


def _nll_from_logits(x, target, classes, weight, reduction, ignore_index, label_smoothing):
    x = as_var(x)
    logp = _log_softmax(x, 0 if x.ndim == 1 else 1)
    return _nll(logp, target, classes, weight, reduction, ignore_index, label_smoothing)


def _prob_targets(x, target, weight, reduction, label_smoothing):
    x = as_var(x)
    axis = 0 if x.ndim == 1 else 1
    c = x.shape[axis]
    logp = _log_softmax(x, axis)
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / c
    each = logp * target
    if weight is not None:
        each = each * _per_class(as_var(weight), x.ndim)
    loss = -fe.reduce_sum(each, axis)
    if reduction == "mean":  # torch divides by the number of samples, not by the weights
        return fe.reduce_sum(loss) / fe.numel(loss) if x.ndim > 1 else loss
    return fe.reduce_sum(loss) if reduction == "sum" else loss


def _check_smoothing(label_smoothing):
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or \
            not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    return float(label_smoothing)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """``-weight[t] * input[n, t]``, the mean normalised by the selected weights (torch's
    ``nll_loss``); ``input`` holds log-probabilities, ``(N, C, d...)`` or ``(C,)``."""
    reduction = _reduction(reduction)
    c = _check_class_target("nll_loss", input, target, weight, ignore_index)
    return dispatch("nll_loss", _nll, (input, target, _classes(c), weight),
                    {"reduction": reduction, "ignore_index": int(ignore_index)})


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's ``cross_entropy``: ``nll_loss(log_softmax(input, 1), target)`` for int64
    class indices, or ``-sum(target * log_softmax(input, 1))`` for class probabilities
    (a float ``target`` of the input's shape), with ``weight``, ``ignore_index`` (indices
    only), ``reduction`` and ``label_smoothing`` as torch defines them."""
    reduction, smoothing = _reduction(reduction), _check_smoothing(label_smoothing)
    if _dtype(target) in ("float32", "float64"):
        if _shape(target) != _shape(input):
            raise ValueError(f"cross_entropy: class-probability targets must have the input's "
                             f"shape {_shape(input)}, got {_shape(target)} (class indices "
                             f"must be int64)")
        if weight is not None and _shape(weight) != (_shape(input)[1 if len(_shape(input)) > 1
                                                                   else 0],):
            raise ValueError(f"cross_entropy: weight has shape {_shape(weight)}, expected one "
                             f"weight per class")
        return dispatch("cross_entropy_probs", _prob_targets, (input, target, weight),
                        {"reduction": reduction, "label_smoothing": smoothing})
    c = _check_class_target("cross_entropy", input, target, weight, ignore_index)
    return dispatch("cross_entropy", _nll_from_logits, (input, target, _classes(c), weight),
                    {"reduction": reduction, "label_smoothing": smoothing,
                     "ignore_index": int(ignore_index)})


def _bce_logits(x, y, weight, pos_weight, reduction):
    x = as_var(x)
    # torch's stable form: (1 - y) x + (1 + (pw - 1) y) softplus(-x)
    scale = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
    loss = (1 - as_var(y)) * x + scale * _softplus(-x)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """``-w [pw y log s(x) + (1 - y) log(1 - s(x))]`` computed without overflow for any x."""
    reduction = _reduction(reduction)
    if _shape(input) != _shape(target):
        raise ValueError(f"binary_cross_entropy_with_logits: target size {_shape(target)} "
                         f"must be the same as input size {_shape(input)}")
    return dispatch("binary_cross_entropy_with_logits", _bce_logits,
                    (input, target, weight, pos_weight), {"reduction": reduction})


__all__ = ["relu", "tanh", "sigmoid", "gelu", "softplus", "softmax", "log_softmax", "linear",
           "mse_loss", "l1_loss", "nll_loss", "cross_entropy", "binary_cross_entropy_with_logits",
           "conv1d", "batch_norm", "layer_norm", "dropout"]


from .conv import conv1d  # noqa: E402,F401  (the convolution and layer forms live apart)
from .layer_fns import batch_norm, dropout, layer_norm  # noqa: E402,F401
