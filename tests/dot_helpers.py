"""Running the real Graphviz ``dot`` in tests and reading what it drew."""
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


def require_dot():
    """The path of ``dot``; skip without it, except on CI (``CI`` set), which installs it."""
    exe = shutil.which("dot")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz 'dot' is not installed, but CI must run the DOT tests")
        pytest.skip("Graphviz 'dot' is not installed")
    return exe


def run_dot(text, fmt):
    """Feed DOT text to ``dot -T<fmt>``; fail the test unless dot exits 0 without warnings."""
    result = subprocess.run([require_dot(), f"-T{fmt}"], input=text.encode("utf-8"),
                            capture_output=True, check=False, timeout=60)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr
    assert "Warning:" not in stderr and "Error:" not in stderr, stderr
    return result.stdout


def layout(text):
    """The graph as dot read it (``-Tjson``): name, clusters with their nodes, edges."""
    return json.loads(run_dot(text, "json"))


def svg_nodes(svg):
    """Node name -> {"lines": rendered label lines, "tooltip": str, "fill": colour}."""
    root = ET.fromstring(svg)
    nodes = {}
    for g in root.iter(SVG + "g"):
        if g.get("class") != "node":
            continue
        name = g.find(SVG + "title").text
        link = next((a for a in g.iter(SVG + "a") if a.get(XLINK + "title")), None)
        shape = next(e for e in g.iter() if e.tag in (SVG + "path", SVG + "polygon",
                                                      SVG + "ellipse"))
        nodes[name] = {
            "lines": [(t.text or "").replace("\xa0", " ") for t in g.iter(SVG + "text")],
            "tooltip": (link.get(XLINK + "title") if link is not None else "").replace("\xa0", " "),
            "fill": shape.get("fill"),
        }
    return nodes


def svg_groups(svg, cls):
    """The ``<title>`` of every ``<g class=cls>`` (node, edge, cluster) in an SVG."""
    root = ET.fromstring(svg)
    return [g.find(SVG + "title").text for g in root.iter(SVG + "g") if g.get("class") == cls]
