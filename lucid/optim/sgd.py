"""SGD with torch's update order: weight decay, momentum (buffer = gradient on the first
step), dampening, nesterov, maximize."""
from __future__ import annotations

from .optimizer import Optimizer


class SGD(Optimizer):
    """torch.optim.SGD.

    Examples
    --------
    >>> import lucid
    >>> p = lucid.nn.Parameter([1.0, 2.0])
    >>> (p * p).sum().backward()
    >>> lucid.optim.SGD([p], lr=0.1).step()
    >>> p.data.tolist()
    [0.800000011920929, 1.600000023841858]
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check(self, group):
        super()._check(group)
        if group["momentum"] < 0:
            raise ValueError(f"Invalid momentum value: {group['momentum']}")
        if group["weight_decay"] < 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    BAKED = ("momentum", "weight_decay", "nesterov", "maximize")

    def _state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] else ()

    def _scalars(self, group, state):
        # torch's first step sets the buffer to the gradient: keep 0 of the (zero) buffer
        # and all of the gradient; later steps keep momentum and 1 - dampening
        first = "momentum_buffer" not in state
        return {"lr": group["lr"], "keep": 0.0 if first else group["momentum"],
                "take": 1.0 if first else 1 - group["dampening"]}

    def _traced_update(self, ns, x, g, arrays, scalars, group):
        g = -g if group["maximize"] else g
        if group["weight_decay"]:
            g = g + group["weight_decay"] * x
        new = {}
        mu = group["momentum"]
        if mu:
            buf = new["momentum_buffer"] = \
                arrays["momentum_buffer"] * scalars["keep"] + scalars["take"] * g
            g = g + mu * buf if group["nesterov"] else buf
        return x - scalars["lr"] * g, new
