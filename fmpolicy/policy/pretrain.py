"""Pretraining from demonstrations: conditional flow matching (and the diffusion baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fmpolicy.data.readers import absolute_dataset_path
from fmpolicy.data.tasks import TaskData, load_task_data
from fmpolicy.errors import UserError
from fmpolicy.policy.model import build_model
from fmpolicy.policy.train import TrainResult, train


class PretrainObjective(nn.Module):
    """The model's own pretraining loss (FM, or the diffusion baseline's) on normalized windows."""

    def __init__(self, model: nn.Module, time_sampler: str) -> None:
        super().__init__()
        self.model, self.time_sampler = model, time_sampler

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        cond = self.model.condition(batch["obs"])
        action = self.model.action_norm.normalize(batch["action"])
        return self.model.pretrain_loss(cond, action, self.time_sampler), {}


def fit_normalizers(model: nn.Module, data: TaskData) -> None:
    """Min-max statistics from the training episodes only."""
    rows = data.rows("train")
    model.obs_encoder.fit({k: v[rows] for k, v in data.obs.items()})
    model.action_norm.fit(data.action[rows])


def pretrain(cfg: dict[str, Any], progress: bool = True, data: TaskData | None = None) -> TrainResult:
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    torch.manual_seed(cfg["seed"])
    kind = cfg["method"]["kind"]
    if kind not in ("fm", "ddpm"):
        raise UserError(
            f"method={cfg['method']['name']} fine-tunes a pretrained model: run "
            f"'fmpolicy finetune checkpoint=FM_RUN method={cfg['method']['name']}' (train takes method=fm or ddpm)"
        )
    absolute_dataset_path(cfg)
    data = data or load_task_data(cfg)
    model = build_model(cfg)
    fit_normalizers(model, data)
    objective = PretrainObjective(model, cfg["train"]["time_sampler"])
    return train(cfg, objective, data, Path(cfg["out"]), progress=progress)
