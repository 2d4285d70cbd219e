"""Closed-loop evaluation over fixed seeds on gymnasium vector environments.

What an episode scores is the suite's business (its tracker, see
``fmpolicy/envs/registry.py``); this module runs episodes, collects each one's
result, and summarizes: score and success rate with 95% intervals for every
suite, plus the suite's own metrics (e.g. Kitchen's p1..p4).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from fmpolicy.envs import make_env
from fmpolicy.envs.registry import get_suite
from fmpolicy.errors import UserError
from fmpolicy.eval.video import write_video
from fmpolicy.plotting import figure, save
from fmpolicy.policy.api import Policy, model_from_checkpoint
from fmpolicy.stats import mean_ci95, wilson_ci95


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
    perturbation: tuple[str, float, int] | None = None,
    record: Callable[[dict[str, np.ndarray]], Any] | None = None,
) -> tuple[list[dict[str, Any]], list[list[np.ndarray]], float]:
    """Run one episode per seed; returns per-episode results, videos and env steps/s.

    An episode's result is its suite tracker's (``score``, ``success`` and extras)
    plus ``seed`` and ``steps``. Sampling noise comes from a generator per episode
    and ``obs_noise`` (Gaussian, in the suite's units, on every observation the
    policy sees) from a generator per episode too, so an episode's result does not
    depend on ``n_envs``. ``perturbation`` is passed to ``make_env``. ``record`` is given
    the observations the policy acts on at each decision (unfinished episodes' rows).
    """
    task = cfg["task"]
    results: list[dict[str, Any]] = []
    total_steps, t0 = 0, time.time()
    max_steps = cfg["eval"]["max_episode_steps"] or task["max_episode_steps"]
    keys = list(get_suite(task["suite"]).tracker(task).result())  # what an episode's result holds
    bar = tqdm(total=len(seeds), desc=f"eval nfe={nfe}", disable=not progress, dynamic_ncols=True)
    # One vector env for all batches (building a simulator can cost more than its episode); environment i
    # records its first episode when i < n_videos. A short last batch fills the spare environments with
    # repeats of its last seed and ignores them.
    width = min(n_envs, len(seeds))
    fns = [
        (
            lambda rec=(i < n_videos): make_env(
                task, policy.n_obs_steps, policy.n_action_steps, max_steps, rec, perturbation
            )
        )
        for i in range(width)
    ]
    envs = _vector_env(fns, cfg["eval"].get("vector_env", "sync"))
    for start in range(0, len(seeds), width):
        batch = seeds[start : start + width]
        n = len(batch)
        padded = batch + [batch[-1]] * (width - n)
        obs, info = envs.reset(seed=padded)
        policy.reset(episode_seeds=padded)
        noise_rngs = [np.random.default_rng([cfg["eval"]["noise_seed"], s]) for s in padded]
        done = np.zeros(width, bool)
        done[n:] = True
        last: list[dict[str, Any]] = [{k: info[k][i] for k in keys} for i in range(n)]
        steps = np.zeros(n, int)
        while not done.all():
            seen = obs
            if obs_noise:
                seen = {
                    k: v + np.stack([r.normal(0, obs_noise, v.shape[1:]) for r in noise_rngs]) for k, v in obs.items()
                }
            if record is not None:
                record({k: np.array(v[~done]) for k, v in seen.items()})
            action = policy.predict_action(seen, nfe=nfe, solver=solver)
            obs, _, terminated, truncated, info = envs.step(action)
            for i in np.flatnonzero(~done):
                last[i] = {k: info[k][i] for k in keys}
                steps[i] = info["env_steps"][i]
            done |= terminated | truncated
        total_steps += int(steps.sum())
        for i, seed in enumerate(batch):
            results.append({"seed": int(seed), "steps": int(steps[i]), **{k: _scalar(v) for k, v in last[i].items()}})
        bar.update(n)
    videos: list[list[np.ndarray]] = [f for f in envs.get_attr("frames")[:n_videos] if f]
    envs.close()
    bar.close()
    return results, videos, total_steps / (time.time() - t0)


# forkserver, not fork: a fork of this multi-threaded process (torch) can inherit a held lock and hang
VECTOR_ENVS: dict[str, Callable[[list[Any]], gym.vector.VectorEnv]] = {
    "sync": gym.vector.SyncVectorEnv,  # all environments in this process
    "async": lambda fns: gym.vector.AsyncVectorEnv(fns, context="forkserver"),  # one worker process each
}


def _vector_env(fns: list[Any], kind: str) -> gym.vector.VectorEnv:
    """The vector env of ``eval.vector_env``; either way the policy is called once per step on the whole batch."""
    if kind not in VECTOR_ENVS:
        raise UserError(f"eval.vector_env '{kind}' unknown: choose one of {', '.join(VECTOR_ENVS)}")
    return VECTOR_ENVS[kind](fns)


def _scalar(v: Any) -> float | int | bool:
    return np.asarray(v).item()


def summarize(results: list[dict[str, Any]], nfe: int, solver: str, task: dict[str, Any]) -> dict[str, Any]:
    """Score and success rate with 95% intervals, and the suite's metrics under ``suite``."""
    scores = np.array([r["score"] for r in results], dtype=float)
    wins = int(sum(bool(r["success"]) for r in results))
    return {
        "score": float(scores.mean()),
        "score_ci95": list(mean_ci95(scores)),
        "success_rate": wins / len(results),
        "success_ci95": list(wilson_ci95(wins, len(results))),
        "n_episodes": len(results),
        "nfe": nfe,
        "solver": solver,
        "suite": get_suite(task["suite"]).metrics(results, task),
    }


def plot_results(results: list[dict[str, Any]], task: dict[str, Any], path: Path, title: str) -> None:
    """Histogram of the suite's chosen per-episode value, with its success threshold if it has one."""
    key, label, threshold = get_suite(task["suite"]).histogram
    values = np.array([r[key] for r in results], dtype=float)
    fig, ax = figure(height=3.5)
    lo, hi = min(0.0, values.min()), max(1.0, values.max())
    ax.hist(values, bins=np.linspace(lo, hi, 41), color="tab:blue")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"success threshold {threshold}")
        ax.legend()
    ax.set_xlabel(label)
    ax.set_ylabel("episodes")
    ax.set_title(title)
    save(fig, path)


def write_episodes(results: list[dict[str, Any]], path: Path) -> None:
    """One row per episode (seed, score, success and the suite's extras): what ``fmpolicy compare`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)


def evaluate_policy(policy: Policy, cfg: dict[str, Any], out: Path, progress: bool = True) -> dict[str, Any]:
    """Roll out ``cfg.eval`` episodes; writes episodes.csv, metrics.json, a plot and videos."""
    ec = cfg["eval"]
    nfe = ec["nfe"] or cfg["inference"]["nfe"]
    solver = ec["solver"] or cfg["inference"]["solver"]
    seeds = list(range(ec["seed_start"], ec["seed_start"] + ec["episodes"]))
    results, videos, steps_per_s = rollout_episodes(
        policy, cfg, seeds, nfe, solver, ec["n_envs"], ec["videos"], progress
    )
    metrics = summarize(results, nfe, solver, cfg["task"])
    metrics["env_steps_per_s"] = steps_per_s
    metrics["seeds"] = [seeds[0], seeds[-1]]
    write_episodes(results, out / "episodes.csv")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_results(results, cfg["task"], out / "results.png", f"{metrics['n_episodes']} episodes, NFE {nfe} ({solver})")
    for i, frames in enumerate(videos):
        write_video(out / f"episode_{seeds[i]}.mp4", frames)
    return metrics


def evaluate_checkpoint(payload: dict[str, Any], cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    policy = Policy(model_from_checkpoint(payload, cfg), cfg, seed=cfg["eval"]["noise_seed"], device=cfg["device"])
    return evaluate_policy(policy, cfg, out)
