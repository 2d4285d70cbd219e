"""Headless matplotlib figures, created and saved the same way everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def figure(ncols: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    """A figure with ``ncols`` axes side by side (a single axes object when ``ncols == 1``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, height))


def save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
