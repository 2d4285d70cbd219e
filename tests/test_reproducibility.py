"""Per-seed results do not depend on batching; failures keep what the user made."""

from __future__ import annotations

import pytest
import torch

from fmpolicy.cli import main
from fmpolicy.eval.rollout import rollout_episodes
from fmpolicy.policy.api import load_policy
from fmpolicy.policy.checkpoint import load_checkpoint

FT = ["method.max_windows=64", "method.inverse_nfe=8", "train.batch_size=16", "train.val_batches=1"]


def test_per_seed_results_are_the_same_for_any_number_of_side_by_side_envs_in_or_out_of_process(tiny_run):
    cfg, result = tiny_run
    policy = load_policy(result.checkpoint)
    seeds = [100000, 100001, 100002, 100003, 100004]
    runs = {}
    for n_envs, vector_env in ((1, "sync"), (2, "sync"), (5, "sync"), (2, "async")):
        run_cfg = {**cfg, "eval": {**cfg["eval"], "max_episode_steps": 48, "vector_env": vector_env}}
        results, _, _ = rollout_episodes(policy, run_cfg, seeds, 2, "euler", n_envs, progress=False, obs_noise=1.0)
        runs[n_envs, vector_env] = [(r["seed"], r["score"], r["max_coverage"]) for r in results]
    # The network always runs on blocks of the same size, so a seed's result does not depend on its neighbours
    # (to the last bits: a row's place in the block can move a float32 action by one ulp). The environments are
    # reused across batches (2 envs, 5 seeds: the last batch is padded), in this process or in worker processes.
    reference = runs[1, "sync"]
    for key in ((2, "sync"), (5, "sync"), (2, "async")):
        assert [s for s, _, _ in runs[key]] == seeds
        assert [x for _, *x in runs[key]] == [pytest.approx(x, abs=1e-9) for _, *x in reference]
    assert len({score for _, score, _ in reference}) > 1  # the seeds differ from one another


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from fmpolicy.policy.pretrain import PretrainObjective

    argv = ["train", "task=pusht_lowdim", "policy.down_dims=[16,32]", "policy.n_groups=4", "train.batch_size=16"]
    argv += ["train.ckpt_every=10", "train.log_every=10", "train.val_batches=1", f"out={tmp_path}"]
    assert main([*argv, "train.steps=10"]) == 0
    good = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    monkeypatch.setattr(PretrainObjective, "forward", lambda self, batch: (torch.tensor(float("nan")), {}))
    assert main([*argv, "train.steps=30"]) == 2
    err = capsys.readouterr().err
    assert "training loss became nan at step 11" in err and "last good checkpoint" in err
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == good
    assert load_checkpoint(tmp_path)["step"] == 10


def test_damaged_latent_cache_is_recomputed(tmp_path, tiny_run, capsys):
    _, result = tiny_run
    out = tmp_path / "ft"
    out.mkdir()
    (out / "latents.pt").write_bytes(b"")  # what a kill during the write used to leave
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "last.pt.x1.tmp").write_bytes(b"partial")  # an interrupted checkpoint write
    argv = ["finetune", f"checkpoint={result.checkpoint}", "method=ft_mle", "train.steps=2", *FT, f"out={out}"]
    assert main(argv) == 0
    assert "latent cache" in capsys.readouterr().out
    saved = torch.load(out / "latents.pt", weights_only=False)
    assert saved["train"]["latents"].shape[0] == 64 and torch.isfinite(saved["train"]["latents"]).all()
    assert not list((out / "checkpoints").glob("*.tmp"))


def test_latent_cache_of_other_weights_is_remade_not_reused(tmp_path, tiny_run, monkeypatch):
    import numpy as np

    from fmpolicy.data.tasks import load_task_data
    from fmpolicy.policy import finetune
    from fmpolicy.policy.api import model_from_checkpoint

    cfg, result = tiny_run
    model = model_from_checkpoint(load_checkpoint(result.checkpoint))
    splits = {"train": (load_task_data(cfg).windows(cfg, "train"), np.arange(6))}
    mc = {"inverse_solver": "rk4", "inverse_nfe": 8, "inverse_warp": 2.0}
    made = []
    invert = finetune.invert_windows
    monkeypatch.setattr(finetune, "invert_windows", lambda *a, **k: made.append(1) or invert(*a, **k))
    cache = tmp_path / "latents.pt"
    first = finetune.build_latents(model, splits, mc, cache, progress=False)["train"].latents
    again = finetune.build_latents(model, splits, mc, cache, progress=False)["train"].latents
    assert len(made) == 1 and torch.equal(first, again)  # the same weights: the cache is reused
    with torch.no_grad():
        next(model.parameters()).add_(0.05)  # a copied cache from another checkpoint of the same shapes
    other = finetune.build_latents(model, splits, mc, cache, progress=False)["train"].latents
    assert len(made) == 2 and not torch.allclose(first, other)


def test_saved_checkpoints_are_readable_as_any_file_the_user_writes(tmp_path):
    import os

    from fmpolicy.policy.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "ckpt.pt", {"step": 3})
    plain = tmp_path / "plain"
    plain.write_bytes(b"")  # what the user's umask gives a new file
    assert os.stat(tmp_path / "ckpt.pt").st_mode & 0o777 == os.stat(plain).st_mode & 0o777
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False) == {"step": 3}
    assert not list(tmp_path.glob("*.tmp"))
