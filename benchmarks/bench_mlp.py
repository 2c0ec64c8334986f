"""k blocks of Linear(256, 256) -> BatchNorm1d(256) -> ReLU: one train step, four ways.

Every implementation runs the same float32 data and the same parameters,
in blocks of consecutive calls, the blocks of all of them in a shuffled order,
so drift of the machine hits all of them alike. The table reports medians and
ratios to eager NumPy.

    python benchmarks/bench_mlp.py            # k = 1, 4, 16, 32 at N = 256
    python benchmarks/bench_mlp.py --quick    # fewer rounds

Train step = forward + backward (gradients of the input and every parameter)
+ running-statistics update. Columns:
  lucid compiled - lucid.compile(model, placeholder, mode="train") called on (x, dy), with
                   lucid.set_num_threads(1)
  lucid compiled, T threads - the same at lucid's default thread count T (the machine's cores;
                   BatchNorm regions split over channels from parallel.MIN_ELEMENTS elements)
  lucid Tensor   - model(Tensor(x, requires_grad=True)).backward(Tensor(dy)), T threads
  eager NumPy    - the same network written out in NumPy, one statement per operation
                   (the closed-form BatchNorm backward an engineer writes by hand)
  torch          - the same network in torch on the CPU with its default thread count,
                   when torch is installed (an optional column, not a dependency); in its
                   default environment
Every column runs in blocks of consecutive calls, the blocks in shuffled order
(timing.measure with blocks: torch's OpenMP threads spin after a call)
"""
from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lucid  # noqa: E402
from timing import BLOCKS, measure  # noqa: E402
from torch_models import to_torch  # noqa: E402
import lucid.nn as nn  # noqa: E402
from lucid import Tensor  # noqa: E402

WIDTH, EPS, MOMENTUM = 256, 1e-5, 0.1
THREADS = lucid.get_num_threads()  # the default, read before any column sets it


def network(k):
    layers = []
    for _ in range(k):
        layers += [nn.Linear(WIDTH, WIDTH), nn.BatchNorm1d(WIDTH), nn.ReLU()]
    return nn.Sequential(*layers)


def eager_step(x, dy, params, stats):
    """Train step of the network in eager NumPy: forward, then backward block by block."""
    saved = []
    h = x
    for (w, b, g, beta), (rm, rv) in zip(params, stats):
        z = h @ w.T
        z += b
        mean = z.mean(axis=0, dtype=np.float64).astype(np.float32)
        xc = z - mean
        var = np.einsum("ij,ij->j", xc, xc) / len(z)
        rstd = 1 / np.sqrt(var + EPS)
        xhat = xc * rstd
        y = xhat * g + beta
        out = np.maximum(y, 0)
        rm *= 1 - MOMENTUM
        rm += MOMENTUM * mean
        rv *= 1 - MOMENTUM
        rv += MOMENTUM * var * len(z) / (len(z) - 1)
        saved.append((h, w, g, xhat, rstd, y))
        h = out
    grads = []
    d = dy
    for inp, w, g, xhat, rstd, y in reversed(saved):
        d = d * (y > 0)
        dbeta = d.sum(axis=0)
        dg = np.einsum("ij,ij->j", d, xhat)
        dz = (g * rstd / len(d)) * (len(d) * d - dbeta - xhat * dg)
        grads.append((dz.T @ inp, dz.sum(axis=0), dg, dbeta))
        d = dz @ w
    return h, d, grads


def implementations(k, n, rng):
    x = rng.standard_normal((n, WIDTH), dtype=np.float32)
    dy = rng.standard_normal((n, WIDTH), dtype=np.float32)
    model = network(k)
    program = lucid.compile(model, lucid.placeholder((None, WIDTH), name="x"), mode="train")
    face = network(k)
    face.load_state_dict(model.state_dict())
    blocks = [model[3 * i: 3 * i + 2] for i in range(k)]
    params = [(lin.weight.data, lin.bias.data, bn.weight.data, bn.bias.data) for lin, bn in blocks]
    stats = [(bn.running_mean.data.copy(), bn.running_var.data.copy()) for _, bn in blocks]
    threads = THREADS
    impls = {
        "lucid compiled": on_threads(1, lambda: program(x, dy)),
        f"lucid compiled, {threads} threads": on_threads(threads, lambda: program(x, dy)),
        "lucid Tensor": on_threads(threads, lambda: face(Tensor(x, requires_grad=True))
                                   .backward(Tensor(dy))),
        "eager NumPy": lambda: eager_step(x, dy, params, stats),
    }
    torch_impl = _torch(model, x, dy)
    if torch_impl is not None:
        impls["torch"] = torch_impl
    return impls


def on_threads(n, call):
    """``call`` run with lucid's thread count set to ``n``."""
    def run():
        lucid.set_num_threads(n)
        call()
    return run


def _torch(model, x, dy):
    net = to_torch(model)
    if net is None:
        return None
    import torch
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

    def step():
        net.zero_grad(set_to_none=True)
        net(xt.detach().requires_grad_()).backward(dyt)
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("-k", type=int, nargs="*", default=[1, 4, 16, 32], help="block counts")
    ap.add_argument("-n", type=int, default=256, help="batch size")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    order = random.Random(0)
    try:
        import torch
        threads = f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    except ImportError:
        threads = "torch not installed"
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"lucid default {THREADS} threads, {threads}; N = {args.n}, float32; median of interleaved rounds; "
          "ratio = time / eager NumPy time\n")
    rows, columns = [], None
    for k in args.k:
        impls = implementations(k, args.n, rng)
        columns = columns or list(impls)
        rounds = max(5, (200 if k <= 4 else 60) // (4 if args.quick else 1))
        rows.append((k, measure(impls, rounds, order, blocks=BLOCKS)))
    print("| k | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for k, med in rows:
        ref = med["eager NumPy"]
        print(f"| {k} | " + " | ".join(f"{med[c] * 1e3:.2f} ms ({med[c] / ref:.2f}x)"
                                        for c in columns) + " |")


if __name__ == "__main__":
    main()
