"""AdamW whose update rounds the same on every CPU.

torch's float32 `sqrt` on the CPU is not correctly rounded: it comes out one unit in the last place off for about
a sixth of inputs, and which ones depends on the machine (an emulated AVX2 CPU and an AVX-512 one disagree with
every kernel pinned otherwise). AdamW takes it of every second moment at every step, so two CPUs' trajectories part
after the first step and training keeps other epochs (docs/evidence.md, "Portable numerics"). This is
torch.optim.AdamW's single-tensor update, operation for operation, with that one square root taken in float64 and
rounded once, which every IEEE machine computes alike.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..errors import InputError


def exact_sqrt(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded square root of a float32 tensor (float64 holds it exactly before the one rounding)."""
    return x.double().sqrt_().to(x.dtype)


class PortableAdamW(torch.optim.Optimizer):
    """torch.optim.AdamW (decoupled weight decay, bias-corrected moments) with exact_sqrt for its denominator."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if not lr >= 0:
            raise InputError(f"learning rate {lr!r}: expected >= 0")
        if not all(0 <= b < 1 for b in betas):
            raise InputError(f"betas {betas!r}: expected two values in [0, 1)")
        if not eps > 0 or not weight_decay >= 0:
            raise InputError(f"eps {eps!r}, weight_decay {weight_decay!r}: expected eps > 0 and weight_decay >= 0")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                p.mul_(1 - lr * group["weight_decay"])
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (exact_sqrt(v) / (1 - beta2**t) ** 0.5).add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
