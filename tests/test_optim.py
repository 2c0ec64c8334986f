"""lucid.optim against a NumPy transcription of torch's documented update rules, over
several steps, in float64 (gradients given, so only the update rule is tested)."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid import Tensor
from lucid.nn import Parameter

GRADS = [np.random.default_rng(i).normal(size=(3, 2)) for i in range(5)]
X0 = np.random.default_rng(9).normal(size=(3, 2))


def sgd_ref(lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False):
    x, buf = X0.copy(), None
    for g in GRADS:
        g = -g if maximize else g
        g = g + weight_decay * x
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        x = x - lr * g
    return x


def adam_ref(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, decoupled=False):
    x, m, v, vmax = X0.copy(), 0 * X0, 0 * X0, 0 * X0
    for t, g in enumerate(GRADS, 1):
        if decoupled:
            x = x * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * x
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - betas[1] ** t)
        x = x - lr / (1 - betas[0] ** t) * m / (np.sqrt(vhat) + eps)
    return x


def run(make):
    p = Parameter(X0.copy(), dtype="float64")
    opt = make([p])
    for g in GRADS:
        opt.zero_grad()
        assert p.grad is None
        p.grad = g.copy()
        opt.step()
    return p.data, opt


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, dampening=0.3),
                                dict(momentum=0.8, nesterov=True, weight_decay=0.1),
                                dict(weight_decay=0.01, maximize=True)])
def test_sgd(kw):
    got, _ = run(lambda ps: lucid.optim.SGD(ps, lr=0.1, **kw))
    np.testing.assert_allclose(got, sgd_ref(0.1, **kw), rtol=1e-12)


@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.1), dict(amsgrad=True),
                                dict(betas=(0.5, 0.9), eps=1e-3)])
def test_adam_and_adamw(kw):
    got, _ = run(lambda ps: lucid.optim.Adam(ps, lr=0.01, **kw))
    np.testing.assert_allclose(got, adam_ref(0.01, **kw), rtol=1e-12)
    kw = {"weight_decay": 0.01, **kw}
    got, _ = run(lambda ps: lucid.optim.AdamW(ps, lr=0.01, **kw))
    np.testing.assert_allclose(got, adam_ref(0.01, decoupled=True, **kw), rtol=1e-12)


def test_state_dict_round_trip_continues_identically():
    p = Parameter(X0.copy(), dtype="float64")
    opt = lucid.optim.Adam([p], lr=0.01)
    for g in GRADS[:3]:
        p.grad = g.copy()
        opt.step()
    q = Parameter(p.data.copy(), dtype="float64")
    opt2 = lucid.optim.Adam([q], lr=0.5)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == 0.01
    for g in GRADS[3:]:
        p.grad, q.grad = g.copy(), g.copy()
        opt.step()
        opt2.step()
    np.testing.assert_array_equal(p.data, q.data)
    np.testing.assert_allclose(p.data, adam_ref(0.01), rtol=1e-12)


def test_zero_grad_and_bad_arguments():
    p = Parameter(X0.copy(), dtype="float64")
    p.grad = np.ones_like(X0)
    opt = lucid.optim.SGD([p], lr=0.1)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, np.zeros_like(X0))
    with pytest.raises(ValueError):
        lucid.optim.SGD([p], lr=-1)
    with pytest.raises(ValueError):
        lucid.optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        lucid.optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError):
        lucid.optim.SGD([], lr=0.1)


def test_a_torch_style_training_loop_learns_a_separable_problem():
    """The loop of examples/train_digits.py on two Gaussian blobs: model, cross_entropy on int64
    labels, Adam, no_grad evaluation, argmax."""
    lucid.manual_seed(1)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-2, 1, (64, 4)), rng.normal(2, 1, (64, 4))]).astype(np.float32)
    y = np.repeat(np.array([0, 1], np.int64), 64)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = lucid.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for step in range(60):
        batch = rng.permutation(128)[:32]
        loss = F.cross_entropy(model(Tensor(x[batch])), Tensor(y[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    model.eval()
    with lucid.no_grad():
        predicted = model(Tensor(x)).argmax(1).numpy()
    assert loss.item() < 0.1 < first
    assert (predicted == y).mean() == 1.0
