"""Paired comparison of two evaluations over the same environment seeds (their ``episodes.csv``).

Every evaluation of a task starts episode i from seed ``eval.seed_start + i``, so two policies can be
compared seed by seed: the per-seed differences cancel what the start alone decides (an easy or a hard
layout), and their mean has a narrower interval than the difference of two independent means. Near-equal
policies need it: on Push-T, one block of 200 seeds put FT-FM at NFE 2 0.018 above FM at NFE 10 in score
while 1,000 seeds put it 0.001 below (the few-step results page under docs/results/).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fmpolicy.errors import UserError
from fmpolicy.stats import normal_ci95

METRICS = ("score", "success")


def episodes_path(path: str | Path) -> Path:
    """An evaluation folder or its ``episodes.csv`` -> the csv, or an error naming the fix."""
    path = Path(path)
    csv_path = path / "episodes.csv" if path.is_dir() else path
    if not csv_path.is_file() and (path / "checkpoints").is_dir():
        raise UserError(f"{path} is a training run: pass its evaluation folder (`fmpolicy eval` writes {path}/eval)")
    if not csv_path.is_file():
        raise UserError(f"no episodes.csv at {path}: run `fmpolicy eval checkpoint=RUN out={path}` first")
    return csv_path


def read_episodes(path: str | Path) -> dict[int, dict[str, float]]:
    """Seed -> score and success (as 0/1) of one evaluation."""
    csv_path = episodes_path(path)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [k for k in ("seed", *METRICS) if not rows or k not in rows[0]]
    if missing:
        raise UserError(f"{csv_path} has no column {', '.join(missing)}: it is not an episodes.csv written by eval")
    return by_seed(rows)


def read_draws(paths: Sequence[str | Path]) -> tuple[dict[int, dict[str, float]], int]:
    """Seed -> score and success averaged over several evaluations of one policy on the same seeds, and how many
    seeds were left out because some of the evaluations lack them.

    The evaluations differ only in ``eval.noise_seed`` (the sampling noise). On Kitchen's real data one draw moved
    FT-FM by 0.22 tasks over 200 seeds, so a comparison of near-equal policies averages several draws per seed
    before pairing; the seeds, not the (draw, seed) pairs, stay the independent units of the interval. A seed
    missing from one draw is left out rather than averaged over fewer draws, and counted so the caller can say so.
    """
    runs = [read_episodes(p) for p in paths]
    seed_sets = [set(r) for r in runs]
    seeds = sorted(set.intersection(*seed_sets))
    if not seeds:
        raise UserError(
            f"the evaluations {', '.join(map(str, paths))} share no seed: run them with one eval.seed_start"
        )
    n_partial = len(set.union(*seed_sets)) - len(seeds)
    return {s: {k: float(np.mean([r[s][k] for r in runs])) for k in METRICS} for s in seeds}, n_partial


def by_seed(rows: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    """Seed -> score and success (as 0/1) of episode records, as rollouts return them or a csv holds them."""

    def flag(v: Any) -> float:
        return float(v.strip().lower() in ("true", "1", "1.0")) if isinstance(v, str) else float(bool(v))

    return {int(r["seed"]): {"score": float(r["score"]), "success": flag(r["success"])} for r in rows}


def compare_episodes(
    a: dict[int, dict[str, float]], b: dict[int, dict[str, float]], partial: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    """Mean of B - A over the shared seeds, its 95% interval, and on how many seeds B is above/equal/below.

    ``partial``: seeds already left out of A and of B for missing from some of their draws (``read_draws``),
    reported beside the seeds that only one side has.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise UserError("the two evaluations share no seed: run both with the same eval.seed_start")
    out: dict[str, Any] = {
        "n_seeds": len(seeds),
        "seeds": [seeds[0], seeds[-1]],
        "left_out": {
            "only_a": len(set(a) - set(b)),
            "only_b": len(set(b) - set(a)),
            "not_in_every_draw_a": partial[0],
            "not_in_every_draw_b": partial[1],
        },
    }
    for key in METRICS:
        d = np.array([b[s][key] - a[s][key] for s in seeds])
        out[key] = {
            "mean_a": float(np.mean([a[s][key] for s in seeds])),
            "mean_b": float(np.mean([b[s][key] for s in seeds])),
            "diff": float(d.mean()),
            "ci95": list(normal_ci95(d)),
            "b_above": int((d > 0).sum()),
            "equal": int((d == 0).sum()),
            "b_below": int((d < 0).sum()),
        }
    return out


def format_comparison(res: dict[str, Any], a: str, b: str) -> str:
    """The comparison as the lines ``fmpolicy compare`` prints."""
    lines = [f"{res['n_seeds']} shared seeds ({res['seeds'][0]}..{res['seeds'][1]}), A = {a}, B = {b}"]
    left = res["left_out"]
    if left["only_a"] or left["only_b"]:
        lines.append(f"note: {left['only_a']} seeds only in A and {left['only_b']} only in B are left out")
    if left["not_in_every_draw_a"] or left["not_in_every_draw_b"]:
        lines.append(
            f"note: {left['not_in_every_draw_a']} seeds of A and {left['not_in_every_draw_b']} of B are left out:"
            " some of their evaluations lack them (evaluate every draw on the same seeds)"
        )
    for key in METRICS:
        r = res[key]
        lo, hi = r["ci95"]
        lines.append(
            f"{key}: A {r['mean_a']:.3f}, B {r['mean_b']:.3f}, B - A {r['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}];"
            f" B above on {r['b_above']}, equal on {r['equal']}, below on {r['b_below']} seeds"
        )
    return "\n".join(lines)
