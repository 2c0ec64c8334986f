"""lucid.data, lucid.optim.lr_scheduler, lucid.Generator and the seeding of dropout masks.

Loaders are checked against NumPy slicing, ``random_split`` against a Python
transcription of torch's length rule, schedulers against torch's documented
formulas (closed forms and the recursive rules torch steps by), and dropout
masks against the ``uniform`` op's definition (a NumPy generator seeded with
the key).
"""
import bisect
import collections
import math

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor
from lucid.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler,
                        Subset, TensorDataset, default_collate, random_split)
from lucid.eager import random
from lucid.graph import Role
from lucid.optim import lr_scheduler as sched


# -- dropout masks: drawn at call time from lucid's generator --------------------------------
def _mask(out):
    return out.numpy() != 0


def test_manual_seed_before_a_forward_fixes_the_mask_whenever_the_model_was_built():
    x = Tensor(np.ones((64, 32), np.float32))
    model = nn.Sequential(nn.Identity(), nn.Dropout(0.5))
    lucid.manual_seed(0)
    first = _mask(model(x))  # compiles here: tracing draws nothing
    assert not np.array_equal(_mask(model(x)), first)  # a new mask at each call
    nn.Linear(50, 50)  # draws from the generator
    lucid.manual_seed(0)
    assert np.array_equal(_mask(model(x)), first)  # cached program, same seed: same mask
    lucid.manual_seed(7)
    late = nn.Sequential(nn.Identity(), nn.Dropout(0.5))  # built later, under another seed
    lucid.manual_seed(0)
    assert np.array_equal(_mask(late(x)), first)


def test_the_compiled_program_draws_its_key_at_call_time_as_the_tensor_face():
    d = nn.Dropout(0.25)
    x = np.ones((40, 30), np.float32)
    program = lucid.compile(d, lucid.placeholder((None, 30), name="x"), backward=False)
    lucid.manual_seed(3)
    compiled = program(x)["out"]
    lucid.manual_seed(3)
    np.testing.assert_array_equal(d(Tensor(x)).numpy(), compiled)
    assert not np.array_equal(program(x)["out"], compiled)


def test_the_key_is_a_program_input_so_the_program_is_a_pure_function():
    p, shape = 0.4, (50, 20)
    program = lucid.compile(nn.Dropout(p), lucid.placeholder((None, 20), name="x"),
                            backward=False)
    graph = program.graph
    keys = [n for n in graph.inputs if graph.node(n).dtype == "int64"]
    assert len(keys) == 1 and graph.node(keys[0]).role is Role.CAPTURED
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)

    def run(key):
        return program.run({"x": x, keys[0]: np.asarray(key, np.int64)})["out"]
    # the uniform op's definition: numbers in [0, 1) from a NumPy generator seeded with the key
    keep = np.random.default_rng(11).random(shape).astype(np.float32) >= p
    np.testing.assert_allclose(run(11), np.where(keep, x / (1 - p), 0), rtol=1e-6)
    np.testing.assert_array_equal(run(11), run(11))
    assert not np.array_equal(run(11), run(12))


def test_dropout_holds_no_state_and_construction_draws_nothing():
    assert nn.Dropout(0.3).state_dict() == {}
    assert list(nn.Sequential(nn.Linear(3, 2), nn.Dropout()).state_dict()) == \
        ["0.weight", "0.bias"]
    lucid.manual_seed(5)
    expected = random.generator().random()
    lucid.manual_seed(5)
    nn.Dropout(0.5)
    assert random.generator().random() == expected


def test_two_call_sites_get_two_keys():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(x), self.drop(x)

    a, b = Twice()(Tensor(np.ones((30, 30), np.float32)))
    assert not np.array_equal(_mask(a), _mask(b))


def test_the_eval_graph_has_no_dropout_node_and_no_key():
    net = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2))
    ops = {}
    for mode in ("train", "eval"):
        graph = lucid.trace_graph(net, lucid.placeholder((None, 8)), mode=mode)[0]
        graph.lint()
        ops[mode] = [graph.node(n).op for n in graph.nx.nodes]
        ints = [n for n in graph.inputs if graph.node(n).dtype == "int64"]
        assert len(ints) == (mode == "train")
    assert ops["train"].count("uniform") == 1 and "uniform" not in ops["eval"]


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_rate_and_scaling(p):
    lucid.manual_seed(2024)
    x = Tensor(np.ones((250, 400)), requires_grad=True, dtype="float64")
    y = nn.Dropout(p)(x)
    kept = _mask(y)
    sigma = math.sqrt(p * (1 - p) / kept.size)
    assert abs(kept.mean() - (1 - p)) < 4 * sigma
    np.testing.assert_allclose(y.numpy()[kept], 1 / (1 - p), rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / (1 - p), rtol=1e-12)  # that call's mask


# -- lucid.Generator ---------------------------------------------------------------------------
def test_generator_seeds_like_torch():
    g = lucid.Generator()
    assert g.initial_seed() == 67280421310721
    assert g.manual_seed(4) is g and g.initial_seed() == 4
    assert g.manual_seed(-1).initial_seed() == 2**64 - 2  # 0xffff_ffff_ffff_ffff + seed
    a = g.manual_seed(9).numpy().random(3)
    np.testing.assert_array_equal(g.manual_seed(9).numpy().random(3), a)
    for bad, error in [(1.5, TypeError), (True, TypeError), (2**64, ValueError)]:
        with pytest.raises(error):
            g.manual_seed(bad)
    assert g.initial_seed() == 9  # a failed call changes nothing
    assert lucid.manual_seed(3) is random.default_generator()
    with pytest.raises(ValueError):
        lucid.Generator("cuda")


# -- datasets and loaders ----------------------------------------------------------------------
X = np.arange(26 * 3, dtype=np.float32).reshape(26, 3)
Y = np.arange(26) % 4


def _dataset():
    return TensorDataset(Tensor(X), Tensor(Y))


def test_tensor_dataset_items_and_checks():
    ds = _dataset()
    assert len(ds) == 26
    x, y = ds[5]
    np.testing.assert_array_equal(x.numpy(), X[5])
    assert y.numpy() == Y[5] and y.dtype == np.int64
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(Tensor(X), Tensor(Y[:-1]))
    with pytest.raises(TypeError):
        TensorDataset(X)
    with pytest.raises(TypeError):
        Dataset()  # abstract


@pytest.mark.parametrize("batch_size, drop_last", [(1, False), (5, False), (5, True),
                                                   (13, True), (26, False), (40, False)])
def test_loader_batches_match_numpy_slicing(batch_size, drop_last):
    loader = DataLoader(_dataset(), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    full, rest = divmod(26, batch_size)
    assert len(loader) == len(batches) == full + (rest > 0 and not drop_last)
    for i, batch in enumerate(batches):
        assert isinstance(batch, list) and len(batch) == 2  # as torch: a list per tuple sample
        np.testing.assert_array_equal(batch[0].numpy(), X[i * batch_size:(i + 1) * batch_size])
        np.testing.assert_array_equal(batch[1].numpy(), Y[i * batch_size:(i + 1) * batch_size])
        assert batch[0].dtype == np.float32 and batch[1].dtype == np.int64


def test_shuffling_covers_every_sample_and_is_reproducible():
    def epoch(loader):
        batches = list(loader)
        return np.concatenate([y.numpy() for _, y in batches]), \
            np.concatenate([x.numpy() for x, _ in batches])
    ds = TensorDataset(Tensor(X), Tensor(np.arange(26)))
    loader = DataLoader(ds, batch_size=4, shuffle=True)
    lucid.manual_seed(0)
    order = np.concatenate([y.numpy() for _, y in loader])
    assert sorted(order.tolist()) == list(range(26)) and order.tolist() != list(range(26))
    second = np.concatenate([y.numpy() for _, y in loader])
    assert not np.array_equal(order, second)  # a new order every epoch
    lucid.manual_seed(0)
    ids, xs = epoch(loader)
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_array_equal(xs, X[order])  # rows stay together
    # with a generator of its own, the global seed does not matter
    runs = []
    for seed in (1, 2):
        lucid.manual_seed(seed)
        g = lucid.Generator().manual_seed(42)
        runs.append([y.numpy().tolist() for _, y in DataLoader(ds, 5, shuffle=True, generator=g)])
    assert runs[0] == runs[1]


def test_a_subset_is_gathered_as_its_samples_collate():
    train, test = random_split(_dataset(), [0.75, 0.25], generator=lucid.Generator().manual_seed(0))
    fast = list(DataLoader(train, batch_size=6))
    slow = list(DataLoader(train, batch_size=6, collate_fn=lambda b: default_collate(b)))
    for a, b in zip(fast, slow, strict=True):
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
            assert u.dtype == v.dtype
    np.testing.assert_array_equal(fast[0][0].numpy(), X[train.indices[:6]])


def test_a_tensor_dataset_subclass_keeps_its_items():
    class Doubled(TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return Tensor(x.numpy() * 2), y

    (x, y), = DataLoader(Doubled(Tensor(X), Tensor(Y)), batch_size=26)
    np.testing.assert_array_equal(x.numpy(), 2 * X)


def test_default_collate_follows_torch_rules():
    P = collections.namedtuple("P", "a b")
    x, y = default_collate([(np.float32([1, 2]), 3), (np.float32([4, 5]), 6)])
    assert x.dtype == np.float32 and x.shape == (2, 2) and y.dtype == np.int64
    d = default_collate([{"v": 1.5, "s": "a"}, {"v": 2.5, "s": "b"}])
    assert d["v"].dtype == np.float64 and d["s"] == ["a", "b"]
    p = default_collate([P(np.float64(1), True), P(np.float64(2), False)])
    assert isinstance(p, P) and p.a.dtype == np.float64 and p.b.dtype == np.bool_
    lists = default_collate([[1, 2], [3, 4]])
    assert [t.numpy().tolist() for t in lists] == [[1, 3], [2, 4]]
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([Tensor([1.0]), Tensor([1.0, 2.0])])
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_unbatched_loading_and_exclusive_options():
    items = list(DataLoader(_dataset(), batch_size=None))
    assert len(items) == 26 and items[3][0].shape == (3,)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(_dataset(), sampler=SequentialSampler(X), shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler"):
        DataLoader(_dataset(), batch_size=4, batch_sampler=BatchSampler(range(26), 4, False))
    with pytest.raises(ValueError, match="drop_last"):
        DataLoader(_dataset(), batch_size=None, drop_last=True)
    with pytest.raises(TypeError):
        DataLoader(_dataset(), shuffle=True, generator=np.random.default_rng(0))
    batches = DataLoader(_dataset(), batch_sampler=BatchSampler(range(26), 10, True))
    assert len(batches) == 2 and [len(b[1].numpy()) for b in batches] == [10, 10]


def test_samplers():
    g = lucid.Generator().manual_seed(3)
    drawn = list(RandomSampler(range(4), num_samples=10, generator=g))
    assert len(drawn) == 10 and sorted(drawn[:4]) == sorted(drawn[4:8]) == [0, 1, 2, 3]
    repeated = list(RandomSampler(range(3), replacement=True, num_samples=50, generator=g))
    assert set(repeated) == {0, 1, 2}
    for bad in [dict(num_samples=0), dict(num_samples=True)]:
        with pytest.raises(ValueError):
            RandomSampler(range(3), **bad)
    with pytest.raises(TypeError):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError):
        BatchSampler(range(3), 2, None)


def _split_lengths(n, fractions):
    """torch's documented rule: floor(n * f) each, then the remainder one by one, round robin."""
    counts = [math.floor(n * f) for f in fractions]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


@pytest.mark.parametrize("n, lengths", [(10, [0.5, 0.3, 0.2]), (7, [0.3, 0.3, 0.4]),
                                        (11, [0.1] * 10), (26, [0.8, 0.2]), (9, [4, 5])])
def test_random_split(n, lengths):
    g = lucid.Generator().manual_seed(1)
    parts = random_split(range(n), lengths, generator=g)
    expected = lengths if isinstance(lengths[0], int) else _split_lengths(n, lengths)
    assert [len(p) for p in parts] == expected and all(isinstance(p, Subset) for p in parts)
    assert sorted(i for p in parts for i in p) == list(range(n))
    again = random_split(range(n), lengths, generator=g.manual_seed(1))
    assert [list(p) for p in again] == [list(p) for p in parts]


def test_random_split_rejects_bad_lengths():
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(range(5), [2, 2])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        random_split(range(5), [1.5, -0.5])


# -- learning-rate schedulers ------------------------------------------------------------------
STEPS = 60


def _opt(lrs=(0.1, 0.03)):
    return lucid.optim.SGD([{"params": [nn.Parameter([1.0])], "lr": lr} for lr in lrs])


def _run(make, lrs=(0.1, 0.03), steps=STEPS):
    opt = _opt(lrs)
    s = make(opt)
    rates = [[g["lr"] for g in opt.param_groups]]
    for _ in range(steps):
        opt.step()
        s.step()
        rates.append([g["lr"] for g in opt.param_groups])
        assert s.get_last_lr() == rates[-1]
    return np.array(rates), s, opt


CLOSED = {  # torch's documented closed forms, epoch e, base rate b
    "step": (lambda o: sched.StepLR(o, 7, 0.5), lambda b, e: b * 0.5 ** (e // 7)),
    "multistep": (lambda o: sched.MultiStepLR(o, [3, 10, 10, 25], 0.3),
                  lambda b, e: b * 0.3 ** bisect.bisect_right([3, 10, 10, 25], e)),
    "exponential": (lambda o: sched.ExponentialLR(o, 0.93), lambda b, e: b * 0.93 ** e),
    "lambda": (lambda o: sched.LambdaLR(o, lambda e: 1 / (1 + e)), lambda b, e: b / (1 + e)),
    "linear": (lambda o: sched.LinearLR(o, 0.25, 0.9, 11),
               lambda b, e: b * (0.25 + 0.65 * min(e, 11) / 11)),
    "cosine": (lambda o: sched.CosineAnnealingLR(o, 9, 0.001),
               lambda b, e: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * e / 9)) / 2),
}


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_schedulers_follow_the_documented_formulas(name):
    make, formula = CLOSED[name]
    rates, s, opt = _run(make)
    expected = [[formula(b, e) for b in (0.1, 0.03)] for e in range(STEPS + 1)]
    np.testing.assert_allclose(rates, expected, rtol=1e-10, atol=1e-14)
    assert s.base_lrs == [0.1, 0.03] and s.last_epoch == STEPS
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.03]


def _cosine_recursive(base, eta_min, period, steps):
    """torch's CosineAnnealingLR.get_lr, step by step (what the floats must equal)."""
    lr, out = base, [base]
    for t in range(1, steps + 1):
        if (t - 1 - period) % (2 * period) == 0:
            lr = lr + (base - eta_min) * (1 - math.cos(math.pi / period)) / 2
        else:
            lr = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period)) \
                * (lr - eta_min) + eta_min
        out.append(lr)
    return out


@pytest.mark.parametrize("period", [1, 4, 9, 2.5])
def test_cosine_steps_by_torchs_recursive_rule_exactly(period):
    rates, _, _ = _run(lambda o: sched.CosineAnnealingLR(o, period, 0.001), lrs=(0.1,))
    assert rates[:, 0].tolist() == _cosine_recursive(0.1, 0.001, period, STEPS)


def test_chained_schedulers_multiply_the_current_rate():
    opt = _opt((0.2,))
    a, b = sched.StepLR(opt, 3, 0.5), sched.ExponentialLR(opt, 0.9)
    lr, expected, got = 0.2, [], []
    for e in range(1, 20):
        opt.step()
        a.step()
        b.step()
        lr = lr * 0.5 if e % 3 == 0 else lr
        lr = lr * 0.9
        expected.append(lr)
        got.append(opt.param_groups[0]["lr"])
    assert got == expected


def test_the_scheduled_rate_drives_the_optimizer_step():
    p = nn.Parameter(np.zeros(2), dtype="float64")
    opt = lucid.optim.SGD([p], lr=1.0)
    s = sched.StepLR(opt, 2, 0.1)
    x, g = np.zeros(2), np.array([1.0, -2.0])
    for e in range(6):
        p.grad = g.copy()
        opt.step()
        x = x - 0.1 ** (e // 2) * g
        s.step()
    np.testing.assert_allclose(p.numpy(), x, rtol=1e-14)


def test_state_dict_resumes_the_schedule():
    reference, _, _ = _run(CLOSED["cosine"][0], lrs=(0.1,), steps=30)
    opt = _opt((0.1,))
    s = sched.CosineAnnealingLR(opt, 9, 0.001)
    for _ in range(12):
        opt.step()
        s.step()
    saved, saved_opt = s.state_dict(), opt.state_dict()
    assert "optimizer" not in saved and saved["last_epoch"] == 12
    opt2 = _opt((0.1,))
    s2 = sched.CosineAnnealingLR(opt2, 9, 0.001)
    opt2.load_state_dict(saved_opt)
    s2.load_state_dict(saved)
    rates = []
    for _ in range(18):
        opt2.step()
        s2.step()
        rates.append(opt2.param_groups[0]["lr"])
    assert rates == reference[13:, 0].tolist()


def test_scheduler_bad_input():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        sched.StepLR(object(), 3)
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(_opt(), 3, last_epoch=4)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        sched.LambdaLR(_opt(), [lambda e: 1.0])
    with pytest.raises(ValueError):
        sched.StepLR(_opt(), 0)
    with pytest.raises(ValueError):
        sched.CosineAnnealingLR(_opt(), 0)
    opt = _opt()
    with pytest.raises(ValueError):
        sched.LinearLR(opt, start_factor=0)
    assert "initial_lr" not in opt.param_groups[0]  # refused before touching the groups
