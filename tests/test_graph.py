"""The graph layer: building, linting, ordering, editing, and the graphs lucid.compile makes."""
import dataclasses
import keyword

import numpy as np
import pytest
import sympy as sp

import lucid
import lucid.nn as nn
from lucid.graph import Graph, Node
from lucid.graph.graph import RESERVED
from lucid.ops import REGISTRY
from lucid.runtime import run as reference_run


def small_graph():
    """x, y placeholders; s = add(x, y); m = mul(s, x); out = sum(m)."""
    g = Graph()
    x = g.add("placeholder", [], ("N", 3), "float32", name="x")
    y = g.add("placeholder", [], ("N", 3), "float32", name="y")
    s = g.add("add", [x, y], ("N", 3), "float32", name="s")
    m = g.add("mul", [s, x], ("N", 3), "float32", name="m")
    out = g.add("sum", [m], (), "float32", {"axes": (0, 1), "keepdims": False}, name="out")
    g.set_output("out", out)
    return g


def test_small_graph_lints_and_runs():
    g = small_graph()
    g.lint(REGISTRY)
    assert g.inputs == ["x", "y"]
    assert g.topo() == ["x", "y", "s", "m", "out"]
    x, y = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32)
    assert float(reference_run(g, {"x": x, "y": y})["out"]) == 18.0  # 6 * (1 + 2) * 1
    assert g.node("m").inputs == ("s", "x") and set(g.users("x")) == {"s", "m"}


def test_lint_finds_a_cycle():
    g = small_graph()
    g.nx.add_edge("m", "s")
    g.nx.nodes["s"]["node"] = dataclasses.replace(g.node("s"), inputs=("x", "y", "m"))
    with pytest.raises(ValueError, match="cycle"):
        g.lint()


def test_lint_finds_an_unregistered_op_only_given_a_registry():
    g = small_graph()
    g.add("frobnicate", ["m"], ("N", 3), "float32")
    g.lint()  # the graph layer alone does not know what ops exist
    with pytest.raises(ValueError, match="'frobnicate' is not registered"):
        g.lint(REGISTRY)


@pytest.mark.parametrize("op, inputs", [("add", ["x"]), ("neg", ["x", "y"]), ("matmul", ["x"]),
                                        ("sum", ["x", "x"])])
def test_lint_finds_a_wrong_arity(op, inputs):
    g = small_graph()
    g.add(op, inputs, ("N", 3), "float32", {"axes": (0,), "keepdims": False})
    with pytest.raises(ValueError, match=f"{op} takes {REGISTRY[op].arity} inputs, got {len(inputs)}"):
        g.lint(REGISTRY)


def test_lint_finds_edges_that_disagree_with_inputs():
    g = small_graph()
    g.nx.add_edge("y", "m")  # m = mul(s, x): y is no input of m
    with pytest.raises(ValueError, match="'m': edges .* disagree with inputs"):
        g.lint()
    g = small_graph()
    g.nx.remove_edge("y", "s")
    with pytest.raises(ValueError, match="disagree"):
        g.lint()


def test_lint_finds_missing_outputs_and_bad_phases():
    g = small_graph()
    g.set_output("ghost", "nowhere")
    with pytest.raises(ValueError, match="'ghost' names missing node"):
        g.lint()
    g = small_graph()
    g.nx.nodes["m"]["node"] = dataclasses.replace(g.node("m"), phase="sideways")
    with pytest.raises(ValueError, match="unknown phase"):
        g.lint()


def test_add_rejects_unknown_inputs_and_phases():
    g = small_graph()
    with pytest.raises(ValueError, match="'nope'"):
        g.add("neg", ["nope"], ("N", 3), "float32")
    with pytest.raises(ValueError, match="phase"):
        g.add("neg", ["x"], ("N", 3), "float32", phase="sideways")


@pytest.mark.parametrize("hint", ["sum", "np", "numpy", "lambda", "print", "match", "type",
                                  "size_N", "1x", "a-b", "", "x y"])
def test_reserved_and_illegal_names_never_become_node_names(hint):
    g = small_graph()
    name = g.add("neg", ["x"], ("N", 3), "float32", name=hint or None)
    assert name != hint and name.isidentifier() and name not in RESERVED
    g.lint(REGISTRY)


def test_reserved_names_cover_keywords_builtins_and_numpy():
    assert {"sum", "np", "numpy", "lambda", "len", "match"} <= RESERVED
    assert set(keyword.kwlist) <= RESERVED


@pytest.mark.parametrize("bad", ["sum", "np", "lambda", "size_N", "a b"])
def test_lint_rejects_a_reserved_name_forced_into_the_graph(bad):
    g = small_graph()
    g.nx.add_node(bad, node=Node(bad, "neg", (), {}, (), "float32"))
    with pytest.raises(ValueError, match="not a free identifier"):
        g.lint()


def test_names_are_unique_when_hints_repeat():
    g = small_graph()
    names = [g.add("neg", ["x"], ("N", 3), "float32", name="x") for _ in range(3)]
    assert len(set(names) | {"x"}) == 4
    g.lint(REGISTRY)


def test_user_placeholders_named_like_builtins_compile_and_run():
    phs = [lucid.placeholder((None, 2), name=n) for n in ("sum", "np", "lambda")]
    program = lucid.compile(lambda a, b, c: (a * b - c).sum(), *phs, mode="eval")
    program.graph.lint(REGISTRY)
    assert not set(program.graph.nx.nodes) & RESERVED
    a, b, c = (np.full((3, 2), v, np.float32) for v in (2.0, 3.0, 1.0))
    assert float(program(a, b, c)["out"]) == pytest.approx(30.0)
    # a placeholder called "np" must not shadow the generated code's NumPy
    assert "np.einsum(" in program.source and "def step(sum" not in program.source


def test_symbolic_dims_and_symbols():
    x = lucid.placeholder((None, 3, None), name="x")
    y = lucid.placeholder(("B", 3), name="y")
    assert x.shape == ("N", 3, "L") and y.shape == ("B", 3)
    g = lucid.compile(lambda x, y: x.sum((0, 2)) + y.sum(0), x, y, mode="eval").graph
    assert g.symbols() == {"N": ("x", 0), "L": ("x", 2), "B": ("y", 0)}
    assert g.node(g.outputs["out"].node).shape == (3,)
    assert [n.shape for n in g.nodes() if n.op == "sum"] == [(3,), (3,)]
    with pytest.raises(ValueError, match="identifier"):
        lucid.placeholder(("not a name", 3))


def test_topological_order_is_deterministic_and_respects_insertion():
    def build():
        x = lucid.placeholder((None, 4), name="x")
        return lucid.compile(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU()), x)

    a, b = build(), build()
    assert a.graph.topo() == b.graph.topo()
    assert a.source == b.source
    order = a.graph.topo()
    position = {n: i for i, n in enumerate(order)}
    for u, v in a.graph.nx.edges:
        assert position[u] < position[v]
    g = small_graph()
    g.add("neg", ["x"], ("N", 3), "float32", name="late")  # ready early, inserted last
    assert g.topo()[-1] == "late"


def test_replace_uses_and_remove_unused():
    g = small_graph()
    g.add("neg", ["y"], ("N", 3), "float32", name="t")
    g.replace_uses("s", "t")  # m = mul(t, x)
    assert g.node("m").inputs == ("t", "x")
    assert not g.nx.has_edge("s", "m") and g.nx.has_edge("t", "m")
    g.lint(REGISTRY)
    assert g.remove_unused() == 1 and "s" not in g
    g.replace_uses("out", "m")
    assert g.output_nodes() == {"out": "m"}
    assert g.remove_unused() == 1 and set(g.nx.nodes) == {"x", "y", "t", "m"}
    g.lint(REGISTRY)
    x, y = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32)
    np.testing.assert_array_equal(reference_run(g, {"x": x, "y": y})["out"], -2 * np.ones((2, 3)))


def test_replace_uses_merges_into_an_existing_edge():
    g = small_graph()
    g.replace_uses("y", "x")  # s = add(x, x)
    assert g.node("s").inputs == ("x", "x")
    assert g.nx.has_edge("x", "s") and not g.nx.has_edge("y", "s")
    g.lint(REGISTRY)
    assert g.remove_unused() == 0 and "y" in g  # placeholders stay


# ------------------------------------------------------------- graphs lucid.compile makes
def models():
    return {
        "linear": (lambda: nn.Linear(3, 2), (None, 3)),
        "mlp_bn": (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(),
                                         nn.Linear(4, 2)), (None, 3)),
        "bn3d_momentum_none": (lambda: nn.BatchNorm1d(3, momentum=None), (None, 3, None)),
        "bn_plain": (lambda: nn.BatchNorm1d(3, affine=False, track_running_stats=False), (None, 3)),
        "function": (lambda: (lambda x: lucid.relu(x * 2.0 - 1.0).mean(1)), (None, 3)),
    }


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("model", sorted(models()))
def test_every_compiled_graph_lints(model, mode):
    make, shape = models()[model]
    program = lucid.compile(make(), lucid.placeholder(shape, name="x"), mode=mode)
    program.graph.lint(REGISTRY)
    for name in program.graph.nx.nodes:
        assert name.isidentifier() and name not in RESERVED and not name.startswith("size_")


def test_nodes_carry_their_gradient_rule():
    x = lucid.placeholder((None, 3), name="x")
    g = lucid.compile(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), x).graph
    seen = set()
    for node in g.nodes():
        op = REGISTRY[node.op]
        if op.kind == "elementwise":
            env = {a: sp.Symbol(i, real=True) for a, i in zip(sp.symbols("a b", real=True),
                                                                node.inputs)}
            assert node.rule == tuple((i, p.xreplace(env)) for i, p in zip(node.inputs, op.partials))
            assert all(isinstance(p, sp.Expr) for _, p in node.rule)
        elif op.kind == "structural":
            words = REGISTRY[node.op].grad.split(" | ")
            assert node.rule == tuple(zip(node.inputs, words))
        seen.add(op.kind)
    assert seen == {"elementwise", "structural", "leaf"}
    mul = next(n for n in g.nodes() if n.op == "mul" and len(set(n.inputs)) == 2)
    a, b = mul.inputs
    assert dict(mul.rule) == {a: sp.Symbol(b, real=True), b: sp.Symbol(a, real=True)}


def test_train_graph_has_forward_backward_and_update_phases():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    g = lucid.compile(model, lucid.placeholder((None, 3), name="x"), mode="train").graph
    phases = {n.phase for n in g.nodes()}
    assert phases == {"forward", "backward", "update"}
    assert set(g.outputs) == {"out", "grad:x", "grad:0.weight", "grad:0.bias", "grad:1.weight",
                              "grad:1.bias", "1.running_mean", "1.running_var",
                              "1.num_batches_tracked"}
    for key, out in g.outputs.items():
        phase = g.node(out.node).phase
        if key.startswith("grad:"):
            assert phase == "backward" and out.kind == "grad" and key == f"grad:{out.of}"
        elif key != "out":
            assert phase == "update" and out.kind == "update" and out.of == key
    assert g.node(g.outputs["out"].node).phase == "forward"
    for node in g.nodes():  # the forward never reads backward or update values
        if node.phase == "forward":
            assert all(g.node(i).phase == "forward" for i in node.inputs)


def test_eval_graph_is_forward_only():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    g = lucid.compile(model, lucid.placeholder((None, 3), name="x"), mode="eval").graph
    assert {n.phase for n in g.nodes()} == {"forward"}
    assert list(g.outputs) == ["out"]
    assert not any(n.op == "placeholder" and n.attrs.get("role") == "grad" for n in g.nodes())
    keys = {n.key for n in g.nodes() if n.op == "placeholder"}
    assert keys == {"x", "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                    "1.running_var"}


def test_one_program_serves_several_batch_sizes():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).to("float64")
    program = lucid.compile(model, lucid.placeholder((None, 3), "float64", name="x"), mode="eval")
    w, b = model[0].weight.data, model[0].bias.data
    rm, rv = model[1].running_mean.data, model[1].running_var.data
    for n in (1, 2, 5, 9):
        x = np.random.default_rng(n).normal(size=(n, 3))
        expected = (x @ w.T + b - rm) / np.sqrt(rv + 1e-5)
        out = program(x)["out"]
        assert out.shape == (n, 2)
        np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert program.graph.symbols() == {"N": ("x", 0)}
