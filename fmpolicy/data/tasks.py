"""From a task config to flat observation and action arrays over a replay buffer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fmpolicy.data.replay_buffer import ReplayBuffer, read_replay_buffer
from fmpolicy.data.windows import WindowDataset, split_episodes
from fmpolicy.errors import UserError

# Observation key -> (dataset array, slice of its last axis) for each suite.
OBS_SOURCES: dict[str, dict[str, tuple[str, slice | None]]] = {
    "pusht": {
        "keypoint": ("keypoint", None),
        "agent_pos": ("state", slice(0, 2)),
        "state": ("state", None),
    },
}


# Observation key -> its shape per step, for each suite.
OBS_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "pusht": {"keypoint": (9, 2), "agent_pos": (2,), "state": (5,)},
}


def obs_sources(suite: str, obs_keys: list[str]) -> dict[str, tuple[str, slice | None]]:
    sources = OBS_SOURCES.get(suite)
    if sources is None:
        raise UserError(f"unknown suite '{suite}': choose one of {sorted(OBS_SOURCES)}")
    unknown = [k for k in obs_keys if k not in sources]
    if unknown or not obs_keys:
        raise UserError(f"task.obs_keys {obs_keys} invalid for suite '{suite}': use a subset of {sorted(sources)}")
    return {k: sources[k] for k in obs_keys}


def flat_obs(obs: dict[str, np.ndarray], obs_keys: list[str], lead: int) -> np.ndarray:
    """Concatenate ``obs[k]`` flattened after the first ``lead`` axes, in ``obs_keys`` order."""
    parts = []
    for k in obs_keys:
        if k not in obs:
            raise UserError(f"observation lacks key '{k}' (it has {sorted(obs)}): pass every key of task.obs_keys")
        v = np.asarray(obs[k], dtype=np.float32)
        parts.append(v.reshape(*v.shape[:lead], -1))
    return np.concatenate(parts, axis=-1)


def split_flat_obs(flat: np.ndarray, task: dict[str, Any]) -> dict[str, np.ndarray]:
    """Inverse of ``flat_obs``: ``(..., obs_dim)`` back to the task's observation dict."""
    out, start = {}, 0
    for key in task["obs_keys"]:
        shape = OBS_SHAPES[task["suite"]][key]
        n = int(np.prod(shape))
        out[key] = flat[..., start : start + n].reshape(*flat.shape[:-1], *shape)
        start += n
    return out


@dataclass
class TaskData:
    buffer: ReplayBuffer
    obs: np.ndarray  # (N, obs_dim)
    action: np.ndarray  # (N, action_dim)
    train_ids: np.ndarray
    val_ids: np.ndarray

    def windows(self, cfg: dict[str, Any], split: str) -> WindowDataset:
        p = cfg["policy"]
        ids = self.train_ids if split == "train" else self.val_ids
        return WindowDataset(
            self.buffer, self.obs, self.action, ids, p["horizon"], p["n_obs_steps"], p["n_action_steps"]
        )


def load_task_data(cfg: dict[str, Any]) -> TaskData:
    task, ds = cfg["task"], cfg["dataset"]
    if not ds.get("path"):
        raise UserError("no dataset given: set dataset.path=PATH to a replay-buffer zarr (see README, 'Data')")
    sources = obs_sources(task["suite"], task["obs_keys"])
    arrays = sorted({src for src, _ in sources.values()} | {"action"})
    buffer = read_replay_buffer(ds["path"], arrays)
    obs = {k: buffer.data[src][..., sl] if sl is not None else buffer.data[src] for k, (src, sl) in sources.items()}
    train_ids, val_ids = split_episodes(buffer.n_episodes, ds["val_ratio"], ds["split_seed"])
    return TaskData(
        buffer=buffer,
        obs=flat_obs(obs, task["obs_keys"], lead=1),
        action=buffer.data["action"].astype(np.float32),
        train_ids=train_ids,
        val_ids=val_ids,
    )
