"""Dataset formats -> the one in-memory ``ReplayBuffer`` (observation keys of ``shape_meta`` + ``action``).

``dataset.format`` picks the reader: ``zarr`` (Diffusion Policy's replay buffer; the
task's ``dataset.obs_sources`` maps each observation key to an array, optionally a
slice of its last axis, e.g. ``agent_pos: state[0:2]``), ``minari`` (Minari's
``main_data.hdf5``: ``observations/<key>`` per episode) or ``robomimic`` (robomimic's
HDF5: ``data/demo_i/obs/<key>``; its ``env_args`` travel in the buffer's ``meta``).
``builtin:NAME`` paths point at the real demonstrations shipped in ``fmpolicy/data/builtin``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fmpolicy.data.replay_buffer import ReplayBuffer, read_replay_buffer
from fmpolicy.errors import UserError

BUILTIN_DIR = Path(__file__).parent / "builtin"
_SOURCE = re.compile(r"^([\w/]+)(?:\[(-?\d*):(-?\d*)\])?$")


def resolve_path(path: str | Path) -> Path:
    """``builtin:NAME`` -> the shipped file; anything else -> an absolute path."""
    text = str(path)
    if text.startswith("builtin:"):
        name = text.split(":", 1)[1]
        found = BUILTIN_DIR / name
        if not found.exists():
            names = sorted(p.name for p in BUILTIN_DIR.glob("*.zip"))
            raise UserError(f"no built-in dataset '{name}': choose one of {', '.join(names)}")
        return found
    return Path(text).expanduser().resolve()


def absolute_dataset_path(cfg: dict[str, Any]) -> None:
    """Make ``cfg.dataset.path`` absolute (``builtin:`` stays), so a checkpoint's config works from any folder."""
    path = cfg["dataset"].get("path")
    if path and not str(path).startswith("builtin:"):
        cfg["dataset"]["path"] = str(resolve_path(path))


def parse_source(source: str) -> tuple[str, slice | None]:
    """``"state[0:2]"`` -> ``("state", slice(0, 2))``; ``"keypoint"`` -> ``("keypoint", None)``."""
    m = _SOURCE.match(str(source).strip())
    if not m:
        raise UserError(f"dataset.obs_sources entry '{source}' is not ARRAY or ARRAY[a:b] (e.g. state[0:2])")
    name, lo, hi = m.groups()
    if lo is None:
        return name, None
    return name, slice(int(lo) if lo else None, int(hi) if hi else None)


def read_zarr(path: Path, obs_keys: list[str], dataset_cfg: dict[str, Any]) -> ReplayBuffer:
    sources = {k: parse_source((dataset_cfg.get("obs_sources") or {}).get(k, k)) for k in obs_keys}
    arrays = sorted({src for src, _ in sources.values()} | {"action"})
    raw = read_replay_buffer(path, arrays)
    data = {k: raw.data[src][..., sl] if sl is not None else raw.data[src] for k, (src, sl) in sources.items()}
    data["action"] = raw.data["action"]
    return ReplayBuffer(data=data, episode_ends=raw.episode_ends)


def read_minari(path: Path, obs_keys: list[str], dataset_cfg: dict[str, Any]) -> ReplayBuffer:
    from fmpolicy.data.minari import read_minari_hdf5

    return read_minari_hdf5(path, obs_keys)


def read_robomimic(path: Path, obs_keys: list[str], dataset_cfg: dict[str, Any]) -> ReplayBuffer:
    from fmpolicy.data.robomimic_hdf5 import read_env_args, read_robomimic_hdf5

    buffer = read_robomimic_hdf5(path, obs_keys, dataset_cfg.get("filter_key"))
    buffer.meta["env_args"] = read_env_args(path)
    return buffer


READERS: dict[str, Callable[[Path, list[str], dict[str, Any]], ReplayBuffer]] = {
    "zarr": read_zarr,
    "minari": read_minari,
    "robomimic": read_robomimic,
}


def read_dataset(dataset_cfg: dict[str, Any], shape_meta: dict[str, Any]) -> ReplayBuffer:
    """Read ``dataset.path`` with ``dataset.format`` and check it against ``shape_meta``."""
    if not dataset_cfg.get("path"):
        raise UserError("no dataset given: set dataset.path=PATH to a dataset (see README, 'Data')")
    fmt = dataset_cfg.get("format", "zarr")
    if fmt not in READERS:
        raise UserError(f"dataset.format '{fmt}' unknown: choose one of {', '.join(READERS)}")
    path = resolve_path(dataset_cfg["path"])
    if not path.exists():
        raise UserError(
            f"dataset not found at '{path}': set dataset.path=... to a {fmt} dataset, "
            "or generate one with 'fmpolicy demos'"
        )
    buffer = READERS[fmt](path, list(shape_meta["obs"]), dataset_cfg)
    return validate_buffer(buffer, shape_meta, str(path))


def validate_buffer(buffer: ReplayBuffer, shape_meta: dict[str, Any], where: str) -> ReplayBuffer:
    """Shapes, dtypes, finiteness and episode boundaries, each failure named with its fix."""
    ends = buffer.episode_ends
    if len(ends) == 0 or ends[-1] <= 0:
        raise UserError(f"dataset '{where}' is empty (no episodes): record or generate demonstrations first")
    if np.any(np.diff(ends) <= 0) or ends[0] <= 0:
        raise UserError(
            f"dataset '{where}': meta/episode_ends must be positive and strictly increasing "
            f"(got {ends[:5].tolist()}...): they are exclusive end indices of consecutive episodes"
        )
    expected = {k: tuple(v["shape"]) for k, v in shape_meta["obs"].items()}
    expected["action"] = tuple(shape_meta["action"]["shape"])
    out = {}
    for key, shape in expected.items():
        arr = np.asarray(buffer.data[key])
        if arr.dtype.kind not in "fiu":
            raise UserError(
                f"dataset '{where}': array for '{key}' has dtype {arr.dtype}, not numeric: store numbers (float32)"
            )
        if arr.dtype.kind in "iu":
            print(f"note: dataset '{where}': '{key}' holds integers ({arr.dtype}); converted to float32")
        if arr.shape[1:] != shape:
            raise UserError(
                f"dataset '{where}': '{key}' has shape {arr.shape[1:]} per step, the task expects {shape}: "
                "choose the task that matches this dataset or fix task.shape_meta"
            )
        if arr.ndim == 0 or len(arr) != ends[-1]:
            raise UserError(
                f"dataset '{where}' is corrupt: '{key}' has {len(arr)} steps, meta/episode_ends says {ends[-1]}"
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(1).sum())
            raise UserError(f"dataset '{where}': '{key}' holds NaN or inf at {bad} steps: clean or drop those episodes")
        out[key] = arr.astype(np.float32, copy=False)
    return ReplayBuffer(data=out, episode_ends=ends, meta=buffer.meta)
