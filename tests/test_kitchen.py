"""Franka Kitchen: real data in both layouts, open-loop replay, p1..p4, smoke train + eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fmpolicy.cli import main
from fmpolicy.config import compose
from fmpolicy.data.minari import read_minari_hdf5, write_minari_hdf5
from fmpolicy.data.readers import read_dataset
from fmpolicy.data.tasks import load_task_data
from tests.conftest import REAL_KITCHEN

TASKS = ["microwave", "kettle", "light switch", "slide cabinet"]


def _real():
    cfg = compose({"task": "kitchen_lowdim"})
    return cfg, read_dataset(cfg["dataset"], cfg["task"]["shape_meta"])


def test_real_kitchen_complete_reads_with_its_shapes_and_boundaries():
    _, buf = _real()
    assert buf.n_episodes == 19 and buf.n_steps == 4209
    assert buf.data["observation"].shape == (4209, 59) and buf.data["action"].shape == (4209, 9)
    assert buf.data["observation"].dtype == np.float32
    lengths = np.diff(np.concatenate([[0], buf.episode_ends]))
    assert lengths.min() == 208 and lengths.max() == 236
    assert np.abs(buf.data["action"]).max() <= 1.0


def test_minari_layout_round_trip(tmp_path):
    _, buf = _real()
    episodes = [{"observation": buf.episode(i)["observation"], "action": buf.episode(i)["action"]} for i in range(3)]
    folder = write_minari_hdf5(tmp_path / "kitchen-complete-v2", episodes, ["observation"], {"dataset_id": "t"})
    import h5py

    with h5py.File(folder / "main_data.hdf5") as f:  # Minari's own layout: T + 1 observations, T actions
        ep = f["episode_1"]
        assert ep["observations/observation"].shape == (len(episodes[1]["action"]) + 1, 59)
        assert set(ep) >= {"observations", "actions", "rewards", "terminations", "truncations", "infos"}
    assert json.loads((folder / "metadata.json").read_text())["total_episodes"] == 3
    back = read_minari_hdf5(folder, ["observation"])
    assert list(back.episode_ends) == list(np.cumsum([len(e["action"]) for e in episodes]))
    assert np.array_equal(back.data["observation"], np.concatenate([e["observation"] for e in episodes]))
    assert np.array_equal(back.data["action"], np.concatenate([e["action"] for e in episodes]))
    # the task reads it through dataset.format=minari
    cfg = compose({"task": "kitchen_lowdim", "dataset.format": "minari", "dataset.path": str(folder)})
    assert load_task_data(cfg).obs["observation"].shape == (back.n_steps, 59)


def test_open_loop_replay_of_a_real_episode_completes_its_tasks():
    from fmpolicy.data.readers import resolve_path
    from fmpolicy.data.replay_buffer import read_replay_buffer
    from fmpolicy.envs.kitchen import replay_actions

    raw = read_replay_buffer(resolve_path(REAL_KITCHEN), ["state", "action"])
    completed, errors = replay_actions(raw.episode(3), TASKS)
    assert completed == TASKS  # the recorded order, judged by the environment itself
    assert errors.mean() < 0.05


def test_p1_to_p4_from_a_constructed_completion_record():
    from fmpolicy.envs.kitchen import TaskCompletionTracker, kitchen_metrics

    tracker = TaskCompletionTracker(TASKS)
    tracker.reset({})
    tracker.update(0.0, {"completed": ("microwave",)}, 40)
    tracker.update(0.0, {"completed": ("microwave", "kettle")}, 90)
    r = tracker.result()
    assert (
        r["n_completed"] == 2 and r["step_microwave"] == 40 and r["step_kettle"] == 90 and r["step_light_switch"] == -1
    )
    assert r["score"] == 0.5 and not r["success"]
    record = [r] + [
        {"n_completed": n, **{f"step_{t.replace(' ', '_')}": (10 if i < n else -1) for i, t in enumerate(TASKS)}}
        for n in (0, 1, 3, 4)
    ]
    m = kitchen_metrics(record, {"tasks": TASKS})  # episodes complete 2, 0, 1, 3, 4 tasks
    assert [m[f"p{k}"] for k in (1, 2, 3, 4)] == [0.8, 0.6, 0.4, 0.2]
    assert m["mean_completed"] == pytest.approx(2.0)
    assert m["rate_microwave"] == 0.8 and m["mean_step_kettle"] == pytest.approx((90 + 10 + 10) / 3)
    lo, hi = m["p4_ci95"]
    assert 0 < lo < 0.2 < hi < 1


def test_smoke_train_and_eval_on_real_kitchen_data(tmp_path, capsys):
    common = ["policy.down_dims=[16,32]", "policy.n_groups=4", "policy.step_embed_dim=16"]
    argv = ["train", "task=kitchen_lowdim", "train.steps=30", "train.batch_size=32", "train.ckpt_every=30"]
    assert main([*argv, *common, "train.log_every=10", "train.val_batches=1", f"out={tmp_path}/fm"]) == 0
    argv = ["eval", f"checkpoint={tmp_path}/fm", "eval.episodes=2", "eval.n_envs=2", "eval.nfe=2"]
    assert main([*argv, "eval.max_episode_steps=24", "eval.videos=1", f"out={tmp_path}/ev"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n_episodes"] == 2 and set(metrics["suite"]) >= {"p1", "p4", "mean_completed", "rate_kettle"}
    assert (tmp_path / "ev" / "episode_100000.mp4").stat().st_size > 1000
    assert "p1 " in capsys.readouterr().out


def test_demos_command_writes_expert_episodes_in_minari_layout(tmp_path, capsys):
    out = tmp_path / "kitchen-expert"
    assert main(["demos", "task=kitchen_lowdim", "episodes=1", "format=minari", f"out={out}"]) == 0
    assert "(minari)" in capsys.readouterr().out
    summary = json.loads((tmp_path / "kitchen-expert.summary.json").read_text())
    back = read_minari_hdf5(out, ["observation"])
    assert back.n_episodes == summary["episodes_kept"] == 1 and back.n_steps == summary["total_steps"]
    assert summary["episodes"][0]["success"] and sorted(summary["episodes"][0]["completed"]) == sorted(TASKS)
