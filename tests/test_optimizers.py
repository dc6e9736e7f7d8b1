"""The image trial's optimizers: RMSProp with Nesterov momentum against Goodfellow, Bengio & Courville's
Algorithm 8.6 worked by hand, its "lr times a direction" form, and every optimizer name built with the
config's hyperparameters."""

from __future__ import annotations

import pytest
import torch

from trainables.image.trial import ClassifyConfig, make_optimizer
from trainables.training.optimizers import EPS_DEFAULTS, OPTIMIZERS, RMSPropNesterov, build_optimizer

A = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
B = torch.tensor([0.3, 0.1, -1.0, 0.0], dtype=torch.float64)


def loss_fn(theta: torch.Tensor) -> torch.Tensor:
    """A non-quadratic loss, so the gradient at the interim point differs from the one at theta."""
    return (A * theta**3 / 3 + B * theta).sum()


def grad_fn(theta: torch.Tensor) -> torch.Tensor:
    return A * theta**2 + B


def algorithm_8_6(theta, steps: int, lr: float, rho: float, alpha: float, delta: float):
    """Deep Learning, Algorithm 8.6, in plain tensor arithmetic (delta added to sqrt(r), as documented).
    Returns (theta, v) after each step."""
    v = torch.zeros_like(theta)
    r = torch.zeros_like(theta)
    out = []
    for _ in range(steps):
        interim = theta + alpha * v
        g = grad_fn(interim)
        r = rho * r + (1 - rho) * g * g
        v = alpha * v - lr * g / (torch.sqrt(r) + delta)
        theta = theta + v
        out.append((theta, v))
    return out


def test_rmsprop_nesterov_is_algorithm_8_6():
    lr, rho, alpha, delta = 0.01, 0.9, 0.8, 1e-8
    theta0 = torch.tensor([0.5, -0.3, 1.2, 0.0], dtype=torch.float64)
    p = torch.nn.Parameter(theta0.clone())
    opt = RMSPropNesterov([p], lr=lr, alpha=rho, momentum=alpha, eps=delta)
    expected = algorithm_8_6(theta0, 3, lr, rho, alpha, delta)
    for step, (theta, v) in enumerate(expected, start=1):
        opt.zero_grad()
        loss_fn(p).backward()  # the loop's gradient, at the stored point = the interim point theta + alpha v
        opt.step()
        # the parameters are stored at the look-ahead point of the book's (theta, v)
        torch.testing.assert_close(p.detach(), theta + alpha * v, rtol=1e-12, atol=1e-14, msg=f"step {step}")
    assert (expected[0][1] != 0).any()  # so steps 2 and 3 had momentum from step 1


def test_first_step_by_hand():
    """Step 1 written out: r = (1-rho) g^2, v = -lr g / (|g| sqrt(1-rho) + delta), stored p = theta + (1+alpha) v."""
    lr, rho, alpha = 0.1, 0.5, 0.9
    p = torch.nn.Parameter(torch.tensor([2.0, -1.0], dtype=torch.float64))
    g = torch.tensor([0.4, -3.0], dtype=torch.float64)
    opt = RMSPropNesterov([p], lr=lr, alpha=rho, momentum=alpha, eps=0.0)
    p.grad = g.clone()
    opt.step()
    v = -lr * g / torch.sqrt((1 - rho) * g * g)  # = -lr sign(g) / sqrt(1 - rho)
    torch.testing.assert_close(p.detach(), torch.tensor([2.0, -1.0], dtype=torch.float64) + (1 + alpha) * v)


def test_update_is_lr_times_a_direction_independent_of_lr():
    """Same gradients, different learning rates (changed mid-run too): every update scales with the step's lr."""
    torch.manual_seed(0)
    grads = [torch.randn(5, dtype=torch.float64) for _ in range(4)]
    ps = [torch.nn.Parameter(torch.zeros(5, dtype=torch.float64)) for _ in range(2)]
    opts = [RMSPropNesterov([p], lr=lr, alpha=0.9, momentum=0.9, weight_decay=0.0) for p, lr in zip(ps, (0.1, 0.3))]
    for step, g in enumerate(grads):
        if step == 2:
            for opt, lr in zip(opts, (0.05, 0.5)):
                opt.param_groups[0]["lr"] = lr
        before = [p.detach().clone() for p in ps]
        for p, opt in zip(ps, opts):
            p.grad = g.clone()
            opt.step()
        directions = [(p.detach() - b) / opt.param_groups[0]["lr"] for p, b, opt in zip(ps, before, opts)]
        torch.testing.assert_close(directions[0], directions[1], rtol=1e-12, atol=1e-14)


def test_weight_decay_is_l2_on_the_gradient():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    q = torch.nn.Parameter(p.detach().clone())
    with_wd = RMSPropNesterov([p], lr=0.1, momentum=0.5, weight_decay=0.01)
    by_hand = RMSPropNesterov([q], lr=0.1, momentum=0.5)
    p.grad = torch.tensor([0.2, 0.3], dtype=torch.float64)
    q.grad = p.grad + 0.01 * q.detach()
    with_wd.step()
    by_hand.step()
    torch.testing.assert_close(p.detach(), q.detach())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_name_builds_with_the_configs_hyperparameters(name):
    cfg = ClassifyConfig(optimizer=name, lr=0.02, momentum=0.8, rmsprop_momentum=0.7, weight_decay=1e-4,
                         rmsprop_alpha=0.95, adadelta_rho=0.85, adam_beta1=0.8, adam_beta2=0.99)
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(cfg, model.parameters())
    group = opt.param_groups[0]
    assert group["lr"] == 0.02 and group["weight_decay"] == 1e-4
    expected = {"sgd": {"momentum": 0.8, "nesterov": False}, "nesterov": {"momentum": 0.8, "nesterov": True},
                "rmsprop": {"momentum": 0.7, "alpha": 0.95}, "rmsprop_nesterov": {"momentum": 0.8, "alpha": 0.95},
                "adadelta": {"rho": 0.85}, "adam": {"betas": (0.8, 0.99)}, "adamw": {"betas": (0.8, 0.99)},
                "adagrad": {}}[name]
    for key, value in expected.items():
        assert group[key] == value, key
    if name in EPS_DEFAULTS:
        assert group["eps"] == EPS_DEFAULTS[name]  # eps=0: the optimizer's usual value
        assert build_optimizer(name, torch.nn.Linear(3, 2).parameters(), lr=0.1, eps=1e-5).param_groups[0]["eps"] == 1e-5
    model(torch.randn(4, 3)).square().sum().backward()
    before = model.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.weight.detach())


def test_inverted_dropout_equals_scaling_the_weights_by_keep_probability_at_test_time():
    """PyTorch's dropout keeps an activation with probability q = 1 - p and scales it by 1/q during training
    (inverted dropout). The study's description drops without scaling and multiplies the outgoing weights by
    q at test time. The two are one function: with W_standard = W / q the training-time outputs are equal for
    the same masks, and at test time q * W_standard = W is the inverted net in eval mode. And the training-time
    activation is unbiased: its mean over masks is the test-time activation."""
    from trainables.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, in_features=20, widths=(32, 32), dropout_input=0.2, dropout_hidden=0.5)
    layers = list(model.net)
    x = torch.randn(64, 20)
    captured = []
    hooks = [layer.register_forward_hook(lambda m, i, o: captured.append((m.p, i[0], o)))
             for layer in layers if isinstance(layer, torch.nn.Dropout)]
    model.train()
    inverted = model(x)
    for hook in hooks:
        hook.remove()
    masks = []
    for p, inp, out in captured:
        mask = (out != 0).float()
        torch.testing.assert_close(out, inp * mask / (1 - p))  # torch scales the kept units by 1/q
        masks.append(mask)

    def standard(h, weights_scale, masks=None):
        """The description's net: dropout without scaling, each Linear after a dropout layer scaled."""
        drops = iter(masks or [])
        kept = 1.0
        for layer in layers:
            if isinstance(layer, torch.nn.Dropout):
                h = h * next(drops) if masks else h
                kept = 1 - layer.p
            elif isinstance(layer, torch.nn.Linear):
                h = torch.nn.functional.linear(h, layer.weight * weights_scale(kept), layer.bias)
                kept = 1.0
            else:
                h = layer(h)
        return h

    with torch.no_grad():
        # training: W_standard = W / q, masks without scaling
        torch.testing.assert_close(standard(x, lambda q: 1 / q, masks), inverted.detach())
        # testing: q * W_standard = W, no dropout: the inverted net in eval mode
        model.eval()
        torch.testing.assert_close(standard(x, lambda q: q * (1 / q)), model(x))
        # unbiased: the first layer's pre-activation averaged over 4000 training masks is the test-time one
        first = layers[2]
        drop = layers[1]
        drop.train()
        mean = torch.stack([first(drop(x[:4])) for _ in range(4000)]).mean(0)
        torch.testing.assert_close(mean, first(x[:4]), atol=0.05, rtol=0.05)
