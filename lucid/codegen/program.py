"""Programs: a graph compiled to Python functions over NumPy, ready to call.

A program holds the graph it was compiled from, the generated ``source`` and
the functions built from it: ``step`` (the whole graph), and for graphs with
a backward pass ``forward`` (everything the upstream gradients do not
reach, plus the residuals the backward needs) and ``backward``.
"""
from __future__ import annotations

import hashlib
import linecache
import os
import tempfile

import networkx as nx
import numpy as np

from ..ops.executor import bind_sizes
from .emit import function_source
from .schedule import schedule

_NAMESPACE = {"np": np}


class Program:
    """A compiled graph.

    Parameters
    ----------
    graph : Graph
        The graph to compile (forward, and optionally backward and updates).
    seeds : sequence of str
        Placeholders holding upstream gradients; they split the program into
        ``forward`` and ``backward`` functions.
    bindings : dict
        Placeholder name -> Tensor whose current ``.data`` feeds it by default.
    updates : dict
        Output key -> Tensor that takes the output's value after a call.
    """

    def __init__(self, graph, seeds=(), bindings=None, updates=None, name="program",
                 optimize=True):
        self.graph = graph
        self.seeds = list(seeds)
        self.bindings = dict(bindings or {})
        self.updates = dict(updates or {})
        self.name = name
        self.result_keys = [k for k, n in graph.outputs.items()
                            if graph.nx.nodes[n]["phase"] == "forward" and k not in self.updates]
        self.result_kind = "single" if self.result_keys == ["out"] else "dict"
        self.optimize = optimize
        self.symbols = graph.symbols()
        order = graph.topo()
        outputs = list(dict.fromkeys(graph.outputs.values()))
        parts = [("step", graph.inputs, order, outputs)]
        if self.seeds:
            fwd, bwd, residuals = split(graph, self.seeds, order)
            fwd_outputs = [o for o in outputs if o in set(fwd)]
            self.residuals = residuals
            self._fwd_outputs = fwd_outputs + [r for r in residuals if r not in fwd_outputs]
            self._bwd_outputs = [o for o in outputs if o not in set(fwd)]
            bwd_inputs = [p for p in graph.inputs if p in set(self.seeds) or p in residuals] + \
                [r for r in residuals if r not in graph.inputs]
            self._bwd_inputs = bwd_inputs
            parts.append(("forward", [p for p in graph.inputs if p not in self.seeds], fwd,
                          self._fwd_outputs))
            parts.append(("backward", bwd_inputs, bwd, self._bwd_outputs))
        self._outputs = outputs
        nodes = graph.nx.nodes
        self.seed_of = {nodes[s]["attrs"]["key"][len("grad:"):]: s for s in self.seeds}
        self.dtype_of = {k: nodes[n]["dtype"] for k, n in graph.outputs.items()}
        self.statements = {}
        chunks = []
        for fn_name, params, nodes, returns in parts:
            stmts = schedule(graph, nodes, params, returns, optimize=optimize)
            self.statements[fn_name] = stmts
            syms = {s: v for s, v in self.symbols.items() if v[0] in params}
            if fn_name == "backward":
                syms = _symbols_from(graph, params, self.symbols)
            chunks.append(function_source(fn_name, params, syms, stmts, returns))
        self.source = "\n\n".join(chunks)
        self._fns = _build(self.source, name)
        self.step_fn = self._fns["step"]
        self.forward_fn = self._fns.get("forward")
        self.backward_fn = self._fns.get("backward")

    # -- calling ------------------------------------------------------------------------
    def user_inputs(self):
        """Placeholders a caller supplies positionally: inputs without a binding."""
        return [p for p in self.graph.inputs if p not in self.bindings]

    def feeds(self, args, kwargs):
        names = self.user_inputs()
        if len(args) > len(names):
            raise TypeError(f"{self.name} takes {len(names)} positional inputs "
                            f"({', '.join(names)}), got {len(args)}")
        feeds = {p: t.data for p, t in self.bindings.items()}
        feeds.update(zip(names, args))
        for key, value in kwargs.items():
            node = self._by_key(key)
            feeds[node] = value
        return {k: (v if isinstance(v, np.ndarray) else np.asarray(v)) for k, v in feeds.items()}

    def _by_key(self, key):
        for p in self.graph.inputs:
            if key == p or key == self.graph.nx.nodes[p]["attrs"].get("key"):
                return p
        raise TypeError(f"{self.name} has no input named {key!r}")

    def run(self, feeds, checked=False):
        """Run the whole program on ``{placeholder: array}``; return ``{output key: array}``.

        Pure: nothing bound to the program changes. Inputs are checked
        against the placeholders unless the caller already did (``checked``).
        """
        if not checked:
            bind_sizes(self.graph, feeds)
        values = dict(zip(self._outputs, self.step_fn(*[feeds[p] for p in self.graph.inputs])))
        return {key: values[n] for key, n in self.graph.outputs.items()}

    def __call__(self, *args, **kwargs):
        """Run on arrays (positional: :meth:`user_inputs`), then commit state updates.

        Returns ``{output key: array}``. Bound tensors (parameters, buffers)
        feed the inputs not given; updated buffers are written only after the
        whole call succeeded.
        """
        result = self.run(self.feeds(args, kwargs))
        self.commit(result)
        return result

    def commit(self, result):
        for key, tensor in self.updates.items():
            tensor.data = np.asarray(result[key])  # 0-d results come back as NumPy scalars

    def run_forward(self, feeds):
        """Forward part only: returns ``({output key: array}, residuals)``."""
        values = self.forward_fn(*[feeds[p] for p in self.graph.inputs if p not in self.seeds])
        values = dict(zip(self._fwd_outputs, values))
        result = {key: values[n] for key, n in self.graph.outputs.items() if n in values}
        saved = {r: values[r] if r in values else feeds[r] for r in self.residuals}
        return result, saved

    def run_backward(self, saved, seeds):
        """Backward part: ``saved`` from :meth:`run_forward`, ``seeds`` the upstream gradients."""
        args = [seeds[p] if p in seeds else saved[p] for p in self._bwd_inputs]
        values = dict(zip(self._bwd_outputs, self.backward_fn(*args)))
        return {key: values[n] for key, n in self.graph.outputs.items() if n in values}

    def save(self, path):
        """Write the generated source to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.source)

    def __repr__(self):
        return f"<lucid Program {self.name}: {len(self.graph)} nodes, inputs {self.user_inputs()}>"


def split(graph, seeds, order):
    """Split ``order`` into nodes the seeds do not reach and those they do.

    Returns (forward nodes, backward nodes, residuals): residuals are the
    forward nodes and placeholders a backward node reads.
    """
    reached = set(seeds)
    for s in seeds:
        reached |= nx.descendants(graph.nx, s)
    fwd = [n for n in order if n not in reached]
    consts = {i for n in reached for i in graph.nx.nodes[n]["inputs"]
              if graph.nx.nodes[i]["op"] == "constant"}  # inlined, so both sides get them
    bwd = [n for n in order if (n in reached and n not in seeds) or n in consts]
    fwd_set = set(fwd)
    residuals = []
    for n in bwd:
        for i in graph.nx.nodes[n]["inputs"]:
            if i in fwd_set and i not in residuals and i not in consts:
                residuals.append(i)
    return fwd, bwd, residuals


def _symbols_from(graph, params, symbols):
    """Bind each size symbol from some parameter of the backward function that has it."""
    out = {}
    for p in params:
        for axis, d in enumerate(graph.nx.nodes[p]["shape"]):
            if isinstance(d, str) and d in symbols:
                out.setdefault(d, (p, axis))
    return out


def _build(source, name):
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(), "lucid_generated")
    os.makedirs(folder, exist_ok=True)
    filename = os.path.join(folder, f"{_safe(name)}_{digest}.py")
    if not os.path.exists(filename):
        tmp = f"{filename}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(source)
        os.replace(tmp, filename)
    # linecache keeps tracebacks readable even if the temporary file goes away.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = dict(_NAMESPACE)
    exec(compile(source, filename, "exec"), namespace)  # our own generated source
    return {k: v for k, v in namespace.items() if callable(v) and k in ("step", "forward", "backward")}


def _safe(name):
    return "".join(c if c.isalnum() else "_" for c in name)[:40] or "program"
