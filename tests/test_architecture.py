"""The shape of the package: layers that import only downwards, and one record per op.

The layers, bottom to top (docs/architecture.md): the IR (``graph``), what ops
mean (``ops``), then three siblings that know nothing of each other (the
front end that traces, the reference ``runtime``, the graph ``transforms``),
``codegen``, the ``compiler`` that ties them together, the ``Tensor`` face
(``eager``), ``lucid.<op>`` functions, ``nn`` and the command line.
"""
import ast
import pathlib

import networkx as nx
import numpy as np
import pytest
import sympy as sp

import lucid
import lucid.nn as nn
from lucid import Tensor
from lucid.ops import REGISTRY, define_elementwise, define_many
from lucid.runtime import run as reference_run

ROOT = pathlib.Path(lucid.__file__).parent
LAYERS = {"graph": 0, "ops": 1, "frontend": 2, "runtime": 2, "transforms": 2, "codegen": 3,
          "compiler": 4, "eager": 5, "functions": 6, "data": 6, "nn": 7, "optim": 8,
          "cli": 9, "__init__": 10}
#: Imports inside a function, each with the reason it is not a dodged cycle.
LAZY_IMPORTS = {("cli", "lucid"): "`lucid --help` answers without importing sympy"}


def modules(root=ROOT):
    """``{dotted module name: path}`` of every module in the package at ``root``."""
    out = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name, path):
    """``[(imported lucid module, inside a function?)]`` of one module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found += [(t, id(node) in nested) for t in targets if t.split(".")[0] == "lucid"]
    return found


def resolve(target, known):
    """The module a dotted import names (``lucid.ops.REGISTRY`` -> ``lucid.ops``)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target


def top(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def problems(root=ROOT):
    """Upward or sideways imports between layers, lazy imports, and import cycles."""
    known = modules(root)
    graph, found = nx.DiGraph(), []
    for name, path in known.items():
        graph.add_node(name)
        for target, lazy in imports(name, path):
            dep = resolve(target, known)
            if not dep or dep == name:
                continue
            if lazy:
                if (top(name), dep) not in LAZY_IMPORTS:
                    found.append(f"{name} imports {dep} inside a function")
                continue
            graph.add_edge(name, dep)
            mine, theirs = LAYERS[top(name)], LAYERS[top(dep)]
            if top(dep) != top(name) and theirs >= mine:
                found.append(f"{name} (layer {mine}) imports {dep} (layer {theirs})")
    found += [f"import cycle: {' -> '.join(c)}" for c in nx.simple_cycles(graph)]
    return found


def test_every_module_belongs_to_a_layer():
    for name in modules():
        assert top(name) in LAYERS, f"{name}: add its package to LAYERS and docs/architecture.md"


def test_imports_go_downwards_and_form_no_cycle():
    assert problems() == []


def test_the_graph_layer_knows_nothing_of_numpy_sympy_or_ops():
    for name, path in modules().items():
        if top(name) == "graph":
            deps = {resolve(t, modules()) for t, _ in imports(name, path)}
            assert {top(d) for d in deps} <= {"graph"}, name
            text = path.read_text()
            assert "import numpy" not in text and "import sympy" not in text, name


def test_the_checker_catches_upward_sideways_lazy_and_cyclic_imports(tmp_path):
    pkg = tmp_path / "lucid"
    files = {
        "__init__.py": "",
        "graph/__init__.py": "",
        "graph/a.py": "from . import b\n",
        "graph/b.py": "from . import a\n",  # a cycle inside one layer
        "ops/__init__.py": "",
        "ops/op.py": "from ..codegen import printer\n",  # upward
        "runtime/__init__.py": "",
        "runtime/run.py": "def f():\n    from ..frontend import var\n",  # lazy and sideways
        "frontend/__init__.py": "",
        "frontend/var.py": "",
        "codegen/__init__.py": "",
        "codegen/printer.py": "from ..ops import op\n",  # downward: fine
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    found = problems(pkg)
    assert "lucid.ops.op (layer 1) imports lucid.codegen.printer (layer 3)" in found
    assert "lucid.runtime.run imports lucid.frontend.var inside a function" in found
    assert any(f.startswith("import cycle") and "lucid.graph.a" in f for f in found)
    assert not any("codegen.printer (layer 3) imports" in f for f in found)


# -- one op, one place: define_elementwise is all a new op needs -----------------------------
@pytest.fixture(scope="module")
def softsign():
    if "softsign" not in REGISTRY:
        define_elementwise("softsign", "a / (1 + abs(a))")
    return REGISTRY["softsign"]


def test_a_new_elementwise_op_has_a_derived_rule(softsign):
    a = sp.Symbol("a", real=True)
    assert softsign.arity == 1
    assert sp.simplify(softsign.partials[0] - sp.diff(a / (1 + sp.Abs(a)), a)) == 0


def test_a_new_elementwise_op_works_everywhere_with_no_other_edit(softsign):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, (5, 4)).astype(np.float64)
    want = x / (1 + np.abs(x))
    dwant = 1 / (1 + np.abs(x)) ** 2
    # traced function, compiled, against the reference executor and the maths
    ph = lucid.placeholder((None, 4), dtype="float64", name="x")
    program = lucid.compile(lambda v: lucid.softsign(v), ph, mode="train")
    out = program(x, np.ones_like(x))
    np.testing.assert_allclose(out["out"], want, rtol=1e-12)
    np.testing.assert_allclose(out["grad:x"], dwant, rtol=1e-12)
    ref = reference_run(program.graph, program.feeds((x, np.ones_like(x)), {}))
    np.testing.assert_allclose(ref["grad:x"], dwant, rtol=1e-12)
    assert "softsign" in program.source or "np.absolute" in program.source
    # a Var method, a Tensor method, and lucid.<name> on Tensors, with gradients
    t = Tensor(x, requires_grad=True)
    y = t.softsign()
    np.testing.assert_allclose(y.data, want, rtol=1e-12)
    y.backward(np.ones_like(x))
    np.testing.assert_allclose(t.grad, dwant, rtol=1e-12)
    np.testing.assert_allclose(lucid.softsign(Tensor(x)).data, want, rtol=1e-12)
    # inside a module
    lin = nn.Linear(4, 4, dtype="float64")
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin
        def forward(self, v):
            return self.lin(v).softsign()
    got = Net()(Tensor(x)).data
    np.testing.assert_allclose(got, (lambda h: h / (1 + np.abs(h)))(
        x @ lin.weight.data.T + lin.bias.data), rtol=1e-12)


def test_central_differences_agree_with_the_new_rule(softsign):
    x = np.array([-2.0, -0.4, 0.3, 1.7])
    eps = 1e-6
    numeric = (softsign.evaluate(x + eps) - softsign.evaluate(x - eps)) / (2 * eps)
    symbolic = sp.lambdify(sp.Symbol("a", real=True), softsign.partials[0], "numpy")(x)
    np.testing.assert_allclose(numeric, symbolic, rtol=1e-6)


@pytest.mark.parametrize("name, expr, message", [
    ("tan_only", "sin(a) / cos(a) + atan(a)", "unknown name"),
    ("bad name", "a", "lowercase identifier"),
    ("exp", "a", "already registered"),
    ("noarg", "1 + 2", "must use a"),
    ("code", "__import__('os').system('true')", "cannot read"),
    ("attr", "a.conjugate()", "cannot read"),
])
def test_bad_definitions_are_refused_and_leave_no_trace(name, expr, message):
    before = dict(REGISTRY)
    with pytest.raises(ValueError, match=message):
        define_elementwise(name, expr)
    assert REGISTRY == before


def test_a_derivative_no_primitive_builds_is_refused_at_registration():
    before = dict(REGISTRY)
    with pytest.raises(ValueError, match=r"atan.*NumPy lowering does not cover"):
        define_elementwise("arctan", sp.atan(sp.Symbol("a", real=True)))
    with pytest.raises(ValueError, match=r"erfc"):  # erf is a primitive; erfc is not
        define_elementwise("gauss_err", sp.erfc(sp.Symbol("a", real=True)))
    assert REGISTRY == before


def test_registering_several_ops_is_all_or_nothing():
    before = dict(REGISTRY)
    with pytest.raises(ValueError, match="unknown name"):
        define_many({"twice_a": "2*a", "broken": "a + atan(a)"})
    assert REGISTRY == before


def test_every_layer_reads_the_record_for_the_tensor_face():
    for op in REGISTRY.values():
        if op.method:
            assert hasattr(Tensor([1.0]), op.name), op.name
            assert callable(getattr(lucid, op.name)), op.name


# -- review findings on the op records, each with its reproduction ---------------------------
def _define(name, expr, **options):
    if name not in REGISTRY:
        define_elementwise(name, expr, **options)
    return REGISTRY[name]


def test_a_new_binary_op_is_a_tensor_method_with_gradients():
    _define("larger", "Max(a, b)")
    x, y = Tensor([1.0, -2.0], requires_grad=True), Tensor([0.0, 3.0], requires_grad=True)
    z = x.larger(y)
    np.testing.assert_array_equal(z.data, [1.0, 3.0])
    z.backward(np.ones(2, np.float32))
    np.testing.assert_array_equal(x.grad, [1.0, 0.0])
    np.testing.assert_array_equal(y.grad, [0.0, 1.0])
    np.testing.assert_array_equal(lucid.larger(x, 0.5).data, [1.0, 0.5])


@pytest.mark.parametrize("name, text, point, slope", [
    ("relu_sq", "Max(a, 0)**2", 1.5, 3.0),          # a derivative that is relu again
    ("clip1", "Min(Max(a, -1), 1)", 0.5, 1.0),
    ("root_exact", "a**0.5", 4.0, 0.25),              # exponents stay exact rationals
    ("pow_frac", "a**2.5", 4.0, 2.5 * 8.0),
    ("inv_sqrt", "a**-0.5", 4.0, -0.5 / 8.0),
])
def test_derivatives_with_max_min_and_fractional_exponents_are_built(name, text, point, slope):
    op = _define(name, text)
    ph = lucid.placeholder((None, 1), dtype="float64", name="x")
    program = lucid.compile(lambda v: getattr(lucid, name)(v), ph, mode="train")
    x = np.array([[point]])
    out = program(x, np.ones_like(x))
    assert out["out"][0, 0] == pytest.approx(float(op.evaluate(x)[0, 0]), rel=1e-12)
    assert out["grad:x"][0, 0] == pytest.approx(slope, rel=1e-12)


def test_heaviside_at_zero_agrees_between_codegen_and_the_executor():
    _define("half_step", "Heaviside(a)")
    _define("step_at", "Heaviside(a, 0.3)")
    ph = lucid.placeholder((3,), dtype="float64", name="x")
    x = np.array([-1.0, 0.0, 2.0])
    for name, at0 in (("half_step", 0.5), ("step_at", 0.3)):
        program = lucid.compile(lambda v: getattr(lucid, name)(v), ph, mode="eval")
        ref = reference_run(program.graph, {program.graph.inputs[0]: x})["out"]
        np.testing.assert_array_equal(program(x)["out"], [0.0, at0, 1.0])
        np.testing.assert_array_equal(ref, [0.0, at0, 1.0])


def test_integer_true_is_refused_for_a_non_integer_expression():
    with pytest.raises(ValueError, match="not an integer for integer inputs"):
        define_elementwise("half_int", "a / 2", integer=True)
    op = _define("twice_int", "2*a + b", integer=True)
    ph = lucid.placeholder((3,), dtype="int64", name="x")
    program = lucid.compile(lambda v: lucid.twice_int(v, v), ph, mode="eval")
    got = program(np.array([1, 2, 3]))["out"]
    assert got.dtype == np.int64 and got.tolist() == [3, 6, 9] and op.integer


@pytest.mark.parametrize("text, message", [
    ("9**9**9", "exponent"), ("a**9**9**9", "exponent"), ("a//b", "unexpected"),
    ("max()", "unexpected"), ("exp", "expected"), ("a ? 1", "cannot read"),
    ("+".join(["a"] * 2000), "at most"), ("(" * 100 + "a" + ")" * 100, "deeper"),
    ("a/0", "division by zero"), ("2**a", "power of an argument"),
])
def test_string_definitions_fail_fast_with_a_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        define_elementwise("never_made", text)
    assert "never_made" not in REGISTRY


@pytest.mark.parametrize("name", ["data", "grad", "shape", "dtype", "backward", "item", "numpy",
                                  "mean", "compile", "nn", "inputs", "op", "reshape"])
def test_op_names_that_shadow_an_attribute_are_refused(name):
    with pytest.raises(ValueError, match="taken|already registered"):
        define_elementwise(name, "2*a")


def test_scalars_are_inputs_for_op_functions_too(compiles):
    t = Tensor([np.inf, 1.0])
    for k in range(1, 20):
        np.testing.assert_array_equal(lucid.mul(t, float(k) + 0.5).data, t.data * (k + 0.5))
    assert compiles[0] == 1
    with np.errstate(invalid="ignore"):  # inf * 0 is nan, as IEEE says (not folded to 0)
        np.testing.assert_array_equal(lucid.mul(t, 0.0).data, [np.nan, 0.0])


def test_node_attributes_cannot_be_changed_through_a_copy():
    traced, _ = lucid.trace_graph(lambda v: v * 2.0, lucid.placeholder((2,), name="v"))
    const = next(n for n in traced.nodes() if n.op == "constant")
    with pytest.raises(TypeError, match="read-only"):
        traced.copy().node(const.name).attrs["value"] = 99
    assert traced.node(const.name).attrs["value"] == 2.0
