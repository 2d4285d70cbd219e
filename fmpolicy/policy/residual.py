"""ResFT-FM: a frozen pretrained field plus a residual that is contracting by construction.

``v(x, t, o) = v_frozen(x, t, o) + r(x, t, o)`` with the affine residual
``r = -P(t, o) (x - mu(t, o))``, ``P = L L^T + diag(softplus(d)) + eps I``
(``x`` is the flattened action chunk). ``dr/dx = -P`` is symmetric with every
eigenvalue ``<= -eps``, whatever the weights: the residual contracts at rate at
least ``eps``, and the whole field wherever ``eps`` exceeds the largest
eigenvalue of the frozen field's symmetric Jacobian (measured by ``diagnose``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fmpolicy.policy.model import FlowModel, FlowSampling
from fmpolicy.policy.normalizer import MinMaxNormalizer
from fmpolicy.policy.unet import SinusoidalEmbedding


class AffineContraction(nn.Module):
    """``r(x, t, o) = -P(t, o) (x - mu(t, o))`` with ``P >= eps I``."""

    def __init__(self, dim: int, cond_dim: int, hidden: int, rank: int, eps: float, time_scale: float) -> None:
        super().__init__()
        self.dim, self.rank, self.eps, self.time_scale = dim, rank, eps, time_scale
        self.time_embed = SinusoidalEmbedding(64)
        self.mlp = nn.Sequential(
            nn.Linear(64 + cond_dim, hidden),
            nn.Mish(),
            nn.Linear(hidden, hidden),
            nn.Mish(),
            nn.Linear(hidden, dim * (2 + rank)),
        )
        # Start near the pretrained field: mu = 0, diag = softplus(-6) ~ 0.0025 and a small random L
        # (L = 0 exactly would be a saddle: P = L L^T has zero gradient with respect to L there).
        nn.init.zeros_(self.mlp[-1].weight)
        with torch.no_grad():
            self.mlp[-1].bias.zero_()
            self.mlp[-1].bias[dim : 2 * dim] = -6.0
            self.mlp[-1].bias[2 * dim :].normal_(0.0, 0.05)

    def parts(self, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mu (B, D)``, diagonal ``(B, D)`` and low-rank factor ``L (B, D, rank)`` of ``P - eps I``."""
        h = self.mlp(torch.cat([self.time_embed(t * self.time_scale), cond], dim=-1))
        mu, d, low = h.split([self.dim, self.dim, self.dim * self.rank], dim=-1)
        return mu, F.softplus(d), low.view(-1, self.dim, self.rank)

    def precision(self, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The matrix ``P (B, D, D)`` (for diagnostics and tests)."""
        _, diag, low = self.parts(t, cond)
        eye = torch.eye(self.dim, device=diag.device)
        return low @ low.transpose(1, 2) + torch.diag_embed(diag) + self.eps * eye

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        mu, diag, low = self.parts(t, cond)
        y = x.flatten(1) - mu
        py = (self.eps + diag) * y + (low @ (low.transpose(1, 2) @ y[..., None]))[..., 0]
        return -py.view_as(x)


class ResidualFlowModel(FlowSampling, nn.Module):
    """Frozen pretrained ``FlowModel`` (``base``) plus a contracting ``residual``."""

    def __init__(self, obs_dim: int, action_dim: int, policy_cfg: dict[str, Any], method_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.base = FlowModel(obs_dim, action_dim, policy_cfg)
        self.base.requires_grad_(False)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.horizon, self.n_obs_steps = self.base.horizon, self.base.n_obs_steps
        rc = method_cfg["residual"]
        self.residual = AffineContraction(
            dim=self.horizon * action_dim,
            cond_dim=obs_dim * self.n_obs_steps,
            hidden=rc["hidden"],
            rank=rc["rank"],
            eps=rc["eps"],
            time_scale=self.base.time_scale,
        )

    @property
    def obs_norm(self) -> MinMaxNormalizer:
        return self.base.obs_norm

    @property
    def action_norm(self) -> MinMaxNormalizer:
        return self.base.action_norm

    def condition(self, obs: torch.Tensor) -> torch.Tensor:
        return self.base.condition(obs)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.base.velocity(x, t, cond) + self.residual(x, t, cond)

    def train(self, mode: bool = True) -> ResidualFlowModel:
        super().train(mode)
        self.base.eval()  # the frozen field never changes mode
        return self
