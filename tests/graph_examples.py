"""Small hand-built graphs shared by the listing, DOT and CLI tests."""
from lucid.graph import Graph


def small_graph():
    """A forward mean, a backward gradient and a running-mean update, by hand.

    Covers attributes (tuples, bools, symbolic sizes, dtypes, constants), every
    placeholder role, a label that differs from its node name, a fused kernel
    and outputs of every phase.
    """
    g = Graph()
    x = g.add("placeholder", [], ("N", 3), "float32", role="input", key="x",
              name="x", label="x")
    w = g.add("placeholder", [], (3,), "float32", role="param", key="lin.weight",
              name="lin_weight", scope="lin", label="lin.weight")
    rm = g.add("placeholder", [], (1, 3), "float32", role="buffer", key="bn.running_mean",
               name="bn_running_mean", phase="update", scope="bn", label="bn.running_mean")
    y = g.add("mul", [x, w], ("N", 3), "float32", name="y", scope="lin",
              rule=(("x", "lin_weight"), ("lin_weight", "x")))
    s = g.add("sum", [y], (1, 3), "float32", {"axes": (0,), "keepdims": True}, name="s",
              scope="bn", rule=(("y", "broadcast_to(g, x.shape)"),))
    n = g.add("numel", [y], (), "float32", {"axes": (0,)}, name="count", scope="bn")
    mean = g.add("div", [s, n], (1, 3), "float32", name="mean", scope="bn", label="mean",
                 rule=(("s", "1/count"), ("count", "-s/count**2")))
    flat = g.add("reshape", [y], ("N", 3, 1), "float32", {"shape": ("N", 3, 1)}, name="flat",
                 scope="bn", label="flat view\nof y")
    g.add("cast", [flat], ("N", 3, 1), "float64", {"dtype": "float64"}, name="wide", scope="bn")
    seed = g.add("placeholder", [], ("N", 3), "float32", role="grad", key="grad:out",
                 name="grad_out", label="grad:out")
    gw = g.add("mul", [seed, x], ("N", 3), "float32", name="gw", phase="backward", scope="lin")
    gws = g.add("sum", [gw], (3,), "float32", {"axes": (0,), "keepdims": False}, name="gws",
                phase="backward", scope="lin")
    c = g.add("constant", [], (), "float32", {"value": 0.9}, name="c", phase="update", scope="bn")
    new = g.add("mul", [c, rm], (1, 3), "float32", name="new", phase="update", scope="bn")
    g.meta[s] = {"kernel": "k0"}
    g.meta[n] = {"kernel": "k0"}
    g.meta[mean] = {"kernel": "k0"}
    g.set_output("out", mean)
    g.set_output("grad:lin.weight", gws, "grad", of="lin.weight")
    g.set_output("bn.running_mean", new, "update", of="bn.running_mean")
    g.lint()
    return g
