"""Shared fixtures: the real Push-T data (shipped with the package) and a tiny policy trained on it once."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before any simulator imports mujoco: headless rendering

import pytest

from fmpolicy.config import compose
from fmpolicy.data.readers import resolve_path

REAL_ZARR = resolve_path("builtin:pusht_cchi_v7_lowdim.zarr.zip")
REAL_KITCHEN = resolve_path("builtin:kitchen_complete_v2.zarr.zip")


@pytest.fixture(scope="session")
def real_zarr() -> Path:
    return REAL_ZARR


def tiny_config(out: Path, dataset: Path, **overrides) -> dict:
    """A small U-Net and a short run: seconds on a CPU."""
    args = {
        "task": "pusht_lowdim",
        "method": "fm",
        "dataset.path": str(dataset),
        "policy.down_dims": [16, 32],
        "policy.step_embed_dim": 16,
        "policy.n_groups": 4,
        "train.steps": 60,
        "train.batch_size": 64,
        "train.warmup_steps": 5,
        "train.lr": 3e-3,
        "train.log_every": 10,
        "train.ckpt_every": 30,
        "train.val_batches": 2,
        "out": str(out),
        "eval.n_envs": 2,
        "eval.videos": 0,
    }
    args.update(overrides)
    return compose(args)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, real_zarr):
    from fmpolicy.policy.pretrain import pretrain

    out = tmp_path_factory.mktemp("tiny_run")
    cfg = tiny_config(out, real_zarr)
    result = pretrain(cfg, progress=False)
    return cfg, result
