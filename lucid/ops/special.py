"""Elementwise functions NumPy lacks, as small vectorised runtime helpers.

The reference executor (:func:`.reference.evaluate`) and generated programs
call the same helper: :data:`.reference.HELPERS` binds it to the name the
generated source uses (``_erf``), and codegen puts that name in the
namespace a program runs in.

:func:`erf` is a table of Taylor polynomials: ``[0, 6]`` is cut into 768
intervals of width 1/128, and on each ``erf`` is its degree-5 Taylor
polynomial about the interval's centre (the first interval's about 0: the odd
series, so that tiny inputs keep their relative accuracy). The coefficients
are float64 roundings of ``erf^(k)(c) / k!``, from ``erf^(k)(c) = 2/sqrt(pi)
(-1)^(k-1) H_(k-1)(c) exp(-c^2)`` (``H`` Hermite's polynomials) evaluated at 30
digits with mpmath (sympy's own dependency) on the first call (50 ms). Beyond
6, ``erf`` is 1 in float64. Relative error is below 1e-15 (tested against
mpmath; a review screening 4M points found at most 7 units in the last place,
where Cody's rational approximation, which this replaced, stays within 3);
float32 input is computed in float64 and rounded once.

Why not a rational approximation, W. J. Cody's, which this replaced: every
value then needs one of three formulas, and choosing by boolean masks, then
gathering and scattering the values of each, cost most of its 40 ns a value
(10.5 ms on 262K float32 values, a GELU's (256, 1024)). Here every value runs
the same passes, six lookups in small tables and five multiply-adds: 10 ns.

>>> import numpy as np
>>> erf(np.array([0.0, 0.5, -1.0, np.inf]))
array([ 0.        ,  0.52049988, -0.84270079,  1.        ])
"""
from __future__ import annotations

import math
import threading

import mpmath  # sympy's own dependency
import numpy as np

STEPS = 128  #: intervals per unit of |x|
DEGREE = 5
TOP = 6.0  #: erf(x) rounds to 1 in float64 from x = 5.93
#: Values per pass: a chunk's twenty float64 passes stay in cache (on 262K normal values,
#: chunks of 4096 took 1.5x as long and chunks of 65536 1.06x).
_CHUNK = 1 << 14
#: The minimax fit of t^3 by _C5 t^2 + _C3 t on [0, 1] (Remez: error 0.03848 at t = 0.196,
#: 0.732 and 1, alternating).
_C5, _C3 = 1.3923048454312563, -0.4307806183625972
_table = None  # (centres, coefficients): built on the first call
_building = threading.Lock()


def _build():
    """The intervals' centres in units of ``1/STEPS`` and, row ``k``, the Taylor coefficients
    ``erf^(k)(c) / k! / STEPS^k``, as float64 (computed at 30 digits)."""
    n = int(TOP * STEPS)
    centres = np.array([0.0] + [i + 0.5 for i in range(1, n)])
    coefficients = np.empty((DEGREE + 1, n))
    with mpmath.workdps(30):
        for i, centre in enumerate(centres):
            series = _taylor(mpmath.mpf(centre) / STEPS, DEGREE + 2)
            if i == 0:  # the odd series on u in [0, 1): u^7 = u t^3 (t = u^2) folded into
                # u^3 and u^5 by the best fit of t^3 by c5 t^2 + c3 t on [0, 1] (the slope at 0
                # stays exact, so tiny inputs keep erf(x) = 2x/sqrt(pi)): relative error
                # 0.0385 of the truncated series' 5e-15 (tested)
                series[3] += series[7] * _C3
                series[5] += series[7] * _C5
            coefficients[:, i] = [float(a) for a in series[:DEGREE + 1]]
    return centres, coefficients


def _taylor(c, degree):
    """``erf^(k)(c) / k! / STEPS^k`` for k up to ``degree``: the series in ``u = STEPS (x - c)``;
    ``erf^(k)(c) = 2/sqrt(pi) (-1)^(k-1) H_(k-1)(c) exp(-c^2)``, ``H`` Hermite's."""
    slope = 2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-c * c)
    hermite = [mpmath.mpf(1), 2 * c]  # H_0, H_1; H_(n+1) = 2c H_n - 2n H_(n-1)
    while len(hermite) < degree:
        m = len(hermite) - 1
        hermite.append(2 * c * hermite[m] - 2 * m * hermite[m - 1])
    return [mpmath.erf(c)] + [(-1) ** (k - 1) * hermite[k - 1] * slope / math.factorial(k) /
                              mpmath.mpf(STEPS) ** k for k in range(1, degree + 1)]


def erf(x):
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``, elementwise.

    Parameters
    ----------
    x : array_like
        float32 input gives float32 (computed in float64); anything else float64.

    Returns
    -------
    ndarray
        ``erf(+-0) = +-0``, ``erf(+-inf) = +-1``, ``erf(nan) = nan``.

    Examples
    --------
    >>> round(float(erf(1.0)), 12)
    0.84270079295
    """
    global _table
    if _table is None:
        with _building:  # one thread builds it, the others wait for it
            if _table is None:
                _table = _build()
    x = np.asarray(x)
    flat = x.reshape(-1)
    out = np.empty(x.shape, np.float32 if x.dtype == np.float32 else np.float64)
    values = out.reshape(-1)
    n = min(flat.size, _CHUNK)
    scratch = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n, np.intp)
    with np.errstate(invalid="ignore"):  # a NaN's interval number: any, clipped; u is NaN
        for lo in range(0, flat.size, _CHUNK):
            hi = min(lo + _CHUNK, flat.size)
            _erf_into(flat[lo:hi], values[lo:hi], *(a[:hi - lo] for a in scratch))
    return out


def _erf_into(x, out, v, u, term, result, index):
    centres, coefficients = _table
    np.copyto(v, x, casting="unsafe")
    np.abs(v, out=u)
    np.minimum(u, TOP, out=u)  # NaN stays NaN
    u *= STEPS
    np.copyto(index, u, casting="unsafe")  # the interval; TOP itself ends the last one
    np.take(centres, index, out=term, mode="clip")
    u -= term  # the offset from the centre, in units of 1/STEPS: at most 1/2 (interval 0: 1)
    np.take(coefficients[DEGREE], index, out=result, mode="clip")
    for k in range(DEGREE - 1, -1, -1):
        result *= u
        np.take(coefficients[k], index, out=term, mode="clip")
        result += term
    np.copysign(result, v, out=result)
    np.copyto(out, result, casting="unsafe")


def step(x, at0):
    """The step ``Heaviside(x, at0)`` as torch's ReLU mask: 0 where ``x < 0``, ``at0`` where
    ``x == 0``, else 1, NaN included (torch's ReLU backward is ``x <= 0 ? 0 : g``, so a NaN
    input passes the gradient on; ``np.heaviside`` gives NaN there). Float input keeps its
    dtype.

    >>> import numpy as np
    >>> step(np.array([-1.0, 0.0, 2.0, np.nan], np.float32), 0)
    array([0., 0., 1., 1.], dtype=float32)
    >>> step(np.array([0.0, 3.0]), 1)
    array([1., 1.])
    """
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    out = np.logical_not(np.less_equal(x, 0)).astype(dtype)
    return np.where(x == 0, dtype.type(at0), out) if at0 else out
