"""Spread of a policy's action chunk over its sampling latents, on held-out windows (offline, no simulator).

For each RUN[:SOLVER:NFE] (default: the run's own inference solver and NFE): 64 held-out windows spread evenly,
16 latents each drawn at the run's sampling std times the temperature, and ``latent_spread`` of
``fmpolicy/eval/sensitivity.py`` on them (the std over latents, averaged over windows and chunk entries, in
normalized action units). The same windows and standard-normal draws for every run. Used on the Kitchen
expert FM (docs/results/kitchen.md, "The teacher's solver").
Usage: python scripts/experiments/sample_spread.py [--temperature 0.5] RUN[:SOLVER:NFE] ...
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fmpolicy.data.tasks import load_task_data
from fmpolicy.eval.sensitivity import latent_spread
from fmpolicy.policy.api import model_from_checkpoint
from fmpolicy.policy.checkpoint import load_checkpoint
from fmpolicy.policy.train import make_batch


def spread(spec: str, temperature: float, windows: int = 64, latents: int = 16) -> tuple[str, int, float, float]:
    run, *how = spec.split(":")
    payload = load_checkpoint(run)
    cfg = payload["config"]
    model = model_from_checkpoint(payload).eval()
    solver, nfe = (how[0], int(how[1])) if how else (cfg["inference"]["solver"], cfg["inference"]["nfe"])
    data = load_task_data(cfg).windows(cfg, "val")
    batch = make_batch(data, np.linspace(0, len(data) - 1, windows).astype(int), torch.device("cpu"), "")
    std = temperature * cfg["inference"].get("noise_scale", 1.0)
    with torch.no_grad():
        value = latent_spread(model, model.condition(batch["obs"]), solver, nfe, latents, seed=0, noise_scale=std)
    return solver, nfe, std, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--temperature", type=float, default=0.5)
    args = parser.parse_args()
    for spec in args.runs:
        solver, nfe, std, value = spread(spec, args.temperature)
        print(f"{spec}: {solver} at NFE {nfe}, latents of std {std:.4f}: spread {value:.4f}")


if __name__ == "__main__":
    main()
