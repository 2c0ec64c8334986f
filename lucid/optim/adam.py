"""Adam and AdamW with torch's update order and bias correction (non-fused, single-tensor)."""
from __future__ import annotations

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

    BAKED = ("betas", "eps", "weight_decay", "amsgrad", "maximize")

    def _state_names(self, group):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _scalars(self, group, state):
        lr, (b1, b2) = group["lr"], group["betas"]
        t = state.get("step", 0) + 1
        bias1, bias2 = 1 - b1 ** t, 1 - b2 ** t
        scalars = {"step_size": lr / bias1, "bias2_sqrt": bias2 ** 0.5}
        if self.decoupled and group["weight_decay"]:
            scalars["decay"] = 1 - lr * group["weight_decay"]
        return scalars

    def _traced_update(self, ns, x, g, arrays, scalars, group):
        (b1, b2), eps, wd = group["betas"], group["eps"], group["weight_decay"]
        g = -g if group["maximize"] else g
        if wd and self.decoupled:
            x = x * scalars["decay"]
        elif wd:
            g = g + wd * x
        m = arrays["exp_avg"]
        m = m + (g - m) * (1 - b1)  # torch's lerp with a weight below 0.5
        v = arrays["exp_avg_sq"] * b2 + (1 - b2) * g * g
        new = {"exp_avg": m, "exp_avg_sq": v}
        if group["amsgrad"]:
            v = new["max_exp_avg_sq"] = ns.maximum(arrays["max_exp_avg_sq"], v)
        denom = ns.sqrt(v) / scalars["bias2_sqrt"] + eps
        return x - scalars["step_size"] * (m / denom), new

    def _advance(self, state, new):
        state["step"] = state.get("step", 0) + 1
        state.update(new)


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay ``x *= 1 - lr * weight_decay`` first
    (default 1e-2)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
