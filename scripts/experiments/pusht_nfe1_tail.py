"""Where a one-step Push-T student departs from its teacher, on states a one-step policy visits.

Collects held-out states once (``--states-of RUN``: RUN's closed-loop observations on ``--episodes`` seeds from
``--seed-start``, a latent at the sampling std and the teacher's sample for each, the same collection as
``method.onpolicy_from``; cached as ``OUT/onpolicy.pt``) and runs each given run, at its own solver and NFE,
on the same latents. Per run, on the executed steps of each chunk, in pixels:

- distance to the teacher's chunk from the same latent (mean, 99th percentile);
- distance to the nearest of the teacher's chunks from 64 other latents at the same observation (on 1,000
  of the observations): a chunk far from the teacher's answer but near another of its samples took another
  mode; far from all of them it is off the teacher's distribution (between its modes);
- roughness (the mean norm of the second difference of the actions) and path length;
- the response to a small change of the observed block pose (2 px, 0.02 rad, keypoints moved with it).

    python scripts/experiments/pusht_nfe1_tail.py --teacher runs/p12/sw10n2 --states-of runs/p12/sw10_t2_onpol \\
        --out runs/p12/heldout_onpol runs/p12/sw10n2 runs/p12/sw10_t2 runs/p12/fm

Prints one row per run and writes ``OUT/nfe1_tail.json`` and ``OUT/nfe1_tail.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmpolicy.envs.pusht import block_keypoints
from fmpolicy.plotting import figure, save
from fmpolicy.policy.api import Policy, load_policy, sampling_std
from fmpolicy.policy.onpolicy import ONPOLICY_FILE, onpolicy_pairs
from fmpolicy.policy.reflow import Teacher

OTHER_SAMPLES = 64  # the teacher's samples from other latents per observation of the subset
SUBSET = 1000
BLOCK = 512
SHIFT_PX, TURN_RAD = 2.0, 0.02


def collect(
    teacher: Policy, teacher_run: str, states_of: str, seed_start: int, episodes: int, out: Path
) -> tuple[dict, torch.Tensor]:
    """The states ``states_of`` visits and a (latent, teacher's sample) pair at each, made once into ``out``."""
    cfg = load_policy(states_of).cfg
    cfg["method"] = {
        "onpolicy_from": states_of,
        "onpolicy_seed_start": seed_start,
        "onpolicy_episodes": episodes,
        "onpolicy_nfe": None,
    }
    source = Teacher(teacher.model, teacher.solver, teacher.nfe, str(Path(teacher_run).resolve()))
    out.mkdir(parents=True, exist_ok=True)
    made = onpolicy_pairs(cfg, source, sampling_std(teacher.cfg["inference"]), out / ONPOLICY_FILE)
    return made.obs, made.pairs


def executed(policy: Policy, actions: torch.Tensor) -> torch.Tensor:
    """The executed steps of normalized chunks, in environment units (pixels)."""
    start = policy.n_obs_steps - 1
    return policy.model.action_norm.unnormalize(actions)[:, start : start + policy.n_action_steps]


@torch.no_grad()
def decode(policy: Policy, obs: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """The policy's executed actions from latents ``z`` at ``obs``, with its own solver and NFE."""
    m, out = policy.model, []
    for s in range(0, len(z), BLOCK):
        part = {k: v[s : s + BLOCK] for k, v in obs.items() if k in policy.shape_meta["obs"]}
        out.append(executed(policy, m.sample(m.condition(part), z[s : s + BLOCK], policy.solver, policy.nfe)))
    return torch.cat(out)


def chunk_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over the executed steps of the distance between two chunks' actions (broadcasts)."""
    return (a - b).norm(dim=-1).mean(-1)


def nearest(chunks: torch.Tensor, others: torch.Tensor) -> dict[str, float]:
    """How far each chunk is from the nearest of the teacher's samples at its observation (others: (n, K, ...))."""
    d = chunk_distance(others, chunks[:, None]).min(1).values.numpy()
    return {
        "to_nearest_teacher_sample_q50_px": float(np.quantile(d, 0.5)),
        "to_nearest_teacher_sample_q99_px": float(np.quantile(d, 0.99)),
        "frac_over_20px_from_every_teacher_sample": float(np.mean(d > 20)),
    }


def shape_of_chunks(chunks: torch.Tensor) -> dict[str, float]:
    second = chunks[:, 2:] - 2 * chunks[:, 1:-1] + chunks[:, :-2]
    return {
        "roughness_px": float(second.norm(dim=-1).mean()),
        "path_px": float((chunks[:, 1:] - chunks[:, :-1]).norm(dim=-1).sum(1).mean()),
    }


def moved_block(obs: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``obs`` with the block moved by SHIFT_PX and turned by TURN_RAD (random directions), keypoints with it."""
    state = obs["state"].clone()
    n = len(state)
    state[..., 2:4] += SHIFT_PX * torch.randn(n, 1, 2, generator=gen)
    state[..., 4] += TURN_RAD * torch.randn(n, 1, generator=gen)
    keypoint = block_keypoints(state[..., 2:4].numpy(), state[..., 4].numpy())
    return {**obs, "state": state, "keypoint": torch.as_tensor(keypoint, dtype=torch.float32)}


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(2)
    out = Path(args.out)
    teacher = load_policy(args.teacher)
    obs, pairs = collect(teacher, args.teacher, args.states_of, args.seed_start, args.episodes, out)
    target = executed(teacher, pairs[:, 1])
    gen = torch.Generator().manual_seed(0)
    subset = torch.randperm(len(pairs), generator=gen)[:SUBSET]
    sub = {k: v[subset].repeat_interleave(OTHER_SAMPLES, 0) for k, v in obs.items()}
    z = sampling_std(teacher.cfg["inference"]) * torch.randn(
        (len(subset) * OTHER_SAMPLES, *pairs.shape[2:]), generator=gen
    )
    others = decode(teacher, sub, z).reshape(len(subset), OTHER_SAMPLES, *target.shape[1:])
    moved = moved_block(obs, gen)
    rows: dict[str, dict[str, Any]] = {}
    errors = {}
    for run in args.runs:
        policy = load_policy(run)
        chunks = decode(policy, obs, pairs[:, 0])
        err = chunk_distance(chunks, target).numpy()
        name = f"{run} @ NFE {policy.nfe}"
        if run != args.teacher:  # the teacher's own distances are 0: nothing to plot
            errors[name] = err
        rows[name] = {
            "to_teacher_same_latent_mean_px": float(err.mean()),
            "to_teacher_same_latent_q99_px": float(np.quantile(err, 0.99)),
            **nearest(chunks[subset], others),
            **shape_of_chunks(chunks),
            "response_to_moved_block_px": float(chunk_distance(decode(policy, moved, pairs[:, 0]), chunks).mean()),
        }
    print(f"{len(pairs)} chunks at the states of {args.states_of} (seeds {args.seed_start}..); teacher {args.teacher}")
    for name, row in rows.items():
        print(name, json.dumps({k: round(v, 3) for k, v in row.items()}))
    (out / "nfe1_tail.json").write_text(json.dumps({"teacher": args.teacher, "runs": rows}, indent=1))
    fig, ax = figure(width=6.0, height=3.5)
    bins = np.logspace(-1, 2.3, 60)
    for name, err in errors.items():
        ax.hist(err, bins=bins, histtype="step", label=name)
    ax.set(xscale="log", yscale="log", xlabel="distance to the teacher's chunk, same latent (px)", ylabel="chunks")
    ax.legend(fontsize=7)
    save(fig, out / "nfe1_tail.png")
    print(f"wrote {out / 'nfe1_tail.json'} and {out / 'nfe1_tail.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="the run whose samples are the reference")
    parser.add_argument("--states-of", required=True, help="the run whose closed-loop states are measured")
    parser.add_argument("--seed-start", type=int, default=400000, help="collection seeds (held out from training)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--out", required=True, help="folder for the states' cache and the results")
    parser.add_argument("runs", nargs="+", help="runs compared with the teacher, each at its own solver and NFE")
    main(parser.parse_args())
