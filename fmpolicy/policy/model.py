"""Generative models over normalized action chunks, conditioned on observation history.

Every model exposes ``sample(cond, noise, solver, nfe)`` and ``condition(obs)``,
so the Policy API and the evaluation code treat them alike.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fmpolicy.policy import flow
from fmpolicy.policy.normalizer import MinMaxNormalizer
from fmpolicy.policy.obs_encoder import build_obs_encoder
from fmpolicy.policy.solvers import Field, integrate
from fmpolicy.policy.unet import ConditionalUnet1D


class ChunkModel(nn.Module):
    """A U-Net over normalized action chunks, conditioned on the observation history."""

    def __init__(self, shape_meta: dict[str, Any], policy_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.shape_meta = shape_meta
        self.action_dim = action_dim_of(shape_meta)
        self.horizon, self.n_obs_steps = policy_cfg["horizon"], policy_cfg["n_obs_steps"]
        self.time_scale = float(policy_cfg["time_scale"])
        self.obs_encoder = build_obs_encoder(policy_cfg, shape_meta)
        self.action_norm = MinMaxNormalizer(self.action_dim)
        self.net = ConditionalUnet1D(
            self.action_dim,
            self.obs_encoder.out_dim,
            down_dims=tuple(policy_cfg["down_dims"]),
            kernel_size=policy_cfg["kernel_size"],
            n_groups=policy_cfg["n_groups"],
            step_embed_dim=policy_cfg["step_embed_dim"],
        )

    def condition(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw observation history ``{key: (B, n_obs_steps, *shape)}`` -> conditioning vector."""
        return self.obs_encoder(obs)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor, solver: str, nfe: int) -> torch.Tensor:
        raise NotImplementedError

    def pretrain_loss(self, cond: torch.Tensor, action: torch.Tensor, time_sampler: str) -> torch.Tensor:
        raise NotImplementedError


class FlowSampling:
    """Sampling, inversion and the FM loss for anything with ``velocity(x, t, cond)``."""

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def field(self, cond: torch.Tensor) -> Field:
        return lambda x, t: self.velocity(x, t, cond)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor, solver: str, nfe: int) -> torch.Tensor:
        """Integrate noise (t=0) to a normalized action chunk (t=1)."""
        return integrate(self.field(cond), noise, solver, nfe)

    def invert(
        self, cond: torch.Tensor, action: torch.Tensor, solver: str = "rk4", nfe: int = 256, warp: float = 1.0
    ) -> torch.Tensor:
        """The flow's latent of a normalized action chunk: integrate t=1 -> 0.

        ``warp > 1`` packs the steps near t=1, where FM fields are stiff.
        """
        return integrate(self.field(cond), action, solver, nfe, t0=1.0, t1=0.0, warp=warp)

    def pretrain_loss(
        self, cond: torch.Tensor, action: torch.Tensor, time_sampler: str, x0: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Conditional FM loss on a batch of normalized action chunks; ``x0``: the paths' noise ends (default
        fresh ``N(0, I)`` draws; reflow passes the latents its pairs were generated from)."""
        x0 = torch.randn_like(action) if x0 is None else x0
        t = flow.sample_time(action.shape[0], time_sampler, action.device)
        return flow.fm_loss(self.velocity(flow.interpolate(x0, action, t), t, cond), x0, action)


class FlowModel(FlowSampling, ChunkModel):
    """Velocity field ``v(x, t, o)`` on normalized actions (DESIGN.md sections 1-2)."""

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(x, t * self.time_scale, cond)


class DiffusionModel(ChunkModel):
    """Diffusion Policy's baseline on the same backbone: epsilon prediction, diffusers' schedulers.

    Trained with DDPM (``train_timesteps`` steps, squared-cosine schedule); sampled
    with ``solver="ddpm"`` (all steps; ``nfe`` is ignored) or ``solver="ddim"``
    (``nfe`` steps, deterministic).
    """

    def __init__(self, shape_meta: dict[str, Any], policy_cfg: dict[str, Any], train_timesteps: int = 100) -> None:
        super().__init__(shape_meta, policy_cfg)
        from diffusers import DDPMScheduler

        self.scheduler = DDPMScheduler(
            num_train_timesteps=train_timesteps,
            beta_schedule="squaredcos_cap_v2",
            clip_sample=True,
            prediction_type="epsilon",
        )

    def pretrain_loss(self, cond: torch.Tensor, action: torch.Tensor, time_sampler: str) -> torch.Tensor:
        noise = torch.randn_like(action)
        steps = torch.randint(0, self.scheduler.config.num_train_timesteps, (action.shape[0],), device=action.device)
        noisy = self.scheduler.add_noise(action, noise, steps)
        return ((self.net(noisy, steps.float(), cond) - noise) ** 2).mean()

    def sample(self, cond: torch.Tensor, noise: torch.Tensor, solver: str, nfe: int) -> torch.Tensor:
        from diffusers import DDIMScheduler, DDPMScheduler

        if solver == "ddpm":
            scheduler = DDPMScheduler.from_config(self.scheduler.config)
            scheduler.set_timesteps(self.scheduler.config.num_train_timesteps)
        elif solver == "ddim":
            scheduler = DDIMScheduler.from_config(self.scheduler.config)
            scheduler.set_timesteps(nfe)
        else:
            raise ValueError(f"diffusion models sample with solver ddpm or ddim, not '{solver}'")
        x = noise
        for t in scheduler.timesteps:
            eps = self.net(x, t.float().expand(x.shape[0]).to(x.device), cond)
            x = scheduler.step(eps, t, x).prev_sample
        return x


def action_dim_of(shape_meta: dict[str, Any]) -> int:
    shape = tuple(shape_meta["action"]["shape"])
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(f"task.shape_meta.action.shape must be [action_dim], got {list(shape)}")
    return int(shape[0])


def build_model(cfg: dict[str, Any]) -> ChunkModel:
    """The model of ``cfg.method.kind`` for the task's ``shape_meta``."""
    kind, shape_meta = cfg["method"]["kind"], cfg["task"]["shape_meta"]
    if kind in ("fm", "ft_mle", "reflow"):
        return FlowModel(shape_meta, cfg["policy"])
    if kind == "ddpm":
        return DiffusionModel(shape_meta, cfg["policy"], cfg["method"]["train_timesteps"])
    from fmpolicy.policy.residual import ResidualFlowModel

    if kind == "ft_residual":
        return ResidualFlowModel(shape_meta, cfg["policy"], cfg["method"])
    raise ValueError(f"unknown method kind '{kind}': choose fm, ddpm, ft_mle, ft_residual or reflow")
