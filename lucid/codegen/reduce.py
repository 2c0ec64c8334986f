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
    """A read-only vector of n ones, kept between calls: a sum as a matrix product."""
    ones = _ones_cache.get((n, dtype))
    if ones is None:
        if len(_ones_cache) >= 64:  # many batch sizes: start again rather than grow
            _ones_cache.clear()
        ones = np.ones(n, dtype)
        ones.flags.writeable = False
        _ones_cache[n, dtype] = ones
    return ones
'''


class Form(Enum):
    """How a reduction is written."""

    EINSUM = "einsum"  # np.einsum(spec, a[, b]): one pass, a product never materialised
    EINSUM64 = "einsum64"  # the same with dtype=np.float64, then cast back to float32
    ONES = "ones"  # ones_N @ x, ones_N @ (x @ ones_L): BLAS gemv in the data's own dtype


def choose(operands, dtype, widen, axes, shape, twinned):
    """The form of a sum of ``operands`` (1 or 2) arrays of ``shape`` over ``axes``.

    ``widen``: accumulate float32 data in float64 (the mean of raw data); ``twinned``:
    the function has a parallel twin, whose channel slices must sum each channel to the
    same bits as the whole array does. Medians in microseconds from
    ``python benchmarks/bench_reduce.py`` (two runs, interleaved, on a 2-core machine
    that other processes were using; "ones" holds its ones vector between calls):

    ==============  =======  ====  ============  ============  ============  ============
    shape           dtype    sum   einsum        einsum64      add.reduce    ones
    ==============  =======  ====  ============  ============  ============  ============
    (32, 64)        float32  a     2.4 - 3.8     3.3 - 5.5     1.7 - 2.8     1.1 - 2.0
    (256, 256)      float32  a     9.1 - 13.4    24 - 36       9.1 - 11.2    3.9 - 5.2
    (256, 256)      float64  a     14.8 - 18.2                 13.4 - 16.6   6.8 - 8.1
    (4096, 256)     float32  a     169 - 225     591 - 837     176 - 212     6207 - 7043
    (128, 64, 16)   float32  a     34 - 60       76 - 143      157 - 183     21.5 - 37.6
    (128, 64, 16)   float64  a     38 - 69                     158 - 183     26 - 41
    (64, 128, 256)  float32  a     206 - 218     821 - 863     458 - 559     198 - 254
    (64, 256, 512)  float32  a     1020 - 1534   4585 - 6744   1615 - 2115   2481 - 3541
    ==============  =======  ====  ============  ============  ============  ============

    Products ``a*b`` (never materialised): einsum beat ``np.vecdot`` along axis 0 of
    (N, C) 4-12x from (256, 256) on (a strided dot per channel), and the (N, C) row dots
    of (N, C, L) then a sum 2x at (128, 64, 16), within 10% either way above: products
    stay einsum.

    So: a float32 sum accumulated in float64 (``widen``) is einsum64 (fastest of the
    widening forms for 3D, within 10% of add.reduce for 2D). A single-operand float
    sum over axis 0 of (N, C) or axes (0, 2) of (N, C, L), accumulated in its own dtype,
    is ``ones`` up to :data:`BLAS_LIMIT` elements (1.5-2.5x faster than einsum; with a
    batch size known only at run time the statement tests the size), but not in a
    function with a parallel twin: its kernels sum slices of channels, and one form
    for both keeps every thread count's bits the same. Everything else is einsum.

    Error: gemv accumulates in the data's dtype, as the einsum it replaces does, and
    sums over N one row after another (in SIMD lanes across channels, a few rows per
    step), an error bound of about N units in the last place of the sum of |x|, as
    einsum's; the (0, 2) form sums each row of L in SIMD partial sums first, as einsum
    does (tests/test_reduce_forms.py measures both against float64 on offset data).
    """
    if widen:
        return Form.EINSUM64
    ones = operands == 1 and dtype in ("float32", "float64") and not twinned and \
        tuple(axes) in {2: [(0,)], 3: [(0, 2)]}.get(len(shape), [])
    if ones and _limit(shape) is not None:
        return Form.ONES
    return Form.EINSUM


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
    """
    einsum = f"np.einsum({spec!r}, {', '.join(args)})"
    if form is Form.EINSUM:
        return [f"{name} = {einsum}{fix}"]
    if form is Form.EINSUM64:
        return [f"{name} = np.einsum({spec!r}, {', '.join(args)}, dtype=np.float64)"
                f".astype(np.float32){fix}"]
    dims = [size_name(d) if isinstance(d, str) else str(d) for d in shape]
    (x,) = args
    value = f"_ones({dims[0]}, np.{dtype}) @ " + \
        (f"({x} @ _ones({dims[2]}, np.{dtype}))" if len(shape) == 3 else x)
    value = f"({value}){fix}" if fix else value  # the reshape is of the product
    limit = _limit(shape)
    if not limit:
        return [f"{name} = {value}"]
    sizes = " * ".join(size_name(d) for d in shape if isinstance(d, str))
    return [f"if {sizes} <= {limit}:  # one BLAS thread (reduce.BLAS_LIMIT): a product with ones",
            f"    {name} = {value}",
            "else:",
            f"    {name} = {einsum}{fix}"]
