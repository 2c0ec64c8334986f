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
from .codegen.trainstep import TrainStep
from .frontend import Var, trace
from .frontend.trace import identifier_hint
from .graph import OutKind, Phase, Role
from .ops import FLOATS, REGISTRY
from .transforms import DEFAULT, Builder, Options, Pass

MODES = ("train", "eval")


def new_tracer(fn, mode):
    """A tracer that knows a module's parameters, buffers and submodule paths."""
    tracer = trace.Tracer(mode=mode)
    if hasattr(fn, "named_parameters"):
        tracer.adopt(fn)
    return tracer


def trace_graph(fn, *placeholders, mode="train", params=()):
    """Run ``fn`` on ``placeholders`` under a tracer.

    Returns ``(graph, tracer)``: the forward graph with its state updates
    (train mode only) and run-time checks, and what the tracer lifted.
    ``mode=None`` traces every module in the mode its own ``training`` flag
    says (``tracer.flags`` lists them), as an eager step would run it.
    Tensors in ``params`` that ``fn`` closed over (outside any module) become
    parameters ``param<i>``, to be differentiated.
    """
    if mode not in MODES and mode is not None:
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
        tracer.flags = [(m, m.training) for m, _ in tracer.saved_modes]
    finally:
        tracer.restore_modes()
    wanted = {id(p): i for i, p in enumerate(params)}
    for var, tensor in tracer.lifted.values():
        if var.role is Role.CAPTURED and id(tensor) in wanted:
            var.role, var.key = Role.PARAM, f"param{wanted[id(tensor)]}"
            var.hint = var.key
    outputs = _outputs(result)
    for key in outputs:
        if key.startswith("grad:") or key in tracer.updates:
            raise ValueError(f"output key {key!r} is taken: 'grad:' keys name gradients and "
                             "dotted buffer keys name running-state updates")
    tracer.result_keys = list(outputs)
    # a named tuple (max(dim)'s values, indices) comes back as the same type
    tracer.result_type = type(result) if hasattr(result, "_fields") else tuple
    tracer.result_kind = ("single" if isinstance(result, Var) else
                          "tuple" if isinstance(result, (tuple, list)) else "dict")
    updates = {k: v for k, (v, _) in tracer.updates.items()} if mode != "eval" else {}
    tracer.nodes = {}  # Var uid -> node name: inputs are bound by identity, not by name
    graph = trace.to_graph(outputs, updates, tracer.checks, inputs=placeholders,
                           names=tracer.nodes)
    graph.modules = dict(tracer.modules)  # scope -> "BatchNorm1d(128)", for pictures
    graph.lint(REGISTRY)
    return graph, tracer


def compile(fn, *placeholders, mode="train", backward=None, wrt=None, passes=DEFAULT,  # noqa: A001
            optimizer=None, donate=None):
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
    donate : dict, optional
        ``{output key: placeholder name}`` (without a backward): compute that output into
        the array the call passes for that input, overwriting it, as JAX's
        ``donate_argnums``, where the generated code can (after the input's last read;
        ``program.donated`` lists the keys it could, the others come back new). The
        caller promises the array is writeable, is not read afterwards, and overlaps no
        other input; lucid's optimizers step their parameters in place this way.
    optimizer : lucid.optim.Optimizer, optional
        Compile the whole training step: ``fn`` returns a scalar loss, and the
        program also runs the backward (seeded with 1) and the optimizer's update
        of every parameter it holds (see :func:`compile_step`). Each module is
        traced in the mode its own ``training`` flag says, as the eager loop
        would run it; a call after ``.train()`` / ``.eval()`` changed a flag
        is refused.

    Returns
    -------
    Program
        ``program(*arrays)`` runs it (inputs in :meth:`Program.user_inputs`
        order, then one upstream gradient ``grad_<key>`` per output);
        ``program.graph``, ``program.source`` show what it computes and
        ``program.passes`` what each pass did. With ``optimizer``, a
        :class:`~lucid.codegen.trainstep.TrainStep`.
    """
    if optimizer is not None:
        if mode != "train" or backward is False or wrt is not None or donate is not None:
            raise ValueError("compile with optimizer= builds a training step: every module "
                             "runs in the mode its .train() / .eval() set (leave mode at its "
                             "default), with a backward, differentiating the optimizer's "
                             f"parameters (got mode={mode!r}, backward={backward!r}, wrt={wrt!r}, "
                             f"donate={donate!r})")
        return compile_step(fn, *placeholders, optimizer=optimizer, passes=passes)
    if mode not in MODES:  # trace_graph's mode=None (modules as they are) is the step's own
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
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
                      passes=records, donate=donate)
    program.holders = Holders.of(tracer, bindings)
    program.result_keys, program.result_kind = tracer.result_keys, tracer.result_kind
    program.result_type = tracer.result_type
    return program


def compile_step(loss_fn, *placeholders, optimizer, passes=DEFAULT):
    """One program for a whole training step: forward, loss, backward, running-stat
    updates and ``optimizer``'s update of each of its parameters.

    ``loss_fn`` (a Module or a function) returns a scalar loss. The program
    takes only the placeholders' arrays, returns the loss, and swaps in the new
    parameters, buffers and ``optimizer.state`` after the whole step succeeded.

    Examples
    --------
    >>> import numpy as np, lucid, lucid.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = lucid.optim.SGD(model.parameters(), lr=0.1)
    >>> x = lucid.placeholder((None, 3), name="x")
    >>> step = lucid.compile(lambda v: (model(v) ** 2).mean(), x, optimizer=opt)
    >>> before = model.weight.data.copy()
    >>> loss = step(np.ones((4, 3), np.float32))
    >>> bool((model.weight.data != before).all()), loss.shape
    (True, ())
    """
    if not callable(getattr(optimizer, "_traced_update", None)) or \
            not hasattr(optimizer, "param_groups"):
        raise TypeError("optimizer must be a lucid.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    held = [p for g in optimizer.param_groups for p in g["params"]]
    params = [p for p in held if p.requires_grad]  # frozen ones are skipped, as torch's
    if not params:                                 # step skips a parameter without .grad
        raise ValueError("the optimizer holds no parameter that requires grad: nothing to train")
    # each module in its own mode, as the eager loop runs it: after model.eval() a BatchNorm
    # normalises with its running statistics and a Dropout is the identity
    traced, tracer = trace_graph(loss_fn, *placeholders, mode=None, params=params)
    loss = traced.node(traced.outputs["out"].node) if tracer.result_kind == "single" else None
    if loss is None or loss.shape != () or loss.dtype not in FLOATS:
        shown = "several outputs" if loss is None else f"{loss.dtype}{list(loss.shape)}"
        raise ValueError("with optimizer=, the function must return one floating scalar "
                         f"loss (shape ()), got {shown}; reduce it first (.mean(), .sum())")
    nodes = {id(t): tracer.nodes[v.uid] for v, t in tracer.lifted.values()
             if v.uid in tracer.nodes}
    for gi, group in enumerate(optimizer.param_groups):
        for j, p in enumerate(group["params"]):
            if id(p) not in nodes and p.requires_grad:
                name = tracer.names.get(id(p), (f"param_groups[{gi}]['params'][{j}]",))[0]
                raise ValueError(f"the optimizer holds parameter {name} (shape {p.shape}), "
                                 "which the loss does not use; give the optimizer only the "
                                 "parameters the loss trains")
    made = {"slots": [], "states": []}
    pipeline = passes.with_pass(Pass("seed", _seed_one, "a scalar loss's gradient seed is 1"),
                                after="autodiff").with_pass(
        Pass("optimizer", _optimizer_pass(optimizer, nodes, made),
             "append the optimizer's update of each parameter (phase optimizer)"), after="seed")
    options = Options(backward=True, wrt=tuple(nodes[id(p)] for p in params))
    graph, records = pipeline.run(traced, options)
    graph.lint(REGISTRY)
    bindings = {tracer.nodes[var.uid]: tensor for var, tensor in tracer.lifted.values()
                if var.uid in tracer.nodes}
    updates = {key: tensor for key, (_, tensor) in tracer.updates.items() if key in graph.outputs}
    updates.update((graph.node(nodes[id(p)]).key, p) for p in params)
    name = type(loss_fn).__name__ if hasattr(loss_fn, "forward") else \
        getattr(loss_fn, "__name__", "fn").replace("<lambda>", "loss")
    step = TrainStep(graph, optimizer, made["slots"], made["states"], bindings, updates,
                     name=f"{name}_step", passes=records, modes=tracer.flags)
    step.holders = Holders.of(tracer, bindings)
    return step


def _seed_one(graph, options):
    """Replace the loss's upstream-gradient placeholder by the constant 1."""
    for seed in [p for p in graph.inputs if graph.node(p).role is Role.GRAD]:
        one = Builder(graph, phase=Phase.BACKWARD).const(1.0, graph.node(seed).dtype)
        graph.replace_uses(seed, one)
        graph.inputs.remove(seed)
        graph.nx.remove_node(seed)
        graph.meta.pop(seed, None)
    return graph


def _optimizer_pass(optimizer, nodes, made):
    """The pass that traces ``optimizer``'s rule for each parameter after its gradient.

    The gradients stop being outputs: they feed the update (and fuse into it).
    ``made`` receives what feeds each new placeholder and where each new state
    comes out, for the program.
    """
    def run(graph, options):
        grads = {o.of: o.node for o in graph.outputs.values() if o.kind is OutKind.GRAD}
        graph.outputs = {k: o for k, o in graph.outputs.items() if o.kind is not OutKind.GRAD}
        for gi, group in enumerate(optimizer.param_groups):
            for p in group["params"]:
                if not p.requires_grad:  # frozen: no gradient, no update, no state
                    continue
                d = graph.node(nodes[id(p)])
                b = Builder(graph, phase=Phase.OPTIMIZER, scope=d.scope)

                def holder(name, role, shape, p=p, d=d, gi=gi):
                    key = f"{d.key}.{name}"
                    n = graph.add("placeholder", [], shape, d.dtype, name=identifier_hint(key),
                                  phase=Phase.OPTIMIZER, scope=d.scope, role=role, key=key,
                                  label=key)
                    made["slots"].append((n, p, gi, str(role), name))
                    return Traced(b, n)

                state = optimizer.state.get(p, {})
                arrays = {k: holder(k, Role.STATE, d.shape) for k in optimizer._state_names(group)}
                scalars = {k: holder(k, Role.HYPER, ()) for k in optimizer._scalars(group, state)}
                new_x, new = optimizer._traced_update(GraphOps, Traced(b, d.name),
                                                      Traced(b, grads[d.key]), arrays, scalars,
                                                      group)
                graph.set_output(d.key, new_x.node, OutKind.UPDATE, of=d.key)
                keys = {}
                for k, v in new.items():
                    keys[k] = f"{d.key}.{k}"
                    graph.set_output(keys[k], v.node, OutKind.UPDATE, of=keys[k])
                made["states"].append((p, keys))
        return graph
    return run


class Traced:
    """A node being added to a graph, with the operators an optimizer's rule uses."""

    __slots__ = ("b", "node")

    def __init__(self, builder, node):
        self.b, self.node = builder, node

    def _lift(self, other):
        if isinstance(other, Traced):
            return other.node
        return self.b.const(float(other), self.b.dtype(self.node))

    def _apply(self, op, *nodes):
        return Traced(self.b, self.b.apply(op, *nodes))

    def __neg__(self):
        return self._apply("neg", self.node)


def _binary(op, reflected=False):
    if reflected:
        return lambda self, other: self._apply(op, self._lift(other), self.node)
    return lambda self, other: self._apply(op, self.node, self._lift(other))


for _op, _name in [("add", "add"), ("sub", "sub"), ("mul", "mul"), ("div", "truediv")]:
    setattr(Traced, f"__{_name}__", _binary(_op))
    setattr(Traced, f"__r{_name}__", _binary(_op, reflected=True))


class GraphOps:
    """The functions a rule calls besides operators, adding nodes (the graph twin of
    ``lucid.optim``'s NumPy namespace)."""

    @staticmethod
    def sqrt(v):
        return v._apply("sqrt", v.node)

    @staticmethod
    def maximum(a, b):
        # torch.maximum: b where a < b, else a (one where, no rounding)
        return a._apply("where", a.b.apply("lt", a.node, b.node), b.node, a.node)


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


class Holders:
    """The modules a compiled program's trace called that hold the tensors it binds.

    A program reads its parameters and buffers through the tensors bound when it was
    compiled. Replacing one in its module (``m.weight = Parameter(...)``, or tying two
    weights) would leave the program reading the old one, silently; :meth:`check` raises
    instead. It costs one version comparison per module while nothing was assigned.
    """

    def __init__(self, held):
        self.held = held  # [(module, version when last checked, [(table, name, tensor)])]

    @classmethod
    def of(cls, tracer, bindings):
        """For the modules the trace called (``tracer.flags``): who holds each bound
        tensor; None if no module holds one."""
        bound = {id(t) for t in bindings.values()}
        held, seen = [], set()
        for module, _ in tracer.flags:
            if id(module) in seen:
                continue
            seen.add(id(module))
            entries = [(table, name, t) for table in ("_parameters", "_buffers")
                       for name, t in getattr(module, table).items() if id(t) in bound]
            if entries:
                held.append([module, module._version, entries])
        return cls(held) if held else None

    def check(self, program):
        """Raise ValueError if a module no longer holds a tensor the program binds."""
        for entry in self.held:
            module = entry[0]
            if module._version == entry[1]:
                continue
            for table, name, tensor in entry[2]:
                if getattr(module, table).get(name) is not tensor:
                    raise ValueError(f"{program}: {type(module).__name__}.{name} was replaced "
                                     "since the program was compiled, which would still read "
                                     "the old one; compile it again")
            entry[1] = module._version  # something else was assigned: still valid
