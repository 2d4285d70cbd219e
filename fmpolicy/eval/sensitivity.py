"""Offline sensitivity of a flow policy's solver output, where contraction theory speaks.

A field contracting in the action variable ``x`` (ResFT-FM's residual, rate ``eps``) should make the
output chunk insensitive to perturbations of the ODE state during integration and to errors of the
field (input-to-state stability). Measured on held-out observations at a run's solver and NFE, in
normalized action units, with the same latents, directions and noise for every model:

* ``latent_spread``: std of the output over ``K`` latents per observation, averaged over
  observations and chunk entries (how much the sampling noise moves the chunk);
* ``state_gain_t<t_k>``: ``||a(delta at t_k) - a|| / ||delta||`` per chunk, averaged, where ``delta`` (fixed
  norm, random direction) is added to the ODE state at solver grid time ``t_k`` and integration goes
  on from there; 1 is the gain of a perturbation of the result itself;
* ``field_noise_rms_<std>``: RMS change of the output chunk, averaged over chunks, when
  ``N(0, std^2 I)`` is added to every field evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmpolicy.plotting import figure, save
from fmpolicy.policy.model import FlowSampling
from fmpolicy.policy.residual import ResidualFlowModel
from fmpolicy.policy.solvers import integrate, n_steps, time_grid

STATE_GAIN, FIELD_NOISE = "state_gain_t", "field_noise_rms_"  # column prefixes, followed by t_k and the std


def solve(
    model: FlowSampling,
    cond: torch.Tensor,
    z: torch.Tensor,
    solver: str,
    nfe: int,
    state_delta: tuple[int, torch.Tensor] | None = None,
    field_noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``model.sample`` from latents ``z``, disturbed on request.

    ``state_delta=(k, delta)`` adds ``delta`` to the state at grid index ``k`` (time ``t_k``; ``k = steps``
    is the output); ``field_noise`` adds ``N(0, field_noise^2)`` noise, drawn on the CPU from ``generator``,
    to every field evaluation. Without either it is exactly ``model.sample(cond, z, solver, nfe)``.
    """
    clean = model.field(cond)

    def noisy(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return clean(x, t) + field_noise * torch.randn(x.shape, generator=generator).to(x.device)

    hook = None
    if state_delta is not None:
        at, delta = state_delta

        def hook(k: int, x: torch.Tensor) -> torch.Tensor:
            return x + delta if k == at else x

    return integrate(noisy if field_noise else clean, z, solver, nfe, state_hook=hook)


def chunk_rms(diff: torch.Tensor) -> torch.Tensor:
    """RMS over each chunk's entries, ``(B,)``."""
    return diff.flatten(1).pow(2).mean(1).sqrt()


def latent_spread(
    model: FlowSampling,
    cond: torch.Tensor,
    solver: str,
    nfe: int,
    samples: int,
    seed: int = 0,
    noise_scale: float = 1.0,
) -> float:
    """Mean over observations and entries of the output's std over ``samples`` latents per observation."""
    shape = (model.horizon, model.action_dim)
    gen = torch.Generator().manual_seed(seed)
    z = noise_scale * torch.randn((len(cond) * samples, *shape), generator=gen).to(cond.device)
    out = solve(model, cond.repeat_interleave(samples, 0), z, solver, nfe)
    return out.view(len(cond), samples, *shape).std(1).mean().item()


def state_gains(
    model: FlowSampling, cond: torch.Tensor, z: torch.Tensor, solver: str, nfe: int, norm: float, seed: int = 0
) -> dict[float, float]:
    """``t_k -> mean ||output change|| / norm`` for a state perturbation of norm ``norm`` at each solver step."""
    if norm <= 0:
        raise ValueError(f"the state perturbation's norm must be > 0, got {norm}")
    direction = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed)).to(z.device)
    delta = norm * direction / direction.flatten(1).norm(dim=1).view(-1, *[1] * (z.dim() - 1))
    clean = solve(model, cond, z, solver, nfe)
    steps = n_steps(solver, nfe)
    gains = {}
    for k, t in enumerate(time_grid(steps, 0.0, 1.0)[:steps]):
        change = solve(model, cond, z, solver, nfe, state_delta=(k, delta)) - clean
        gains[t] = (change.flatten(1).norm(dim=1) / norm).mean().item()
    return gains


def field_noise_deviation(
    model: FlowSampling, cond: torch.Tensor, z: torch.Tensor, solver: str, nfe: int, levels: list[float], seed: int = 0
) -> dict[float, float]:
    """``std -> mean RMS change of the output`` with ``N(0, std^2)`` noise on each field evaluation."""
    clean = solve(model, cond, z, solver, nfe)
    out = {}
    for std in levels:
        noisy = solve(model, cond, z, solver, nfe, field_noise=std, generator=torch.Generator().manual_seed(seed))
        out[std] = chunk_rms(noisy - clean).mean().item()
    return out


@torch.no_grad()
def sensitivity(
    model: FlowSampling,
    obs: dict[str, torch.Tensor],
    solver: str,
    nfe: int,
    latent_samples: int,
    state_delta: float,
    field_noise: list[float],
    seed: int = 0,
    noise_scale: float = 1.0,
) -> dict[str, Any]:
    """All three measures on observations ``obs`` (tensors on the model's device), as one table row.

    ResFT-FM rows add ``residual_eps``, the residual's guaranteed contraction rate (the whole field
    contracts only where it exceeds the frozen field's largest symmetric-Jacobian eigenvalue, which
    ``fmpolicy diagnose`` measures).
    """
    cond = model.condition(obs)
    shape = (len(cond), model.horizon, model.action_dim)
    z = noise_scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(cond.device)
    spread = latent_spread(model, cond, solver, nfe, latent_samples, seed + 1, noise_scale)
    row: dict[str, Any] = {"latent_spread": spread}
    row.update(
        {f"{STATE_GAIN}{t:.4g}": g for t, g in state_gains(model, cond, z, solver, nfe, state_delta, seed + 2).items()}
    )
    row.update(
        {
            f"{FIELD_NOISE}{s:g}": d
            for s, d in field_noise_deviation(model, cond, z, solver, nfe, field_noise, seed + 3).items()
        }
    )
    if isinstance(model, ResidualFlowModel):
        row["residual_eps"] = float(model.residual.eps)
    return row


def _series(row: dict[str, Any], prefix: str) -> list[tuple[float, float]]:
    return [(float(k[len(prefix) :]), v) for k, v in row.items() if k.startswith(prefix) and v != ""]


def plot_sensitivity(rows: list[dict[str, Any]], path: Path) -> None:
    """State gain against the time of the perturbation, output deviation against field noise, latent spread."""
    fig, (ax1, ax2, ax3) = figure(3, width=4.5, height=3.8)
    for r in rows:
        label = f"{r['method']} ({r['solver']}, NFE {r['nfe']})"
        ax1.plot(*zip(*_series(r, STATE_GAIN)), "o-", label=label)
        ax2.plot(*zip(*_series(r, FIELD_NOISE)), "o-", label=label)
    ax1.axhline(1.0, color="k", lw=0.8)
    ax1.set_xlabel("time t_k of the state perturbation")
    ax1.set_ylabel("||output change|| / ||delta||")
    ax1.set_title("state perturbation gain")
    ax2.set_xlabel("std of noise on each field evaluation")
    ax2.set_ylabel("RMS output change (normalized)")
    ax2.set_title("field noise")
    ax3.bar(np.arange(len(rows)), [r["latent_spread"] for r in rows])
    ax3.set_xticks(np.arange(len(rows)), [r["method"] for r in rows], rotation=30)
    ax3.set_ylabel("std over latents (normalized)")
    ax3.set_title("latent spread")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    save(fig, path)
