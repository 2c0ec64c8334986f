"""One training step (forward, cross-entropy, backward, Adam update) of two MLPs, three ways.

    python benchmarks/bench_training.py            # both models
    python benchmarks/bench_training.py --quick    # fewer rounds
    python benchmarks/bench_training.py --threads 1   # NumPy's BLAS and torch on one thread

Models (float32, BatchNorm1d in train mode, int64 labels, Adam lr 1e-3):
  digits  64-128-BN-ReLU-64-BN-ReLU-10, batch 32 (the examples/train_digits.py MLP)
  wide    64-1024-BN-ReLU-512-BN-ReLU-10, batch 128
Columns:
  lucid step   - lucid.compile(loss_fn, x, y, optimizer=opt): one program per step
  lucid eager  - zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()
  torch        - the same loop in torch on the CPU (torch.optim.Adam, its defaults) with its
                 default thread count, when torch is installed (an optional column, not a
                 dependency), in its default environment
Every implementation steps its own copy of the same initial parameters on the same
batches; each runs in blocks of consecutive steps, the blocks in shuffled order (medians;
timing.measure with blocks: torch's OpenMP threads spin after a call).
"""
from __future__ import annotations

import argparse
import os
import random
import sys

if "--threads" in sys.argv[:-1]:  # BLAS and OpenMP read these when they start: before numpy
    _threads = sys.argv[sys.argv.index("--threads") + 1]
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_name] = _threads

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lucid  # noqa: E402
import lucid.nn as nn  # noqa: E402
import lucid.nn.functional as F  # noqa: E402
from lucid import Tensor  # noqa: E402
from timing import BLOCKS, measure  # noqa: E402
from torch_models import to_torch  # noqa: E402

MODELS = {"digits": (64, 128, 64, 32), "wide": (64, 1024, 512, 128)}  # in, h1, h2, batch


def lucid_model(sizes, seed=0):
    d, h1, h2, _ = sizes
    lucid.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h1), nn.BatchNorm1d(h1), nn.ReLU(),
                         nn.Linear(h1, h2), nn.BatchNorm1d(h2), nn.ReLU(), nn.Linear(h2, 10))


def batches(sizes, count=16):
    rng = np.random.default_rng(1)
    return [(rng.normal(size=(sizes[3], sizes[0])).astype(np.float32),
             rng.integers(0, 10, sizes[3])) for _ in range(count)]


def cycle(impl, data):
    state = {"i": 0}

    def call():
        x, y = data[state["i"] % len(data)]
        state["i"] += 1
        impl(x, y)
    return call


def implementations(sizes, data):
    model = lucid_model(sizes)
    opt = lucid.optim.Adam(model.parameters(), lr=1e-3)
    x = lucid.placeholder((None, sizes[0]), name="x")
    y = lucid.placeholder((None,), "int64", name="y")
    step = lucid.compile(lambda a, b: F.cross_entropy(model(a), b), x, y, optimizer=opt)

    eager = lucid_model(sizes)
    eager_opt = lucid.optim.Adam(eager.parameters(), lr=1e-3)

    def eager_step(xb, yb):
        eager_opt.zero_grad()
        loss = F.cross_entropy(eager(Tensor(xb)), Tensor(yb))
        loss.backward()
        eager_opt.step()

    impls = {"lucid step": cycle(step, data), "lucid eager": cycle(eager_step, data)}
    torch_step = torch_implementation(model, data)
    if torch_step is not None:
        impls["torch"] = torch_step
    return impls


def torch_implementation(model, data):
    net = to_torch(model)
    if net is None:
        return None
    import torch
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]

    def step(xb, yb):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
    return cycle(step, tensors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for NumPy's BLAS and torch (default: theirs)")
    args = parser.parse_args()
    if args.threads is not None:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    rounds = {"digits": 60 if args.quick else 300, "wide": 15 if args.quick else 60}
    print(f"{'model':<8} {'lucid step':>11} {'lucid eager':>12} {'torch':>9}   "
          f"{'step/torch':>10} {'step/eager':>10}")
    for name, sizes in MODELS.items():
        data = batches(sizes)
        times = measure(implementations(sizes, data), rounds[name], random.Random(0),
                        blocks=BLOCKS)
        us = {k: 1e6 * v for k, v in times.items()}
        torch_us = us.get("torch")
        ratio = f"{us['lucid step'] / torch_us:9.2f}x" if torch_us else f"{'-':>10}"
        torch_col = f"{torch_us:7.0f}us" if torch_us else f"{'-':>9}"
        print(f"{name:<8} {us['lucid step']:9.0f}us {us['lucid eager']:10.0f}us {torch_col}   "
              f"{ratio} {us['lucid step'] / us['lucid eager']:9.2f}x")


if __name__ == "__main__":
    main()
