"""Plot of the 1,000-seed evaluations of pusht_nfe1_paired.sh, cut into five blocks of 200 seeds.

Earlier comparisons used the first 200 seeds only. Each block of 200 is what such a comparison would
have seen on other seeds; the spread of the blocks beside the 1,000-seed mean (with its interval) shows
how far a 200-seed gap can be trusted.
Usage: python scripts/experiments/pusht_paired_blocks.py [RUNS_DIR=runs] [OUT=docs/results/pusht_1000_seeds.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from fmpolicy.eval.paired import read_episodes
from fmpolicy.plotting import figure, save

BLOCK = 200
# (label, evaluation folder under RUNS_DIR)
RUNS = [
    ("FM 12k, NFE 10", "p12/fm/eval1000_nfe10"),
    ("FM 15.1k (same budget), NFE 10", "p15/fm/eval1000_nfe10"),
    ("FT-FM@2, weight 10", "p12/sw10n2/eval1000"),
    ("FT-FM@1, pairs from FT-FM@2", "p12/sw10_t2/eval1000"),
]


def blocks(episodes: Path) -> np.ndarray:
    """Mean score and success of each block of BLOCK seeds, shape (n_blocks, 2)."""
    per_seed = read_episodes(episodes)
    values = np.array([(per_seed[s]["score"], per_seed[s]["success"]) for s in sorted(per_seed)])
    n = len(values) // BLOCK * BLOCK
    return values[:n].reshape(-1, BLOCK, 2).mean(axis=1)


def main(runs: Path, out: Path) -> None:
    fig, axes = figure(ncols=2, width=5.5, height=4.2)
    for i, (label, folder) in enumerate(RUNS):
        path = runs / folder
        if not (path / "episodes.csv").exists():
            print(f"missing: {path}")
            continue
        per_block = blocks(path / "episodes.csv")
        metrics = json.loads((path / "metrics.json").read_text())
        for ax, col, key in ((axes[0], 0, "score"), (axes[1], 1, "success")):
            mean_key = "score" if key == "score" else "success_rate"
            lo, hi = metrics[f"{key}_ci95"]
            ax.scatter(
                np.full(len(per_block), i) + np.linspace(-0.15, 0.15, len(per_block)),
                per_block[:, col],
                s=18,
                color=f"C{i}",
                alpha=0.6,
            )
            ax.errorbar(
                [i + 0.3],
                [metrics[mean_key]],
                yerr=[[metrics[mean_key] - lo], [hi - metrics[mean_key]]],
                fmt="D",
                color=f"C{i}",
                mec="black",
                capsize=4,
            )
        print(f"{label}: blocks of {BLOCK} " + ", ".join(f"{s:.3f}/{u:.3f}" for s, u in per_block))
    for ax, name in zip(axes, ("score", "success rate")):
        ax.set_xticks(range(len(RUNS)), [label for label, _ in RUNS], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(name)
        ax.set_title(f"{name}: blocks of {BLOCK} seeds (dots), 1,000 seeds (diamond, 95%)", fontsize=9)
    save(fig, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "runs"), Path(args[1] if len(args) > 1 else "docs/results/pusht_1000_seeds.png"))
