"""Layers outside BatchNorm, and optimizer steps: lucid's Tensor face against eager NumPy and torch.

Each layer runs forward + backward through the Tensor face, as a PyTorch script would
(``layer(Tensor(x, requires_grad=True)).backward(Tensor(dy))``); each optimizer runs
``opt.step()`` with gradients in place. Columns, float32, medians of calls measured in
blocks (``timing.measure``: torch keeps its default threads, whose workers spin after a call):

  lucid           this checkout
  lucid before    another checkout, with ``--before DIR`` (imported beside this one)
  numpy           the same maths in eager NumPy, written by hand (layers: no erf in NumPy,
                  so no GELU column; optimizers: torch's update rule on ndarrays)
  torch           torch CPU, default threads (when installed)

    python benchmarks/bench_layers.py
    python benchmarks/bench_layers.py --before /tmp/lucid-start --rounds 100
"""
from __future__ import annotations

import os
import random
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_call import load, options  # noqa: E402
from timing import BLOCKS, measure  # noqa: E402

try:
    import torch
except ImportError:  # torch is optional: a column when present
    torch = None

LAYERS = {  # name -> (lucid module, torch module, shape)
    "GELU": (lambda nn: nn.GELU(), "GELU()", (256, 1024)),
    "GELU tanh": (lambda nn: nn.GELU(approximate="tanh"), "GELU(approximate='tanh')", (256, 1024)),
    "Sigmoid": (lambda nn: nn.Sigmoid(), "Sigmoid()", (256, 1024)),
    "Tanh": (lambda nn: nn.Tanh(), "Tanh()", (256, 1024)),
    "Softmax(-1)": (lambda nn: nn.Softmax(dim=-1), "Softmax(dim=-1)", (256, 1024)),
    "LogSoftmax(-1)": (lambda nn: nn.LogSoftmax(dim=-1), "LogSoftmax(dim=-1)", (256, 1024)),
    "LayerNorm(512)": (lambda nn: nn.LayerNorm(512), "LayerNorm(512)", (256, 512)),
}


def numpy_layer(name, x, dy):
    """Forward and backward of ``name`` in eager NumPy, or None."""
    if name == "Sigmoid":
        def sigmoid():
            s = 1 / (1 + np.exp(-x))
            return s, dy * s * (1 - s)
        return sigmoid
    if name == "Tanh":
        def tanh():
            t = np.tanh(x)
            return t, dy * (1 - t * t)
        return tanh
    if name == "Softmax(-1)":
        def softmax():
            e = np.exp(x - x.max(-1, keepdims=True))
            s = e / e.sum(-1, keepdims=True)
            return s, s * (dy - (dy * s).sum(-1, keepdims=True))
        return softmax
    if name == "LogSoftmax(-1)":
        def log_softmax():
            z = x - x.max(-1, keepdims=True)
            out = z - np.log(np.exp(z).sum(-1, keepdims=True))
            return out, dy - np.exp(out) * dy.sum(-1, keepdims=True)
        return log_softmax
    if name == "LayerNorm(512)":
        def layer_norm():
            xc = x - x.mean(-1, keepdims=True)
            rstd = 1 / np.sqrt((xc * xc).mean(-1, keepdims=True) + 1e-5)
            xhat = xc * rstd
            g = dy  # weight 1
            dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
            return xhat, dx, (dy * xhat).sum(0), dy.sum(0)
        return layer_norm
    return None


def layer_impls(name, copies, rng):
    make, torch_name, shape = LAYERS[name]
    x = rng.standard_normal(shape, np.float32)
    dy = rng.standard_normal(shape, np.float32)
    impls = {}
    for label, lucid in copies.items():
        module = make(lucid.nn)
        Tensor = lucid.Tensor
        impls[label] = lambda m=module, T=Tensor: m(T(x, requires_grad=True)).backward(T(dy))
    numpy_fn = numpy_layer(name, x, dy)
    if numpy_fn is not None:
        impls["numpy"] = numpy_fn
    if torch is not None:
        module = eval(f"torch.nn.{torch_name}")
        leaf, tdy = torch.from_numpy(x.copy()).requires_grad_(), torch.from_numpy(dy)

        def torch_layer():  # a leaf of torch's own memory: detach() of a NumPy-backed tensor
            module(leaf).backward(tdy)  # made Sigmoid's backward 16 ms here
            leaf.grad = None
        impls["torch"] = torch_layer
    return impls


def optimizer_impls(kind, sizes, copies, rng):
    shapes = [(b, a) for a, b in zip(sizes[:-1], sizes[1:])] + [(b,) for b in sizes[1:]]
    grads = [rng.standard_normal(s, np.float32) * 0.01 for s in shapes]
    kw = dict(lr=1e-3, momentum=0.9) if kind == "SGD" else dict(lr=1e-3)
    impls = {}
    for label, lucid in copies.items():
        params = [lucid.nn.Parameter(rng.standard_normal(s, np.float32)) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g
        impls[label] = getattr(lucid.optim, kind)(params, **kw).step
    xs = [rng.standard_normal(s, np.float32) for s in shapes]
    state = [np.zeros_like(x) for x in xs] + [np.zeros_like(x) for x in xs]

    def numpy_step():  # torch's rule, one new array per operation (eager NumPy)
        for i, (x, g) in enumerate(zip(xs, grads)):
            if kind == "SGD":
                state[i] = 0.9 * state[i] + g
                xs[i] = x - 1e-3 * state[i]
            else:
                m, v = state[i], state[len(xs) + i]
                state[i] = m + (g - m) * 0.1
                state[len(xs) + i] = v * 0.999 + 0.001 * g * g
                xs[i] = x - 1e-2 * state[i] / (np.sqrt(state[len(xs) + i]) / 0.04 + 1e-8)
    impls["numpy"] = numpy_step
    if torch is not None:
        params = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s, np.float32)))
                  for s in shapes]
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g)
        impls["torch"] = getattr(torch.optim, kind)(params, **kw).step
    return impls


def table(title, rows, columns):
    print(f"\n### {title}\n")
    print("| case | " + " | ".join(columns) + " | lucid / torch | lucid / numpy |")
    print("|---" * (len(columns) + 3) + "|")
    for name, med in rows:
        cells = [f"{med[c] * 1e3:.3f} ms" if c in med else "-" for c in columns]
        ratio = lambda c: f"{med['lucid'] / med[c]:.2f}x" if c in med else "-"  # noqa: E731
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio('torch')} | {ratio('numpy')} |")


def main(argv=None):
    args = options(__doc__, 60, argv)
    copies = {"lucid": load(os.path.dirname(HERE))}
    if args.before:
        copies["lucid before"] = load(os.path.abspath(args.before))
    columns = list(copies) + ["numpy"] + (["torch"] if torch is not None else [])
    order = random.Random(0)
    threads = f"{torch.__version__} at {torch.get_num_threads()} threads" if torch else "-"
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"torch {threads}; float32; medians, {args.rounds} calls each in {BLOCKS} blocks")
    rng = np.random.default_rng(0)
    rows = [(f"{name} {LAYERS[name][2]}", measure(layer_impls(name, copies, rng), args.rounds,
                                                  order, blocks=BLOCKS)) for name in LAYERS]
    table("forward + backward through the Tensor face", rows, columns)
    rows = [(f"{kind} {sizes}", measure(optimizer_impls(kind, sizes, copies, rng), args.rounds,
                                        order, blocks=BLOCKS))
            for kind in ("SGD", "Adam") for sizes in ([1024, 1024], [64, 128, 10])]
    table("optimizer step (SGD with momentum 0.9; Adam), Linear layers' weights and biases",
          rows, columns)


if __name__ == "__main__":
    main()
