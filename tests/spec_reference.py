"""Independent float64 NumPy reference for BatchNorm1d and Linear, written from SPEC.md.

Nothing here imports lucid. Every function works in float64 whatever the input dtype.
"""
import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def reduce_axes(ndim):
    """Axes reduced per channel: (0,) for (N, C), (0, 2) for (N, C, L)."""
    if ndim == 2:
        return (0,)
    if ndim == 3:
        return (0, 2)
    raise ValueError(f"expected 2D or 3D input (got {ndim}D input)")


def per_channel(v, ndim):
    """Reshape a (C,) vector so it broadcasts against an (N, C) or (N, C, L) array."""
    v = _f64(v)
    return v.reshape(1, -1) if ndim == 2 else v.reshape(1, -1, 1)


def count_per_channel(shape):
    """M = N or N * L."""
    return int(np.prod(shape)) // int(shape[1])


def batch_stats(x):
    """Per-channel mean and biased variance (sum((x - mean)^2) / M) and M."""
    x = _f64(x)
    ax = reduce_axes(x.ndim)
    M = count_per_channel(x.shape)
    mean = x.sum(axis=ax) / M
    var = ((x - per_channel(mean, x.ndim)) ** 2).sum(axis=ax) / M
    return mean, var, M


def forward_train(x, gamma=None, beta=None, eps=1e-5):
    """Train-mode (batch statistics) forward. Returns y and a cache for backward_train."""
    x = _f64(x)
    C = x.shape[1]
    gamma = np.ones(C) if gamma is None else _f64(gamma)
    beta = np.zeros(C) if beta is None else _f64(beta)
    mean, var, M = batch_stats(x)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - per_channel(mean, x.ndim)) * per_channel(rstd, x.ndim)
    y = per_channel(gamma, x.ndim) * xhat + per_channel(beta, x.ndim)
    cache = dict(mean=mean, var=var, rstd=rstd, xhat=xhat, M=M, gamma=gamma)
    return y, cache


def backward_train(dy, cache):
    """dx, dgamma, dbeta of the train-mode forward (SPEC "The backward pass, correctly")."""
    xhat, rstd, M, gamma = cache["xhat"], cache["rstd"], cache["M"], cache["gamma"]
    dy = _f64(dy)
    nd = dy.ndim
    ax = reduce_axes(nd)
    sum_dy = dy.sum(axis=ax)
    sum_dy_xhat = (dy * xhat).sum(axis=ax)
    dx = per_channel(gamma * rstd / M, nd) * (
        M * dy - per_channel(sum_dy, nd) - xhat * per_channel(sum_dy_xhat, nd)
    )
    return dx, sum_dy_xhat, sum_dy


def forward_eval(x, running_mean, running_var, gamma=None, beta=None, eps=1e-5):
    """Eval-mode forward with running statistics. Returns y and a cache for backward_eval."""
    x = _f64(x)
    nd = x.ndim
    C = x.shape[1]
    gamma = np.ones(C) if gamma is None else _f64(gamma)
    beta = np.zeros(C) if beta is None else _f64(beta)
    rstd = 1.0 / np.sqrt(_f64(running_var) + eps)
    xhat = (x - per_channel(running_mean, nd)) * per_channel(rstd, nd)
    y = per_channel(gamma, nd) * xhat + per_channel(beta, nd)
    return y, dict(xhat=xhat, rstd=rstd, gamma=gamma)


def backward_eval(dy, cache):
    dy = _f64(dy)
    nd = dy.ndim
    ax = reduce_axes(nd)
    dx = dy * per_channel(cache["gamma"] * cache["rstd"], nd)
    return dx, (dy * cache["xhat"]).sum(axis=ax), dy.sum(axis=ax)


def update_running(running_mean, running_var, num_batches_tracked, mean, var, M, momentum):
    """One train-mode running-stat update. Returns (running_mean, running_var, nbt)."""
    nbt = num_batches_tracked + 1
    f = (1.0 / nbt) if momentum is None else float(momentum)
    new_mean = (1.0 - f) * _f64(running_mean) + f * mean
    new_var = (1.0 - f) * _f64(running_var) + f * var * M / (M - 1)
    return new_mean, new_var, nbt


class RefBatchNorm1d:
    """Stateful float64 model of nn.BatchNorm1d (forward, backward, running stats)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, weight=None, bias=None):
        C = num_features
        self.C, self.eps, self.momentum = C, eps, momentum
        self.affine, self.track = affine, track_running_stats
        self.weight = (np.ones(C) if weight is None else _f64(weight)) if affine else None
        self.bias = (np.zeros(C) if bias is None else _f64(bias)) if affine else None
        if track_running_stats:
            self.running_mean = np.zeros(C)
            self.running_var = np.ones(C)
            self.num_batches_tracked = 0
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self.training = True
        self._cache = None

    def train(self):
        self.training = True

    def eval(self):
        self.training = False

    def forward(self, x):
        x = _f64(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.ndim}D input)")
        if x.shape[1] != self.C:
            raise ValueError(f"expected {self.C} channels, got {x.shape[1]}")
        use_batch = self.training or not self.track
        if use_batch:
            M = count_per_channel(x.shape)
            if self.training and M == 1:
                raise ValueError(
                    "Expected more than 1 value per channel when training, "
                    f"got input size {tuple(x.shape)}")
            y, cache = forward_train(x, self.weight, self.bias, self.eps)
            if self.training and self.track:
                self.running_mean, self.running_var, self.num_batches_tracked = update_running(
                    self.running_mean, self.running_var, self.num_batches_tracked,
                    cache["mean"], cache["var"], cache["M"], self.momentum)
            self._cache = ("train", cache)
        else:
            y, cache = forward_eval(x, self.running_mean, self.running_var,
                                    self.weight, self.bias, self.eps)
            self._cache = ("eval", cache)
        return y

    __call__ = forward

    def backward(self, dy):
        """Returns (dx, dgamma, dbeta); dgamma/dbeta are None when affine=False."""
        kind, cache = self._cache
        dx, dg, db = backward_train(dy, cache) if kind == "train" else backward_eval(dy, cache)
        if not self.affine:
            return dx, None, None
        return dx, dg, db


def linear_forward(x, W, b=None):
    y = _f64(x) @ _f64(W).T
    if b is not None:
        y = y + _f64(b)
    return y


def linear_backward(dy, x, W):
    """dx, dW, db for y = x @ W.T + b."""
    dy = _f64(dy)
    return dy @ _f64(W), dy.T @ _f64(x), dy.sum(axis=0)
