"""Per-call overhead of the Tensor face on a small op: ``(a * b).sum()`` on (32, 64) float32.

Each round times one block of calls of every variant, in a shuffled order, so machine
noise hits all of them alike; the table reports the median over rounds of the time per
call. The lucid variants run the program compiled on the first call (the first call is
not timed).

    python benchmarks/bench_eager.py            # 200 rounds of 200 calls
    python benchmarks/bench_eager.py --quick

Variants:
  numpy                 (a * b).sum() on ndarrays
  lucid Tensor          (a * b).sum() on lucid Tensors (two compiled calls: mul, then sum)
  lucid Tensor, grad    the same with a requiring grad, then .backward()
  lucid no_grad         the same as "lucid Tensor" under lucid.no_grad()
  torch                 the same on torch tensors, one thread (when torch is installed)
  torch, grad           with a requiring grad, then .backward()
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lucid  # noqa: E402
from lucid import Tensor  # noqa: E402

try:
    import torch
    torch.set_num_threads(1)
except ImportError:  # torch is optional: a column when present
    torch = None


def variants(shape=(32, 64)):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape, np.float32), rng.standard_normal(shape, np.float32)
    ta, tb = Tensor(a), Tensor(b)
    ga = Tensor(a, requires_grad=True)

    def lucid_grad():
        (ga * tb).sum().backward()
        ga.grad = None

    def lucid_no_grad():
        with lucid.no_grad():
            (ta * tb).sum()

    out = {"numpy": lambda: (a * b).sum(), "lucid Tensor": lambda: (ta * tb).sum(),
           "lucid Tensor, grad": lucid_grad, "lucid no_grad": lucid_no_grad}
    if torch is not None:
        xa, xb = torch.from_numpy(a), torch.from_numpy(b)
        xg = torch.from_numpy(a.copy()).requires_grad_()

        def torch_grad():
            (xg * xb).sum().backward()
            xg.grad = None

        out["torch"] = lambda: (xa * xb).sum()
        out["torch, grad"] = torch_grad
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, calls = (30, 100) if args.quick else (200, 200)
    fns = variants()
    for fn in fns.values():  # compile and warm up
        for _ in range(20):
            fn()
    times = {name: [] for name in fns}
    names = list(fns)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            fn = fns[name]
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    base = statistics.median(times["numpy"])
    print("| variant | per call | vs NumPy |\n|---|---|---|")
    for name in fns:
        m = statistics.median(times[name])
        print(f"| {name} | {m * 1e6:.1f} us | {m / base:.1f}x |")


if __name__ == "__main__":
    main()
