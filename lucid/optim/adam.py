"""Adam and AdamW with torch's update order and bias correction (non-fused, single-tensor)."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adam(Optimizer):
    """torch.optim.Adam: L2 ``weight_decay`` is added to the gradient; ``amsgrad`` keeps
    the running maximum of the second moment."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _check(self, group):
        super()._check(group)
        b1, b2 = group["betas"]
        if not 0 <= b1 < 1 or not 0 <= b2 < 1:
            raise ValueError(f"Invalid beta parameters: {group['betas']}")
        if not group["eps"] >= 0:
            raise ValueError(f"Invalid epsilon value: {group['eps']}")
        if not group["weight_decay"] >= 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    def _update(self, x, g, state, group):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        g = -g if group["maximize"] else g
        if wd and self.decoupled:
            x = x * (1 - lr * wd)
        elif wd:
            g = g + wd * x
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(x), exp_avg_sq=np.zeros_like(x))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(x)
        state["step"] += 1
        t = state["step"]
        m = state["exp_avg"] = state["exp_avg"] + (g - state["exp_avg"]) * (1 - b1)  # lerp
        v = state["exp_avg_sq"] = state["exp_avg_sq"] * b2 + (1 - b2) * g * g
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
        bias1, bias2 = 1 - b1 ** t, 1 - b2 ** t
        step_size = lr / bias1
        denom = np.sqrt(v) / np.sqrt(bias2) + eps
        return x - step_size * (m / denom)


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay ``x *= 1 - lr * weight_decay`` first
    (default 1e-2)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
