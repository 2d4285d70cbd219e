"""Simulators, one module per suite (see ``registry.py``), and the wrappers they share."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from fmpolicy.envs.registry import get_suite
from fmpolicy.envs.wrappers import ChunkExecution, VideoRecorder
from fmpolicy.errors import UserError


def make_env(
    task: dict[str, Any],
    n_obs_steps: int,
    n_action_steps: int,
    max_episode_steps: int,
    record_video: bool = False,
    perturbation: tuple[str, float, int] | None = None,
) -> gym.Env:
    """The task's environment with observation history, chunk execution and episode results.

    ``perturbation=(name, level, at_step)`` applies one of the suite's perturbations.
    """
    suite = get_suite(task["suite"])
    env = suite.make_env(task)
    if perturbation:
        name, level, at_step = perturbation
        if name not in suite.perturbations:
            raise UserError(
                f"suite '{suite.name}' has no perturbation '{name}': choose one of {sorted(suite.perturbations)}"
            )
        env = suite.perturbations[name].wrap(env, level, at_step)
    env = VideoRecorder(env, enabled=record_video)
    return ChunkExecution(env, n_obs_steps, n_action_steps, max_episode_steps, suite.tracker(task))
