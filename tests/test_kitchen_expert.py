"""The scripted Franka Kitchen expert completes the kitchen-complete tasks, as judged by the env itself."""

import gymnasium as gym
import gymnasium_robotics
import numpy as np

from fmpolicy.envs.kitchen_expert import run_expert_episode

TASKS = ["microwave", "kettle", "light switch", "slide cabinet"]


class _InfoSpy(gym.Wrapper):
    """Keeps the env's last info and the actions it executed, to check them against the expert's record."""

    def reset(self, **kwargs):
        self.executed = []
        return super().reset(**kwargs)

    def step(self, action):
        self.executed.append(np.array(action))
        out = super().step(action)
        self.last_info = out[4]
        return out


def test_expert_completes_the_four_tasks_and_varies_with_the_seed():
    gym.register_envs(gymnasium_robotics)
    env = _InfoSpy(gym.make("FrankaKitchen-v1", tasks_to_complete=TASKS, max_episode_steps=280))
    runs = []
    for seed in (0, 1):
        arrays, summary = run_expert_episode(env, seed, TASKS, rng_order=False)
        assert summary["success"] and sorted(summary["completed"]) == sorted(TASKS)
        assert sorted(env.last_info["episode_task_completions"]) == sorted(TASKS)
        assert env.last_info["tasks_to_complete"] == []
        t = summary["steps"]
        assert arrays["observation"].shape == (t, 59) and arrays["action"].shape == (t, 9)
        assert arrays["observation"].dtype == np.float32 and arrays["action"].dtype == np.float32
        assert np.abs(arrays["action"]).max() <= 1.0 and t <= 280
        assert max(summary["completion_steps"].values()) <= t
        runs.append(arrays)
    n = min(len(runs[0]["action"]), len(runs[1]["action"]))
    assert not np.allclose(runs[0]["action"][:n], runs[1]["action"][:n])

    # a drawn order that is not the demo order (seed 3: slide cabinet, light switch, kettle, microwave last,
    # so the arm goes home in joint space before the microwave)
    arrays, summary = run_expert_episode(env, 3, TASKS, rng_order=True)
    assert summary["order"] != TASKS and summary["order"][-1] == "microwave"
    assert summary["success"] and sorted(env.last_info["episode_task_completions"]) == sorted(TASKS)
    assert arrays["observation"].shape == (summary["steps"], 59) and summary["steps"] <= 280
    env.close()


def test_dart_noise_executes_noisy_arm_actions_and_records_the_clean_ones():
    gym.register_envs(gymnasium_robotics)
    env = _InfoSpy(gym.make("FrankaKitchen-v1", tasks_to_complete=TASKS, max_episode_steps=280))
    clean, _ = run_expert_episode(env, 0, TASKS, max_steps=12, rng_order=False)
    assert np.allclose(np.stack(env.executed), clean["action"])
    noisy, _ = run_expert_episode(env, 0, TASKS, max_steps=12, rng_order=False, action_noise=0.2)
    executed = np.stack(env.executed)
    assert np.allclose(noisy["action"][0], clean["action"][0])  # same reset state, same clean first action
    gap = executed - noisy["action"]
    assert np.all(gap[:, 7:] == 0) and 0.1 < np.abs(gap[:, :7]).mean() < 0.3  # noise on the arm joints only
    assert np.abs(executed).max() <= 1.0
    assert not np.allclose(noisy["observation"][5:], clean["observation"][5:])  # the noise moved the arm
    env.close()
