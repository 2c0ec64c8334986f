"""DOT export, checked by what the real Graphviz reads and draws from it."""
import os
import sys
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dot_helpers import SVG, layout, require_dot, run_dot, svg_groups, svg_nodes  # noqa: E402
from graph_examples import small_graph  # noqa: E402

import lucid  # noqa: E402
import lucid.nn as nn  # noqa: E402
from lucid.graph import Graph  # noqa: E402
from lucid.graph import dot as dotmod  # noqa: E402

FILLS = {phase: fill for phase, (fill, _) in dotmod.PHASE_STYLE.items()}


def clusters(text):
    """Cluster label -> (its own node names, labels of the clusters directly inside it).

    Nesting comes from what dot parsed (``-Tjson``), labels from what it drew (SVG).
    """
    graph = layout(text)
    objects = graph["objects"]
    subgraphs = objects[:graph.get("_subgraph_cnt", 0)]
    root = ET.fromstring(run_dot(text, "svg"))
    drawn = {g.find(SVG + "title").text: "\n".join(t.text.replace("\xa0", " ")
                                                  for t in g.iter(SVG + "text"))
             for g in root.iter(SVG + "g") if g.get("class") == "cluster"}
    found = {}
    for obj in subgraphs:
        inner = [objects[i] for i in obj.get("subgraphs", [])]
        nested = {i for sub in inner for i in sub.get("nodes", [])}
        own = {objects[i]["name"] for i in obj.get("nodes", []) if i not in nested}
        found[drawn[obj["name"]]] = (own, {drawn[sub["name"]] for sub in inner})
    return found


def svg_edges(svg):
    """(tail, head) -> edge label, from an SVG drawn by dot."""
    edges = {}
    for g in ET.fromstring(svg).iter(SVG + "g"):
        if g.get("class") == "edge":
            tail, head = g.find(SVG + "title").text.split("->")
            edges[tail, head] = "".join(t.text for t in g.iter(SVG + "text"))
    return edges


# -- text ---------------------------------------------------------------------
def test_to_dot_returns_the_text_and_writes_it_to_path(tmp_path):
    g = small_graph()
    path = tmp_path / "g.dot"
    text = g.to_dot(path, rankdir="LR")
    assert path.read_text(encoding="utf-8") == text
    assert text.startswith("digraph lucid {\n") and text.endswith("}\n")
    assert 'rankdir="LR"' in text and 'rankdir="TB"' in g.to_dot()


def test_bad_rankdir_is_refused():
    with pytest.raises(ValueError, match="rankdir"):
        small_graph().to_dot(rankdir="sideways")


@pytest.mark.parametrize("text, quoted", [
    ("plain", '"plain"'),
    ('a" ]; evil [label="x', '"a\\" ]; evil [label=\\"x"'),
    ("back\\slash\\n", '"back\\\\slash\\\\n"'),
    ("two\nlines\r\nthree", '"two\\nlines\\nthree"'),
    ("&lt; & {a|<b>}", '"&amp;lt; &amp; {a|<b>}"'),
    ("nul\x00bell\x07", '"nul\\\\x00bell\\\\x07"'),
    ("höhe 日本 🦆", '"höhe 日本 🦆"'),
])
def test_quote(text, quoted):
    assert dotmod.quote(text) == quoted


# -- what Graphviz draws ------------------------------------------------------
def test_every_node_and_edge_is_drawn_with_its_type_on_the_edge():
    g = small_graph()
    svg = run_dot(g.to_dot(), "svg")
    assert sorted(svg_groups(svg, "node")) == sorted(g.nx.nodes)
    edges = svg_edges(svg)
    # the backward flows back up: its edges are written (and titled) head first, dir=back
    backward = {(a, b) for a, b in g.nx.edges
                if dotmod.column(g.node(a)) == dotmod.column(g.node(b)) == "backward"}
    assert backward == {("grad_out", "gw"), ("gw", "gws")}
    assert set(edges) == (set(g.nx.edges) - backward) | {(b, a) for a, b in backward}
    assert edges["x", "y"] == "f32[N,3]"
    assert edges["flat", "wide"] == "f32[N,3,1]"
    assert edges["s", "mean"] == "f32[1,3]"


def test_phases_are_told_apart_by_fill():
    g = small_graph()
    nodes = svg_nodes(run_dot(g.to_dot(), "svg"))
    assert len(set(FILLS.values())) == len(FILLS) == 4  # forward, backward, update, optimizer
    for name, drawn in nodes.items():
        assert drawn["fill"] == FILLS[g.node(name).phase], name
    assert {nodes[n]["fill"] for n in ("y", "gw", "new")} == \
        {FILLS[p] for p in ("forward", "backward", "update")}


def test_labels_show_op_name_key_and_outputs():
    nodes = svg_nodes(run_dot(small_graph().to_dot(), "svg"))
    assert nodes["s"]["lines"] == ["sum[axes=(0,), keepdims=True]", "s"]
    assert nodes["mean"]["lines"] == ["div", "mean", "\u2192 out"]
    assert nodes["flat"]["lines"] == ["reshape[shape=(N, 3, 1)]", "flat", "flat view", "of y"]
    assert nodes["lin_weight"]["lines"] == ["lin.weight", "param f32[3]"]
    assert nodes["c"]["lines"] == ["0.9"]


def test_tooltip_carries_the_gradient_rule():
    nodes = svg_nodes(run_dot(small_graph().to_dot(), "svg"))
    assert nodes["mean"]["tooltip"].splitlines() == [
        "mean = div(s, count)", "f32[1,3], forward, scope bn", "kernel k0",
        "gradient rule:", "  d/ds: 1/count", "  d/dcount: -s/count**2"]
    assert "d/dy: broadcast_to(g, x.shape)" in nodes["s"]["tooltip"]
    assert "gradient rule" not in nodes["x"]["tooltip"]


def test_fused_kernels_are_clusters_inside_columns_per_phase():
    # the forward, the backward (drawn flowing back up) and the updates are columns apart
    found = clusters(small_graph().to_dot())
    assert found == {
        "forward \u2193": ({"x", "lin_weight", "y", "flat", "wide"}, {"kernel k0"}),
        "kernel k0": ({"s", "count", "mean"}, set()),
        "backward \u2191": ({"grad_out", "gw", "gws"}, set()),
        "state update": ({"bn_running_mean", "c", "new"}, set()),
    }


def test_group_by_module_nests_scopes_and_puts_kernels_in_the_module_of_their_output():
    g = Graph()
    x = g.add("placeholder", [], (2,), "float32", role="input", key="x", name="x")
    a = g.add("exp", [x], (2,), "float32", name="a", scope="enc")
    b = g.add("exp", [a], (2,), "float32", name="b", scope="enc.layer.0")
    c = g.add("exp", [b], (2,), "float32", name="c", scope="enc.layer.1")
    g.add("exp", [c], (2,), "float32", name="d", scope="enc.layer.1")
    g.meta[b] = {"kernel": "fused_bc"}
    g.meta[c] = {"kernel": "fused_bc"}
    found = clusters(g.to_dot(group_by_module=True))
    # b stays in its own module's box; the kernel is drawn where its output c is
    assert found == {
        "module enc": ({"a"}, {"module enc.layer"}),
        "module enc.layer": (set(), {"module enc.layer.0", "module enc.layer.1"}),
        "module enc.layer.0": ({"b"}, set()),
        "module enc.layer.1": ({"d"}, {"kernel fused_bc"}),
        "kernel fused_bc": ({"c"}, set()),
    }
    assert set(clusters(g.to_dot())) == {"kernel fused_bc"}


def test_group_by_module_on_the_small_graph():
    found = clusters(small_graph().to_dot(group_by_module=True))
    # a module's backward and its updates are boxes of their own, in their columns
    assert found == {
        "forward \u2193": ({"x"}, {"module lin", "module bn"}),
        "module lin": ({"lin_weight", "y"}, set()),
        "module bn": ({"flat", "wide"}, {"kernel k0"}),
        "kernel k0": ({"s", "count", "mean"}, set()),
        "backward \u2191": ({"grad_out"}, {"\u2202 module lin"}),
        "\u2202 module lin": ({"gw", "gws"}, set()),
        "state update": (set(), {"module bn update"}),
        "module bn update": ({"bn_running_mean", "c", "new"}, set()),
    }


ADVERSARIAL = [
    'a" ]; evil [label="x',
    '"; } digraph evil { "',
    "{record|<port> field}",
    "<b>html</b>",
    "back\\slash \\N \\G \\l",
    "two\nlines",
    "&lt; &amp; &",
    "höhe — 日本語 🦆",
    "-- -> ;",
    "",
]


@pytest.mark.parametrize("name", ADVERSARIAL)
@pytest.mark.parametrize("group_by_module", [False, True])
def test_any_user_string_renders_literally(name, group_by_module):
    g = Graph()
    x = g.add("placeholder", [], ("N", 2), "float32", role="input", key=name, name="x",
              label=name)
    y = g.add("exp", [x], ("N", 2), "float32", name="y", scope=name, label=name,
              rule=(("x", name),))
    z = g.add("neg", [y], ("N", 2), "float32", name="graph", scope=name)
    g.add("neg", [z], ("N", 2), "float32", name="node", scope="")
    g.meta[y] = {"kernel": name or "k"}
    g.meta[z] = {"kernel": name or "k"}
    g.set_output(name, z)
    text = g.to_dot(group_by_module=group_by_module)
    svg = run_dot(text, "svg")
    nodes = svg_nodes(svg)
    assert sorted(nodes) == sorted(g.nx.nodes)
    lines = name.split("\n")
    if name:
        assert nodes["x"]["lines"] == [*lines, "input f32[N,2]"]
        assert nodes["y"]["lines"] == ["exp", "y", *lines]
    assert nodes["graph"]["lines"] == ["neg", "graph", "\u2192 " + lines[0], *lines[1:]]
    # tooltips show a backslash as a look-alike (see dot.TOOLTIP_BACKSLASH)
    assert nodes["y"]["tooltip"].endswith("d/dx: " + name.replace("\\", "\u29f5"))
    found = clusters(text)
    assert found["kernel " + (name or "k")][0] == {"y", "graph"}
    if group_by_module and name:
        assert found["module " + name] == (set(), {"kernel " + name})


def test_control_characters_show_as_escapes_and_svg_stays_valid():
    g = Graph()
    g.add("placeholder", [], (2,), "float32", role="input", key="nul\x00 bell\x07\tt\r\n",
          name="x")
    nodes = svg_nodes(run_dot(g.to_dot(), "svg"))
    assert nodes["x"]["lines"] == ["nul\\x00 bell\\x07 t", "input f32[2]"]  # no empty <text>


# -- rendering ----------------------------------------------------------------
@pytest.mark.parametrize("suffix, magic", [("svg", b"<?xml"), ("png", b"\x89PNG"),
                                           ("pdf", b"%PDF")])
def test_render_picks_the_format_from_the_extension(tmp_path, suffix, magic):
    require_dot()
    path = tmp_path / f"g.{suffix}"
    assert small_graph().render(path) == str(path)
    assert path.read_bytes().startswith(magic)


def test_render_format_overrides_the_extension(tmp_path):
    require_dot()
    path = tmp_path / "picture.out"
    small_graph().render(path, format="png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_render_refuses_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="svg"):
        small_graph().render(tmp_path / "g.bmp")


def test_render_without_graphviz_names_the_install_step(tmp_path, monkeypatch):
    monkeypatch.setattr(dotmod.shutil, "which", lambda _: None)
    with pytest.raises(FileNotFoundError) as info:
        small_graph().render(tmp_path / "g.svg")
    assert isinstance(info.value, dotmod.GraphvizNotFound)
    assert "apt-get install graphviz" in str(info.value)
    assert "brew install graphviz" in str(info.value)
    assert not (tmp_path / "g.svg").exists()


def test_a_failing_dot_run_reports_dots_stderr(tmp_path):
    require_dot()
    target = tmp_path / "missing" / "g.svg"
    with pytest.raises(RuntimeError, match="Could not open") as info:
        small_graph().render(target)
    assert str(target) in str(info.value)


def test_compiled_linear_batchnorm_graph_renders_in_both_modes():
    for mode, phases in (("train", {"forward", "backward", "update"}), ("eval", {"forward"})):
        x = lucid.placeholder((None, 3), name="x")
        g = lucid.compile(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), x, mode=mode).graph
        text = g.to_dot(group_by_module=True, rankdir="LR")
        nodes = svg_nodes(run_dot(text, "svg"))
        assert sorted(nodes) == sorted(g.nx.nodes)
        assert {d.phase for d in g.nodes()} == phases
        out = g.outputs["out"].node
        assert nodes[out]["lines"][-1] == "\u2192 out"
        assert {"0: Linear(3, 2)", "1: BatchNorm1d(2)"} <= set(clusters(text))


def test_missing_dot_skips_locally_and_fails_on_ci(monkeypatch):
    import dot_helpers
    monkeypatch.setattr(dot_helpers.shutil, "which", lambda _: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_dot()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI"):
        require_dot()
