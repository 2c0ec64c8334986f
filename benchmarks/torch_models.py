"""The optional torch column of the benchmarks: a lucid Sequential copied into torch."""
from __future__ import annotations


def to_torch(model):
    """``torch.nn.Sequential`` with the same Linear weights, BatchNorm1d and ReLU layers as the
    lucid ``model``, in train mode; ``None`` when torch is not installed (not a dependency)."""
    try:
        import torch
    except ImportError:
        return None
    layers = []
    for m in model:
        kind = type(m).__name__
        if kind == "Linear":
            t = torch.nn.Linear(m.in_features, m.out_features)
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(m.weight.data))
                t.bias.copy_(torch.from_numpy(m.bias.data))
        elif kind == "BatchNorm1d":
            t = torch.nn.BatchNorm1d(m.num_features)
        else:
            t = torch.nn.ReLU()
        layers.append(t)
    return torch.nn.Sequential(*layers).train()
