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

from .autograd import note_write, run_backward
from .grad import is_grad_enabled

_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}


def as_dtype(dtype):
    """Normalise a dtype spelling (``"float64"``, ``np.float64``) to a numpy dtype."""
    try:
        d = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"unsupported dtype {dtype!r}") from e
    if d.name not in _DTYPES:
        raise TypeError(f"unsupported dtype {dtype!r}: lucid has float32, float64, int64 and bool")
    return d


_KEPT = (np.dtype("float32"), np.dtype("float64"), np.dtype("int64"), np.dtype(bool))


def _inferred(raw, data):
    """The dtype torch would give: floats float32 unless a float64 array, ints int64, bools bool."""
    kind = raw.dtype.kind
    if kind == "b":
        return np.dtype(bool)
    if kind in "iu":
        return np.dtype(np.int64)
    keep = isinstance(data, np.ndarray) and data.dtype == np.float64
    return np.dtype(np.float64 if keep else np.float32)


def to_array(data, dtype=None, copy=True):
    """Convert user data to an ndarray with the dtype torch infers.

    Python floats give float32, a float64 array stays float64, integer data
    gives int64 and bool data bool.

    A NumPy array that already has the wanted dtype is used as it is when
    ``copy`` is False (only in-place operations on the Tensor write into it).
    """
    if not copy and data.__class__ is not np.ndarray and isinstance(data, Tensor):
        data = data.data
    if not copy and data.__class__ is np.ndarray and (
            data.dtype in _KEPT if dtype is None else data.dtype == dtype):
        return data
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
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
    if dtype is None:
        dtype = _inferred(raw, data)
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
        ``"float32"``, ``"float64"``, ``"int64"`` or ``"bool"``; by default inferred
        as torch does (Python floats float32, a float64 array float64, integers
        int64, bools bool).

    Notes
    -----
    Like ``torch.as_tensor``, a NumPy array that already has the dtype asked
    for (or a float32, float64, int64 or bool one when none is asked) is shared, not copied:
    computing with it never writes into it, but in-place operations on the Tensor
    (``t += 1``, ``t[0] = 5``, an optimizer step) do, as in torch.
    Lists, other dtypes and Tensors are copied.

    Examples
    --------
    >>> t = Tensor([[1.0, 2.0]], requires_grad=True)
    >>> t.shape, t.dtype
    ((1, 2), dtype('float32'))
    >>> print(t)
    Tensor([[1., 2.]], grad=None)
    """

    # _past: set by an in-place op that extends the history, see autograd.origin_at;
    # _base: set on a view (eager.programs._views), the tensor whose memory it shares
    __slots__ = ("data", "requires_grad", "grad", "_origin", "_version", "_past", "_base",
                 "__weakref__")
    __array_ufunc__ = None  # ndarray * Tensor defers to Tensor.__rmul__ (keeps the gradient)

    def __init__(self, data, requires_grad=False, dtype=None):
        if data.__class__ is np.ndarray and dtype is None and data.dtype in _KEPT:
            self.data = data  # what to_array would keep: the common case, without a call
        else:
            self.data = to_array(data, dtype, copy=isinstance(data, Tensor))
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError("only floating point tensors can require gradients")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._origin = None  # (Call, output key) when a program made this tensor
        self._version = 0  # in-place writes so far: a backward checks what it saved

    @classmethod
    def _wrap(cls, array, origin=None):
        return wrap(array, origin, cls)

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)

    def numpy(self):
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a Python number, "
                             f"this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def size(self, dim=None):
        """The shape (a tuple), or the length of axis ``dim``."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    @property
    def is_leaf(self):
        """Made by the user rather than by a call that records for backward."""
        return self._origin is None

    def detach(self):
        """The same data (shared, as in torch) without history or ``requires_grad``."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` of a leaf in place; return the tensor."""
        if self._origin is not None and not requires_grad:
            raise RuntimeError("requires_grad_: a tensor made by an operation keeps its "
                               "history; use .detach() for one without")
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating point tensors can require gradients, this one "
                            f"is {self.data.dtype.name}")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_(self):
        """Set every element to 0 in place (see :meth:`copy_` for the rules)."""
        return self.copy_(np.zeros((), self.data.dtype))

    def copy_(self, src):
        """Write ``src`` (broadcast, converted to this dtype) into this tensor in place.

        As in torch, a leaf that requires grad can be written only under
        :class:`lucid.no_grad`; otherwise a RuntimeError, and nothing changes.
        """
        check_inplace(self, "copy_")
        if self._origin is not None and is_grad_enabled():
            raise RuntimeError("copy_: lucid does not record an overwrite of a tensor with "
                               "history; use the new value out of place, or no_grad")
        value = src.data if isinstance(src, Tensor) else np.asarray(src)
        if np.broadcast_shapes(value.shape, self.shape) != self.shape:
            raise ValueError(f"copy_: cannot broadcast {value.shape} to {self.shape}")
        write(self, np.broadcast_to(value, self.shape).astype(self.data.dtype, copy=False))
        return self

    def __getstate__(self):  # a copy is a leaf: its history belongs to the original
        return self.data, self.requires_grad and self._origin is None, self.grad

    def __setstate__(self, state):
        self.data, self.requires_grad, self.grad = state
        self._origin, self._version = None, 0

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        grad = "None" if self.grad is None else np.array2string(self.grad, precision=4,
                                                                 separator=", ")
        return f"Tensor({body}, grad={grad})"

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) · ``grad`` into ``.grad`` of every leaf and parameter.

        ``grad`` is the upstream gradient, of this tensor's shape; it may be
        left out only for a one-element tensor (it is then 1). As in torch,
        the calls walked drop what they saved unless ``retain_graph``: a second
        backward through them is then a RuntimeError.
        """
        if not self.requires_grad:
            raise ValueError("backward: this tensor does not require grad "
                             "(no input or parameter of the program that made it does)")
        data = self.data
        if grad is None:
            if data.size != 1:
                raise ValueError("backward: grad can be left out only for a one-element "
                                 f"output, this one has shape {data.shape}")
            grad = np.ones_like(data)
        else:
            if grad.__class__ is Tensor:  # the common spelling, torch's: its data as it is
                grad = grad.data
            if grad.__class__ is not np.ndarray or grad.dtype != data.dtype:
                grad = to_array(grad, data.dtype, copy=False)
        if grad.shape != data.shape:
            raise ValueError(f"backward: grad has shape {grad.shape}, expected {data.shape}")
        run_backward(self, grad, retain_graph)


def wrap(array, origin=None, cls=Tensor):
    """A Tensor over ``array`` as it is (no copy), made by the call ``origin`` if given."""
    t = cls.__new__(cls)
    if array.__class__ is not np.ndarray and not isinstance(array, np.ndarray):
        array = np.asarray(array)  # 0-d results come back as NumPy scalars
    t.data, t.requires_grad, t.grad, t._origin = array, origin is not None, None, origin
    t._version = 0
    return t


def check_inplace(tensor, what):
    """Refuse an in-place write torch refuses: to a leaf that requires grad, outside no_grad."""
    if tensor.requires_grad and tensor._origin is None and is_grad_enabled():
        raise RuntimeError(f"{what}: a leaf Tensor that requires grad is being used in an "
                           "in-place operation; do it under `with lucid.no_grad():`")


def write(tensor, value):
    """Store ``value`` into ``tensor.data`` in place (views of it see the change, as in
    torch); an array lucid may not write (a broadcast view) is replaced instead."""
    if tensor.data.flags.writeable:
        np.copyto(tensor.data, value, casting="same_kind")
        tensor._version += 1
        note_write(tensor.data)
    else:
        tensor.data = np.array(np.broadcast_to(value, tensor.shape), tensor.data.dtype)
