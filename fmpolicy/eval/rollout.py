"""Closed-loop evaluation over fixed seeds on gymnasium vector environments."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from fmpolicy.envs import make_env
from fmpolicy.envs.pusht import SUCCESS_COVERAGE
from fmpolicy.eval.video import write_video
from fmpolicy.plotting import figure, save
from fmpolicy.policy.api import Policy, model_from_checkpoint


def mean_ci95(x: np.ndarray) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean of values in [0, 1], clipped to [0, 1]."""
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    return max(0.0, float(x.mean() - half)), min(1.0, float(x.mean() + half))


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a success rate."""
    if n == 0:
        return 0.0, 0.0
    z, p = 1.96, successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rollout_episodes(
    policy: Policy,
    cfg: dict[str, Any],
    seeds: list[int],
    nfe: int,
    solver: str,
    n_envs: int,
    n_videos: int = 0,
    progress: bool = True,
    obs_noise: float = 0.0,
    disturbance: tuple[int, float] | None = None,
) -> tuple[list[dict[str, Any]], list[list[np.ndarray]], float]:
    """Run one episode per seed; returns per-episode results, videos and env steps/s.

    Score of an episode = max over its steps of ``clip(coverage / 0.95, 0, 1)``;
    success = max coverage above 0.95. ``obs_noise`` adds Gaussian noise (in
    environment units) to every observation the policy sees; ``disturbance``
    is passed to ``make_env``.
    """
    task = cfg["task"]
    results: list[dict[str, Any]] = []
    videos: list[list[np.ndarray]] = []
    total_steps, t0 = 0, time.time()
    noise_rng = np.random.default_rng(cfg["eval"]["noise_seed"])
    bar = tqdm(total=len(seeds), desc=f"eval nfe={nfe}", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(seeds), n_envs):
        batch = seeds[start : start + n_envs]
        fns = [
            (
                lambda rec=(start + i < n_videos): make_env(
                    task["suite"],
                    policy.n_obs_steps,
                    policy.n_action_steps,
                    cfg["eval"]["max_episode_steps"] or task["max_episode_steps"],
                    record_video=rec,
                    disturbance=disturbance,
                )
            )
            for i in range(len(batch))
        ]
        envs = gym.vector.SyncVectorEnv(fns)
        obs, _ = envs.reset(seed=batch)
        policy.reset()
        n = len(batch)
        done = np.zeros(n, bool)
        best_reward, best_cov = np.zeros(n), np.zeros(n)
        steps = np.zeros(n, int)
        while not done.all():
            seen = {k: v + noise_rng.normal(0, obs_noise, v.shape) for k, v in obs.items()} if obs_noise else obs
            action = policy.predict_action(seen, nfe=nfe, solver=solver)
            obs, reward, terminated, truncated, info = envs.step(action)
            live = ~done
            best_reward[live] = np.maximum(best_reward[live], reward[live])
            best_cov[live] = np.maximum(best_cov[live], info["coverage"][live])
            steps[live] = info["env_steps"][live]
            done |= terminated | truncated
        total_steps += int(steps.sum())
        for i, seed in enumerate(batch):
            results.append(
                {
                    "seed": int(seed),
                    "score": float(best_reward[i]),
                    "max_coverage": float(best_cov[i]),
                    "success": bool(best_cov[i] > SUCCESS_COVERAGE),
                    "steps": int(steps[i]),
                }
            )
        frames = envs.get_attr("frames")
        videos += [f for f in frames[: max(0, n_videos - start)] if f]
        envs.close()
        bar.update(n)
    bar.close()
    return results, videos, total_steps / (time.time() - t0)


def summarize(results: list[dict[str, Any]], nfe: int, solver: str) -> dict[str, Any]:
    scores = np.array([r["score"] for r in results])
    wins = int(sum(r["success"] for r in results))
    return {
        "score": float(scores.mean()),
        "score_ci95": list(mean_ci95(scores)),
        "success_rate": wins / len(results),
        "success_ci95": list(wilson_ci95(wins, len(results))),
        "n_episodes": len(results),
        "nfe": nfe,
        "solver": solver,
        "mean_max_coverage": float(np.mean([r["max_coverage"] for r in results])),
    }


def plot_coverage(results: list[dict[str, Any]], path: Path, title: str) -> None:
    cov = np.array([r["max_coverage"] for r in results])
    fig, ax = figure(height=3.5)
    ax.hist(cov, bins=np.linspace(0, 1, 41), color="tab:blue")
    ax.axvline(SUCCESS_COVERAGE, color="k", ls="--", label="success threshold 0.95")
    ax.set_xlabel("best coverage in episode")
    ax.set_ylabel("episodes")
    ax.set_title(title)
    ax.legend()
    save(fig, path)


def evaluate_policy(policy: Policy, cfg: dict[str, Any], out: Path, progress: bool = True) -> dict[str, Any]:
    """Roll out ``cfg.eval`` episodes; writes episodes.csv, metrics.json, a plot and videos."""
    ec = cfg["eval"]
    nfe = ec["nfe"] or cfg["inference"]["nfe"]
    solver = ec["solver"] or cfg["inference"]["solver"]
    seeds = list(range(ec["seed_start"], ec["seed_start"] + ec["episodes"]))
    results, videos, steps_per_s = rollout_episodes(
        policy, cfg, seeds, nfe, solver, ec["n_envs"], ec["videos"], progress
    )
    metrics = summarize(results, nfe, solver)
    metrics["env_steps_per_s"] = steps_per_s
    metrics["seeds"] = [seeds[0], seeds[-1]]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "episodes.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_coverage(results, out / "coverage.png", f"{metrics['n_episodes']} episodes, NFE {nfe} ({solver})")
    for i, frames in enumerate(videos):
        write_video(out / f"episode_{seeds[i]}.mp4", frames)
    return metrics


def evaluate_checkpoint(payload: dict[str, Any], cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    policy = Policy(model_from_checkpoint(payload, cfg), cfg, seed=cfg["eval"]["noise_seed"], device=cfg["device"])
    return evaluate_policy(policy, cfg, out)
