"""Demonstrations made offline by a suite's scripted expert, written as a replay-buffer zarr."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fmpolicy.data.replay_buffer import write_replay_buffer
from fmpolicy.errors import UserError

EXPERT_SUITES = ("pusht",)


def generate_demos(
    suite: str,
    episodes: int,
    out: str | Path,
    seed_start: int = 0,
    min_coverage: float = 0.9,
    max_steps: int = 300,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the expert from seeds ``seed_start ..``; keep episodes reaching ``min_coverage``; write ``out``."""
    if suite not in EXPERT_SUITES:
        raise UserError(f"no scripted expert for suite '{suite}': choose one of {EXPERT_SUITES}")
    from fmpolicy.envs.pusht import SUCCESS_COVERAGE, PushTKeypointEnv
    from fmpolicy.envs.pusht_expert import run_expert_episode

    env = PushTKeypointEnv()
    kept, summaries, t0 = [], [], time.time()
    bar = tqdm(range(seed_start, seed_start + episodes), desc="expert demos", disable=not progress, dynamic_ncols=True)
    for seed in bar:
        arrays, summary = run_expert_episode(env, seed, max_steps)
        summary["kept"] = bool(summary["max_coverage"] >= min_coverage and len(arrays["action"]) > 0)
        summaries.append(summary)
        if summary["kept"]:
            kept.append(arrays)
        bar.set_postfix(
            kept=len(kept), success=f"{np.mean([s['max_coverage'] > SUCCESS_COVERAGE for s in summaries]):.2f}"
        )
    if not kept:
        raise UserError(
            f"the expert reached coverage {min_coverage} in none of {episodes} episodes: raise demos.episodes"
        )
    write_replay_buffer(out, kept)
    cov = np.array([s["max_coverage"] for s in summaries])
    result = {
        "episodes_run": episodes,
        "episodes_kept": len(kept),
        "reach_min_coverage_rate": float(np.mean(cov >= min_coverage)),
        "success_rate": float(np.mean(cov > SUCCESS_COVERAGE)),
        "mean_steps_kept": float(np.mean([len(k["action"]) for k in kept])),
        "total_steps": int(sum(len(k["action"]) for k in kept)),
        "wall_s": time.time() - t0,
        "episodes_per_min": 60 * episodes / (time.time() - t0),
        "seeds": [seed_start, seed_start + episodes - 1],
        "episodes": summaries,
    }
    Path(str(out) + ".summary.json").write_text(json.dumps(result, indent=2))
    return result
