"""Independent references the tests share: central finite differences in float64."""
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
