"""Security and integrity (issue 13): the private code cache, binding by identity, validated
attributes and constants, no silent collisions, deep chains.

Each test reproduces a finding of the review exactly and asserts the fix. The tests run as
root in CI, so a directory can be given to another uid with ``os.chown``.
"""
import linecache
import os
import signal
import stat
import traceback

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.codegen import cache
from lucid.runtime import run as reference_run

OTHER_UID = 12345


def tiny(x):
    return (x * 2.0 + 1.0).sum()


def x3():
    return lucid.placeholder((None, 3), name="x")


@pytest.fixture
def no_hang():
    """Fail instead of hanging (a FIFO opened for writing blocks until a reader comes)."""
    def stuck(*_):
        raise TimeoutError("the compile blocked")
    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def cache_name(program):
    """The file name the cache gives ``program``'s source."""
    return f"{cache._safe(program.name)}_{cache.digest(program.source)[:16]}{cache._SUFFIX}"


# ------------------------------------------------------------------ the code cache
def test_sources_stay_in_memory_by_default(monkeypatch):
    monkeypatch.delenv(cache.ENV_DIR, raising=False)
    program = lucid.compile(tiny, x3(), mode="eval")
    filename = program.step_fn.__code__.co_filename
    assert filename.startswith("<lucid:") and not os.path.exists(filename)
    linecache.checkcache()
    assert "".join(linecache.getlines(filename)) == program.source
    with pytest.raises(ValueError) as info:  # a traceback still shows the generated line
        program.step_fn(np.ones((2, 4), np.float32))
    frame = traceback.extract_tb(info.tb)[-1]
    assert frame.filename == filename and frame.line == \
        program.source.splitlines()[frame.lineno - 1].strip()


def test_save_writes_a_private_file(tmp_path):
    program = lucid.compile(tiny, x3(), mode="eval")
    program.save(tmp_path / "p.py")
    assert (tmp_path / "p.py").read_text() == program.source
    assert stat.S_IMODE(os.stat(tmp_path / "p.py").st_mode) == 0o600


def test_cache_dir_is_created_private_and_files_are_private(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    program = lucid.compile(tiny, x3(), mode="eval")
    filename = program.step_fn.__code__.co_filename
    assert filename == str(folder / cache_name(program))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(filename).st_mode) == 0o600
    assert open(filename).read() == program.source
    assert [p.name for p in folder.iterdir()] == [cache_name(program)]  # no temporaries left


def test_planted_symlinks_and_fifos_are_never_followed_nor_block(tmp_path, monkeypatch, no_hang):
    """Plant, as the same user, a symlink or a FIFO at every path the cache could use."""
    program = lucid.compile(tiny, x3(), mode="eval")
    folder, victim = tmp_path / "cache", tmp_path / "victim"
    folder.mkdir(mode=0o700)
    victim.write_text("precious")
    victim.chmod(0o600)
    tokens = [f"{i:016x}" for i in range(8)]  # every temporary name the cache will try
    monkeypatch.setattr(cache.secrets, "token_hex", lambda n: tokens.pop(0))
    name = cache_name(program)
    os.symlink(victim, folder / name)
    for i in range(8):
        tmp = folder / f".{name}.{i:016x}.tmp"
        os.symlink(victim, tmp) if i % 2 else os.mkfifo(tmp)
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    with pytest.raises(FileExistsError, match="fresh file"):  # every name taken: no write
        lucid.compile(tiny, x3(), mode="eval")
    assert victim.read_text() == "precious"
    assert os.path.islink(folder / name)

    tokens[:] = [f"{i:016x}" for i in range(8, 16)]  # free names: the link is replaced
    os.unlink(folder / name)
    os.mkfifo(folder / name)  # a FIFO at the final name: not read, not blocking
    again = lucid.compile(tiny, x3(), mode="eval")
    assert victim.read_text() == "precious"
    final = folder / name
    assert stat.S_ISREG(os.lstat(final).st_mode) and final.read_text() == program.source
    assert again.step_fn.__code__.co_filename == str(final)


@pytest.mark.parametrize("how", ["chown", "chmod 777", "chmod 770", "symlink", "file"])
def test_a_cache_dir_others_control_is_refused_without_writing(tmp_path, monkeypatch, how):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    if how == "chown":
        os.chown(folder, OTHER_UID, -1)
    elif how.startswith("chmod"):
        folder.chmod(int(how.split()[1], 8))
    elif how == "symlink":
        (tmp_path / "real").mkdir(mode=0o700)
        folder.rmdir()
        folder.symlink_to(tmp_path / "real")
    else:
        folder.rmdir()
        folder.write_text("")
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    with pytest.raises(cache.UnsafeCacheDir, match=str(folder)):
        lucid.compile(tiny, x3(), mode="eval")
    if folder.is_dir():
        assert list(folder.iterdir()) == []
    if how == "symlink":
        assert list((tmp_path / "real").iterdir()) == []


@pytest.mark.parametrize("plant", ["wrong text", "other owner", "world readable"])
def test_a_planted_file_is_replaced_not_used(tmp_path, monkeypatch, plant):
    program = lucid.compile(tiny, x3(), mode="eval")
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    path = folder / cache_name(program)
    path.write_text("raise SystemExit('attacker')\n" if plant == "wrong text" else program.source)
    path.chmod(0o644 if plant == "world readable" else 0o600)
    if plant == "other owner":
        os.chown(path, OTHER_UID, -1)
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    again = lucid.compile(tiny, x3(), mode="eval")
    st = os.stat(path)
    assert path.read_text() == program.source
    assert st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o600
    assert "".join(linecache.getlines(again.step_fn.__code__.co_filename)) == program.source


def test_the_cache_keeps_to_its_size_bound_evicting_least_recently_used(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    one = len(lucid.compile(lambda x: (x * 1.5).sum(), x3(), mode="eval").source.encode())
    bound = int(2.5 * one)  # room for two of these programs, not three
    monkeypatch.setenv(cache.ENV_BYTES, str(bound))
    names = []
    for k in range(8):
        program = lucid.compile(lambda x, k=k: (x * float(k + 2)).sum(), x3(), mode="eval")
        names.append(os.path.basename(program.step_fn.__code__.co_filename))
        sizes = [p.stat().st_size for p in folder.iterdir()]
        assert sum(sizes) <= bound
    left = sorted(p.name for p in folder.iterdir())
    assert names[-1] in left and names[0] not in left and len(left) >= 2  # only what it must
    assert left == sorted(names[-len(left):])  # the oldest went first


# ------------------------------------------------------------------ attributes and dtypes
RAN = []


class EvilInt(int):
    """An int whose text is code: what reached the source before attributes were normalised."""

    def __repr__(self):
        RAN.append("repr")
        return "__import__('os').system('echo PWNED') or 1"

    __str__ = __repr__


class Shifty:
    """A dtype whose ``str`` is a dtype name when checked and code when used."""

    def __init__(self):
        self.calls = 0

    def __str__(self):
        self.calls += 1
        return "float32" if self.calls == 1 else "float32); __import__('os').system('echo PWNED'"


def assert_clean(program):
    assert "PWNED" not in program.source and "__import__" not in program.source
    compile(program.source, "<check>", "exec")


def test_an_int_subclass_as_a_transpose_permutation_cannot_carry_code():
    RAN.clear()
    x = lucid.placeholder((2, 3), name="x")
    program = lucid.compile(lambda v: lucid.transpose(v, (EvilInt(1), EvilInt(0))) * 2.0, x,
                            mode="eval")
    assert_clean(program)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(program(a)["out"], a.T * 2)
    perm = [program.graph.node(n).attrs["perm"] for n in program.graph.nx
            if program.graph.node(n).op == "transpose"]
    assert perm == [(1, 0)] and all(type(p) is int for p in perm[0])
    assert RAN == []


@pytest.mark.parametrize("where", ["placeholder", "cast"])
def test_a_dtype_whose_text_changes_cannot_carry_code(where):
    if where == "placeholder":
        with pytest.raises(ValueError, match="placeholder dtype must be one of"):
            lucid.placeholder((None, 3), dtype=Shifty(), name="x")
        return
    x = lucid.placeholder((None, 3), dtype="float64", name="x")
    try:
        program = lucid.compile(lambda v: lucid.cast(v, Shifty()), x, mode="eval")
    except ValueError as e:
        assert "dtype" in str(e)
    else:
        assert_clean(program)
        assert program(np.ones((2, 3)))["out"].dtype == np.float32


def hand_built(op="cast", attrs=None, dtype="float64", out_dtype=None):
    from lucid.graph import Graph
    g = Graph()
    x = g.add("placeholder", [], (3,), "float32", name="x")
    y = g.add(op, [x], (3,), out_dtype or dtype, attrs if attrs is not None else {"dtype": dtype})
    g.set_output("out", y)
    return g


CODE = "float64); __import__('os').system('echo PWNED'); (np.float64"


@pytest.mark.parametrize("case", ["attribute", "str subclass", "node dtype", "extra attribute",
                                  "missing attribute", "bool perm", "float constant"])
def test_a_hand_built_graph_with_code_in_it_fails_lint_and_never_compiles(case):
    from lucid.codegen import Program
    from lucid.ops import REGISTRY

    class Str(str):
        pass

    g = {"attribute": lambda: hand_built(attrs={"dtype": CODE}),
         "str subclass": lambda: hand_built(attrs={"dtype": Str("float64")}),
         "node dtype": lambda: hand_built(out_dtype=CODE),
         "extra attribute": lambda: hand_built(attrs={"dtype": "float64", "x": 1}),
         "missing attribute": lambda: hand_built(attrs={}),
         "bool perm": lambda: hand_built("transpose", {"perm": (True,)}, "float32"),
         "float constant": lambda: hand_built("transpose", {"perm": (0.0,)}, "float32"),
         }[case]()
    with pytest.raises(ValueError, match="node 'n0'"):
        g.lint(REGISTRY)
    with pytest.raises(ValueError, match="node 'n0'"):
        Program(g)


def test_the_well_formed_hand_built_graph_passes():
    from lucid.codegen import Program
    from lucid.ops import REGISTRY
    g = hand_built()
    g.lint(REGISTRY)
    out = Program(g)(np.arange(3, dtype=np.float32))["out"]
    assert out.dtype == np.float64 and out.tolist() == [0.0, 1.0, 2.0]


# ------------------------------------------------------------------ constants
@pytest.mark.parametrize("value, message", [
    (10**400, "out of range for float32"), (1e300, "out of range for float32")])
def test_bad_constants_are_refused_where_they_enter(value, message):
    x = lucid.placeholder((None, 3), name="x")
    with pytest.raises(ValueError, match=message):
        x * value  # at definition time, not at compile or run time
    with pytest.raises(ValueError, match=message):
        lucid.Tensor(np.ones(3, np.float32)) * value


def test_int64_constants_must_fit():
    x = lucid.placeholder((None, 3), dtype="int64", name="x")
    with pytest.raises(ValueError, match="out of range for int64"):
        x * 2**63
    program = lucid.compile(lambda v: v * (2**62), x, mode="eval")
    assert program(np.ones((1, 3), np.int64))["out"].tolist() == [[2**62] * 3]


def test_a_fraction_is_a_number():
    from fractions import Fraction
    x = lucid.placeholder((None, 3), dtype="float64", name="x")
    program = lucid.compile(lambda v: v * Fraction(1, 3), x, mode="eval")
    np.testing.assert_allclose(program(np.full((2, 3), 3.0))["out"], np.ones((2, 3)))


# ------------------------------------------------------------------ binding by identity
def test_a_placeholder_named_like_a_parameter_is_bound_by_identity():
    lin = nn.Linear(3, 3, bias=False)
    program = lucid.compile(lin, lucid.placeholder((3, 3), name="weight"), mode="eval")
    a = np.arange(9, dtype=np.float32).reshape(3, 3)
    np.testing.assert_allclose(program(a)["out"], a @ lin.weight.data.T, rtol=1e-6)
    train = lucid.compile(lin, lucid.placeholder((3, 3), name="weight"), mode="train")
    g = np.ones((3, 3), np.float32)
    out = train(a, g)
    np.testing.assert_allclose(out["grad:weight"], g.T @ a, rtol=1e-6)  # the parameter's
    np.testing.assert_allclose(out["grad:weight_1"], g @ lin.weight.data, rtol=1e-6)


def test_two_placeholders_named_x_both_get_their_gradients():
    x1, x2 = lucid.placeholder((3,), name="x"), lucid.placeholder((3,), name="x")
    program = lucid.compile(lambda u, v: (u * 2.0 + v * 3.0).sum(), x1, x2)
    out = program(np.ones(3, np.float32), np.ones(3, np.float32), np.float32(1))
    assert out["grad:x"].tolist() == [2, 2, 2] and out["grad:x_1"].tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="same placeholder"):
        lucid.compile(lambda u, v: u + v, x1, x1)


def test_output_keys_that_clash_after_str_are_an_error():
    x = lucid.placeholder((3,), name="x")
    with pytest.raises(ValueError, match="output keys must be distinct"):
        lucid.compile(lambda u: {1: u * 2.0, "1": u * 3.0}, x, mode="eval")


def child_and_dotted():
    m = nn.Module()
    m.a = nn.Module()
    m.a.b = nn.Parameter(np.ones(2, np.float32))
    return m


def test_module_paths_that_collide_are_refused_at_registration():
    m = child_and_dotted()
    with pytest.raises(ValueError, match="'a.b'"):
        m.register_parameter("a.b", nn.Parameter(np.zeros(2, np.float32)))
    with pytest.raises(ValueError, match="'a.b'"):
        m.register_buffer("a.b", lucid.Tensor(np.zeros(2, np.float32)))
    assert list(m.state_dict()) == ["a.b"]
    other = nn.Module()
    other.register_parameter("a.b", nn.Parameter(np.zeros(2, np.float32)))
    with pytest.raises(ValueError, match="'a.b'"):
        other.a = child_and_dotted().a  # the child's b lands on the root's "a.b"
    assert list(other.state_dict()) == ["a.b"] and "a" not in other._modules


def test_a_collision_made_deeper_down_is_an_error_on_use():
    m = nn.Module()
    m.register_parameter("a.b", nn.Parameter(np.zeros(2, np.float32)))
    m.a = nn.Module()
    m.a.b = nn.Parameter(np.ones(2, np.float32))  # the child cannot see its parent
    with pytest.raises(ValueError, match="'a.b'"):
        m.state_dict()
    with pytest.raises(ValueError, match="'a.b'"):
        m.load_state_dict({"a.b": np.zeros(2)})
    m.forward = lambda x: x * m.a.b * m._parameters["a.b"]
    with pytest.raises(ValueError, match="'a.b'"):  # the Tensor face: no bare AssertionError
        m(lucid.Tensor(np.ones(2, np.float32)))


@pytest.mark.parametrize("register, name", [
    ("register_parameter", "_parameters"), ("register_buffer", "_buffers"),
    ("register_parameter", "_modules"), ("register_buffer", "training"),
    ("register_parameter", "forward"), ("register_buffer", "state_dict"),
    ("setattr", "_parameters"), ("setattr", "parameters"), ("register_parameter", "")])
def test_names_that_shadow_the_module_are_refused_before_anything_changes(register, name):
    lin = nn.Linear(2, 2)
    before = {k: v.copy() for k, v in lin.state_dict().items()}
    value = nn.Parameter(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="shadow|non-empty"):
        if register == "setattr":
            setattr(lin, name, value)
        else:
            getattr(lin, register)(name, value if "parameter" in register else
                                   lucid.Tensor(np.zeros(2, np.float32)))
    after = lin.state_dict()
    assert list(after) == list(before) and all(np.array_equal(after[k], before[k]) for k in after)
    assert lin.training is True and callable(lin.forward)
    x = lucid.Tensor(np.ones((1, 2), np.float32))
    np.testing.assert_allclose(lin(x).data, np.ones((1, 2)) @ before["weight"].T + before["bias"],
                               rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ deep chains
def chain(n, mixed=False):
    def fn(v):
        for i in range(n):
            v = v * 0.9 + 0.1 if mixed and i % 2 else lucid.tanh(v)
        return v.sum()
    return fn


def run_against_executor(program, n=2):
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((n, 3))}
    feeds.update({s: np.array(1.0) for s in program.seeds})
    got, want = program.run(feeds), reference_run(program.graph, feeds)
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("n, mode, mixed", [(200, "eval", False), (300, "train", False),
                                            (1000, "train", True)])
def test_deep_chains_compile_and_match_the_executor(n, mode, mixed):
    x = lucid.placeholder((None, 3), "float64", name="x")
    program = lucid.compile(chain(n, mixed), x, mode=mode)
    compile(program.source, "<check>", "exec")  # no "too many nested parentheses"
    assert "_d0 = " in program.source  # cut into statements
    run_against_executor(program)


def test_a_chain_of_ten_thousand_unary_ops():
    x = lucid.placeholder((None, 3), "float64", name="x")
    program = lucid.compile(chain(10_000), x, mode="eval")
    run_against_executor(program)


# ------------------------------------------------------------------ the rest
@pytest.mark.parametrize("value", [np.nan, 1e30, np.inf, 0.5, -1e19])
def test_num_batches_tracked_loads_only_whole_numbers(value):
    bn = nn.BatchNorm1d(2)
    state = {k: v.copy() for k, v in bn.state_dict().items()}
    before = {k: v.copy() for k, v in state.items()}
    state["num_batches_tracked"] = np.array(value)
    state["running_mean"] = np.ones(2)
    with pytest.raises(ValueError, match="'num_batches_tracked' must hold whole numbers"):
        bn.load_state_dict(state)
    after = bn.state_dict()  # all or nothing
    assert all(np.array_equal(after[k], before[k]) for k in before)
    state["num_batches_tracked"] = np.array(7.0)
    bn.load_state_dict(state)
    assert bn.num_batches_tracked.data.dtype == np.int64 and int(bn.num_batches_tracked.data) == 7


def test_a_superscript_is_not_a_cli_size():
    from lucid.cli import UsageError, parse_shape
    with pytest.raises(UsageError, match="bad dim '\u00b2'"):
        parse_shape("\u00b2,4")
    assert parse_shape("N,4") == ("N", 4)


def test_names_of_any_length_render(tmp_path):
    import shutil
    import subprocess
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed")
    name = "a" * 20000
    m = nn.Module()
    setattr(m, "b" * 20000, nn.Linear(3, 3))
    m.forward = lambda v: {name: m._modules["b" * 20000](v)}
    program = lucid.compile(m, lucid.placeholder((None, 3), name=name), mode="train")
    assert max(len(n) for n in program.graph.nx) <= 64  # the key keeps the name, not the code
    for group in (False, True):
        text = program.graph.to_dot(group_by_module=group)
        done = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True,
                              check=False)
        assert (done.returncode, done.stderr) == (0, b"")
        assert "a" * 79 + "\u2026" in done.stdout.decode()  # cut short in the label
    from lucid.graph.dot import node_tooltip
    (x,) = [p for p in program.graph.inputs if program.graph.node(p).key == name]
    assert "a" * 3000 in node_tooltip(program.graph, x)  # more of it in the tooltip


# ------------------------------------------------------------------ property tests
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROFILE = dict(deadline=None, derandomize=True, database=None, max_examples=60,
               phases=(Phase.explicit, Phase.generate),
               suppress_health_check=[HealthCheck.too_slow])
texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["x", "weight", "grad:x", "_t0", "np", "size_N", "a.b", "out", "0", "print", ""])
odd_ints = st.integers(-4, 4).map(lambda i: EvilInt(i)) | st.integers(-4, 4) | \
    st.sampled_from([True, 1.0, "0", None, 2**70])
attr_values = st.lists(odd_ints, max_size=4).map(tuple) | odd_ints | texts
dtypes = st.sampled_from(["float32", "float64", "int64", np.float64, np.dtype("float32"),
                          Shifty, "float16", "f8", CODE])
CLEAR = (ValueError, TypeError)


def clean_run(program, rng):
    assert_clean(program)
    feeds = {p: rng.standard_normal(tuple(2 if isinstance(d, str) else d
                                          for d in program.graph.node(p).shape))
             .astype(program.graph.node(p).dtype) for p in program.user_inputs()}
    feeds.update({p: t.data for p, t in program.bindings.items()})
    got, want = program.run(feeds), reference_run(program.graph, feeds)
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5, err_msg=key)


@settings(**PROFILE)
@given(names=st.lists(texts, min_size=2, max_size=2), keys=st.lists(texts, min_size=1,
                                                                  max_size=3),
       param=texts, child=texts)
def test_random_names_give_a_clear_error_or_a_program_that_matches(names, keys, param, child):
    RAN.clear()
    try:
        m = nn.Module()
        setattr(m, child, nn.Linear(2, 2))
        m.register_parameter(param, nn.Parameter(np.full(2, 0.5, np.float32)))
        phs = [lucid.placeholder((None, 2), name=n) for n in names]
        lin = m._modules[child]
        m.forward = lambda u, v: {k: lin(u) * m._parameters[param] + v * float(i)
                                  for i, k in enumerate(keys)}
        program = lucid.compile(m, *phs, mode="train")
    except CLEAR as e:
        assert str(e) and not isinstance(e, AssertionError)
        return
    clean_run(program, np.random.default_rng(0))
    outs = set(program.graph.outputs)
    assert {f"grad:{program.graph.node(p).key or p}" for p in program.graph.inputs
            if program.graph.node(p).role.value in ("input", "param")} <= outs
    assert RAN == []


@settings(**PROFILE)
@given(op=st.sampled_from(["transpose", "sum", "reshape", "broadcast_to", "cast", "numel"]),
       value=attr_values, flag=st.sampled_from([True, False, 0, 1, 2, "yes"]), dtype=dtypes)
def test_random_attribute_values_give_a_clear_error_or_a_program_that_matches(op, value, flag,
                                                                             dtype):
    from lucid.frontend.var import apply
    RAN.clear()
    dtype = dtype() if dtype is Shifty else dtype
    attrs = {"transpose": {"perm": value}, "sum": {"axes": value, "keepdims": flag},
             "reshape": {"shape": value}, "broadcast_to": {"shape": value},
             "cast": {"dtype": dtype}, "numel": {"axes": value}}[op]
    try:
        x = lucid.placeholder((2, 3), name="x")
        program = lucid.compile(lambda v: apply(op, v, **attrs) * 1.0, x, mode="eval")
    except CLEAR as e:
        assert str(e)
        return
    clean_run(program, np.random.default_rng(0))
    for n in program.graph.nx:
        from lucid.ops.attributes import plain
        assert all(plain(v) for v in program.graph.node(n).attrs.values())
    assert RAN == []


@settings(**PROFILE)
@given(op=st.sampled_from(["transpose", "sum", "reshape", "broadcast_to", "cast", "constant"]),
       value=attr_values | st.floats(allow_nan=True) | st.integers(), dtype=dtypes)
def test_hand_built_nodes_either_fail_lint_or_compile_clean(op, value, dtype):
    from lucid.codegen import Program
    from lucid.graph import Graph
    from lucid.ops import REGISTRY
    RAN.clear()
    dtype = dtype() if dtype is Shifty else dtype
    g = Graph()
    x = g.add("placeholder", [], (2, 3), "float32", name="x")
    attrs = {"transpose": {"perm": value}, "sum": {"axes": value, "keepdims": False},
             "reshape": {"shape": value}, "broadcast_to": {"shape": value},
             "cast": {"dtype": dtype}, "constant": {"value": value}}[op]
    try:  # the shape and dtype a builder would not check: lint must
        y = g.add(op, [] if op == "constant" else [x], (2, 3), str(dtype), attrs)
        g.set_output("out", y)
        program = Program(g)
    except CLEAR as e:
        assert str(e)
        return
    except Exception:  # a well-formed attribute on a node of the wrong shape: NumPy says so
        return
    assert_clean(program)
    assert RAN == []
