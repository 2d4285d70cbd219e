"""Reader and writer for Diffusion Policy's zarr replay buffer (zarr v2).

Layout: ``data/<key> (N, ...)`` arrays over all steps of all episodes and
``meta/episode_ends (E,)`` holding exclusive end indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from fmpolicy.errors import UserError


@dataclass
class ReplayBuffer:
    data: dict[str, np.ndarray]
    episode_ends: np.ndarray
    meta: dict = field(default_factory=dict)  # what the file says about itself (e.g. robomimic's env_args)

    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def n_steps(self) -> int:
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)

    def episode(self, i: int) -> dict[str, np.ndarray]:
        s, e = self.episode_starts[i], self.episode_ends[i]
        return {k: v[s:e] for k, v in self.data.items()}


def read_replay_buffer(path: str | Path, keys: list[str]) -> ReplayBuffer:
    """Load ``keys`` from ``data/`` and the episode ends into memory."""
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"dataset not found at '{path}': set dataset.path=... to a Diffusion Policy zarr "
            "(a folder, or a .zarr.zip), or generate one with 'fmpolicy demos'"
        )
    try:
        root = zarr.open_group(str(path), mode="r")
        data_group = root["data"]
        raw_ends = np.asarray(root["meta"]["episode_ends"][:])
    except (KeyError, ValueError, TypeError, OSError, zarr.errors.GroupNotFoundError) as exc:
        raise UserError(
            f"'{path}' is not a replay-buffer zarr (needs groups data/ and meta/episode_ends): {exc}"
        ) from None
    missing = [k for k in keys if k not in data_group]
    if missing:
        raise UserError(
            f"dataset '{path}' lacks data/{', data/'.join(missing)} (it has {sorted(data_group.array_keys())}): "
            "choose an observation type the file provides or a dataset that has these arrays"
        )
    if raw_ends.ndim != 1 or raw_ends.dtype.kind not in "iu":
        raise UserError(
            f"dataset '{path}': meta/episode_ends must be a 1-D array of integers (exclusive episode ends), "
            f"got {raw_ends.dtype} with shape {raw_ends.shape}: rewrite it as int64"
        )
    data = {k: np.asarray(data_group[k][:]) for k in keys}
    return ReplayBuffer(data=data, episode_ends=raw_ends.astype(np.int64))


def write_replay_buffer(path: str | Path, episodes: list[dict[str, np.ndarray]]) -> None:
    """Write episodes (dicts of equal-length arrays) in the same layout, zstd-compressed."""
    from numcodecs import Blosc

    compressor = Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE)
    root = zarr.open_group(str(path), mode="w")
    ends = np.cumsum([len(next(iter(ep.values()))) for ep in episodes]).astype(np.int64)
    root.require_group("meta").array("episode_ends", ends, compressor=compressor)
    data = root.require_group("data")
    for key in episodes[0]:
        arr = np.concatenate([ep[key] for ep in episodes]).astype(np.float32)
        data.array(key, arr, chunks=(min(len(arr), 1000), *arr.shape[1:]), compressor=compressor)
