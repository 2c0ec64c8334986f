"""Lossless JSON export of a graph, in a stable schema for other tools.

The schema (``"schema": "lucid.graph", "version": 1``) is a JSON object::

    {
      "schema": "lucid.graph", "version": 1,
      "inputs":  ["x", "p0_weight", ...],          # placeholder names, in call order
      "outputs": [{"key": "out", "node": "n40", "kind": "result", "of": ""}, ...],
      "modules": {"1": "BatchNorm1d(128)", ...},    # module scope -> what the module is
      "nodes": [{                                   # in topological order
          "name": "mean", "op": "div", "inputs": ["n3", "n4"],
          "attrs": {},                              # e.g. {"axes": [0], "keepdims": true}
          "shape": ["N", 128], "dtype": "float32",  # ints, or names of symbolic sizes
          "phase": "forward",                       # forward | backward | update | optimizer
          "module": "1", "module_type": "BatchNorm1d(128)",  # "" outside any module
          "label": "mean", "role": null, "key": "", # role/key: a placeholder's
          "kernel": "_t2", "pass": "",              # fused kernel, pass that made the node
          "rule": [{"input": "n3", "expr": "1/n4"}, ...]  # derived gradient rule, as text
      }, ...],
      "edges": [{"source": "n3", "target": "mean"}, ...],  # one per (input, user) pair
      "checks": [{"dims": ["N"], "minimum": 1, "shape": ["N", 128], "message": "..."}]
    }

Within a version, fields are only ever added. Attribute values become JSON
values: tuples become lists, other objects their ``str``; an infinite or NaN
float becomes the string ``"inf"``, ``"-inf"`` or ``"nan"`` (strict JSON has none).
"""
from __future__ import annotations

import json
import math

from .printing import format_rule, kernel_of

SCHEMA, VERSION = "lucid.graph", 1


def plain(value):
    """``value`` as a JSON value: tuples as lists, non-finite floats as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def node_record(graph, name) -> dict:
    """One entry of ``"nodes"``."""
    d = graph.node(name)
    return {"name": name, "op": d.op, "inputs": list(d.inputs), "attrs": plain(d.attrs),
            "shape": plain(d.shape), "dtype": d.dtype, "phase": str(d.phase),
            "module": d.scope, "module_type": graph.modules.get(d.scope, ""),
            "label": d.label, "role": None if d.role is None else str(d.role), "key": d.key,
            "kernel": kernel_of(graph, name), "pass": graph.meta.get(name, {}).get("pass", ""),
            "rule": [{"input": i, "expr": e} for i, e in format_rule(d.rule)]}


def to_dict(graph) -> dict:
    """The graph as the JSON object described above, before serialising."""
    return {
        "schema": SCHEMA, "version": VERSION,
        "inputs": list(graph.inputs),
        "outputs": [{"key": k, "node": o.node, "kind": str(o.kind), "of": o.of}
                    for k, o in graph.outputs.items()],
        "modules": dict(graph.modules),
        "nodes": [node_record(graph, n) for n in graph.topo()],
        "edges": [{"source": a, "target": b} for a, b in graph.nx.edges],
        "checks": [{"dims": plain(c.dims), "minimum": c.minimum, "shape": plain(c.shape),
                    "message": c.message} for c in graph.checks],
    }


def to_json(graph, path=None) -> str:
    """JSON text of ``graph`` (schema above); also written to ``path`` (UTF-8) when given.

    Examples
    --------
    >>> import json
    >>> from lucid.graph import Graph
    >>> g = Graph()
    >>> x = g.add("placeholder", [], ("N", 3), "float32", role="input", key="x", name="x")
    >>> y = g.add("exp", [x], ("N", 3), "float32", name="y")
    >>> g.set_output("out", y)
    >>> data = json.loads(to_json(g))
    >>> data["nodes"][1]["op"], data["nodes"][1]["shape"], data["edges"]
    ('exp', ['N', 3], [{'source': 'x', 'target': 'y'}])
    """
    text = json.dumps(to_dict(graph), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text
