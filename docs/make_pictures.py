"""Regenerate the README's pictures of the 3-block MLP (64-128-BN-ReLU-64-BN-ReLU-10).

Run from the repository root, with Graphviz installed::

    python docs/make_pictures.py

It writes ``docs/images/mlp_{module,op}_{train,eval}.svg`` (the module-level
view and the op-level view grouped by module, of the train and eval graphs)
and prints each picture's size in pixels.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import lucid  # noqa: E402
import lucid.nn as nn  # noqa: E402


def mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(),
                         nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))


def size(svg_path):
    """Width x height of an SVG drawn by dot, in CSS pixels (dot writes points: 96/72)."""
    with open(svg_path, encoding="utf-8") as f:
        head = f.read(2000)
    w, h = (float(re.search(rf'{k}="([\d.]+)pt"', head).group(1)) for k in ("width", "height"))
    return round(w * 96 / 72), round(h * 96 / 72)


def main():
    out = os.path.join(HERE, "images")
    os.makedirs(out, exist_ok=True)
    for mode in ("train", "eval"):
        graph = lucid.compile(mlp(), lucid.placeholder((None, 64), name="x"), mode=mode).graph
        for detail in ("module", "op"):
            path = os.path.join(out, f"mlp_{detail}_{mode}.svg")
            graph.render(path, detail=detail, group_by_module=True)
            print(f"{os.path.relpath(path)}: {'x'.join(map(str, size(path)))} px, "
                  f"{len(graph)} graph nodes")


if __name__ == "__main__":
    main()
