"""nn.functional losses and the loss modules against float64 NumPy references written
from torch's documented formulas (never through lucid); gradients also by central
differences of those references."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid import Tensor


def log_softmax_ref(x, axis=1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def reduce_ref(loss, reduction):
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def ce_index_ref(x, t, weight=None, ignore_index=-100, reduction="mean", smoothing=0.0):
    """torch's docs: l_n = -w_{y_n} log p_{n,y_n}, mean divided by sum of w_{y_n}; label
    smoothing mixes in -sum_c w_c log p_{n,c} / C, normalised the same way."""
    lp = log_softmax_ref(x, 1)
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight
    valid = t != ignore_index
    ts = np.where(valid, t, 0)
    picked = np.take_along_axis(lp, ts[:, None], 1)[:, 0]
    wt = np.where(valid, w[ts], 0.0)
    nll = -wt * picked
    smooth = np.where(valid, -(lp * w).sum(1), 0.0)
    if reduction == "mean":
        nll, smooth = nll.sum() / wt.sum(), smooth.sum() / wt.sum()
    elif reduction == "sum":
        nll, smooth = nll.sum(), smooth.sum()
    return (1 - smoothing) * nll + smoothing / c * smooth


def ce_prob_ref(x, p, weight=None, reduction="mean", smoothing=0.0):
    c = x.shape[1]
    p = p * (1 - smoothing) + smoothing / c
    w = np.ones(c) if weight is None else weight
    loss = -(log_softmax_ref(x, 1) * p * w).sum(1)
    return loss.sum() / x.shape[0] if reduction == "mean" else reduce_ref(loss, reduction)


def bce_ref(x, y, weight=None, pos_weight=None, reduction="mean"):
    """torch's docs: -w [pw y log s(x) + (1 - y) log(1 - s(x))], in log-sum-exp form."""
    pw = 1.0 if pos_weight is None else pos_weight
    log_s = -np.logaddexp(0, -x)
    log_1ms = -np.logaddexp(0, x)
    loss = -(pw * y * log_s + (1 - y) * log_1ms)
    return reduce_ref(loss * (1.0 if weight is None else weight), reduction)


def numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, dn = x.copy(), x.copy()
        up[i] += eps
        dn[i] -= eps
        g[i] = (np.sum(f(up)) - np.sum(f(dn))) / (2 * eps)
    return g


def check(lucid_fn, ref, x, rtol=1e-9):
    """Value and gradient (w.r.t. x, weighted by w for unreduced losses) in float64."""
    t = Tensor(x, requires_grad=True, dtype="float64")
    out = lucid_fn(t)
    expected = ref(x)
    np.testing.assert_allclose(out.data, expected, rtol=rtol, atol=1e-12)
    w = np.random.default_rng(9).normal(size=np.shape(expected))
    out.backward(np.asarray(w))
    np.testing.assert_allclose(t.grad, numeric_grad(lambda v: w * ref(v), x), rtol=1e-5,
                               atol=1e-8)


RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 4)) * 3
T = np.array([0, 3, 1, 1, 2, -100])
W = np.array([0.5, 2.0, 1.0, 3.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, W])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_with_class_indices(reduction, weight, smoothing):
    wt = None if weight is None else Tensor(weight, dtype="float64")
    check(lambda t: F.cross_entropy(t, Tensor(T), wt, reduction=reduction,
                                    label_smoothing=smoothing),
          lambda x: ce_index_ref(x, T, weight, reduction=reduction, smoothing=smoothing), X)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, W])
def test_cross_entropy_with_class_probabilities(reduction, weight):
    p = np.random.default_rng(1).dirichlet(np.ones(4), size=6)
    wt = None if weight is None else Tensor(weight, dtype="float64")
    check(lambda t: F.cross_entropy(t, Tensor(p), wt, reduction=reduction,
                                    label_smoothing=0.1),
          lambda x: ce_prob_ref(x, p, weight, reduction, 0.1), X)


def test_cross_entropy_ignores_a_real_class():
    t = np.where(T == -100, 2, T)
    check(lambda u: F.cross_entropy(u, Tensor(t), Tensor(W, dtype="float64"), ignore_index=2,
                                    label_smoothing=0.3),
          lambda v: ce_index_ref(v, t, W, 2, smoothing=0.3), X)


def test_cross_entropy_over_extra_dims_and_unbatched():
    x = RNG.normal(size=(2, 3, 5))
    t = np.random.default_rng(2).integers(0, 3, size=(2, 5))
    flat = lambda v: v.transpose(0, 2, 1).reshape(-1, 3)  # noqa: E731
    check(lambda u: F.cross_entropy(u, Tensor(t)),
          lambda v: ce_index_ref(flat(v), t.reshape(-1)), x)
    check(lambda u: F.cross_entropy(u, Tensor(np.array(2))),
          lambda v: ce_index_ref(v[None], np.array([2])), RNG.normal(size=3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_and_ignore_index(reduction):
    lp = log_softmax_ref(X)
    wt = Tensor(W, dtype="float64")
    t = np.where(T == -100, 1, T)  # class 1 is the ignored one here
    check(lambda u: F.nll_loss(u, Tensor(t), wt, ignore_index=1, reduction=reduction),
          lambda v: _nll_ref(v, t, W, 1, reduction), lp)


def _nll_ref(lp, t, w, ignore, reduction):
    valid = (t != ignore) & (t >= 0)
    ts = np.where(valid, t, 0)
    wt = np.where(valid, w[ts], 0.0)
    loss = -wt * np.take_along_axis(lp, ts[:, None], 1)[:, 0]
    return loss.sum() / wt.sum() if reduction == "mean" else reduce_ref(loss, reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_l1(reduction):
    y = RNG.normal(size=X.shape)
    check(lambda t: F.mse_loss(t, Tensor(y), reduction=reduction),
          lambda v: reduce_ref((v - y) ** 2, reduction), X)
    check(lambda t: F.l1_loss(t, Tensor(y), reduction=reduction),
          lambda v: reduce_ref(np.abs(v - y), reduction), X)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_weight_and_pos_weight(reduction):
    y = np.random.default_rng(3).uniform(size=X.shape)
    w, pw = RNG.uniform(0.5, 2, size=X.shape), np.array([1.0, 2.0, 0.5, 3.0])
    check(lambda t: F.binary_cross_entropy_with_logits(
        t, Tensor(y), Tensor(w), reduction, Tensor(pw)),
        lambda v: bce_ref(v, y, w, pw, reduction), X)


def test_bce_with_logits_is_stable_and_right_at_zero():
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32)
    y = np.array([1.0, 1.0, 1.0, 0.0, 0.0], np.float32)
    t = Tensor(x, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(t, Tensor(y), reduction="none")
    np.testing.assert_allclose(loss.data, bce_ref(x.astype(float), y, reduction="none"),
                               rtol=1e-6)
    loss.sum().backward()
    s = 0.5 * (1 + np.tanh(x.astype(float) / 2))  # the logistic function, without overflow
    np.testing.assert_allclose(t.grad, s - y, atol=1e-7)  # -0.5 at 0, not a kink's 0


def test_log_softmax_and_cross_entropy_of_large_float32_logits():
    x = np.array([[1e4, 0.0, -1e4], [5e3, 5e3, 1.0]], np.float32)
    t = Tensor(x, requires_grad=True)
    out = F.log_softmax(t, 1)
    assert np.isfinite(out.data).all()
    np.testing.assert_allclose(out.data, log_softmax_ref(x.astype(float)), rtol=1e-6)
    loss = F.cross_entropy(t, Tensor([2, 0]))
    np.testing.assert_allclose(loss.item(), ce_index_ref(x.astype(float), np.array([2, 0])),
                               rtol=1e-6)
    loss.backward()
    assert np.isfinite(t.grad).all()


def test_loss_modules_match_the_functions():
    y = Tensor(T)
    x = Tensor(X, dtype="float64")
    wt = Tensor(W, dtype="float64")
    for module, expected in [
            (nn.CrossEntropyLoss(wt, label_smoothing=0.1), ce_index_ref(X, T, W, smoothing=0.1)),
            (nn.NLLLoss(reduction="sum"), _nll_ref(X, T, np.ones(4), -100, "sum")),
            (nn.MSELoss(), ((X - 1) ** 2).mean()), (nn.L1Loss(reduction="sum"), np.abs(X - 1).sum()),
            (nn.BCEWithLogitsLoss(pos_weight=Tensor(np.full(4, 2.0))),
             bce_ref(X, np.ones_like(X) * 0.3, pos_weight=2.0))]:
        target = y if isinstance(module, (nn.CrossEntropyLoss, nn.NLLLoss)) else \
            Tensor(np.ones_like(X) * (0.3 if isinstance(module, nn.BCEWithLogitsLoss) else 1))
        np.testing.assert_allclose(module(x, target).item(), expected, rtol=1e-9)


def test_losses_in_a_traced_definition():
    def loss_fn(x, t):
        return F.cross_entropy(x, t, label_smoothing=0.1)
    program = lucid.compile(loss_fn, lucid.placeholder((None, 4), "float64", "x"),
                            lucid.placeholder((None,), "int64", "t"), backward=False)
    t = np.array([0, 3, 1, 1, 2, 0])
    out = program(x=X, t=t)
    value = out if not isinstance(out, dict) else next(iter(out.values()))
    np.testing.assert_allclose(np.asarray(value), ce_index_ref(X, t, smoothing=0.1), rtol=1e-9)


@pytest.mark.parametrize("call, error", [
    (lambda: F.cross_entropy(Tensor(X), Tensor([0, 1, 2, 3, 4, 0])), IndexError),
    (lambda: F.cross_entropy(Tensor(X), Tensor([0, 1, 2, 3, -1, 0])), IndexError),
    (lambda: F.cross_entropy(Tensor(X), Tensor(np.zeros(6))), ValueError),
    (lambda: F.nll_loss(Tensor(X), Tensor(np.zeros(6, np.float32))), TypeError),
    (lambda: F.cross_entropy(Tensor(X), Tensor([0, 1])), ValueError),
    (lambda: F.cross_entropy(Tensor(X), Tensor(T), reduction="avg"), ValueError),
    (lambda: F.cross_entropy(Tensor(X), Tensor(T), label_smoothing=1.5), ValueError),
    (lambda: F.mse_loss(Tensor(X), Tensor(X[:2])), ValueError),
])
def test_bad_targets_are_refused(call, error):
    with pytest.raises(error):
        call()
