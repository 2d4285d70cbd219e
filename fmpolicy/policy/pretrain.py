"""Pretraining from demonstrations: conditional flow matching (and the diffusion baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fmpolicy.data.tasks import TaskData, load_task_data
from fmpolicy.policy.model import build_model
from fmpolicy.policy.train import TrainResult, train


class PretrainObjective:
    """The model's own pretraining loss on normalized windows."""

    def __init__(self, model: nn.Module, time_sampler: str) -> None:
        self.model, self.time_sampler = model, time_sampler

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def to(self, device: torch.device) -> None:
        self.model.to(device)

    def loss(
        self, obs: torch.Tensor, action: torch.Tensor, batch_idx: np.ndarray, split: str = "train"
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cond = self.model.condition(obs)
        return self.model.pretrain_loss(cond, self.model.action_norm.normalize(action), self.time_sampler), {}


def fit_normalizers(model: nn.Module, data: TaskData) -> None:
    """Min-max statistics from the training episodes only."""
    rows = np.concatenate(
        [np.arange(data.buffer.episode_starts[i], data.buffer.episode_ends[i]) for i in data.train_ids]
    )
    model.obs_norm.fit(data.obs[rows])
    model.action_norm.fit(data.action[rows])


def pretrain(cfg: dict[str, Any], progress: bool = True, data: TaskData | None = None) -> TrainResult:
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    torch.manual_seed(cfg["seed"])
    data = data or load_task_data(cfg)
    model = build_model(cfg, data.obs.shape[1], data.action.shape[1])
    fit_normalizers(model, data)
    objective = PretrainObjective(model, cfg["train"]["time_sampler"])
    return train(cfg, objective, data, Path(cfg["out"]), progress=progress)
