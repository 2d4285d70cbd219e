"""Reflow (rectified flow, Liu et al. 2022): the one-step baseline that fits flow matching natively.

The pretrained flow maps fresh latents ``z ~ N(0, I)`` to actions ``a_hat`` with an
accurate solver (``method.pair_solver`` at ``method.pair_nfe``), once per chosen
training window; fine-tuning then regresses the field on the straight paths
between each ``z`` and its ``a_hat`` (the FM loss with ``x0 = z``, ``x1 = a_hat``),
so that few Euler steps follow them. ``method.fm_weight`` adds the FM loss on the
demonstrations, as FT-FM's regularizer does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from fmpolicy.data.windows import WindowDataset
from fmpolicy.policy.checkpoint import weights_digest
from fmpolicy.policy.finetune import LatentBank, cached_banks, over_windows
from fmpolicy.policy.model import FlowSampling


class Teacher(NamedTuple):
    """What makes the pairs' targets: a model, the solver and NFE it samples with, and the checkpoint it was
    loaded from (empty for the pretrained flow being fine-tuned)."""

    model: FlowSampling
    solver: str
    nfe: int
    source: str = ""


def sample_pair(model: FlowSampling, cond: torch.Tensor | None, z: torch.Tensor, solver: str, nfe: int) -> torch.Tensor:
    """``(batch, 2, horizon, action_dim)``: the latents ``z`` and ``model``'s samples from them."""
    return torch.stack([z, model.sample(cond, z, solver, nfe)], 1)


def generate_pairs(
    model: FlowSampling,
    windows: WindowDataset,
    indices: np.ndarray,
    solver: str,
    nfe: int,
    seed: int,
    progress: bool = True,
    latent_std: float = 1.0,
) -> torch.Tensor:
    """``(len(indices), 2, horizon, action_dim)``: per window a latent of std ``latent_std`` and the flow's
    sample from it."""
    gen = torch.Generator().manual_seed(seed)

    def pair(cond: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        z = latent_std * torch.randn(action.shape, generator=gen).to(action.device)
        return sample_pair(model, cond, z, solver, nfe)

    return over_windows(model, windows, indices, pair, "reflow pairs", progress=progress)


def build_pairs(
    splits: dict[str, tuple[WindowDataset, np.ndarray]],
    cfg: dict[str, Any],
    cache: Path,
    teacher: Teacher,
    progress: bool = True,
    latent_std: float = 1.0,
) -> dict[str, LatentBank]:
    """The reflow pairs of each split's chosen windows (latents of std ``latent_std``, targets the
    ``teacher``'s samples), made once and cached in ``cache``."""
    settings: dict[str, Any] = {"pair_solver": teacher.solver, "pair_nfe": teacher.nfe, "seed": cfg["seed"]}
    settings["weights"] = weights_digest(teacher.model)
    if latent_std != 1.0:  # unit-std caches keep their settings
        settings["latent_std"] = latent_std
    if teacher.source:
        settings["teacher"] = teacher.source

    def compute(windows: WindowDataset, idx: np.ndarray) -> torch.Tensor:
        return generate_pairs(
            teacher.model, windows, idx, teacher.solver, teacher.nfe, cfg["seed"], progress, latent_std
        )

    return cached_banks(splits, settings, cache, compute)


class ReflowObjective(nn.Module):
    """FM loss on the straight paths ``z -> a_hat`` of the stored pairs, plus ``fm_weight`` times the data FM loss."""

    def __init__(self, model: FlowSampling, cfg: dict[str, Any], pairs: dict[str, LatentBank]) -> None:
        super().__init__()
        self.model, self.pairs = model, pairs
        self.fm_weight = float(cfg["method"]["fm_weight"])
        self.time_sampler = cfg["train"]["time_sampler"]

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        cond = self.model.condition(batch["obs"])
        pair = self.pairs[batch["split"]][batch["index"]].to(cond.device)
        z, a_hat = pair[:, 0], pair[:, 1]
        loss = self.model.pretrain_loss(cond, a_hat, self.time_sampler, x0=z)
        logs = {"reflow_loss": loss.item()}
        if self.fm_weight > 0:
            fm = self.model.pretrain_loss(cond, self.model.action_norm.normalize(batch["action"]), self.time_sampler)
            loss = loss + self.fm_weight * fm
            logs["fm_loss"] = fm.item()
        return loss, logs
