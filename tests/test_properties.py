"""Issue 5, item 5: property-based tests (hypothesis).

BatchNorm1d over random shapes, dtypes and options against a float64 reference written
here from SPEC.md (forward, backward, running statistics over two steps, eval), and
against central finite differences; random graphs of primitives through the generated
code against the reference executor, values and every gradient, with a symbolic batch.
"""
import itertools

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import lucid
import lucid.nn as nn
import lucid.ops as ops
from lucid import Tensor
from lucid.ops import REGISTRY
from lucid.runtime import run as reference_run

TOL = {"float32": 2e-4, "float64": 1e-9}
# Reproducible runs (the same examples every time, no flaky CI), and no shrinking: a failing
# example is printed as found, which keeps a failure's run time bounded.
PROFILE = dict(deadline=None, derandomize=True, database=None,
               phases=(Phase.explicit, Phase.generate))


def close(got, want, tol, scale=1.0, what=""):
    """|got - want| <= tol * (scale + |want|max): relative to the quantity's own scale."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    bound = tol * (scale + (np.abs(want).max() if want.size else 0))
    err = np.abs(got - want).max() if want.size else 0
    assert err <= bound, f"{what}: error {err:.3g} > {bound:.3g}"


# -- the float64 reference (SPEC.md, "BatchNorm1d" and "The backward pass, correctly") -------
def reference_step(x, dy, state, opts, train):
    """One call; returns (y, dx, dgamma, dbeta, dx scale) and updates ``state`` in place."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    axes = (0,) if x.ndim == 2 else (0, 2)
    pc = (1, -1) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    gamma = state.get("weight", np.ones(x.shape[1]))
    batch = train or not opts["track"]
    if batch:
        mean, var = x.mean(axes), ((x - x.mean(axes, keepdims=True)) ** 2).mean(axes)
    else:
        mean, var = state["running_mean"], state["running_var"]
    rstd = 1 / np.sqrt(var + opts["eps"])
    xhat = (x - mean.reshape(pc)) * rstd.reshape(pc)
    y = xhat * gamma.reshape(pc) + state.get("bias", np.zeros(x.shape[1])).reshape(pc)
    s1, s2 = dy.sum(axes), (dy * xhat).sum(axes)
    k = (gamma * rstd).reshape(pc)
    dx = k / m * (m * dy - s1.reshape(pc) - xhat * s2.reshape(pc)) if batch else k * dy
    if train and opts["track"]:
        state["num_batches_tracked"] += 1
        f = opts["momentum"]
        f = 1 / state["num_batches_tracked"] if f is None else f
        state["running_mean"] = (1 - f) * state["running_mean"] + f * mean
        state["running_var"] = (1 - f) * state["running_var"] + f * var * m / (m - 1)
    return y, dx, s2, s1, np.abs(k).max() * np.abs(dy).max()


shapes = st.one_of(st.tuples(st.integers(2, 6), st.integers(1, 4)),
                   st.tuples(st.integers(2, 4), st.integers(1, 4), st.integers(1, 5)))
momenta = st.one_of(st.sampled_from([None, 0.0, 0.1, 1.0]), st.floats(0, 1))
options = st.fixed_dictionaries({
    "affine": st.booleans(), "track": st.booleans(), "momentum": momenta,
    "eps": st.one_of(st.sampled_from([1e-5, 1e-3, 0.1]), st.floats(1e-6, 1.0)),
    "dtype": st.sampled_from(["float32", "float64"])})


def make(shape, opts, seed):
    rng = np.random.default_rng(seed)
    c, dt = shape[1], opts["dtype"]
    bn = nn.BatchNorm1d(c, eps=opts["eps"], momentum=opts["momentum"], affine=opts["affine"],
                        track_running_stats=opts["track"], dtype=dt)
    state = {}
    if opts["affine"]:
        bn.weight.data = rng.uniform(0.5, 2, c).astype(dt)
        bn.bias.data = rng.standard_normal(c).astype(dt)
        state.update(weight=bn.weight.data.astype(np.float64), bias=bn.bias.data.astype(np.float64))
    if opts["track"]:
        bn.running_mean.data = rng.standard_normal(c).astype(dt)
        bn.running_var.data = rng.uniform(0.5, 2, c).astype(dt)
        state.update(running_mean=bn.running_mean.data.astype(np.float64),
                     running_var=bn.running_var.data.astype(np.float64), num_batches_tracked=0)
    batches = [(rng.standard_normal(shape) * rng.uniform(0.5, 2) + rng.uniform(-2, 2),
                rng.standard_normal(shape)) for _ in range(3)]
    return bn, state, [(x.astype(dt), dy.astype(dt)) for x, dy in batches]


def check_state(bn, state, tol):
    for key in ("running_mean", "running_var"):
        if key in state:
            assert getattr(bn, key).dtype == bn._float_dtype()
            close(getattr(bn, key).data, state[key], tol, what=key)
    if "num_batches_tracked" in state:
        assert int(bn.num_batches_tracked.data) == state["num_batches_tracked"]
    else:
        assert bn.running_mean is None and bn.num_batches_tracked is None


@settings(max_examples=30, **PROFILE)
@given(shape=shapes, opts=options, seed=st.integers(0, 2**16))
def test_batchnorm_tensor_face_against_reference(shape, opts, seed):
    bn, state, batches = make(shape, opts, seed)
    tol = TOL[opts["dtype"]]
    grads = {"weight": 0.0, "bias": 0.0}
    for step, (x, dy) in enumerate(batches):
        train = step < 2  # two train steps, then eval
        bn.train(train)
        t = Tensor(x, requires_grad=True)
        y = bn(t)
        y.backward(Tensor(dy))
        ry, rdx, rdg, rdb, scale = reference_step(x, dy, state, opts, train)
        assert y.dtype == t.grad.dtype == np.dtype(opts["dtype"])
        close(y.data, ry, tol, what="y")
        close(t.grad, rdx, tol, scale, what="dx")
        if opts["affine"]:
            grads["weight"] = grads["weight"] + rdg  # .grad accumulates over calls
            grads["bias"] = grads["bias"] + rdb
            close(bn.weight.grad, grads["weight"], tol, np.abs(dy).sum(), what="dgamma")
            close(bn.bias.grad, grads["bias"], tol, np.abs(dy).sum(), what="dbeta")
        else:
            assert bn.weight is None and bn.parameters() == []
        check_state(bn, state, tol)


@settings(max_examples=25, **PROFILE)
@given(shape=shapes, opts=options, seed=st.integers(0, 2**16))
def test_batchnorm_programs_against_reference(shape, opts, seed):
    bn, state, batches = make(shape, opts, seed)
    tol = TOL[opts["dtype"]]
    x_ph = lucid.placeholder((None,) + shape[1:], opts["dtype"], name="x")
    train = lucid.compile(bn, x_ph, mode="train")
    evaluate = lucid.compile(bn, x_ph, mode="eval", backward=True)
    for step, (x, dy) in enumerate(batches):
        program = train if step < 2 else evaluate
        out = program(x, dy)
        ry, rdx, rdg, rdb, scale = reference_step(x, dy, state, opts, step < 2)
        close(out["out"], ry, tol, what="y")
        close(out["grad:x"], rdx, tol, scale, what="dx")
        if opts["affine"]:
            close(out["grad:weight"], rdg, tol, np.abs(dy).sum(), what="dgamma")
            close(out["grad:bias"], rdb, tol, np.abs(dy).sum(), what="dbeta")
        assert not any(k.startswith("grad:") and k not in ("grad:x", "grad:weight",
                                                            "grad:bias") for k in out)
        check_state(bn, state, tol)


@settings(max_examples=25, **PROFILE)
@given(shape=st.one_of(st.tuples(st.integers(2, 4), st.integers(1, 3)),
                       st.tuples(st.integers(2, 3), st.integers(1, 2), st.integers(1, 3))),
       opts=options, train=st.booleans(), seed=st.integers(0, 2**16))
def test_batchnorm_dx_against_finite_differences(shape, opts, train, seed):
    opts = dict(opts, dtype="float64", momentum=0.1)
    bn, _, batches = make(shape, opts, seed)
    bn.train(train)
    x, w = batches[0]
    t = Tensor(x, requires_grad=True)
    bn(t).backward(w)  # the gradient of loss(x) = sum(bn(x) * w)

    def loss(v):
        return float((bn(Tensor(v)).data * w).sum())

    h = 1e-6
    numeric = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = h
        numeric[i] = (loss(x + e) - loss(x - e)) / (2 * h)
    close(t.grad, numeric, 1e-5, np.abs(t.grad).max() + 1, what="dx")


# -- random graphs of primitives ---------------------------------------------------------
def positive(a):
    return lucid.exp(lucid.tanh(a))  # in [1/e, e]: safe under log, sqrt, rsqrt and division


def per_channel(v, ndim, at=1):
    shape = [1] * ndim
    shape[at] = -1
    return lucid.reshape(v, tuple(v.shape[0] if d == -1 else d for d in shape))


def _axes(ndim, k):
    subsets = [s for r in range(1, ndim + 1) for s in itertools.combinations(range(ndim), r)]
    return subsets[k % len(subsets)]


def _transpose_round_trip(a, w):
    if a.ndim == 2:
        return lucid.transpose(lucid.transpose(a, (1, 0)) * per_channel(w, 2, 0), (1, 0))
    return lucid.transpose(lucid.transpose(a, (0, 2, 1)) * per_channel(w, 3, 2), (0, 2, 1))


def _matmul(a, b, m):
    if a.ndim == 2:
        return a @ m
    rows = lucid.reduce_sum(a, 2) @ m
    return b + lucid.reshape(rows, ("N", m.shape[1], 1))


def _reshape_round_trip(a, w):
    n, c = a.shape[0], a.shape[1]
    if a.ndim == 2:
        return lucid.reshape(lucid.reshape(a, (n, 1, c)) * per_channel(w, 3, 2), (n, c))
    moved = lucid.reshape(a, (n, a.shape[2], c))  # a reinterpretation of the same elements
    return lucid.reshape(lucid.tanh(moved), a.shape) * b_like(a, w)


def b_like(a, w):
    return per_channel(w, a.ndim)


def _broadcast_sum(a, w, k):
    """A lower-rank value broadcast up and summed over axes that need not lead: the
    reduction axes must be shifted into the operand's own numbering (issue 13)."""
    low = lucid.reshape(lucid.tanh(w), (w.shape[0], 1)) if a.ndim == 3 else lucid.tanh(w)
    full = lucid.broadcast_to(low, a.shape) * a
    return a + lucid.reduce_sum(full, _axes(a.ndim, k), keepdims=True)


PRIMITIVES = {
    "add": lambda a, b, w, m, k: a + b,
    "sub": lambda a, b, w, m, k: a - b,
    "mul": lambda a, b, w, m, k: a * b,
    "div": lambda a, b, w, m, k: a / positive(b),
    "neg": lambda a, b, w, m, k: -a,
    "exp": lambda a, b, w, m, k: lucid.exp(lucid.tanh(a)),
    "log": lambda a, b, w, m, k: lucid.log(positive(a)),
    "sqrt": lambda a, b, w, m, k: lucid.sqrt(positive(a)),
    "rsqrt": lambda a, b, w, m, k: lucid.rsqrt(positive(a)),
    "tanh": lambda a, b, w, m, k: lucid.tanh(a),
    "relu": lambda a, b, w, m, k: lucid.relu(a),
    "channel": lambda a, b, w, m, k: a * b_like(a, w) + b_like(a, w),
    "sum_keep": lambda a, b, w, m, k: a + lucid.reduce_sum(b, _axes(b.ndim, k), keepdims=True),
    "mean_keep": lambda a, b, w, m, k: a * lucid.mean(b, _axes(b.ndim, k), keepdims=True),
    "sum_drop": lambda a, b, w, m, k: a - lucid.reshape(lucid.reduce_sum(b, 0),
                                                      (1,) + tuple(b.shape[1:])),
    "transpose": lambda a, b, w, m, k: _transpose_round_trip(a, w),
    "matmul": lambda a, b, w, m, k: _matmul(a, b, m),
    "reshape": lambda a, b, w, m, k: _reshape_round_trip(a, w),
    "broadcast_sum": lambda a, b, w, m, k: _broadcast_sum(a, w, k),
    "broadcast_sum_alone": lambda a, b, w, m, k: a * lucid.reduce_sum(
        lucid.broadcast_to(per_channel(w, a.ndim, 1) if a.ndim == 2 else
                           lucid.reshape(w, (w.shape[0], 1)), a.shape), _axes(a.ndim, k),
        keepdims=True),
}

steps = st.lists(st.tuples(st.sampled_from(sorted(PRIMITIVES)), st.integers(0, 99),
                           st.integers(0, 99), st.integers(0, 99)), min_size=1, max_size=7)


def random_function(program_steps, two_outputs):
    def fn(x, w, m):
        pool = [x]
        for name, i, j, k in program_steps:
            a, b = pool[i % len(pool)], pool[j % len(pool)]
            pool.append(PRIMITIVES[name](a, b, w, m, k))
        # every input is used, so every gradient is a real one (see the unused-input test)
        out = {"y": pool[-1], "uses": lucid.reduce_sum(w) * lucid.mean(m, (0,))}
        if two_outputs:
            out["total"] = lucid.mean(pool[len(pool) // 2] * x, (0,))
        return out
    return fn


@settings(max_examples=40, **PROFILE)
@given(program_steps=steps, two_outputs=st.booleans(), three_d=st.booleans(),
       c=st.integers(1, 4), length=st.integers(1, 4), n=st.integers(2, 5),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**16))
def test_random_graphs_against_the_reference_executor(program_steps, two_outputs, three_d,
                                                      c, length, n, dtype, seed):
    x_shape = (None, c, length) if three_d else (None, c)
    phs = [lucid.placeholder(x_shape, dtype, name="x"), lucid.placeholder((c,), dtype, name="w"),
           lucid.placeholder((c, c), dtype, name="m")]
    program = lucid.compile(random_function(program_steps, two_outputs), *phs, mode="train")
    program.graph.lint(REGISTRY)
    rng = np.random.default_rng(seed)
    full = (n,) + x_shape[1:]
    inputs = [rng.standard_normal(full), rng.standard_normal(c),
              rng.standard_normal((c, c)) / np.sqrt(c)]
    node = program.graph.node
    seeds = [rng.standard_normal(tuple(n if d == "N" else d for d in node(s).shape))
             for s in program.seeds]
    feeds = dict(zip(program.user_inputs(), [a.astype(dtype) for a in inputs + seeds]))
    got, want = program.run(feeds), reference_run(program.graph, feeds)
    assert list(got) == list(want)
    assert {"grad:x", "grad:w", "grad:m"} <= set(want)
    for key, value in want.items():
        assert np.asarray(got[key]).dtype == value.dtype == np.dtype(dtype), key
        close(got[key], value, 10 * TOL[dtype], 1.0, what=key)
    # the stateful call path gives the same values
    called = program(*feeds.values())
    for key, value in got.items():
        assert np.array_equal(called[key], value), key
    # so does the forward/backward split the Tensor face runs
    outs, saved = program.run_forward({p: v for p, v in feeds.items() if p not in program.seeds})
    grads = program.run_backward(saved, {s: feeds[s] for s in program.seeds})
    for key, value in {**outs, **grads}.items():
        close(value, want[key], 10 * TOL[dtype], 1.0, what=f"split {key}")


# -- what the random graphs found (minimal reproductions) ---------------------------------------
def run_both(fn, *shapes, n=3):
    phs = [lucid.placeholder(sh, "float64", name=f"i{k}") for k, sh in enumerate(shapes)]
    program = lucid.compile(fn, *phs, mode="train")
    rng = np.random.default_rng(0)
    node = program.graph.node
    feeds = {p: rng.standard_normal(tuple(n if d == "N" else d for d in node(p).shape))
             for p in program.graph.inputs}
    want = reference_run(program.graph, feeds)
    got = program.run(feeds)
    outs, saved = program.run_forward({p: v for p, v in feeds.items() if p not in program.seeds})
    got_split = {**outs, **program.run_backward(saved, {s: feeds[s] for s in program.seeds})}
    for key, value in want.items():
        close(got[key], value, TOL["float64"], 1.0, what=key)
        close(got_split[key], value, TOL["float64"], 1.0, what=f"split {key}")


def test_zero_gradient_of_a_unit_shaped_input():
    run_both(lambda x, w: lucid.relu(x), (None, 1), (1,))


def test_softmax_split_forward_and_backward():  # the split forward once named an undefined temp
    run_both(lambda x: lucid.exp(x) / lucid.exp(x).sum(1, keepdims=True), (None, 4))


def test_broadcast_product_of_small_values_in_the_backward():
    run_both(lambda x: lucid.reduce_sum(lucid.tanh(x) * lucid.reduce_sum(lucid.tanh(x), (1,),
                                                                   keepdims=True) * x, (0,)),
             (None, 3))


# once a bug: `_t2 = (1/4)*_r0*n3` in a train step copied a buffer onto itself
def test_reshape_round_trip_times_a_keepdims_mean():
    run_both(lambda x, w: lucid.reshape(lucid.tanh(lucid.reshape(x, ("N", 1, 4))), ("N", 4, 1)) *
             lucid.reshape(w, (1, 4, 1)) * lucid.mean(x, (1, 2), keepdims=True), (None, 4, 1), (4,))


@pytest.mark.parametrize("shape, low, axes, keepdims", [
    ((4, 3, 5), (3, 1), (0, 2), False), ((4, 3, 5), (3, 1), (0, 2), True),
    ((4, 3, 5), (5,), (1, 2), False), ((4, 3, 5), (1, 5), (0, 2), True),
    (("N", 3, 5), (3, 1), (2,), True), (("N", 3), (3,), (1,), True)])
def test_a_broadcast_lower_rank_value_summed_over_a_non_leading_axis(shape, low, axes, keepdims):
    """``reduce_sum(broadcast_to(b, (4, 3, 5)), (0, 2))``: survived a mutation of the suite."""
    def fn(b, x):
        total = lucid.reduce_sum(lucid.broadcast_to(lucid.tanh(b), shape), axes, keepdims)
        return lucid.reduce_sum(total * lucid.reduce_sum(x))
    run_both(fn, low, (None, 2))
