"""Checkpoints: written atomically, read with errors that say what is wrong."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from fmpolicy.errors import UserError

FORMAT_VERSION = 2  # 2: observation dicts described by shape_meta, per-key normalizers
REQUIRED = ("config", "model", "shape_meta")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    umask = os.umask(0)  # read it (it can only be read by setting it) and put it back
    os.umask(umask)
    try:
        # mkstemp makes the file private (0600); a checkpoint gets the permissions of any file the user writes
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def weights_digest(module: torch.nn.Module) -> str:
    """A short hash of ``module``'s parameters and buffers: caches made from a model's outputs (latents, sample
    pairs) record it, so a cache copied from a run of another checkpoint is remade, not reused."""
    h = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def keep_copy(path: Path, kept: Path) -> None:
    """Keep the checkpoint just written at ``path`` as ``kept`` too: a hard link (``save_checkpoint`` replaces
    ``path`` by a new file, so the link keeps this one), or a copy where links are not supported."""
    kept.unlink(missing_ok=True)
    try:
        os.link(path, kept)
    except OSError:
        shutil.copyfile(path, kept)


def load_checkpoint(path: str | Path, key: str = "checkpoint") -> dict[str, Any]:
    """``key``: the config key the path was given as, named when it is not found."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.exists():
        raise UserError(f"{key} not found at '{path}': pass {key}=RUN_DIR or {key}=PATH/to/file.pt")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise UserError(
            f"checkpoint '{path}' is corrupt or not a checkpoint ({type(exc).__name__}): retrain or pick another file"
        ) from None
    if isinstance(payload, dict) and "format_version" not in payload and "obs_dim" in payload:
        payload = _convert_v1(payload, path)
    missing = [k for k in REQUIRED if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise UserError(f"checkpoint '{path}' lacks {missing}: it was not written by fmpolicy train/finetune")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(
            f"checkpoint '{path}' has format {payload['format_version']}, newer than this fmpolicy reads "
            f"({FORMAT_VERSION}): upgrade fmpolicy"
        )
    return payload


def _convert_v1(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    """Format 1 (one flat observation vector, one normalizer) -> format 2.

    The flat normalizer's entries were the task's observation keys concatenated
    in order, which is exactly how the low-dim encoder orders them. Residual
    checkpoints of format 1 are refused: their head was reparametrized (centre
    ``mu`` -> drift ``b = P mu``) without a version, so their meaning is unknown.
    """
    from fmpolicy.config import compose

    cfg = payload["config"]
    if cfg["method"]["kind"] == "ft_residual":
        raise UserError(
            f"checkpoint '{path}' is a residual (ResFT-FM) checkpoint of format 1, whose head meant something "
            "else: re-run fmpolicy finetune method=ft_residual from its FM checkpoint"
        )
    task = compose({"task": cfg["task"]["name"]})
    new_cfg = compose({}, base=cfg)
    new_cfg["task"] = {k: v for k, v in {**cfg["task"], **task["task"]}.items() if k != "obs_keys"}
    new_cfg["dataset"] = {**task["dataset"], **cfg["dataset"]}
    shape_meta = new_cfg["task"]["shape_meta"]

    def convert(state: dict[str, Any] | None) -> dict[str, Any] | None:
        if state is None:
            return None
        state = dict(state)
        scale, offset = state.pop("obs_norm.scale"), state.pop("obs_norm.offset")
        start = 0
        for key, meta in shape_meta["obs"].items():
            n = 1
            for d in meta["shape"]:
                n *= d
            state[f"obs_encoder.norms.{key}.scale"] = scale[start : start + n]
            state[f"obs_encoder.norms.{key}.offset"] = offset[start : start + n]
            start += n
        return state

    out = {k: v for k, v in payload.items() if k not in ("obs_dim", "action_dim")}
    out.update(
        config=new_cfg,
        model=convert(payload["model"]),
        ema_model=convert(payload.get("ema_model")),
        shape_meta=shape_meta,
        format_version=FORMAT_VERSION,
    )
    out.pop("optimizer", None)  # parameter groups are unchanged, but resuming a converted run is not supported
    return out
