"""Which NumPy form computes a reduction: a rule drawn from measurements.

A fused reduction sums one operand, or the product of two, over some axes
(a BatchNorm sums axis 0 of (N, C) and axes (0, 2) of (N, C, L)).
:func:`lower` writes it in one of the :class:`Form` s, chosen by :func:`choose`.
"""
from __future__ import annotations

import math
from enum import Enum

from .text import size_name

#: Largest element count summed as a matrix product with ones. OpenBLAS splits larger
#: gemv calls over its own threads; with the other core busy, the split call waited for
#: its worker: (2048, 256) float32 took 7.8 ms where 2**18 values took 17 us (see choose).
BLAS_LIMIT = 1 << 18

# helper the generated module defines (generate.PRELUDE)
HELPER = '''

_ones_cache = {}


def _ones(n, dtype):
    """n ones, read-only: a view of one vector per dtype kept between calls (as long as
    the longest asked for, at most BLAS_LIMIT), for a sum as a matrix product."""
    ones = _ones_cache.get(dtype)
    if ones is None or len(ones) < n:
        ones = np.ones(n, dtype)
        ones.flags.writeable = False
        _ones_cache[dtype] = ones
    return ones[:n]
'''


class Form(Enum):
    """How a reduction is written."""

    EINSUM = "einsum"  # np.einsum(spec, a[, b]): one pass, a product never materialised
    EINSUM64 = "einsum64"  # the same with dtype=np.float64, then cast back to float32
    ONES = "ones"  # ones_N @ x, ones_N @ (x @ ones_L): BLAS gemv in the data's own dtype
    ONES64 = "ones64"  # ONES on float32 data cast to float64 by np.matmul(..., dtype=)


def choose(operands, dtype, widen, axes, shape, twinned):
    """The form of a sum of ``operands`` (1 or 2) arrays of ``shape`` over ``axes``.

    ``widen``: accumulate float32 data in float64 (the mean of raw data); ``twinned``:
    the function has a parallel twin, whose channel slices must sum each channel to the
    same bits as the whole array does. Medians in microseconds from
    ``python benchmarks/bench_reduce.py`` (the range over four runs, two for ones64,
    interleaved, on a 2-core machine that other processes were using; "ones" holds its
    ones vectors between calls):

    ==============  =======  ===========  ===========  ===========  ===========  ===========
    sum of a        dtype    einsum       add.reduce   ones         einsum64     ones64
    ==============  =======  ===========  ===========  ===========  ===========  ===========
    (32, 64)        float32  2.4 - 3.8    1.7 - 2.8    1.1 - 2.0    3.3 - 5.5    2.2 - 2.2
    (256, 256)      float32  9.1 - 13.4   8.7 - 12.5   3.8 - 5.2    24 - 36      16.6 - 17.0
    (256, 256)      float64  14.6 - 18.2  13.4 - 16.6  6.8 - 8.1
    (4096, 256)     float32  142 - 225    147 - 212    203 - 7043   417 - 837    7058 - 8893
    (128, 64, 16)   float32  34 - 60      157 - 183    21.5 - 37.6  76 - 143     43.8 - 45.7
    (128, 64, 16)   float64  37 - 69      158 - 183    25 - 41
    (64, 128, 256)  float32  172 - 222    453 - 559    198 - 416    637 - 863    1794 - 2273
    (64, 256, 512)  float32  1020 - 1534  1615 - 2115  2481 - 3541  4585 - 8749  12778 - 19470
    ==============  =======  ===========  ===========  ===========  ===========  ===========

    Products ``a*b`` (never materialised): einsum beat ``np.vecdot`` along axis 0 of
    (N, C) 4-12x from (256, 256) on (a strided dot per channel), and the (N, C) row dots
    of (N, C, L) then a sum 2x at (128, 64, 16); the row dots won by 12-29% only in
    float32 at (64, 128, 256) and took 0.9-1.06x einsum's time at (64, 256, 512) (one
    noisy 0.57), shapes that run in parallel twins: products stay einsum.

    So a single-operand float sum over axis 0 of (N, C) or axes (0, 2) of (N, C, L) of
    at most :data:`BLAS_LIMIT` values (with a batch size known only at run time the
    statement tests the size) is ``ones`` when accumulated in its own dtype (1.5-2.5x
    faster than einsum) and ``ones64`` when float32 data is accumulated in float64
    (1.5-1.7x faster than einsum64), except in a function with a parallel twin: its
    kernels sum slices of channels, and one form for both keeps every thread count's
    bits the same. Above the limit BLAS threads, and stalled (7 ms at (4096, 256)).
    Everything else is einsum, or einsum64 when widened (the fastest widening form in
    3D, within 20% of add.reduce in 2D).

    Error: gemv accumulates in the dtype it is given, as the einsum it replaces does, and
    sums over N a few rows at a time (SIMD lanes across channels), an error bound of
    about N units in the last place of the sum of |x|, as einsum's; the (0, 2) form sums
    each row of L in SIMD partial sums first, as einsum does. ``ones64`` sums the
    float32 values, exactly converted, in float64 (matmul converts them itself: no
    float64 array is kept between calls). tests/test_reduce_forms.py measures every
    form against exact sums of offset data.
    """
    fits = operands == 1 and dtype in ("float32", "float64") and not twinned and \
        tuple(axes) in {2: [(0,)], 3: [(0, 2)]}.get(len(shape), []) and \
        _limit(shape) is not None
    if widen:
        return Form.ONES64 if fits else Form.EINSUM64
    return Form.ONES if fits else Form.EINSUM


def _limit(shape):
    """How many values of the symbolic dims' product ``ones`` allows (None: none at all;
    0: no limit to test, the shape is static and small enough)."""
    static = math.prod(d for d in shape if isinstance(d, int))
    if static > BLAS_LIMIT:
        return None
    return 0 if all(isinstance(d, int) for d in shape) else BLAS_LIMIT // max(static, 1)


def lower(form, name, spec, args, shape, dtype, fix=""):
    """The statements assigning ``name`` the sum of ``args`` (operand names) of ``shape``
    in ``form``; ``fix`` is appended to the sum (a reshape to the result's shape).

    >>> print("\\n".join(lower(Form.ONES, "s", 'ab->b', ['x'], ('N', 256), 'float32')))
    if size_N <= 1024:  # one BLAS thread (reduce.BLAS_LIMIT): a product with ones
        s = _ones(size_N, np.float32) @ x
    else:
        s = np.einsum('ab->b', x)
    >>> lower(Form.ONES, "s", 'abc->b', ['x'], (8, 4, 16), 'float64', '.reshape((4, 1))')
    ['s = (_ones(8, np.float64) @ (x @ _ones(16, np.float64))).reshape((4, 1))']
    >>> lower(Form.ONES64, "s", 'ab->b', ['x'], (8, 4), 'float32')
    ['s = np.matmul(_ones(8, np.float64), x, dtype=np.float64).astype(np.float32)']
    """
    if form is Form.EINSUM:
        return [f"{name} = np.einsum({spec!r}, {', '.join(args)}){fix}"]
    widened = f"np.einsum({spec!r}, {', '.join(args)}, dtype=np.float64).astype(np.float32)"
    if form is Form.EINSUM64:
        return [f"{name} = {widened}{fix}"]
    (x,) = args
    kind = "float64" if form is Form.ONES64 else dtype
    n, l = (f"_ones({size_name(d) if isinstance(d, str) else d}, np.{kind})"
            for d in (shape[0], shape[-1]))
    if form is Form.ONES64:  # matmul casts x to float64 as it goes: no array kept for it
        value = f"np.matmul({n}, {x}, dtype=np.float64)" if len(shape) == 2 else \
            f"({n} @ np.matmul({x}, {l}, dtype=np.float64))"
        value = f"{value}.astype(np.float32){fix}"
    else:
        value = f"{n} @ {x}" if len(shape) == 2 else f"{n} @ ({x} @ {l})"
        value = f"({value}){fix}" if fix else value  # the reshape is of the product
    limit = _limit(shape)
    if not limit:
        return [f"{name} = {value}"]
    sizes = " * ".join(size_name(d) for d in shape if isinstance(d, str))
    other = f"{widened}{fix}" if form is Form.ONES64 else f"np.einsum({spec!r}, {x}){fix}"
    return [f"if {sizes} <= {limit}:  # one BLAS thread (reduce.BLAS_LIMIT): a product with ones",
            f"    {name} = {value}", "else:", f"    {name} = {other}"]
