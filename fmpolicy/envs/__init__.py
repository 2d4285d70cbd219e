"""Simulators, one module per suite, and the wrappers they share."""

from __future__ import annotations

import gymnasium as gym

from fmpolicy.envs.wrappers import ChunkExecution, VideoRecorder
from fmpolicy.errors import UserError

SUITES = ("pusht",)


def make_env(
    suite: str,
    n_obs_steps: int,
    n_action_steps: int,
    max_episode_steps: int,
    record_video: bool = False,
    disturbance: tuple[int, float] | None = None,
) -> gym.Env:
    """The suite's environment with observation history and chunk execution.

    ``disturbance=(step, distance)`` displaces the object once during the episode.
    """
    if suite == "pusht":
        from fmpolicy.envs.pusht import BlockDisturbance, PushTKeypointEnv

        env: gym.Env = PushTKeypointEnv()
        if disturbance:
            env = BlockDisturbance(env, *disturbance)
    else:
        raise UserError(f"unknown suite '{suite}': choose one of {SUITES}")
    env = VideoRecorder(env, enabled=record_video)
    return ChunkExecution(env, n_obs_steps, n_action_steps, max_episode_steps)
