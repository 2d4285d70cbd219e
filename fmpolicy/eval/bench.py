"""Method x NFE comparison (``fmpolicy bench``) and perturbation tests (``fmpolicy robustness``).

Both take named runs (``bench.runs='{FM: runs/fm, FT-FM: runs/ft}'``) and
write a CSV, a markdown table and plots to ``out``.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmpolicy.config import compose
from fmpolicy.data.tasks import TaskData, load_task_data
from fmpolicy.envs.registry import get_suite
from fmpolicy.errors import UserError
from fmpolicy.eval.diagnostics import held_out_batch, reconstruction_errors
from fmpolicy.eval.paired import by_seed, compare_episodes
from fmpolicy.eval.rollout import rollout_episodes, summarize, write_episodes
from fmpolicy.eval.sensitivity import FIELD_NOISE, STATE_GAIN, plot_sensitivity, sensitivity
from fmpolicy.eval.video import write_video
from fmpolicy.plotting import figure, save
from fmpolicy.policy.api import Policy, model_from_checkpoint
from fmpolicy.policy.checkpoint import load_checkpoint
from fmpolicy.policy.finetune import invert_windows, pretrained_reference, tuned_nfes
from fmpolicy.policy.model import FlowSampling
from fmpolicy.policy.solvers import EVALS_PER_STEP
from fmpolicy.policy.train import obs_to_device


def load_runs(cfg: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """name -> (checkpoint payload, its config with this command's settings laid over)."""
    runs = cfg["bench"]["runs"]
    if not runs:
        raise UserError("no runs given: pass bench.runs='{FM: RUN_DIR, FT-FM: RUN_DIR, ...}'")
    out = {}
    for name, path in runs.items():
        payload = load_checkpoint(path)
        run_cfg = compose({}, base=payload["config"])
        for section in ("eval", "bench", "robustness", "diagnose"):
            run_cfg[section] = cfg[section]
        run_cfg["dataset"]["path"] = cfg["dataset"]["path"] or run_cfg["dataset"]["path"]
        if cfg["bench"]["temperature"] is not None:
            run_cfg["inference"]["temperature"] = cfg["bench"]["temperature"]
        out[name] = (payload, run_cfg)
    return out


def operating_points(
    run_cfg: dict[str, Any], nfes: list[int], own_only: bool, diffusion: list[str]
) -> list[tuple[str, int]]:
    """(solver, NFE) pairs a run is measured at; diffusion runs with DDPM (all steps) and/or DDIM-10."""
    kind, inf = run_cfg["method"]["kind"], run_cfg["inference"]
    if kind == "ddpm":
        points = {"ddpm": ("ddpm", run_cfg["method"]["train_timesteps"]), "ddim": ("ddim", 10)}
        return [points[s] for s in diffusion]
    if own_only and kind.startswith("ft_"):
        return [(inf["solver"], n) for n in tuned_nfes(run_cfg)]
    return [(inf["solver"], n) for n in nfes if n % EVALS_PER_STEP[inf["solver"]] == 0]


def batch1_latency_ms(policy: Policy, obs: dict[str, np.ndarray], solver: str, nfe: int, calls: int) -> float:
    one = {k: v[:1] for k, v in obs.items()}
    policy.reset()  # one shared generator (a rollout may have left one per episode)
    policy.predict_action(one, nfe=nfe, solver=solver)  # warm-up
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        policy.predict_action(one, nfe=nfe, solver=solver)
        times.append(1000 * (time.perf_counter() - t))
    return float(np.median(times))


class HeldOut:
    """Held-out windows and, per reference flow, their latents (computed once)."""

    def __init__(self, data: TaskData, cfg: dict[str, Any]) -> None:
        self.data, self.cfg = data, cfg
        self.idx, self.obs, self.act = held_out_batch(data, cfg, cfg["diagnose"]["windows"])
        self._latents: dict[int, torch.Tensor] = {}

    def latents(self, reference: FlowSampling) -> torch.Tensor:
        key = id(reference)
        if key not in self._latents:
            dc = self.cfg["diagnose"]
            windows = self.data.windows(self.cfg, "val")
            self._latents[key] = invert_windows(
                reference,
                windows,
                self.idx,
                dc["inverse_solver"],
                dc["inverse_nfe"],
                dc["inverse_warp"],
                progress=False,
            )
        return self._latents[key]


def bench(cfg: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    bc, ec = cfg["bench"], cfg["eval"]
    runs = load_runs(cfg)
    seeds = list(range(ec["seed_start"], ec["seed_start"] + ec["episodes"]))
    first_cfg = next(iter(runs.values()))[1]
    held = HeldOut(load_task_data(first_cfg), first_cfg) if bc["reconstruction"] else None
    rows = []
    episodes: list[list[dict[str, Any]]] = []  # each row's per-seed results
    out.mkdir(parents=True, exist_ok=True)
    for name, (payload, run_cfg) in runs.items():
        model = model_from_checkpoint(payload, run_cfg)
        policy = Policy(model, run_cfg, seed=ec["noise_seed"], device=run_cfg["device"])
        reference = pretrained_reference(payload, model) if run_cfg["method"]["kind"] != "ddpm" else None
        if reference is not None:
            reference.to(policy.device)  # beside the model, which the Policy moved
        for solver, nfe in operating_points(run_cfg, bc["nfes"], bc["ft_own_nfe_only"], bc["diffusion"]):
            row: dict[str, Any] = {"method": name, "kind": run_cfg["method"]["kind"], "solver": solver, "nfe": nfe}
            if held is not None and reference is not None:
                cond = model.condition(obs_to_device(held.obs, policy.device))
                action = model.action_norm.normalize(torch.from_numpy(held.act).to(policy.device))
                errs = reconstruction_errors(
                    model, cond, action, held.latents(reference), solver, [nfe], noise_scale=policy.latent_std
                )
                row["recon_mse_inverse"] = errs["inverse"][nfe]
                row["recon_mse_independent"] = errs["independent"][nfe]
            results, videos, steps_per_s = rollout_episodes(
                policy, run_cfg, seeds, nfe, solver, ec["n_envs"], ec["videos"]
            )
            metrics = summarize(results, nfe, solver, run_cfg["task"])
            row.update(row_metrics(metrics, run_cfg["task"]))
            row["env_steps_per_s"] = steps_per_s  # the whole evaluation: simulator, policy, resets
            if held is not None:
                row["latency_ms_batch1"] = batch1_latency_ms(policy, held.obs, solver, nfe, bc["latency_calls"])
            rows.append(row)
            episodes.append(results)
            print(_row_line(row))
            write_episodes(results, out / "episodes" / f"{_file_name(name)}_{solver}_nfe{nfe}.csv")
            write_tables(rows, out, "bench")  # before the videos: a row measured is never lost to them
            for seed, frames in zip(seeds, videos):
                write_video(out / "videos" / f"{name}_nfe{nfe}_seed{seed}.mp4", frames)
    reference = add_paired_differences(rows, episodes)
    write_tables(rows, out, "bench", note=PAIRED_NOTE.format(reference=reference) if reference else "")
    plot_vs_nfe(rows, out)
    return rows


PAIRED_NOTE = (
    "d_score, d_success: the row minus {reference} seed by seed over the same seeds, with the paired 95% interval "
    "(usually much narrower than the rows' own intervals, since what the seed alone decides cancels; `fmpolicy compare` on `episodes/*.csv` gives the same)."
)


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def add_paired_differences(rows: list[dict[str, Any]], episodes: list[list[dict[str, Any]]]) -> str | None:
    """Adds each row's paired difference to the reference row (the first run at its highest NFE); its name."""
    if len(rows) < 2:
        return None
    first = [i for i, r in enumerate(rows) if r["method"] == rows[0]["method"]]
    ref = max(first, key=lambda i: rows[i]["nfe"])
    reference = by_seed(episodes[ref])
    for i, row in enumerate(rows):
        if i == ref:
            continue
        res = compare_episodes(reference, by_seed(episodes[i]))
        for key in ("score", "success"):
            row[f"d_{key}"], row[f"d_{key}_ci95"] = res[key]["diff"], res[key]["ci95"]
    r = rows[ref]
    return f"{r['method']} at NFE {r['nfe']} ({r['solver']})"


def row_metrics(metrics: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """Score and success with their intervals, and the suite's table metrics, for a table row."""
    keep = ("score", "score_ci95", "success_rate", "success_ci95", "n_episodes")
    extras = {k: metrics["suite"][k] for k in get_suite(task["suite"]).table_metrics}
    return {**{k: metrics[k] for k in keep}, **extras}


def _fmt_ci(value: float, ci: list[float], signed: bool = False) -> str:
    f = "+.3f" if signed else ".3f"
    return f"{value:{f}} [{ci[0]:{f}}, {ci[1]:{f}}]"


def _row_line(row: dict[str, Any]) -> str:
    parts = [f"{row['method']:>10} {row['solver']:>6} NFE {row['nfe']:>3}"]
    if "recon_mse_inverse" in row:
        parts.append(f"recon {row['recon_mse_inverse']:.5f}")
    for key, label in (("score", "score"), ("success_rate", "success")):
        if key in row:
            parts.append(f"{label} {_fmt_ci(row[key], row[key.replace('_rate', '') + '_ci95'])}")
    if "latency_ms_batch1" in row:
        parts.append(f"{row['latency_ms_batch1']:.1f} ms")
    return "  ".join(parts)


def _decimals(key: str) -> int:
    """Digits after the point a table shows for a float column."""
    if "recon" in key:
        return 5
    if "per_s" in key:
        return 0
    if "_ms" in key:
        return 1
    if key.startswith(("latent_spread", STATE_GAIN, FIELD_NOISE)):
        return 4
    return 3


def write_tables(rows: list[dict[str, Any]], out: Path, stem: str, note: str = "") -> None:
    """``stem.csv`` (every key of every row) and ``stem.md``; ``note`` heads the markdown table."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    shown = [k for k in keys if not k.endswith("_ci95") and k not in ("kind", "n_episodes")]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in rows:
        cells = []
        for k in shown:
            v = r.get(k, "")
            if k in ("score", "success_rate") and v != "":
                cells.append(_fmt_ci(v, r[k.replace("_rate", "") + "_ci95"]))
            elif k.startswith("d_") and v != "":
                cells.append(_fmt_ci(v, r[k + "_ci95"], signed=True))
            elif isinstance(v, float):
                cells.append(f"{v:.{_decimals(k)}f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    n = rows[0].get("n_episodes", "")
    header = f"{n} evaluation episodes per row; score and success with 95% confidence intervals.\n\n" if n else ""
    header += f"{note}\n\n" if note else ""
    (out / f"{stem}.md").write_text(header + "\n".join(lines) + "\n")


def plot_vs_nfe(rows: list[dict[str, Any]], out: Path) -> None:
    metrics = [
        m for m in ("success_rate", "score", "recon_mse_inverse", "latency_ms_batch1") if any(m in r for r in rows)
    ]
    fig, axes = figure(len(metrics), width=4.5, height=3.8)
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["nfe"], r[metric]) for r in rows if r["method"] == method and metric in r]
            if pts:
                ax.plot(*zip(*pts), "o-", label=method)
        ax.set_xscale("log", base=2)
        if metric.startswith("recon") or metric.startswith("latency"):
            ax.set_yscale("log")
        ax.set_xlabel("NFE")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend()
    save(fig, out / "bench.png")


@torch.no_grad()
def chunk_deviation(policy: Policy, obs: dict[str, np.ndarray], noise: float, nfe: int, seed: int = 0) -> float:
    """Mean max-abs change of the predicted chunk (env units) when observations get noise ``noise``.

    The sampling noise is the same for both predictions, so the difference is the
    policy's response to the observation perturbation alone (input-to-state stability).
    """
    rng = np.random.default_rng(seed)
    noisy = {k: v + rng.normal(0, noise, v.shape) for k, v in obs.items()}
    policy.reset()
    clean = policy.predict_action_chunk(obs, nfe=nfe)
    policy.reset()
    perturbed = policy.predict_action_chunk(noisy, nfe=nfe)
    return float(np.abs(perturbed - clean).max(axis=(1, 2)).mean())


def robustness(cfg: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """Each run (at ``robustness.nfe``, or its own inference NFE) under observation noise and the suite's perturbations.

    Flow runs also get the offline sensitivity measures (``fmpolicy/eval/sensitivity.py``) on the held-out
    windows, one row each in ``sensitivity.csv``.
    """
    rc, ec = cfg["robustness"], cfg["eval"]
    runs = load_runs(cfg)
    seeds = list(range(ec["seed_start"], ec["seed_start"] + ec["episodes"]))
    first_cfg = next(iter(runs.values()))[1]
    held = HeldOut(load_task_data(first_cfg), first_cfg)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    settings = [("obs_noise", level) for level in rc["obs_noise"]]
    settings += [(kind, level) for kind, levels in rc["perturbations"].items() for level in levels]
    suite = get_suite(first_cfg["task"]["suite"])
    sens_rows: list[dict[str, Any]] = []
    note = (
        f"Offline, {len(held.idx)} held-out windows, normalized action units: std of the output over "
        f"{rc['latent_samples']} latents; gain ||output change|| / ||delta|| for a state perturbation of norm "
        f"{rc['state_delta']} at solver time t_k; RMS output change under noise of the given std on every field "
        "evaluation. residual_eps: ResFT-FM's guaranteed contraction rate of the residual."
    )
    for name, (payload, run_cfg) in runs.items():
        model = model_from_checkpoint(payload, run_cfg)
        policy = Policy(model, run_cfg, seed=ec["noise_seed"], device=run_cfg["device"])
        solver, nfe = run_cfg["inference"]["solver"], rc["nfe"] or run_cfg["inference"]["nfe"]
        if isinstance(model, FlowSampling):
            obs = obs_to_device(held.obs, policy.device)
            sens = sensitivity(
                model,
                obs,
                solver,
                nfe,
                rc["latent_samples"],
                rc["state_delta"],
                rc["field_noise"],
                ec["noise_seed"],
                noise_scale=policy.latent_std,
            )
            sens_rows.append({"method": name, "kind": run_cfg["method"]["kind"], "solver": solver, "nfe": nfe, **sens})
            print(f"{name:>10} {solver:>6} NFE {nfe:>3}  " + "  ".join(f"{k} {v:.4g}" for k, v in sens.items()))
            write_tables(sens_rows, out, "sensitivity", note)
        for kind, level in settings:
            noise = level if kind == "obs_noise" else 0.0
            perturbation = (kind, level, rc["disturb_step"]) if kind != "obs_noise" else None
            results, _, _ = rollout_episodes(
                policy, run_cfg, seeds, nfe, solver, ec["n_envs"], 0, obs_noise=noise, perturbation=perturbation
            )
            metrics = summarize(results, nfe, solver, run_cfg["task"])
            row = {"method": name, "solver": solver, "nfe": nfe, "perturbation": kind, "level": level}
            row.update({k: metrics[k] for k in ("score", "score_ci95", "success_rate", "success_ci95", "n_episodes")})
            if kind == "obs_noise":
                row["chunk_deviation"] = chunk_deviation(policy, held.obs, level, nfe) if level else 0.0
            rows.append(row)
            print(_row_line(row) + f"  {kind} {level}")
            write_tables(rows, out, "robustness")
    plot_robustness(rows, out, suite)
    if sens_rows:
        plot_sensitivity(sens_rows, out / "sensitivity.png")
    return rows


def plot_robustness(rows: list[dict[str, Any]], out: Path, suite: Any) -> None:
    unit = suite.obs_noise_unit
    kinds = list(dict.fromkeys(r["perturbation"] for r in rows))
    fig, axes = figure(len(kinds) + 1, width=4.5, height=3.8)
    for ax, kind in zip(axes, kinds):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["level"], r["success_rate"]) for r in rows if r["method"] == method and r["perturbation"] == kind]
            ax.plot(*zip(*pts), "o-", label=method)
        ax.set_xlabel(f"noise std ({unit})" if kind == "obs_noise" else f"{kind} ({suite.perturbations[kind].unit})")
        ax.set_ylabel("success rate")
        ax.set_title(kind)
        ax.grid(alpha=0.3)
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = [(r["level"], r["chunk_deviation"]) for r in rows if r["method"] == method and "chunk_deviation" in r]
        axes[-1].plot(*zip(*pts), "o-", label=method)
    axes[-1].set_xlabel(f"observation noise std ({unit})")
    axes[-1].set_ylabel("action-chunk deviation (action units)")
    axes[-1].set_title("input-to-state stability")
    axes[-1].grid(alpha=0.3)
    axes[0].legend()
    save(fig, out / "robustness.png")
