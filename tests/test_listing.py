"""The typed listing (str(graph)) and the summary table, pinned as exact text."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from graph_examples import small_graph  # noqa: E402

import lucid  # noqa: E402
import lucid.nn as nn  # noqa: E402
from lucid.graph import Graph  # noqa: E402
from lucid.graph.printing import format_shape, format_value, show  # noqa: E402

SMALL_LISTING = """\
inputs:
  x:f32[N,3]                input  x
  lin_weight:f32[3]         param  lin.weight
  bn_running_mean:f32[1,3]  buffer bn.running_mean
  grad_out:f32[N,3]         grad   grad:out
forward:
  y:f32[N,3] = mul x lin_weight
  s:f32[1,3] = sum[axes=(0,), keepdims=True] y
  count:f32[] = numel[axes=(0,)] y
  mean:f32[1,3] = div s count
  flat:f32[N,3,1] = reshape[shape=(N, 3, 1)] y  # 'flat view\\nof y'
  wide:f64[N,3,1] = cast[dtype=float64] flat
backward:
  gw:f32[N,3] = mul grad_out x
  gws:f32[3] = sum[axes=(0,), keepdims=False] gw
update:
  c:f32[] = constant[value=0.9]
  new:f32[1,3] = mul c bn_running_mean
outputs:
  out = mean
  grad:lin.weight = gws
  bn.running_mean = new"""

SMALL_SUMMARY = """\
node             op           inputs              shape    dtype    kernel  phase
---------------  -----------  ------------------  -------  -------  ------  --------
x                placeholder  -                   [N,3]    float32  -       forward
lin_weight       placeholder  -                   [3]      float32  -       forward
bn_running_mean  placeholder  -                   [1,3]    float32  -       update
grad_out         placeholder  -                   [N,3]    float32  -       forward
y                mul          x, lin_weight       [N,3]    float32  -       forward
s                sum          y                   [1,3]    float32  k0      forward
count            numel        y                   []       float32  k0      forward
mean             div          s, count            [1,3]    float32  k0      forward
flat             reshape      y                   [N,3,1]  float32  -       forward
wide             cast         flat                [N,3,1]  float64  -       forward
gw               mul          grad_out, x         [N,3]    float32  -       backward
gws              sum          gw                  [3]      float32  -       backward
c                constant     -                   []       float32  -       update
new              mul          c, bn_running_mean  [1,3]    float32  -       update"""


def test_listing_of_small_graph_is_exact():
    assert str(small_graph()) == SMALL_LISTING


def test_summary_of_small_graph_is_exact():
    assert small_graph().summary() == SMALL_SUMMARY


def test_listing_keeps_every_line_single_whatever_the_user_strings():
    g = Graph()
    x = g.add("placeholder", [], (2,), "float32",
              role="input", key='a" ]; evil\n[label="x', name="x")
    g.add("exp", [x], (2,), "float32", name="y", label="two\nlines and 'quotes'")
    g.set_output("out\nkey", "y")
    assert str(g) == "\n".join([
        "inputs:",
        "  x:f32[2]  input 'a\" ]; evil\\n[label=\"x'",
        "forward:",
        "  y:f32[2] = exp x  # \"two\\nlines and 'quotes'\"",
        "outputs:",
        "  'out\\nkey' = y",
    ])


def test_empty_phases_have_no_header_and_scalar_types_print_empty_brackets():
    g = Graph()
    a = g.add("placeholder", [], (), "int64", role="buffer", key="bn.num_batches_tracked",
              name="a", phase="update")
    one = g.add("constant", [], (), "int64", {"value": 1}, name="one", phase="update")
    g.add("add", [a, one], (), "int64", name="b", phase="update")
    assert str(g) == ("inputs:\n  a:i64[]  buffer bn.num_batches_tracked\n"
                      "update:\n  one:i64[] = constant[value=1]\n  b:i64[] = add a one")


@pytest.mark.parametrize("value, text", [
    ((0,), "(0,)"), ((0, 1), "(0, 1)"), ((), "()"), (("N", 3), "(N, 3)"),
    (True, "True"), (1e-05, "1e-05"), ("float64", "float64"), ("a b", "'a b'"),
])
def test_attribute_values_print_compactly(value, text):
    assert format_value(value) == text


def test_shapes_and_user_strings():
    assert format_shape(("N", 3)) == "[N,3]"
    assert format_shape(()) == "[]"
    assert format_shape(("not a name", 2)) == "['not a name',2]"
    assert show("grad:0.weight") == "grad:0.weight"
    assert show("höhe") == "höhe"
    assert show("") == "''"
    assert show("a b") == "'a b'"


@pytest.fixture(scope="module")
def linear_bn():
    def build(mode):
        x = lucid.placeholder((None, 3), name="x")
        return lucid.compile(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), x, mode=mode).graph
    return build


def listed_names(text):
    """(name, section) for each node line of a listing, in order."""
    section, found = None, []
    for line in text.splitlines():
        if not line.startswith(" "):
            section = line[:-1]
        elif section != "outputs":
            found.append((line.split()[0].split(":")[0], section))
    return found


def test_listing_of_a_compiled_train_graph_lists_each_node_once_under_its_phase(linear_bn):
    g = linear_bn("train")
    text = str(g)
    lines = text.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == \
        ["inputs:", "forward:", "backward:", "update:", "outputs:"]
    found = listed_names(text)
    assert sorted(n for n, _ in found) == sorted(g.nx.nodes)
    for name, section in found:
        d = g.node(name)
        assert section == ("inputs" if d.op == "placeholder" else d.phase)
    assert lines[1].split() == ["x:f32[N,3]", "input", "x"]
    weight = next(n for n in g.inputs if g.node(n).key == "0.weight")
    assert [f"{weight}:f32[2,3]", "param", "0.weight"] in [line.split() for line in lines]
    assert lines[lines.index("outputs:") + 1:] == [f"  {k} = {o.node}" for k, o in g.outputs.items()]


def test_eval_graph_has_only_a_forward_part(linear_bn):
    text = str(linear_bn("eval"))
    assert [line for line in text.splitlines() if not line.startswith(" ")] == \
        ["inputs:", "forward:", "outputs:"]
    assert "buffer 1.running_mean" in text  # eval normalises with the running statistics


def test_summary_rows_follow_the_listing(linear_bn):
    g = linear_bn("train")
    rows = [r.split() for r in g.summary().splitlines()]
    assert rows[0] == ["node", "op", "inputs", "shape", "dtype", "kernel", "phase"]
    assert [r[0] for r in rows[2:]] == [n for n, _ in listed_names(str(g))]
    for r in rows[2:]:
        d = g.node(r[0])
        assert (r[1], r[-4], r[-3], r[-1]) == (d.op, "[" + ",".join(map(str, d.shape)) + "]",
                                              d.dtype, d.phase)
