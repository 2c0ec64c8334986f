"""``lucid.data``: datasets, samplers and the ``DataLoader``, as ``torch.utils.data``.

Batches are lucid Tensors; loading happens in the calling process. Shuffling
draws from a :class:`lucid.Generator` when one is given, else from lucid's
default generator, so ``lucid.manual_seed(s)`` makes it reproducible.

>>> import numpy as np, lucid
>>> from lucid.data import DataLoader, TensorDataset
>>> ds = TensorDataset(lucid.Tensor(np.zeros((10, 3))), lucid.Tensor(np.arange(10)))
>>> _ = lucid.manual_seed(0); a = [y.numpy().tolist() for _, y in DataLoader(ds, 4, shuffle=True)]
>>> _ = lucid.manual_seed(0); b = [y.numpy().tolist() for _, y in DataLoader(ds, 4, shuffle=True)]
>>> a == b, [len(y) for y in a]
(True, [4, 4, 2])
"""
from .dataset import Dataset, Subset, TensorDataset, random_split
from .loader import DataLoader, default_collate, default_convert
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                      SubsetRandomSampler)

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader",
           "default_collate", "default_convert", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "BatchSampler"]
