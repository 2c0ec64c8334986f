"""erf as a table of Taylor polynomials (lucid.ops.special), GELU keeping erf for its backward, and
the softmaxes' shift taking no gradient.

The reference is mpmath at 30 digits, independent of the table (whose coefficients come from
Hermite polynomials, not from mpmath's erf beyond the centre values). The existing tests of
``test_ops_i9b`` check against ``math.erf`` as well.
"""
import math
import threading
import warnings

import mpmath
import numpy as np
import pytest

import sympy as sp

import lucid
from lucid import Tensor, nn
from lucid.ops import special
from lucid.ops.reference import COSTLY
from lucid.ops.special import erf

mpmath.mp.dps = 30


def mp_erf(values):
    """erf at 30 digits, rounded once to float64."""
    return np.array([float(mpmath.erf(mpmath.mpf(float(v)))) for v in values])


def grid():
    """Every interval's edges and their neighbours, random points, tiny values, both signs."""
    rng = np.random.default_rng(19)
    edges = np.arange(special.STEPS * special.TOP + 1) / special.STEPS
    positive = np.concatenate([edges, np.nextafter(edges, 10.0), np.nextafter(edges[1:], 0.0),
                               [0.054687500000000014, 1.3164698e-05],
                               rng.uniform(0, special.TOP + 0.5, 8000),
                               np.geomspace(1e-300, 1e-2, 300), [5e-324, 2.2e-308]])
    return np.concatenate([positive, -positive])


def test_float64_within_1e_15_relative_of_mpmath_everywhere():
    x = grid()
    got, want = erf(x), mp_erf(x)
    assert got.dtype == np.float64
    zero = want == 0
    np.testing.assert_array_equal(got[zero], want[zero])
    rel = np.abs(got[~zero] - want[~zero]) / np.abs(want[~zero])
    assert rel.max() < 1e-15, (rel.max(), x[~zero][rel.argmax()])
    ulps = np.abs(got - want) / np.spacing(np.abs(want))
    assert ulps.max() <= 7  # a review found 7 at 0.054687500000000014, among 4M points
    tiny = np.abs(x) < 1.0 / special.STEPS  # the first interval: its slope kept exact
    assert ulps[tiny].max() <= 2, x[tiny][ulps[tiny].argmax()]


def test_tiny_inputs_within_one_ulp():
    """The first interval's series keeps erf(x) = 2x/sqrt(pi) (1 - x^2/3 ...) exact in its slope:
    an economisation that moved the linear coefficient once biased these by 3-6 ulp (review)."""
    x = np.concatenate([np.geomspace(1e-302, 1e-4, 400), [1e-10, 1.3164698e-05]])
    got, want = erf(x), mp_erf(x)
    assert (np.abs(got - want) <= np.spacing(want)).all()


def test_float32_is_mpmaths_value_rounded():
    rng = np.random.default_rng(32)
    x = np.concatenate([rng.uniform(-6.5, 6.5, 6000), rng.standard_normal(6000) / math.sqrt(2),
                        rng.uniform(-1e-3, 1e-3, 1000)]).astype(np.float32)
    got = erf(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, mp_erf(x).astype(np.float32))


def test_special_values_anywhere_in_a_chunk_and_no_warnings():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(special._CHUNK * 2 + 5)  # two whole chunks and a part
    where = [0, 7, special._CHUNK - 1, special._CHUNK, x.size - 1]
    x[where] = [np.nan, np.inf, -np.inf, -0.0, np.nan]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = erf(x)
    assert np.isnan(got[0]) and np.isnan(got[-1])
    assert got[7] == 1.0 and got[special._CHUNK - 1] == -1.0
    assert got[special._CHUNK] == 0 and np.signbit(got[special._CHUNK])
    rest = np.setdiff1d(np.arange(x.size), where)
    sample = rest[:: 97]
    np.testing.assert_allclose(got[sample], mp_erf(x[sample]), rtol=1e-15, atol=0)
    for far in (6.0, 7.5, 1e300):
        assert erf(np.array([far, -far])).tolist() == [1.0, -1.0]


def test_shapes_layouts_and_dtypes():
    x = np.linspace(-3, 3, 24).reshape(4, 6)
    flat = erf(x.ravel())
    np.testing.assert_array_equal(erf(x), flat.reshape(4, 6))
    np.testing.assert_array_equal(erf(x.T), flat.reshape(4, 6).T)  # not contiguous
    np.testing.assert_array_equal(erf(x[:, ::2]), flat.reshape(4, 6)[:, ::2])
    assert erf(np.float64(0.5)).shape == ()
    assert float(erf(0.5)) == pytest.approx(float(mp_erf([0.5])[0]), rel=1e-15)
    assert erf(np.arange(3)).dtype == np.float64  # integers: float64, as before
    np.testing.assert_allclose(erf(np.arange(3)), mp_erf([0, 1, 2]), rtol=1e-15, atol=0)
    assert erf(np.zeros((0, 3), np.float32)).shape == (0, 3)


def gelu_parts(module):
    """The forward and backward sources of the Tensor face's program for ``module``."""
    (entry,) = module._programs.values()
    source = entry.program.source
    forward = source[source.index("def forward("):source.index("def backward(")]
    backward = source[source.index("def backward("):]
    return forward, backward[:backward.index("\ndef ", 1)]


def test_gelu_keeps_its_erf_for_the_backward_and_matches_the_maths():
    """erf costs ~50 passes: the face's forward saves 0.5 + 0.5 erf(x/sqrt 2) and the backward
    reads it, where a cheap value is recomputed. Values and gradient against float64 maths."""
    x = np.linspace(-6, 6, 3 * 41).reshape(3, 41)
    module = nn.GELU().to("float64")
    t = Tensor(x, dtype="float64", requires_grad=True)
    out = module(t)
    out.backward(Tensor(np.ones_like(x), dtype="float64"))
    forward, backward = gelu_parts(module)
    assert forward.count("_erf(") == 1 and "_erf(" not in backward
    phi = 0.5 * (1 + mp_erf(x.ravel() / math.sqrt(2))).reshape(x.shape)
    # atol: 0.5 + 0.5 erf(x) cancels for x < -3 in both, as in torch
    np.testing.assert_allclose(out.data, x * phi, rtol=1e-14, atol=1e-15)
    want = phi + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(t.grad, want, rtol=1e-13, atol=1e-15)


class SiLU(nn.Module):
    def forward(self, x):
        return x * lucid.sigmoid(x)


def test_a_cheap_large_value_is_still_recomputed_in_the_backward():
    """x * sigmoid(x): the sigmoid is a large value from the input alone, with no costly head:
    recomputed in the backward, not saved (split's rule), and the gradient is right."""
    x = np.linspace(-8, 8, 2 * 33).reshape(2, 33)
    module = SiLU()
    t = Tensor(x, dtype="float64", requires_grad=True)
    module(t).sum().backward()
    forward, backward = gelu_parts(module)
    assert "exp(" in forward and "exp(" in backward
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(t.grad, s * (1 + x * (1 - s)), rtol=1e-13, atol=1e-15)


def test_costly_heads():
    assert COSTLY == (sp.erf,)


# ----------------------------------------------------------------------------- softmax's shift
def softmax_reference(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_shift_takes_no_gradient_and_values_and_gradients_are_torchs(log):
    """The maximum is detached (softmax is the same for any shift): no tie mask, and the
    backward is s (g - sum(g s)) (log: g - s sum(g)), against float64 maths, ties and huge
    logits included."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 7)) * 3
    x[1, :3] = x[1].max() + 1  # three tied maxima
    x[2] = [1000, 1000, -5, 0, 999, 1000, 3]
    g = rng.normal(size=x.shape)
    module = nn.LogSoftmax(dim=-1) if log else nn.Softmax(dim=-1)
    t = Tensor(x, dtype="float64", requires_grad=True)
    out = module(t)
    out.backward(Tensor(g, dtype="float64"))
    s = softmax_reference(x)
    if log:
        shifted = x - x.max(axis=-1, keepdims=True)
        log_s = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        np.testing.assert_allclose(out.data, log_s, rtol=1e-13, atol=1e-13)
        want = g - s * g.sum(axis=-1, keepdims=True)
    else:
        np.testing.assert_allclose(out.data, s, rtol=1e-13, atol=1e-300)
        want = s * (g - (g * s).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(t.grad, want, rtol=1e-12, atol=1e-14)
    forward, backward = gelu_parts(module)
    assert "np.equal" not in forward + backward  # no mask of where the maximum was


def test_the_table_is_built_once_under_concurrent_first_calls(monkeypatch):
    builds = []
    build = special._build
    monkeypatch.setattr(special, "_table", None)
    monkeypatch.setattr(special, "_build", lambda: builds.append(1) or build())
    x = np.linspace(-3, 3, 1001)
    results, start = [], threading.Barrier(6)

    def first_call():
        start.wait()
        results.append(erf(x))
    threads = [threading.Thread(target=first_call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(results) == 6
    for r in results:
        np.testing.assert_array_equal(r, results[0])
