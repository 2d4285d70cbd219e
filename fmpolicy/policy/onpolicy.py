"""On-policy sample pairs: distillation on the states the few-step policy itself visits (DAgger's idea).

FT-FM's sample pairs teach the few-step decoder the accurate flow's samples at the training windows'
observations. In closed loop its small errors take it to states no window holds, where nothing taught it.
``method.onpolicy_from=RUN`` rolls out RUN's policy (e.g. a first FT-FM run, at its own solver and NFE) on
``method.onpolicy_episodes`` seeds from ``method.onpolicy_seed_start`` (disjoint from evaluation's; at
``method.onpolicy_nfe`` if set, e.g. a pretrained FM at the few-step NFE), keeps
every observation it acted on, and pairs each with a latent at the sampling std and the teacher's sample of
it (the same teacher as the stored pairs). Training batches then draw the pairs' NLL from these
observations; held-out batches keep the held-out windows' stored pairs, so the held-out loss stays
comparable. The collection is cached in the run folder (``onpolicy.pt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from fmpolicy.errors import UserError
from fmpolicy.policy.checkpoint import save_checkpoint, weights_digest
from fmpolicy.policy.device import module_device
from fmpolicy.policy.reflow import sample_pair

if TYPE_CHECKING:
    from fmpolicy.policy.reflow import Teacher

ONPOLICY_FILE = "onpolicy.pt"


class OnPolicyPairs(NamedTuple):
    """Observations the policy acted on (``key -> (n, n_obs_steps, *shape)``) and a pair per observation
    (``(n, 2, horizon, action_dim)``: latent, teacher's sample)."""

    obs: dict[str, torch.Tensor]
    pairs: torch.Tensor


def onpolicy_source(cfg: dict[str, Any]) -> str:
    """``method.onpolicy_from`` resolved (the run's config records where it is) and checked before any work."""
    mc = cfg["method"]
    path = Path(mc["onpolicy_from"]).resolve()
    ckpt = path / "checkpoints" / "last.pt" if path.is_dir() else path
    if not ckpt.exists():
        raise UserError(
            f"method.onpolicy_from not found at '{ckpt}': pass method.onpolicy_from=RUN_DIR of a trained run"
        )
    mc["onpolicy_from"] = str(path)
    return str(path)


def collect_observations(run: str, cfg: dict[str, Any], progress: bool = True) -> dict[str, np.ndarray]:
    """Every observation ``run``'s policy acts on over the collection seeds (finished episodes' rows dropped)."""
    from fmpolicy.eval.rollout import rollout_episodes
    from fmpolicy.policy.api import load_policy

    mc = cfg["method"]
    policy = load_policy(run)
    if policy.shape_meta != cfg["task"]["shape_meta"]:
        raise UserError(
            f"method.onpolicy_from '{run}' acts on other observations than the checkpoint being fine-tuned: "
            "use a run of the same task"
        )
    batches: list[dict[str, np.ndarray]] = []
    seeds = list(range(mc["onpolicy_seed_start"], mc["onpolicy_seed_start"] + mc["onpolicy_episodes"]))
    nfe = mc["onpolicy_nfe"] or policy.nfe
    results, _, _ = rollout_episodes(
        policy,
        policy.cfg,
        seeds,
        nfe,
        policy.solver,
        cfg["eval"]["n_envs"],
        progress=progress,
        record=batches.append,
    )
    print(
        f"on-policy observations: {sum(len(next(iter(b.values()))) for b in batches)} from {len(seeds)} episodes "
        f"of {run} (score {np.mean([r['score'] for r in results]):.3f}, success "
        f"{np.mean([r['success'] for r in results]):.3f} at NFE {nfe})"
    )
    return {k: np.concatenate([b[k] for b in batches]).astype(np.float32) for k in batches[0]}


def onpolicy_pairs(
    cfg: dict[str, Any], teacher: Teacher, latent_std: float, cache: Path, progress: bool = True
) -> OnPolicyPairs:
    """The on-policy observations of ``method.onpolicy_from`` and the teacher's pairs on them, made once."""
    mc, run = cfg["method"], onpolicy_source(cfg)
    settings = {
        "run": run,
        "episodes": mc["onpolicy_episodes"],
        "seed_start": mc["onpolicy_seed_start"],
        "nfe": mc["onpolicy_nfe"],
        "teacher": (teacher.source, teacher.solver, teacher.nfe, weights_digest(teacher.model)),
        "latent_std": latent_std,
        "seed": cfg["seed"],
    }
    if cache.exists():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=False)
            if saved.get("settings") == settings:
                return OnPolicyPairs(saved["obs"], saved["pairs"])
        except Exception as exc:  # a damaged cache is only a cost, never a stop
            print(f"note: on-policy cache {cache} is damaged ({type(exc).__name__}); collecting again")
    obs = {k: torch.from_numpy(v) for k, v in collect_observations(run, cfg, progress).items()}
    gen = torch.Generator().manual_seed(cfg["seed"])
    device, model = module_device(teacher.model), teacher.model
    n, out = len(next(iter(obs.values()))), []
    shape = (cfg["policy"]["horizon"], model.action_dim)
    for start in tqdm(range(0, n, 256), desc="on-policy pairs", disable=not progress):
        part = {k: v[start : start + 256].to(device) for k, v in obs.items()}
        z = latent_std * torch.randn((len(next(iter(part.values()))), *shape), generator=gen).to(device)
        with torch.no_grad():
            out.append(sample_pair(model, model.condition(part), z, teacher.solver, teacher.nfe).cpu())
    made = OnPolicyPairs(obs, torch.cat(out))
    save_checkpoint(cache, {"settings": settings, "obs": made.obs, "pairs": made.pairs})  # atomic
    return made
