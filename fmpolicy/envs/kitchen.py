"""Franka Kitchen: Gymnasium-Robotics ``FrankaKitchen-v1`` (MuJoCo), the simulator of Minari's D4RL kitchen sets.

Observation dict: ``observation (59,)`` = 9 joint positions, 9 joint velocities,
21 object positions, 20 object velocities (the environment's own ``observation``;
its goal entries are left out). Action: 9 joint velocities in [-1, 1]; 12.5 Hz;
280 steps. The tasks to complete come from the task config (``task.tasks``); the
environment itself decides when one is done (``info["episode_task_completions"]``),
and the episode's result records which were completed and at which step.
"""

from __future__ import annotations

import functools
import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; set before mujoco is imported

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from fmpolicy.envs.registry import Suite, register  # noqa: E402
from fmpolicy.envs.wrappers import ResetResult, StepResult  # noqa: E402
from fmpolicy.stats import mean_ci95, wilson_ci95  # noqa: E402

MAX_EPISODE_STEPS = 280
TASKS = ("microwave", "kettle", "light switch", "slide cabinet", "bottom burner", "top burner", "hinge cabinet")


def _register_gym() -> None:
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)


def split_state(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 59-value observation -> MuJoCo ``qpos (30,)`` and ``qvel (29,)``."""
    state = np.asarray(state, dtype=np.float64)
    return np.concatenate([state[0:9], state[18:39]]), np.concatenate([state[9:18], state[39:59]])


class KitchenEnv(gym.Wrapper):
    """``FrankaKitchen-v1`` with dict observations ``{"observation": (59,)}``.

    ``reset(options={"reset_to_state": state59})`` starts from a recorded state.
    Rendering is offscreen at ``render_size`` pixels with shadows and
    multisampling off (0.02 s a frame instead of 0.5 s).
    """

    def __init__(self, tasks: list[str], render_size: int = 256) -> None:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown or not tasks:
            from fmpolicy.errors import UserError

            raise UserError(f"task.tasks {list(tasks)} invalid: choose from {', '.join(TASKS)}")
        _register_gym()
        env = gym.make(
            "FrankaKitchen-v1",
            tasks_to_complete=list(tasks),
            max_episode_steps=10**6,  # the chunk wrapper truncates
            render_mode="rgb_array",
            width=render_size,
            height=render_size,
            disable_env_checker=True,
        )
        super().__init__(env)
        self.tasks = list(tasks)
        model = self.unwrapped.robot_env.model
        model.light_castshadow[:] = 0
        model.vis.quality.offsamples = 0
        space = env.observation_space["observation"]
        self.observation_space = gym.spaces.Dict({"observation": space})

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        return {"completed": tuple(info.get("episode_task_completions", ()))}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        obs, info = self.env.reset(seed=seed)
        if options and options.get("reset_to_state") is not None:
            robot = self.unwrapped.robot_env
            robot.set_state(*split_state(options["reset_to_state"]))
            obs = self.unwrapped._get_obs(robot._get_obs())
        return {"observation": np.asarray(obs["observation"], dtype=np.float64).copy()}, self._info(info)

    def step(self, action: np.ndarray) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=np.float64))
        out = {"observation": np.asarray(obs["observation"], dtype=np.float64).copy()}
        return out, float(reward), bool(terminated), bool(truncated), self._info(info)


def _key(task: str) -> str:
    return task.replace(" ", "_")


class TaskCompletionTracker:
    """Kitchen's result: which of ``tasks`` were completed, and at which environment step.

    ``score`` = fraction of the tasks completed; ``success`` = all of them;
    ``n_completed``; ``step_<task>`` = the step it was completed at, or -1.
    """

    def __init__(self, tasks: list[str]) -> None:
        self.tasks = list(tasks)
        self.steps = dict.fromkeys(self.tasks, -1)

    def reset(self, info: dict[str, Any]) -> None:
        self.steps = dict.fromkeys(self.tasks, -1)

    def update(self, reward: float, info: dict[str, Any], step: int) -> None:
        for task in info.get("completed", ()):
            if task in self.steps and self.steps[task] < 0:
                self.steps[task] = step

    def result(self) -> dict[str, float | int | bool]:
        n = sum(s >= 0 for s in self.steps.values())
        return {
            "score": n / len(self.tasks),
            "success": n == len(self.tasks),
            "n_completed": n,
            **{f"step_{_key(t)}": s for t, s in self.steps.items()},
        }


def kitchen_metrics(results: list[dict[str, Any]], task: dict[str, Any]) -> dict[str, Any]:
    """p1..pK (fraction of episodes completing at least k tasks) with Wilson intervals; per-task rates and times."""
    tasks = list(task["tasks"])
    done = np.array([r["n_completed"] for r in results])
    out: dict[str, Any] = {"mean_completed": float(done.mean())}
    out["mean_completed_ci95"] = [x * len(tasks) for x in mean_ci95(done / len(tasks))]
    for k in range(1, len(tasks) + 1):
        hits = int((done >= k).sum())
        out[f"p{k}"] = hits / len(results)
        out[f"p{k}_ci95"] = list(wilson_ci95(hits, len(results)))
    for t in tasks:
        steps = np.array([r[f"step_{_key(t)}"] for r in results])
        out[f"rate_{_key(t)}"] = float((steps >= 0).mean())
        out[f"mean_step_{_key(t)}"] = float(steps[steps >= 0].mean()) if (steps >= 0).any() else float("nan")
    return out


def replay_actions(episode: dict[str, np.ndarray], tasks: list[str]) -> tuple[list[str], np.ndarray]:
    """Replay a recorded episode's actions open loop from its first state (``state``/``action`` arrays).

    Returns the tasks the environment reports completed, in order, and the per-step
    joint-position error against the recording (radians, 9 robot joints).
    """
    env = KitchenEnv(tasks)
    obs, info = env.reset(seed=0, options={"reset_to_state": episode["state"][0]})
    errors = []
    for i, action in enumerate(episode["action"]):
        obs, _, terminated, _, info = env.step(action)
        if i + 1 < len(episode["state"]):
            errors.append(np.abs(obs["observation"][:9] - episode["state"][i + 1, :9]).mean())
        if terminated:
            break
    env.close()
    return list(info["completed"]), np.asarray(errors)


@functools.cache
def _expert_env(tasks: tuple[str, ...]) -> KitchenEnv:
    return KitchenEnv(list(tasks))


def expert_episode(seed: int, cfg: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The scripted expert (``kitchen_expert.py``) from ``seed``; arrays named like the real zarr (``state``)."""
    from fmpolicy.envs.kitchen_expert import run_expert_episode

    tasks = tuple(cfg["task"]["tasks"])
    env = _expert_env(tasks).env  # the expert drives the raw environment
    arrays, summary = run_expert_episode(
        env,
        seed,
        list(tasks),
        cfg["task"]["max_episode_steps"],
        rng_order=cfg["demos"]["vary_order"],
        action_noise=cfg["demos"]["action_noise"],
    )
    summary["kept"] = bool(summary["success"])
    return {"state": arrays["observation"], "action": arrays["action"]}, summary


register(
    Suite(
        name="kitchen",
        make_env=lambda task: KitchenEnv(task["tasks"]),
        tracker=lambda task: TaskCompletionTracker(task["tasks"]),
        success_text="all tasks completed",
        metrics=kitchen_metrics,
        expert=expert_episode,
        expert_action_noise=True,
        obs_noise_unit="rad or m",
        obs_range=lambda key: (-1.0, 1.0),
        histogram=("n_completed", "tasks completed in episode", None),
        table_metrics=("mean_completed", "p1", "p2", "p3", "p4"),
    )
)
