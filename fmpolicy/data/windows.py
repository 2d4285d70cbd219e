"""Episode-aware windows over a replay buffer, with Diffusion Policy's padding.

A window covers ``horizon`` consecutive steps of one episode. It may start up
to ``n_obs_steps - 1`` steps before the episode's first step and end up to
``n_action_steps - 1`` steps after its last one; the missing steps repeat the
first (resp. last) step. Observations are the window's first ``n_obs_steps``
steps, actions all ``horizon`` steps.
"""

from __future__ import annotations

import numpy as np

from fmpolicy.data.replay_buffer import ReplayBuffer


def split_episodes(n_episodes: int, val_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random split by episode; at least one validation episode when ``val_ratio > 0``."""
    rng = np.random.default_rng(seed)
    n_val = min(n_episodes - 1, max(1, round(val_ratio * n_episodes))) if val_ratio > 0 else 0
    perm = rng.permutation(n_episodes)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def min_episode_length(horizon: int, n_obs_steps: int, n_action_steps: int) -> int:
    """The shortest episode that yields at least one padded window."""
    return horizon - (n_obs_steps - 1) - (n_action_steps - 1)


class WindowDataset:
    """All padded windows of the chosen episodes; batches are gathered vectorized."""

    def __init__(
        self,
        buffer: ReplayBuffer,
        obs: dict[str, np.ndarray],
        action: np.ndarray,
        episode_ids: np.ndarray,
        horizon: int,
        n_obs_steps: int,
        n_action_steps: int,
    ) -> None:
        if not (1 <= n_obs_steps <= horizon and n_obs_steps - 1 + n_action_steps <= horizon):
            raise ValueError(
                f"need n_obs_steps - 1 + n_action_steps <= horizon, got {n_obs_steps}, {n_action_steps}, {horizon}"
            )
        self.obs = {k: v.astype(np.float32, copy=False) for k, v in obs.items()}
        self.action = action.astype(np.float32)
        self.horizon, self.n_obs_steps = horizon, n_obs_steps
        pad_before, pad_after = n_obs_steps - 1, n_action_steps - 1
        starts, lengths, offsets = [], [], []
        for ep in episode_ids:
            s, e = int(buffer.episode_starts[ep]), int(buffer.episode_ends[ep])
            length = e - s
            offs = np.arange(-pad_before, length - horizon + pad_after + 1)
            starts.append(np.full(len(offs), s))
            lengths.append(np.full(len(offs), length))
            offsets.append(offs)
        self.ep_start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.ep_len = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        self.offset = np.concatenate(offsets) if offsets else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.offset)

    def step_indices(self, idx: np.ndarray) -> np.ndarray:
        """Absolute buffer indices ``(len(idx), horizon)`` of windows ``idx``, padding applied."""
        rel = self.offset[idx, None] + np.arange(self.horizon)[None, :]
        return np.clip(rel, 0, self.ep_len[idx, None] - 1) + self.ep_start[idx, None]

    def get_batch(self, idx: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Observations ``{key: (B, n_obs_steps, *shape)}`` and actions ``(B, horizon, action_dim)``."""
        steps = self.step_indices(np.asarray(idx))
        obs_steps = steps[:, : self.n_obs_steps]
        return {k: v[obs_steps] for k, v in self.obs.items()}, self.action[steps]
