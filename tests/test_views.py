"""Pictures of a real model: the module-level and op-level views of a train graph as
Graphviz draws them, rendering that fails cleanly, and the JSON export."""
import json
import os
import stat
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dot_helpers import layout, require_dot, run_dot, svg_groups  # noqa: E402
from graph_examples import small_graph  # noqa: E402

import lucid  # noqa: E402
import lucid.nn as nn  # noqa: E402
from lucid import cli  # noqa: E402
from lucid.graph import Graph, Output  # noqa: E402
from lucid.graph import dot as dotmod  # noqa: E402
from lucid.graph import modules as modview  # noqa: E402


def mlp():
    """The README's 3-block MLP: 64-128-BN-ReLU-64-BN-ReLU-10."""
    return nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(),
                         nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))


def mlp_graph(mode="train"):
    return lucid.compile(mlp(), lucid.placeholder((None, 64), name="x"), mode=mode).graph


def drawn(text):
    """(dot's -Tjson layout, node name -> {"label", "pos": (x, y)}) of DOT text."""
    graph = layout(text)
    objects = graph["objects"][graph.get("_subgraph_cnt", 0):]
    nodes = {o["name"]: {"label": o["label"], "pos": tuple(map(float, o["pos"].split(",")))}
             for o in objects}
    return graph, nodes


def boxes(graph):
    """Cluster label -> bounding box (x0, y0, x1, y1), as dot laid it out."""
    return {o["label"]: tuple(map(float, o["bb"].split(",")))
            for o in graph["objects"][:graph.get("_subgraph_cnt", 0)] if "label" in o}


# -- module level -------------------------------------------------------------
MODULES = ["0: Linear(64, 128)", "1: BatchNorm1d(128)", "2: ReLU()", "3: Linear(128, 64)",
           "4: BatchNorm1d(64)", "5: ReLU()", "6: Linear(64, 10)"]


@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_module_level_train_graph_has_one_node_per_module_call_and_phase(rankdir):
    g = mlp_graph()
    _, nodes = drawn(g.to_dot(detail="module", rankdir=rankdir))
    labels = [n["label"].replace("\\n", "\n").split("\n") for n in nodes.values()]
    titles = sorted(lines[0] for lines in labels)
    expected = sorted(["x", "grad:out", "out", "grad:x", *MODULES,
                       *(f"\u2202 {m}  (backward)" for m in MODULES),
                       f"{MODULES[1]}  (update)", f"{MODULES[4]}  (update)"])
    assert titles == expected and len(nodes) == 20
    by_title = {lines[0]: lines for lines in labels}
    assert by_title[MODULES[1]][:2] == [MODULES[1], "f32[N,128]"]
    assert "\u2192 grad:1.weight" in by_title[f"\u2202 {MODULES[1]}  (backward)"]
    assert "\u2192 1.running_var" in by_title[f"{MODULES[1]}  (update)"]


def test_module_level_forward_flows_down_and_backward_flows_back_up():
    g = mlp_graph()
    _, nodes = drawn(g.to_dot(detail="module"))
    y = {n["label"].split("\\n")[0]: n["pos"][1] for n in nodes.values()}  # y grows upward
    forward = [y[m] for m in MODULES]
    backward = [y[f"\u2202 {m}  (backward)"] for m in MODULES]
    assert forward == sorted(forward, reverse=True)  # module 0 at the top
    assert backward == sorted(backward, reverse=True)  # its backward beside it, ending on top
    assert y["grad:x"] > y["grad:out"] and y["x"] > y["out"]
    x = {n["label"].split("\\n")[0]: n["pos"][0] for n in nodes.values()}
    assert all(x[f"\u2202 {m}  (backward)"] > x[m] for m in MODULES)  # a column apart


def test_module_level_eval_graph_and_nested_modules():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn = nn.Linear(4, 4), nn.BatchNorm1d(4)

        def forward(self, v):
            return self.bn(self.fc(v)).relu()  # the relu is the block's own op

    net = nn.Sequential(Block(), Block())
    g = lucid.compile(net, lucid.placeholder((None, 4), name="x"), mode="eval").graph
    text = g.to_dot(detail="module")
    graph, nodes = drawn(text)
    titles = sorted(n["label"].split("\\n")[0] for n in nodes.values())
    assert titles == sorted(["x", "out", "0: Block()", "0.fc: Linear(4, 4)",
                             "0.bn: BatchNorm1d(4)", "1: Block()", "1.fc: Linear(4, 4)",
                             "1.bn: BatchNorm1d(4)"])
    assert set(boxes(graph)) == {"0: Block()", "1: Block()"}
    assert svg_groups(run_dot(text, "svg"), "node")  # draws without a warning


# -- op level -----------------------------------------------------------------
@pytest.mark.parametrize("rankdir", ["TB", "LR"])
@pytest.mark.parametrize("group_by_module", [False, True])
def test_op_level_train_graph_draws_every_node_in_its_column(rankdir, group_by_module):
    g = mlp_graph()
    graph, nodes = drawn(g.to_dot(rankdir=rankdir, group_by_module=group_by_module))
    assert sorted(nodes) == sorted(g.nx.nodes)
    found = boxes(graph)
    drawn_columns = {dotmod.column(g.node(n)) for n in g.nx.nodes}
    columns = {c: found[t] for c, t in dotmod.COLUMN_TITLE.items() if c in drawn_columns}
    assert set(columns) == {"forward", "backward", "update"}
    axis = 0 if rankdir == "TB" else 1  # the columns stand side by side across the flow
    spans = sorted((b[axis], b[axis + 2]) for b in columns.values())
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # no overlap
    for name, node in nodes.items():
        box = columns[dotmod.column(g.node(name))]
        assert box[0] <= node["pos"][0] <= box[2] and box[1] <= node["pos"][1] <= box[3], name
    if group_by_module:
        assert set(MODULES) <= set(found)
        assert {f"\u2202 {m}" for m in MODULES} <= set(found)
        assert {f"{MODULES[1]} update", f"{MODULES[4]} update"} <= set(found)


def test_op_level_module_boxes_keep_their_nodes():
    g = mlp_graph()
    graph, nodes = drawn(g.to_dot(group_by_module=True))
    found = boxes(graph)
    for name, node in nodes.items():
        d = g.node(name)
        if not d.scope:
            continue
        title = dotmod.module_title(g, d.scope)
        title = {"backward": f"\u2202 {title}", "update": f"{title} update"}.get(
            dotmod.column(d), title)
        x0, y0, x1, y1 = found[title]
        assert x0 <= node["pos"][0] <= x1 and y0 <= node["pos"][1] <= y1, (name, title)


def test_backward_edges_point_up_and_residuals_are_light():
    g = mlp_graph()
    text = g.to_dot()
    _, nodes = drawn(text)
    for a, b in g.nx.edges:
        ca, cb = dotmod.column(g.node(a)), dotmod.column(g.node(b))
        if ca == cb == "backward":
            assert f'"{b}" -> "{a}" [label=' in text and nodes[b]["pos"][1] > nodes[a]["pos"][1]
        elif dotmod.residual(ca, cb):
            assert f'"{a}" -> "{b}" [tooltip=' in text
            assert 'constraint="false"' in text.split(f'"{a}" -> "{b}"')[1].split("\n")[0]


def test_kernel_spanning_modules_is_drawn_in_the_module_of_its_output():
    g = mlp_graph()
    home, parent = dotmod._clusters(g, group_by_module=True)
    kernels = {k for k in parent if k[0] == "kernel"}
    assert kernels
    for kernel in kernels:
        members = [n for n in g.topo() if g.meta.get(n, {}).get("kernel") == kernel[1]]
        out = g.node(members[-1])
        assert parent[kernel] == ("module", out.scope, dotmod.column(out))
        for m in members:
            d = g.node(m)
            inside = home[m] == kernel
            assert inside == ((d.scope, dotmod.column(d)) == (out.scope, dotmod.column(out)))
            if not inside:
                assert home[m] == ("module", d.scope, dotmod.column(d))


# -- rendering ----------------------------------------------------------------
@pytest.mark.parametrize("detail", ["op", "module"])
def test_render_train_graph_at_both_levels(tmp_path, detail):
    require_dot()
    g = mlp_graph()
    path = g.render(tmp_path / "mlp.svg", detail=detail, group_by_module=True)
    count = len(svg_groups(open(path, "rb").read(), "node"))
    assert count == (len(g) if detail == "op" else 20)
    assert os.listdir(tmp_path) == ["mlp.svg"]


def fake_dot(tmp_path, monkeypatch):
    """A 'dot' that writes half a picture and fails as 2.43 did, with 350 lines of stderr."""
    script = tmp_path / "dot"
    script.write_text("#!/bin/sh\nfor a in \"$@\"; do out=$a; done\necho '<svg' > \"$out\"\n"
                      "echo 'trouble in init_rank' >&2\n"
                      "i=0; while [ $i -lt 350 ]; do echo \"\tn$i 0/1 1/0\" >&2; i=$((i+1)); done\n"
                      "exit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(dotmod.shutil, "which", lambda _: str(script))


def test_a_failed_render_leaves_no_file_and_names_graphvizs_message(tmp_path, monkeypatch):
    fake_dot(tmp_path, monkeypatch)
    target = tmp_path / "out" / "g.svg"
    target.parent.mkdir()
    with pytest.raises(RuntimeError) as info:
        small_graph().render(target)
    message = str(info.value)
    assert "trouble in init_rank" in message and "more lines" in message
    assert len(message.splitlines()) < 10
    assert os.listdir(target.parent) == []


def test_a_failed_real_dot_run_leaves_no_file(tmp_path, monkeypatch):
    require_dot()
    monkeypatch.setattr(dotmod, "to_dot", lambda graph, **_: "digraph { a -> }\n")
    with pytest.raises(RuntimeError, match="syntax error"):
        small_graph().render(tmp_path / "g.png")
    assert os.listdir(tmp_path) == []


def test_cli_detail_module_and_json(capsys, tmp_path):
    factory = tmp_path / "model.py"
    factory.write_text("import lucid.nn as nn\n\n\ndef make():\n"
                       "    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))\n")
    assert cli.main(["inspect", f"{factory}:make", "--input", "x:N,3", "--format", "dot",
                     "--detail", "module"]) == 0
    out = capsys.readouterr().out
    x = lucid.placeholder(("N", 3), name="x")
    g = lucid.compile(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), x).graph
    assert out == g.to_dot(detail="module")
    assert cli.main(["inspect", f"{factory}:make", "--input", "x:N,3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(g.to_json())


def test_bad_detail_is_refused():
    with pytest.raises(ValueError, match="detail"):
        small_graph().to_dot(detail="everything")


# -- JSON ---------------------------------------------------------------------
def from_json(text):
    """Rebuild a Graph from ``to_json`` output, as another tool would read it."""
    data = json.loads(text)
    assert (data["schema"], data["version"]) == ("lucid.graph", 1)
    g = Graph(modules=data["modules"])
    for d in data["nodes"]:
        attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in d["attrs"].items()}
        g.add(d["op"], d["inputs"], tuple(d["shape"]), d["dtype"], attrs, name=d["name"],
              phase=d["phase"], scope=d["module"], label=d["label"],
              rule=tuple((r["input"], r["expr"]) for r in d["rule"]), role=d["role"],
              key=d["key"])
        assert d["module_type"] == data["modules"].get(d["module"], "")
        g.meta[d["name"]] = {k: d[k] for k in ("kernel", "pass") if d[k]}
    g.inputs = data["inputs"]
    g.outputs = {o["key"]: Output(o["node"], o["kind"], o["of"]) for o in data["outputs"]}
    assert {(e["source"], e["target"]) for e in data["edges"]} == set(g.nx.edges)
    return g


@pytest.mark.parametrize("make", [small_graph, mlp_graph], ids=["small", "mlp"])
def test_to_json_round_trips_every_node_and_edge(make, tmp_path):
    g = make()
    text = g.to_json(tmp_path / "g.json")
    assert (tmp_path / "g.json").read_text(encoding="utf-8") == text
    back = from_json(text)
    assert set(back.nx.edges) == set(g.nx.edges)
    assert sorted(back.nx.nodes) == sorted(g.nx.nodes)
    for name in g.nx.nodes:
        a, b = g.node(name), back.node(name)
        assert (a.op, a.inputs, a.attrs, a.shape, a.dtype, a.phase, a.scope, a.label, a.role,
                a.key) == (b.op, b.inputs, b.attrs, b.shape, b.dtype, b.phase, b.scope,
                           b.label, b.role, b.key), name
        assert [(i, str(e)) for i, e in a.rule] == list(b.rule), name
        assert back.meta[name].get("kernel", "") == g.meta.get(name, {}).get("kernel", "")
    assert back.outputs == g.outputs and back.inputs == g.inputs
    assert back.modules == g.modules


def test_to_json_values_are_strict_json():
    g = Graph()
    x = g.add("placeholder", [], (2,), "float32", role="input", key="x", name="x")
    c = g.add("constant", [], (), "float32", {"value": float("inf")}, name="c")
    g.add("mul", [x, c], (2,), "float32", name="y")
    data = json.loads(g.to_json())
    assert data["nodes"][1]["attrs"] == {"value": "inf"}


def test_module_groups_cover_every_node():
    g = mlp_graph()
    found = modview.groups(g)
    assert sorted(n for members in found.values() for n in members) == sorted(g.nx.nodes)
