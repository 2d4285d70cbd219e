"""Observation encoders: the observation dict (keyed by ``shape_meta``) -> the U-Net's conditioning vector.

Chosen by ``policy.obs_encoder``. ``low_dim`` min-max normalizes each key to
[-1, 1] (statistics stored with the model), concatenates the keys per step in
``shape_meta`` order and flattens the ``n_obs_steps`` history. An image encoder
slots in here as another entry of ``ENCODERS``; suites and data stay unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fmpolicy.errors import UserError
from fmpolicy.policy.normalizer import MinMaxNormalizer


class LowDimEncoder(nn.Module):
    def __init__(self, shape_meta: dict[str, Any], n_obs_steps: int, min_range: float = 1e-4) -> None:
        super().__init__()
        obs = shape_meta["obs"]
        if not obs:
            raise UserError("task.shape_meta.obs is empty: a task needs at least one observation key")
        images = [k for k, v in obs.items() if v.get("type", "low_dim") != "low_dim"]
        if images:
            raise UserError(
                f"observation keys {images} are images, which policy.obs_encoder=low_dim cannot read: "
                "choose a task with low-dim observations"
            )
        self.keys = list(obs)
        self.shapes = {k: tuple(obs[k]["shape"]) for k in self.keys}
        self.n_obs_steps = n_obs_steps
        self.norms = nn.ModuleDict(
            {k: MinMaxNormalizer(int(np.prod(self.shapes[k])), eps=min_range) for k in self.keys}
        )
        self.step_dim = sum(int(np.prod(s)) for s in self.shapes.values())
        self.out_dim = self.step_dim * n_obs_steps

    def fit(self, obs: dict[str, np.ndarray]) -> LowDimEncoder:
        """Statistics from arrays ``{key: (N, *shape)}`` (the training steps)."""
        for k in self.keys:
            self.norms[k].fit(np.asarray(obs[k]).reshape(len(obs[k]), -1))
        return self

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``{key: (B, n_obs_steps, *shape)}`` raw -> ``(B, n_obs_steps * step_dim)``."""
        parts = [self.norms[k].normalize(obs[k].flatten(2)) for k in self.keys]
        return torch.cat(parts, dim=-1).flatten(1)


ENCODERS = {"low_dim": LowDimEncoder}


def build_obs_encoder(policy_cfg: dict[str, Any], shape_meta: dict[str, Any]) -> nn.Module:
    """``policy.obs_encoder`` for ``shape_meta``; ``policy.obs_min_range``: a dimension whose training
    range is below it is held constant rather than stretched to [-1, 1] (its noise would be amplified)."""
    name = policy_cfg.get("obs_encoder", "low_dim")
    if name not in ENCODERS:
        raise UserError(f"policy.obs_encoder '{name}' unknown: choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name](shape_meta, policy_cfg["n_obs_steps"], float(policy_cfg.get("obs_min_range", 1e-4)))
