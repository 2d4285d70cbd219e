"""Minari's on-disk layout (what users download for D4RL/kitchen/*), read and written with h5py.

``main_data.hdf5``: one group ``episode_<i>`` per episode with ``observations``
(a group of arrays, e.g. ``observation``, ``achieved_goal/<task>``,
``desired_goal/<task>``; T + 1 entries, the last being the final observation),
``actions (T, ...)``, ``rewards``, ``terminations``, ``truncations`` (T each) and
``infos``; beside it ``metadata.json``. A path may name the file or its folder.
The ``minari`` package itself is not needed (it pulls numpy 2 and jax).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fmpolicy.data.replay_buffer import ReplayBuffer
from fmpolicy.errors import UserError


def _data_file(path: Path) -> Path:
    return path / "main_data.hdf5" if path.is_dir() else path


def read_minari_hdf5(path: str | Path, obs_keys: list[str]) -> ReplayBuffer:
    """Episodes in order of their index; the final observation of each is dropped so steps align."""
    file = _data_file(Path(path))
    try:
        f = h5py.File(file, "r")
    except OSError as exc:
        raise UserError(
            f"'{file}' is not a readable Minari HDF5 file ({exc}): pass the dataset's main_data.hdf5"
        ) from None
    with f:
        names = sorted((k for k in f if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not names:
            raise UserError(f"'{file}' holds no episode_<i> groups: it is not in Minari's layout")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in [*obs_keys, "action"]}
        for name in names:
            ep = f[name]
            actions = np.asarray(ep["actions"])
            for key in obs_keys:
                if key not in ep["observations"]:
                    raise UserError(
                        f"'{file}' {name} lacks observations/{key} (it has {sorted(ep['observations'])}): "
                        "choose a task whose observation keys the file provides"
                    )
                parts[key].append(np.asarray(ep["observations"][key])[: len(actions)])
            parts["action"].append(actions)
    ends = np.cumsum([len(a) for a in parts["action"]]).astype(np.int64)
    return ReplayBuffer(data={k: np.concatenate(v) for k, v in parts.items()}, episode_ends=ends)


def write_minari_hdf5(
    path: str | Path, episodes: list[dict[str, np.ndarray]], obs_keys: list[str], metadata: dict[str, Any]
) -> Path:
    """Write ``episodes`` (per-step arrays: the observation keys, ``action``, optional ``reward``).

    Each episode's final observation repeats its last one (the expert's arrays hold
    the observation before each action only); the last step is a truncation.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    with h5py.File(folder / "main_data.hdf5", "w") as f:
        for i, ep in enumerate(episodes):
            n = len(ep["action"])
            g = f.create_group(f"episode_{i}")
            g.attrs["id"] = i
            g.attrs["total_steps"] = n
            obs = g.create_group("observations")
            for key in obs_keys:
                arr = np.asarray(ep[key])
                obs.create_dataset(key, data=np.concatenate([arr, arr[-1:]]))
            g.create_dataset("actions", data=np.asarray(ep["action"]))
            g.create_dataset("rewards", data=np.asarray(ep.get("reward", np.zeros(n)), dtype=np.float64))
            g.create_dataset("terminations", data=np.zeros(n, bool))
            g.create_dataset("truncations", data=np.arange(n) == n - 1)
            g.create_group("infos")
            total += n
    meta = {"total_episodes": len(episodes), "total_steps": total, "data_format": "hdf5", **metadata}
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2))
    return folder
