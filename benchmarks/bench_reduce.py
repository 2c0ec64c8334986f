"""Reductions as lucid generates them, in every NumPy form that could compute them.

lucid sums a value over the axes a BatchNorm reduces: axis 0 of (N, C) and
axes (0, 2) of (N, C, L), of one operand or of the product of two (the
variance's centred squares, the gradient's ``sum(dy * xhat)``), never
materialising that product. Each form below computes one of them; every
round calls all forms of one case in a shuffled order and the table gives
medians in microseconds (``benchmarks/timing.py``). Forms:

  einsum       np.einsum('ab->b', x) / 'abc->b' / 'ab,ab->b' / 'abc,abc->b'
  einsum64     the same with dtype=np.float64 (float64 accumulation of float32 data)
  reduce       np.add.reduce over the axes (ndarray.sum)
  reduce64     the same with dtype=np.float64
  ones         a matmul with a ones vector held between calls: ones_N @ x for (N, C);
               (x @ ones_L) then ones_N @ that for (N, C, L) (two BLAS gemv, the (N, C)
               partial sums in between)
  ones+alloc   the same with the ones vectors made by np.ones on every call
  ones64       "ones" in float64 on float32 data: np.matmul(..., dtype=np.float64) converts
               the data as it goes
  vecdot       product forms: np.vecdot(a, b) along the summed axis (a dot per row, no
               product array), for (N, C, L) the (N, C) dots then ones_N @ them
  bmm          product form of (N, C, L): a[..., None, :] @ b[..., :, None], then a sum

    python benchmarks/bench_reduce.py           # all shapes, two runs
    python benchmarks/bench_reduce.py --quick   # fewer rounds, one run
    python benchmarks/bench_reduce.py --effect  # lucid's steps with the rule against without

--effect times BatchNorm1d train steps at (32, 64) and (128, 64, 16) and the
k-block network of bench_mlp.py (Linear(256, 256) -> BatchNorm1d -> ReLU, N = 256,
k = 1 and 4), each compiled twice in one process: with the reduction rule of
lucid.codegen.reduce, and with einsum for every sum (the forms lucid wrote before
the rule), as the program (``program(x, dy)``) and through the Tensor face, on one
lucid thread, interleaved.
"""
from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from timing import measure  # noqa: E402
import lucid  # noqa: E402
import lucid.nn as nn  # noqa: E402
from lucid import Tensor  # noqa: E402
from lucid.codegen import reduce  # noqa: E402

SHAPES = [(32, 64), (256, 256), (4096, 256), (128, 64, 16), (64, 128, 256), (64, 256, 512)]
DTYPES = ["float32", "float64"]


def forms(shape, dtype, product, rng):
    """``{form: callable}`` for one case (the data drawn once)."""
    a = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    n, l = shape[0], (shape[2] if len(shape) == 3 else None)
    ones_n, ones_l = np.ones(n, dtype), (np.ones(l, dtype) if l else None)
    two = len(shape) == 2
    axes = (0,) if two else (0, 2)
    spec = "ab" if two else "abc"
    if product:
        impls = {"einsum": lambda: np.einsum(f"{spec},{spec}->b", a, b)}
        if two:
            impls["vecdot"] = lambda: np.vecdot(a, b, axis=0)
        else:
            impls["vecdot"] = lambda: ones_n @ np.vecdot(a, b)
            impls["bmm"] = lambda: (a[..., None, :] @ b[..., :, None]).sum(axis=(0, 2, 3))
        return impls
    impls = {"einsum": lambda: np.einsum(f"{spec}->b", a),
             "reduce": lambda: np.add.reduce(a, axis=axes)}
    if dtype == "float32":
        impls["einsum64"] = lambda: np.einsum(f"{spec}->b", a, dtype=np.float64)
        impls["reduce64"] = lambda: np.add.reduce(a, axis=axes, dtype=np.float64)
        ones64_n, ones64_l = np.ones(n, np.float64), (np.ones(l, np.float64) if l else None)
        if two:
            impls["ones64"] = lambda: np.matmul(ones64_n, a, dtype=np.float64)
        else:
            impls["ones64"] = lambda: ones64_n @ np.matmul(a, ones64_l, dtype=np.float64)
    if two:
        impls["ones"] = lambda: ones_n @ a
        impls["ones+alloc"] = lambda: np.ones(n, a.dtype) @ a
    else:
        impls["ones"] = lambda: ones_n @ (a @ ones_l)
        impls["ones+alloc"] = lambda: np.ones(n, a.dtype) @ (a @ np.ones(l, a.dtype))
    return impls


def rounds_for(shape, quick):
    size = int(np.prod(shape))
    rounds = 400 if size <= 1 << 16 else 100 if size <= 1 << 20 else 25
    return max(5, rounds // 4) if quick else rounds


def run(quick, seed):
    order, rng = random.Random(seed), np.random.default_rng(seed)
    rows = []
    for shape in SHAPES:
        for dtype in DTYPES:
            for product in (False, True):
                t = measure(forms(shape, dtype, product, rng), rounds_for(shape, quick), order)
                rows.append((shape, dtype, product, {k: v * 1e6 for k, v in t.items()}))
    return rows


def table(rows):
    names = ["einsum", "einsum64", "reduce", "reduce64", "ones64", "ones", "ones+alloc",
             "vecdot", "bmm"]
    lines = [f"| shape | dtype | form | {' | '.join(names)} |",
             "|---" * (len(names) + 3) + "|"]
    for shape, dtype, product, t in rows:
        cells = [f"{t[k]:.1f}" if k in t else "" for k in names]
        lines.append(f"| {shape} | {dtype} | {'a*b' if product else 'a'} | "
                     f"{' | '.join(cells)} |")
    return "\n".join(lines)


def einsum_only():
    """A stand-in for ``reduce.choose`` that never picks a matrix product with ones."""
    choose, einsum = reduce.choose, {reduce.Form.ONES: reduce.Form.EINSUM,
                                     reduce.Form.ONES64: reduce.Form.EINSUM64}

    def chosen(*args):
        form = choose(*args)
        return einsum.get(form, form)
    return chosen


def batchnorm_model(shape):
    return nn.BatchNorm1d(shape[1]), (None,) + shape[1:]


def mlp_model(k):
    layers = []
    for _ in range(k):
        layers += [nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU()]
    return nn.Sequential(*layers), (None, 256)


def step_pair(make, shape, rng):
    """``{label: callable}``: the train step compiled with and without the rule."""
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    impls, sources = {}, {}
    rule = reduce.choose
    for label, choose in (("rule", rule), ("einsum", einsum_only())):
        reduce.choose = choose
        try:
            model, placeholder = make()
            program = lucid.compile(model, lucid.placeholder(placeholder, name="x"),
                                    mode="train")
            face, _ = make()
            face.load_state_dict(model.state_dict())
            face(Tensor(x, requires_grad=True)).backward(Tensor(dy))  # compiled here
        finally:
            reduce.choose = rule
        sources[label] = program.source
        impls[f"program, {label}"] = lambda p=program: p(x, dy)
        impls[f"Tensor, {label}"] = lambda f=face: f(Tensor(x, requires_grad=True)) \
            .backward(Tensor(dy))
    assert "_ones(" in sources["rule"].split(reduce.HELPER)[1]
    assert "_ones(" not in sources["einsum"].split(reduce.HELPER)[1]
    return impls


def effect(quick, seed):
    lucid.set_num_threads(1)
    order, rng = random.Random(seed), np.random.default_rng(seed)
    cases = [(f"BatchNorm1d {s}", lambda s=s: batchnorm_model(s), s, 2000)
             for s in [(32, 64), (128, 64, 16)]]
    cases += [(f"MLP k={k}, N=256", lambda k=k: mlp_model(k), (256, 256), 400 // k)
              for k in (1, 4)]
    lines = ["| case | program, rule | program, einsum | ratio | Tensor, rule | "
             "Tensor, einsum | ratio |", "|---" * 7 + "|"]
    for name, make, shape, rounds in cases:
        t = measure(step_pair(make, shape, rng), max(20, rounds // 4) if quick else rounds,
                    order)
        t = {k: v * 1e6 for k, v in t.items()}
        p, f = (t["program, rule"], t["program, einsum"]), (t["Tensor, rule"], t["Tensor, einsum"])
        lines.append(f"| {name} | {p[0]:.1f} | {p[1]:.1f} | {p[0] / p[1]:.3f} | "
                     f"{f[0]:.1f} | {f[1]:.1f} | {f[0] / f[1]:.3f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, one run")
    parser.add_argument("--effect", action="store_true",
                        help="lucid's train steps with the rule against einsum only")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, {os.cpu_count()} cores; medians in microseconds")
    for i in range(1 if args.quick else 2):
        print(f"\nrun {i + 1}\n")
        print(effect(args.quick, seed=i) if args.effect else table(run(args.quick, seed=i)))


if __name__ == "__main__":
    main()
