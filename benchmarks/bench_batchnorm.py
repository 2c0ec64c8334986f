"""BatchNorm1d train step and eval forward: lucid against hand-written NumPy (and PyTorch).

Every implementation runs the same float32 data, in blocks of consecutive calls,
the blocks of all of them in a shuffled order, so drift of the machine hits all
of them alike; the table reports medians and ratios to the hand-written closed
form. (--threshold interleaves single calls: no torch there.)

    python benchmarks/bench_batchnorm.py              # all shapes
    python benchmarks/bench_batchnorm.py --quick      # fewer rounds
    python benchmarks/bench_batchnorm.py --threshold  # serial against split, by size
    python benchmarks/bench_batchnorm.py --threshold --mode eval  # the same for the eval
                                                     # forward (split by rows)

Train step = forward + backward + running-statistics update.
Columns (lucid and torch on one thread unless the column says otherwise):
  lucid program  - lucid.compile(bn, placeholder, mode=...) called on arrays (input checks,
                   running-stat commit included)
  lucid fn       - the program's generated step function alone, on prepared arguments
  lucid Tensor   - bn(Tensor(x)).backward(Tensor(dy)) (eval: bn(Tensor(x)))
  lucid Tensor, T threads - the same with lucid.set_num_threads(T), T the machine's default
                   (the channels split over threads from lucid.codegen.parallel.MIN_ELEMENTS)
  executor       - lucid's reference executor, node by node
  naive          - eager NumPy, one temporary per primitive
  hand-written   - the closed form an expert writes (benchmarks/references.py)
  torch 1 thread, torch T threads - torch.nn.BatchNorm1d on CPU, with torch.set_num_threads(1)
                   and with torch's default thread count, when torch is installed (each call
                   sets its count first), in torch's default environment
Every column runs in blocks of consecutive calls, the blocks in shuffled order
(timing.measure with blocks: torch's OpenMP threads spin after a call)
"""
from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lucid  # noqa: E402
from timing import BLOCKS, measure  # noqa: E402
from lucid.codegen import parallel  # noqa: E402
import lucid.nn as nn  # noqa: E402
from lucid import Tensor  # noqa: E402
from lucid.runtime import executor  # noqa: E402
from references import handwritten_eval, handwritten_train, naive_eval, naive_train  # noqa: E402

SHAPES = [(32, 64), (128, 64, 16), (64, 128, 256), (64, 256, 512)]
THREADS = lucid.get_num_threads()  # the default: the cores this process may run on
try:
    import torch
    TORCH_THREADS = torch.get_num_threads()  # its default, read before any column sets it
except ImportError:
    TORCH_THREADS = None
#: from 2**17 to 2**23 elements, runs per thread of 128 to 65536 values, for --threshold
THRESHOLD_SHAPES = [(128, 64, 16), (64, 64, 64), (64, 128, 64), (64, 128, 128), (128, 128, 128),
                    (64, 256, 256), (64, 256, 512), (2048, 256), (8192, 256), (512, 2048),
                    (256, 4096), (1024, 4096)]
#: from 2**16 to 2**23 elements, for --threshold --mode eval (a split by rows: always contiguous)
EVAL_THRESHOLD_SHAPES = [(64, 64, 16), (128, 64, 16), (64, 64, 64), (64, 128, 64), (2048, 256),
                         (64, 128, 128), (512, 2048), (64, 128, 256), (8192, 256), (64, 256, 256),
                         (64, 256, 512)]


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
    impls["lucid fn"] = on_threads(1, lambda: program.step_fn(*args))
    if mode == "train":
        impls["lucid program"] = on_threads(1, lambda: program(x, dy))
        face_step = lambda: face(Tensor(x, requires_grad=True)).backward(Tensor(dy))  # noqa: E731
        impls["lucid Tensor"] = on_threads(1, face_step)
        impls[f"lucid Tensor, {THREADS} threads"] = on_threads(THREADS, face_step)
        impls["executor"] = lambda: executor.run(program.graph, feeds)
        impls["naive"] = lambda: naive_train(x, g, b, rm, rv, dy)
        impls["hand-written"] = lambda: handwritten_train(x, g, b, rm, rv, dy)
    else:
        impls["lucid program"] = on_threads(1, lambda: program(x))
        impls["lucid Tensor"] = on_threads(1, lambda: face(Tensor(x)))
        impls[f"lucid Tensor, {THREADS} threads"] = on_threads(THREADS, lambda: face(Tensor(x)))
        impls["executor"] = lambda: executor.run(program.graph, feeds)
        impls["naive"] = lambda: naive_eval(x, g, b, rm, rv)
        impls["hand-written"] = lambda: handwritten_eval(x, g, b, rm, rv)
    impls.update(_torch(x, dy, g, b, rm, rv, mode))
    return impls


def on_threads(n, call):
    """``call`` run with lucid's thread count set to ``n`` (the setting is one attribute)."""
    def run():
        lucid.set_num_threads(n)
        call()
    return run


def _torch(x, dy, g, b, rm, rv, mode):
    if TORCH_THREADS is None:
        return {}
    bn = torch.nn.BatchNorm1d(x.shape[1])
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(g))
        bn.bias.copy_(torch.from_numpy(b))
        bn.running_mean.copy_(torch.from_numpy(rm))
        bn.running_var.copy_(torch.from_numpy(rv))
    bn.train(mode == "train")
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    def step():
        xg = xt.detach().requires_grad_()
        bn(xg).backward(dyt)

    def forward():
        with torch.no_grad():
            bn(xt)

    call = step if mode == "train" else forward

    def threads(n):
        def run():
            torch.set_num_threads(n)  # about 0.2 us: one global setting for both columns
            call()
        return run
    return {"torch 1 thread": threads(1), f"torch {TORCH_THREADS} threads": threads(TORCH_THREADS)}


def threshold(quick, mode):
    """Print the generated step function (train step) on one thread against its parallel
    twin forced on (every threshold 1) at the default thread count, by element count and
    contiguous run per thread: where the ratio falls below 1 gives the thresholds in
    :mod:`lucid.codegen.parallel` (``MIN_ELEMENTS``, ``MIN_RUN``). For the eval forward
    (split by rows), :func:`threshold_rows`."""
    if mode == "eval":
        threshold_rows(quick)
        return
    rng, order = np.random.default_rng(0), random.Random(0)
    print(f"### train: {THREADS} threads against 1; generated step function; "
          "median of interleaved rounds\n")
    print("| elements | shape | run per thread | 1 thread | split | ratio |\n|---|---|---|---|---|---|")
    saved = parallel.MIN_ELEMENTS, parallel.MIN_RUN
    parallel.MIN_ELEMENTS = parallel.MIN_RUN = 1
    try:
        for shape in THRESHOLD_SHAPES:
            x = rng.standard_normal(shape, dtype=np.float32)
            dy = rng.standard_normal(shape, dtype=np.float32)
            ph = lucid.placeholder((None,) + shape[1:], name="x")
            program = lucid.compile(nn.BatchNorm1d(shape[1]), ph, mode="train")
            feeds = program.feeds((x, dy), {})
            args = [feeds[p] for p in program.graph.inputs]
            call = lambda: program.step_fn(*args)  # noqa: E731
            med = measure({"1": on_threads(1, call), "T": on_threads(THREADS, call)},
                          rounds_for(shape, quick), order)
            run = int(np.prod(shape[1:])) // THREADS
            print(f"| {int(np.prod(shape))} | {shape} | {run} | {fmt(med['1'])} | {fmt(med['T'])} | "
                  f"{med['T'] / med['1']:.2f} |")
    finally:
        parallel.MIN_ELEMENTS, parallel.MIN_RUN = saved
    print()


def threshold_rows(quick):
    """The eval forward's generated step function run four ways, by size: serial (one
    thread, whole passes), split by rows over the default thread count, and in blocks of
    rows of 256 KiB, 512 KiB and 1 MiB on one thread and of ``BLOCK_BYTES`` split over the
    threads. Ratios to serial; they give ``MIN_ROWS_ELEMENTS``, ``BLOCK_BYTES`` and
    ``MIN_BLOCKED_BYTES`` of :mod:`lucid.codegen.parallel`."""
    rng, order = np.random.default_rng(0), random.Random(0)
    never = 1 << 62
    blocks = {"blocks 256K": 1 << 18, "blocks 512K": 1 << 19, "blocks 1M": 1 << 20}
    print(f"### eval forward, split by rows: ratio to one thread, whole passes; T = {THREADS}; "
          "median of interleaved rounds\n")
    columns = ["serial", "split"] + list(blocks) + ["split, blocks"]
    print("| elements | shape | " + " | ".join(columns) + " |\n" + "|---" * (len(columns) + 2) + "|")
    saved = parallel.MIN_ROWS_ELEMENTS, parallel.MIN_BLOCKED_BYTES, parallel.BLOCK_BYTES

    def way(threads, rows, blocked, block=saved[2]):
        def run():
            lucid.set_num_threads(threads)
            parallel.MIN_ROWS_ELEMENTS, parallel.MIN_BLOCKED_BYTES = rows, blocked
            parallel.BLOCK_BYTES = block
            call()
        return run
    try:
        for shape in EVAL_THRESHOLD_SHAPES:
            x = rng.standard_normal(shape, dtype=np.float32)
            ph = lucid.placeholder((None,) + shape[1:], name="x")
            program = lucid.compile(nn.BatchNorm1d(shape[1]), ph, mode="eval")
            assert "block=" in program.source
            feeds = program.feeds((x,), {})
            args = [feeds[p] for p in program.graph.inputs]
            call = lambda: program.step_fn(*args)  # noqa: E731
            ways = {"serial": way(1, never, never), "split": way(THREADS, 1, never),
                    "split, blocks": way(THREADS, 1, 1)}
            ways.update((name, way(1, never, 1, b)) for name, b in blocks.items())
            med = measure(ways, rounds_for(shape, quick), order)
            cells = [fmt(med["serial"])] + [f"{med[c] / med['serial']:.2f}" for c in columns[1:]]
            print(f"| {int(np.prod(shape))} | {shape} | " + " | ".join(cells) + " |")
    finally:
        parallel.MIN_ROWS_ELEMENTS, parallel.MIN_BLOCKED_BYTES, parallel.BLOCK_BYTES = saved
        lucid.set_num_threads(THREADS)
    print()


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
    ap.add_argument("--threshold", action="store_true",
                    help="time one thread against the split, by size, and stop")
    args = ap.parse_args(argv)
    if args.threshold:
        for mode in ["train", "eval"] if args.mode == "both" else [args.mode]:
            threshold(args.quick, mode)
        return
    rng = np.random.default_rng(0)
    order = random.Random(0)
    modes = ["train", "eval"] if args.mode == "both" else [args.mode]
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"lucid default {THREADS} threads, torch default {TORCH_THREADS} threads; "
          "float32; median of interleaved rounds; ratio = time / hand-written time\n")
    for mode in modes:
        rows = []
        columns = None
        for shape in SHAPES:
            impls = implementations(shape, mode, rng)
            columns = columns or list(impls)
            med = measure(impls, rounds_for(shape, args.quick), order, blocks=BLOCKS)
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
