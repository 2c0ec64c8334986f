"""A model factory for the ``lucid inspect`` examples in the README.

    lucid inspect examples/model.py:make_net --input x:N,64 --mode train --format listing
"""
import lucid.nn as nn


def make_net():
    """Linear(64, 32) -> BatchNorm1d(32) -> ReLU -> Linear(32, 10)."""
    return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
