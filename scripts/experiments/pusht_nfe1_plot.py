"""Plot of the NFE 1-2 recipes on Push-T, one point per evaluation draw (pusht_nfe1_select.sh writes the runs).

Each FT-FM run and the FM of the same budget ran the same 200 evaluation seeds with the sampling noise of
eval.noise_seed 0, 1, 2; the plot shows every draw (small) and each recipe's mean (large), so a reader sees
how far the recipes' differences stand above the spread of one run.
Usage: python scripts/experiments/pusht_nfe1_plot.py [RUNS_DIR=runs] [OUT=docs/results/pusht_nfe1_draws.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from fmpolicy.plotting import figure, save

DRAWS = ["eval200", "eval200_ns1", "eval200_ns2"]
FM_DRAWS = ["eval200_nfe10", "eval200_nfe10_ns1", "eval200_nfe10_ns2"]
# (label, [run folders under RUNS_DIR], metrics folders of each run)
RECIPES = [
    ("FM, NFE 10 (same budget)", ["p15/fm"], FM_DRAWS),
    ("FT-FM@2, weight 10", ["p12/sw10n2"], DRAWS),
    ("FT-FM@2, weight 1", ["p12/sp2"], DRAWS),
    ("FT-FM@1, pairs from FT-FM@2", [f"p12/sw10_t2{s}" for s in ("", "_seed1", "_seed2")], DRAWS),
    ("FT-FM@1, pairs from the FM", [f"p12/sw10{s}" for s in ("", "_seed1", "_seed2")], DRAWS),
    ("FT-FM@1, started from FT-FM@2", [f"p12/init_t2_seed{s}" for s in (0, 1, 2)], DRAWS),
    ("FT-FM@1, all windows (seed 0)", ["p12/sw10_t2_all"], DRAWS),
]


def draws(runs: Path, folders: list[str], metrics: list[str]) -> np.ndarray:
    """(score, success) of every draw found, shape (n, 2)."""
    found = [runs / f / m / "metrics.json" for f in folders for m in metrics]
    rows = [json.loads(p.read_text()) for p in found if p.exists()]
    return np.array([(r["score"], r["success_rate"]) for r in rows]).reshape(-1, 2)


def main(runs: Path, out: Path) -> None:
    fig, ax = figure(width=9.5, height=4.5)
    for i, (label, folders, metrics) in enumerate(RECIPES):
        points = draws(runs, folders, metrics)
        if not len(points):
            print(f"missing: {label}")
            continue
        mean = points.mean(axis=0)
        color = f"C{i}"
        ax.scatter(points[:, 1], points[:, 0], s=14, alpha=0.45, color=color)
        ax.scatter(*mean[::-1], s=110, marker="D", color=color, edgecolor="black", label=f"{label} ({len(points)})")
        print(f"{label}: {len(points)} draws, score {mean[0]:.3f}, success {mean[1]:.3f}")
    ax.set_xlabel("success rate (200 seeds)")
    ax.set_ylabel("score (200 seeds)")
    ax.set_title("Push-T, real data: each draw (dot) and the mean (diamond)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="recipe (draws)")
    save(fig, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "runs"), Path(args[1] if len(args) > 1 else "docs/results/pusht_nfe1_draws.png"))
