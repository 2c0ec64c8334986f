"""The Tensor face: arrays that remember which compiled program made them.

A Tensor is data plus, when it came out of a program that can differentiate,
the *call* that produced it. ``backward`` walks those calls newest first and
runs each program's compiled backward (:mod:`.autograd`); nothing here
differentiates by itself, the graphs are the single source of truth. Its
operators and op methods (``t + u``, ``t.exp()``) are installed from the op
records by :mod:`.methods`.
"""
from __future__ import annotations

import numpy as np

from .autograd import run_backward

_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}


def as_dtype(dtype):
    """Normalise a dtype spelling (``"float64"``, ``np.float64``) to a numpy dtype."""
    try:
        d = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"unsupported dtype {dtype!r}") from e
    if d.name not in _DTYPES:
        raise TypeError(f"unsupported dtype {dtype!r}: lucid has float32, float64 and int64")
    return d


_FLOATS = (np.dtype("float32"), np.dtype("float64"))


def to_array(data, dtype=None, copy=True):
    """Convert user data to an ndarray: float32 by default, float64 arrays kept.

    A NumPy array that already has the wanted dtype is used as it is when
    ``copy`` is False (lucid never writes into an array it was given).
    """
    if not copy and data.__class__ is not np.ndarray and isinstance(data, Tensor):
        data = data.data
    if not copy and data.__class__ is np.ndarray and (
            data.dtype in _FLOATS if dtype is None else data.dtype == dtype):
        return data
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None:
        keep = isinstance(data, np.ndarray) and data.dtype == np.float64
        dtype = np.float64 if keep else np.float32
    dtype = as_dtype(dtype)
    try:
        raw = np.asarray(data)
    except ValueError:
        raise ValueError("Tensor data must be a rectangular nested list of numbers "
                         "(ragged data given)") from None
    if raw.dtype == object:
        raise ValueError("Tensor data must be a rectangular nested list of numbers (ragged or mixed data given)")
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be numeric, got {raw.dtype.name} data")
    return np.array(raw, dtype=dtype, copy=True if copy else None)


class Tensor:
    """An array with an optional gradient.

    Parameters
    ----------
    data : array_like
        Numbers; a nested list must be rectangular.
    requires_grad : bool
        Whether ``backward`` should fill ``.grad`` for this tensor.
    dtype : str or numpy dtype, optional
        ``"float32"`` (the default), ``"float64"`` or ``"int64"``.

    Notes
    -----
    Like ``torch.as_tensor``, a NumPy array that already has the dtype asked
    for (float32 or float64 when none is asked) is shared, not copied: lucid
    never writes into it, but changing it in place changes the Tensor.
    Lists, other dtypes and Tensors are copied.

    Examples
    --------
    >>> t = Tensor([[1.0, 2.0]], requires_grad=True)
    >>> t.shape, t.dtype
    ((1, 2), dtype('float32'))
    >>> print(t)
    Tensor([[1., 2.]], grad=None)
    """

    __slots__ = ("data", "requires_grad", "grad", "_origin", "__weakref__")
    __array_ufunc__ = None  # ndarray * Tensor defers to Tensor.__rmul__ (keeps the gradient)

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = to_array(data, dtype, copy=isinstance(data, Tensor))
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError("only floating point tensors can require gradients")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._origin = None  # (Call, output key) when a program made this tensor

    @classmethod
    def _wrap(cls, array, origin=None):
        t = cls.__new__(cls)
        if not isinstance(array, np.ndarray):
            array = np.asarray(array)  # 0-d results come back as NumPy scalars
        t.data, t.requires_grad, t.grad, t._origin = array, origin is not None, None, origin
        return t

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        grad = "None" if self.grad is None else np.array2string(self.grad, precision=4,
                                                                 separator=", ")
        return f"Tensor({body}, grad={grad})"

    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) · ``grad`` into ``.grad`` of every leaf and parameter.

        ``grad`` is the upstream gradient, of this tensor's shape; it may be
        left out only for a one-element tensor (it is then 1).
        """
        if not self.requires_grad:
            raise ValueError("backward: this tensor does not require grad "
                             "(no input or parameter of the program that made it does)")
        if grad is None:
            if self.data.size != 1:
                raise ValueError("backward: grad can be left out only for a one-element "
                                 f"output, this one has shape {self.shape}")
            grad = np.ones_like(self.data)
        grad = to_array(grad, self.data.dtype, copy=False)
        if grad.shape != self.shape:
            raise ValueError(f"backward: grad has shape {grad.shape}, expected {self.shape}")
        run_backward(self, grad)
