"""Samplers: which indices a DataLoader visits, in what order and in which batches, as torch's.

A random order is drawn when iteration starts, from the sampler's ``generator``
(a :class:`lucid.Generator`) if it has one, else from lucid's default
generator, so ``lucid.manual_seed(s)`` makes shuffling reproducible.
"""
from __future__ import annotations

import abc
import numbers

from ..eager.random import Generator, generator as numpy_generator


def _check_generator(generator):
    if generator is not None and not isinstance(generator, Generator):
        raise TypeError(f"generator must be a lucid.Generator, got {type(generator).__name__}")
    return generator


class Sampler(abc.ABC):
    """Iterates over indices (or, for a batch sampler, lists of indices) of a dataset."""

    @abc.abstractmethod
    def __iter__(self):
        """The indices, in order."""


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``.

    >>> from lucid.data import SequentialSampler
    >>> list(SequentialSampler(range(3)))
    [0, 1, 2]
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """The indices in a random order: a permutation, or with ``replacement`` independent draws.

    ``num_samples`` (default ``len(data_source)``) indices are yielded; without
    replacement, more than the dataset holds come as successive permutations.

    >>> import lucid
    >>> from lucid.data import RandomSampler
    >>> sampler = RandomSampler(range(5), generator=lucid.Generator().manual_seed(0))
    >>> sorted(sampler), len(sampler)
    ([0, 1, 2, 3, 4], 5)
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got "
                            f"replacement={replacement}")
        if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(
                num_samples, numbers.Integral) or num_samples <= 0):
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        self.data_source, self.replacement = data_source, replacement
        self._num_samples = None if num_samples is None else int(num_samples)
        self.generator = _check_generator(generator)
        if self.num_samples <= 0:  # torch refuses here, not on iteration
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, count = len(self.data_source), self.num_samples
        rng = numpy_generator(self.generator)
        if self.replacement:
            yield from rng.integers(0, n, size=count).tolist()
            return
        for _ in range(count // n):
            yield from rng.permutation(n).tolist()
        if count % n:
            yield from rng.permutation(n)[:count % n].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order (a permutation of them).

    >>> import lucid
    >>> from lucid.data import SubsetRandomSampler
    >>> sorted(SubsetRandomSampler([7, 3, 5], generator=lucid.Generator().manual_seed(0)))
    [3, 5, 7]
    """

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = _check_generator(generator)

    def __iter__(self):
        for i in numpy_generator(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups ``sampler``'s indices into lists of ``batch_size``; the last, shorter one is
    kept unless ``drop_last``.

    >>> from lucid.data import BatchSampler, SequentialSampler
    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    >>> len(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=True))
    2
    """

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or \
                batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
