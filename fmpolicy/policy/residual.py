"""ResFT-FM: a frozen pretrained field plus a residual that is contracting by construction.

``v(x, t, o) = v_frozen(x, t, o) + r(x, t, o)`` (``x`` is the flattened action chunk)
with one of two residuals (``method.residual.form``):

* ``affine``: ``r = -P(t, o) (x - mu(t, o))``, ``P = L L^T + diag(softplus(d)) + eps I``;
  ``dr/dx = -P``.
* ``convex_potential``: ``r = -grad_x phi(x, t, o)``, ``phi = icnn(x) + eps/2 ||x - mu||^2``
  with an input-convex network (nonnegative hidden-to-hidden and output weights, softplus);
  ``dr/dx = -Hessian(phi)``, nonlinear in ``x``.

Both are parametrized through the drift ``b(t, o)`` rather than the centre ``mu``:
``r = -P x + b`` (``mu = P^-1 b``) and ``phi = icnn(x) + eps/2 ||x||^2 - b.x``, the same
functions. With ``mu`` itself as output the shift learns only as fast as ``P`` grows from
its small start; with ``b`` it learns at once (held-out reconstruction error after 300 steps
on the default pipeline: 0.00644 with ``mu``, 0.00522 with ``b``, pretrained 0.00615).

Either way ``dr/dx`` is symmetric with every eigenvalue ``<= -eps``, whatever the
weights: the residual contracts at rate at least ``eps``, and the whole field
wherever ``eps`` exceeds the largest eigenvalue of the frozen field's symmetric
Jacobian (measured by ``diagnose``).

``method.residual.time_power = p`` gates the residual by ``t^p``: ``v = v_frozen + t^p r``,
whose rate ``eps t^p`` is strongest near ``t = 1``, where the pretrained field already
contracts onto the data, and vanishes at ``t = 0``, where a residual cannot help (DESIGN.md);
a large ``p`` applies it only late in the integration. ``p = 0`` is the ungated residual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fmpolicy.errors import UserError
from fmpolicy.policy.model import FlowModel, FlowSampling
from fmpolicy.policy.normalizer import MinMaxNormalizer
from fmpolicy.policy.unet import SinusoidalEmbedding


def _condition_mlp(cond_dim: int, hidden: int, out: int) -> nn.Sequential:
    """``[time embedding, observation condition] -> out``, last layer zeroed (the caller sets its bias)."""
    mlp = nn.Sequential(
        nn.Linear(64 + cond_dim, hidden), nn.Mish(), nn.Linear(hidden, hidden), nn.Mish(), nn.Linear(hidden, out)
    )
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


class AffineContraction(nn.Module):
    """``r(x, t, o) = -P(t, o) (x - mu(t, o))`` with ``P >= eps I``."""

    def __init__(self, dim: int, cond_dim: int, hidden: int, rank: int, eps: float, time_scale: float) -> None:
        super().__init__()
        self.dim, self.rank, self.eps, self.time_scale = dim, rank, eps, time_scale
        self.time_embed = SinusoidalEmbedding(64)
        self.mlp = _condition_mlp(cond_dim, hidden, dim * (2 + rank))
        # Start near the pretrained field: b = 0, diag = softplus(-6) ~ 0.0025 and a small random L
        # (L = 0 exactly would be a saddle: P = L L^T has zero gradient with respect to L there).
        with torch.no_grad():
            self.mlp[-1].bias[dim : 2 * dim] = -6.0
            self.mlp[-1].bias[2 * dim :].normal_(0.0, 0.05)

    def parts(self, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Drift ``b = P mu (B, D)``, diagonal ``(B, D)`` and low-rank factor ``L (B, D, rank)`` of ``P - eps I``."""
        h = self.mlp(torch.cat([self.time_embed(t * self.time_scale), cond], dim=-1))
        drift, d, low = h.split([self.dim, self.dim, self.dim * self.rank], dim=-1)
        return drift, F.softplus(d), low.view(-1, self.dim, self.rank)

    def precision(self, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The matrix ``P (B, D, D)`` (for diagnostics and tests)."""
        _, diag, low = self.parts(t, cond)
        eye = torch.eye(self.dim, device=diag.device)
        return low @ low.transpose(1, 2) + torch.diag_embed(diag) + self.eps * eye

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        drift, diag, low = self.parts(t, cond)
        y = x.flatten(1)
        py = (self.eps + diag) * y + (low @ (low.transpose(1, 2) @ y[..., None]))[..., 0]
        return (drift - py).view_as(x)


class ConvexPotentialContraction(nn.Module):
    """``r(x, t, o) = -grad_x phi(x, t, o)``, ``phi = icnn(x) + eps/2 ||x||^2 - b(t, o).x``.

    ``icnn(x) = sum_k w_k softplus(a_K)``, ``a_1 = A_0 x + c_0(t, o)``,
    ``a_{k+1} = W_k softplus(a_k) + A_k x + c_k(t, o)`` with ``W_k, w >= 0``: convex in ``x``
    for any ``c``. Its gradient is written out (backpropagation by hand through the layers), so
    ``r`` is a plain differentiable function that training, ``vmap`` and ``jacrev`` all see through.
    """

    def __init__(self, dim: int, cond_dim: int, hidden: int, layers: int, eps: float, time_scale: float) -> None:
        super().__init__()
        self.dim, self.hidden, self.layers, self.eps, self.time_scale = dim, hidden, layers, eps, time_scale
        self.time_embed = SinusoidalEmbedding(64)
        self.mlp = _condition_mlp(cond_dim, hidden, dim + layers * hidden)  # b and the biases c_k
        self.x_weights = nn.ParameterList([nn.Parameter(torch.randn(hidden, dim) / dim**0.5) for _ in range(layers)])
        # nonnegative weights as |raw|: Adam moves raw by about lr per step whatever its size, so a
        # small |raw| start gives a residual near -eps x + b that still trains at once
        self.z_weights = nn.ParameterList(
            [nn.Parameter(torch.randn(hidden, hidden) / hidden) for _ in range(layers - 1)]
        )
        self.out_weight = nn.Parameter(torch.full((hidden,), 1e-3))

    def parts(self, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.mlp(torch.cat([self.time_embed(t * self.time_scale), cond], dim=-1))
        drift, biases = h.split([self.dim, self.layers * self.hidden], dim=-1)
        return drift, list(biases.split(self.hidden, dim=-1))

    def preactivations(self, x: torch.Tensor, biases: list[torch.Tensor]) -> list[torch.Tensor]:
        """``a_1 .. a_K`` for flat ``x (B, D)``."""
        pre: list[torch.Tensor] = []
        for k in range(self.layers):
            a = x @ self.x_weights[k].T + biases[k]
            if k:
                a = a + F.softplus(pre[-1]) @ self.z_weights[k - 1].abs().T
            pre.append(a)
        return pre

    def potential(self, x: torch.Tensor, biases: list[torch.Tensor]) -> torch.Tensor:
        """``icnn(x)`` per sample ``(B,)`` (the field uses only its gradient)."""
        return F.softplus(self.preactivations(x, biases)[-1]) @ self.out_weight.abs()

    def potential_grad(self, x: torch.Tensor, biases: list[torch.Tensor]) -> torch.Tensor:
        """``grad_x icnn(x)`` for flat ``x (B, D)``, by hand-written backpropagation."""
        pre = self.preactivations(x, biases)
        delta = self.out_weight.abs() * torch.sigmoid(pre[-1])  # d icnn / d a_K
        grad = delta @ self.x_weights[-1]
        for k in range(self.layers - 2, -1, -1):
            delta = (delta @ self.z_weights[k].abs()) * torch.sigmoid(pre[k])
            grad = grad + delta @ self.x_weights[k]
        return grad

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        drift, biases = self.parts(t, cond)
        flat = x.flatten(1)
        grad_phi = self.potential_grad(flat, biases) + self.eps * flat - drift
        return -grad_phi.view_as(x)


class ResidualFlowModel(FlowSampling, nn.Module):
    """Frozen pretrained ``FlowModel`` (``base``) plus a contracting ``residual``."""

    def __init__(self, shape_meta: dict[str, Any], policy_cfg: dict[str, Any], method_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.base = FlowModel(shape_meta, policy_cfg)
        self.base.requires_grad_(False)
        self.shape_meta, self.action_dim = shape_meta, self.base.action_dim
        self.horizon, self.n_obs_steps = self.base.horizon, self.base.n_obs_steps
        rc = method_cfg["residual"]
        shape = {
            "dim": self.horizon * self.action_dim,
            "cond_dim": self.base.obs_encoder.out_dim,
            "hidden": rc["hidden"],
            "eps": rc["eps"],
            "time_scale": self.base.time_scale,
        }
        self.time_power = float(rc.get("time_power", 0.0))
        form = rc.get("form", "affine")
        if form == "affine":
            self.residual: nn.Module = AffineContraction(rank=rc["rank"], **shape)
        elif form == "convex_potential":
            self.residual = ConvexPotentialContraction(layers=rc["layers"], **shape)
        else:
            raise UserError(f"method.residual.form '{form}' unknown: choose affine or convex_potential")

    @property
    def obs_encoder(self) -> nn.Module:
        return self.base.obs_encoder

    @property
    def action_norm(self) -> MinMaxNormalizer:
        return self.base.action_norm

    def condition(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.base.condition(obs)

    def rate(self, t: float) -> float:
        """The residual's guaranteed contraction rate at time ``t``: ``eps t^p``."""
        return self.residual.eps * t**self.time_power

    def gated_residual(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gate = t.pow(self.time_power).view(-1, *[1] * (x.dim() - 1))  # 0^0 = 1: p = 0 is no gate
        return gate * self.residual(x, t, cond)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.base.velocity(x, t, cond) + self.gated_residual(x, t, cond)

    def train(self, mode: bool = True) -> ResidualFlowModel:
        super().train(mode)
        self.base.eval()  # the frozen field never changes mode
        return self
