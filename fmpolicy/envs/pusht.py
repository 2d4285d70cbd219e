"""Push-T (gym-pusht's pymunk simulator) with the observations of the real dataset.

Observation dict, per step: ``keypoint (9, 2)`` (the dataset's 9 block
keypoints, in pixels), ``agent_pos (2,)`` and ``state (5,)`` = agent x, y,
block x, y, angle. Score per step = ``clip(coverage / 0.95, 0, 1)``.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gym_pusht.envs.pusht import PushTEnv

from fmpolicy.envs.registry import Perturbation, Suite, register
from fmpolicy.envs.wrappers import ResetResult, StepResult

SUCCESS_COVERAGE = 0.95
MAX_EPISODE_STEPS = 300

# The dataset's keypoints in the block frame: R(-angle) (keypoint - block_xy) is constant
# to within 2.2 px over all 25,650 steps of pusht_cchi_v7_replay.zarr; these are its means.
LOCAL_KEYPOINTS = np.array(
    [
        [9.269, 90.023],
        [-60.992, -1.187],
        [60.907, -1.393],
        [-0.270, 25.544],
        [-14.064, 122.811],
        [39.000, 32.861],
        [-39.955, 32.734],
        [-16.822, 62.872],
        [23.541, -1.700],
    ]
)


def block_keypoints(block_xy: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """World keypoints ``(..., 9, 2)`` of blocks at ``block_xy (..., 2)`` with ``angle (...)``."""
    angle = np.asarray(angle)[..., None]
    c, s = np.cos(angle), np.sin(angle)
    x, y = LOCAL_KEYPOINTS[:, 0], LOCAL_KEYPOINTS[:, 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1) + np.asarray(block_xy)[..., None, :]


class PushTKeypointEnv(gym.Env):
    """gym-pusht with dataset-style observations and exact ``reset_to_state``.

    ``reset(options={"reset_to_state": state5})`` sets the block's angle before its
    position (gym-pusht does the reverse, which moves the block about its centre
    of gravity), so recorded states are reproduced exactly.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_size: int = 256) -> None:
        self.sim = PushTEnv(
            obs_type="state", render_mode="rgb_array", visualization_width=render_size, visualization_height=render_size
        )
        self.render_mode = "rgb_array"
        self.action_space = gym.spaces.Box(0.0, 512.0, (2,), np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "keypoint": gym.spaces.Box(-np.inf, np.inf, (9, 2), np.float64),
                "agent_pos": gym.spaces.Box(0.0, 512.0, (2,), np.float64),
                "state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float64),
            }
        )

    def _obs(self) -> dict[str, np.ndarray]:
        state = self.sim.get_obs()
        return {"keypoint": block_keypoints(state[2:4], state[4]), "agent_pos": state[:2].copy(), "state": state}

    def coverage(self) -> float:
        return float(self.sim._get_coverage())

    def set_state(self, state: np.ndarray) -> None:
        """Agent x, y, block x, y, angle; angle before position, then one physics step."""
        sim = self.sim
        sim.agent.position = [float(state[0]), float(state[1])]
        sim.agent.velocity = (0.0, 0.0)
        sim.block.velocity = (0.0, 0.0)
        sim.block.angular_velocity = 0.0
        sim.block.angle = float(state[4])
        sim.block.position = [float(state[2]), float(state[3])]
        sim.space.step(sim.dt)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        super().reset(seed=seed)
        self.sim.reset(seed=seed)
        if options and options.get("reset_to_state") is not None:
            self.sim._setup()
            self.set_state(np.asarray(options["reset_to_state"], dtype=np.float64))
        coverage = self.coverage()
        return self._obs(), {"coverage": coverage, "is_success": coverage > SUCCESS_COVERAGE}

    def step(self, action: np.ndarray) -> StepResult:
        _, reward, terminated, truncated, info = self.sim.step(np.asarray(action, dtype=np.float64))
        return (
            self._obs(),
            float(reward),
            bool(terminated),
            bool(truncated),
            {
                "coverage": float(info["coverage"]),
                "is_success": bool(info["is_success"]),
                "n_contacts": info["n_contacts"],
            },
        )

    def displace_block(self, distance: float) -> None:
        """Move the block ``distance`` px in a random direction (from the episode's RNG), at rest."""
        sim = self.sim
        angle = self.np_random.uniform(0, 2 * np.pi)
        target = np.array(sim.block.position) + distance * np.array([np.cos(angle), np.sin(angle)])
        sim.block.position = np.clip(target, 60.0, 452.0).tolist()
        sim.block.velocity = (0.0, 0.0)
        sim.block.angular_velocity = 0.0
        sim.space.reindex_shapes_for_body(sim.block)

    def render(self) -> np.ndarray:
        return self.sim.render()

    def close(self) -> None:
        self.sim.close()


class BlockDisturbance(gym.Wrapper):
    """Displaces the block by ``distance`` px once, after ``at_step`` environment steps."""

    def __init__(self, env: gym.Env, distance: float, at_step: int) -> None:
        super().__init__(env)
        self.at_step, self.distance, self._steps = at_step, distance, 0

    def reset(self, **kwargs) -> ResetResult:
        self._steps = 0
        return self.env.reset(**kwargs)

    def step(self, action: np.ndarray) -> StepResult:
        if self._steps == self.at_step:
            self.env.unwrapped.displace_block(self.distance)
        self._steps += 1
        return self.env.step(action)


class CoverageTracker:
    """Push-T's result: score = max over steps of ``clip(coverage / 0.95, 0, 1)``; success = coverage > 0.95."""

    def __init__(self) -> None:
        self.max_coverage = 0.0

    def reset(self, info: dict[str, Any]) -> None:
        self.max_coverage = float(info.get("coverage", 0.0))

    def update(self, reward: float, info: dict[str, Any], step: int) -> None:
        self.max_coverage = max(self.max_coverage, float(info["coverage"]))

    def result(self) -> dict[str, float | bool]:
        return {
            "score": float(np.clip(self.max_coverage / SUCCESS_COVERAGE, 0.0, 1.0)),
            "success": self.max_coverage > SUCCESS_COVERAGE,
            "max_coverage": self.max_coverage,
        }


@functools.cache
def _expert_env() -> PushTKeypointEnv:
    return PushTKeypointEnv()


def expert_episode(seed: int, cfg: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The scripted expert from ``seed``; kept when it reaches ``demos.min_coverage``."""
    from fmpolicy.envs.pusht_expert import run_expert_episode

    arrays, summary = run_expert_episode(_expert_env(), seed, cfg["task"]["max_episode_steps"])
    summary["success"] = bool(summary["max_coverage"] > SUCCESS_COVERAGE)
    summary["kept"] = bool(summary["max_coverage"] >= cfg["demos"]["min_coverage"] and len(arrays["action"]) > 0)
    return arrays, summary


register(
    Suite(
        name="pusht",
        make_env=lambda task: PushTKeypointEnv(),
        tracker=lambda task: CoverageTracker(),
        success_text="coverage > 0.95",
        expert=expert_episode,
        perturbations={"block_displaced": Perturbation(lambda env, level, at: BlockDisturbance(env, level, at), "px")},
        obs_noise_unit="px",
        obs_range=lambda key: (100.0, 400.0),
        histogram=("max_coverage", "best coverage in episode", SUCCESS_COVERAGE),
    )
)
