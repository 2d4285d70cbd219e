"""Fixed-step explicit ODE solvers for ``dx/dt = v(x, t)``.

NFE (number of function evaluations) is the cost knob users set; each solver
spends ``EVALS_PER_STEP[solver]`` evaluations per step, so ``nfe`` must be a
multiple of it. Integration runs from ``t0`` to ``t1`` (``t1 < t0`` integrates
backwards, which is how latents of demonstrations are computed). All solvers
are differentiable when called with gradients enabled.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StateHook = Callable[[int, torch.Tensor], torch.Tensor]  # (grid index k, state at t_k) -> the state used from t_k on

EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "rk4": 4}


def n_steps(solver: str, nfe: int) -> int:
    if solver not in EVALS_PER_STEP:
        raise ValueError(f"unknown solver '{solver}': choose one of {sorted(EVALS_PER_STEP)}")
    per = EVALS_PER_STEP[solver]
    if nfe < per or nfe % per:
        raise ValueError(
            f"solver '{solver}' uses {per} evaluations per step: nfe={nfe} must be a positive multiple of {per}"
        )
    return nfe // per


def _step(field: Field, solver: str, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    if solver == "euler":
        return x + h * field(x, t)
    if solver == "midpoint":
        k1 = field(x, t)
        return x + h * field(x + 0.5 * h * k1, t + 0.5 * h)
    k1 = field(x, t)
    k2 = field(x + 0.5 * h * k1, t + 0.5 * h)
    k3 = field(x + 0.5 * h * k2, t + 0.5 * h)
    k4 = field(x + h * k3, t + h)
    return x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def time_grid(steps: int, t0: float, t1: float, warp: float = 1.0) -> list[float]:
    """``t0 + (t1 - t0) (i / steps)^warp``: uniform for ``warp=1``; ``warp > 1`` packs steps near ``t0``."""
    return [t0 + (t1 - t0) * (i / steps) ** warp for i in range(steps + 1)]


def integrate(
    field: Field,
    x: torch.Tensor,
    solver: str = "euler",
    nfe: int = 10,
    t0: float = 0.0,
    t1: float = 1.0,
    warp: float = 1.0,
    return_path: bool = False,
    state_hook: StateHook | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """Integrate from ``t0`` to ``t1``; ``field(x, t)`` gets ``t`` with shape ``(batch,)``.

    ``state_hook(k, x)``, if given, replaces the state at grid time ``t_k`` (``k = 0..steps``; ``k = steps`` is
    the result) before integration goes on from it: the way to perturb the ODE state mid-solve
    (``fmpolicy/eval/sensitivity.py``). Noise on each field evaluation is a wrapped ``field``.
    """
    grid = time_grid(n_steps(solver, nfe), t0, t1, warp)
    hook = state_hook or (lambda k, y: y)
    x = hook(0, x)
    path = [x]
    for k, (ta, tb) in enumerate(zip(grid[:-1], grid[1:])):
        t = torch.full((x.shape[0],), ta, dtype=x.dtype, device=x.device)
        x = hook(k + 1, _step(field, solver, x, t, torch.tensor(tb - ta, dtype=x.dtype, device=x.device)))
        path.append(x)
    return path if return_path else x
