"""The ``lucid inspect`` command line, through main() and once as a real process."""
import os
import subprocess
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dot_helpers import require_dot, svg_groups  # noqa: E402

import lucid  # noqa: E402
import lucid.nn as nn  # noqa: E402
from lucid.cli import main, parse_shape  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL = textwrap.dedent("""\
    import lucid.nn as nn


    def make():
        return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


    net = make()


    def pair():
        def f(x, y):
            return {"mean": (x * y).mean(axis=0)}
        return f


    def broken():
        raise ValueError("no weights here")


    def not_a_model():
        return 42
    """)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    return str(path)


def expected(mode, dtype="float32", shape=(None, 3)):
    x = lucid.placeholder(shape, dtype, name="x")
    return lucid.compile(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), x, mode=mode)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_listing_is_the_compiled_graphs_listing(capsys, model, mode):
    status, out, err = run(capsys, "inspect", f"{model}:make", "--input", "x:N,3", "--mode", mode,
                           "--format", "listing")
    assert (status, err) == (0, "")
    assert out == str(expected(mode).graph) + "\n"
    assert out.startswith("inputs:\n  x:f32[N,3] ")
    assert ("backward:" in out) == (mode == "train")


def test_table_code_and_dot(capsys, model):
    program = expected("train")
    for fmt, text in (("table", program.graph.summary()), ("code", program.source),
                      ("dot", program.graph.to_dot())):
        status, out, err = run(capsys, "inspect", f"{model}:make", "--input", "x:None,3",
                               "--format", fmt)
        assert (status, err) == (0, "")
        assert out == text.rstrip("\n") + "\n", fmt


def test_dot_options(capsys, model):
    status, out, _ = run(capsys, "inspect", f"{model}:make", "--input", "x:N,3", "--format", "dot",
                         "--mode", "eval", "--rankdir", "LR", "--group-by-module")
    assert status == 0
    assert out == expected("eval").graph.to_dot(rankdir="LR", group_by_module=True)


def test_module_instance_dtype_and_named_sizes(capsys, model):
    status, out, _ = run(capsys, "inspect", f"{model}:net", "--input", "x:B,3",
                         "--dtype", "float64", "--mode", "eval")
    assert status == 0
    assert out == str(expected("eval", "float64", ("B", 3)).graph) + "\n"
    assert out.splitlines()[1].split() == ["x:f64[B,3]", "input", "x"]


def test_a_function_with_two_inputs(capsys, model):
    status, out, _ = run(capsys, "inspect", f"{model}:pair", "--input", "x:4,3", "--input", "y:4,3",
                         "--mode", "eval")
    assert status == 0
    lines = out.splitlines()
    assert lines[:3] == ["inputs:", "  x:f32[4,3]  input x", "  y:f32[4,3]  input y"]
    assert lines[-2:] == ["outputs:", lines[-1]] and lines[-1].startswith("  mean = ")


def test_output_file(capsys, model, tmp_path):
    target = tmp_path / "graph.txt"
    status, out, _ = run(capsys, "inspect", f"{model}:make", "--input", "x:N,3",
                         "--format", "table", "-o", str(target))
    assert (status, out) == (0, "")
    assert target.read_text(encoding="utf-8") == expected("train").graph.summary() + "\n"


def test_svg_is_rendered_to_the_output_file(capsys, model, tmp_path):
    require_dot()
    target = tmp_path / "graph.svg"
    status, out, err = run(capsys, "inspect", f"{model}:make", "--input", "x:N,3", "--mode", "eval",
                           "--format", "svg", "-o", str(target), "--group-by-module")
    assert (status, out, err) == (0, "", "")
    drawn = svg_groups(target.read_bytes(), "node")
    assert sorted(drawn) == sorted(expected("eval").graph.nx.nodes)


@pytest.mark.parametrize("argv, message", [
    (["inspect", "{model}:make", "--input", "x:N,3", "--format", "svg"], "give -o OUT.svg"),
    (["inspect", "{model}:make", "--input", "x:N,?"], "bad dim '?'"),
    (["inspect", "{model}:make", "--input", "x:\u00b2,4"], "bad dim '\u00b2'"),  # "²".isdigit()
    (["inspect", "{model}:make", "--input", "x"], "expected NAME:SHAPE"),
    (["inspect", "{model}:make", "--input", "1x:3"], "expected NAME:SHAPE"),
    (["inspect", "{model}:make", "--input", "x:3", "--input", "x:4"], "input names repeat"),
    (["inspect", "{model}", "--input", "x:3"], "expected FILE.py:FACTORY"),
    (["inspect", "{model}:nothing", "--input", "x:3"], "has no 'nothing'"),
    (["inspect", "missing.py:make", "--input", "x:3"], "no such file: missing.py"),
    (["inspect", "{model}:make", "--input", "x:N,3", "--mode", "test"], "invalid choice: 'test'"),
    (["inspect", "{model}:make"], "--input"),
    (["explode"], "invalid choice: 'explode'"),
])
def test_usage_errors_exit_2_with_one_line(capsys, model, argv, message):
    status, out, err = run(capsys, *(a.format(model=model) for a in argv))
    assert status == 2
    assert out == ""
    assert err.startswith("lucid: error: ") and err.endswith("\n") and err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize("factory, message", [
    ("broken", "broken() failed: ValueError: no weights here"),
    ("not_a_model", "not_a_model() returned int, not a module or function"),
])
def test_failures_in_user_code_exit_1_with_one_line(capsys, model, factory, message):
    status, out, err = run(capsys, "inspect", f"{model}:{factory}", "--input", "x:N,3")
    assert (status, out) == (1, "")
    assert err == f"lucid: error: {message}\n"


def test_a_compile_error_is_one_line(capsys, model):
    status, _, err = run(capsys, "inspect", f"{model}:make", "--input", "x:N,5")
    assert status == 1
    assert err.startswith("lucid: error: compiling failed: ") and err.count("\n") == 1


def test_parse_shape():
    assert parse_shape("N,64") == ("N", 64)
    assert parse_shape("None, 64") == (None, 64)
    assert parse_shape("(32,64,16)") == (32, 64, 16)
    assert parse_shape("") == ()


def test_as_a_process(model, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "lucid.cli", "inspect", f"{model}:make", "--input",
                           "x:N,3", "--format", "table"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == expected("train").graph.summary() + "\n"
    failed = subprocess.run([sys.executable, "-m", "lucid.cli", "inspect", "nope.py:make",
                             "--input", "x:3"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert failed.returncode == 2
    assert failed.stderr == "lucid: error: no such file: nope.py\n"
