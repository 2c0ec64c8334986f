"""Datasets, as torch's: the abstract ``Dataset``, ``TensorDataset``, ``Subset``, ``random_split``."""
from __future__ import annotations

import abc
import itertools
import math
import numbers
import warnings

from ..eager import Tensor
from ..eager.random import generator as numpy_generator


class Dataset(abc.ABC):
    """A map-style dataset: ``dataset[i]`` is the ``i``-th sample, ``len(dataset)`` their count.

    Examples
    --------
    >>> from lucid.data import Dataset
    >>> class Squares(Dataset):
    ...     def __getitem__(self, i):
    ...         return i * i
    ...     def __len__(self):
    ...         return 4
    >>> [Squares()[i] for i in range(len(Squares()))]
    [0, 1, 4, 9]
    """

    @abc.abstractmethod
    def __getitem__(self, index):
        """The sample at ``index``."""

    @abc.abstractmethod
    def __len__(self):
        """The number of samples."""


class TensorDataset(Dataset):
    """Samples are rows of tensors that share their first dimension: ``dataset[i]`` is
    ``(t[i] for t in tensors)`` as a tuple.

    The rows are views of the tensors' data, without gradient tracking (loading
    data needs none).

    Examples
    --------
    >>> import numpy as np
    >>> from lucid import Tensor
    >>> from lucid.data import TensorDataset
    >>> ds = TensorDataset(Tensor(np.arange(6.0).reshape(3, 2)), Tensor([0, 1, 0]))
    >>> len(ds), ds[1]
    (3, (Tensor([2., 3.], grad=None), Tensor(1, grad=None)))
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset takes lucid Tensors, argument {i} is a "
                                f"{type(t).__name__}")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; samples are rows of "
                                 "the first dimension")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) != 1:
            raise ValueError(f"Size mismatch between tensors: first dimensions {sizes}")
        self.tensors = tuple(tensors)

    def __getitem__(self, index):
        return tuple(Tensor._wrap(t.data[index]) for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    >>> from lucid.data import Subset
    >>> sub = Subset(["a", "b", "c", "d"], [3, 0])
    >>> len(sub), sub[0], [sub[i] for i in range(len(sub))]
    (2, 'd', ['d', 'a'])
    """

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        """The samples at ``indices`` as a list (what a DataLoader collates)."""
        inner = [self.indices[i] for i in indices]
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random :class:`Subset` s of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to 1:
    each split then gets ``floor(len * fraction)`` samples and the remainder is
    dealt out one by one from the first split, as torch does. The order is a
    permutation drawn from ``generator`` (a :class:`lucid.Generator`), else
    from lucid's default generator.

    Examples
    --------
    >>> import lucid
    >>> from lucid.data import random_split
    >>> parts = random_split(range(10), [0.5, 0.3, 0.2], generator=lucid.Generator().manual_seed(0))
    >>> [len(p) for p in parts], sorted(i for p in parts for i in p)
    ([5, 3, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    lengths = list(lengths)
    for i, n in enumerate(lengths):
        if isinstance(n, bool) or not isinstance(n, numbers.Real):
            raise TypeError(f"random_split: length at index {i} is a {type(n).__name__}")
    total = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(total * frac)))
        for i in range(total - sum(counts)):
            counts[i % len(counts)] += 1
        for i, n in enumerate(counts):
            if n == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an "
                              "empty dataset.", stacklevel=2)
        lengths = counts
    if any(n < 0 or n != int(n) for n in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions "
                         f"summing to 1, got {lengths}")
    lengths = [int(n) for n in lengths]
    if sum(lengths) != total:
        raise ValueError(f"Sum of input lengths ({sum(lengths)}) does not equal the length of "
                         f"the input dataset ({total})!")
    rng = numpy_generator(generator)
    order = rng.permutation(total).tolist()
    return [Subset(dataset, order[end - n:end])
            for end, n in zip(itertools.accumulate(lengths), lengths)]
