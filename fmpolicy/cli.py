"""``fmpolicy <command> key=value ...``: the one entry point users run.

Each command composes its config from YAML files and overrides (``config.py``)
and calls one library function. Bad input ends with one line on stderr and
exit status 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fmpolicy.config import available, compose, default_task, parse_overrides
from fmpolicy.errors import UserError

USAGE = """usage: fmpolicy COMMAND key=value ...

  pipeline  [task=TASK] [preset=smoke|default|full] [source=dataset|expert] [key=value ...]
  demos     task=TASK episodes=N out=PATH [format=zarr|minari|robomimic]
  train     task=TASK method=fm|ddpm [dataset.path=PATH] train.steps=N out=DIR
  finetune  checkpoint=PATH method=ft_mle|ft_residual|reflow inference.nfe=K train.steps=N out=DIR
  diagnose  checkpoint=PATH out=DIR
  bench     bench.runs='{FM: RUN, FT-FM: RUN, DDPM: RUN}' bench.nfes=[1,2,4,8,16] eval.episodes=200 out=DIR
  speed     [checkpoint=PATH | task=TASK method=fm policy.down_dims=[...]] out=DIR
  robustness bench.runs='{FM: RUN, FT-FM: RUN, ResFT-FM: RUN}' eval.episodes=100 out=DIR
  eval      checkpoint=PATH eval.episodes=N eval.nfe=K out=DIR
  compare   a=EVAL_DIR[,EVAL_DIR...] b=EVAL_DIR[,...] [out=DIR]
  deploy    checkpoint=PATH deploy.steps=300 out=DIR
"""


def check_out(out: Any) -> None:
    """``out=`` must be a folder this user can write to (or one that can be created)."""
    path = Path(str(out)).expanduser()
    if path.exists() and not path.is_dir() and path.suffix not in (".zarr",):
        raise UserError(f"out={out} is a file: pass a folder (it is created if missing)")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UserError(f"out={out} cannot be written ({probe} is not a writable folder): choose another out=")


def _run_dir(ckpt: str) -> Path:
    """The run folder of a checkpoint given as a folder, as RUN/checkpoints/FILE.pt, or as any FILE.pt."""
    path = Path(ckpt).resolve()
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def _split_checkpoint(overrides: dict[str, Any], required: bool) -> tuple[str | None, dict[str, Any]]:
    overrides = dict(overrides)
    ckpt = overrides.pop("checkpoint", None)
    if required and not ckpt:
        raise UserError("no checkpoint given: pass checkpoint=RUN_DIR (or a .pt file written by fmpolicy train)")
    return ckpt, overrides


def cmd_pipeline(overrides: dict[str, Any]) -> None:
    from fmpolicy.pipeline import run_pipeline

    overrides = dict(overrides)
    preset = str(overrides.pop("preset", "default"))
    source = overrides.pop("source", None)
    task = overrides.setdefault("task", default_task())
    out = Path(overrides.pop("out", f"runs/pipeline_{task}_{preset}"))
    run_pipeline(preset, overrides, out, source)


def cmd_demos(overrides: dict[str, Any]) -> None:
    from fmpolicy.data.demos import generate_demos
    from fmpolicy.envs.registry import get_suite

    overrides = dict(overrides)
    if "task" not in overrides:
        raise UserError(f"no task given: pass task=NAME, one of {', '.join(available('task'))}")
    for key in ("episodes", "seed_start", "min_coverage", "format", "action_noise"):
        if key in overrides:
            overrides[f"demos.{key}"] = overrides.pop(key)
    out = overrides.pop("out", None)
    if not out:
        raise UserError("no output given: pass out=PATH (a .zarr folder, or a folder for format=minari)")
    cfg = compose(overrides)
    success = get_suite(cfg["task"]["suite"]).success_text
    r = generate_demos(cfg, out)
    print(
        f"expert: {r['episodes_kept']}/{r['episodes_run']} episodes kept, success ({success}) "
        f"{r['success_rate']:.2f}, {r['mean_steps_kept']:.0f} steps on average, "
        f"{r['episodes_per_min']:.1f} episodes/min -> {out} ({r['format']})"
    )


def cmd_train(overrides: dict[str, Any]) -> None:
    from fmpolicy.policy.pretrain import pretrain

    cfg = compose(overrides)
    result = pretrain(cfg)
    print(f"checkpoint: {result.checkpoint}")
    print(f"training throughput: {result.samples_per_s:.0f} samples/s")


def cmd_finetune(overrides: dict[str, Any]) -> None:
    from fmpolicy.policy.finetune import FINETUNE_KINDS, finetune

    ckpt, overrides = _split_checkpoint(overrides, required=True)
    if overrides.get("method") not in FINETUNE_KINDS:
        raise UserError("finetune needs method=" + " or method=".join(FINETUNE_KINDS))
    run_dir = _run_dir(ckpt)
    overrides.setdefault("out", str(run_dir.with_name(f"{run_dir.name}_{overrides['method']}")))
    payload, cfg = _checkpoint_config(ckpt, overrides)
    result = finetune(payload, cfg, source=ckpt)
    print(f"checkpoint: {result.checkpoint}")


def _checkpoint_config(ckpt: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint's config with run-time overrides (eval.*, deploy.*, out, ...) applied."""
    from fmpolicy.policy.checkpoint import load_checkpoint

    payload = load_checkpoint(ckpt)
    return payload, compose(overrides, base=payload["config"])


def cmd_eval(overrides: dict[str, Any]) -> None:
    from fmpolicy.envs.registry import get_suite
    from fmpolicy.eval.rollout import evaluate_checkpoint
    from fmpolicy.policy.finetune import tuned_nfes

    ckpt, overrides = _split_checkpoint(overrides, required=True)
    overrides.setdefault("out", str(_run_dir(ckpt) / "eval"))
    payload, cfg = _checkpoint_config(ckpt, overrides)
    inf, ec = cfg["inference"], cfg["eval"]
    tuned = tuned_nfes(cfg) if cfg["method"]["kind"].startswith("ft_") else None
    if tuned and ((ec["solver"] or inf["solver"]) != inf["solver"] or (ec["nfe"] or inf["nfe"]) not in tuned):
        print(
            f"note: this checkpoint was fine-tuned for {inf['solver']} at NFE {' and '.join(map(str, tuned))}; "
            "at other settings it is not what it was trained for"
        )
    metrics = evaluate_checkpoint(payload, cfg, Path(cfg["out"]))
    suite = metrics["suite"]
    shown = get_suite(cfg["task"]["suite"]).table_metrics
    if shown:
        ci = {
            k: f" [{suite[k + '_ci95'][0]:.2f}, {suite[k + '_ci95'][1]:.2f}]" if k + "_ci95" in suite else ""
            for k in shown
        }
        print("  ".join(f"{k} {suite[k]:.3f}{ci[k]}" for k in shown))
    print(
        f"score {metrics['score']:.3f} [{metrics['score_ci95'][0]:.3f}, {metrics['score_ci95'][1]:.3f}]  "
        f"success {metrics['success_rate']:.3f} [{metrics['success_ci95'][0]:.3f}, {metrics['success_ci95'][1]:.3f}]  "
        f"over {metrics['n_episodes']} episodes at NFE {metrics['nfe']} -> {cfg['out']}/metrics.json"
    )


def cmd_compare(overrides: dict[str, Any]) -> None:
    from fmpolicy.eval.paired import compare_episodes, format_comparison, read_draws

    unknown = set(overrides) - {"a", "b", "out"}
    if unknown or not {"a", "b"} <= set(overrides):
        raise UserError(
            f"compare takes a=EVAL_DIR[,EVAL_DIR...] b=EVAL_DIR[,...] [out=DIR] (got "
            f"{', '.join(sorted(overrides)) or 'nothing'}): pass folders written by fmpolicy eval over the same "
            "seeds, several per side for several noise draws"
        )
    # several noise draws of each policy (a=D1,D2 or a=[D1,D2]) are averaged per seed before pairing
    draws_a, draws_b = (v if isinstance(v, list) else str(v).split(",") for v in (overrides["a"], overrides["b"]))
    a, b = ",".join(map(str, draws_a)), ",".join(map(str, draws_b))
    (per_seed_a, partial_a), (per_seed_b, partial_b) = read_draws(draws_a), read_draws(draws_b)
    res = compare_episodes(per_seed_a, per_seed_b, partial=(partial_a, partial_b))
    if len(draws_a) > 1 or len(draws_b) > 1:
        print(f"per seed: the mean of A's {len(draws_a)} and B's {len(draws_b)} evaluations")
    print(format_comparison(res, a, b))
    if overrides.get("out") is not None:
        out = Path(str(overrides["out"]))
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps({"a": a, "b": b, **res}, indent=2))
        print(f"-> {out}/compare.json")


def cmd_diagnose(overrides: dict[str, Any]) -> None:
    from fmpolicy.data.tasks import load_task_data
    from fmpolicy.eval.diagnostics import diagnose
    from fmpolicy.policy.api import model_from_checkpoint
    from fmpolicy.policy.finetune import pretrained_reference

    ckpt, overrides = _split_checkpoint(overrides, required=True)
    overrides.setdefault("out", str(_run_dir(ckpt) / "diagnose"))
    payload, cfg = _checkpoint_config(ckpt, overrides)
    if cfg["method"]["kind"] == "ddpm":
        raise UserError("diagnose measures flow fields: pass an fm, ft_mle or ft_residual checkpoint")
    model = model_from_checkpoint(payload, cfg)
    result = diagnose(model, pretrained_reference(payload, model), load_task_data(cfg), cfg, Path(cfg["out"]))
    lat = result["latents"]
    print(f"held-out latents: mean {lat['mean']:+.3f} std {lat['std']:.3f} round-trip MSE {lat['round_trip_mse']:.2e}")
    for pairing, errs in result["reconstruction_mse"].items():
        print(f"reconstruction MSE ({pairing}): " + "  ".join(f"NFE {k}: {v:.5f}" for k, v in errs.items()))
    for name, c in result["contraction"].items():
        print(
            f"{name}: max sym-Jacobian eigenvalue {c['lambda_max_sym_max']:+.3f}, spectral norm max {c['spectral_norm_max']:.2f}"
        )
    print(f"-> {cfg['out']}/diagnostics.json")


def cmd_deploy(overrides: dict[str, Any]) -> None:
    from fmpolicy.eval.deploy import deploy

    ckpt, overrides = _split_checkpoint(overrides, required=True)
    overrides.setdefault("out", str(_run_dir(ckpt) / "deploy"))
    payload, cfg = _checkpoint_config(ckpt, overrides)
    deploy(payload, cfg, Path(cfg["out"]))


def _compose_for_runs(overrides: dict[str, Any]) -> dict[str, Any]:
    """The command's config on the runs' task (its eval settings: n_envs, vector_env, ...), unless task= is given."""
    from fmpolicy.policy.checkpoint import load_checkpoint

    cfg = compose(overrides)
    runs = cfg["bench"]["runs"]
    if "task" in overrides or not runs:
        return cfg
    task = load_checkpoint(next(iter(runs.values())))["config"]["task"]["name"]
    return compose({**overrides, "task": task}) if task and task != cfg["task"]["name"] else cfg


def cmd_bench(overrides: dict[str, Any]) -> None:
    from fmpolicy.eval.bench import bench

    overrides.setdefault("out", "runs/bench")
    cfg = _compose_for_runs(overrides)
    bench(cfg, Path(cfg["out"]))
    print(f"-> {cfg['out']}/bench.md, bench.csv, bench.png")


def cmd_robustness(overrides: dict[str, Any]) -> None:
    from fmpolicy.eval.bench import robustness

    overrides.setdefault("out", "runs/robustness")
    cfg = _compose_for_runs(overrides)
    robustness(cfg, Path(cfg["out"]))
    print(
        f"-> {cfg['out']}/robustness.md, robustness.csv, robustness.png, sensitivity.md, sensitivity.csv, sensitivity.png"
    )


def cmd_speed(overrides: dict[str, Any]) -> None:
    from fmpolicy.eval.speed import measure_speed
    from fmpolicy.policy.api import model_from_checkpoint

    ckpt, overrides = _split_checkpoint(overrides, required=False)
    overrides.setdefault("out", "runs/speed")
    model = None
    if ckpt:
        payload, cfg = _checkpoint_config(ckpt, overrides)
        model = model_from_checkpoint(payload, cfg)
    else:
        overrides.setdefault("task", default_task())
        cfg = compose(overrides)
    r = measure_speed(cfg, Path(cfg["out"]), model)
    print(f"{r['parameters'] / 1e6:.2f}M parameters, {r['threads']} torch threads")
    print(
        f"training: {r['train_samples_per_s']:.0f} samples/s ({r['train_step_s'] * 1000:.0f} ms per step of {cfg['train']['batch_size']})"
    )
    print("batch-1 latency per chunk: " + ", ".join(f"NFE {k}: {v:.1f} ms" for k, v in r["latency_ms_batch1"].items()))
    print(
        f"rollouts: {r['rollout_env_steps_per_s']:.0f} env steps/s ({r['rollout']['episodes']} vector envs, NFE {r['rollout']['nfe']})"
    )
    print(f"-> {cfg['out']}/speed.json")


COMMANDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "pipeline": cmd_pipeline,
    "demos": cmd_demos,
    "train": cmd_train,
    "finetune": cmd_finetune,
    "diagnose": cmd_diagnose,
    "eval": cmd_eval,
    "compare": cmd_compare,
    "deploy": cmd_deploy,
    "bench": cmd_bench,
    "speed": cmd_speed,
    "robustness": cmd_robustness,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE + f"\n  TASK: {', '.join(available('task'))}")
        return 0
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}': choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        overrides = parse_overrides(args)
        if overrides.get("out") is not None:
            check_out(overrides["out"])
        COMMANDS[command](overrides)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
