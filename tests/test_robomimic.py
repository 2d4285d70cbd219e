"""Robomimic suite: the HDF5 layout read and written, env_args old and new, replay of an expert demo, the experts."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before robosuite imports mujoco: headless rendering

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fmpolicy.data.robomimic_hdf5 import read_demo, read_env_args, read_robomimic_hdf5, write_robomimic_hdf5  # noqa: E402
from fmpolicy.envs.registry import get_suite  # noqa: E402
from fmpolicy.envs.robomimic import LOW_DIM_KEYS, RobomimicEnv, SuccessTracker, default_env_args  # noqa: E402
from fmpolicy.envs.robomimic_expert import run_expert_episode  # noqa: E402
from fmpolicy.errors import UserError  # noqa: E402

# env_args as robomimic v0.1-0.3 stored them (robosuite 1.4: a bare arm controller config), e.g. lift/ph/low_dim_v141
OLD_ENV_ARGS = {
    "env_name": "Lift",
    "type": 1,
    "env_kwargs": {
        "has_renderer": False,
        "has_offscreen_renderer": False,
        "ignore_done": True,
        "use_object_obs": True,
        "use_camera_obs": False,
        "control_freq": 20,
        "controller_configs": {
            "type": "OSC_POSE",
            "input_max": 1,
            "input_min": -1,
            "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
            "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5],
            "kp": 150,
            "damping": 1,
            "impedance_mode": "fixed",
            "kp_limits": [0, 300],
            "damping_limits": [0, 10],
            "position_limits": None,
            "orientation_limits": None,
            "uncouple_pos_ori": True,
            "control_delta": True,
            "interpolation": None,
            "ramp_ratio": 0.2,
        },
        "robots": ["Panda"],
        "camera_depths": False,
        "camera_heights": 84,
        "camera_widths": 84,
        "reward_shaping": False,
    },
}


@pytest.fixture(scope="module")
def lift_env():
    env = RobomimicEnv(default_env_args("Lift"), terminate_on_success=False)
    yield env
    env.close()


def _fake_episode(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "object": rng.normal(size=(n, 10)),
        "robot0_eef_pos": rng.normal(size=(n, 3)),
        "robot0_eef_quat": rng.normal(size=(n, 4)),
        "robot0_gripper_qpos": rng.normal(size=(n, 2)),
        "action": rng.uniform(-1, 1, size=(n, 7)),
        "states": rng.normal(size=(n, 32)),
        "rewards": np.zeros(n),
    }


def test_writer_layout_and_reader_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [_fake_episode(n, rng) for n in (5, 7, 4, 6, 3, 8, 5, 4, 6, 7, 5, 9)]
    env_args = {"env_name": "Lift", "type": 1, "env_kwargs": {"robots": ["Panda"], "control_freq": 20}}
    path = write_robomimic_hdf5(tmp_path / "low_dim.hdf5", episodes, env_args, valid_ratio=0.2)
    with h5py.File(path, "r") as f:
        assert f["data"].attrs["total"] == sum(len(e["action"]) for e in episodes)
        assert json.loads(f["data"].attrs["env_args"]) == env_args
        demo = f["data/demo_1"]
        assert demo.attrs["num_samples"] == 7
        assert demo["actions"].shape == (7, 7) and demo["states"].shape == (7, 32)
        assert demo["rewards"].shape == (7,) and demo["dones"][:].tolist() == [0] * 6 + [1]
        assert demo["obs/object"].shape == (7, 10) and demo["next_obs/object"].shape == (7, 10)
        np.testing.assert_allclose(demo["next_obs/robot0_eef_pos"][:-1], episodes[1]["robot0_eef_pos"][1:])
        train, valid = [n.decode() for n in f["mask/train"][:]], [n.decode() for n in f["mask/valid"][:]]
        assert f["mask/train"].dtype.kind == "S" and len(valid) == 2
        assert sorted(train + valid, key=lambda s: int(s[5:])) == [f"demo_{i}" for i in range(12)]
    assert read_env_args(path) == env_args

    buf = read_robomimic_hdf5(path, list(LOW_DIM_KEYS))
    assert set(buf.data) == {*LOW_DIM_KEYS, "action"}
    assert buf.n_episodes == 12 and buf.episode_ends[:3].tolist() == [5, 12, 16]  # numeric order: demo_10 last-but-one
    np.testing.assert_allclose(buf.episode(10)["action"], episodes[10]["action"])
    np.testing.assert_allclose(buf.episode(11)["object"], episodes[11]["object"])
    only_valid = read_robomimic_hdf5(path, ["object"], filter_key="valid")
    assert only_valid.n_episodes == 2
    assert read_demo(path, 2)["actions"].shape == (4, 7)


def test_reader_errors_name_the_problem(tmp_path):
    rng = np.random.default_rng(1)
    path = write_robomimic_hdf5(tmp_path / "d.hdf5", [_fake_episode(4, rng)], {"env_name": "Lift", "type": 1})
    with pytest.raises(UserError, match=r"lacks obs/agentview_image.*robot0_eef_pos"):
        read_robomimic_hdf5(path, ["agentview_image"])
    with pytest.raises(UserError, match=r"no filter key mask/20_percent.*train"):
        read_robomimic_hdf5(path, ["object"], filter_key="20_percent")
    text = tmp_path / "not.hdf5"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a readable HDF5"):
        read_robomimic_hdf5(text, ["object"])
    with h5py.File(tmp_path / "empty.hdf5", "w") as f:
        f.create_group("other")
    with pytest.raises(UserError, match="no 'data' group"):
        read_robomimic_hdf5(tmp_path / "empty.hdf5", ["object"])


def test_environment_from_old_style_env_args_is_delta_osc_pose():
    env = RobomimicEnv(json.dumps(OLD_ENV_ARGS))
    controller = env.env_args["env_kwargs"]["controller_configs"]
    assert controller["type"] == "BASIC" and controller["body_parts"]["right"]["type"] == "OSC_POSE"
    obs, info = env.reset(seed=0)
    assert {k: v.shape for k, v in obs.items()} == {
        "object": (10,),
        "robot0_eef_pos": (3,),
        "robot0_eef_quat": (4,),
        "robot0_gripper_qpos": (2,),
    }
    assert np.abs(obs["object"][7:]).sum() > 0  # the gripper-to-cube part is filled at reset
    assert env.action_space.shape == (7,) and not info["success"]
    start = obs["robot0_eef_pos"]
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0, 0, 0, 0, 0, -1.0]))
    moved = obs["robot0_eef_pos"] - start
    assert moved[0] > 0.03 and abs(moved[1]) < 0.02  # +x action: the hand moves +x (base frame = world frame)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def test_same_seed_same_start_and_tracker(lift_env):
    lift_env.reset(seed=5)
    a = lift_env.get_state()
    lift_env.reset(seed=5)
    b = lift_env.get_state()
    lift_env.reset(seed=6)
    c = lift_env.get_state()
    np.testing.assert_array_equal(a[1:], b[1:])
    assert np.abs(a[1:] - c[1:]).max() > 1e-3
    tracker = SuccessTracker()
    tracker.reset({"success": False})
    tracker.update(0.0, {"success": False}, 1)
    tracker.update(1.0, {"success": True}, 2)
    tracker.update(0.0, {"success": False}, 3)
    assert tracker.result() == {"score": 1.0, "success": True, "success_step": 2}
    assert get_suite("robomimic").name == "robomimic"


@pytest.mark.parametrize(
    ("env_name", "seeds", "max_steps"), [("PickPlaceCan", (0, 1), 300), ("NutAssemblySquare", (0, 1), 300)]
)
def test_can_and_square_experts_succeed(env_name, seeds, max_steps):
    # Lift is covered (with replay) below; Square turns the nut's handle towards the robot before the peg
    env = RobomimicEnv(default_env_args(env_name), terminate_on_success=False)
    for seed in seeds:
        arrays, summary = run_expert_episode(env, seed, max_steps=400)
        assert summary["success"], summary
        assert summary["steps"] == len(arrays["action"]) < max_steps, summary
        assert np.abs(arrays["action"]).max() <= 1.0
    env.close()


def test_lift_expert_succeeds_and_its_written_demo_replays(lift_env, tmp_path):
    episodes = []
    for seed in (0, 1):
        arrays, summary = run_expert_episode(lift_env, seed, max_steps=400)
        assert summary["success"] and summary["kept"] and summary["steps"] == len(arrays["action"]) < 150
        assert np.abs(arrays["action"]).max() <= 1.0
        episodes.append(arrays)
    path = write_robomimic_hdf5(tmp_path / "lift.hdf5", episodes, lift_env.env_args)
    demo = read_demo(path, 1)
    assert demo["states"].shape[1] == len(lift_env.get_state())
    assert demo["dones"][-1] == 1 and demo["rewards"][-1] == 1.0

    env = RobomimicEnv(read_env_args(path), terminate_on_success=False)  # a fresh env, from the file's env_args
    obs, _ = env.reset(seed=123, options={"reset_to_state": demo["states"][0], "model_file": demo["model_file"]})
    np.testing.assert_allclose(obs["object"], demo["obs/object"][0], atol=1e-6)
    errors, success = [], False
    for t, action in enumerate(demo["actions"]):
        obs, _, _, _, info = env.step(action)
        success = success or info["success"]
        if t + 1 < len(demo["states"]):
            errors.append(np.abs(env.get_state()[1:] - demo["states"][t + 1][1:]).max())
    env.close()
    assert success
    assert max(errors) < 1e-3, max(errors)
