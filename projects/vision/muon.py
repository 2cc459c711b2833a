"""Muon for convolution filters beside Nesterov SGD, in one optimiser (Lightning steps one per batch).

Muon (Jordan et al. 2024, kellerjordan.github.io/posts/muon) replaces a weight matrix's momentum update by the
nearest semi-orthogonal matrix, found by a few Newton–Schulz iterations: every direction of the update moves
the weights by the same amount, so rare directions are not drowned by common ones. airbench94_muon applies it
to each conv layer's filter bank (its out × in·k·k matrix), renormalises the bank's weights before every step
instead of decaying them, and trains the biases and the head with Nesterov SGD; it reaches airbench94's 94% in
8 epochs instead of 10.

`torch.optim.Muon` takes only 2-D parameters and decays the weights, so it does not do this job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

# The quintic's coefficients (airbench94_muon's): they maximise the slope at zero, so 3 iterations bring every
# singular value of a normalised matrix into roughly [0.5, 1.5], which trains as well as exactly 1.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalise(matrix: torch.Tensor, steps: int = 3) -> torch.Tensor:
    """A matrix with `matrix`'s singular vectors and its singular values pushed towards 1 (in float32)."""
    a, b, c = NEWTON_SCHULZ
    wide = matrix.shape[0] <= matrix.shape[1]
    x = matrix.float() if wide else matrix.float().T
    x = x / (x.norm() + 1e-7)  # every singular value ≤ 1, where the iteration converges
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


class MuonSGD(torch.optim.Optimizer):
    """Parameter groups with `orthogonalise: True` (conv filter banks) take Muon steps: Nesterov momentum, the
    weights rescaled to unit mean square per filter bank, then a step of `lr` along the orthogonalised update.
    Other groups take torch.optim.SGD's Nesterov steps, with its `weight_decay` (added to the gradient)."""

    def __init__(self, groups: Iterable[dict[str, Any]], momentum: float = 0.85) -> None:
        defaults = {"lr": 0.01, "momentum": momentum, "weight_decay": 0.0, "orthogonalise": False}
        super().__init__(list(groups), defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                gradient = parameter.grad
                if group["weight_decay"] and not group["orthogonalise"]:
                    gradient = gradient.add(parameter, alpha=group["weight_decay"])
                state = self.state[parameter]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(gradient)
                buffer = state["momentum_buffer"].mul_(group["momentum"]).add_(gradient)
                update = gradient.add(buffer, alpha=group["momentum"])  # Nesterov
                if group["orthogonalise"]:
                    parameter.mul_(len(parameter) ** 0.5 / parameter.norm())
                    update = orthogonalise(update.reshape(len(update), -1)).view_as(parameter).to(parameter)
                parameter.add_(update, alpha=-group["lr"])
        return loss
