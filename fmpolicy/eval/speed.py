"""``fmpolicy speed``: training throughput, batch-1 latency per chunk, rollout throughput."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmpolicy.envs.registry import get_suite
from fmpolicy.eval.rollout import rollout_episodes
from fmpolicy.policy.api import Policy
from fmpolicy.policy.device import resolve_device
from fmpolicy.policy.model import build_model
from fmpolicy.policy.train import make_optimizer


def _random_obs(cfg: dict[str, Any], batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Observations in the suite's value ranges, shaped ``(batch, n_obs_steps, *shape)``."""
    suite, n = get_suite(cfg["task"]["suite"]), cfg["policy"]["n_obs_steps"]
    return {
        k: rng.uniform(*suite.obs_range(k), (batch, n, *meta["shape"])).astype(np.float32)
        for k, meta in cfg["task"]["shape_meta"]["obs"].items()
    }


def measure_speed(cfg: dict[str, Any], out: Path, model: torch.nn.Module | None = None) -> dict[str, Any]:
    sc, p = cfg["speed"], cfg["policy"]
    rng = np.random.default_rng(0)
    device = resolve_device(cfg["device"])
    model = (model or build_model(cfg)).to(device)
    result: dict[str, Any] = {
        "parameters": sum(x.numel() for x in model.parameters()),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }

    opt = make_optimizer([x for x in model.parameters() if x.requires_grad], cfg["train"], device)
    bs = cfg["train"]["batch_size"]
    obs = {k: torch.from_numpy(v).to(device) for k, v in _random_obs(cfg, bs, rng).items()}
    act = torch.rand(bs, p["horizon"], model.action_dim, device=device) * 2 - 1
    times = []
    for i in range(sc["train_steps"] + 2):
        t = time.perf_counter()
        loss = model.pretrain_loss(model.condition(obs), act, "uniform")
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:  # skip warm-up
            times.append(time.perf_counter() - t)
    result["train_step_s"] = float(np.median(times))
    result["train_samples_per_s"] = bs / result["train_step_s"]

    policy = Policy(model, cfg, device=str(device))
    one = _random_obs(cfg, 1, rng)
    result["latency_ms_batch1"] = {}
    for nfe in sc["nfes"]:
        policy.predict_action(one, nfe=nfe)
        lat = []
        for _ in range(sc["latency_calls"]):
            t = time.perf_counter()
            policy.predict_action(one, nfe=nfe)
            lat.append(1000 * (time.perf_counter() - t))
        result["latency_ms_batch1"][nfe] = float(np.median(lat))

    seeds = list(range(cfg["eval"]["seed_start"], cfg["eval"]["seed_start"] + sc["rollout_episodes"]))
    _, _, steps_per_s = rollout_episodes(
        policy, cfg, seeds, sc["rollout_nfe"], cfg["inference"]["solver"], sc["rollout_episodes"], progress=False
    )
    result["rollout_env_steps_per_s"] = steps_per_s
    result["rollout"] = {
        "episodes": sc["rollout_episodes"],
        "nfe": sc["rollout_nfe"],
        "vector_envs": sc["rollout_episodes"],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(result, indent=2))
    return result
