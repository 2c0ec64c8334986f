"""The Tensor face a PyTorch user expects (issue 10): methods, indexing, autograd state,
in-place updates, dtypes, copies and checkpoints.

Values are checked against NumPy in float64, gradients against central differences
of the same NumPy function in float64 (every method here is written independently
in NumPy, never through lucid).
"""
import copy
import io
import os
import pickle
import threading

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor
from numeric_helpers import numeric_grad


def rng(seed=0):
    return np.random.default_rng(seed)


def check(method, reference, x, seed=1):
    """``method`` on a float64 leaf against ``reference`` on the array: value and gradient."""
    t = Tensor(x, requires_grad=True, dtype="float64")
    y = method(t)
    expected = reference(x)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    w = rng(seed).standard_normal(np.shape(expected))
    y.backward(w)
    np.testing.assert_allclose(t.grad, numeric_grad(reference, x, w), rtol=1e-6, atol=1e-7)


X = rng().standard_normal((3, 4, 2))

METHODS = [
    ("reshape", lambda t: t.reshape(4, -1), lambda a: a.reshape(4, -1)),
    ("reshape tuple", lambda t: t.reshape((2, 12)), lambda a: a.reshape(2, 12)),
    ("view", lambda t: t.view(-1), lambda a: a.reshape(-1)),
    ("flatten", lambda t: t.flatten(), lambda a: a.reshape(-1)),
    ("flatten 1", lambda t: t.flatten(1), lambda a: a.reshape(3, 8)),
    ("flatten 0..1", lambda t: t.flatten(0, 1), lambda a: a.reshape(12, 2)),
    ("unsqueeze", lambda t: t.unsqueeze(1), lambda a: a[:, None]),
    ("unsqueeze -1", lambda t: t.unsqueeze(-1), lambda a: a[..., None]),
    ("squeeze", lambda t: t.unsqueeze(0).squeeze(), lambda a: a),
    ("squeeze dim", lambda t: t[:, :1].squeeze(1), lambda a: a[:, 0]),
    ("permute", lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    ("permute tuple", lambda t: t.permute((1, 2, 0)), lambda a: a.transpose(1, 2, 0)),
    ("transpose", lambda t: t.transpose(0, 2), lambda a: a.swapaxes(0, 2)),
    ("transpose neg", lambda t: t.transpose(-1, -2), lambda a: a.swapaxes(-1, -2)),
    ("T", lambda t: t.T, lambda a: a.transpose(2, 1, 0)),
    ("pow 2", lambda t: t ** 2, lambda a: a ** 2),
    ("pow 3", lambda t: t ** 3, lambda a: a ** 3),
    ("pow -2", lambda t: (t.abs() + 1) ** -2, lambda a: (np.abs(a) + 1) ** -2.0),
    ("pow 1.5", lambda t: (t.abs() + 1) ** 1.5, lambda a: (np.abs(a) + 1) ** 1.5),
    ("pow method", lambda t: (t.abs() + 1).pow(0.3), lambda a: (np.abs(a) + 1) ** 0.3),
    ("rpow", lambda t: 2 ** t, lambda a: 2.0 ** a),
    ("tensor pow", lambda t: (t.abs() + 1) ** (t * 0.5),
     lambda a: (np.abs(a) + 1) ** (a * 0.5)),
    ("neg", lambda t: -t, lambda a: -a),
    ("sum dim", lambda t: t.sum(dim=1), lambda a: a.sum(1)),
    ("sum keepdim", lambda t: t.sum(dim=(0, 2), keepdim=True), lambda a: a.sum((0, 2), keepdims=True)),
    ("sum axis", lambda t: t.sum(axis=-1), lambda a: a.sum(-1)),
    ("sum positional", lambda t: t.sum(0, True), lambda a: a.sum(0, keepdims=True)),
    ("mean dim", lambda t: t.mean(dim=0), lambda a: a.mean(0)),
    ("mean keepdims", lambda t: t.mean(axis=1, keepdims=True), lambda a: a.mean(1, keepdims=True)),
    ("clone", lambda t: t.clone() * 3, lambda a: a * 3),
    ("exp tanh", lambda t: t.exp().tanh(), lambda a: np.tanh(np.exp(a))),
    ("masked by comparison", lambda t: (t > 0) * t, lambda a: (a > 0) * a),
    ("sigmoid", lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    ("max", lambda t: t.max(), lambda a: a.max()),
    ("max dim", lambda t: t.max(dim=1)[0], lambda a: a.max(1)),
    ("max keepdim", lambda t: t.max(0, keepdim=True)[0], lambda a: a.max(0, keepdims=True)),
    ("amax", lambda t: t.amax(dim=(0, 2)), lambda a: a.max((0, 2))),
    ("softmax", lambda t: t.softmax(dim=1),
     lambda a: np.exp(a) / np.exp(a).sum(1, keepdims=True)),
    ("log_softmax", lambda t: t.log_softmax(-1),
     lambda a: a - np.log(np.exp(a).sum(-1, keepdims=True))),
    ("where", lambda t: lucid.where(t > 0, t, t * 2), lambda a: np.where(a > 0, a, 2 * a)),
    ("where number", lambda t: lucid.where(t > 0, t, 0.0), lambda a: np.where(a > 0, a, 0.0)),
    ("where-like", lambda t: (t >= 0.1) * t + (t < 0.1) * t ** 2,
     lambda a: np.where(a >= 0.1, a, a ** 2)),
]


@pytest.mark.parametrize("name, method, reference", METHODS, ids=[m[0] for m in METHODS])
def test_methods_values_and_gradients(name, method, reference):
    check(method, reference, X)


MASK = X > 0.2
INDEXING = [
    ("int", lambda a: a[1]),
    ("negative int", lambda a: a[-1]),
    ("two ints", lambda a: a[2, 3]),
    ("slice", lambda a: a[1:3]),
    ("step slice", lambda a: a[::2, 1::2]),
    ("negative step", lambda a: a[::-1, :, ::-1]),
    ("open slices", lambda a: a[:, -3:]),
    ("None", lambda a: a[None, 1, :, None]),
    ("ellipsis", lambda a: a[..., 1]),
    ("ellipsis middle", lambda a: a[0, ..., 0]),
    ("bool mask", lambda a: a[MASK]),
    ("bool row mask", lambda a: a[np.array([True, False, True])]),
    ("int array", lambda a: a[np.array([2, 0])]),
    ("repeated int array", lambda a: a[np.array([1, 1, 0, 1])]),
    ("int list", lambda a: a[[0, 2, 2]]),
    ("arrays in two axes", lambda a: a[np.array([0, 2, 2]), np.array([1, 1, 3])]),
    ("array and slice", lambda a: a[:, np.array([3, 3, 0]), 1:]),
    ("int beside array", lambda a: a[1, np.array([0, 0, 2])]),
    ("separated arrays", lambda a: a[np.array([0, 1]), :, np.array([1, 1])]),
    ("2d index array", lambda a: a[np.array([[0, 1], [2, 2]])]),
]


@pytest.mark.parametrize("name, index", INDEXING, ids=[i[0] for i in INDEXING])
def test_getitem_values_and_gradients(name, index):
    check(lambda t: index(t), index, X)


def test_max_shares_ties_and_argmax_gives_int64_positions_without_gradient():
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]], requires_grad=True, dtype="float64")
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [0, 0, 0]])  # torch.max() splits ties
    values, indices = x.max(dim=1)
    assert values.tolist() == [3.0, 2.0] and indices.tolist() == [1, 0]
    assert indices.dtype == np.int64 and not indices.requires_grad and values.requires_grad
    data = rng(12).standard_normal((4, 5))
    t = Tensor(data, requires_grad=True)
    assert t.argmax().item() == data.argmax()
    np.testing.assert_array_equal(t.argmax(dim=0).data, data.argmax(0))
    assert t.argmax(1, keepdim=True).shape == (4, 1) and not t.argmax().requires_grad


def test_getitem_with_tensor_indices_and_repeats_accumulate():
    x = Tensor(np.arange(5.0), requires_grad=True, dtype="float64")
    idx = Tensor(np.array([4, 4, 4, 0]))
    assert idx.dtype == np.int64
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 0, 0, 0, 3])
    mask = Tensor(np.array([True, False, True, False, False]))
    np.testing.assert_array_equal(x.detach()[mask].data, [0.0, 2.0])


@pytest.mark.parametrize("key, error", [((0, 0, 0, 0), IndexError), (5, IndexError),
                                        ((..., ...), IndexError), ("a", IndexError),
                                        (np.array([0.5]), IndexError)])
def test_bad_indices_raise_index_errors(key, error):
    with pytest.raises(error):
        Tensor(X)[key]


def test_comparisons_give_bools_without_gradient():
    a, b = rng(2).standard_normal((3, 4)), rng(3).standard_normal((3, 4))
    ta, tb = Tensor(a, requires_grad=True, dtype="float64"), Tensor(b)
    for op, ref in [("__lt__", np.less), ("__le__", np.less_equal), ("__gt__", np.greater),
                    ("__ge__", np.greater_equal), ("__eq__", np.equal), ("__ne__", np.not_equal)]:
        out = getattr(ta, op)(tb)
        assert out.dtype == np.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.data, ref(a, b.astype(np.float32)))
    np.testing.assert_array_equal((ta > 0).data, a > 0)
    np.testing.assert_array_equal((0 < ta).data, a > 0)  # reflected through __gt__
    np.testing.assert_array_equal((a < ta).data, np.zeros((3, 4), bool))  # ndarray on the left
    assert (ta == ta).data.all() and ta.eq(ta).data.all()
    labels, pred = Tensor([0, 2, 1, 2]), Tensor([0, 1, 1, 2])
    correct = (pred == labels).sum()
    assert correct.dtype == np.int64 and correct.item() == 3
    assert (pred == labels).float().mean().item() == pytest.approx(0.75)
    assert {ta: 1}[ta] == 1 and ta in [tb, ta]  # still a dict key and a list member


def test_numpy_arrays_and_scalars_on_both_sides():
    a = rng(4).standard_normal((2, 3))
    t = Tensor(rng(5).standard_normal((3, 2)), requires_grad=True, dtype="float64")
    y = a @ t
    np.testing.assert_allclose(y.data, a @ t.data)
    y.sum().backward()
    np.testing.assert_allclose(t.grad, a.T @ np.ones((2, 2)))
    for out, ref in [(2.0 - t, 2.0 - t.data), (t / 2, t.data / 2), (1 / (t.abs() + 1), 1 / (np.abs(t.data) + 1)),
                     (a.T + t, a.T + t.data), (t * a.T, t.data * a.T), (lucid.matmul(a, t), a @ t.data)]:
        np.testing.assert_allclose(out.data, ref)


def test_size_numel_item_tolist_dim_clone_to():
    t = Tensor(X, dtype="float64")
    assert t.size() == (3, 4, 2) and t.size(1) == 4 and t.size(-1) == 2
    assert t.numel() == 24 and t.dim() == 3 and t.ndim == 3
    assert t.tolist() == X.tolist()
    assert t[0, 0, 1].item() == X[0, 0, 1]
    with pytest.raises(ValueError, match="one-element"):
        t.item()
    c = t.clone()
    assert not np.shares_memory(c.data, t.data)
    np.testing.assert_array_equal(c.data, X)
    assert t.to("float64") is t
    f = t.to("float32")
    assert f.dtype == np.float32 and t.dtype == np.float64
    assert t.to(np.float32).dtype == np.float32 and t.float().dtype == np.float32
    assert Tensor([1.7, -2.2]).to("int64").tolist() == [1, -2]
    assert Tensor([1.0, 0.0]).bool().tolist() == [True, False]
    g = Tensor([1.0, 2.0], requires_grad=True)
    g.to("float64").sum().backward()
    assert g.grad.dtype == np.float32 and g.grad.tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="dim or its alias axis"):
        t.sum(dim=0, axis=1)


def test_lucid_functions_work_on_tensors_and_say_what_they_take():
    t = Tensor([0.0, 1.0])
    np.testing.assert_allclose(lucid.exp(t).data, np.exp([0.0, 1.0]), rtol=1e-6)
    np.testing.assert_allclose(lucid.reshape(t, (2, 1)).data, [[0.0], [1.0]])
    assert lucid.transpose(Tensor(X), 0, 1).shape == (4, 3, 2)
    assert lucid.transpose(Tensor(X), (2, 0, 1)).shape == (2, 3, 4)
    with pytest.raises(TypeError, match="lucid.<op>"):
        lucid.frontend.apply("exp", t)


class _Shapes(nn.Module):
    """The same methods inside a module, where the batch size is symbolic."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 2, dtype="float64")

    def forward(self, x):
        h = x.flatten(1)  # (N, 4, 2) -> (N, 8)
        h = self.lin(h).unsqueeze(1).permute(0, 2, 1)  # (N, 2, 1)
        return (h.squeeze(-1)[:, 1] ** 2 + x[:, 0, 1] * (x[..., 0].sum(dim=1) > 0)).mean()


def test_methods_inside_a_module_with_a_symbolic_batch():
    m = _Shapes()
    W, b = m.lin.weight.data, m.lin.bias.data

    def reference(a):
        h = a.reshape(len(a), 8) @ W.T + b
        return np.mean(h[:, 1] ** 2 + a[:, 0, 1] * (a[..., 0].sum(1) > 0))

    for n in (3, 5):  # one program serves both batch sizes
        x = rng(n).standard_normal((n, 4, 2))
        t = Tensor(x, requires_grad=True)
        y = m(t)
        np.testing.assert_allclose(y.item(), reference(x), rtol=1e-12)
        y.backward()
        np.testing.assert_allclose(t.grad, numeric_grad(reference, x, 1.0), rtol=1e-6,
                                   atol=1e-8)
    assert len(m._programs) == 1


# ------------------------------------------------------------------- autograd state
def test_no_grad_context_and_decorator_and_enable_grad():
    w = Tensor([1.0, 2.0], requires_grad=True)
    with lucid.no_grad():
        assert not lucid.is_grad_enabled()
        y = w * 2
        with lucid.enable_grad():
            z = w * 2
        assert not lucid.is_grad_enabled()
    assert lucid.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and z.requires_grad

    @lucid.no_grad()
    def f(t):
        return (t * 3).sum()

    assert not f(w).requires_grad and lucid.is_grad_enabled()
    with pytest.raises(ValueError):
        y.sum().backward()


def test_grad_mode_is_per_thread_and_restored_after_an_exception():
    seen = []
    with lucid.no_grad():
        worker = threading.Thread(target=lambda: seen.append(lucid.is_grad_enabled()))
        worker.start()
        worker.join()
    assert seen == [True]
    with pytest.raises(KeyError):
        with lucid.no_grad():
            raise KeyError
    assert lucid.is_grad_enabled()


def test_no_grad_module_call_records_nothing_and_still_updates_running_stats():
    bn = nn.BatchNorm1d(3)
    x = Tensor(rng(6).standard_normal((8, 3)), dtype="float32")
    with lucid.no_grad():
        y = bn(x)
    assert not y.requires_grad
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * x.data.mean(0), rtol=1e-5)
    bn(x).sum().backward()  # and outside, the gradient program is there
    assert bn.weight.grad is not None


def test_sgd_step_under_no_grad_matches_numpy():
    lin = nn.Linear(3, 2, dtype="float64")
    x = rng(7).standard_normal((5, 3))
    W0, b0 = lin.weight.data.copy(), lin.bias.data.copy()
    weight = lin.weight
    (lin(Tensor(x)) ** 2).sum().backward()
    y = x @ W0.T + b0
    gW, gb = (2 * y).T @ x, (2 * y).sum(0)
    np.testing.assert_allclose(lin.weight.grad, gW, rtol=1e-10)
    with lucid.no_grad():
        for p in lin.parameters():
            p -= 0.1 * p.grad
    assert lin.weight is weight  # updated in place, not rebound
    np.testing.assert_allclose(lin.weight.data, W0 - 0.1 * gW, rtol=1e-12)
    np.testing.assert_allclose(lin.bias.data, b0 - 0.1 * gb, rtol=1e-12)
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ (W0 - 0.1 * gW).T + b0 - 0.1 * gb)


@pytest.mark.parametrize("update", [
    lambda p: p.__isub__(1.0), lambda p: p.__iadd__(Tensor([1.0, 1.0])),
    lambda p: p.__imul__(2), lambda p: p.__itruediv__(2), lambda p: p.copy_(np.ones(2)),
    lambda p: p.zero_()])
def test_in_place_on_a_leaf_requiring_grad_raises_and_changes_nothing(update):
    p = Tensor([1.0, 2.0], requires_grad=True)
    data = p.data
    with pytest.raises(RuntimeError, match="in-place"):
        update(p)
    assert p.data is data and p.data.tolist() == [1.0, 2.0] and p.is_leaf


def test_in_place_under_no_grad_writes_the_same_array_and_views_see_it():
    p = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    alias = p.detach()
    assert np.shares_memory(alias.data, p.data) and not alias.requires_grad
    data = p.data
    with lucid.no_grad():
        p *= 2
        p += Tensor([1.0, 1.0, 1.0])
        p /= 2
        p -= 0.5
    assert p.data is data and p.data.tolist() == [1.0, 2.0, 3.0]
    with lucid.no_grad():
        p.copy_([5.0, 6.0, 7.0])
    assert alias.data.tolist() == [5.0, 6.0, 7.0]
    with lucid.no_grad():
        p.zero_()
    assert p.data.tolist() == [0.0, 0.0, 0.0] and p.data is data


def test_in_place_on_a_tensor_with_history_extends_it():
    x = Tensor([1.0, 2.0], requires_grad=True, dtype="float64")
    y = x * 3
    y += x ** 2
    y *= 2
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * (3 + 2 * np.array([1.0, 2.0])))
    plain = Tensor([1.0, 1.0], dtype="float64")
    plain += x  # a tensor without history takes one when it adds a tensor requiring grad
    assert plain.requires_grad


def test_in_place_keeps_dtype_and_shape_like_torch():
    i = Tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += 0.5
    assert i.tolist() == [1, 2] and i.dtype == np.int64
    f = Tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="shape"):
        f += Tensor([[1.0], [2.0]])
    assert f.tolist() == [1.0, 2.0]


def test_setitem_follows_the_in_place_rules():
    p = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        p[0] = 5.0
    assert p.tolist() == [1.0, -2.0, 3.0]
    with lucid.no_grad():
        p[p.detach() < 0] = 0.0
        p[Tensor([2])] = Tensor([7.0])
    assert p.tolist() == [1.0, 0.0, 7.0]
    y = p * 2
    with pytest.raises(RuntimeError, match="lucid.where"):
        y[0] = 1.0
    assert y.tolist() == [2.0, 0.0, 14.0]
    i = Tensor([1, 2, 3])
    i[1:] = 0
    assert i.tolist() == [1, 0, 0] and i.dtype == np.int64
    with pytest.raises(RuntimeError, match="can't be stored"):
        i[:] = np.array([0.5, 1.5, 2.5])


def test_requires_grad_():
    t = Tensor([1.0, 2.0])
    assert t.requires_grad_() is t and t.requires_grad
    (t * 2).sum().backward()
    assert t.grad.tolist() == [2.0, 2.0]
    with pytest.raises(TypeError):
        Tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError):
        (t * 2).requires_grad_(False)


@pytest.mark.parametrize("train", [True, False])
def test_backward_after_an_in_place_change_of_a_saved_value_raises(train):
    lin = nn.Linear(3, 2).train(train)
    x = Tensor(rng(13).standard_normal((4, 3)), dtype="float32", requires_grad=True)
    out = (lin(x) ** 2).sum()
    with lucid.no_grad():
        lin.weight -= 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()
    assert lin.weight.grad is None and x.grad is None
    y = (x * x).sum()
    z = (x + 1).sum()  # the sum's backward does not need x's values
    with lucid.no_grad():
        x += 1.0
    z.backward()
    np.testing.assert_array_equal(x.grad, np.ones((4, 3)))
    with pytest.raises(RuntimeError, match="inplace"):
        y.backward()


def test_second_backward_raises_unless_retain_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    assert x.grad.tolist() == [2.0, 4.0]  # unchanged by the refused call
    x.grad = None
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert x.grad.tolist() == [4.0, 8.0]
    lin = nn.Linear(2, 1)
    out = lin(Tensor([[1.0, 2.0]])).sum()
    out.backward()
    with pytest.raises(RuntimeError, match="second time"):
        out.backward()


# ------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("data, dtype", [
    ([1, 2, 3], np.int64), (np.array([1, 2], np.int32), np.int64), (np.array([1], np.uint8), np.int64),
    (3, np.int64), ([True, False], np.bool_), (np.array([True]), np.bool_), (1.5, np.float32),
    ([1.0, 2], np.float32), (np.array([1.0]), np.float64), (np.array([1.0], np.float32), np.float32)])
def test_dtypes_are_inferred_as_torch_infers_them(data, dtype):
    assert Tensor(data).dtype == dtype


def test_float64_data_into_a_float32_model_is_a_type_error_before_anything_runs():
    bn = nn.BatchNorm1d(3)
    x = rng(8).standard_normal((4, 3))
    with pytest.raises(TypeError, match="float64.*float32"):
        bn(Tensor(x))
    assert bn.running_mean.data.tolist() == [0.0, 0.0, 0.0] and bn._programs == {}
    y = bn(Tensor(x).to("float32"))
    assert y.dtype == np.float32
    bn.to("float64")
    assert bn(Tensor(x)).dtype == np.float64


def test_integer_labels_stay_integers_and_index():
    logits = Tensor(rng(9).standard_normal((4, 3)), requires_grad=True, dtype="float64")
    labels = Tensor(np.array([2, 0, 1, 2]))
    picked = logits[np.arange(4), labels]
    np.testing.assert_allclose(picked.data, logits.data[np.arange(4), [2, 0, 1, 2]])
    picked.sum().backward()
    expected = np.zeros((4, 3))
    expected[np.arange(4), [2, 0, 1, 2]] = 1
    np.testing.assert_array_equal(logits.grad, expected)


# -------------------------------------------------------------- copies and checkpoints
def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


@pytest.mark.parametrize("copier", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))],
                         ids=["deepcopy", "pickle"])
def test_module_copies_after_calls_share_nothing(copier):
    net = _net()
    x = Tensor(rng(10).standard_normal((6, 3)), dtype="float32")
    net(x).sum().backward()
    twin = copier(net)
    assert twin._programs == {}
    for (k, p), (k2, q) in zip(net.named_parameters() + net.named_buffers(),
                               twin.named_parameters() + twin.named_buffers()):
        assert k == k2 and p is not q and not np.shares_memory(p.data, q.data)
        np.testing.assert_array_equal(p.data, q.data)
    net.eval(), twin.eval()
    np.testing.assert_array_equal(net(x).data, twin(x).data)
    with lucid.no_grad():
        for p in twin.parameters():
            p -= 1.0
    assert not np.array_equal(net(x).data, twin(x).data)
    twin.train()
    twin(x).sum().backward()  # the copy compiles and differentiates on its own


def test_save_and_load_round_trip(tmp_path):
    net = _net()
    state = {"model": net.state_dict(), "epoch": 7, "lr": 0.01, "name": "run-1",
             "history": [1.5, 2, None, True], "pair": (Tensor([1.0, 2.0], requires_grad=True),
                                                       np.arange(3))}
    path = tmp_path / "ckpt.lucid"
    lucid.save(state, path)
    assert path.exists() and not (tmp_path / "ckpt.lucid.npz").exists()
    back = lucid.load(path)
    assert back["epoch"] == 7 and back["lr"] == 0.01 and back["name"] == "run-1"
    assert back["history"] == [1.5, 2, None, True]
    t, a = back["pair"]
    assert isinstance(t, Tensor) and t.requires_grad and t.tolist() == [1.0, 2.0]
    assert a.dtype == np.int64 and a.tolist() == [0, 1, 2]
    for k, v in net.state_dict().items():
        assert back["model"][k].dtype == v.dtype
        np.testing.assert_array_equal(back["model"][k], v)
    fresh = _net()
    fresh.load_state_dict(back["model"])
    x = Tensor(rng(11).standard_normal((4, 3)), dtype="float32")
    np.testing.assert_array_equal(fresh.eval()(x).data, net.eval()(x).data)


@pytest.mark.parametrize("value", [object(), {1.5: 1}, np.array(["a"]), {"f": lambda: 0}])
def test_save_refuses_what_it_cannot_store(value, tmp_path):
    with pytest.raises(TypeError):
        lucid.save(value, tmp_path / "x")


class _Exploit:
    def __reduce__(self):
        return (os.mkdir, (MARKER[0],))


MARKER = [None]


def test_load_refuses_pickles_without_running_them(tmp_path):
    MARKER[0] = str(tmp_path / "pwned")
    crafted = tmp_path / "model.pt"
    crafted.write_bytes(pickle.dumps({"w": _Exploit()}))
    with pytest.raises(ValueError, match="not a lucid checkpoint"):
        lucid.load(crafted)
    npz = tmp_path / "object.npz"
    np.savez(npz, structure=np.array([_Exploit()], dtype=object))
    assert not os.path.exists(MARKER[0])
    with pytest.raises(ValueError, match="not a lucid checkpoint"):
        lucid.load(npz)
    assert not os.path.exists(MARKER[0])


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04broken zip"])
def test_load_refuses_corrupt_files(content, tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a lucid checkpoint"):
        lucid.load(path)


def test_load_refuses_foreign_and_truncated_archives(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(ValueError, match="not a lucid checkpoint"):
        lucid.load(foreign)
    good = io.BytesIO()
    lucid.save({"w": np.ones(3)}, good)
    cut = tmp_path / "cut"
    cut.write_bytes(good.getvalue()[:-40])
    with pytest.raises(ValueError, match="not a lucid checkpoint"):
        lucid.load(cut)


# -- review findings: in-place writes that autograd must see -----------------------------
def test_adding_a_tensor_with_history_to_itself_in_place():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y += y
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 4.0, 4.0])


@pytest.mark.parametrize("write", [lambda y: y.zero_(), lambda y: y.__iadd__(100.0),
                                   lambda y: y.__setitem__(0, 5.0),
                                   lambda y: y.copy_(Tensor([1.0, 1.0, 1.0]))])
def test_writing_a_saved_output_under_no_grad_makes_backward_refuse(write):
    x = Tensor([0.0, 1.0, 2.0], requires_grad=True)
    y = x.exp()  # exp's backward reads its own output
    with lucid.no_grad():
        write(y)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    assert x.grad is None


def test_writing_through_a_detached_alias_makes_backward_refuse():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    d = x.detach()
    d += 10
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    assert x.grad is None


def test_writing_an_unrelated_tensor_does_not_stop_a_backward():
    x = Tensor([0.0, 1.0, 2.0], requires_grad=True)
    y = x.exp()
    other = Tensor([1.0, 2.0])
    with lucid.no_grad():
        other += 1  # the first in-place write of the process may come after the forward
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp([0.0, 1.0, 2.0]), rtol=1e-6)
