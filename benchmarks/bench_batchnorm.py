"""BatchNorm1d train step and eval forward: lucid against hand-written NumPy (and PyTorch).

Every implementation runs the same float32 data; calls are interleaved in a
shuffled order inside each round, so machine noise hits all of them alike,
and the table reports medians and ratios to the hand-written closed form.

    python benchmarks/bench_batchnorm.py            # all shapes
    python benchmarks/bench_batchnorm.py --quick    # fewer rounds

Train step = forward + backward + running-statistics update.
Columns:
  lucid program  - lucid.compile(bn, placeholder, mode=...) called on arrays (input checks,
                   running-stat commit included)
  lucid fn       - the program's generated step function alone, on prepared arguments
  lucid Tensor   - bn(Tensor(x)).backward(Tensor(dy)) (eval: bn(Tensor(x)))
  executor       - lucid's reference executor, node by node
  naive          - eager NumPy, one temporary per primitive
  hand-written   - the closed form an expert writes (benchmarks/references.py)
  torch          - torch.nn.BatchNorm1d on CPU, when torch is installed
"""
from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lucid  # noqa: E402
from timing import measure  # noqa: E402
import lucid.nn as nn  # noqa: E402
from lucid import Tensor  # noqa: E402
from lucid.runtime import executor  # noqa: E402
from references import handwritten_eval, handwritten_train, naive_eval, naive_train  # noqa: E402

SHAPES = [(32, 64), (128, 64, 16), (64, 128, 256), (64, 256, 512)]


def implementations(shape, mode, rng):
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    bn = nn.BatchNorm1d(c)
    bn.weight.data[:] = rng.uniform(0.5, 1.5, c)
    bn.bias.data[:] = rng.uniform(-0.5, 0.5, c)
    bn.running_mean.data[:] = rng.uniform(-0.1, 0.1, c)
    g, b = bn.weight.data, bn.bias.data
    rm, rv = bn.running_mean.data.copy(), bn.running_var.data.copy()
    ph = lucid.placeholder((None,) + shape[1:], name="x")
    program = lucid.compile(bn, ph, mode=mode)
    feeds = program.feeds((x, dy) if mode == "train" else (x,), {})
    face = nn.BatchNorm1d(c)
    face.load_state_dict(bn.state_dict())
    face.train(mode == "train")
    impls = {}
    args = [feeds[p] for p in program.graph.inputs]
    impls["lucid fn"] = lambda: program.step_fn(*args)
    if mode == "train":
        impls["lucid program"] = lambda: program(x, dy)
        impls["lucid Tensor"] = lambda: face(Tensor(x, requires_grad=True)).backward(Tensor(dy))
        impls["executor"] = lambda: executor.run(program.graph, feeds)
        impls["naive"] = lambda: naive_train(x, g, b, rm, rv, dy)
        impls["hand-written"] = lambda: handwritten_train(x, g, b, rm, rv, dy)
    else:
        impls["lucid program"] = lambda: program(x)
        impls["lucid Tensor"] = lambda: face(Tensor(x))
        impls["executor"] = lambda: executor.run(program.graph, feeds)
        impls["naive"] = lambda: naive_eval(x, g, b, rm, rv)
        impls["hand-written"] = lambda: handwritten_eval(x, g, b, rm, rv)
    torch_impl = _torch(x, dy, g, b, rm, rv, mode)
    if torch_impl is not None:
        impls["torch"] = torch_impl
    return impls


def _torch(x, dy, g, b, rm, rv, mode):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    bn = torch.nn.BatchNorm1d(x.shape[1])
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(g))
        bn.bias.copy_(torch.from_numpy(b))
        bn.running_mean.copy_(torch.from_numpy(rm))
        bn.running_var.copy_(torch.from_numpy(rv))
    bn.train(mode == "train")
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    if mode == "train":
        def step():
            xg = xt.detach().requires_grad_()
            bn(xg).backward(dyt)
        return step

    def forward():
        with torch.no_grad():
            bn(xt)
    return forward


def rounds_for(shape, quick):
    size = int(np.prod(shape))
    base = 2000 if size < 10_000 else 300 if size < 200_000 else 40 if size < 3_000_000 else 15
    return max(5, base // 4) if quick else base


def fmt(t):
    return f"{t * 1e3:.3f} ms" if t < 0.1 else f"{t * 1e3:.1f} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--mode", choices=["train", "eval", "both"], default="both")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    order = random.Random(0)
    modes = ["train", "eval"] if args.mode == "both" else [args.mode]
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cpus; "
          "float32; median of interleaved rounds; ratio = time / hand-written time\n")
    for mode in modes:
        rows = []
        columns = None
        for shape in SHAPES:
            impls = implementations(shape, mode, rng)
            columns = columns or list(impls)
            med = measure(impls, rounds_for(shape, args.quick), order)
            rows.append((shape, med))
        print(f"### {mode} {'step (forward + backward + running stats)' if mode == 'train' else 'forward'}\n")
        print("| shape | " + " | ".join(columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for shape, med in rows:
            hand = med["hand-written"]
            cells = [f"{fmt(med[c])} ({med[c] / hand:.2f}x)" if c in med else "-" for c in columns]
            print(f"| {shape} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
