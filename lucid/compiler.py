"""Define-then-run: trace a module or function into a graph, then compile it.

>>> import numpy as np, lucid, lucid.nn as nn
>>> bn = nn.BatchNorm1d(3)
>>> x = lucid.placeholder((None, 3), name="x")
>>> step = lucid.compile(bn, x, mode="train")
>>> step.user_inputs()
['x', 'grad_out']
>>> out = step(np.ones((4, 3), np.float32), np.ones((4, 3), np.float32))
>>> sorted(out)
['grad:bias', 'grad:weight', 'grad:x', 'num_batches_tracked', 'out', 'running_mean', 'running_var']
"""
from __future__ import annotations

from .codegen import Program
from .frontend import Var, trace
from .graph import Role
from .ops import REGISTRY
from .transforms import DEFAULT, Options

MODES = ("train", "eval")


def new_tracer(fn, mode):
    """A tracer that knows a module's parameters, buffers and submodule paths."""
    tracer = trace.Tracer(mode=mode)
    if hasattr(fn, "named_parameters"):
        tracer.adopt(fn)
    return tracer


def trace_graph(fn, *placeholders, mode="train"):
    """Run ``fn`` on ``placeholders`` under a tracer.

    Returns ``(graph, tracer)``: the forward graph with its state updates
    (train mode only) and run-time checks, and what the tracer lifted.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    for p in placeholders:
        if not isinstance(p, Var) or p.op != "placeholder" or p.role is not Role.INPUT:
            raise TypeError("compile takes lucid.placeholder(...) values as inputs, "
                            f"got {type(p).__name__}")
    if len({p.uid for p in placeholders}) != len(placeholders):
        raise ValueError("the same placeholder is passed twice")
    tracer = new_tracer(fn, mode)
    try:
        with trace.tracing(tracer):
            result = fn(*placeholders)
    finally:
        tracer.restore_modes()
    outputs = _outputs(result)
    for key in outputs:
        if key.startswith("grad:") or key in tracer.updates:
            raise ValueError(f"output key {key!r} is taken: 'grad:' keys name gradients and "
                             "dotted buffer keys name running-state updates")
    tracer.result_keys = list(outputs)
    tracer.result_kind = ("single" if isinstance(result, Var) else
                          "tuple" if isinstance(result, (tuple, list)) else "dict")
    updates = {k: v for k, (v, _) in tracer.updates.items()} if mode == "train" else {}
    tracer.nodes = {}  # Var uid -> node name: inputs are bound by identity, not by name
    graph = trace.to_graph(outputs, updates, tracer.checks, inputs=placeholders,
                           names=tracer.nodes)
    graph.modules = dict(tracer.modules)  # scope -> "BatchNorm1d(128)", for pictures
    graph.lint(REGISTRY)
    return graph, tracer


def compile(fn, *placeholders, mode="train", backward=None, wrt=None, passes=DEFAULT):  # noqa: A001
    """Trace ``fn`` (a Module or a function of lucid ops) and compile it.

    Parameters
    ----------
    fn : Module or callable
        Called once with the placeholders; returns a Var, a tuple of Vars
        (keys ``out0``, ``out1``, ...) or a dict of Vars.
    *placeholders : Var
        From :func:`lucid.placeholder`, in the order the program takes them.
    mode : {"train", "eval"}
        ``train``: forward, backward and running-stat updates; ``eval``:
        forward only, with running statistics.
    backward : bool, optional
        Add the backward pass; defaults to ``mode == "train"``.
    wrt : list of str, optional
        Placeholder names (or parameter keys) to differentiate with respect
        to; by default every float input and every parameter.
    passes : lucid.transforms.Pipeline
        The graph passes to run (``print(lucid.transforms.DEFAULT)`` lists them).

    Returns
    -------
    Program
        ``program(*arrays)`` runs it (inputs in :meth:`Program.user_inputs`
        order, then one upstream gradient ``grad_<key>`` per output);
        ``program.graph``, ``program.source`` show what it computes and
        ``program.passes`` what each pass did.
    """
    traced, tracer = trace_graph(fn, *placeholders, mode=mode)
    options = Options(backward=mode == "train" if backward is None else bool(backward),
                      wrt=None if wrt is None else tuple(wrt))
    graph, records = passes.run(traced, options)
    graph.lint(REGISTRY)
    bindings = {tracer.nodes[var.uid]: tensor for var, tensor in tracer.lifted.values()
                if var.uid in tracer.nodes}
    updates = {key: tensor for key, (_, tensor) in tracer.updates.items() if key in graph.outputs}
    name = f"{type(fn).__name__ if hasattr(fn, 'forward') else getattr(fn, '__name__', 'fn')}"
    program = Program(graph, bindings=bindings, updates=updates, name=f"{name}_{mode}",
                      passes=records)
    program.result_keys, program.result_kind = tracer.result_keys, tracer.result_kind
    return program


def _outputs(result):
    if isinstance(result, Var):
        return {"out": result}
    if isinstance(result, (tuple, list)) and all(isinstance(v, Var) for v in result):
        return {f"out{i}": v for i, v in enumerate(result)}
    if isinstance(result, dict) and all(isinstance(v, Var) for v in result.values()):
        out = {}
        for k, v in result.items():
            key = str.__str__(k) if isinstance(k, str) else str(k)
            if type(key) is not str or key in out:  # {1: a, "1": b} would keep one output
                raise ValueError(f"output keys must be distinct strings: {k!r} is "
                                 f"{key!r}, which another key already is")
            out[key] = v
        return out
    raise TypeError("a traced function must return a lucid value, a tuple or a dict of them, "
                    f"got {type(result).__name__}")
