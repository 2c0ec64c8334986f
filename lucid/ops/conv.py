"""Convolution primitives: sliding windows and the products that apply a kernel to them.

A 1-D convolution is ``unfold1d`` (im2col: every window of the input laid out
as one column) followed by a matrix product with the flattened kernel for
each batch item. ``unfold1d``'s gradient is ``fold1d`` (col2im: each column
added back where its window came from), and ``fold1d``'s is ``unfold1d``. The
product is ``stacked_matmul``, ``w @ x[n]`` for each item of a stack (a batch
of symbolic size cannot be merged into a matrix by a reshape), with optional
group axes pairing the kernel of group ``j`` with the columns of group ``j``;
its weight gradient sums ``g[n] @ x[n].T`` over the stack,
``stacked_matmul_nt``. The two products are each other's VJPs.

Layout: ``unfold1d`` maps ``(N, C, L)`` to ``(N, C * K, L_out)``, the middle
axis ordered channel-major (``c * K + k``), so a kernel ``(C_out, C, K)``
reshaped to ``(C_out, C * K)`` times it gives ``(N, C_out, L_out)``.
"""
from __future__ import annotations

import numpy as np

from . import attributes as at_
from .op import FLOATS
from .shapes import conv_length, result_dtype
from .structural import structural

_WINDOW = dict(kernel_size=at_.positive, stride=at_.positive, padding=at_.paddings,
               dilation=at_.positive)


def _geometry(op, at, length):
    return conv_length(op, length, at["kernel_size"], at["stride"], at["padding"],
                       at["dilation"])


def _check_float(op, dtypes):
    if any(d not in FLOATS for d in dtypes):
        raise ValueError(f"{op}: expected floating inputs, got {', '.join(dtypes)}")


# -- unfold1d / fold1d: a gather of windows, and the scatter-add that undoes it -------------
def _unfold_shape(shapes, dtypes, attrs):
    _check_float("unfold1d", dtypes)
    if len(shapes[0]) != 3:
        raise ValueError(f"unfold1d: expected an (N, C, L) input, got {shapes[0]}")
    n, c, length = shapes[0]
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"unfold1d: the channel count must be a fixed positive size, got {c}")
    return (n, c * attrs["kernel_size"], _geometry("unfold1d", attrs, length)), dtypes[0]


def _fold_shape(shapes, dtypes, attrs):
    _check_float("fold1d", dtypes)
    k, length = attrs["kernel_size"], attrs["length"]
    if len(shapes[0]) != 3 or not isinstance(shapes[0][1], int) or shapes[0][1] % k:
        raise ValueError(f"fold1d: expected (N, C * {k}, L_out) columns, got {shapes[0]}")
    if shapes[0][2] != _geometry("fold1d", attrs, length):
        raise ValueError(f"fold1d: {shapes[0][2]} windows do not tile a length of {length}")
    return (shapes[0][0], shapes[0][1] // k, length), dtypes[0]


def _taps(at, count):
    """Input positions (padded coordinates) read by tap ``k`` for output ``l``: ``(K, L_out)``."""
    return at["dilation"] * np.arange(at["kernel_size"])[:, None] + \
        at["stride"] * np.arange(count)[None, :]


def _unfold_run(at, dims, x):
    n, c, length = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), at["padding"]))
    taps = _taps(at, _geometry("unfold1d", at, length))
    return padded[:, :, taps].reshape(n, c * at["kernel_size"], taps.shape[1])  # (N, C, K, L)


def _fold_run(at, dims, g):
    n, ck, count = g.shape
    k, before = at["kernel_size"], at["padding"][0]
    out = np.zeros((n, ck // k, at["length"] + sum(at["padding"])), g.dtype)
    np.add.at(out, (slice(None), slice(None), _taps(at, count)), g.reshape(n, ck // k, k, count))
    return out[:, :, before:before + at["length"]]


def _step(step):
    return "" if step == 1 else f":{step}"


def _unfold_lower(at, shape, x):
    k, s, d, (before, after) = at["kernel_size"], at["stride"], at["dilation"], at["padding"]
    padded = f"np.pad({x}, ((0, 0), (0, 0), ({before}, {after})))" if before or after else x
    span = d * (k - 1) + 1
    # the (N, C, L_out, K) windows are a strided view; one C-ordered copy of them as
    # (N, C, K, L_out) is the columns
    strided = f"[:, :, ::{s}, ::{d}]" if s != 1 or d != 1 else ""
    return (f"(_win := np.lib.stride_tricks.sliding_window_view({padded}, {span}, axis=2)"
            f"{strided}, np.copy(_win.transpose(0, 1, 3, 2), order='C')"
            f".reshape(_win.shape[0], _win.shape[1] * {k}, _win.shape[2]))[1]")


def _fold_lower(at, shape, g):
    k, s, d, (before, after) = at["kernel_size"], at["stride"], at["dilation"], at["padding"]
    length = at["length"]
    count = conv_length("fold1d", length, k, s, (before, after), d)
    reach = s * (count - 1) + 1  # the positions one tap touches, first to last
    taps = f"_fold[:, :, _k * {d}:_k * {d} + {reach}{_step(s)}]"
    # one strided slice add per tap: no np.add.at, whose unbuffered loop is slow
    padded = length + before + after
    return (f"(_cols := (_src := {g}).reshape(_src.shape[0], _src.shape[1] // {k}, {k}, "
            f"{count}), _fold := np.zeros((_src.shape[0], _cols.shape[1], {padded}), "
            f"_src.dtype), [np.add({taps}, _cols[:, :, _k], out={taps}) for _k in range({k})], "
            f"_fold[:, :, {before}:{before + length}])[3]")


structural(
    "unfold1d", 1, doc="the windows of an (N, C, L) input as columns (N, C * K, L_out) "
                       "(attrs kernel_size, stride, padding (before, after), dilation)",
    shape=_unfold_shape,
    vjp=lambda b, n, g: (b.apply("fold1d", g, length=b.shape(n.inputs[0])[2], **n.attrs),),
    run=_unfold_run, lower=_unfold_lower,
    grad="fold1d(g): each window's gradient added back where it was read",
    attributes=at_.schema("unfold1d", **_WINDOW))

structural(
    "fold1d", 1, doc="columns (N, C * K, L_out) added back into their windows of an (N, C, "
                     "attrs length) array, the transpose of unfold1d",
    shape=_fold_shape,
    vjp=lambda b, n, g: (b.apply("unfold1d", g, **{key: v for key, v in n.attrs.items()
                                                  if key != "length"}),),
    run=_fold_run, lower=_fold_lower,
    grad="unfold1d(g): the windows of the gradient",
    attributes=at_.schema("fold1d", length=at_.positive, **_WINDOW))


# -- stacked_matmul / stacked_matmul_nt: matrices times each item of a stack of them ---------
# a (*G, M, K) and b (N, *G, K, P): G are group axes (none for a plain convolution), which
# pair a's matrices with b's; N is the stack, which a is broadcast over.
def _stacked_shape(shapes, dtypes, attrs):
    a, b = shapes
    if len(a) < 2 or len(b) != len(a) + 1 or tuple(a[:-2]) != tuple(b[1:-2]) or a[-1] != b[-2]:
        raise ValueError(f"stacked_matmul: expected (*G, M, K) @ (N, *G, K, P), got {a} @ {b}")
    return tuple(b[:-2]) + (a[-2], b[-1]), result_dtype(dtypes)


def _stacked_nt_shape(shapes, dtypes, attrs):
    a, b = shapes
    if len(a) < 3 or len(b) != len(a) or tuple(a[:-2]) != tuple(b[:-2]) or a[-1] != b[-1]:
        raise ValueError(f"stacked_matmul_nt: expected (N, *G, M, P) and (N, *G, K, P), got "
                         f"{a} and {b}")
    return tuple(a[1:-1]) + (b[-2],), result_dtype(dtypes)


def _swap(b, x):
    """``x`` with its last two axes swapped (each matrix transposed)."""
    r = len(b.shape(x))
    return b.apply("transpose", x, perm=tuple(range(r - 2)) + (r - 1, r - 2))


structural(
    "stacked_matmul", 2, doc="a @ b[n] for every n: matrices a (*G, M, K) times each item "
                             "of a stack b (N, *G, K, P), (N, *G, M, P)",
    shape=_stacked_shape,
    vjp=lambda b, n, g: (b.apply("stacked_matmul_nt", g, n.inputs[1]),
                         b.apply("stacked_matmul", _swap(b, n.inputs[0]), g)),
    run=lambda at, dims, a, b: np.einsum("...mk,n...kp->n...mp", a, b),
    lower=lambda at, shape, a, b: f"np.matmul({a}, {b})",  # one BLAS call per matrix
    lower_into="np.matmul", grad="stacked_matmul_nt(g, b) | stacked_matmul(a.T, g)")

structural(
    "stacked_matmul_nt", 2, doc="the sum over n of a[n] @ b[n].T for stacks a (N, *G, M, P) "
                                "and b (N, *G, K, P): (*G, M, K)",
    shape=_stacked_nt_shape,
    vjp=lambda b, n, g: (b.apply("stacked_matmul", g, n.inputs[1]),
                         b.apply("stacked_matmul", _swap(b, g), n.inputs[0])),
    run=lambda at, dims, a, b: np.einsum("n...mp,n...kp->...mk", a, b),
    # one BLAS call per pair, then a sum over the stack: faster here than np.tensordot,
    # which first copies both stacks into matrices
    lower=lambda at, shape, a, b: f"np.matmul({a}, {b}.swapaxes(-1, -2)).sum(0)",
    grad="stacked_matmul(g, b) | stacked_matmul(g.T, a)")
