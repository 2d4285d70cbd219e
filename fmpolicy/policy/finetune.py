"""Fine-tuning by maximum likelihood of the solver's reconstructions (DESIGN.md sections 3-4).

For a demonstration ``(o, a)`` and a latent ``z`` (its pairing), the inference
solver with the inference NFE maps ``z`` to ``a_hat`` differentiably; the loss
is ``gaussian_nll(a, a_hat, log_sigma)`` (``flow.py``) plus an optional FM term.
``method.sample_weight`` adds the same NLL on the pretrained flow's own samples: pairs
``(z ~ N(0, s^2 I), a_hat = accurate solve from z)``, so ``z`` is exactly ``a_hat``'s inverse
latent and the few-step decoder also learns the latents it is fed at inference, not only
the inverse latents of the demonstrations (which are narrower and heavier-tailed); ``s`` is 1,
or with ``method.sample_latent_std=inference`` the std the policy samples at (its temperature's).
One pair is stored per training window, or with ``method.fresh_pairs`` every training batch draws new
latents and the teacher's samples of them (no gradient; affordable with a teacher at NFE 1-2), or with
``method.onpolicy_from`` the pairs sit at the observations a policy visits in closed loop (``onpolicy.py``).
``method.kind = ft_mle`` updates every velocity-field parameter;
``ft_residual`` trains only the contracting residual on a frozen base. ``reflow``
(the baseline a user would pick for few-step inference, ``reflow.py``) retrains
the field on straight paths to the pretrained flow's own samples.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fmpolicy.data.tasks import load_task_data
from fmpolicy.data.windows import WindowDataset
from fmpolicy.errors import UserError
from fmpolicy.policy import flow
from fmpolicy.policy.api import model_from_checkpoint, sampling_std
from fmpolicy.policy.checkpoint import load_checkpoint, save_checkpoint, weights_digest
from fmpolicy.policy.device import module_device, resolve_device
from fmpolicy.policy.model import FlowModel, FlowSampling, build_model
from fmpolicy.policy.train import TrainResult, make_batch, train, validation_batches

if TYPE_CHECKING:
    from fmpolicy.policy.onpolicy import OnPolicyPairs
    from fmpolicy.policy.reflow import Teacher

PAIRINGS = ("inverse", "independent")
FINETUNE_KINDS = ("ft_mle", "ft_residual", "reflow")
LATENTS_FILE = "latents.pt"  # the inverse pairing's latents, cached in the run folder
PAIRS_FILE = "pairs.pt"  # the pretrained flow's sample pairs (reflow, FT-FM's sample_weight), cached beside them


def tuned_nfes(cfg: dict[str, Any]) -> list[int]:
    """The NFEs a reconstruction-tuned checkpoint is trained for: ``inference.nfe`` and ``method.extra_nfes``
    (the config check makes each a multiple of the solver's evaluations per step)."""
    return sorted({cfg["inference"]["nfe"], *cfg["method"].get("extra_nfes", [])})


@torch.no_grad()
def over_windows(
    model: FlowSampling,
    windows: WindowDataset,
    indices: np.ndarray,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    desc: str,
    batch_size: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """``fn(condition, normalized actions)`` over the windows ``indices`` in batches, concatenated."""
    out = []
    device = module_device(model)
    for start in tqdm(range(0, len(indices), batch_size), desc=desc, disable=not progress):
        batch = make_batch(windows, indices[start : start + batch_size], device, "")
        out.append(fn(model.condition(batch["obs"]), model.action_norm.normalize(batch["action"])))
    return torch.cat(out)


def invert_windows(
    model: FlowSampling,
    windows: WindowDataset,
    indices: np.ndarray,
    solver: str,
    nfe: int,
    warp: float,
    batch_size: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """Latents ``(len(indices), horizon, action_dim)``: the flow's inverse of each window's actions."""

    def invert(cond: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return model.invert(cond, action, solver, nfe, warp)

    return over_windows(model, windows, indices, invert, "inverting windows", batch_size, progress)


def latent_stats(z: torch.Tensor) -> dict[str, float]:
    """How far latents are from N(0, I): their mean, std and the std's spread over entries."""
    flat = z.flatten(1)
    return {
        "mean": flat.mean().item(),
        "std": flat.std().item(),
        "std_min_entry": flat.std(0).min().item(),
        "std_max_entry": flat.std(0).max().item(),
        "n": len(flat),
    }


class LatentBank:
    """Latents of some windows of one split, looked up by window index."""

    def __init__(self, indices: np.ndarray, latents: torch.Tensor, n_windows: int) -> None:
        self.indices, self.latents = np.asarray(indices), latents
        self.rows = np.full(n_windows, -1)
        self.rows[self.indices] = np.arange(len(self.indices))

    def __getitem__(self, batch_idx: np.ndarray) -> torch.Tensor:
        rows = self.rows[batch_idx]
        if np.any(rows < 0):
            raise KeyError("no latent stored for some of these windows")
        return self.latents[rows]


def executed_step_weight(cfg: dict[str, Any]) -> torch.Tensor | None:
    """``(horizon, 1)``: 1 on the chunk's steps the policy executes, ``method.unexecuted_weight`` elsewhere.

    The policy acts on steps ``n_obs_steps - 1 ..`` (``n_action_steps`` of them, ``api.py``); the rest of the
    chunk (the past step(s) and the tail) is never executed, so a few-step decoder may spend less on it.
    ``None`` where the weight is 1 (the plain likelihood).
    """
    w, p = cfg["method"]["unexecuted_weight"], cfg["policy"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
        raise UserError(f"method.unexecuted_weight must be a number in [0, 1], got {w!r}")
    if w == 1.0:
        return None
    weight = torch.full((p["horizon"], 1), float(w))
    start = p["n_obs_steps"] - 1
    weight[start : start + p["n_action_steps"]] = 1.0
    return weight


class ReconstructionObjective(nn.Module):
    """Gaussian NLL of the inference solver's reconstruction, optionally plus the FM loss."""

    def __init__(
        self,
        model: FlowSampling,
        cfg: dict[str, Any],
        latents: dict[str, LatentBank] | None = None,
        samples: dict[str, LatentBank] | None = None,
        fresh: tuple[Teacher, float] | None = None,
        onpolicy: OnPolicyPairs | None = None,
    ) -> None:
        super().__init__()
        mc = cfg["method"]
        if mc["pairing"] not in PAIRINGS:
            raise UserError(f"method.pairing '{mc['pairing']}' unknown: choose one of {PAIRINGS}")
        if mc["pairing"] == "inverse" and not latents:
            raise ValueError("inverse pairing needs the latents of the training windows")
        self.model = model
        self.pairing = mc["pairing"]
        self.fm_weight = float(mc["fm_weight"])
        self.time_sampler = cfg["train"]["time_sampler"]
        self.solver, self.nfe, self.nfes = cfg["inference"]["solver"], cfg["inference"]["nfe"], tuned_nfes(cfg)
        sc = mc["sigma"]
        shape = () if sc["shape"] == "scalar" else (model.action_dim,)
        if sc["shape"] not in ("scalar", "per_dim") or sc["mode"] not in ("fixed", "learned"):
            raise UserError("method.sigma.shape must be scalar|per_dim and method.sigma.mode fixed|learned")
        self.log_sigma = nn.Parameter(
            torch.full(shape, float(np.log(sc["init"]))), requires_grad=sc["mode"] == "learned"
        )
        self.latents = latents or {}
        self.sample_weight = float(mc["sample_weight"])
        if self.sample_weight > 0 and not samples:
            raise ValueError("method.sample_weight > 0 needs the pretrained flow's sample pairs")
        self.samples = samples or {}
        self.sample_split = bool(mc["sample_split"]) and self.sample_weight > 0
        self.fresh = fresh  # (teacher, latent std): new pairs in each training batch; a tuple, so not a submodule
        self.onpolicy = onpolicy  # training batches' pairs drawn at the observations a policy acted on
        self.cond_noise = float(mc["cond_noise"])
        # None: every step of the chunk counts the same; a buffer, so it moves with the objective's device
        self.register_buffer("step_weight", executed_step_weight(cfg), persistent=False)

    def extra_state(self) -> dict[str, Any]:
        return {"log_sigma": self.log_sigma.detach().clone()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_sigma.copy_(state["log_sigma"].to(self.log_sigma.device))

    def latent(self, batch_idx: np.ndarray, like: torch.Tensor, split: str) -> torch.Tensor:
        if self.pairing == "independent":
            return torch.randn_like(like)
        return self.latents[split][batch_idx].to(like.device)

    def reconstruction_nll(
        self, cond: torch.Tensor, z: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[int, float]]:
        """One latent, every tuned NFE's reconstruction of ``target``: the NLLs averaged, and each NFE's MSE."""
        loss, mse = torch.zeros((), device=target.device), {}
        for nfe in self.nfes:
            a_hat = self.model.sample(cond, z, self.solver, nfe)
            loss = loss + flow.gaussian_nll(target, a_hat, self.log_sigma, self.step_weight) / len(self.nfes)
            mse[nfe] = ((a_hat - target) ** 2).mean().item()
        return loss, mse

    def fresh_pairs(self, obs: Any, rows: slice, like: torch.Tensor) -> torch.Tensor:
        """``(batch, 2, horizon, action_dim)``: new latents at the sampling std and the teacher's samples."""
        from fmpolicy.policy.reflow import sample_pair

        assert self.fresh is not None
        teacher, std = self.fresh
        with torch.no_grad():
            cond = teacher.model.condition(obs)
            z = std * torch.randn_like(like[rows])
            return sample_pair(teacher.model, None if cond is None else cond[rows], z, teacher.solver, teacher.nfe)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        cond = self.model.condition(batch["obs"])
        if self.cond_noise > 0 and cond is not None and self.training:  # robustness to small errors in the observations
            cond = cond + self.cond_noise * torch.randn_like(cond)
        a = self.model.action_norm.normalize(batch["action"])
        z = self.latent(batch["index"], a, batch["split"])
        logs = {"sigma": self.log_sigma.exp().mean().item()}
        # sample_split: the demonstrations' NLL on the batch's first half, the pairs' on its second (half the cost)
        own, rest = (slice(len(a) // 2), slice(len(a) // 2, None)) if self.sample_split else (slice(None),) * 2
        cond_own, cond_rest = (None, None) if cond is None else (cond[own], cond[rest])  # None: unconditional
        loss, mse = self.reconstruction_nll(cond_own, z[own], a[own])
        logs.update({"recon_mse" if nfe == self.nfe else f"recon_mse_nfe{nfe}": v for nfe, v in mse.items()})
        if self.sample_weight > 0:  # the pretrained flow's own samples, reconstructed from their exact latents
            if self.onpolicy is not None and self.training:
                rows = torch.randint(len(self.onpolicy.pairs), (len(a[rest]),))
                obs = {k: v[rows].to(a.device) for k, v in self.onpolicy.obs.items()}
                cond_rest, pair = self.model.condition(obs), self.onpolicy.pairs[rows].to(a.device)
            elif self.fresh is not None and self.training:
                pair = self.fresh_pairs(batch["obs"], rest, a)
            else:  # the stored pairs (always for the held-out windows, so their loss is comparable across steps)
                pair = self.samples[batch["split"]][batch["index"][rest]].to(a.device)
            sample_loss, mse = self.reconstruction_nll(cond_rest, pair[:, 0], pair[:, 1])
            loss = loss + self.sample_weight * sample_loss
            logs["sample_recon_mse"] = mse[self.nfe]
        if self.fm_weight > 0:
            fm = self.model.pretrain_loss(cond, a, self.time_sampler)
            loss = loss + self.fm_weight * fm
            logs["fm_loss"] = fm.item()
        return loss, logs


def build_latents(
    pretrained: FlowSampling,
    splits: dict[str, tuple[WindowDataset, np.ndarray]],
    mc: dict[str, Any],
    cache: Path,
    progress: bool = True,
) -> dict[str, LatentBank]:
    """Invert the chosen windows of each split once (the inverse pairing's latents), cached in ``cache``."""
    settings = {k: mc[k] for k in ("inverse_solver", "inverse_nfe", "inverse_warp")}
    settings["weights"] = weights_digest(pretrained)

    def compute(windows: WindowDataset, idx: np.ndarray) -> torch.Tensor:
        return invert_windows(
            pretrained, windows, idx, mc["inverse_solver"], mc["inverse_nfe"], mc["inverse_warp"], progress=progress
        )

    return cached_banks(splits, settings, cache, compute)


def cached_banks(
    splits: dict[str, tuple[WindowDataset, np.ndarray]],
    settings: dict[str, Any],
    cache: Path,
    compute: Callable[[WindowDataset, np.ndarray], torch.Tensor],
) -> dict[str, LatentBank]:
    """``compute`` a tensor for the chosen windows of each split once; reuse ``cache`` when it holds the same
    windows made with the same ``settings``."""
    if cache.exists():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=False)
            same = saved.get("settings") == settings and all(
                name in saved
                and np.array_equal(saved[name]["indices"], idx)
                and saved[name]["latents"].shape[0] == len(idx)
                and torch.isfinite(saved[name]["latents"]).all()
                for name, (_, idx) in splits.items()
            )
        except Exception as exc:  # a damaged cache is only a cost, never a stop
            print(f"note: latent cache {cache} is damaged ({type(exc).__name__}); recomputing it")
            same = False
        if same:
            return {name: LatentBank(idx, saved[name]["latents"], len(w)) for name, (w, idx) in splits.items()}
    banks = {name: LatentBank(idx, compute(windows, idx), len(windows)) for name, (windows, idx) in splits.items()}
    saved = {
        name: {"indices": b.indices, "latents": b.latents, "stats": latent_stats(b.latents)}
        for name, b in banks.items()
    }
    save_checkpoint(cache, {"settings": settings, **saved})  # atomic: temp file + rename
    return banks


def finetune(payload: dict[str, Any], cfg: dict[str, Any], source: str = "", progress: bool = True) -> TrainResult:
    """Fine-tune a pretrained FM checkpoint (``payload``, read from ``source``) with ``cfg.method``."""
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    torch.manual_seed(cfg["seed"])
    if payload["config"]["method"]["kind"] != "fm":
        raise UserError(
            f"checkpoint '{source}' holds a '{payload['config']['method']['kind']}' model: "
            "fine-tuning starts from a pretrained FM checkpoint (method=fm)"
        )
    kind = cfg["method"]["kind"]
    if kind not in FINETUNE_KINDS:
        raise UserError(
            f"method '{cfg['method']['name']}' is not a fine-tuning method: use method="
            + " or method=".join(FINETUNE_KINDS)
        )
    pretrained: FlowModel = model_from_checkpoint(payload, payload["config"])
    model = build_model(cfg)
    (model.base if kind == "ft_residual" else model).load_state_dict(pretrained.state_dict())

    data = load_task_data(cfg)
    windows = data.windows(cfg, "train")
    mc, out = cfg["method"], Path(cfg["out"])
    rng = np.random.default_rng(cfg["seed"])
    n = min(len(windows), mc["max_windows"]) if mc["max_windows"] else len(windows)
    pool = np.sort(rng.choice(len(windows), n, replace=False))
    pretrained.to(resolve_device(cfg["device"]))
    val_windows = data.windows(cfg, "val")
    val_idx = np.unique(
        np.concatenate(
            validation_batches(len(val_windows), cfg["train"]["val_batches"], cfg["train"]["batch_size"])
            or [np.zeros(0, int)]
        )
    )
    splits = {"train": (windows, pool), "val": (val_windows, val_idx)}
    objective: nn.Module
    if kind == "reflow":
        from fmpolicy.policy.reflow import ReflowObjective, build_pairs

        pairs = build_pairs(splits, cfg, out / PAIRS_FILE, pair_teacher(cfg, pretrained), progress)
        objective = ReflowObjective(model, cfg, pairs)
    else:
        # the teacher is checked before the latents' minutes are spent
        teacher = pair_teacher(cfg, pretrained) if mc["sample_weight"] > 0 else None
        if mc["onpolicy_from"]:
            from fmpolicy.policy.onpolicy import ONPOLICY_FILE, onpolicy_pairs, onpolicy_source

            if teacher is None:
                raise UserError("method.onpolicy_from pairs the teacher's samples: it needs method.sample_weight > 0")
            if mc["fresh_pairs"]:
                raise UserError("method.fresh_pairs and method.onpolicy_from both choose the training pairs: set one")
            onpolicy_source(cfg)
        latents: dict[str, LatentBank] = {}
        if mc["pairing"] == "inverse":
            latents = build_latents(pretrained, splits, mc, out / LATENTS_FILE, progress)
            stats = latent_stats(latents["train"].latents)
            print(
                f"latents of {stats['n']} training windows: mean {stats['mean']:+.3f}, std {stats['std']:.3f} "
                f"(N(0, I) has 0, 1; per-entry std {stats['std_min_entry']:.3f}..{stats['std_max_entry']:.3f})"
            )
            if mc["match_latent_std"]:
                # The decoder learns from latents of this spread; fed wider N(0, I) noise it extrapolates.
                cfg["inference"]["noise_scale"] = round(stats["std"], 4)
                print(
                    f"inference.noise_scale = {stats['std']:.4f}: the policy samples latents at their spread "
                    f"(times inference.temperature = {cfg['inference']['temperature']})"
                )
        samples, onpolicy = None, None
        if teacher is not None:  # sample_weight > 0
            from fmpolicy.policy.reflow import build_pairs

            # "inference": the latents the policy is fed (noise_scale x temperature), so the decoder learns to
            # reproduce the accurate flow's samples at the temperature it is run at
            std = sampling_std(cfg["inference"]) if mc["sample_latent_std"] == "inference" else 1.0
            made_by = f" of {teacher.source}" if teacher.source else ""
            print(f"sample pairs: latents of std {std:.4f}, {teacher.solver} at NFE {teacher.nfe}{made_by}")
            if mc["onpolicy_from"]:
                onpolicy = onpolicy_pairs(cfg, teacher, std, out / ONPOLICY_FILE, progress)
            # fresh or on-policy pairs: training batches bring their own, so only the held-out windows' are stored
            own_pairs = mc["fresh_pairs"] or mc["onpolicy_from"]
            pair_splits = {"val": splits["val"]} if own_pairs else splits
            samples = build_pairs(pair_splits, cfg, out / PAIRS_FILE, teacher, progress, std)
        fresh = (teacher, std) if teacher is not None and mc["fresh_pairs"] else None
        objective = ReconstructionObjective(model, cfg, latents, samples, fresh, onpolicy)
    return train(
        cfg,
        objective,
        data,
        out,
        extra_payload={"source_checkpoint": str(Path(source).resolve()) if source else ""},
        progress=progress,
        train_indices=pool,
    )


def pair_teacher(cfg: dict[str, Any], pretrained: FlowSampling) -> Teacher:
    """What makes the sample pairs' targets: the pretrained flow with ``method.pair_solver`` at
    ``method.pair_nfe``, or the checkpoint ``method.pair_teacher`` (e.g. FT-FM tuned for a larger NFE) with its
    own inference solver and NFE (progressive distillation)."""
    from fmpolicy.policy.reflow import Teacher

    mc = cfg["method"]
    path = mc.get("pair_teacher")  # reflow's config has no such key
    if not path:
        return Teacher(pretrained, mc["pair_solver"], mc["pair_nfe"])
    cfg["method"]["pair_teacher"] = path = str(Path(path).resolve())  # the run's config records where it is
    payload = load_checkpoint(path, key="method.pair_teacher")
    model = model_from_checkpoint(payload).to(module_device(pretrained)).eval()
    ours, theirs = pretrained.action_norm.state_dict(), model.action_norm.state_dict()
    if payload["shape_meta"] != cfg["task"]["shape_meta"] or any(not torch.equal(ours[k], theirs[k]) for k in ours):
        raise UserError(
            f"method.pair_teacher '{path}' was trained on another task or dataset than the checkpoint being "
            "fine-tuned: use a teacher fine-tuned from the same FM checkpoint"
        )
    return Teacher(model, payload["config"]["inference"]["solver"], payload["config"]["inference"]["nfe"], path)


def pretrained_reference(payload: dict[str, Any], model: FlowSampling) -> FlowSampling:
    """The pretrained flow a fine-tuned checkpoint started from (its latents define the pairing).

    A residual model carries its frozen base; an FT-FM checkpoint names its source
    checkpoint; a pretrained FM model is its own reference.
    """
    from fmpolicy.policy.residual import ResidualFlowModel

    if isinstance(model, ResidualFlowModel):
        return model.base
    source = payload.get("source_checkpoint")
    if not source:
        return model
    if not Path(source).exists():
        raise UserError(
            f"the pretrained checkpoint this run was fine-tuned from, '{source}', is gone: its latents define "
            "the reconstruction error; restore that file (or measure the pretrained run itself)"
        )
    return model_from_checkpoint(load_checkpoint(source))
