"""Independent references the tests share, in float64: central finite differences and
BatchNorm1d's train step."""
import numpy as np


def numeric_grad(fn, x, w, eps=1e-6):
    """d sum(w * fn(x)) / dx by central differences, float64."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = (np.sum(w * fn(up)) - np.sum(w * fn(down))) / (2 * eps)
    return g


def batchnorm_reference(x, dy, gamma, eps=1e-5):
    """Train-mode BatchNorm1d forward (without beta) and backward in float64, from SPEC.md:
    ``(y, dx, dgamma, dbeta)``."""
    x, dy, gamma = (np.asarray(a, np.float64) for a in (x, dy, gamma))
    axes = (0,) if x.ndim == 2 else (0, 2)
    pc = (1, -1) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    mean = x.sum(axes, keepdims=True) / m
    var = ((x - mean) ** 2).sum(axes, keepdims=True) / m
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * rstd
    y = xhat * gamma.reshape(pc)
    s1, s2 = dy.sum(axes, keepdims=True), (dy * xhat).sum(axes, keepdims=True)
    dx = gamma.reshape(pc) * rstd / m * (m * dy - s1 - xhat * s2)
    return y, dx, s2.reshape(-1), s1.reshape(-1)
