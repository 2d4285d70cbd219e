"""``fmpolicy pipeline``: demonstrations -> FM -> FT-FM and ResFT-FM -> evaluation -> report.

Every stage writes into its own folder under ``out`` and is skipped (or resumed
from its last checkpoint) when run again, so an interrupted pipeline continues.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from fmpolicy.config import CONFIG_DIR, available, compose, default_task
from fmpolicy.errors import UserError

PRESET_SECTIONS = ("nfe", "reference_nfe", "demos", "pretrain", "finetune", "ft_mle", "ft_residual", "evaluate")


def load_preset(name: str) -> dict[str, Any]:
    path = CONFIG_DIR / "preset" / f"{name}.yaml"
    if not path.exists():
        raise UserError(f"unknown preset '{name}': choose one of {', '.join(available('preset'))}")
    return check_preset(yaml.safe_load(path.read_text()), str(path))


def check_preset(preset: dict[str, Any], source: str) -> dict[str, Any]:
    """A preset's sections are fixed: a misspelled one (``ft_mel:``) would otherwise be ignored."""
    unknown = sorted(set(preset) - set(PRESET_SECTIONS))
    if unknown:
        raise UserError(f"preset {source}: unknown section(s) {', '.join(unknown)}: use {', '.join(PRESET_SECTIONS)}")
    return preset


def _stage_done(ckpt: Path, steps: int) -> bool:
    if not ckpt.exists():
        return False
    import torch

    return torch.load(ckpt, map_location="cpu", weights_only=False)["step"] >= steps


SOURCES = ("dataset", "expert")
DEMO_FILES = {"zarr": "demos.zarr", "minari": "demos_minari", "robomimic": "demos.hdf5"}  # per demos.format


def _share_latents(made: Path, cache: Path) -> None:
    """Give a fine-tuning stage the latents an earlier stage computed from the same FM (the cache is checked
    against the stage's windows and settings and recomputed where they differ, so a copy is never wrong)."""
    if made.exists() and made != cache and not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made, cache)


def run_pipeline(preset: str, overrides: dict[str, Any], out: Path, source: str | None = None) -> Path:
    """``overrides`` (``task=...``, ``dataset.path=...``, ``device=...``, any config key) apply to every stage.

    ``source=dataset`` trains on the task's dataset (by default the real demonstrations
    shipped with the package); ``source=expert`` first records the suite's scripted expert,
    in the task's ``demos.format``. Unset: the dataset where the task has one, else the expert.
    """
    from fmpolicy.data.demos import generate_demos
    from fmpolicy.eval.bench import bench
    from fmpolicy.policy.checkpoint import load_checkpoint
    from fmpolicy.policy.finetune import LATENTS_FILE, finetune
    from fmpolicy.policy.pretrain import pretrain

    p = load_preset(preset)
    overrides = {"task": default_task(), **overrides}
    task = overrides["task"]
    dataset = compose(overrides)["dataset"]["path"]  # bad keys or values fail here, before any work
    if source is None:
        source = "dataset" if dataset else "expert"
        if not dataset:
            print(f"task {task} has no dataset.path: recording the scripted expert's demonstrations (source=expert)")
    if source not in SOURCES:
        raise UserError(f"source '{source}' unknown: choose one of {', '.join(SOURCES)}")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    commands: list[str] = []

    # 1. demonstrations
    t0 = time.time()
    demos_summary = None
    if source == "expert":
        demo_args = {**p["demos"], **overrides}
        demo_cfg = compose(demo_args)
        fmt = demo_cfg["demos"]["format"]
        dataset = str((out / DEMO_FILES.get(fmt, "demos")).resolve())  # demos checks the format
        summary_path = Path(dataset + ".summary.json")
        if not summary_path.exists():
            generate_demos(demo_cfg, dataset)
        demos_summary = json.loads(summary_path.read_text())
        commands.append(f"fmpolicy demos {_args(demo_args)} out={dataset}")
        overrides = {**overrides, "dataset.path": dataset, "dataset.format": fmt}
        timings["demonstrations"] = time.time() - t0

    # 2. pretraining
    t0 = time.time()
    fm_dir = out / "fm"
    fm_args = {**p["pretrain"], **overrides, "method": "fm", "out": str(fm_dir)}
    fm_cfg = compose(fm_args)
    if not _stage_done(fm_dir / "checkpoints" / "last.pt", fm_cfg["train"]["steps"]):
        pretrain(fm_cfg)
    commands.append("fmpolicy train " + _args(fm_args))
    timings["pretrain FM"] = time.time() - t0

    # 3. fine-tuning, both ways, at the pipeline's inference NFE
    fm_ckpt = fm_dir / "checkpoints" / "last.pt"
    runs = {"FM": str(fm_ckpt)}
    for name, method in (("FT-FM", "ft_mle"), ("ResFT-FM", "ft_residual")):
        t0 = time.time()
        run_dir = out / method
        args = {
            "inference.nfe": p["nfe"],
            **p["finetune"],
            **p.get(method, {}),  # a preset's settings for this method alone
            **{k: v for k, v in overrides.items() if k != "task"},
            "method": method,
            "out": str(run_dir),
        }
        payload = load_checkpoint(fm_ckpt)
        cfg = compose(args, base=payload["config"])
        if not _stage_done(run_dir / "checkpoints" / "last.pt", cfg["train"]["steps"]):
            _share_latents(out / "ft_mle" / LATENTS_FILE, run_dir / LATENTS_FILE)
            finetune(payload, cfg, source=str(fm_ckpt))
        commands.append(f"fmpolicy finetune checkpoint={fm_ckpt} " + _args(args))
        runs[name] = str(run_dir / "checkpoints" / "last.pt")
        timings[f"fine-tune {name}"] = time.time() - t0

    # 4. evaluation of all three at the inference NFE (and FM at its reference NFE)
    t0 = time.time()
    bench_args = {
        "bench.nfes": sorted({p["nfe"], p["reference_nfe"]}),
        **p["evaluate"],
        **overrides,
        "bench.runs": runs,
        "out": str(out / "bench"),
    }
    rows = bench(compose(bench_args), out / "bench")
    commands.append("fmpolicy bench " + _args(bench_args))
    timings["evaluate"] = time.time() - t0

    report = write_report(out, preset, task, dataset, demos_summary, rows, timings, commands)
    print(f"report: {report}")
    return report


def _args(args: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        text = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
        return f"'{text}'" if any(c in text for c in " {}[]:,") else text

    return " ".join(f"{k}={fmt(v)}" for k, v in args.items())


def write_report(
    out: Path,
    preset: str,
    task: str,
    dataset: str,
    demos: dict[str, Any] | None,
    rows: list[dict[str, Any]],
    timings: dict[str, float],
    commands: list[str],
) -> Path:
    """``report.md``: what ran, on what, the results table, plots, videos and the commands."""
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}, Python {platform.python_version()}"
    )
    lines = [
        f"# fmpolicy pipeline report (task `{task}`, preset `{preset}`)",
        "",
        f"Machine: {machine}. Total wall time of this invocation: {sum(timings.values()) / 60:.1f} min.",
        "",
        "## Data",
        "",
    ]
    if demos:
        lines += [
            f"Scripted-expert demonstrations `{dataset}`: {demos['episodes_kept']} of {demos['episodes_run']} episodes "
            f"kept, expert success rate {demos['success_rate']:.2f}, {demos['mean_steps_kept']:.0f} steps per "
            f"episode, {demos['episodes_per_min']:.1f} episodes/min.",
        ]
    else:
        lines += [f"Dataset `{dataset}`."]
    lines += ["", "## Results", "", (out / "bench" / "bench.md").read_text(), "![metrics vs NFE](bench/bench.png)", ""]
    lines += ["Training curves: " + ", ".join(f"[{d}]({d}/loss.png)" for d in ("fm", "ft_mle", "ft_residual")), ""]
    videos = sorted((out / "bench").glob("videos/*.mp4"))
    if videos:
        lines += ["Rollout videos: " + ", ".join(f"[{v.name}]({v.relative_to(out)})" for v in videos), ""]
    lines += ["## Wall time per stage", "", "| stage | minutes |", "|---|---|"]
    lines += [f"| {k} | {v / 60:.1f} |" for k, v in timings.items()]
    lines += ["", "## Commands (each stage alone)", "", "```"] + commands + ["```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
