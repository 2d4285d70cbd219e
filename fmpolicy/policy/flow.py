"""The method's formulas, in one place (README "Method" mirrors this file).

* Path: ``x_t = (1 - t) x0 + t x1`` with ``x0 ~ N(0, I)``, ``x1 = a``.
* Target velocity: ``u = x1 - x0``; FM loss ``E ||v(x_t, t, o) - u||^2``.
* Time sampling for pretraining: ``uniform``, ``logit_normal`` or ``beta``
  (pi0's: ``t = 0.999 (1 - s)``, ``s ~ Beta(1.5, 1)``, which puts more weight on
  the noisy end, t near 0).
* Reconstruction NLL: ``0.5 ||a - a_hat||^2 / sigma^2 + D log sigma``, averaged
  over the batch, with ``D`` the number of action entries sigma applies to; optionally
  each entry's term weighted (``method.unexecuted_weight``: the chunk's steps the policy
  never executes count less).
"""

from __future__ import annotations

import torch

TIME_SAMPLERS = ("uniform", "logit_normal", "beta")


def sample_time(batch: int, sampler: str = "uniform", device: torch.device | str = "cpu") -> torch.Tensor:
    if sampler == "uniform":
        return torch.rand(batch, device=device)
    if sampler == "logit_normal":
        return torch.sigmoid(torch.randn(batch, device=device))
    if sampler == "beta":
        s = torch.distributions.Beta(1.5, 1.0).sample((batch,)).to(device)
        return 0.999 * (1.0 - s)
    raise ValueError(f"unknown time sampler '{sampler}': choose one of {TIME_SAMPLERS}")


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.view(-1, *([1] * (x1.dim() - 1)))
    return (1.0 - t) * x0 + t * x1


def fm_loss(velocity: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Mean squared error to the conditional target ``u = x1 - x0``."""
    return ((velocity - (x1 - x0)) ** 2).mean()


def gaussian_nll(
    a: torch.Tensor, a_hat: torch.Tensor, log_sigma: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``0.5 ||a - a_hat||^2 / sigma^2 + D log sigma`` per sample, batch-averaged.

    ``log_sigma`` broadcasts against the trailing action dimension: a scalar, or
    one value per action dimension. ``weight`` (broadcasting against one sample,
    e.g. ``(horizon, 1)``) scales each entry's term: a weighted likelihood.
    """
    sq = (a - a_hat) ** 2
    per_entry = 0.5 * sq * torch.exp(-2.0 * log_sigma) + log_sigma
    if weight is not None:
        per_entry = per_entry * weight
    return per_entry.flatten(1).sum(1).mean()
