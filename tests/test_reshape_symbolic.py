"""``x.view(x.size(0), -1)`` and friends inside a module, whose batch axis is symbolic (``N``):
the most common flatten of ported PyTorch code. Values and gradients against NumPy."""
import numpy as np
import pytest

import lucid
from lucid import Tensor, nn


class Apply(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


CASES = {  # name -> (function of the traced value, the shape NumPy gives for x of (8, 4, 6),
    # the factor it multiplies by)
    "view(size(0), -1)": (lambda x: x.view(x.size(0), -1), (8, 24), 1),
    "reshape(shape[0], -1)": (lambda x: x.reshape(x.shape[0], -1), (8, 24), 1),
    "view(-1, 24)": (lambda x: x.view(-1, 24), (8, 24), 1),
    "view(size(0), 2, -1)": (lambda x: x.view(x.size(0), 2, -1), (8, 2, 12), 1),
    "view(size(0), size(1) * size(2)) * dim()": (
        lambda x: x.view(x.size(0), x.size(1) * x.size(2)) * x.dim(), (8, 24), 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_flattening_views_keep_the_batch_axis(name):
    fn, shape, scale = CASES[name]
    data = np.random.default_rng(2).normal(size=(8, 4, 6))
    x = Tensor(data, dtype="float64", requires_grad=True)
    out = Apply(fn)(x)
    np.testing.assert_array_equal(out.data, data.reshape(shape) * scale)
    g = np.random.default_rng(3).normal(size=shape)
    out.backward(Tensor(g, dtype="float64"))
    np.testing.assert_array_equal(x.grad, g.reshape(8, 4, 6) * scale)
    x5 = Tensor(data[:5], dtype="float64")  # another batch size: the same program
    np.testing.assert_array_equal(Apply(fn)(x5).data.reshape(5, -1),
                                  data[:5].reshape(5, -1) * scale)


def test_var_size_and_dim_as_torch():
    x = lucid.placeholder((None, 4, 6), name="x")
    assert x.size() == ("N", 4, 6) and x.size(0) == "N" and x.size(-1) == 6 and x.dim() == 3


@pytest.mark.parametrize("fn,match", [
    (lambda x: x.reshape(-1), "N x 24"),
    (lambda x: x.view(-1, 6), "N x 4"),
    (lambda x: x.view(x.size(0), -1, 5), "cannot reshape"),
])
def test_a_minus_one_lucid_cannot_name_says_what_to_do(fn, match):
    with pytest.raises(ValueError, match=match):
        Apply(fn)(Tensor(np.ones((8, 4, 6), np.float32)))


def test_a_size_the_input_lacks_is_named():
    x = lucid.placeholder((None, 4, 6), name="x")
    with pytest.raises(ValueError, match="names the size 'L'"):
        x.view("L", -1)
