"""Drive one live simulator with a checkpoint, step by step, as a robot loop would."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from fmpolicy.envs import make_env
from fmpolicy.eval.video import write_video
from fmpolicy.policy.api import Policy, model_from_checkpoint


def deploy(payload: dict[str, Any], cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    """Observe, predict a chunk, execute it; print each call's latency; write deploy.mp4."""
    dc, task = cfg["deploy"], cfg["task"]
    policy = Policy(model_from_checkpoint(payload, cfg), cfg, seed=dc["seed"], device=cfg["device"])
    nfe = dc["nfe"] or cfg["inference"]["nfe"]
    env = make_env(task, policy.n_obs_steps, policy.n_action_steps, dc["steps"], record_video=True)
    obs, info = env.reset(seed=dc["seed"])
    policy.reset()  # one live episode: its noise generator is seeded with deploy.seed (no padded blocks)
    latencies, done = [], False
    while not done:
        t = time.perf_counter()
        action = policy.predict_action({k: v[None] for k, v in obs.items()}, nfe=nfe)[0]
        latencies.append(1000 * (time.perf_counter() - t))
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        print(
            f"call {len(latencies):3d}  latency {latencies[-1]:6.1f} ms  step {info['env_steps']:3d}  "
            f"score {info['score']:.3f}  success {bool(info['success'])}"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_video(out / "deploy.mp4", env.get_wrapper_attr("frames"))
    summary = {
        "seed": dc["seed"],
        "nfe": nfe,
        "calls": len(latencies),
        "latency_ms_median": float(np.median(latencies)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "env_steps": int(info["env_steps"]),
        **{k: np.asarray(v).item() for k, v in env.tracker.result().items()},
    }
    (out / "deploy.json").write_text(json.dumps(summary, indent=2))
    print(
        f"median latency {summary['latency_ms_median']:.1f} ms per chunk; score {summary['score']:.3f}, "
        f"success {summary['success']}; video {out / 'deploy.mp4'}"
    )
    return summary
