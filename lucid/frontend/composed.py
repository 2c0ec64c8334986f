"""Functions composed from the primitives with PyTorch's names and arguments.

:data:`COMPOSED` is the one table of them: ``lucid.<name>`` reads it, and so
do ``Var`` (here) and ``Tensor`` (:mod:`lucid.eager.methods`) for their
methods. Reductions take ``dim``/``keepdim`` and the NumPy spellings
``axis``/``keepdims``; shapes may hold one ``-1``.
"""
from __future__ import annotations

import math
import numbers
import operator
from math import prod

import numpy as np

from ..ops.shapes import normalize_axes
from .extrema import (amax, amin, argmax, argmin, clamp, dim_args, masked_fill, max_, maximum,
                      min_, minimum, where)
from .var import (Var, apply, as_var, broadcast_to, cast, matmul, mean, numel, reduce_sum,
                  reshape as _reshape)


def sum_(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Sum over ``dim`` (an int, a tuple, or None for all), as ``torch.sum``."""
    dim, keep = dim_args(dim, axis, keepdim, keepdims)
    return reduce_sum(x, dim, keep)


def mean_(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keep = dim_args(dim, axis, keepdim, keepdims)
    return mean(x, dim, keep)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(d if isinstance(d, str) else operator.index(d) for d in shape)


def _shifted(x, dim):
    """``x`` less its maximum along ``dim``, so that ``exp`` cannot overflow. Both softmaxes are
    the same function of ``x`` whatever the shift, so no gradient flows into it (``detach``,
    as JAX's ``stop_gradient``): the backward is torch's ``s (g - sum(g s))``, without the
    maximum's tie mask and the two passes and reduction it cost."""
    return apply("sub", x, apply("detach", amax(x, dim, True)))


def softmax(x, dim):
    """``exp(x) / sum(exp(x))`` along ``dim``, shifted by the maximum so it cannot overflow."""
    e = apply("exp", _shifted(x, dim))
    return apply("div", e, reduce_sum(e, dim, True))


def log_softmax(x, dim):
    shifted = _shifted(x, dim)
    return apply("sub", shifted, apply("log", reduce_sum(apply("exp", shifted), dim, True)))


def softplus(x, beta=1.0, threshold=20.0):
    """torch's ``softplus``: ``log1p(exp(beta x)) / beta``, and ``x`` where ``beta x >
    threshold``. The exponent is capped at ``threshold`` so that neither the value nor its
    derivative (``sigmoid(beta x)``) overflows, even on the side ``where`` drops."""
    x = as_var(x)
    bx = x if beta == 1 else apply("mul", x, beta)
    over = apply("gt", bx, threshold)
    soft = apply("log1p", apply("exp", where(over, threshold, bx)))
    return where(over, x, soft if beta == 1 else apply("div", soft, beta))


_GELU = ("none", "tanh")


def gelu(x, approximate="none"):
    """torch's GELU: ``x/2 (1 + erf(x/sqrt(2)))``, or with ``approximate="tanh"``
    ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    if approximate not in _GELU:
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = as_var(x)
    if approximate == "tanh":
        cube = apply("mul", apply("mul", x, x), x)
        inner = apply("add", x, apply("mul", cube, 0.044715))
        curve = apply("tanh", apply("mul", inner, math.sqrt(2 / math.pi)))
    else:
        curve = apply("erf", apply("mul", x, math.sqrt(0.5)))
    return apply("mul", apply("mul", x, 0.5), apply("add", curve, 1))


def reshape(x, *shape):
    """``x`` with ``shape``; one dim may be -1 (inferred from the others)."""
    x, shape = as_var(x), _shape_arg(shape)
    if shape.count(-1) > 1:
        raise ValueError("reshape: only one dim can be -1")
    if -1 in shape:
        shape = tuple(_fill(x.shape, shape) if d == -1 else d for d in shape)
    return x if shape == x.shape else _reshape(x, shape)


def _fill(have, shape):
    """The dim a -1 in ``shape`` stands for, reshaping ``have``: the static sizes divide, and
    the symbolic sizes (a batch ``N``) match, but for at most one of ``have``'s, which is
    the -1 (``x.view(x.size(0), -1)`` of ``(N, 4, 6)`` is ``(N, 24)``; ``x.view(-1, 24)`` is
    ``(N, 24)`` too). A -1 for ``N`` times a static size (``x.view(-1)``) has no name."""
    symbols = [d for d in have if isinstance(d, str)]
    for d in shape:
        if isinstance(d, str):
            if d not in symbols:
                raise ValueError(f"reshape: {shape} names the size {d!r}, which {have} lacks")
            symbols.remove(d)
    size = prod(d for d in have if not isinstance(d, str))
    other = prod(d for d in shape if not isinstance(d, str) and d != -1)
    if other == 0 or size % other or len(symbols) > 1:
        raise ValueError(f"reshape: cannot reshape {have} into {shape}")
    if not symbols:
        return size // other
    if size != other:
        raise ValueError(
            f"reshape: the -1 of {shape} would be {symbols[0]} x {size // other} from {have}, a "
            f"product of a symbolic size that lucid does not name; keep the batch axis "
            f"(x.view(x.size(0), -1), x.flatten(1))")
    return symbols[0]


def flatten(x, start_dim=0, end_dim=-1):
    x = as_var(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = normalize_axes("flatten", (start_dim, end_dim), x.ndim) if start_dim % x.ndim \
        != end_dim % x.ndim else (start_dim % x.ndim,) * 2
    middle = x.shape[start:end + 1]
    joined = prod(middle) if not any(isinstance(d, str) for d in middle) else \
        middle[0] if len(middle) == 1 else None
    if joined is None:
        raise ValueError(f"flatten: cannot join the symbolic dims {middle}")
    return reshape(x, x.shape[:start] + (joined,) + x.shape[end + 1:])


def unsqueeze(x, dim):
    x = as_var(x)
    (dim,) = normalize_axes("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def squeeze(x, dim=None):
    x = as_var(x)
    dims = range(x.ndim) if dim is None else normalize_axes("squeeze", dim, x.ndim)
    drop = {d for d in dims if x.shape[d] == 1}
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in drop))


def permute(x, *dims):
    x = as_var(x)
    dims = _shape_arg(dims)
    perm = tuple(d % x.ndim if -x.ndim <= d < x.ndim else d for d in dims)
    return x if perm == tuple(range(x.ndim)) else apply("transpose", x, perm=perm)


def transpose(x, dim0, dim1=None):
    """``torch.transpose(x, dim0, dim1)`` swaps two axes; ``transpose(x, perm)`` permutes."""
    x = as_var(x)
    if dim1 is None:
        return permute(x, dim0)
    a, b = normalize_axes("transpose", dim0, x.ndim)[0], normalize_axes("transpose", dim1,
                                                                          x.ndim)[0]
    perm = list(range(x.ndim))
    perm[a], perm[b] = b, a
    return permute(x, perm)


def t(x):
    x = as_var(x)
    return permute(x, tuple(reversed(range(x.ndim))))


def pow_(x, exponent):
    """``x ** exponent``; a constant exponent is the ``pow`` primitive, a tensor one the
    ``power`` primitive (the real power: ``(-2) ** 2 = 4``, ``0 ** 0 = 1``, as torch)."""
    if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool):
        x = as_var(x)
        if not isinstance(exponent, numbers.Integral) and x.dtype not in ("float32", "float64"):
            x = cast(x, "float32")  # torch: an integer tensor to a float power is float32
        k = int(exponent) if float(exponent).is_integer() else float(exponent)
        if k == 1:
            return as_var(x)
        if k == 2:
            return apply("mul", x, x)
        return apply("pow", x, exponent=k)
    return apply("power", x, exponent)


def rpow(x, base):
    """``base ** x`` for a number ``base``."""
    return apply("power", base, x)


def clone(x):
    """A copy with the same value (differentiable, as torch's)."""
    x = as_var(x)
    return apply("reshape", x, shape=tuple(x.shape))


def to(x, dtype):
    return cast(x, str(dtype) if not hasattr(dtype, "name") else dtype.name)


def index_key(key, shape):
    """A NumPy-style key as the ``index`` op's key and its integer index arrays.

    Bool masks become the integer positions of their True elements (they are
    data, so only an array, not a symbolic value, can be a mask); ints beside
    index arrays become 0-d index arrays, as NumPy treats them. Index arrays
    (NumPy arrays or int64 Vars) are returned in order, as the op's inputs.
    """
    key = key if isinstance(key, tuple) else (key,)
    items, arrays = [], []
    for k in key:
        if isinstance(k, Var):
            if k.dtype != "int64":
                raise IndexError(f"a symbolic index must be int64 (a bool mask selects a "
                                 f"data-dependent count, known only on the Tensor face), "
                                 f"got {k.dtype}")
            items.append(("array", len(arrays)))
            arrays.append(k)
            continue
        if isinstance(k, list):
            k = np.asarray(k)
        if isinstance(k, np.ndarray) and k.dtype == bool:
            for a in np.nonzero(k):
                items.append(("array", len(arrays)))
                arrays.append(a.astype(np.int64))
        elif isinstance(k, np.ndarray):
            if k.dtype.kind not in "iu":
                raise IndexError(f"index arrays must be integer or bool, got {k.dtype}")
            items.append(("array", len(arrays)))
            arrays.append(k.astype(np.int64, copy=False))
        else:
            items.append(k)
    used = sum(1 for k in items if k is not None and k is not Ellipsis)
    if sum(k is Ellipsis for k in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if used > len(shape):
        raise IndexError(f"too many indices for tensor of dimension {len(shape)}")
    spec, advanced = [], any(isinstance(k, tuple) for k in items)
    for k in items:
        if k is Ellipsis:
            spec += [("slice", None, None, None)] * (len(shape) - used)
        elif k is None:
            spec.append(("new",))
        elif isinstance(k, slice):
            spec.append(("slice",) + tuple(None if v is None else operator.index(v)
                                           for v in (k.start, k.stop, k.step)))
        elif isinstance(k, tuple):
            spec.append(k)
        elif isinstance(k, numbers.Integral) and not isinstance(k, bool):
            if advanced:
                spec.append(("array", len(arrays)))
                arrays.append(np.asarray(int(k), np.int64))
            else:
                spec.append(("int", int(k)))
        else:
            raise IndexError(f"lucid indexes with ints, slices, None, ..., bool masks and "
                             f"integer arrays; got {type(k).__name__}")
    return tuple(spec), arrays


def getitem(x, key):
    """``x[key]`` on a symbolic value (see :func:`index_key`)."""
    x = as_var(x)
    spec, indices = index_key(key, x.shape)
    return index(x, spec, *[i if isinstance(i, Var) else _refuse_array(i) for i in indices])


def _refuse_array(a):
    raise IndexError("an index array inside a traced definition must be a lucid Tensor or "
                     "Var (a NumPy array would be baked into the program)")


def index(x, key, *indices):
    """``x[key]`` for a key already in the ``index`` op's form (see :mod:`lucid.ops.indexing`)."""
    return apply("index", x, *indices, key=key)


#: name -> (function, also a method of Var and Tensor?)
COMPOSED = {
    "sum": (sum_, True),
    "reduce_sum": (reduce_sum, False),
    "mean": (mean_, True),
    "numel": (numel, False),
    "amax": (amax, True),
    "amin": (amin, True),
    "argmax": (argmax, True),
    "argmin": (argmin, True),
    "max": (max_, True),
    "min": (min_, True),
    "maximum": (maximum, True),
    "minimum": (minimum, True),
    "clamp": (clamp, True),
    "clip": (clamp, True),
    "where": (where, False),
    "masked_fill": (masked_fill, True),
    "softmax": (softmax, True),
    "log_softmax": (log_softmax, True),
    "softplus": (softplus, True),
    "gelu": (gelu, False),
    "reshape": (reshape, True),
    "view": (reshape, True),
    "flatten": (flatten, True),
    "unsqueeze": (unsqueeze, True),
    "squeeze": (squeeze, True),
    "permute": (permute, True),
    "transpose": (transpose, True),
    "t": (t, True),
    "pow": (pow_, True),
    "clone": (clone, True),
    "to": (to, False),
    "cast": (cast, False),
    "broadcast_to": (broadcast_to, False),
    "matmul": (matmul, False),
}

for _name, (_fn, _is_method) in COMPOSED.items():
    if _is_method:
        setattr(Var, _name, _fn)
Var.T = property(t)
Var.__getitem__ = getitem
Var.__pow__ = pow_
Var.__rpow__ = rpow
