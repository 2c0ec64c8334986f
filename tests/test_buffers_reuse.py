"""Matmul results in scratch slots of the memory plan (issue 11).

A matmul whose result no caller sees writes into a reused slot
(``np.matmul(a, b, out=...)``). These tests run such programs over several
calls with changing batch sizes against the reference executor and float64
NumPy, check from the generated source that a result never shares a slot with
its operands, and that ``memory()`` counts the new slots.
"""
import re

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.codegen.program import Results
from lucid.runtime import run as reference_run
from test_lowering_cost import mlp  # k blocks of Linear -> BatchNorm1d -> ReLU

BUFFER = re.compile(r"^\s*(\w+) = _(buffer|result)\('([\w.]+)', (.*), np\.(\w+)\)(  #.*)?$")
ALIAS = re.compile(r"^\s*(\w+) = (\w+)(\.T|\.reshape\(.*\)|\.view\(\))?$")
MATMUL = re.compile(r"^\s*np\.matmul\((\w+)(?:\.T)?, (\w+)(?:\.T)?, out=(\w+)\)$")


@pytest.fixture(autouse=True)
def keep_every_size(monkeypatch):
    """These tests' arrays are small: keep results of every size (the size rule has its own
    test, test_small_results_are_always_new)."""
    monkeypatch.setattr(Results, "MIN_BYTES", 0)
    monkeypatch.setattr(Results, "MIN_VOLUME", -1)


SHIPPED = {"MIN_BYTES": Results.MIN_BYTES, "MIN_VOLUME": Results.MIN_VOLUME}


def test_only_a_function_returning_much_keeps_its_results(monkeypatch):
    for name, value in SHIPPED.items():  # the rule as shipped, not this file's fixture
        monkeypatch.setattr(Results, name, value)
    assert SHIPPED == {"MIN_BYTES": 1 << 16, "MIN_VOLUME": 5 << 18}
    results = Results()  # more than MIN_VOLUME a call, arrays of MIN_BYTES or more
    quarter = (64, 1024)  # 256 KiB of float32
    kept = results.take("step.a", quarter, np.float32)
    address = id(kept)
    del kept
    for name in "bcdef":  # step now returns 6 x 256 KiB = 1.5 MiB a call
        results.take(f"step.{name}", quarter, np.float32)
    first = results.take("step.a", quarter, np.float32)
    address = id(first)
    del first
    assert id(results.take("step.a", quarter, np.float32)) == address  # kept: offered back
    small = results.take("step.g", (16, 1023), np.float32)  # under MIN_BYTES: always new
    del small
    assert "step.g" not in results._local.__dict__
    for name in "abcd":  # forward returns 1 MiB a call: at most MIN_VOLUME, never kept
        results.take(f"forward.{name}", quarter, np.float32)
    assert not any(k.startswith("forward.") for k in results._local.__dict__)


def body(program, fn="step"):
    start = program.source.index(f"def {fn}(")
    end = program.source.find("\ndef ", start + 1)
    return program.source[start:end if end > 0 else None]


def slots_of(source, kind="buffer"):
    """Variable -> scratch slot (``_buffer``) or returned array's slot (``_result``) holding
    its memory, through aliases and views; and the matmuls ``(line index, a, b, out)`` that
    write into one of ``kind``."""
    slot, matmuls, kinds = {}, [], {}
    for i, line in enumerate(source.splitlines()):
        if (m := BUFFER.match(line)):
            slot[m[1]], kinds[m[1]] = m[3], m[2]
        elif (m := ALIAS.match(line)) and m[2] in slot:
            slot[m[1]] = slot[m[2]]
        elif (m := MATMUL.match(line)) and kinds[m[3]] == kind:
            matmuls.append((i, m[1], m[2], m[3]))
    return slot, matmuls


def agree(program, feeds, rtol=1e-4, atol=1e-4):
    """The program's results against the reference executor's, for one set of feeds."""
    want = reference_run(program.graph, feeds)
    got = program.run(feeds)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol, err_msg=key)
    return got


def chain(x, a, b, c):
    """Square matmuls whose operands die at them (tanh(x @ a) is read by a row sum first, then
    for the last time by the next matmul): every result could take an operand's slot."""
    h = lucid.tanh(x @ a)
    h = lucid.relu(h @ b) * h.sum(1, keepdim=True)
    return lucid.sigmoid(h @ c).sum()


def chain64(x, a, b, c):
    h = np.tanh(x @ a)
    h = np.maximum(h @ b, 0) * h.sum(1, keepdims=True)
    return (1 / (1 + np.exp(-(h @ c)))).sum()


def chain_program(width=24):
    ph = [lucid.placeholder((None, width), name="x")] + \
        [lucid.placeholder((width, width), name=n) for n in "abc"]
    return lucid.compile(chain, *ph, mode="eval")


def test_internal_matmuls_write_into_scratch_slots():
    step = body(chain_program())
    slot, matmuls = slots_of(step)
    assert len(matmuls) == 3  # all three: none is returned
    assert " @ " not in step
    for _, _, _, out in matmuls:
        assert out in slot and slot[out].startswith("step.")


def test_a_matmul_result_never_takes_its_operands_slot():
    program = chain_program()
    step = body(program)
    slot, matmuls = slots_of(step)
    lines = step.splitlines()
    taken = [m for m in map(BUFFER.match, lines) if m]  # (name, kind, slot, shape, dtype)
    shape_of = {m[1]: m[4] for m in taken}
    freed_here = 0
    for i, a, b, out in matmuls:
        operands = {slot.get(a), slot.get(b)} - {None}
        assert slot[out] not in operands, lines[i]
        # the case that matters: an operand in a slot of the result's shape read for the
        # last time by this matmul, so the pool gives its slot back at this very item
        later = "\n".join(lines[i + 1:])
        for v in (a, b):
            if v in slot and not re.search(rf"(?<![\w.']){v}\b", later):
                freed_here += shape_of[out] in {m[4] for m in taken if m[3] == slot[v]}
    assert freed_here >= 2  # the test exercises the give-back-at-last-use case
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((7, 24), dtype=np.float32)}
    feeds.update((n, rng.standard_normal((24, 24), dtype=np.float32) / 5) for n in "abc")
    agree(program, feeds)


def test_matmuls_in_slots_over_calls_with_changing_batch_sizes():
    program = chain_program()
    rng = np.random.default_rng(1)
    weights = {n: rng.standard_normal((24, 24), dtype=np.float32) / 5 for n in "abc"}
    kept = []
    for n in (5, 40, 5, 17, 40, 1, 40):  # shrink, grow, back: slots reallocated and reused
        x = rng.standard_normal((n, 24), dtype=np.float32)
        got = agree(program, {"x": x, **weights})
        want = chain64(x.astype(np.float64), *(weights[k].astype(np.float64) for k in "abc"))
        np.testing.assert_allclose(got["out"], want, rtol=1e-4)
        kept.append((got["out"], want))
    for got, want in kept:  # returned values are never overwritten by later calls
        np.testing.assert_allclose(got, want, rtol=1e-4)


def test_batched_matmul_writes_into_a_slot_and_agrees():
    ph = [lucid.placeholder((None, 3, 8, 8), name="x"), lucid.placeholder((3, 8, 8), name="w")]
    program = lucid.compile(lambda x, w: lucid.tanh(lucid.tanh(x @ w) @ w), *ph, mode="eval")
    slot, matmuls = slots_of(body(program))
    assert len(matmuls) == 2  # the output is the tanh's: both matmuls stay inside
    for _, a, b, out in matmuls:
        assert slot[out] not in {slot.get(a), slot.get(b)}
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 8, 8), dtype=np.float32) / 3
    for n in (4, 9, 2):
        x = rng.standard_normal((n, 3, 8, 8), dtype=np.float32)
        got = agree(program, {"x": x, "w": w})
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        np.testing.assert_allclose(got["out"], np.tanh(np.tanh(x64 @ w64) @ w64), rtol=1e-5,
                                   atol=1e-6)


def test_train_mlp_matmuls_in_slots_agree_over_calls_and_batch_sizes():
    program = lucid.compile(mlp(3), lucid.placeholder((None, 16), name="x"), mode="train")
    for fn in ("step", "forward", "backward"):
        for kind in ("buffer", "result"):
            slot, matmuls = slots_of(body(program, fn), kind)
            for _, a, b, out in matmuls:
                assert slot[out] not in {slot.get(a), slot.get(b)}
    # forward-block matmuls (3) and input-gradient matmuls of blocks 2 and 3 (2) stay inside;
    # the input's and the three weights' gradients are returned
    assert len(slots_of(body(program))[1]) == 5
    assert len(slots_of(body(program), "result")[1]) == 4
    rng = np.random.default_rng(3)
    for n in (32, 8, 32, 3):
        x, dy = (rng.standard_normal((n, 16), dtype=np.float32) for _ in range(2))
        agree(program, program.feeds((x, dy), {}))


def test_memory_counts_the_matmul_slots():
    program = chain_program()
    rng = np.random.default_rng(4)
    feeds = {"x": rng.standard_normal((64, 24), dtype=np.float32)}
    feeds.update((n, rng.standard_normal((24, 24), dtype=np.float32) / 5) for n in "abc")
    program.run(feeds)
    mem = program.memory()
    held = program._scratch.__dict__
    slot, matmuls = slots_of(body(program))
    for _, _, _, out in matmuls:
        assert held[slot[out]].shape == (64, 24)  # a matmul's slot is among those held
    assert mem["buffers"] == len(held)
    assert mem["bytes_held"] == sum(a.nbytes for a in held.values())
    # at most about three full-size values alive at once (an operand, a result, h)
    one = 64 * 24 * 4
    assert one <= mem["peak_live_bytes"] <= mem["bytes_held"] <= 3 * one + 3 * 24 * 4


# -- returned arrays offered back once nobody holds them (Program.results) -----------------
def pair_program():
    """Two large results: ``h`` (a matmul's, returned) and ``g`` (elementwise)."""
    ph = [lucid.placeholder((None, 24), "float64", name="x"),
          lucid.placeholder((24, 24), "float64", name="w")]
    return lucid.compile(lambda x, w: {"h": x @ w, "g": x * 2.0 + 1.0}, *ph,
                         mode="eval")


def pair_want(x, w):
    return {"h": x @ w, "g": x * 2.0 + 1.0}


def pair_calls():
    """A program, its weight, and a function calling it on fresh data; checks the results."""
    program, rng = pair_program(), np.random.default_rng(7)
    w = rng.standard_normal((24, 24))

    def call(n=16):
        x = rng.standard_normal((n, 24))
        got = program(x, w)
        want = pair_want(x, w)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12, err_msg=key)
        return got, want
    return program, call


def test_results_nobody_holds_are_written_again():
    program, call = pair_calls()
    got, _ = call()
    ids = {k: id(v) for k, v in got.items()}
    del got  # the caller keeps nothing: the program's ring is the only holder
    again, _ = call()
    assert {k: id(v) for k, v in again.items()} == ids
    assert program.memory()["results_kept"] == 2 * 16 * 24 * 8


def test_a_kept_dict_keeps_its_values():
    program, call = pair_calls()
    kept = [call() for _ in range(4)]  # each call's dict kept: nothing may be reused
    for got, want in kept:
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12, err_msg=key)
    assert len({id(got["h"]) for got, _ in kept}) == 4


def test_a_kept_array_keeps_its_value_and_the_rest_is_reused():
    program, call = pair_calls()
    got, want = call()
    h, other = got["h"], id(got["g"])
    del got
    again, _ = call()
    assert again["h"] is not h and id(again["g"]) == other  # only the unheld one reused
    np.testing.assert_allclose(h, want["h"], rtol=1e-12)


def test_a_kept_view_or_slice_keeps_its_base():
    program, call = pair_calls()
    got, want = call()
    rows, col, flat = got["h"][2:5], got["g"][:, 3], got["h"].T.reshape(-1)
    del got
    for _ in range(3):
        call()
    np.testing.assert_allclose(rows, want["h"][2:5], rtol=1e-12)
    np.testing.assert_allclose(col, want["g"][:, 3], rtol=1e-12)
    np.testing.assert_allclose(flat, want["h"].T.reshape(-1), rtol=1e-12)


def test_a_memoryview_or_weak_reference_keeps_the_array():
    import weakref

    program, call = pair_calls()
    got, want = call()
    view, ref, gid = memoryview(got["h"]), weakref.ref(got["g"]), id(got["g"])
    del got
    again, _ = call()
    assert again["g"] is not ref() and id(again["g"]) != gid
    np.testing.assert_allclose(np.asarray(view), want["h"], rtol=1e-12)
    np.testing.assert_allclose(ref(), want["g"], rtol=1e-12)


def test_results_over_changing_batch_sizes():
    program, call = pair_calls()
    kept = []
    for n in (16, 3, 16, 40, 3, 3, 40):
        got, want = call(n)
        if n == 3:
            kept.append((got["h"], want["h"]))  # some kept, the others dropped
    for h, want in kept:
        np.testing.assert_allclose(h, want, rtol=1e-12)
    rings = program.results._local.__dict__
    assert all(len(ring) <= program.results.KEEP for ring in rings.values())


# -- the compiled training step: double-buffered parameters and optimizer state ------------
def wide(seed=0):
    lucid.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 40), nn.BatchNorm1d(40), nn.ReLU(), nn.Linear(40, 20),
                         nn.ReLU(), nn.Linear(20, 3)).double()


def train_batches(count=6, n=16):
    rng = np.random.default_rng(8)
    return [(rng.normal(size=(n + 3 * (i % 2), 12)), rng.integers(0, 3, n + 3 * (i % 2)))
            for i in range(count)]


def compiled_step(model):
    opt = lucid.optim.Adam(model.parameters(), lr=1e-2)
    ph = (lucid.placeholder((None, 12), "float64", name="x"),
          lucid.placeholder((None,), "int64", name="y"))
    return opt, lucid.compile(lambda x, y: F.cross_entropy(model(x), y), *ph, optimizer=opt)


def eager_steps(model, batches):
    opt = lucid.optim.Adam(model.parameters(), lr=1e-2)
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(lucid.Tensor(x)), lucid.Tensor(y)).backward()
        opt.step()


def test_train_step_double_buffers_and_matches_eager_and_a_held_run():
    batches = train_batches()
    free, held = wide(), wide()
    (opt, step), (_, step_held) = compiled_step(free), compiled_step(held)
    weight = free[0].weight
    seen, kept = [], []
    for x, y in batches:
        step(x, y)
        step_held(x, y)
        seen.append(id(weight.data))
        kept.append([p.data for p in held.parameters()])  # held: nothing can be reused
    assert len(set(seen[1:])) == 2 and seen[1] == seen[3] == seen[5]  # two arrays, in turn
    assert len({id(a) for arrays in kept for a in arrays[:1]}) == len(batches)
    exp = [s["exp_avg"] for s in opt.state.values() if s["exp_avg"].size >= 256]
    assert exp and all(sum(id(a) == id(b) for b in exp) == 1 for a in exp)  # none shared
    eager = wide()
    eager_steps(eager, batches)
    for a, b, c in zip(free.parameters(), held.parameters(), eager.parameters()):
        np.testing.assert_array_equal(a.data, b.data)  # reuse changes no value
        np.testing.assert_allclose(a.data, c.data, rtol=1e-9, atol=1e-12)


def test_train_step_keeps_what_the_user_kept():
    batches = train_batches()
    model = wide()
    opt, step = compiled_step(model)
    step(*batches[0])
    step(*batches[1])
    weight = model[0].weight.data  # a p.data reference kept across steps
    weight_copy = weight.copy()
    rows = model[3].weight.data[:5]  # a slice of another
    rows_copy = rows.copy()
    snapshot = model.state_dict()
    snapshot_copy = {k: v.copy() for k, v in snapshot.items()}
    moments = {id(p): s["exp_avg"] for p, s in opt.state.items()}  # optimizer state kept
    moments_copy = {k: v.copy() for k, v in moments.items()}
    saved = opt.state_dict()
    for x, y in batches[2:]:
        step(x, y)
    np.testing.assert_array_equal(weight, weight_copy)
    np.testing.assert_array_equal(rows, rows_copy)
    for k in snapshot:
        np.testing.assert_array_equal(snapshot[k], snapshot_copy[k], err_msg=k)
    for k in moments:
        np.testing.assert_array_equal(moments[k], moments_copy[k])
        assert not any(s["exp_avg"] is moments[k] for s in opt.state.values())
    for i, s in saved["state"].items():
        np.testing.assert_array_equal(s["exp_avg"], moments_copy[id(list(model.parameters())[i])])
    assert not np.array_equal(model[0].weight.data, weight_copy)  # the model did train


def test_whole_expressions_end_in_a_ufunc_writing_the_buffer():
    # not linear in their large operands, they are computed in place along their spine
    # (lucid.codegen.spine); the last operation (an add, a ufunc head) writes into the scratch
    # slot or returned array: no copy after, and no copy anywhere
    ph = lucid.placeholder((None, 20), "float64", name="x")

    def fn(x):
        inner = lucid.exp(x * x) + lucid.tanh(x) * x  # scratch: read twice below
        return {"sum": inner * 0.5 + lucid.sqrt(lucid.abs(x)) / (inner + 2.0),
                "relu": lucid.relu(inner - 1.5), "tanh": lucid.tanh(inner * x)}
    program = lucid.compile(fn, ph, mode="eval")
    step = body(program)
    assert "np.asarray(" not in step  # no returned value is a new array
    assert "np.copyto(" not in step  # tanh(x) * x too: in place
    for key, ufunc in (("sum", "add"), ("relu", "maximum"), ("tanh", "tanh")):
        out = f"_out_{program.graph.outputs[key].node}"
        assert re.search(rf"^\s*np\.{ufunc}\(.*, out={out}\)$", step, re.M), key
    rng = np.random.default_rng(9)
    for n in (7, 30, 7):
        x = rng.standard_normal((n, 20))
        got = agree(program, {"x": x}, rtol=1e-12, atol=1e-12)
        inner = np.exp(x * x) + np.tanh(x) * x
        want = {"sum": inner * 0.5 + np.sqrt(np.abs(x)) / (inner + 2.0),
                "relu": np.maximum(inner - 1.5, 0), "tanh": np.tanh(inner * x)}
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12, err_msg=key)


def test_parallel_twin_and_serial_step_share_results_safely(monkeypatch):
    from lucid.codegen import parallel

    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)
    monkeypatch.setattr(parallel, "MIN_RUN", 1)
    before = lucid.get_num_threads()
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16))
    program = lucid.compile(model, lucid.placeholder((None, 16), name="x"), mode="train")
    assert "def _step_parallel(" in program.source
    rng = np.random.default_rng(10)
    try:
        kept = []
        for i, n in enumerate((64, 64, 20, 64, 64, 20)):
            lucid.set_num_threads(1 + i % 2)  # serial and twin in turn, one ring per slot
            x, dy = (rng.standard_normal((n, 16), dtype=np.float32) for _ in range(2))
            got = agree(program, program.feeds((x, dy), {}))
            if i % 3 == 0:
                kept.append((got, {k: v.copy() for k, v in got.items()}))
    finally:
        lucid.set_num_threads(before)
    for got, copy in kept:
        for key in copy:
            np.testing.assert_array_equal(got[key], copy[key], err_msg=key)


def test_matmuls_of_every_rank_agree_over_calls():
    # a vector times a stack, a stack times a broadcast matrix, a stack times a vector:
    # np.matmul(..., out=) needs the exact result shape each time
    ph = [lucid.placeholder((None, 16, 32), "float64", name="x"),
          lucid.placeholder((32, 32), "float64", name="w"),
          lucid.placeholder((16,), "float64", name="v")]

    def fn(x, w, v):
        h = lucid.tanh(x @ w)  # (N, 16, 32) @ (32, 32)
        row = lucid.tanh(lucid.matmul(v, h))  # (16,) @ (N, 16, 32) -> (N, 32)
        return (lucid.tanh(row) * 2.0).sum() + lucid.tanh(h @ w[0]).sum()
    program = lucid.compile(fn, *ph, mode="eval")
    assert len(slots_of(body(program))[1]) >= 2
    rng = np.random.default_rng(11)
    w, v = rng.standard_normal((32, 32)) / 6, rng.standard_normal(16) / 4
    for n in (3, 12, 3):
        x = rng.standard_normal((n, 16, 32))
        got = agree(program, {"x": x, "w": w, "v": v}, rtol=1e-12, atol=1e-12)
        h = np.tanh(x @ w)
        want = (np.tanh(np.tanh(v @ h)) * 2.0).sum() + np.tanh(h @ w[0]).sum()
        np.testing.assert_allclose(got["out"], want, rtol=1e-12)
