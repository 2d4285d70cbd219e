"""Wrappers shared by all suites: observation history, action-chunk execution, video."""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

Obs = dict[str, np.ndarray]
ResetResult = tuple[Obs, dict[str, Any]]
StepResult = tuple[Obs, float, bool, bool, dict[str, Any]]


class VideoRecorder(gym.Wrapper):
    """Keeps the rendered frames of the first episode after the first reset."""

    def __init__(self, env: gym.Env, enabled: bool = True) -> None:
        super().__init__(env)
        self.enabled = enabled
        self.frames: list[np.ndarray] = []
        self._n_resets = 0

    def _recording(self) -> bool:
        return self.enabled and self._n_resets == 1

    def reset(self, **kwargs) -> ResetResult:
        out = self.env.reset(**kwargs)
        self._n_resets += 1
        if self._recording():
            self.frames.append(self.env.render())
        return out

    def step(self, action: np.ndarray) -> StepResult:
        out = self.env.step(action)
        if self._recording():
            self.frames.append(self.env.render())
        return out


class ChunkExecution(gym.Wrapper):
    """Observation history of ``n_obs_steps`` and execution of a whole action chunk per step.

    Observations are stacked along a new first axis, the oldest first; at reset
    the first observation is repeated (Diffusion Policy's convention). A chunk
    step executes ``n_action_steps`` actions and stops early when the episode ends.
    The suite's ``tracker`` sees every environment step; its result so far (flat
    scalars: ``score``, ``success`` and the suite's extras) is merged into every
    ``info``, with ``env_steps``. The reward is the best reward of the chunk. The
    episode is truncated after ``max_episode_steps`` environment steps.
    """

    def __init__(
        self, env: gym.Env, n_obs_steps: int, n_action_steps: int, max_episode_steps: int, tracker: Any
    ) -> None:
        super().__init__(env)
        self.tracker = tracker
        self.n_obs_steps, self.n_action_steps = n_obs_steps, n_action_steps
        self.max_episode_steps = max_episode_steps
        inner = env.observation_space
        self.observation_space = gym.spaces.Dict(
            {
                k: gym.spaces.Box(
                    np.repeat(s.low[None], n_obs_steps, 0), np.repeat(s.high[None], n_obs_steps, 0), dtype=s.dtype
                )
                for k, s in inner.spaces.items()
            }
        )
        a = env.action_space
        self.action_space = gym.spaces.Box(
            np.repeat(a.low[None], n_action_steps, 0), np.repeat(a.high[None], n_action_steps, 0), dtype=a.dtype
        )
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=n_obs_steps)
        self._steps = 0

    def _stacked(self) -> dict[str, np.ndarray]:
        return {k: np.stack([o[k] for o in self._history]) for k in self._history[0]}

    def reset(self, **kwargs) -> ResetResult:
        obs, info = self.env.reset(**kwargs)
        self._history.clear()
        self._history.extend([obs] * self.n_obs_steps)
        self._steps = 0
        self.tracker.reset(info)
        return self._stacked(), {**info, **self.tracker.result(), "env_steps": 0}

    def step(self, actions: np.ndarray) -> StepResult:
        best_reward = -np.inf
        terminated = truncated = False
        info: dict[str, Any] = {}
        for action in np.asarray(actions)[: self.n_action_steps]:
            obs, reward, terminated, truncated, info = self.env.step(action)
            self._history.append(obs)
            self._steps += 1
            best_reward = max(best_reward, reward)
            self.tracker.update(reward, info, self._steps)
            truncated = truncated or self._steps >= self.max_episode_steps
            if terminated or truncated:
                break
        info = {**info, **self.tracker.result(), "env_steps": self._steps}
        return self._stacked(), best_reward, terminated, truncated, info


class ActionNoise(gym.Wrapper):
    """Gaussian noise of std ``std`` (in the action's own units) on every executed action.

    Offered by every suite as the perturbation ``action_noise`` (``registry.GENERIC_PERTURBATIONS``).
    The sum is clipped to the action space when it is a Box. The noise generator is reseeded from
    each ``reset(seed=...)``, so an episode's noise depends on its seed only, not on ``eval.n_envs``;
    ``std == 0`` passes actions through untouched.
    """

    SEED_TAG = 0xAC7  # kept apart from the environment's own generator, which is seeded from the same seed

    def __init__(self, env: gym.Env, std: float) -> None:
        super().__init__(env)
        self.std = float(std)
        self._rng = np.random.default_rng([self.SEED_TAG])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        if seed is not None:
            self._rng = np.random.default_rng([self.SEED_TAG, int(seed)])
        return self.env.reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> StepResult:
        if self.std:
            noisy = np.asarray(action, dtype=np.float64) + self._rng.normal(0.0, self.std, np.shape(action))
            space = self.env.action_space
            if isinstance(space, gym.spaces.Box):
                noisy = np.clip(noisy, space.low, space.high).astype(space.dtype)
            action = noisy
        return self.env.step(action)
