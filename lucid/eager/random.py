"""lucid's random generator: what ``lucid.manual_seed`` seeds.

Initialisation (``lucid.nn`` layers and ``lucid.nn.init``), the keys of
dropout masks and data shuffling all draw from :func:`generator`, so one
``lucid.manual_seed(s)`` makes a run reproducible.

>>> import lucid
>>> _ = lucid.manual_seed(0); a = lucid.nn.Linear(2, 2).weight.data.copy()
>>> _ = lucid.manual_seed(0); bool((lucid.nn.Linear(2, 2).weight.data == a).all())
True
"""
from __future__ import annotations

import numbers

import numpy as np

_STATE = [np.random.default_rng()]


def manual_seed(seed):
    """Seed lucid's generator; returns it (as ``torch.manual_seed`` returns its generator)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"manual_seed takes an int, got {type(seed).__name__}")
    _STATE[0] = np.random.default_rng(int(seed))
    return _STATE[0]


def generator():
    """The current ``numpy.random.Generator`` every random draw in lucid uses."""
    return _STATE[0]


def new_key():
    """A fresh int64 key for a generator inside a program (a dropout mask's key)."""
    return int(_STATE[0].integers(0, 2**62))
