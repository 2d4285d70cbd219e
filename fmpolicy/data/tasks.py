"""From a task config to observation dicts and actions over a replay buffer, split by episode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fmpolicy.data.readers import read_dataset
from fmpolicy.data.replay_buffer import ReplayBuffer
from fmpolicy.data.windows import WindowDataset, min_episode_length, split_episodes
from fmpolicy.errors import UserError


@dataclass
class TaskData:
    buffer: ReplayBuffer
    obs: dict[str, np.ndarray]  # key -> (N, *shape)
    action: np.ndarray  # (N, action_dim)
    train_ids: np.ndarray
    val_ids: np.ndarray

    def windows(self, cfg: dict[str, Any], split: str) -> WindowDataset:
        p = cfg["policy"]
        ids = self.train_ids if split == "train" else self.val_ids
        return WindowDataset(
            self.buffer, self.obs, self.action, ids, p["horizon"], p["n_obs_steps"], p["n_action_steps"]
        )

    def rows(self, split: str = "train") -> np.ndarray:
        """Buffer indices of all steps of the split's episodes."""
        ids = self.train_ids if split == "train" else self.val_ids
        b = self.buffer
        return np.concatenate([np.arange(b.episode_starts[i], b.episode_ends[i]) for i in ids])


def load_task_data(cfg: dict[str, Any]) -> TaskData:
    """Read and split the task's dataset; task keys left null (e.g. ``task.env_args``) are filled from the
    file's own metadata, so the checkpoint's config rebuilds the environment the data was recorded in."""
    shape_meta = cfg["task"]["shape_meta"]
    buffer = read_dataset(cfg["dataset"], shape_meta)
    for key, value in buffer.meta.items():
        if key in cfg["task"] and cfg["task"][key] is None:
            cfg["task"][key] = value
    ds, p = cfg["dataset"], cfg["policy"]
    train_ids, val_ids = split_episodes(buffer.n_episodes, ds["val_ratio"], ds["split_seed"])
    min_len = min_episode_length(p["horizon"], p["n_obs_steps"], p["n_action_steps"])
    lengths = np.diff(np.concatenate([[0], buffer.episode_ends]))
    short = np.flatnonzero(lengths < min_len)
    if len(short):
        if len(short) == buffer.n_episodes:
            raise UserError(
                f"every episode of '{ds['path']}' is shorter than the {min_len} steps a window needs "
                f"(longest: {lengths.max()}): lower policy.horizon or record longer episodes"
            )
        print(f"note: {len(short)} episode(s) shorter than {min_len} steps are left out: {short[:10].tolist()}")
        train_ids, val_ids = np.setdiff1d(train_ids, short), np.setdiff1d(val_ids, short)
        if len(train_ids) == 0:
            raise UserError("no training episode is long enough: lower dataset.val_ratio or policy.horizon")
    return TaskData(
        buffer=buffer,
        obs={k: buffer.data[k] for k in shape_meta["obs"]},
        action=buffer.data["action"],
        train_ids=train_ids,
        val_ids=val_ids,
    )
