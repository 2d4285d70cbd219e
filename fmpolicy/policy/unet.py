"""1-D temporal U-Net with FiLM conditioning (the Diffusion Policy backbone).

The network maps a noisy action chunk ``x`` of shape ``(B, horizon, action_dim)``,
a scalar time per sample and a global conditioning vector (the flattened
observation history) to a tensor of the same shape as ``x``.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        t = t if t.is_floating_point() else t.float()
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=t.dtype) / (half - 1))
        args = t[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, c_out),
            nn.Mish(),
        )


class FiLMResidualBlock(nn.Module):
    """Two conv blocks; the conditioning predicts a per-channel scale and bias."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel_size, n_groups)
        self.block2 = Conv1dBlock(c_out, c_out, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        scale, bias = rearrange(self.film(cond), "b (two c) -> two b c 1", two=2)
        h = self.block2(scale * h + bias)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    def __init__(
        self,
        action_dim: int,
        global_cond_dim: int,
        down_dims: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        n_groups: int = 8,
        step_embed_dim: int = 128,
    ) -> None:
        super().__init__()
        self.step_encoder = nn.Sequential(
            SinusoidalEmbedding(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        cond_dim = step_embed_dim + global_cond_dim
        dims = [action_dim, *down_dims]
        pairs = list(zip(dims[:-1], dims[1:]))

        def block(c_in: int, c_out: int) -> FiLMResidualBlock:
            return FiLMResidualBlock(c_in, c_out, cond_dim, kernel_size, n_groups)

        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        block(c_in, c_out),
                        block(c_out, c_out),
                        nn.Conv1d(c_out, c_out, 3, 2, 1) if not last else nn.Identity(),
                    ]
                )
            )
        mid = down_dims[-1]
        self.mid = nn.ModuleList([block(mid, mid), block(mid, mid)])
        self.up = nn.ModuleList()
        # One upsampling per downsampling; the finest-level skip is unused (as in Diffusion Policy).
        for c_in, c_out in reversed(pairs[1:]):
            self.up.append(
                nn.ModuleList(
                    [
                        block(2 * c_out, c_in),
                        block(c_in, c_in),
                        nn.ConvTranspose1d(c_in, c_in, 4, 2, 1),
                    ]
                )
            )
        self.final = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
            nn.Conv1d(down_dims[0], action_dim, 1),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        """x: (B, T, action_dim); t: (B,) already scaled; global_cond: (B, cond)."""
        cond = torch.cat([self.step_encoder(t), global_cond], dim=-1)
        h = rearrange(x, "b t a -> b a t")
        skips = []
        for res1, res2, downsample in self.down:
            h = res2(res1(h, cond), cond)
            skips.append(h)
            h = downsample(h)
        for res in self.mid:
            h = res(h, cond)
        for res1, res2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(res2(res1(h, cond), cond))
        return rearrange(self.final(h), "b a t -> b t a")
