"""Elementwise functions NumPy lacks, as small vectorised runtime helpers.

The reference executor (:func:`.reference.evaluate`) and generated programs
call the same helper: :data:`.reference.HELPERS` binds it to the name the
generated source uses (``_erf``), and codegen puts that name in the
namespace a program runs in.

:func:`erf` is W. J. Cody's rational Chebyshev approximation (Math. Comp. 23
(1969) 631-637, as in his SPECFUN routine CALERF): ``x P(x^2)/Q(x^2)`` for
``|x| <= 0.46875``, else ``1 - erfc(|x|)`` with ``erfc`` from ``exp(-x^2)``
times a rational function of ``|x|`` (up to 4) or of ``1/x^2`` (beyond).
Relative error is below 1e-15 in float64; float32 input is computed in
float64 and rounded once.

>>> import numpy as np
>>> erf(np.array([0.0, 0.5, -1.0, np.inf]))
array([ 0.        ,  0.52049988, -0.84270079,  1.        ])
"""
from __future__ import annotations

import numpy as np

# erf(x) = x P(x^2) / Q(x^2), |x| <= 0.46875 (A[4] is the leading numerator coefficient)
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
# erfc(x) = exp(-x^2) P(x) / Q(x), 0.46875 < x <= 4
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
# erfc(x) = exp(-x^2) / x (1/sqrt(pi) + P(1/x^2) / Q(1/x^2) / x^2), x > 4
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_ONE_OVER_SQRT_PI = 5.6418958354775628695e-1
_ERFC_ZERO = 26.543  # erfc(x) underflows beyond this, so erf(x) is exactly 1 long before
#: Values per pass: 128 KiB of float64, so a chunk's passes run in cache (measured on 1M
#: normal values: 57 ms whole, 35 ms in chunks of 16384 or 65536, 48 ms in chunks of 4096).
_CHUNK = 1 << 14


def _rational(t, num, den):
    """``(t(...(num[-1] t + num[0]) t ...) + num[n]) / (t(...(t + den[0]) ...) + den[n])``:
    Cody's Horner form, the leading numerator coefficient kept last (in place: fast)."""
    xnum, xden = num[-1] * t, t.copy()
    for p, q in zip(num[:len(den) - 1], den[:-1]):
        xnum += p
        xnum *= t
        xden += q
        xden *= t
    xnum += num[len(den) - 1]
    xden += den[-1]
    xnum /= xden
    return xnum


def _erfc_mid(y):
    """``erfc(y)``, 0.46875 < y <= 4. (Cody splits ``exp(-y^2)`` to keep erfc's relative
    error small; erf = 1 - erfc needs only its absolute error small, so one exp does.)"""
    out = _rational(y, _C, _D)
    out *= np.exp(-y * y)
    return out


def _erfc_tail(y):
    inv = 1.0 / (y * y)
    out = _rational(inv, _P, _Q)
    out *= inv
    np.subtract(_ONE_OVER_SQRT_PI, out, out=out)
    out /= y
    out *= np.exp(-y * y)
    return out


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
    x = np.asarray(x)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    for lo in range(0, flat.size, _CHUNK):  # each chunk's dozen passes stay in cache
        _erf_into(flat[lo:lo + _CHUNK], out[lo:lo + _CHUNK])
    return out.reshape(x.shape).astype(dtype, copy=False)


def _erf_into(x, out):
    y = np.abs(x)
    small = y <= 0.46875
    mid = (y > 0.46875) & (y <= 4.0)
    tail = (y > 4.0) & (y < _ERFC_ZERO)
    far = y >= _ERFC_ZERO  # +-inf too
    xs = x[small]
    out[small] = xs * _rational(xs * xs, _A, _B)
    out[mid] = np.copysign((0.5 - _erfc_mid(y[mid])) + 0.5, x[mid])
    out[tail] = np.copysign((0.5 - _erfc_tail(y[tail])) + 0.5, x[tail])
    out[far] = np.copysign(1.0, x[far])
    out[np.isnan(x)] = np.nan


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
