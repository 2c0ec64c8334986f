"""Issue 5, item 4: safe code generation, thread safety, and returned arrays never reused.

User strings (placeholder names, module attribute names, parameter keys, output keys) reach
the generated source only as checked identifiers or inside ``#`` comments: sources built
from names made to inject code parse, contain no user text outside comments, import nothing
new, run nothing (a sentinel file is never created) and still compute the right values.
"""
import ast
import builtins
import io
import re
import tokenize
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.ops as ops
from lucid import Tensor
from lucid.runtime import run as reference_run

SAFE_STRING = re.compile(r"[\w.,\->]*\Z")
FORBIDDEN = set(dir(builtins)) - {"type", "None", "True", "False", "len", "tuple", "range"}


def evil_names(sentinel):
    path = str(sentinel)
    return [
        f"__import__('os').system('touch {path}')",
        f"x'); open({path!r}, 'w'); ('",
        f"a\nimport os\nos.system('touch {path}')\n#",
        f'q"\'\\\n\r{{}}; open("{path}", "w") #',
    ]


def code_tokens(source):
    """The source without its comments, token by token."""
    toks = tokenize.generate_tokens(io.StringIO(source).readline)
    return [t.string for t in toks if t.type not in (tokenize.COMMENT, tokenize.NL)]


def assert_safe(program, user_strings, benign_source):
    """The program's source is plain generated code: see the module docstring."""
    source = program.source
    tree = ast.parse(source)
    imports = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import,
                                                                        ast.ImportFrom))
               for alias in node.names}
    assert imports <= {"threading", "numpy"}, imports
    benign_strings = {n.value for n in ast.walk(ast.parse(benign_source))
                      if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert SAFE_STRING.match(node.value) or node.value in benign_strings, node.value
        if isinstance(node, ast.Name):
            assert node.id.isidentifier() and node.id not in FORBIDDEN, node.id
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__") or node.attr == "__dict__", node.attr
    nodes = set(program.graph.nx.nodes)
    for name in (program.graph.inputs + list(program.graph.output_nodes().values())):
        assert name in nodes and name.isidentifier()
    code = " ".join(code_tokens(source))
    for s in user_strings:
        for fragment in {s, s.strip(), *re.findall(r"\W{2,}\w*", s)}:
            if len(fragment) > 2 and not fragment.isidentifier():
                assert fragment not in code, (fragment, s)


def assert_agree(program, feeds, rtol=2e-5):
    got, want = program.run(feeds), reference_run(program.graph, feeds)
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=rtol, err_msg=key)
    return got


class Named(nn.Module):
    """Linear -> BatchNorm1d, the children and one extra parameter under the given names."""

    def __init__(self, child_a, child_b, param):
        super().__init__()
        setattr(self, child_a, nn.Linear(3, 3))  # through Module.__setattr__
        self._modules[child_b] = nn.BatchNorm1d(3)  # straight into the table
        self.register_parameter(param, nn.Parameter(np.full(3, 0.5, np.float32)))
        self.names = (child_a, child_b, param)

    def forward(self, x):
        a, b, p = self.names
        return self._modules[b](self._modules[a](x)) * self._parameters[p]


def compile_named(names, ph_name):
    m = Named(*names)
    m._modules[names[0]].weight.data = (np.eye(3) * [1, 2, 3]).astype(np.float32)
    x = lucid.placeholder((None, 3), name=ph_name)
    return m, lucid.compile(m, x, mode="train")


def feeds_for(program, *arrays):
    """Bound tensors plus ``arrays`` for the user inputs, in order."""
    feeds = {p: t.data for p, t in program.bindings.items()}
    feeds.update(zip(program.user_inputs(), arrays))
    return feeds


@pytest.mark.parametrize("which", range(4))
def test_injected_module_parameter_and_placeholder_names(tmp_path, which):
    sentinel = tmp_path / "pwned"
    evil = evil_names(sentinel)
    names = (evil[which], evil[(which + 1) % 4], evil[(which + 2) % 4])
    ph = evil[(which + 3) % 4]
    benign_m, benign = compile_named(("lin", "bn", "scale"), "x")
    m, program = compile_named(names, ph)
    keys = [k for k, _ in m.named_parameters() + m.named_buffers()]
    assert_safe(program, list(names) + [ph] + keys, benign.source)
    rng = np.random.default_rng(which)
    x, dy = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 3))
    got = assert_agree(program, feeds_for(program, x, dy.astype(np.float32)))
    # same maths as the benign model with the same parameters
    benign_m._modules["lin"].bias.data = m._modules[names[0]].bias.data.copy()
    want = benign.run(feeds_for(benign, x, dy.astype(np.float32)))
    np.testing.assert_allclose(got["out"], want["out"], rtol=1e-6, atol=1e-6)
    result = program(x, dy.astype(np.float32))
    assert f"grad:{names[2]}" in result and f"{names[1]}.running_mean" in result
    bn = m._modules[names[1]]
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * (x @ np.diag([1, 2, 3]) +
                                                            m._modules[names[0]].bias.data
                                                            ).mean(0), rtol=1e-5, atol=1e-6)
    Named(*names)(Tensor(x, requires_grad=True)).backward(dy)  # the Tensor face too
    assert not sentinel.exists()


def test_injected_output_keys(tmp_path):
    sentinel = tmp_path / "pwned"
    evil = evil_names(sentinel)

    def fn(a, b):
        return {evil[0]: lucid.tanh(a) * b, evil[2]: (a * a).sum(1, keepdims=True)}

    phs = [lucid.placeholder((None, 4), name=evil[1]), lucid.placeholder((4,), name=evil[3])]
    program = lucid.compile(fn, *phs, mode="train")
    benign = lucid.compile(lambda a, b: {"o": lucid.tanh(a) * b, "p": (a * a).sum(1, keepdims=True)},
                           lucid.placeholder((None, 4), name="a"),
                           lucid.placeholder((4,), name="b"), mode="train")
    assert_safe(program, evil, benign.source)
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(s).astype(np.float32) for s in [(6, 4), (4,), (6, 4), (6, 1)]]
    out = program(*args)
    assert set(out) >= {evil[0], evil[2]}
    np.testing.assert_allclose(out[evil[0]], np.tanh(args[0]) * args[1], rtol=1e-6)
    np.testing.assert_allclose(out[evil[2]], (args[0] ** 2).sum(1, keepdims=True), rtol=1e-5)
    assert_agree(program, dict(zip(program.user_inputs(), args)))
    assert not sentinel.exists()


# Names from the generated code's own name space: a checked identifier must not collide with
# a temporary (_t0, _r0, _s1, _out_*) or a helper of the prelude (_buffer, _local).
@pytest.mark.parametrize("name", ["_t0", "_r0", "_s1", "_buffer", "_local", "_out_n3",
                                  "threading", "step", "n2", "grad_out", "size_N"])
def test_placeholder_names_from_the_generated_name_space(name):
    x = lucid.placeholder((None, 300), name=name)
    program = lucid.compile(lambda a: lucid.tanh(a * 2.0 + 1.0).sum(1) * lucid.exp(a.mean(1) * 0.1),
                            x, mode="train")
    ast.parse(program.source)
    rng = np.random.default_rng(0)
    feeds = dict(zip(program.user_inputs(), [rng.standard_normal((4, 300)).astype(np.float32),
                                             rng.standard_normal(4).astype(np.float32)]))
    assert_agree(program, feeds, rtol=1e-4)
    got = program(*feeds.values())
    a = feeds[program.user_inputs()[0]].astype(np.float64)
    np.testing.assert_allclose(got["out"], np.tanh(2 * a + 1).sum(1) * np.exp(0.1 * a.mean(1)),
                               rtol=1e-4)


# -- threads ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("shape", [(None, 3), (None, 32, 16)])
def test_one_program_from_two_threads(mode, shape):
    bn = nn.BatchNorm1d(shape[1])
    bn.running_mean.data = np.linspace(-1, 1, shape[1]).astype(np.float32)
    program = lucid.compile(bn, lucid.placeholder(shape, name="x"), mode=mode)
    rng = np.random.default_rng(1)
    sizes = [4, 64]
    cases = []
    for i in range(100):
        full = (sizes[i % 2],) + shape[1:]
        args = [rng.standard_normal(full).astype(np.float32) for _ in program.user_inputs()]
        cases.append(args)
    feeds = [feeds_for(program, *args) for args in cases]  # bound state read once, up front
    pure = [program.run(f) for f in feeds]
    state = bn.state_dict()

    def call(i):  # run() is pure; __call__ also commits running stats
        return program.run(feeds[i]), program(*cases[i])

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(call, range(len(cases))))
    stateless = [k for k in pure[0] if not k.startswith(("running", "num_batches"))]
    for (ran, called), want in zip(results, pure):
        for key in want:
            assert np.array_equal(ran[key], want[key]), key
        for key in stateless:
            assert np.array_equal(called[key], want[key]), key
    if mode == "eval":
        assert all(np.array_equal(bn.state_dict()[k], v) for k, v in state.items())


def test_concurrent_train_calls_count_every_batch():
    bn = nn.BatchNorm1d(16, momentum=None)
    program = lucid.compile(bn, lucid.placeholder((None, 16, 32), name="x"), mode="train")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 16, 32)).astype(np.float32)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: program(x, x), range(400)))
    assert int(bn.num_batches_tracked.data) == 400
    # the same batch every time: the cumulative average is that batch's statistics
    np.testing.assert_allclose(bn.running_mean.data, x.mean((0, 2)), rtol=1e-4, atol=1e-5)


# -- returned arrays are never overwritten -------------------------------------------------
SHAPES = [(4, 3), (64, 32), (64, 32, 16), (5, 3, 2)]


def copies(d):
    return {k: np.array(v, copy=True) for k, v in d.items()}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES)
def test_program_outputs_survive_the_next_call(mode, shape):
    bn = nn.BatchNorm1d(shape[1])
    program = lucid.compile(bn, lucid.placeholder((None,) + shape[1:], name="x"), mode=mode)
    rng = np.random.default_rng(2)
    first = [rng.standard_normal(shape).astype(np.float32) for _ in program.user_inputs()]
    second = [rng.standard_normal(shape).astype(np.float32) for _ in program.user_inputs()]
    out1 = program(*first)
    kept = copies(out1)
    inputs = copies(dict(enumerate(first)))
    out2 = program(*second)
    for key, value in kept.items():
        assert np.array_equal(out1[key], value), key
        assert not np.shares_memory(out1[key], out2[key]), key
    for i, value in inputs.items():
        assert np.array_equal(first[i], value)  # inputs are never written either
    run1 = program.run(feeds_for(program, *first))
    kept_run = copies(run1)
    program.run(feeds_for(program, *second))
    for key, value in kept_run.items():
        assert np.array_equal(run1[key], value), key


@pytest.mark.parametrize("shape", SHAPES)
def test_tensor_face_outputs_and_grads_survive(shape):
    """Forward 1, forward 2, backward 1, backward 2: call 1 sees only its own data."""
    rng = np.random.default_rng(4)
    x1, x2, g1, g2 = (rng.standard_normal(shape).astype(np.float32) for _ in range(4))
    bn = nn.BatchNorm1d(shape[1])
    t1, t2 = Tensor(x1, requires_grad=True), Tensor(x2, requires_grad=True)
    y1 = bn(t1)
    y1_kept = y1.data.copy()
    y2 = bn(t2)
    assert np.array_equal(y1.data, y1_kept) and not np.shares_memory(y1.data, y2.data)
    y1.backward(g1)
    grads1 = {"x": t1.grad, "weight": bn.weight.grad, "bias": bn.bias.grad}
    kept = copies(grads1)
    y2.backward(g2)
    assert np.array_equal(grads1["x"], kept["x"]) and np.array_equal(t1.grad, kept["x"])
    # the parameters' .grad arrays take call 2's gradient in place, as torch accumulates
    assert bn.weight.grad is grads1["weight"] and bn.bias.grad is grads1["bias"]
    assert not np.shares_memory(t1.grad, t2.grad)
    # and call 1's gradient is the one a fresh module computes for x1 alone
    fresh = nn.BatchNorm1d(shape[1])
    t = Tensor(x1, requires_grad=True)
    fresh(t).backward(g1)
    np.testing.assert_allclose(kept["x"], t.grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kept["weight"], fresh.weight.grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.bias.grad, kept["bias"] + g2.sum((0, 2)[:len(shape) - 1]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_eval_tensor_face_outputs_survive(shape):
    rng = np.random.default_rng(5)
    bn = nn.BatchNorm1d(shape[1]).eval()
    y1 = bn(Tensor(rng.standard_normal(shape), dtype="float32"))
    kept = y1.data.copy()
    y2 = bn(Tensor(rng.standard_normal(shape), dtype="float32"))
    assert np.array_equal(y1.data, kept) and not np.shares_memory(y1.data, y2.data)
