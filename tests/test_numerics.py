"""Issue 5, item 3: sound numerics of BatchNorm1d in float32 (SPEC.md, "BatchNorm1d").

Inputs with a large mean and a small spread (mean 1e4, std 0.1) are where a float32
implementation loses digits: a one-pass ``E[x^2] - E[x]^2`` cancels catastrophically, and a
mean accumulated naively in float32 is off by many ulps. The float32 input itself is the
reference's input (cast exactly to float64), so only lucid's own rounding is measured. The
best a float32 result can do here is about 0.005 (the mean rounded to float32 is off by up
to ulp(1e4)/2 = 5e-4, i.e. 0.005 in units of the std), so 0.01 leaves a factor two.

NaN and inf are values, not errors: they propagate to the output, in train and eval.
"""
import ast
import warnings
import zlib

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid import Tensor
from numeric_helpers import batchnorm_reference as reference

EPS = 1e-5
SHAPES = [(256, 16), (32, 8, 64)]
FORWARD_TOL = 0.01
BACKWARD_TOL = 0.01


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def hard_data(shape, key=0):
    rng = rng_for(shape, key)
    x = (1e4 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.uniform(0.5, 2.0, shape[1]).astype(np.float32)
    return x, dy, gamma


def relative_error(got, ref):
    # Gradients are compared relative to their own scale: the largest reference magnitude
    # of each gradient. dx ~ gamma * rstd * dy (rstd ~ 10 here), dgamma ~ sqrt(M) * |dy|,
    # dbeta ~ sqrt(M) * |dy|; a fixed absolute bound would be meaningless across the three.
    return np.abs(np.asarray(got, np.float64) - ref).max() / np.abs(ref).max()


def tensor_face(x, dy, gamma):
    bn = nn.BatchNorm1d(x.shape[1])
    bn.weight.data = gamma.copy()
    xt = Tensor(x, requires_grad=True)
    y = bn(xt)
    y.backward(Tensor(dy))
    return y.data, xt.grad, bn.weight.grad, bn.bias.grad


def program_face(x, dy, gamma):
    bn = nn.BatchNorm1d(x.shape[1])
    bn.weight.data = gamma.copy()
    shape = (None,) + x.shape[1:]
    program = lucid.compile(bn, lucid.placeholder(shape, name="x"), mode="train")
    out = program(x, dy)
    return out["out"], out["grad:x"], out["grad:weight"], out["grad:bias"]


FACES = {"tensor": tensor_face, "program": program_face}


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_large_mean_small_spread(face, shape):
    x, dy, _ = hard_data(shape)
    gamma = np.ones(shape[1], np.float32)  # the module's default: y is xhat itself
    y, *_ = FACES[face](x, dy, gamma)
    ref, *_ = reference(x, dy, gamma)
    assert y.dtype == np.float32
    assert np.abs(y.astype(np.float64) - ref).max() < FORWARD_TOL


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_large_mean_small_spread(face, shape):
    x, dy, gamma = hard_data(shape)
    _, dx, dgamma, dbeta = FACES[face](x, dy, gamma)
    _, rdx, rdgamma, rdbeta = reference(x, dy, gamma)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32
    assert relative_error(dx, rdx) < BACKWARD_TOL
    assert relative_error(dgamma, rdgamma) < BACKWARD_TOL
    assert relative_error(dbeta, rdbeta) < BACKWARD_TOL


@pytest.mark.parametrize("face", FACES)
def test_moderate_data_is_accurate(face):
    """Control: on centred data the same paths are accurate to float32 rounding."""
    rng = rng_for("moderate", face)
    x = rng.standard_normal((64, 6, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma = rng.uniform(0.5, 2.0, 6).astype(np.float32)
    got = FACES[face](x, dy, gamma)
    for g, r in zip(got, reference(x, dy, gamma)):
        assert relative_error(g, r) < 1e-5


# -- the generated source: variance from a centred temporary --------------------------------
def _function(source, name):
    tree = ast.parse(source)
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


def _reductions(fn):
    """Every np.sum / np.einsum call in ``fn`` with the names of its operands."""
    calls = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("sum", "einsum", "mean", "dot", "tensordot"):
            names = [a.id for a in node.args if isinstance(a, ast.Name)]
            calls.append((node.func.attr, names, node))
    return calls


def _squares_of(fn, name):
    """Any ``name * name``, ``name ** 2`` or np.multiply/np.square/np.power of ``name``."""
    found = []
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and isinstance(node.left, ast.Name) and \
                node.left.id == name:
            right = node.right
            if isinstance(node.op, ast.Mult) and isinstance(right, ast.Name) and right.id == name:
                found.append(ast.unparse(node))
            if isinstance(node.op, ast.Pow):
                found.append(ast.unparse(node))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("multiply", "square", "power"):
            args = [a.id for a in node.args if isinstance(a, ast.Name)]
            if args.count(name) >= (2 if node.func.attr == "multiply" else 1):
                found.append(ast.unparse(node))
    return found


def _writers(fn, name):
    """Statements that assign ``name`` or write into it with ``out=name``."""
    out = []
    for stmt in ast.walk(fn):
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name
                                                for t in stmt.targets):
            out.append(stmt)
        if isinstance(stmt, ast.Call) and any(k.arg == "out" and isinstance(k.value, ast.Name)
                                              and k.value.id == name for k in stmt.keywords):
            out.append(stmt)
    return out


@pytest.mark.parametrize("shape", [(None, 16), (None, 8, None)])
@pytest.mark.parametrize("fn_name", ["forward", "step"])
def test_variance_is_computed_from_a_centred_temporary(shape, fn_name):
    bn = nn.BatchNorm1d(shape[1])
    program = lucid.compile(bn, lucid.placeholder(shape, name="x"), mode="train")
    fn = _function(program.source, fn_name)
    assert fn.args.args[0].arg == "x"
    assert _squares_of(fn, "x") == []  # no x*x anywhere: E[x^2] is never formed
    reductions = _reductions(fn)
    over_x = [names for kind, names, _ in reductions if "x" in names]
    # the only reduction of the raw input is the plain one-operand sum for the mean
    assert over_x == [["x"]], program.source
    products = [names for kind, names, _ in reductions if kind == "einsum"]
    squares = [names for names in products if len(names) == 2 and names[0] == names[1]]
    assert len(squares) == 1, program.source  # the variance: one sum of a square
    (centred, _), = squares
    writers = _writers(fn, centred)
    assert writers, f"{centred} is never written"
    # the squared temporary is computed from x (x minus the mean), not a copy of x itself
    text = "\n".join(ast.unparse(w) for w in writers)
    assert "x" in {n.id for w in writers for n in ast.walk(w) if isinstance(n, ast.Name)}, text
    assert any(isinstance(n, (ast.Call, ast.BinOp)) for w in writers for n in ast.walk(w))


# -- NaN and inf propagate ------------------------------------------------------------------
def _run(face, mode, x):
    bn = nn.BatchNorm1d(x.shape[1])
    bn.running_mean.data = np.full(x.shape[1], 0.5, np.float32)
    bn.running_var.data = np.full(x.shape[1], 2.0, np.float32)
    if face == "tensor":
        bn.train(mode == "train")
        return bn(Tensor(x)).data, bn
    program = lucid.compile(bn, lucid.placeholder((None,) + x.shape[1:], name="x"),
                            mode=mode, backward=False)
    return program(x)["out"], bn


@pytest.mark.parametrize("face", ["tensor", "program"])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_nan_and_inf_propagate(face, mode, bad, shape):
    rng = rng_for("nan", shape)
    x = rng.standard_normal(shape).astype(np.float32)
    where = (2, 1) if x.ndim == 2 else (2, 1, 3)
    x[where] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y, bn = _run(face, mode, x)
    assert y.shape == x.shape
    clean = [0, 2]
    if mode == "train":
        # the batch statistics of channel 1 are not finite: the whole channel is NaN
        assert np.isnan(y[:, 1]).all()
        ref, *_ = reference(x[:, clean], np.zeros_like(x[:, clean]), np.ones(2))
        np.testing.assert_allclose(y[:, clean], ref, rtol=1e-5, atol=1e-5)
        rm = bn.running_mean.data  # the mean of channel 1 is NaN or +-inf, and so is its update
        assert not np.isfinite(rm[1]) and np.isfinite(rm[clean]).all()
    else:
        # eval is elementwise: only the bad element is affected, and inf stays inf
        if np.isnan(bad):
            assert np.isnan(y[where])
        else:
            assert y[where] == bad
        mask = np.ones(x.shape, bool)
        mask[where] = False
        expected = (x.astype(np.float64) - 0.5) / np.sqrt(2.0 + EPS)
        np.testing.assert_allclose(y[mask], expected[mask], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(bn.running_mean.data, np.full(3, 0.5, np.float32))
