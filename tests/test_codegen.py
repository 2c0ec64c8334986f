"""Generated code (issue 3): agreement with the reference executor (``program.run`` and the
forward/backward split), reduction counts read from ``program.source``, the symbolic closed
form, the memory plan, and readable source."""
import ast
import builtins
import importlib.util
import itertools
import linecache
import os
import re
import traceback
import zlib

import numpy as np
import pytest
import sympy as sp

import lucid
import lucid.codegen.generate
import lucid.nn as nn
from lucid import ops
from lucid.codegen.symbolic import Symbolic
from lucid.ops import REGISTRY
from lucid.runtime import run as reference_run

SMALL = {"N": 6, "L": 5}


def itertools_list(*axes):
    """itertools.product as a list (pytest wants a collection, not an iterator)."""
    return list(itertools.product(*axes))
LARGE = {"N": 64, "L": 16}  # (64, 32, 16): every fused value takes the in-place path


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def randomize(module, rng):
    """Non-trivial parameters and running statistics, so every term of the maths shows."""
    state = module.state_dict()
    for key, value in state.items():
        state[key] = (np.array(3) if key.endswith("num_batches_tracked") else
                      rng.uniform(0.5, 2.0, value.shape) if key.endswith("running_var") else
                      rng.normal(0.5, 1.0, value.shape))
    module.load_state_dict(state)
    return module


def make_feeds(program, rng, sizes):
    """Bound tensors for parameters and buffers, random arrays for every other input."""
    feeds = {p: t.data for p, t in program.bindings.items()}
    for p in program.graph.inputs:
        d = program.graph.node(p)
        shape = tuple(sizes[s] if isinstance(s, str) else s for s in d.shape)
        feeds.setdefault(p, rng.normal(1.0, 2.0, shape).astype(d.dtype))
    return feeds


def assert_close(got, ref, dtype, key):
    assert np.asarray(got).dtype == ref.dtype and np.shape(got) == ref.shape, key
    tol = {"float32": 1e-4, "float64": 1e-10}.get(dtype, 0)
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale, err_msg=key)


def assert_agrees(program, feeds):
    """``program.run`` and the forward/backward split both match the reference executor."""
    program.graph.lint(REGISTRY)
    ref = reference_run(program.graph, feeds)
    got = program.run(feeds)
    assert list(got) == list(ref)
    dtypes = {k: program.graph.node(o.node).dtype for k, o in program.graph.outputs.items()}
    for key in ref:
        assert_close(got[key], ref[key], dtypes[key], key)
    if program.seeds:
        forward, saved = program.run_forward({k: v for k, v in feeds.items()
                                              if k not in program.seeds})
        grads = program.run_backward(saved, {s: feeds[s] for s in program.seeds})
        assert set(forward) | set(grads) == set(ref) and not set(forward) & set(grads)
        for key, value in {**forward, **grads}.items():
            assert_close(value, ref[key], dtypes[key], key)
    return got


# ------------------------------------------------------------------------------ builders
def bn_program(ndim=3, affine=True, track=True, momentum=0.1, mode="train", dtype="float32",
               batch="symbolic", backward=None, sizes=SMALL, name="x"):
    bn = randomize(nn.BatchNorm1d(3, affine=affine, track_running_stats=track,
                                  momentum=momentum).to(dtype), rng_for("bn", ndim, dtype))
    shape = ((None, 3, None) if batch == "symbolic" else (sizes["N"], 3, sizes["L"]))[:ndim]
    return lucid.compile(bn, lucid.placeholder(shape, dtype, name=name), mode=mode,
                         backward=backward)


def mlp_program(mode="train", dtype="float32", batch="symbolic", sizes=SMALL):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    randomize(model.to(dtype), rng_for("mlp", dtype))
    shape = (None, 3) if batch == "symbolic" else (sizes["N"], 3)
    return lucid.compile(model, lucid.placeholder(shape, dtype, name="x"), mode=mode,
                         backward=True)


def centred_norm(axes):
    def fn(x):
        xc = x - x.mean(axes, keepdims=True)
        return xc * lucid.rsqrt((xc * xc).mean(axes, keepdims=True) + 1e-5)
    return fn


def rms_norm(axes):
    return lambda x: x * lucid.rsqrt((x * x).mean(axes, keepdims=True) + 1e-6)


def affine_layer_norm(x, gamma, beta):  # over the last axis, with its own scale and shift
    return centred_norm(-1)(x) * gamma + beta


COMPOSED = {  # name -> (function, input shapes, forward and backward reduction limits)
    "norm_axis1_2d": (centred_norm(1), [(None, 5)], 2, 2),
    "norm_last_axis_3d": (centred_norm(-1), [(None, 3, None)], 2, 2),
    "layer_norm_axes12": (centred_norm((1, 2)), [(None, 3, None)], 2, 2),
    "rms_norm_last_axis": (rms_norm(-1), [(None, 3, None)], 1, 1),
    "rms_norm_axis1_2d": (rms_norm(1), [(None, 5)], 1, 1),
    # sum(dy), sum(dy * xc), and grad:gamma, grad:beta summed over (N, 3)
    "affine_layer_norm": (affine_layer_norm, [(None, 3, 8), (8,), (8,)], 2, 4),
}


def composed_program(kind, dtype="float32", batch="symbolic", sizes=SMALL):
    fn, shapes, _, _ = COMPOSED[kind]
    if batch == "static":
        shapes = [tuple(sizes["N" if i == 0 else "L"] if d is None else d
                        for i, d in enumerate(shape)) for shape in shapes]
    return lucid.compile(fn, *[lucid.placeholder(shape, dtype, name=name)
                               for shape, name in zip(shapes, ["x", "gamma", "beta"])])


READABLE = {  # programs whose whole source the readability tests read
    "bn_train_3d": lambda: bn_program(3),
    "bn_train_2d_plain": lambda: bn_program(2, affine=False, momentum=None, dtype="float64"),
    "bn_eval_3d": lambda: bn_program(3, mode="eval"),
    "bn_eval_untracked": lambda: bn_program(3, track=False, mode="eval", backward=True),
    "bn_static_large": lambda: bn_program(3, batch="static", sizes=LARGE),
    "mlp_train": lambda: mlp_program(),
    **{k: (lambda k=k: composed_program(k)) for k in COMPOSED},
}


# ------------------------------------------------------------------------- agreement
BN_OPTIONS = list(itertools.product([2, 3], [True, False], [True, False], [0.1, None],
                                    ["train", "eval"], ["float32", "float64"],
                                    ["symbolic", "static"]))


@pytest.mark.parametrize("ndim, affine, track, momentum, mode, dtype, batch", BN_OPTIONS)
def test_batchnorm_agrees_with_executor(ndim, affine, track, momentum, mode, dtype, batch):
    sizes = SMALL if batch == "symbolic" else LARGE  # static and large: the in-place path
    program = bn_program(ndim, affine, track, momentum, mode, dtype, batch, True, sizes)
    got = assert_agrees(program, make_feeds(program, rng_for(ndim, mode, dtype), sizes))
    assert ("running_mean" in got) == (mode == "train" and track)
    assert ("grad:weight" in got) == affine and "grad:x" in got


@pytest.mark.parametrize("mode, dtype, batch", itertools_list(
    ["train", "eval"], ["float32", "float64"], ["symbolic", "static"]))
def test_mlp_agrees_with_executor(mode, dtype, batch):
    program = mlp_program(mode, dtype, batch)
    got = assert_agrees(program, make_feeds(program, rng_for("mlp", mode), SMALL))
    assert ("1.running_var" in got) == (mode == "train") and "grad:0.weight" in got


@pytest.mark.parametrize("kind, dtype, batch", itertools_list(
    COMPOSED, ["float32", "float64"], ["symbolic", "static"]))
def test_composed_normalisation_agrees_with_executor(kind, dtype, batch):
    program = composed_program(kind, dtype, batch)
    got = assert_agrees(program, make_feeds(program, rng_for(kind), SMALL))
    assert sorted(got) == sorted(["out"] + [f"grad:{p}" for p in program.user_inputs()
                                            if p not in program.seeds])


# ------------------------------------------------------------------- source helpers
def functions(source):
    """``{name: body lines}`` of the generated ``step``/``forward``/``backward``."""
    lines = source.splitlines()
    return {f.name: lines[f.lineno:f.end_lineno] for f in ast.parse(source).body
            if isinstance(f, ast.FunctionDef) and f.name in ("step", "forward", "backward")}


def code(body):
    """Stripped lines without the ``size_*`` bindings, the return and the hand-off to the
    parallel twin (``if _worth(...): return _step_parallel(...)``, or ``_worth_rows``); of a
    sum that tests the batch size (``if size_N <= K:`` BLAS form ``else:`` einsum,
    lucid.codegen.reduce), the einsum alone: one statement per sum, as without the test."""
    lines = [s.strip() for s in body
             if not s.strip().startswith(("return ", "if _worth(", "if _worth_rows("))
             and not re.match(r"\s*size_\w+ = \w+\.shape\[\d+\]$", s)]
    out, guarded = [], False
    for s in lines:
        guarded = guarded or (s.startswith("if ") and "reduce.BLAS_LIMIT" in s)
        if not guarded:
            out.append(s)
        guarded = guarded and s != "else:"
    return out


def statements(body):
    return [s for s in code(body) if not s.startswith("#")]


REDUCTION = re.compile(r"\bnp\.(sum|einsum|mean|dot|vdot|inner|tensordot|add\.reduce)\(|\.sum\(")


def reductions(body):
    """Reduction passes: ``np.sum(``, ``np.einsum(`` and their spellings."""
    return sum(len(REDUCTION.findall(s)) for s in statements(body))


def reads(lines, name):
    return sum(len(re.findall(rf"(?<![\w.']){re.escape(name)}\b", s)) for s in lines)


def blocks(body):
    """Statements grouped under the comment run above them: ``[(comments, statements)]``."""
    out = []
    for s in code(body):
        if s.startswith("#") and (not out or out[-1][1]):
            out.append(([], []))
        assert out, f"statement before any comment: {s}"
        out[-1][0 if s.startswith("#") else 1].append(s)
    return out


def large_residuals(program, shape):
    shapes = {str(it.symbol): it.shape for it in program.plan.items}
    shapes.update({p: program.graph.node(p).shape for p in program.graph.inputs})
    return [r for r in program.residuals if tuple(shapes.get(r, ())) == shape]


# ------------------------------------------------------------------- reduction counts
@pytest.mark.parametrize("ndim, affine", itertools_list([2, 3], [True, False]))
def test_batchnorm_train_source_has_the_closed_form_reductions(ndim, affine):
    program = bn_program(ndim, affine)
    fns = functions(program.source)
    assert 1 <= reductions(fns["forward"]) <= 2 and 1 <= reductions(fns["backward"]) <= 2
    full = ("N", 3, "L")[:ndim]
    shape_src = "(" + ", ".join(f"size_{d}" if isinstance(d, str) else str(d) for d in full) + ")"
    (xc,) = large_residuals(program, full)  # the centred input is the only large residual
    (dy,) = program.seeds
    forward, backward = statements(fns["forward"]), statements(fns["backward"])
    summed = lambda stmts: sorted((reads([s], dy), reads([s], xc))  # noqa: E731
                                  for s in stmts if REDUCTION.search(s))
    assert summed(forward)[-1] == (0, 2)  # sum(xc * xc), beside sum(x)
    assert summed(backward) == [(1, 0), (1, 1)]  # sum(dy), sum(dy * xc)
    # dx: one fused statement group, allocated once, reading dy and xc once each
    dx = f"_out_{program.graph.outputs['grad:x'].node}"
    groups = [b for _, b in blocks(fns["backward"]) if reads(b, dx)]
    # taken once (a returned array nobody holds any more, or a new one: `_result`), then
    # every ufunc writes into it (lines `_eK = ...` lay per-channel operands out for long
    # inner loops)
    group = [s for s in groups[0] if not s.startswith("_e")] if groups else []
    assert len(groups) == 1 and group[0].startswith(f"{dx} = _result(")
    assert re.match(rf"np\.(multiply|add|subtract)\(.*, out={dx}\)$", group[1])
    assert sum(s.startswith(f"{dx} = ") for s in group) == 1
    assert reads(groups[0], dy) == 1 and reads(groups[0], xc) == 1
    assert reads(backward, dy) == reductions(fns["backward"]) + 1  # nothing else touches dy
    assert sum(shape_src in s for s in backward) <= 2  # dx and at most one scratch


@pytest.mark.parametrize("ndim, affine, dtype", itertools_list([2, 3], [True, False],
                                                                  ["float32", "float64"]))
def test_batchnorm_eval_is_one_scale_and_shift_over_x(ndim, affine, dtype):
    program = bn_program(ndim, affine, mode="eval", dtype=dtype)
    assert program.seeds == [] and program.forward_fn is None
    assert list(assert_agrees(program, make_feeds(program, rng_for(ndim), SMALL))) == ["out"]
    body = functions(program.source)["step"]
    assert reductions(body) == 0
    out, stmts = f"_out_{program.graph.outputs['out'].node}", statements(body)
    # the returned array is taken once (`_result`: an earlier call's, once nobody holds it,
    # else a new one), then x is scaled into it and shifted in place
    passes = [s for s in stmts if s.startswith(f"{out} = ") or f"out={out})" in s]
    assert reads(stmts, "x") == 1 and len(passes) == 3
    assert passes[0].startswith(f"{out} = _result(")
    assert re.match(rf"np\.multiply\(x, .*, out={out}\)$", passes[1]), passes[1]
    assert re.match(rf"np\.(add|subtract)\({out}, .*, out={out}\)$", passes[2]), passes[2]


@pytest.mark.parametrize("kind", COMPOSED)
def test_composed_normalisation_reduction_counts(kind):
    _, _, fwd_limit, bwd_limit = COMPOSED[kind]
    program = composed_program(kind)
    fns = functions(program.source)
    assert 1 <= reductions(fns["forward"]) <= fwd_limit
    assert 1 <= reductions(fns["backward"]) <= bwd_limit
    assert reductions(fns["step"]) == reductions(fns["forward"]) + reductions(fns["backward"])
    dx = f"_out_{program.graph.outputs['grad:x'].node}"
    groups = [b for _, b in blocks(fns["backward"]) if reads(b, dx)]
    # dy is read once: itself, or a temporary holding a product of it (dy * gamma)
    seed = sp.Symbol(program.seeds[0], real=True)
    carriers = [program.seeds[0]] + [str(t) for t, e in program.plan.temps.items()
                                     if e.is_Mul and seed in e.args]
    assert len(groups) == 1 and sum(reads(groups[0], c) for c in carriers) == 1


# ------------------------------------------------------------------------- symbolic
@pytest.mark.parametrize("ndim", [2, 3])
def test_symbolic_form_of_batchnorm_train(ndim):
    program = bn_program(ndim, momentum=None)
    graph, (seed,) = program.graph, program.seeds
    sym = Symbolic(graph)
    x, dy = sp.Symbol("x", real=True), sp.Symbol(seed, real=True)
    xc = sym.value[next(n for n in graph.users("mean") if graph.node(n).op == "sub")]
    reduce = {s: a for s, a in sym.atoms.items() if a.kind == "reduce"}
    atom = lambda e: [s for s, a in reduce.items() if sp.expand(a.expr - e) == 0]  # noqa: E731
    # sum(x), sum(xc**2), sum(dy), sum(dy*xc) and nothing else: no sum(xc), no sum(x**2)
    assert [atom(e) for e in (x, xc ** 2, dy, dy * xc)] == [[s] for s in reduce]
    r_mean, r_var, r_dy, r_dyxc = reduce
    assert reduce[r_var].expr == xc ** 2 and reduce[r_var].expr.is_Pow  # centred, not expanded
    grad = sym.value[graph.outputs["grad:x"].node].free_symbols & set(reduce)
    assert grad == {r_mean, r_var, r_dy, r_dyxc}
    assert {s for s in grad if reduce[s].expr.has(dy)} == {r_dy, r_dyxc}
    # autodiff built sums whose body has a dy-free centred term; they fold to the atoms above
    centred = [n for n in graph.topo() if graph.node(n).op == "sum" and any(
        xc in sp.Mul.make_args(t) and not t.has(dy)
        for t in sp.Add.make_args(sym.value[graph.node(n).inputs[0]]))]
    assert any(graph.node(n).phase == "backward" for n in centred)
    assert all(sym.value[n].free_symbols & set(reduce) <= {r_var, r_dy} for n in centred)


# ---------------------------------------------------------------------- memory plan
MEMORY = {
    "bn_train_symbolic": lambda: bn_program(3, sizes=LARGE, dtype="float64"),
    "bn_train_static": lambda: bn_program(3, batch="static", sizes=LARGE, dtype="float64"),
    "bn_eval": lambda: bn_program(3, mode="eval", sizes=LARGE, dtype="float64"),
    "layer_norm_axes12": lambda: composed_program("layer_norm_axes12", "float64"),
    "mlp_train_static": lambda: mlp_program(dtype="float64", batch="static",
                                            sizes={"N": 512}),
}


def assert_no_sharing(*results, feeds=()):
    """No returned array shares memory with another one, of this call or another, or a feed."""
    arrays = [((i, k), v) for i, r in enumerate(results) for k, v in r.items()]
    for (a, u), (b, v) in itertools.combinations(arrays, 2):
        assert not np.shares_memory(u, v), (a, b)
    for (a, u), (f, v) in itertools.product(arrays, [kv for fd in feeds for kv in fd.items()]):
        assert not np.shares_memory(u, v), (a, f)


@pytest.mark.parametrize("kind", MEMORY)
def test_buffers_reused_across_calls_never_corrupt_an_earlier_result(kind):
    program = MEMORY[kind]()
    sizes = {"N": 512} if kind.startswith("mlp") else LARGE
    rng = rng_for("memory", kind)
    f1, f2 = make_feeds(program, rng, sizes), make_feeds(program, rng, sizes)
    r1 = program.run(f1)
    kept = {k: np.array(v, copy=True) for k, v in r1.items()}
    r2 = program.run(f2)
    for key, value in reference_run(program.graph, f2).items():
        np.testing.assert_array_equal(r1[key], kept[key], err_msg=key)
        assert_close(r2[key], value, str(value.dtype), key)
    assert_no_sharing(r1, r2, feeds=(f1, f2))
    if program.seeds:  # residuals of one forward survive another forward and backward
        fwd = lambda f: program.run_forward({k: v for k, v in f.items()  # noqa: E731
                                             if k not in program.seeds})
        seeds = lambda f: {s: f[s] for s in program.seeds}  # noqa: E731
        (o1, s1), (o2, s2) = fwd(f1), fwd(f2)
        g2 = program.run_backward(s2, seeds(f2))
        g1 = program.run_backward(s1, seeds(f1))
        for key, value in [*o1.items(), *g1.items()]:  # step and split may order sums apart
            np.testing.assert_allclose(value, kept[key], rtol=1e-12, atol=1e-12, err_msg=key)
        for key, value in [*o2.items(), *g2.items()]:
            np.testing.assert_allclose(value, r2[key], rtol=1e-12, atol=1e-12, err_msg=key)
        assert_no_sharing({**o1, **g1}, {**o2, **g2}, s2)  # s1 may hold inputs, not s2


@pytest.mark.parametrize("fn", [lambda y: {"y": y, "total": y.sum(axis=0)},
                                lambda y: {"y": y, "flat": y.reshape((64, 512))}],
                         ids=["tanh_and_its_sum", "tanh_and_its_reshape"])
def test_an_output_read_by_other_items_is_not_a_reused_buffer(fn):
    program = lucid.compile(lambda x: fn(lucid.tanh(x)),
                            lucid.placeholder((64, 32, 16), "float64", name="x"), mode="eval")
    rng = rng_for("reused-output")
    r1 = program.run({"x": rng.normal(size=(64, 32, 16))})
    kept = {k: v.copy() for k, v in r1.items()}
    r2 = program.run({"x": rng.normal(size=(64, 32, 16))})
    for key in r1:
        np.testing.assert_array_equal(r1[key], kept[key], err_msg=key)
    assert_no_sharing(r1, r2)


@pytest.mark.parametrize("kind", ["bn_train_symbolic", "bn_train_static", "layer_norm_axes12"])
def test_scratch_uses_buffers_and_returned_values_are_results(kind):
    # returned values never live in scratch buffers: they are new arrays, or `_result`s
    # (arrays earlier calls returned, offered back only when nobody holds them)
    program = MEMORY[kind]()
    tree = {f.name: f for f in ast.parse(program.source).body if isinstance(f, ast.FunctionDef)}
    for name, body in functions(program.source).items():
        returned = {e.id for e in tree[name].body[-1].value.elts}
        fresh = [s.split(" = ")[0] for s in statements(body) if "out=" not in s and re.match(
            r"\w+ = (_result|np\.(empty|multiply|add|subtract|negative|positive))\(", s)]
        reused = [s.split(" = ")[0] for s in statements(body) if " = _buffer(" in s]
        assert fresh and set(fresh) <= returned, name
        assert not set(reused) & returned, name
    assert " = _buffer(" in "\n".join(functions(program.source)["step"])


# ----------------------------------------------------------------------- readability
COMMENT = re.compile(r"(\w+) = (\w+)\(([^)]*)\)")


@pytest.mark.parametrize("kind", READABLE)
def test_every_statement_has_a_comment_naming_graph_nodes(kind):
    program = READABLE[kind]()
    for name, body in functions(program.source).items():
        for comments, stmts in blocks(body):
            assert stmts, (name, comments)
            for c in comments:
                parts = COMMENT.findall(c)
                assert parts, c
                for node, op, args in parts:
                    assert node in program.graph and program.graph.node(node).op == op
                    for a in filter(None, args.split(", ")):
                        assert a in program.graph, (c, a)


def test_each_commented_group_computes_one_value():
    program = bn_program(3)
    for name, body in functions(program.source).items():
        for comments, stmts in blocks(body):
            assigned = {s.split(" = ")[0] for s in stmts if re.match(r"\w+ = ", s)}
            assert len({s for s in assigned if not s.startswith(("_s", "_e"))}) == 1, \
                (name, comments, stmts)


@pytest.mark.parametrize("kind", [*READABLE, "builtin_named_inputs"])
def test_no_name_shadows_a_builtin(kind):
    if kind == "builtin_named_inputs":
        program = lucid.compile(lambda a, b: (a * b).sum(axis=0),
                                lucid.placeholder((None, 3), name="input"),
                                lucid.placeholder((None, 3), name="max"))
        assert_agrees(program, make_feeds(program, rng_for("builtins"), SMALL))
    else:
        program = READABLE[kind]()
    names = {getattr(n, "id", None) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
             else getattr(n, "arg", None) if isinstance(n, ast.arg)
             else getattr(n, "name", None) if isinstance(n, ast.FunctionDef) else None
             for n in ast.walk(ast.parse(program.source))} - {None}
    assert "step" in names and not names & set(dir(builtins))
    assert all(n.isidentifier() for n in names)


@pytest.mark.parametrize("name", [
    "_r0", "_buffer", "_t0", "_local", "step"])
def test_input_named_like_a_generated_name_still_agrees(name):
    program = bn_program(3, name=name, sizes=LARGE)
    assert_agrees(program, make_feeds(program, rng_for("names", name), LARGE))


PRELUDE = lucid.codegen.generate.PRELUDE + '\n\n'

EVAL_SOURCE = PRELUDE + '''def check(x):
    return (type(x) is _ndarray
        and x.dtype is _float32
        and x.ndim == 2
        and x.shape[1] == 3)


def step(x):
    size_N = x.shape[0]
    # n4 = sum(n3); n1 = mul(x, n0); n3 = add(n1, n2)
    _s1 = _buffer('step._s1', (size_N, 3), np.float32)
    np.multiply(x, 2.0, out=_s1)
    np.add(_s1, 1.0, out=_s1)
    _r0 = np.einsum('ab->', _s1, dtype=np.float64).astype(np.float32)
    return (_r0,)
'''

TRAIN_SOURCE = PRELUDE + '''def check(x, grad_out):
    return (type(x) is _ndarray
        and x.dtype is _float32
        and x.ndim == 2
        and x.shape[1] == 3
        and type(grad_out) is _ndarray
        and grad_out.dtype is _float32
        and grad_out.shape == ())


def step(x, grad_out):
    size_N = x.shape[0]
    # n1 = sum(n0); n0 = mul(x, x)
    _r0 = np.einsum('ab,ab->', x, x)
    # n6 = add(n4, n4); n4 = mul(n3, x)
    _out_n6 = _result('step._out_n6', (size_N, 3), np.float32)
    np.multiply(x, 2*grad_out, out=_out_n6)
    return (_r0, _out_n6)


def check_forward(x):
    return (type(x) is _ndarray
        and x.dtype is _float32
        and x.ndim == 2
        and x.shape[1] == 3)


def forward(x):
    # n1 = sum(n0); n0 = mul(x, x)
    _r0 = np.einsum('ab,ab->', x, x)
    return (_r0, x)


def backward(grad_out, x):
    size_N = x.shape[0]
    if _worth_rows(size_N * 3, size_N, False) and x.flags.c_contiguous:  # big enough to split over threads?
        return _backward_parallel(grad_out, x)
    # n6 = add(n4, n4); n4 = mul(n3, x)
    _out_n6 = _result('backward._out_n6', (size_N, 3), np.float32)
    np.multiply(x, 2*grad_out, out=_out_n6)
    return (_out_n6,)


def _backward_part0(_lo, _hi, _out_n6, grad_out, x):
    """Slice _lo:_hi of axis 0 of backward's (size_N, 3) values."""
    x = x[_lo:_hi]
    # n6 = add(n4, n4); n4 = mul(n3, x)
    _out_n6 = _out_n6[_lo:_hi]
    np.multiply(x, 2*grad_out, out=_out_n6)
    return ()


def _backward_parallel(grad_out, x):
    size_N = x.shape[0]
    # arrays the slices write into, allocated whole
    _out_n6 = _result('backward._out_n6', (size_N, 3), np.float32)
    # axis 0 in slices on the thread pool: _backward_part0
    _split(_backward_part0, size_N, (), _out_n6, grad_out, x)
    return (_out_n6,)
'''


@pytest.mark.parametrize("mode, fn, expected", [
    ("eval", lambda x: (x * 2.0 + 1.0).sum(), EVAL_SOURCE),
    ("train", lambda x: (x * x).sum(), TRAIN_SOURCE)])
def test_exact_source_of_a_tiny_program(mode, fn, expected):
    program = lucid.compile(fn, lucid.placeholder((None, 3), name="x"), mode=mode)
    assert program.source == expected
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    feeds = {"x": x, **{s: np.array(0.5, np.float32) for s in program.seeds}}
    got = assert_agrees(program, feeds)
    np.testing.assert_allclose(got["out"], 36.0 if mode == "eval" else 55.0)


def test_save_writes_the_source_and_it_runs(tmp_path):
    program, path = bn_program(3), tmp_path / "bn_program.py"
    program.save(path)
    assert path.read_text(encoding="utf-8") == program.source
    spec = importlib.util.spec_from_file_location("bn_program", path)
    spec.loader.exec_module(module := importlib.util.module_from_spec(spec))
    args = [make_feeds(program, rng_for("save"), SMALL)[p] for p in program.graph.inputs]
    for a, b in zip(module.step(*args), program.step_fn(*args)):
        np.testing.assert_array_equal(a, b)


def test_a_traceback_through_generated_code_shows_the_generated_line():
    program = bn_program(3, mode="eval")
    code = program.step_fn.__code__
    # in memory only: a pseudo file name whose lines linecache holds (nothing on disk)
    assert code.co_filename.startswith("<lucid:") and not os.path.exists(code.co_filename)
    assert "".join(linecache.getlines(code.co_filename)) == program.source
    linecache.checkcache()  # what traceback does first: the entry must survive it
    feeds = make_feeds(program, rng_for("traceback"), SMALL)
    feeds["x"] = np.ones((4, 5, 2), np.float32)  # 5 channels against 3: NumPy raises inside step
    with pytest.raises(ValueError) as info:
        program.step_fn(*[feeds[p] for p in program.graph.inputs])
    text = "".join(traceback.format_exception(info.value))
    frame = traceback.extract_tb(info.tb)[-1]
    assert frame.filename == code.co_filename and frame.name == "step"
    line = program.source.splitlines()[frame.lineno - 1].strip()
    assert reads([line], "x") == 1 and not line.startswith("#")  # the statement reading x
    assert f'File "{code.co_filename}", line {frame.lineno}, in step\n    {line}\n' in text
