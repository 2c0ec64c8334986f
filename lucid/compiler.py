"""Define-then-run: trace a module or function into a graph, then compile it.

>>> import numpy as np, lucid, lucid.nn as nn
>>> bn = nn.BatchNorm1d(3)
>>> x = lucid.placeholder((None, 3), name="x")
>>> step = lucid.compile(bn, x, mode="train")
>>> step.user_inputs()
['x', 'grad_out']
>>> out = step(np.ones((4, 3), np.float32), np.ones((4, 3), np.float32))
>>> sorted(out)
['bn.num_batches_tracked', 'bn.running_mean', 'bn.running_var', 'grad:bn.bias', 'grad:bn.weight', 'grad:x', 'out']
"""
from __future__ import annotations

from .codegen import Program
from .ops import REGISTRY, Var, trace
from .ops.autodiff import add_backward
from .ops.registry import FLOATS

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
        if not isinstance(p, Var) or p.op != "placeholder" or p.role != "input":
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
    graph = trace.to_graph(outputs, updates, tracer.checks, inputs=placeholders)
    graph.lint(REGISTRY)
    return graph, tracer


def compile(fn, *placeholders, mode="train", backward=None, wrt=None):  # noqa: A001
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

    Returns
    -------
    Program
        ``program(*arrays)`` runs it (inputs in :meth:`Program.user_inputs`
        order, then one upstream gradient ``grad_<key>`` per output);
        ``program.graph``, ``program.source`` show what it computes.
    """
    graph, tracer = trace_graph(fn, *placeholders, mode=mode)
    bindings = {}
    for var, tensor in tracer.lifted.values():
        node = next(n for n in graph.inputs if graph.nx.nodes[n]["attrs"]["key"] == var.key)
        bindings[node] = tensor
    updates = {key: tensor for key, (_, tensor) in tracer.updates.items() if key in graph.outputs}
    seeds = []
    if backward if backward is not None else mode == "train":
        seeds = _add_backward(graph, wrt)
        graph.lint(REGISTRY)
    name = f"{type(fn).__name__ if hasattr(fn, 'forward') else getattr(fn, '__name__', 'fn')}"
    program = Program(graph, seeds=seeds, bindings=bindings, updates=updates,
                      name=f"{name}_{mode}")
    program.result_keys, program.result_kind = tracer.result_keys, tracer.result_kind
    return program


def _add_backward(graph, wrt):
    g = graph.nx
    forward_outputs = {k: n for k, n in graph.outputs.items()
                       if g.nodes[n]["phase"] == "forward" and g.nodes[n]["dtype"] in FLOATS}
    candidates = [p for p in graph.inputs if g.nodes[p]["attrs"]["role"] in ("input", "param")
                  and g.nodes[p]["dtype"] in FLOATS]
    if wrt is None:
        targets = candidates
    else:
        targets = [p for p in candidates if p in wrt or g.nodes[p]["attrs"]["key"] in wrt]
        unknown = set(wrt) - {t for p in targets for t in (p, g.nodes[p]["attrs"]["key"])}
        if unknown:
            raise ValueError(f"cannot differentiate with respect to {sorted(unknown)}: "
                             "not a float input or parameter of this program")
    seeds = {}
    for key, n in forward_outputs.items():
        d = g.nodes[n]
        seeds[n] = graph.add("placeholder", [], d["shape"], d["dtype"],
                             {"role": "grad", "key": f"grad:{key}"}, name=f"grad_{key}",
                             label=f"grad:{key}")
    grads = add_backward(graph, seeds, targets)
    for p in targets:
        graph.outputs[f"grad:{g.nodes[p]['attrs']['key'] or p}"] = grads[p]
    return list(seeds.values())


def _outputs(result):
    if isinstance(result, Var):
        return {"out": result}
    if isinstance(result, (tuple, list)) and all(isinstance(v, Var) for v in result):
        return {f"out{i}": v for i, v in enumerate(result)}
    if isinstance(result, dict) and all(isinstance(v, Var) for v in result.values()):
        return {str(k): v for k, v in result.items()}
    raise TypeError("a traced function must return a lucid value, a tuple or a dict of them, "
                    f"got {type(result).__name__}")
