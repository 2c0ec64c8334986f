"""Compile cost: where each node is computed is recorded, not searched for, and the
symbolic work grows linearly with the model.

No wall-clock timing here: the tests read ``plan.provenance`` against the comments of the
generated source, and count sympy tree rewrites and searches for models of 2 and 4 blocks.
"""
import collections
import re

import networkx as nx
import pytest
import sympy as sp

import lucid
import lucid.nn as nn

COMMENT = re.compile(r"(\w+) = (\w+)\(([^)]*)\)")
HELPER = re.compile(r"_[sek]\d+$")  # scratch buffers, expanded operands, shared coefficients


def linear_bn():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    return lucid.compile(model, lucid.placeholder((None, 3), name="x"), mode="train")


def blocks(k, width=4):
    layers = []
    for _ in range(k):
        layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    return lucid.compile(nn.Sequential(*layers), lucid.placeholder((None, width), name="x"),
                         mode="train")


def live_nodes(program):
    """Nodes some output depends on (the outputs included)."""
    live = set()
    for n in program.plan.outputs:
        live |= nx.ancestors(program.graph.nx, n) | {n}
    return live


def commented_statements(source, fn="step"):
    """``[(node names in the comment, is it 'part of:', name the statement assigns)]``."""
    body = source.split(f"\ndef {fn}(")[1].split("\ndef ")[0].splitlines()[1:]
    found, comment = [], []
    for line in map(str.strip, body):
        if line.startswith("#"):
            comment.append(line[1:].strip())
            continue
        target = re.match(r"(\w+) = ", line)
        if comment and target and not HELPER.match(target.group(1)):
            text = " ".join(comment)
            nodes = [n for n, _, _ in COMMENT.findall(text)]
            found.append((nodes, text.startswith("part of:"), target.group(1)))
            comment = []
    return found


def test_every_live_node_belongs_to_exactly_one_item():
    program = linear_bn()
    plan, graph = program.plan, program.graph
    prov = plan.provenance
    live = live_nodes(program)
    assert set(prov.item) <= live  # dead nodes belong to none
    for n in live - set(prov.item):  # unassigned: inputs, constants and views of inputs
        value = plan.sym.value[n]
        assert graph.node(n).op in ("placeholder", "constant") or \
            plan.sym.atoms[value].kind == "input", n
    listed = collections.Counter(n for nodes in prov.nodes.values() for n in nodes)
    assert set(listed) == set(prov.item) and set(listed.values()) == {1}
    for n, sym in prov.item.items():
        assert n in prov.nodes[sym]
    by_symbol = {it.symbol: it for it in plan.items}
    assert set(prov.nodes) == set(by_symbol)
    for sym, nodes in prov.nodes.items():
        assert by_symbol[sym].nodes == nodes
        assert (sym in prov.part_of) == (not nodes and by_symbol[sym].kind != "output")


def test_the_comments_name_exactly_the_nodes_the_provenance_assigns():
    program = linear_bn()
    prov = program.plan.provenance
    symbol = {str(it.symbol): it.symbol for it in program.plan.items}
    named = {}
    statements = commented_statements(program.source)
    assert statements
    for nodes, part, name in statements:
        sym = symbol[name]
        if part:  # a shared factor: the nodes it is part of, and none of its own
            assert not prov.nodes[sym] and nodes == prov.part_of[sym][:3], name
        else:
            assert nodes == prov.nodes[sym], name
            named.update(dict.fromkeys(nodes, sym))
    assert named == prov.item  # each assigned node is named once, above its item's statement


def test_a_reduction_and_a_fused_gradient_own_their_nodes():
    program = lucid.compile(lambda x: (x * x).sum(), lucid.placeholder((None, 3), name="x"))
    plan, graph = program.plan, program.graph
    prov = plan.provenance
    total = next(n for n in graph.topo() if graph.node(n).op == "sum")
    square = graph.node(total).inputs[0]
    reduce = prov.item[total]
    assert plan.sym.atoms[reduce].kind == "reduce" and prov.item[square] == reduce
    gradient = next(n for n in plan.outputs if n != total)
    fused = {n for n in nx.ancestors(graph.nx, gradient) | {gradient}
             if graph.node(n).op not in ("placeholder", "constant")
             and not (plan.sym.value[n].is_Symbol and plan.sym.value[n] in plan.sym.atoms)}
    assert {n for n, s in prov.item.items() if s == plan.outputs[gradient]} == fused
    assert prov.nodes[plan.outputs[gradient]][0] == gradient  # the output's own node first


@pytest.fixture
def tree_walks(monkeypatch):
    """Count sympy's xreplace (expanding, rewriting) and has (searching) calls."""
    counts = collections.Counter()
    for name in ("xreplace", "has"):
        method = getattr(sp.Basic, name)

        def counted(self, *args, _method=method, _name=name, **kwargs):
            counts[_name] += 1
            return _method(self, *args, **kwargs)
        monkeypatch.setattr(sp.Basic, name, counted)
    return counts


def test_symbolic_work_grows_linearly_with_model_size(tree_walks):
    work = {}
    for k in (2, 4):
        sp.core.cache.clear_cache()  # the same work for each size, not what a cache remembers
        tree_walks.clear()
        blocks(k)
        work[k] = sum(tree_walks.values())
    # linear work plus a fixed part doubles at most; searching every item for every node
    # (what comments used to cost) more than tripled it
    assert work[4] <= 2.25 * work[2], work
