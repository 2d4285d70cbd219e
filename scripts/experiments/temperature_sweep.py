"""Table and plot of a sampling-temperature sweep (temperature_sweep.sh writes the runs).

Usage: python scripts/experiments/temperature_sweep.py RUNS_DIR OUT_STEM METRIC [RUN=LATENT_STD ...]
Reads RUNS_DIR/sel_<run>_nfe<k>_s<latent scale>/metrics.json (``fmpolicy eval`` outputs), where the
latent scale is absolute; a run's temperature is that scale over its latents' std (RUN=LATENT_STD,
default 1: FM). METRIC is a key of metrics.json or of its ``suite`` section (e.g. mean_completed).
Writes OUT_STEM.md (a table with 95% intervals) and OUT_STEM.png.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from fmpolicy.plotting import figure, save

FOLDER = re.compile(r"sel_(?P<run>.+)_nfe(?P<nfe>\d+)_s(?P<scale>[\d.]+)$")


def _value(m: dict, key: str) -> tuple[float, list[float]]:
    src = m if key in m else m["suite"]
    ci = key + "_ci95" if key + "_ci95" in src else key.replace("_rate", "") + "_ci95"
    return src[key], src[ci]


def _cell(value: float, ci: list[float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def main(runs: Path, stem: Path, metric: str, stds: dict[str, float]) -> None:
    curves: dict[str, list[tuple[float, float, list[float], dict]]] = defaultdict(list)
    for path in sorted(runs.glob("sel_*/metrics.json")):
        match = FOLDER.match(path.parent.name)
        if not match:
            continue
        m = json.loads(path.read_text())
        run, scale = match["run"], float(match["scale"])
        temperature = round(scale / stds.get(run, 1.0), 2)
        value, ci = _value(m, metric)
        curves[f"{run}, NFE {match['nfe']}"].append((temperature, value, ci, m))
    extra = metric not in ("score", "success_rate")
    head = "| run | temperature | latent std | episodes | score [95% CI] | success [95% CI] |"
    lines = [head + (f" {metric} [95% CI] |" if extra else ""), "|---" * (7 if extra else 6) + "|"]
    for name, points in curves.items():
        points.sort()
        for temperature, value, ci, m in points:
            std = stds.get(name.split(",")[0], 1.0) * temperature
            cells = [_cell(m["score"], m["score_ci95"]), _cell(m["success_rate"], m["success_ci95"])]
            cells += [_cell(value, ci)] if extra else []
            lines.append(f"| {name} | {temperature:.2f} | {std:.3f} | {m['n_episodes']} | " + " | ".join(cells) + " |")
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    fig, ax = figure(1, width=5.5, height=4)
    for name, points in curves.items():
        t = [p[0] for p in points]
        v = [p[1] for p in points]
        ax.errorbar(
            t,
            v,
            yerr=[[x - p[2][0] for x, p in zip(v, points)], [p[2][1] - x for x, p in zip(v, points)]],
            marker="o",
            capsize=3,
            label=name,
        )
    ax.set_xlabel("temperature (latent std / the run's latents' std)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against sampling temperature (selection seeds)", fontsize=10)
    ax.legend()
    save(fig, stem.with_suffix(".png"))


if __name__ == "__main__":
    extra = dict(arg.split("=") for arg in sys.argv[4:])
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], {k: float(v) for k, v in extra.items()})
