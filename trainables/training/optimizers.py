"""Optimizers of the image trial by name, and RMSProp with Nesterov momentum (not a PyTorch built-in).

    >>> from trainables.training.optimizers import build_optimizer
    >>> opt = build_optimizer("rmsprop_nesterov", model.parameters(), lr=1e-3, momentum=0.9, alpha=0.9)

Names (`OPTIMIZERS`) and the hyperparameters each one reads (all config values of
trainables.image.trial.ClassifyConfig; `weight_decay` is an L2 penalty added to the gradient by
the optimizer, except adamw's, which is decoupled):

| name | update | reads |
| --- | --- | --- |
| sgd | SGD with classical (heavy-ball) momentum, torch's form | momentum |
| nesterov | SGD with Nesterov momentum (torch's form: parameters stored at the look-ahead point) | momentum > 0 |
| adagrad | Adagrad (Duchi et al.) | eps (default 1e-10) |
| rmsprop | RMSProp (torch's; with classical momentum when rmsprop_momentum > 0) | alpha, rmsprop_momentum, eps (1e-8) |
| rmsprop_nesterov | RMSProp with Nesterov momentum (`RMSPropNesterov`, below) | alpha, momentum, eps (1e-8) |
| adadelta | Adadelta (Zeiler); `lr` scales its step (1.0 is Zeiler's) | rho, eps (1e-6) |
| adam, adamw | Adam (Kingma & Ba), AdamW (decoupled weight decay) | betas, eps (1e-8) |

`eps=0` picks each optimizer's usual value (`EPS_DEFAULTS`, torch's defaults).
"""

from __future__ import annotations

from typing import Iterable

import torch

OPTIMIZERS = ("sgd", "nesterov", "adagrad", "rmsprop", "rmsprop_nesterov", "adadelta", "adam", "adamw")
EPS_DEFAULTS = {"adagrad": 1e-10, "adadelta": 1e-6, "rmsprop": 1e-8, "rmsprop_nesterov": 1e-8, "adam": 1e-8,
                "adamw": 1e-8}


class RMSPropNesterov(torch.optim.Optimizer):
    """RMSProp with Nesterov momentum: Goodfellow, Bengio & Courville, *Deep Learning*, Algorithm 8.6.

    The algorithm, with learning rate eps_lr, decay rate rho (`alpha` here, torch's name in RMSprop),
    momentum a and velocity v (zero at the start):

        interim point   t~ = t + a v
        gradient        g  = grad L(t~)
        accumulate      r  = rho r + (1 - rho) g*g
        velocity        v  = a v - eps_lr g / sqrt(r)
        apply           t  = t + v

    Numerical stability: the book's Algorithm 8.6 divides by sqrt(r) alone (its plain RMSProp, 8.5, adds a
    small delta). Here the division is by `sqrt(r) + eps` (eps = 1e-8 by default), as torch's RMSprop does,
    so that a parameter whose gradients have all been zero gets a zero step instead of 0/0.

    Stored parameters: like torch's Nesterov SGD, the parameters held by the model are the look-ahead
    point p = t + a v, so the gradient the training loop computes at p is the gradient at the interim
    point. With v = lr * m (m the velocity per unit learning rate, the buffer kept in the state), one step
    (derived in the test) is

        d = g / (sqrt(r) + eps)      m = a m - d      p = p + lr * (a m - d)

    which at a constant learning rate is exactly Algorithm 8.6 (p after each step = t + a v of the book).
    When the learning rate changes between steps, m holds past directions without their learning rates
    (as torch's SGD momentum buffer does), so every step is **lr times a direction that does not depend on
    lr**: a caller may rescale a replica's update by scaling its lr alone (population training relies on it).
    `weight_decay` adds wd * p to the gradient (L2), evaluated at the stored point.
    """

    def __init__(self, params, lr: float = 1e-3, alpha: float = 0.99, momentum: float = 0.9, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not 0.0 <= alpha < 1.0 or not 0.0 <= momentum < 1.0:
            raise ValueError(f"RMSPropNesterov: need lr, eps, weight_decay >= 0 and alpha, momentum in [0, 1); got "
                             f"lr={lr}, alpha={alpha}, momentum={momentum}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "momentum": momentum, "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, a, eps, wd = group["lr"], group["alpha"], group["momentum"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["square_avg"] = torch.zeros_like(p)
                    state["velocity"] = torch.zeros_like(p)  # m: velocity per unit learning rate
                state["step"] += 1
                r, m = state["square_avg"], state["velocity"]
                r.mul_(rho).addcmul_(g, g, value=1 - rho)
                d = g / (r.sqrt() + eps)
                m.mul_(a).sub_(d)
                p.add_(m * a - d, alpha=lr)
        return loss


def build_optimizer(name: str, params: Iterable, *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                    alpha: float = 0.99, rho: float = 0.9, betas: tuple[float, float] = (0.9, 0.999),
                    eps: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer `name` (one of OPTIMIZERS) over `params`; eps=0 means EPS_DEFAULTS[name]."""
    eps = eps or EPS_DEFAULTS.get(name, 0.0)
    wd = weight_decay
    if name in ("sgd", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=name == "nesterov", weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=eps, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=wd)
    if name == "rmsprop_nesterov":
        return RMSPropNesterov(params, lr=lr, alpha=alpha, momentum=momentum, eps=eps, weight_decay=wd)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=wd)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
