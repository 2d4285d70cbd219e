"""Table and plot of the FT-FM settings tried on Push-T (pusht_ft_settings.sh writes the runs).

Usage: python scripts/experiments/pusht_ft_settings.py RUNS_DIR OUT_DIR
Writes OUT_DIR/pusht_ft_settings.md (a table with 95% intervals) and OUT_DIR/pusht_ft_settings.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fmpolicy.plotting import figure, save

# (label, metrics folder under RUNS_DIR, latent std the policy sampled with)
ROWS = [
    ("FM, NFE 10", "fm10_s1.0", "1.0"),
    ("FM, NFE 10, latents x 0.912", "fm10_s0.912", "0.912"),
    ("FM, midpoint NFE 2 (no fine-tuning)", "fm_mid2", "1.0"),
    ("FT-FM (pipeline default: 2,048 windows, FM weight 0.1)", "base_s1.0", "1.0"),
    ("  the same, latents at their std (match_latent_std)", "base_s0.912", "0.912"),
    ("  the same, latents x 0.8", "base_s0.8", "0.8"),
    ("FT-FM, independent pairing", "indep/eval", "1.0"),
    ("FT-FM, FM weight 300", "fmw300/eval", "1.0"),
    ("FT-FM, FM weight 300, latents at their std", "fmw300/eval_s0912", "0.912"),
    ("FT-FM, all 23,066 windows (RK4-16 latents)", "allwin/eval", "0.856"),
    ("FT-FM tuned for NFE 1 and 2 at once, at NFE 2", "multi12/eval2", "0.912"),
    ("  the same checkpoint at NFE 1", "multi12/eval1", "0.912"),
    ("FT-FM, midpoint solver (one step, NFE 2)", "mid2/eval", "0.912"),
]


def main(runs: Path, out: Path) -> None:
    found = []
    for label, rel, scale in ROWS:
        path = runs / rel / "metrics.json"
        if path.exists():
            found.append((label, scale, json.loads(path.read_text())))
        else:
            print(f"missing: {path}")
    lines = [
        "| setting | solver | NFE | latent std | score [95% CI] | success [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for label, scale, m in found:
        score = f"{m['score']:.3f} [{m['score_ci95'][0]:.3f}, {m['score_ci95'][1]:.3f}]"
        success = f"{m['success_rate']:.3f} [{m['success_ci95'][0]:.3f}, {m['success_ci95'][1]:.3f}]"
        lines.append(f"| {label.strip()} | {m['solver']} | {m['nfe']} | {scale} | {score} | {success} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "pusht_ft_settings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    fig, axes = figure(2, width=5.5, height=0.42 * len(found) + 1.2)
    y = list(range(len(found)))[::-1]
    for ax, key, ci in ((axes[0], "score", "score_ci95"), (axes[1], "success_rate", "success_ci95")):
        vals = [m[key] for _, _, m in found]
        err = [[v - m[ci][0] for v, (_, _, m) in zip(vals, found)], [m[ci][1] - v for v, (_, _, m) in zip(vals, found)]]
        colors = ["tab:gray" if label.startswith("FM") else "tab:blue" for label, _, _ in found]
        ax.barh(y, vals, xerr=err, color=colors, capsize=2)
        ax.axvline(found[0][2][key], color="k", lw=0.8, ls="--")  # FM at NFE 10
        ax.set_xlabel(key.replace("_", " ") + " (95% CI; dashed: FM at NFE 10)")
        ax.set_yticks(y)
        ax.set_yticklabels([label.strip() for label, _, _ in found] if ax is axes[0] else [])
    save(fig, out / "pusht_ft_settings.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
