"""Per-call overhead: a BatchNorm1d's generated functions alone against the ways users call them.

Every variant runs the same float32 arrays; calls are interleaved in a shuffled order
inside each round (``timing.measure``), so machine noise hits all of them alike. The
table reports medians and the overhead of each way of calling over the generated code
it runs.

    python benchmarks/bench_call.py                       # this checkout
    python benchmarks/bench_call.py --before /path/to/wt  # and another checkout, same run

With ``--before``, the lucid package of that directory is imported beside this one
under its own module objects, and both are timed in the same shuffled rounds; a
checkout of main for it: ``git worktree add --detach /tmp/lucid-main main``.

Variants (train: BatchNorm1d(C) in train mode, x not requiring grad):
  fn            the Tensor face's generated forward + backward on prepared arrays
  face          bn(Tensor(x)).backward(dy)
  fn dx         the same with x requiring grad (its program also computes dx)
  face dx       bn(Tensor(x, requires_grad=True)).backward(Tensor(dy)), as bench_batchnorm times it
  step          the compiled program's generated step function on prepared arrays
  program       lucid.compile(bn, placeholder, mode="train")(x, dy): checks and commit
  eval fn       the eval program's generated function on prepared arrays
  eval face     bn.eval(); bn(Tensor(x))
"""
from __future__ import annotations

import argparse
import importlib
import os
import random
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from timing import measure  # noqa: E402

SHAPES = [(32, 64), (128, 64, 16)]
#: overhead name -> (the way of calling, the generated code it runs)
OVERHEADS = {"face": ("face", "fn"), "face dx": ("face dx", "fn dx"),
             "program": ("program", "step"), "eval face": ("eval face", "eval fn")}


def load(root):
    """The ``lucid`` package under ``root``, imported as its own set of module objects."""
    kept = {k: sys.modules.pop(k) for k in list(sys.modules)
            if k == "lucid" or k.startswith("lucid.")}
    sys.path.insert(0, root)
    try:
        lucid = importlib.import_module("lucid")
        importlib.import_module("lucid.nn")
    finally:
        sys.path.remove(root)
        for k in [k for k in sys.modules if k == "lucid" or k.startswith("lucid.")]:
            del sys.modules[k]  # held by the returned package; the next load gets its own
        sys.modules.update(kept)
    if not os.path.abspath(lucid.__file__).startswith(os.path.abspath(root) + os.sep):
        raise RuntimeError(f"imported {lucid.__file__}, not the lucid under {root}")
    return lucid


def _arguments(program, x, dy=None):
    """The positional arrays of a program's step (``dy`` given) or forward: ``x``, the
    bound tensors' data and the upstream gradient ``dy``."""
    seeds = set(program.seeds)
    return [dy if p in seeds else program.bindings[p].data if p in program.bindings else x
            for p in program.graph.inputs if dy is not None or p not in seeds]


def _face_program(bn, lucid, x, dy, training, dx=False):
    bn.train(training)
    out = bn(lucid.Tensor(x, requires_grad=dx))
    if training:
        out.backward(dy)
    key = next(k for k in bn._programs if k[0] is training and k[-1] is dx)
    return bn._programs[key].program


def variants(lucid, shape, rng):
    """``{name: callable}`` for one lucid copy at one shape."""
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    bn = lucid.nn.BatchNorm1d(c)
    train = _face_program(bn, lucid, x, dy, True)
    args = _arguments(train, x)
    n_res = len(train.residuals)
    train_dx = _face_program(bn, lucid, x, dy, True, dx=True)
    args_dx = _arguments(train_dx, x)
    n_res_dx = len(train_dx.residuals)
    evaluated = _face_program(bn, lucid, x, dy, False)
    eval_args = _arguments(evaluated, x)
    bn.train()
    face = lucid.nn.BatchNorm1d(c)
    face_dx = lucid.nn.BatchNorm1d(c)
    face_eval = lucid.nn.BatchNorm1d(c).eval()
    compiled_bn = lucid.nn.BatchNorm1d(c)
    compiled = lucid.compile(compiled_bn, lucid.placeholder((None,) + shape[1:], name="x"),
                             mode="train")
    step_args = _arguments(compiled, x, dy)
    Tensor = lucid.Tensor

    def fn():
        outs = train.forward_fn(*args)
        train.backward_fn(dy, *outs[len(outs) - n_res:])

    def fn_dx():
        outs = train_dx.forward_fn(*args_dx)
        train_dx.backward_fn(dy, *outs[len(outs) - n_res_dx:])

    return {
        "fn": fn,
        "face": lambda: face(Tensor(x)).backward(dy),
        "fn dx": fn_dx,
        "face dx": lambda: face_dx(Tensor(x, requires_grad=True)).backward(Tensor(dy)),
        "step": lambda: compiled.step_fn(*step_args),
        "program": lambda: compiled(x, dy),
        "eval fn": lambda: evaluated.step_fn(*eval_args),
        "eval face": lambda: face_eval(Tensor(x)),
    }


def options(doc, rounds, argv):
    """``--before DIR`` (a checkout timed beside this one) and ``--rounds``, as the benchmarks
    that compare two checkouts take them."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--before", help="a checkout whose lucid is timed beside this one")
    ap.add_argument("--rounds", type=int, default=rounds)
    return ap.parse_args(argv)


def main(argv=None):
    args = options(__doc__, 3000, argv)
    copies = {"after": load(os.path.dirname(HERE))}
    if args.before:
        copies = {"before": load(os.path.abspath(args.before)), **copies}
    order = random.Random(0)
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cpus; "
          f"float32; medians of {args.rounds} interleaved shuffled rounds, in us")
    for label, lucid in copies.items():
        print(f"  {label}: {os.path.dirname(lucid.__file__)}")
    for shape in SHAPES:
        rng = np.random.default_rng(0)
        impls = {}
        for label, lucid in copies.items():
            impls.update({(label, k): f for k, f in variants(lucid, shape, rng).items()})
        med = measure(impls, args.rounds, order)
        print(f"\n### {shape}\n")
        print("| variant | " + " | ".join(copies) + " |")
        print("|---" * (len(copies) + 1) + "|")
        names = [k for (lab, k) in impls if lab == next(iter(copies))]
        for name in names:
            print(f"| {name} | " + " | ".join(f"{med[lab, name] * 1e6:.1f}"
                                              for lab in copies) + " |")
        for name, (way, code) in OVERHEADS.items():
            print(f"| **overhead {name}** ({way} - {code}) | " + " | ".join(
                f"{(med[lab, way] - med[lab, code]) * 1e6:.1f}" for lab in copies) + " |")


if __name__ == "__main__":
    main()
