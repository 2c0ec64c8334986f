"""Hand-written NumPy BatchNorm1d implementations the benchmark compares lucid with.

``handwritten_*``: the closed form an expert writes by hand (a few temporaries).
``naive_*``: one temporary per primitive, the way an eager framework runs the
primitive graph forward and then backward.
"""
import numpy as np


def _axes(x):
    return (0,) if x.ndim == 2 else (0, 2)


def _channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def handwritten_train(x, gamma, beta, running_mean, running_var, dy, eps=1e-5, momentum=0.1):
    axes = _axes(x)
    m = x.size // x.shape[1]
    g, b = _channel(gamma, x), _channel(beta, x)
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * rstd
    y = xhat * g + b
    dbeta = dy.sum(axis=axes, keepdims=True)
    dgamma = (dy * xhat).sum(axis=axes, keepdims=True)
    dx = (g * rstd / m) * (m * dy - dbeta - xhat * dgamma)
    new_mean = (1 - momentum) * running_mean + momentum * mean.ravel()
    new_var = (1 - momentum) * running_var + momentum * var.ravel() * (m / (m - 1))
    return y, dx, dgamma.ravel(), dbeta.ravel(), new_mean, new_var


def handwritten_eval(x, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    return x * _channel(scale, x) + _channel(beta - running_mean * scale, x)


def naive_train(x, gamma, beta, running_mean, running_var, dy, eps=1e-5, momentum=0.1):
    axes = _axes(x)
    m = x.size // x.shape[1]
    g, b = _channel(gamma, x), _channel(beta, x)
    s = np.sum(x, axis=axes, keepdims=True)
    mean = s / m
    xc = x - mean
    sq = xc * xc
    var = np.sum(sq, axis=axes, keepdims=True) / m
    ve = var + eps
    rstd = 1.0 / np.sqrt(ve)
    xhat = xc * rstd
    gx = xhat * g
    y = gx + b
    # backward, primitive by primitive
    dbeta = np.sum(dy, axis=axes, keepdims=True)
    dxhat = dy * g
    dgamma = np.sum(dy * xhat, axis=axes, keepdims=True)
    dxc1 = dxhat * rstd
    t = dxhat * xc
    drstd = np.sum(t, axis=axes, keepdims=True)
    dve = drstd * (-0.5) / (ve * np.sqrt(ve))
    dsq = np.broadcast_to(dve / m, x.shape)
    dxc2 = dsq * xc
    dxc3 = dsq * xc
    dxc = dxc1 + dxc2
    dxc = dxc + dxc3
    dmean = -np.sum(dxc, axis=axes, keepdims=True)
    dx = dxc + np.broadcast_to(dmean / m, x.shape)
    new_mean = (1 - momentum) * running_mean + momentum * mean.ravel()
    new_var = (1 - momentum) * running_var + momentum * var.ravel() * (m / (m - 1))
    return y, dx, dgamma.ravel(), dbeta.ravel(), new_mean, new_var


def naive_eval(x, gamma, beta, running_mean, running_var, eps=1e-5):
    xc = x - _channel(running_mean, x)
    ve = _channel(running_var, x) + eps
    rstd = 1.0 / np.sqrt(ve)
    xhat = xc * rstd
    return xhat * _channel(gamma, x) + _channel(beta, x)
