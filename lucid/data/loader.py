"""``DataLoader`` and torch's default collation: samples in, batches of Tensors out.

Everything loads in the calling process (``num_workers`` is accepted for
torch's signature; the batches are the same ones, in the same order).
"""
from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from ..eager import Tensor, to_array
from ..eager.random import Generator
from .dataset import Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler

_COLLATE_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts "
                  "or lists; found {}")


def _numpy_value(x):
    return type(x).__module__ == "numpy" and not isinstance(x, (np.str_, np.bytes_))


def _as_tensor(array):
    if array.dtype.kind in "SaUO":
        raise TypeError(_COLLATE_ERROR.format(array.dtype))
    return Tensor._wrap(to_array(array, copy=False))


def default_collate(batch):
    """Stack a list of samples into a batch, as ``torch.utils.data.default_collate``.

    Tensors and NumPy arrays are stacked along a new first dimension; Python
    floats give a float64 Tensor, ints an int64 one (bools a bool one); strings
    stay a list; dicts, named tuples and sequences are collated field by field
    (a tuple sample gives a *list* of batches, as in torch).

    Examples
    --------
    >>> from lucid import Tensor
    >>> from lucid.data import default_collate
    >>> x, y = default_collate([(Tensor([1.0, 2.0]), 0), (Tensor([3.0, 4.0]), 1)])
    >>> x.shape, y.dtype
    ((2, 2), dtype('int64'))
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {b.shape for b in batch}
        if len(shapes) != 1:
            raise RuntimeError(f"stack expects each tensor to be equal size, got {sorted(shapes)}")
        return Tensor._wrap(np.stack([b.data for b in batch]))
    if _numpy_value(elem):
        if isinstance(elem, np.ndarray):
            return default_collate([_as_tensor(b) for b in batch])
        if getattr(elem, "shape", None) == ():  # NumPy scalars keep their dtype
            return _as_tensor(np.array(batch))
    if isinstance(elem, numbers.Real) and not isinstance(elem, numbers.Integral):
        return Tensor(batch, dtype="float64")
    if isinstance(elem, numbers.Integral):
        return Tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        fields = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(fields)
        except TypeError:  # a mapping that cannot be built from a dict
            return fields
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a named tuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data):
    """One sample without batching (``batch_size=None``): NumPy arrays become Tensors,
    everything else is kept, field by field in dicts and sequences (a tuple becomes a
    list, as in torch).

    >>> import numpy as np
    >>> from lucid.data import default_convert
    >>> default_convert((np.zeros(2), 3))
    [Tensor([0., 0.], grad=None), 3]
    """
    if isinstance(data, Tensor):
        return data
    if _numpy_value(data):
        if isinstance(data, np.ndarray):
            return data if data.dtype.kind in "SaUO" else _as_tensor(data)
        return data
    if isinstance(data, collections.abc.Mapping):
        return type(data)({k: default_convert(v) for k, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


def _rows(dataset, indices):
    """The tensors and row indices under a TensorDataset seen through Subsets, or None.

    Exact classes only: a subclass may change what an item is.
    """
    while type(dataset) is Subset:
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    if type(dataset) is TensorDataset:
        return dataset.tensors, np.asarray(indices, dtype=np.int64)
    return None


class DataLoader:
    """Batches of samples from a dataset, as ``torch.utils.data.DataLoader`` (in-process).

    Parameters
    ----------
    dataset : Dataset
        Anything with ``__getitem__`` and ``__len__``.
    batch_size : int or None
        Samples per batch (default 1); None yields single samples, unbatched.
    shuffle : bool
        Visit the samples in a new random order every epoch, drawn from
        ``generator`` or else from lucid's default generator (so
        ``lucid.manual_seed`` makes it reproducible).
    sampler, batch_sampler : Sampler, optional
        Which indices to visit (exclusive with ``shuffle``), or which batches
        (exclusive with ``batch_size``, ``shuffle``, ``sampler`` and ``drop_last``).
    collate_fn : callable, optional
        Turns a list of samples into a batch; default :func:`default_collate`.
    drop_last : bool
        Leave out the last batch when it is short.
    generator : lucid.Generator, optional
        Where the shuffled order comes from.

    Examples
    --------
    >>> import numpy as np, lucid
    >>> from lucid.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(lucid.Tensor(np.arange(10.0).reshape(5, 2)), lucid.Tensor(np.arange(5)))
    >>> loader = DataLoader(ds, batch_size=2)
    >>> len(loader), [y.numpy().tolist() for x, y in loader]
    (3, [[0, 1], [2, 3], [4]])
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False):
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or \
                num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"generator must be a lucid.Generator, got {type(generator).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else \
                SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory, self.timeout = num_workers, pin_memory, timeout
        self.auto_collation = batch_sampler is not None
        if collate_fn is None:
            collate_fn = default_collate if self.auto_collation else default_convert
        self.collate_fn = collate_fn

    def _index_sampler(self):
        return self.batch_sampler if self.auto_collation else self.sampler

    def __len__(self):
        return len(self._index_sampler())

    def __iter__(self):
        if not self.auto_collation:
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])
            return
        fetch = getattr(self.dataset, "__getitems__", None)
        for indices in self.batch_sampler:
            rows = _rows(self.dataset, indices) if self.collate_fn is default_collate else None
            if rows is not None:  # what collating the samples gives, gathered at once
                tensors, at = rows
                yield [Tensor._wrap(t.data[at]) for t in tensors]
            elif callable(fetch):
                yield self.collate_fn(fetch(indices))
            else:
                yield self.collate_fn([self.dataset[i] for i in indices])
