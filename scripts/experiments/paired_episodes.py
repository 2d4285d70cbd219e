"""Paired comparison of two evaluations over the same environment seeds (their ``episodes.csv``).

Every evaluation of a task starts its episodes from the same seeds, so two policies' results can be
compared seed by seed: the per-seed differences cancel what the seed alone decides (an easy or a hard
start), and their mean has a narrower interval than the difference of two independent means.
Prints, and writes as JSON with ``--out``, the mean of B - A in score and success with a 95% normal
interval and the number of seeds where B is above, equal and below.

Usage: python scripts/experiments/paired_episodes.py A/episodes.csv B/episodes.csv [--out FILE.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np


def read(path: Path) -> dict[int, dict[str, float]]:
    """Seed -> score and success (as 0/1) of one ``episodes.csv``."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        int(r["seed"]): {"score": float(r["score"]), "success": float(r["success"].lower() in ("true", "1", "1.0"))}
        for r in rows
    }


def paired(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> dict[str, object]:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit("the two evaluations share no seed: run both with the same eval.seed_start")
    out: dict[str, object] = {"n_seeds": len(seeds), "seeds": [seeds[0], seeds[-1]]}
    for key in ("score", "success"):
        d = np.array([b[s][key] - a[s][key] for s in seeds])
        half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
        out[key] = {
            "mean_a": float(np.mean([a[s][key] for s in seeds])),
            "mean_b": float(np.mean([b[s][key] for s in seeds])),
            "diff": float(d.mean()),
            "ci95": [float(d.mean() - half), float(d.mean() + half)],
            "b_above": int((d > 0).sum()),
            "equal": int((d == 0).sum()),
            "b_below": int((d < 0).sum()),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    res = paired(read(args.a), read(args.b))
    print(f"{res['n_seeds']} seeds, B = {args.b.parent}, A = {args.a.parent}")
    for key in ("score", "success"):
        r = res[key]
        lo, hi = r["ci95"]
        print(
            f"{key}: A {r['mean_a']:.3f}, B {r['mean_b']:.3f}, B - A {r['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}];"
            f" B above on {r['b_above']}, equal on {r['equal']}, below on {r['b_below']} seeds"
        )
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
