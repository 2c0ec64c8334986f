"""The pass pipeline: named Graph -> Graph passes, lint between them, provenance of statements."""
import dataclasses

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.codegen import Program
from lucid.ops import REGISTRY
from lucid.runtime import run as reference_run
from lucid.transforms import DEFAULT, Options, Pass, Pipeline


def lint(graph):
    graph.lint(REGISTRY)


def models():
    return {
        "linear_bn": (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU()),
                      (None, 3)),
        "bn3d": (lambda: nn.BatchNorm1d(2), (None, 2, 5)),
        "function": (lambda: (lambda v: lucid.tanh(v * 2.0).sum(1) + lucid.exp(v).mean(1)),
                     (None, 3)),
    }


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("model", sorted(models()))
def test_every_pass_leaves_a_lint_clean_graph_and_the_input_untouched(model, mode):
    make, shape = models()[model]
    traced, _ = lucid.trace_graph(make(), lucid.placeholder(shape, name="x"), mode=mode)
    before, before_nodes = str(traced), dict(traced.nx.nodes(data="node"))
    seen = []
    graph, report = DEFAULT.run(traced, Options(backward=mode == "train"),
                                lint=lambda g: (lint(g), seen.append(len(g))))
    assert [r.name for r in report] == ["autodiff", "cse", "dce"] and len(seen) == 3
    assert [r.nodes_after for r in report] == seen
    assert str(traced) == before and dict(traced.nx.nodes(data="node")) == before_nodes
    assert traced.meta == {}
    made = {graph.meta[n]["pass"] for n in graph.meta if "pass" in graph.meta[n]}
    assert made <= {"autodiff"} and (made == {"autodiff"}) == (mode == "train")


def test_compiling_does_not_change_the_graph_it_was_given():
    traced, _ = lucid.trace_graph(nn.BatchNorm1d(3), lucid.placeholder((None, 3), name="x"))
    graph, _ = DEFAULT.run(traced, Options(backward=True))
    text, meta = graph.summary(), {n: dict(m) for n, m in graph.meta.items()}
    program = Program(graph)
    assert graph.summary() == text and graph.meta == meta  # kernels live in the program's copy
    assert program.graph is not graph
    assert any("kernel" in m for m in program.graph.meta.values())


def test_cse_merges_equal_nodes_and_keeps_values():
    x = lucid.placeholder((None, 3), name="x")
    program = lucid.compile(lambda v: lucid.exp(v) * lucid.exp(v), x, mode="eval")
    assert [n.op for n in program.graph.nodes()].count("exp") == 1
    data = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(program(data)["out"], np.exp(data) ** 2, rtol=1e-6)
    unmerged = lucid.compile(lambda v: lucid.exp(v) * lucid.exp(v), x, mode="eval",
                             passes=DEFAULT.without("cse"))
    assert [n.op for n in unmerged.graph.nodes()].count("exp") == 2


def _fold_double_neg(graph, options):
    """neg(neg(v)) -> v: an example of a user's own pass."""
    for name in graph.topo():
        node = graph.node(name)
        if node.op == "neg" and graph.node(node.inputs[0]).op == "neg":
            graph.replace_uses(name, graph.node(node.inputs[0]).inputs[0])
    return graph


def test_a_user_pass_runs_in_order_and_is_reported():
    fold = Pass("fold_neg", _fold_double_neg, "neg(neg(v)) is v")
    pipeline = DEFAULT.with_pass(fold, after="autodiff")
    assert [p.name for p in pipeline.passes] == ["autodiff", "fold_neg", "cse", "dce"]
    assert "fold_neg  neg(neg(v)) is v" in str(pipeline)
    x = lucid.placeholder((None, 2), name="x")
    program = lucid.compile(lambda v: (-(-v)) * 3.0, x, mode="train", passes=pipeline)
    assert [r.name for r in program.passes] == ["autodiff", "fold_neg", "cse", "dce"]
    assert "fold_neg" in str(program.passes)
    assert "neg" not in {n.op for n in program.graph.nodes() if n.phase == "forward"}
    data = np.array([[1.0, -2.0]], np.float32)
    out = program(data, np.ones_like(data))
    np.testing.assert_array_equal(out["out"], 3 * data)
    np.testing.assert_array_equal(out["grad:x"], np.full_like(data, 3))
    ref = reference_run(program.graph, program.feeds((data, np.ones_like(data)), {}))
    np.testing.assert_array_equal(ref["grad:x"], out["grad:x"])


def test_pipelines_refuse_duplicate_or_unknown_names():
    with pytest.raises(ValueError, match="already has a pass named 'cse'"):
        DEFAULT.with_pass(Pass("cse", _fold_double_neg))
    with pytest.raises(ValueError, match="no pass named 'nope'"):
        DEFAULT.with_pass(Pass("x", _fold_double_neg), after="nope")
    assert Pipeline().run(lucid.trace_graph(lambda v: v * 2.0,
                                            lucid.placeholder((2,), name="v"))[0])[1] == []


def test_provenance_names_the_statement_and_the_pass_of_every_node():
    x = lucid.placeholder((None, 3), name="x")
    program = lucid.compile(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), x)
    table = program.provenance().splitlines()
    assert table[0].split() == ["statement", "half", "nodes", "(pass)"]
    named = {}
    for row in table[1:]:
        statement, half, rest = row.split(None, 2)
        if rest.startswith("returns "):  # an output that is another statement's value
            assert rest.split()[1] in program.source
            continue
        assert statement in program.source, statement
        for part in rest.replace("part of: ", "").split(", "):
            if part.startswith("returns"):
                continue
            node, made = part.split(" ")
            assert node in program.graph
            want = program.graph.meta.get(node, {}).get("pass", "trace")
            assert made == f"({want})"
            if "part of" not in rest:
                named.setdefault(node, statement)
    for node in program.graph.nodes():  # backward nodes are autodiff's and run in the backward
        if node.name in named and node.phase == "backward":
            assert program.graph.meta[node.name]["pass"] == "autodiff"
    assert program.plan.provenance.item  # and every named node has exactly one statement
    for node, statement in named.items():
        assert str(program.plan.provenance.item[node]) == statement


def test_options_and_records_are_plain_values():
    assert dataclasses.asdict(Options(backward=True, wrt=("x",))) == {"backward": True,
                                                                       "wrt": ("x",)}
    x = lucid.placeholder((None, 2), name="x")
    report = lucid.compile(lambda v: v * v, x).passes
    assert all(r.seconds >= 0 and r.nodes_after <= r.nodes_before + 100 for r in report)
    assert len(str(report).splitlines()) == 3
