"""Bad input ends in one clear line and exit status 2, never a traceback."""

import json

import numpy as np
import pytest
import torch

from fmpolicy.cli import main
from fmpolicy.data.replay_buffer import write_replay_buffer


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "Traceback" not in err
    return err


def test_missing_dataset_path(capsys, tmp_path):
    err = _error(capsys, ["train", "task=pusht_lowdim", f"dataset.path={tmp_path}/missing.zarr", f"out={tmp_path}/r"])
    assert "dataset not found" in err and "dataset.path" in err


def test_no_dataset_given(capsys, tmp_path):
    assert "set dataset.path" in _error(
        capsys, ["train", "task=pusht_lowdim", "dataset.path=null", f"out={tmp_path}/r"]
    )


def test_dataset_without_needed_arrays(capsys, tmp_path):
    write_replay_buffer(tmp_path / "d.zarr", [{"action": np.zeros((20, 2)), "state": np.zeros((20, 5))}])
    err = _error(capsys, ["train", "task=pusht_lowdim", f"dataset.path={tmp_path}/d.zarr", f"out={tmp_path}/r"])
    assert "lacks data/keypoint" in err


def test_unknown_task_and_key_and_command(capsys, tmp_path):
    err = _error(capsys, ["train", "task=pushq"])
    assert "unknown task 'pushq'" in err and "pusht_lowdim" in err
    err = _error(capsys, ["train", "task=pusht_lowdim", "train.stepz=3"])
    assert "unknown config key 'train.stepz'" in err and "steps" in err
    assert "not key=value" in _error(capsys, ["train", "steps"])
    assert main(["fly"]) == 2


def test_checkpoint_errors(capsys, tmp_path, tiny_run):
    assert "checkpoint not found" in _error(capsys, ["eval", f"checkpoint={tmp_path}/none.pt"])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert "corrupt" in _error(capsys, ["eval", f"checkpoint={bad}"])
    _, result = tiny_run
    err = _error(capsys, ["eval", f"checkpoint={result.checkpoint}", "policy.down_dims=[32,64]", f"out={tmp_path}/e"])
    assert "does not fit the config" in err


def test_device_errors(capsys, tmp_path, tiny_run):
    _, result = tiny_run
    err = _error(capsys, ["eval", f"checkpoint={result.checkpoint}", "device=gpu0", f"out={tmp_path}/e"])
    assert "device 'gpu0' is not a torch device" in err and "device=cpu" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_asked_for_without_a_gpu(capsys, tmp_path, tiny_run):
    _, result = tiny_run
    err = _error(capsys, ["eval", f"checkpoint={result.checkpoint}", "device=cuda", f"out={tmp_path}/e"])
    assert "torch sees no CUDA GPU" in err and "device=cpu" in err


def test_eval_writes_metrics_computed_from_the_environment(tmp_path, tiny_run):
    _, result = tiny_run
    out = tmp_path / "eval"
    argv = [
        "eval",
        f"checkpoint={result.checkpoint}",
        "eval.episodes=3",
        "eval.nfe=2",
        "eval.videos=1",
        "eval.max_episode_steps=24",
        f"out={out}",
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("score", "success_rate", "n_episodes", "nfe", "score_ci95", "success_ci95"):
        assert key in metrics
    assert metrics["n_episodes"] == 3 and metrics["nfe"] == 2
    rows = (out / "episodes.csv").read_text().strip().splitlines()[1:]
    episodes = [dict(zip(["seed", "steps", "score", "success", "max_coverage"], r.split(","))) for r in rows]
    assert [int(e["seed"]) for e in episodes] == [100000, 100001, 100002]
    for e in episodes:
        # The score is the environment's reward, clip(coverage / 0.95): consistent with the coverage column.
        assert float(e["score"]) == pytest.approx(min(1.0, float(e["max_coverage"]) / 0.95), abs=1e-9)
        assert int(e["steps"]) == 24
    assert metrics["score"] == pytest.approx(np.mean([float(e["score"]) for e in episodes]))
    assert (out / "episode_100000.mp4").stat().st_size > 1000
    assert (out / "results.png").exists()


def test_deploy_drives_the_simulator(tmp_path, tiny_run, capsys):
    _, result = tiny_run
    assert main(["deploy", f"checkpoint={result.checkpoint}", "deploy.steps=16", f"out={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "latency" in out and out.count("call ") == 2
    summary = json.loads((tmp_path / "deploy.json").read_text())
    assert summary["env_steps"] == 16 and summary["calls"] == 2
    assert (tmp_path / "deploy.mp4").stat().st_size > 1000


def test_speed_benchmark_writes_its_numbers(tmp_path, tiny_run):
    _, result = tiny_run
    argv = [
        "speed",
        f"checkpoint={result.checkpoint}",
        "speed.train_steps=2",
        "speed.latency_calls=2",
        "speed.rollout_episodes=2",
        "eval.max_episode_steps=16",
        f"out={tmp_path}",
    ]
    assert main(argv) == 0
    r = json.loads((tmp_path / "speed.json").read_text())
    assert r["train_samples_per_s"] > 0 and r["rollout_env_steps_per_s"] > 0
    assert set(r["latency_ms_batch1"]) == {"1", "4", "10"}
    assert r["latency_ms_batch1"]["10"] > r["latency_ms_batch1"]["1"]


def test_bench_takes_its_eval_settings_from_the_runs_task(tiny_run, tmp_path):
    """bench/robustness without task= compose on the runs' task (e.g. Robomimic's 8 worker-process envs)."""
    from fmpolicy.cli import _compose_for_runs
    from fmpolicy.policy.checkpoint import load_checkpoint

    _, result = tiny_run
    payload = load_checkpoint(result.checkpoint)
    payload["config"]["task"]["name"] = "robomimic_lift_lowdim"
    torch.save(payload, tmp_path / "other_task.pt")
    cfg = _compose_for_runs({"bench.runs": {"X": str(tmp_path / "other_task.pt")}})
    assert cfg["task"]["name"] == "robomimic_lift_lowdim"
    assert cfg["eval"]["vector_env"] == "async" and cfg["eval"]["n_envs"] == 8
    given = _compose_for_runs({"bench.runs": {"X": str(tmp_path / "other_task.pt")}, "task": "pusht_lowdim"})
    assert given["eval"]["vector_env"] == "sync" and given["eval"]["n_envs"] == 50


def test_bench_temperature_overrides_every_runs_own(tiny_run):
    from fmpolicy.config import compose
    from fmpolicy.eval.bench import load_runs

    cfg, result = tiny_run
    runs = {"A": str(result.checkpoint)}
    own = load_runs(compose({"task": "pusht_lowdim", "bench.runs": runs}))
    assert own["A"][1]["inference"]["temperature"] == cfg["inference"]["temperature"] == 0.8  # Push-T's own
    cold = load_runs(compose({"task": "pusht_lowdim", "bench.runs": runs, "bench.temperature": "0.6"}))
    assert cold["A"][1]["inference"]["temperature"] == 0.6
