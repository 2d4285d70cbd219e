"""Checkpoints: written atomically, read with errors that say what is wrong."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from fmpolicy.errors import UserError

REQUIRED = ("config", "model", "obs_dim", "action_dim")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.exists():
        raise UserError(f"checkpoint not found at '{path}': pass checkpoint=RUN_DIR or checkpoint=PATH/to/file.pt")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise UserError(
            f"checkpoint '{path}' is corrupt or not a checkpoint ({type(exc).__name__}): retrain or pick another file"
        ) from None
    missing = [k for k in REQUIRED if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise UserError(f"checkpoint '{path}' lacks {missing}: it was not written by fmpolicy train/finetune")
    return payload
