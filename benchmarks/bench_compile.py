"""Compile time against model size: k blocks of Linear(256, 256) -> BatchNorm1d(256) -> ReLU.

Each k is compiled in train mode (forward + backward + running-stat updates)
in a fresh process, so no cache and no earlier compile warms it; the table
gives the wall time of ``lucid.compile``, milliseconds per graph node and the
peak memory the compile allocated (tracemalloc, Python objects only).

    python benchmarks/bench_compile.py                 # k = 1, 2, 4, ..., 64
    python benchmarks/bench_compile.py --ks 1 4 32     # chosen sizes
    python benchmarks/bench_compile.py --profile 32    # cProfile of one compile, top 25
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(k, width=256, trace_memory=True):
    sys.path.insert(0, ROOT)
    import tracemalloc

    import lucid
    import lucid.nn as nn

    blocks = []
    for _ in range(k):
        blocks += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    model = nn.Sequential(*blocks)
    x = lucid.placeholder((None, width), name="x")
    if trace_memory:
        tracemalloc.start()
    start = time.perf_counter()
    program = lucid.compile(model, x, mode="train")
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if trace_memory else 0
    return {"k": k, "nodes": len(program.graph), "seconds": seconds, "peak_mib": peak / 2**20}


def run_child(k, memory):
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"from bench_compile import measure; print(json.dumps(measure({k}, trace_memory={memory})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--profile", type=int, metavar="K", help="profile one compile of K blocks")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(measure, args.profile, trace_memory=False)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return
    print("| k | nodes | compile s | ms / node | peak MiB |")
    print("|---|---|---|---|---|")
    rows = []
    for k in args.ks:
        # time without tracemalloc (it slows allocation-heavy code), then measure memory
        timed = run_child(k, False)
        peak = run_child(k, True)["peak_mib"]
        rows.append(timed)
        print(f"| {k} | {timed['nodes']} | {timed['seconds']:.3f} | "
              f"{1000 * timed['seconds'] / timed['nodes']:.3f} | {peak:.1f} |", flush=True)
    by_k = {r["k"]: r["seconds"] for r in rows}
    if 4 in by_k and 32 in by_k:
        print(f"\nt(32) / t(4) = {by_k[32] / by_k[4]:.1f}")


if __name__ == "__main__":
    main()
