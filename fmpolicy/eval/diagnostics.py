"""What fine-tuning changes, measured offline on held-out demonstrations.

* Reconstruction error per NFE and pairing: ``inverse`` (latent = the reference
  flow's accurate inverse of the demonstration) and ``independent`` (fresh noise).
  Errors are mean squared errors per action entry in normalized units.
* Contraction certificate: the largest eigenvalue of the symmetric part of
  ``dv/dx`` along inference trajectories, for the whole field and, for ResFT-FM,
  for the residual alone (negative = contracting at that rate).
* Stiffness: the spectral norm of ``dv/dx`` (a local Lipschitz constant).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import jacrev, vmap

from fmpolicy.data.tasks import TaskData
from fmpolicy.errors import UserError
from fmpolicy.plotting import figure, save
from fmpolicy.policy.api import sampling_std
from fmpolicy.policy.device import resolve_device
from fmpolicy.policy.finetune import invert_windows, latent_stats
from fmpolicy.policy.model import FlowSampling
from fmpolicy.policy.residual import ResidualFlowModel
from fmpolicy.policy.solvers import EVALS_PER_STEP, integrate
from fmpolicy.policy.train import obs_to_device


def velocity_jacobians(
    velocity: Callable[..., torch.Tensor], x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor
) -> torch.Tensor:
    """``dv/dx`` per sample, ``(B, D, D)`` with ``D = horizon * action_dim``."""

    def single(xi: torch.Tensor, ti: torch.Tensor, ci: torch.Tensor) -> torch.Tensor:
        return velocity(xi[None], ti[None], ci[None])[0].flatten()

    jac = vmap(jacrev(single))(x, t, cond)
    return jac.reshape(x.shape[0], x[0].numel(), x[0].numel())


def jacobian_summary(jac: torch.Tensor) -> dict[str, np.ndarray]:
    sym = 0.5 * (jac + jac.transpose(1, 2))
    return {
        "lambda_max_sym": torch.linalg.eigvalsh(sym)[:, -1].cpu().numpy(),
        "spectral_norm": torch.linalg.matrix_norm(jac, ord=2).cpu().numpy(),
    }


def _stats(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(x)), "max": float(np.max(x)), "min": float(np.min(x))}


@torch.no_grad()
def reconstruction_errors(
    model: FlowSampling,
    cond: torch.Tensor,
    action: torch.Tensor,
    latents: torch.Tensor,
    solver: str,
    nfes: list[int],
    seed: int = 0,
    noise_scale: float = 1.0,
) -> dict[str, dict[int, float]]:
    """Held-out MSE from each window's inverse latent and from fresh noise at the policy's sampling std."""
    gen = torch.Generator().manual_seed(seed)
    fresh = noise_scale * torch.randn(action.shape, generator=gen).to(action.device)
    out: dict[str, dict[int, float]] = {"inverse": {}, "independent": {}}
    for nfe in nfes:
        if nfe % EVALS_PER_STEP[solver]:
            continue
        out["inverse"][nfe] = ((model.sample(cond, latents, solver, nfe) - action) ** 2).mean().item()
        out["independent"][nfe] = ((model.sample(cond, fresh, solver, nfe) - action) ** 2).mean().item()
    return out


def contraction_certificate(
    model: FlowSampling, cond: torch.Tensor, noise: torch.Tensor, n_points: int, reference: FlowSampling | None = None
) -> dict[str, Any]:
    """Jacobian statistics at ``n_points`` times along Euler trajectories from ``noise``."""
    with torch.no_grad():
        path = integrate(model.field(cond), noise, "euler", n_points, return_path=True)[:-1]
    parts: dict[str, Any] = {"field": model.velocity}
    if isinstance(model, ResidualFlowModel):
        parts["residual"] = model.gated_residual
        parts["base"] = model.base.velocity
    if reference is not None:
        parts["pretrained"] = reference.velocity
    per_time: dict[str, list[dict[str, Any]]] = {k: [] for k in parts}
    for i, x in enumerate(path):
        t = torch.full((x.shape[0],), i / n_points, device=x.device)
        for name, fn in parts.items():
            summary = jacobian_summary(velocity_jacobians(fn, x, t, cond).detach())
            per_time[name].append({"t": i / n_points, **{k: _stats(v) for k, v in summary.items()}})
    overall = {
        name: {
            "lambda_max_sym_max": max(p["lambda_max_sym"]["max"] for p in rows),
            "spectral_norm_max": max(p["spectral_norm"]["max"] for p in rows),
            "spectral_norm_mean": float(np.mean([p["spectral_norm"]["mean"] for p in rows])),
        }
        for name, rows in per_time.items()
    }
    if "residual" in parts:
        # the weakest rate over the measured times (eps itself for an ungated residual)
        overall["residual"]["guaranteed_rate_eps"] = min(model.rate(i / n_points) for i in range(n_points))
    return {"overall": overall, "per_time": per_time}


def held_out_batch(
    data: TaskData, cfg: dict[str, Any], n: int, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Up to ``n`` held-out windows: their indices, observation dict and actions (raw)."""
    windows = data.windows(cfg, "val")
    if len(windows) == 0:
        raise UserError("no held-out episodes: set dataset.val_ratio > 0")
    idx = np.sort(np.random.default_rng(seed).choice(len(windows), min(n, len(windows)), replace=False))
    obs, act = windows.get_batch(idx)
    return idx, obs, act


def diagnose(
    model: FlowSampling, reference: FlowSampling, data: TaskData, cfg: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Write ``diagnostics.json`` and plots for ``model``; latents come from ``reference`` (the pretrained flow)."""
    dc = cfg["diagnose"]
    mc = cfg["method"]
    device = resolve_device(cfg["device"])
    model.to(device)
    reference.to(device)
    idx, obs, act = held_out_batch(data, cfg, dc["windows"])
    windows = data.windows(cfg, "val")
    latents = invert_windows(
        reference, windows, idx, dc["inverse_solver"], dc["inverse_nfe"], dc["inverse_warp"], progress=False
    )
    cond = model.condition(obs_to_device(obs, device))
    action = model.action_norm.normalize(torch.from_numpy(act).to(device))
    with torch.no_grad():
        round_trip = (
            ((reference.sample(cond, latents, dc["inverse_solver"], dc["inverse_nfe"]) - action) ** 2).mean().item()
        )
    solver, std = cfg["inference"]["solver"], sampling_std(cfg["inference"])
    recon = reconstruction_errors(model, cond, action, latents, solver, dc["nfes"], noise_scale=std)
    n_cert = min(dc["certificate_samples"], len(idx))
    noise = std * torch.randn((n_cert, *action.shape[1:]), generator=torch.Generator().manual_seed(1)).to(device)
    cert = contraction_certificate(
        model, cond[:n_cert], noise, dc["certificate_points"], reference if reference is not model else None
    )
    result = {
        "method": mc["kind"],
        "inference": cfg["inference"],
        "held_out_windows": len(idx),
        "latents": {
            **latent_stats(latents),
            "round_trip_mse": round_trip,
            "solver": dc["inverse_solver"],
            "nfe": dc["inverse_nfe"],
        },
        "reconstruction_mse": recon,
        "contraction": cert["overall"],
        "contraction_per_time": cert["per_time"],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnostics.json").write_text(json.dumps(result, indent=2))
    plot_diagnostics(result, out / "diagnostics.png")
    return result


def plot_diagnostics(result: dict[str, Any], path: Path) -> None:
    fig, (ax1, ax2) = figure(2, width=5.5)
    for pairing, errs in result["reconstruction_mse"].items():
        ax1.plot(list(errs), list(errs.values()), "o-", label=pairing)
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("NFE")
    ax1.set_ylabel("held-out reconstruction MSE")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for name, rows in result["contraction_per_time"].items():
        ax2.plot([r["t"] for r in rows], [r["lambda_max_sym"]["max"] for r in rows], "o-", label=name)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("t")
    ax2.set_ylabel("max eigenvalue of sym. Jacobian")
    ax2.set_yscale("symlog")
    ax2.legend()
    ax2.grid(alpha=0.3)
    save(fig, path)
