"""Demonstrations made offline by a suite's scripted expert, written in a real dataset format.

``demos.format``: ``zarr`` (Diffusion Policy's replay buffer, the layout of the
real Push-T and Kitchen files), ``minari`` (Minari's ``main_data.hdf5``) or
``robomimic`` (robomimic's HDF5, with the suite's ``env_args``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fmpolicy.data.minari import write_minari_hdf5
from fmpolicy.data.readers import parse_source
from fmpolicy.data.replay_buffer import write_replay_buffer
from fmpolicy.envs.registry import get_suite
from fmpolicy.errors import UserError

FORMATS = ("zarr", "minari", "robomimic")


def _per_step(episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Only the per-step numeric arrays (an expert may also return e.g. a model file or next observations)."""
    n = len(episode["action"])
    return {
        k: v
        for k, v in episode.items()
        if "/" not in k and np.ndim(v) >= 1 and len(v) == n and np.asarray(v).dtype.kind in "fiub"
    }


def _as_minari(episode: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Dataset arrays keyed like the zarr file -> keyed by observation key (Minari stores those)."""
    sources = cfg["dataset"].get("obs_sources") or {}
    out = {"action": episode["action"]}
    for key in cfg["task"]["shape_meta"]["obs"]:
        name, sl = parse_source(sources.get(key, key))
        out[key] = episode[name][..., sl] if sl is not None else episode[name]
    return out


def generate_demos(cfg: dict[str, Any], out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Run the task's expert on seeds ``demos.seed_start ..``; keep the episodes it keeps; write ``out``."""
    dc, task = cfg["demos"], cfg["task"]
    suite = get_suite(task["suite"])
    if suite.expert is None:
        raise UserError(f"suite '{suite.name}' has no scripted expert: bring a dataset (dataset.path=...)")
    if dc["action_noise"] and not suite.expert_action_noise:
        raise UserError(
            f"the expert of suite '{suite.name}' does not take demos.action_noise: leave it at 0 for this suite"
        )
    fmt = dc.get("format", "zarr")
    if fmt not in FORMATS:
        raise UserError(f"demos.format '{fmt}' unknown: choose one of {', '.join(FORMATS)}")
    seeds = range(dc["seed_start"], dc["seed_start"] + dc["episodes"])
    kept, summaries, t0 = [], [], time.time()
    bar = tqdm(seeds, desc="expert demos", disable=not progress, dynamic_ncols=True)
    for seed in bar:
        arrays, summary = suite.expert(seed, cfg)
        summaries.append(summary)
        if summary["kept"]:
            kept.append(arrays)
        bar.set_postfix(kept=len(kept), success=f"{np.mean([s['success'] for s in summaries]):.2f}")
    if not kept:
        raise UserError(f"the expert kept none of {dc['episodes']} episodes: raise demos.episodes")
    obs_keys = list(task["shape_meta"]["obs"])
    if fmt == "zarr":
        write_replay_buffer(out, [_per_step(ep) for ep in kept])
    elif fmt == "minari":
        episodes = [_as_minari(_per_step(ep), cfg) for ep in kept]
        write_minari_hdf5(out, episodes, obs_keys, {"env": suite.name, "task": task["name"]})
    else:
        from fmpolicy.data.robomimic_hdf5 import write_robomimic_hdf5

        env_args = suite.dataset_meta(task).get("env_args")
        if env_args is None:
            raise UserError(f"suite '{suite.name}' records no env_args: write demos.format=zarr or minari")
        write_robomimic_hdf5(out, kept, env_args, obs_keys=obs_keys)
    wall = time.time() - t0
    result = {
        "task": task["name"],
        "format": fmt,
        "episodes_run": dc["episodes"],
        "episodes_kept": len(kept),
        "success_rate": float(np.mean([s["success"] for s in summaries])),
        "mean_steps_kept": float(np.mean([len(k["action"]) for k in kept])),
        "total_steps": int(sum(len(k["action"]) for k in kept)),
        "wall_s": wall,
        "episodes_per_min": 60 * dc["episodes"] / wall,
        "seeds": [dc["seed_start"], dc["seed_start"] + dc["episodes"] - 1],
        "episodes": summaries,
    }
    Path(str(out) + ".summary.json").write_text(json.dumps(result, indent=2, default=_json_default))
    return result


def _json_default(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else str(v)
