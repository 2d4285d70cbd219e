import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from fmpolicy.errors import UserError
from fmpolicy.policy import Policy, load_policy
from fmpolicy.policy.api import BackwardCoherence
from fmpolicy.policy.checkpoint import load_checkpoint
from tests.conftest import tiny_config


def test_tiny_training_run_loss_drops(tiny_run):
    _, result = tiny_run
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert (result.checkpoint.parent.parent / "loss.png").exists()


def test_checkpoint_holds_everything_and_reproduces_predictions(tiny_run, real_zarr):
    cfg, result = tiny_run
    payload = load_checkpoint(result.checkpoint)
    for key in ("model", "ema_model", "config", "optimizer", "step"):
        assert key in payload
    assert payload["config"]["policy"]["down_dims"] == [16, 32]
    assert not torch.equal(payload["model"]["net.final.1.weight"], payload["ema_model"]["net.final.1.weight"])
    obs = {"keypoint": np.random.default_rng(0).uniform(100, 400, (3, 2, 9, 2)), "agent_pos": np.full((3, 2, 2), 250.0)}
    a = load_policy(result.checkpoint, seed=7).predict_action(obs)
    b = load_policy(result.checkpoint.parent.parent, seed=7).predict_action(obs)
    assert a.shape == (3, 8, 2)
    assert np.array_equal(a, b)
    policy = load_policy(result.checkpoint, seed=7)
    first = policy.predict_action(obs)
    assert not np.array_equal(first, policy.predict_action(obs))  # fresh noise per call
    policy.reset()
    assert np.array_equal(first, policy.predict_action(obs))  # reset reseeds


def test_noise_scale_and_temperature_scale_the_initial_latent(tiny_run):
    cfg, result = tiny_run
    payload = load_checkpoint(result.checkpoint)
    obs = {"keypoint": np.random.default_rng(1).uniform(100, 400, (2, 2, 9, 2)), "agent_pos": np.full((2, 2, 2), 250.0)}
    policy = load_policy(result.checkpoint, seed=3)
    z = torch.randn((2, 16, 2), generator=torch.Generator().manual_seed(3))
    cond = policy.model.condition(policy._obs_tensors(obs))
    for scale, temperature in ((1.0, 1.0), (0.5, 1.0), (0.9, 0.7)):
        payload["config"]["inference"].update(noise_scale=scale, temperature=temperature)
        scaled = Policy(policy.model, payload["config"], seed=3)
        assert scaled.latent_std == pytest.approx(scale * temperature)
        want = policy.model.action_norm.unnormalize(policy.model.sample(cond, scale * temperature * z, "euler", 10))
        np.testing.assert_allclose(scaled.predict_action_chunk(obs), want.detach().numpy(), rtol=1e-5, atol=1e-4)


def test_select_action_spends_each_chunk_one_step_at_a_time(tiny_run):
    _, result = tiny_run
    obs = {"keypoint": np.random.default_rng(2).uniform(100, 400, (3, 2, 9, 2)), "agent_pos": np.full((3, 2, 2), 250.0)}
    chunk = load_policy(result.checkpoint, seed=5).predict_action(obs)  # (3, 8, 2)
    policy = load_policy(result.checkpoint, seed=5)
    steps = [policy.select_action(obs) for _ in range(9)]
    assert steps[0].shape == (3, 2)
    np.testing.assert_array_equal(np.stack(steps[:8], axis=1), chunk)
    assert not np.array_equal(steps[8], chunk[:, 0])  # the ninth call replans with fresh noise
    policy.reset()
    np.testing.assert_array_equal(policy.select_action(obs), chunk[:, 0])


def test_temporal_ensemble_averages_each_chunks_action_for_this_step(tiny_run):
    _, result = tiny_run
    obs = {"keypoint": np.random.default_rng(3).uniform(100, 400, (2, 2, 9, 2)), "agent_pos": np.full((2, 2, 2), 250.0)}
    with pytest.raises(UserError, match="add policy.n_action_steps=1"):
        load_policy(result.checkpoint, overrides={"inference.temporal_ensemble": 0.1})
    with pytest.raises(UserError, match="inference.temporal_ensemble=-1"):
        load_policy(result.checkpoint, overrides={"inference.temporal_ensemble": -1})
    plain = load_policy(result.checkpoint, seed=4, overrides={"policy.n_action_steps": 1})
    chunks = [plain.predict_action_chunk(obs)[:, 1:] for _ in range(3)]  # this step's action first
    te = {"policy.n_action_steps": 1, "inference.temporal_ensemble": 0.1}
    ensembled = load_policy(result.checkpoint, seed=4, overrides=te)
    got = [ensembled.select_action(obs) for _ in range(3)]
    w = np.exp(-0.1 * np.arange(3))  # the oldest chunk first
    want = (w[0] * chunks[0][:, 2] + w[1] * chunks[1][:, 1] + w[2] * chunks[2][:, 0]) / w.sum()
    np.testing.assert_allclose(got[0], chunks[0][:, 0], rtol=1e-6)
    np.testing.assert_allclose(got[2], want, rtol=1e-5, atol=1e-5)
    ensembled.reset()
    np.testing.assert_allclose(ensembled.select_action(obs), chunks[0][:, 0], rtol=1e-6)


def test_backward_coherence_keeps_the_sample_that_continues_the_last_plan():
    coherence = BackwardCoherence(executed=2)
    up, down = np.arange(6.0), -np.arange(6.0)  # two modes of a 1-D action, 6 steps
    first = np.stack([up, down])[None, :, :, None]  # (batch 1, 2 samples, 6 steps, 1)
    np.testing.assert_array_equal(coherence.choose(first)[0, :, 0], up)  # no plan yet: the first sample
    # two steps later the last plan goes on 2, 3, 4, 5: the sample continuing it wins, whatever its place
    later = np.stack([down + 2, up + 2])[None, :, :, None]
    np.testing.assert_array_equal(coherence.choose(later)[0, :, 0], up + 2)
    with pytest.raises(UserError, match="call reset"):
        coherence.choose(np.concatenate([later, later]))
    coherence.reset()
    np.testing.assert_array_equal(coherence.choose(later)[0, :, 0], down + 2)


def test_coherence_samples_act_on_the_sample_nearest_the_last_chunks_tail(tiny_run):
    _, result = tiny_run
    obs = {"keypoint": np.random.default_rng(6).uniform(100, 400, (3, 2, 9, 2)), "agent_pos": np.full((3, 2, 2), 250.0)}
    plain = load_policy(result.checkpoint, seed=8)
    np.testing.assert_array_equal(
        plain.predict_action_samples(obs, 1)[:, 0], load_policy(result.checkpoint, seed=8).predict_action_chunk(obs)
    )
    plain.reset()
    first, second = (plain.predict_action_samples(obs, 4)[:, :, 1:] for _ in range(2))  # this step's action first
    assert first.shape == (3, 4, 15, 2) and not np.array_equal(first[:, 0], first[:, 1])
    coherent = load_policy(result.checkpoint, seed=8, overrides={"inference.coherence_samples": 4})
    np.testing.assert_array_equal(coherent.predict_action(obs), first[:, 0, :8])
    gaps = ((second[:, :, :7] - first[:, :1, 8:]) ** 2).sum(axis=(2, 3))
    np.testing.assert_array_equal(coherent.predict_action(obs), second[np.arange(3), gaps.argmin(1), :8])
    with pytest.raises(UserError, match="set one of them to null"):
        overrides = {"inference.coherence_samples": 4, "inference.temporal_ensemble": 0.1, "policy.n_action_steps": 1}
        load_policy(result.checkpoint, overrides=overrides)
    with pytest.raises(UserError, match="inference.coherence_samples=1"):
        load_policy(result.checkpoint, overrides={"inference.coherence_samples": 1})


def test_load_policy_fills_inference_keys_an_older_checkpoint_lacks(tiny_run, tmp_path):
    _, result = tiny_run
    payload = load_checkpoint(result.checkpoint)
    for key in ("noise_scale", "temperature"):  # written before these keys existed
        del payload["config"]["inference"][key]
    torch.save(payload, tmp_path / "old.pt")
    assert load_policy(tmp_path / "old.pt").latent_std == 1.0


def test_training_resumes_after_being_killed(tmp_path, real_zarr):
    """Kill a run after its first checkpoint; the rerun resumes and matches an uninterrupted run."""
    args = [
        f"dataset.path={real_zarr}",
        "policy.down_dims=[16,32]",
        "policy.step_embed_dim=16",
        "policy.n_groups=4",
        "train.steps=40",
        "train.batch_size=32",
        "train.warmup_steps=5",
        "train.ckpt_every=10",
        "train.val_batches=1",
    ]
    cmd = [sys.executable, "-m", "fmpolicy.cli", "train", "task=pusht_lowdim", "method=fm", *args]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, f"out={killed}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpt = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    step_at_kill = torch.load(ckpt, weights_only=False)["step"]
    assert step_at_kill < 40
    rerun = subprocess.run([*cmd, f"out={killed}"], capture_output=True, text=True, check=True)
    assert f"resuming from {ckpt} at step {step_at_kill}" in rerun.stdout
    straight = tmp_path / "straight"
    subprocess.run([*cmd, f"out={straight}"], capture_output=True, text=True, check=True)
    a = torch.load(ckpt, weights_only=False)
    b = torch.load(straight / "checkpoints" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 40
    for k in a["ema_model"]:
        assert torch.allclose(a["ema_model"][k], b["ema_model"][k], atol=1e-6), k


def test_zero_step_config_still_writes_loadable_checkpoint(tmp_path, real_zarr):
    from fmpolicy.policy.pretrain import pretrain

    cfg = tiny_config(tmp_path, real_zarr, **{"train.steps": 0})
    pretrain(cfg, progress=False)
    assert load_policy(tmp_path).n_action_steps == 8


def test_keep_checkpoints_keeps_each_one_for_model_selection(tmp_path, real_zarr):
    """train.keep_checkpoints=true: every checkpoint stays as step_NNNNNN.pt, each loadable, the last one
    the same as last.pt; by default only last.pt is written."""
    from fmpolicy.policy.pretrain import pretrain

    short = {"train.steps": 20, "train.ckpt_every": 10}
    pretrain(tiny_config(tmp_path / "kept", real_zarr, **short, **{"train.keep_checkpoints": True}), progress=False)
    folder = tmp_path / "kept" / "checkpoints"
    assert sorted(p.name for p in folder.glob("*.pt")) == ["last.pt", "step_000010.pt", "step_000020.pt"]
    first, last = load_checkpoint(folder / "step_000010.pt"), load_checkpoint(folder / "last.pt")
    assert (first["step"], last["step"], load_checkpoint(folder / "step_000020.pt")["step"]) == (10, 20, 20)
    assert not all(torch.equal(first["ema_model"][k], last["ema_model"][k]) for k in last["ema_model"])
    assert load_policy(folder / "step_000010.pt").n_action_steps == 8
    pretrain(tiny_config(tmp_path / "plain", real_zarr, **short), progress=False)
    assert [p.name for p in (tmp_path / "plain" / "checkpoints").glob("*.pt")] == ["last.pt"]


def test_ddpm_baseline_trains_and_is_measured_with_ddim_and_ddpm(tmp_path, real_zarr):
    import csv

    from fmpolicy.cli import main
    from fmpolicy.policy.pretrain import pretrain

    cfg = tiny_config(tmp_path / "ddpm", real_zarr, method="ddpm")
    result = pretrain(cfg, progress=False)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.7 * losses[0]
    argv = [
        "bench",
        f"bench.runs={{DDPM: {result.checkpoint}}}",
        "eval.episodes=2",
        "eval.n_envs=2",
        "eval.max_episode_steps=8",
        "diagnose.windows=4",
        "bench.latency_calls=1",
        f"out={tmp_path}/b",
    ]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(tmp_path / "b" / "bench.csv")))
    assert [(r["solver"], r["nfe"]) for r in rows] == [("ddpm", "100"), ("ddim", "10")]
    assert float(rows[0]["latency_ms_batch1"]) > float(rows[1]["latency_ms_batch1"])
