"""The suite interface: registry errors, a toy suite that runs rollouts with no core change, shape_meta checks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from fmpolicy.config import compose
from fmpolicy.envs.registry import Suite, available, get_suite, register
from fmpolicy.envs.wrappers import ActionNoise
from fmpolicy.errors import UserError
from fmpolicy.eval.rollout import rollout_episodes, summarize
from fmpolicy.policy.api import Policy
from fmpolicy.policy.model import build_model


class ToyReach(gym.Env):
    """A point that moves by its action; the goal is the origin. Observation ``pos (2,)``."""

    observation_space = gym.spaces.Dict({"pos": gym.spaces.Box(-5.0, 5.0, (2,), np.float64)})
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-2, 2, 2)
        return {"pos": self.pos.copy()}, {"dist": float(np.linalg.norm(self.pos))}

    def step(self, action):
        self.pos = self.pos + 0.1 * np.clip(action, -1, 1)
        dist = float(np.linalg.norm(self.pos))
        return {"pos": self.pos.copy()}, -dist, dist < 0.05, False, {"dist": dist}

    def render(self):
        return np.zeros((8, 8, 3), np.uint8)


class ClosestTracker:
    def __init__(self) -> None:
        self.best = np.inf

    def reset(self, info):
        self.best = info["dist"]

    def update(self, reward, info, step):
        self.best = min(self.best, info["dist"])

    def result(self):
        return {"score": float(np.exp(-self.best)), "success": bool(self.best < 0.05), "closest": float(self.best)}


def test_unknown_suite_is_one_clear_error():
    with pytest.raises(UserError, match="unknown suite 'nope'.*kitchen.*pusht"):
        get_suite("nope")
    assert {"pusht", "kitchen"} <= set(available())


def toy_config() -> dict:
    """Registers the toy suite; a config with a small U-Net for it."""
    register(
        Suite(
            name="toy_reach",
            make_env=lambda task: ToyReach(),
            tracker=lambda task: ClosestTracker(),
            success_text="distance < 0.05",
            metrics=lambda results, task: {"mean_closest": float(np.mean([r["closest"] for r in results]))},
        )
    )
    cfg = compose({"task": "pusht_lowdim", "policy.down_dims": [16, 32], "policy.n_groups": 4})
    cfg["task"] = {
        "name": "toy",
        "suite": "toy_reach",
        "shape_meta": {"obs": {"pos": {"shape": [2], "type": "low_dim"}}, "action": {"shape": [2]}},
        "max_episode_steps": 24,
    }
    return cfg


def test_a_toy_suite_registered_here_runs_rollouts_without_core_changes():
    cfg = toy_config()
    policy = Policy(build_model(cfg), cfg)
    results, videos, steps_per_s = rollout_episodes(policy, cfg, [1, 2, 3], nfe=2, solver="euler", n_envs=2)
    assert [r["seed"] for r in results] == [1, 2, 3] and steps_per_s > 0
    for r in results:
        assert r["score"] == pytest.approx(np.exp(-r["closest"])) and 0 < r["steps"] <= 24
    metrics = summarize(results, 2, "euler", cfg["task"])
    assert metrics["suite"]["mean_closest"] == pytest.approx(np.mean([r["closest"] for r in results]))


class ActionLog(gym.Wrapper):
    """Records the actions that reach the environment."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[np.ndarray] = []

    def step(self, action):
        self.actions.append(np.array(action))
        return self.env.step(action)


def _executed(std: float, seed: int, steps: int = 30) -> np.ndarray:
    log = ActionLog(ToyReach())
    env = ActionNoise(log, std)
    env.reset(seed=seed)
    for _ in range(steps):
        env.step(np.full(2, 0.9, np.float32))
    return np.stack(log.actions)


def test_action_noise_is_generic_reproducible_by_seed_and_clipped():
    toy_config()
    for suite in ("toy_reach", "pusht"):  # every registered suite offers it, beside its own perturbations
        assert get_suite(suite).perturbations["action_noise"].unit == "action units"
    assert "block_displaced" in get_suite("pusht").perturbations
    planned = np.full((30, 2), 0.9, np.float32)
    assert np.array_equal(_executed(0.0, 1), planned)  # level 0: the actions themselves
    noisy = _executed(0.5, 1)
    assert np.array_equal(noisy, _executed(0.5, 1)) and not np.array_equal(noisy, _executed(0.5, 2))
    assert noisy.dtype == np.float32 and noisy.max() == 1.0 and noisy.min() >= -1.0  # clipped to the Box
    assert 0.2 < np.std(noisy - planned) < 0.5  # std 0.5 before clipping, about half the draws clipped at 1


def test_action_noise_in_rollouts_level_0_is_no_perturbation_and_n_envs_does_not_matter():
    cfg = toy_config()
    policy = Policy(build_model(cfg), cfg)

    def run(perturbation, n_envs):
        return rollout_episodes(policy, cfg, [1, 2, 3], 1, "euler", n_envs, progress=False, perturbation=perturbation)[
            0
        ]

    clean = run(None, 2)
    assert run(("action_noise", 0.0, 0), 2) == clean
    noisy = run(("action_noise", 1.0, 0), 1)
    assert noisy == run(("action_noise", 1.0, 0), 3) and noisy != clean


def test_policy_checks_observation_keys_and_shapes():
    cfg = compose({"task": "pusht_lowdim", "policy.down_dims": [16, 32], "policy.n_groups": 4})
    policy = Policy(build_model(cfg), cfg)
    good = {"keypoint": np.zeros((3, 2, 9, 2)), "agent_pos": np.zeros((3, 2, 2))}
    assert policy.predict_action(good, nfe=1).shape == (3, 8, 2)
    with pytest.raises(UserError, match="lacks key 'agent_pos'"):
        policy.predict_action({"keypoint": good["keypoint"]})
    with pytest.raises(UserError, match=r"observation 'keypoint' has shape \(3, 2, 18\): expected \(batch, 2, 9, 2\)"):
        policy.predict_action({**good, "keypoint": np.zeros((3, 2, 18))})


def test_image_keys_are_refused_by_the_low_dim_encoder():
    cfg = compose({"task": "pusht_lowdim"})
    cfg["task"]["shape_meta"]["obs"]["img"] = {"shape": [3, 96, 96], "type": "rgb"}
    with pytest.raises(UserError, match="images, which policy.obs_encoder=low_dim cannot read"):
        build_model(cfg)
