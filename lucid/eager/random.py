"""lucid's random generators: what ``lucid.manual_seed`` seeds, and ``lucid.Generator``.

Initialisation (``lucid.nn`` layers and ``lucid.nn.init``), the keys of
dropout masks (drawn at every call, not when a layer is built) and data
shuffling all draw from the default generator, so one ``lucid.manual_seed(s)``
makes a run reproducible. A :class:`Generator` of your own, passed as
``generator=`` to a sampler, a ``DataLoader`` or ``random_split``, draws
apart from it, as in torch.

>>> import lucid
>>> _ = lucid.manual_seed(0); a = lucid.nn.Linear(2, 2).weight.data.copy()
>>> _ = lucid.manual_seed(0); bool((lucid.nn.Linear(2, 2).weight.data == a).all())
True
"""
from __future__ import annotations

import numbers

import numpy as np

#: The seed of a new Generator, as torch's (``torch.Generator().initial_seed()``).
DEFAULT_SEED = 67280421310721
_UINT64 = 2**64


class Generator:
    """A source of random numbers with its own state, as ``torch.Generator``.

    Parameters
    ----------
    device : str
        ``"cpu"``, the only device lucid has (accepted for torch's signature).

    Examples
    --------
    >>> import lucid
    >>> g = lucid.Generator()
    >>> g.manual_seed(0).initial_seed()
    0
    >>> a = g.numpy().permutation(5)
    >>> _ = g.manual_seed(0); bool((g.numpy().permutation(5) == a).all())
    True
    """

    def __init__(self, device="cpu"):
        if str(device) != "cpu":
            raise ValueError(f"lucid has one device, 'cpu'; got {device!r}")
        self.device = "cpu"
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed):
        """Reseed from ``seed`` (an int in ``[-2**63, 2**64)``; a negative seed counts
        from ``2**64 - 1`` as torch's); returns the generator."""
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"manual_seed takes an int, got {type(seed).__name__}")
        seed = int(seed)
        if not -2**63 <= seed < _UINT64:
            raise ValueError(f"manual_seed: {seed} is outside [-2**63, 2**64)")
        self._seed = seed if seed >= 0 else _UINT64 - 1 + seed
        self._rng = np.random.default_rng(self._seed)
        return self

    def seed(self):
        """Reseed from a non-deterministic source; returns the new seed."""
        self.manual_seed(int(np.random.SeedSequence().generate_state(1, np.uint64)[0]))
        return self._seed

    def initial_seed(self):
        """The seed this generator was last seeded with."""
        return self._seed

    def numpy(self):
        """The ``numpy.random.Generator`` holding this generator's state (every draw goes
        through it, so reseeding replaces it)."""
        return self._rng

    def __repr__(self):
        return f"<lucid.Generator initial_seed={self._seed}>"


_DEFAULT = Generator()
_DEFAULT.seed()  # lucid's default generator starts unpredictable, as numpy's


def manual_seed(seed):
    """Seed lucid's default generator; returns it (as ``torch.manual_seed`` does).

    Examples
    --------
    >>> import lucid
    >>> lucid.manual_seed(3).initial_seed()
    3
    """
    return _DEFAULT.manual_seed(seed)


def default_generator():
    """lucid's default :class:`Generator`, the one :func:`manual_seed` seeds."""
    return _DEFAULT


def generator(of=None):
    """The ``numpy.random.Generator`` a draw uses: ``of``'s (a :class:`Generator`) if
    given, else the default generator's."""
    if of is None:
        return _DEFAULT.numpy()
    if not isinstance(of, Generator):
        raise TypeError(f"generator must be a lucid.Generator, got {type(of).__name__}")
    return of.numpy()


def new_key():
    """A fresh int64 key for a generator inside a program (a dropout mask's key),
    drawn from the default generator."""
    # 62 raw bits: a non-negative int64, at a fraction of ``integers``' cost (once per call)
    return np.asarray(_DEFAULT.numpy().bit_generator.random_raw() >> 2, dtype=np.int64)
