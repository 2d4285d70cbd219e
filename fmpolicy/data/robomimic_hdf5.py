"""Robomimic's HDF5 layout (what users download, e.g. ``lift/ph/low_dim_v141.hdf5``), read and written with h5py.

``data`` (attrs ``total`` = steps over all demos, ``env_args`` = JSON with ``env_name``, ``type`` (1 = robosuite)
and ``env_kwargs`` incl. the controller config); ``data/demo_<i>`` (attr ``num_samples``) with ``actions (N, 7)``,
``states (N, S)`` (flat MuJoCo states: time, qpos, qvel), ``rewards (N,)``, ``dones (N,)``, ``obs/<key>`` and
``next_obs/<key>``; ``mask/<filter_key>`` (e.g. ``train``, ``valid``): byte strings naming demos. The ``robomimic``
package itself is not needed (on PyPI it targets robosuite 1.4 and mujoco_py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fmpolicy.data.replay_buffer import ReplayBuffer
from fmpolicy.errors import UserError


def _demo_index(name: str) -> int:
    try:
        return int(name.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return -1


def _open(path: Path) -> h5py.File:
    if not Path(path).exists():
        raise UserError(f"robomimic dataset not found at '{path}': set dataset.path=... to a robomimic .hdf5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"'{path}' is not a readable HDF5 file ({exc}): pass a robomimic dataset (.hdf5)") from None


def demo_names(f: h5py.File, path: Path | str, filter_key: str | None = None) -> list[str]:
    """Demo groups in numeric order (``demo_2`` before ``demo_10``), optionally those of ``mask/<filter_key>``."""
    if "data" not in f:
        raise UserError(f"'{path}' has no 'data' group (it has {sorted(f)}): it is not in robomimic's layout")
    names = [k for k in f["data"] if k.startswith("demo_")]
    if filter_key:
        masks = sorted(f["mask"]) if "mask" in f else []
        if filter_key not in masks:
            raise UserError(
                f"'{path}' has no filter key mask/{filter_key} (it has {masks or 'no masks'}): "
                "set dataset.filter_key to one of them or to null"
            )
        wanted = {n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(f["mask"][filter_key])}
        missing = sorted(wanted - set(names))
        if missing:
            raise UserError(f"'{path}': mask/{filter_key} names demos the file lacks: {missing[:5]}")
        names = [n for n in names if n in wanted]
    return sorted(names, key=_demo_index)


def read_env_args(path: str | Path) -> dict[str, Any]:
    """The dataset's ``env_args`` (parsed JSON): the settings its demonstrations were recorded in."""
    with _open(Path(path)) as f:
        if "data" not in f:
            raise UserError(f"'{path}' has no 'data' group (it has {sorted(f)}): it is not in robomimic's layout")
        raw = f["data"].attrs.get("env_args")
        if raw is None:
            raise UserError(f"'{path}': data has no 'env_args' attribute: the file does not say how it was recorded")
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserError(f"'{path}': data.attrs['env_args'] is not JSON ({exc})") from None


def read_robomimic_hdf5(path: str | Path, obs_keys: list[str], filter_key: str | None = None) -> ReplayBuffer:
    """Observation keys from ``obs/<key>`` plus ``action`` (from ``actions``), demos concatenated in numeric order."""
    path = Path(path)
    with _open(path) as f:
        names = demo_names(f, path, filter_key)
        if not names:
            raise UserError(f"'{path}' holds no demo_<i> groups{f' in mask/{filter_key}' if filter_key else ''}")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in [*obs_keys, "action"]}
        for name in names:
            demo = f["data"][name]
            if "actions" not in demo:
                raise UserError(f"'{path}' data/{name} has no 'actions' (it has {sorted(demo)})")
            actions = np.asarray(demo["actions"])
            have = sorted(demo["obs"]) if "obs" in demo else []
            for key in obs_keys:
                if key not in have:
                    raise UserError(
                        f"'{path}' data/{name} lacks obs/{key} (it has {have or 'no obs group'}): "
                        "choose a task whose observation keys the file provides (or regenerate its observations)"
                    )
                arr = np.asarray(demo["obs"][key])
                if len(arr) != len(actions):
                    raise UserError(
                        f"'{path}' data/{name}: obs/{key} has {len(arr)} steps, actions {len(actions)}: the file is corrupt"
                    )
                parts[key].append(arr)
            parts["action"].append(actions)
    ends = np.cumsum([len(a) for a in parts["action"]]).astype(np.int64)
    return ReplayBuffer(data={k: np.concatenate(v) for k, v in parts.items()}, episode_ends=ends)


def read_demo(path: str | Path, index: int) -> dict[str, np.ndarray]:
    """One demo's raw arrays (``actions``, ``states``, ``rewards``, ``dones``, ``obs/<key>``, ``model_file``)."""
    with _open(Path(path)) as f:
        demo = f["data"][f"demo_{index}"]
        out = {k: np.asarray(demo[k]) for k in ("actions", "states", "rewards", "dones") if k in demo}
        if "model_file" in demo.attrs:
            out["model_file"] = np.array(demo.attrs["model_file"])
        out.update({f"obs/{k}": np.asarray(v) for k, v in demo["obs"].items()})
        return out


def write_robomimic_hdf5(
    path: str | Path,
    episodes: list[dict[str, np.ndarray]],
    env_args: dict[str, Any],
    valid_ratio: float = 0.1,
    obs_keys: list[str] | None = None,
    split_seed: int = 0,
) -> Path:
    """Write ``episodes`` (per-step arrays: the observation keys, ``action``, ``states``, optional ``rewards`` and
    ``dones``; each with an optional ``next_obs/<key>`` and ``model_file`` (MuJoCo XML, stored as the demo's
    attribute, as robomimic does)) in robomimic's layout.

    ``next_obs`` is the next step's observation; for the last step it is the observation after the last action
    when the episode carries it (``next_obs/<key>``), else the last observation repeated. ``dones`` defaults to 1 at
    the last step only. ``mask/train`` and ``mask/valid`` split the demos at random (``valid_ratio``, ``split_seed``),
    at least one demo in ``train``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reserved = {"action", "actions", "states", "rewards", "dones", "model_file"}
    if obs_keys is None:
        obs_keys = [k for k in episodes[0] if k not in reserved and not k.startswith("next_obs/")]
    names = [f"demo_{i}" for i in range(len(episodes))]
    total = 0
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for name, ep in zip(names, episodes):
            actions = np.asarray(ep["action"], dtype=np.float64)
            n = len(actions)
            g = data.create_group(name)
            g.attrs["num_samples"] = n
            if ep.get("model_file") is not None:
                g.attrs["model_file"] = str(np.asarray(ep["model_file"]))  # the episode's MuJoCo XML
            g.create_dataset("actions", data=actions)
            g.create_dataset("states", data=np.asarray(ep["states"], dtype=np.float64))
            g.create_dataset("rewards", data=np.asarray(ep.get("rewards", np.zeros(n)), dtype=np.float64))
            dones = ep.get("dones")
            g.create_dataset("dones", data=np.asarray(dones if dones is not None else np.arange(n) == n - 1, np.int64))
            obs, next_obs = g.create_group("obs"), g.create_group("next_obs")
            for key in obs_keys:
                arr = np.asarray(ep[key])
                last = np.asarray(ep.get(f"next_obs/{key}", arr[-1:]))[-1:]
                obs.create_dataset(key, data=arr)
                next_obs.create_dataset(key, data=np.concatenate([arr[1:], last]))
            total += n
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env_args)
        order = np.random.default_rng(split_seed).permutation(len(names))
        n_valid = min(int(round(valid_ratio * len(names))), len(names) - 1)
        valid = sorted((names[i] for i in order[:n_valid]), key=_demo_index)
        train = [n for n in names if n not in set(valid)]
        mask = f.create_group("mask")
        mask.create_dataset("train", data=np.array(train, dtype="S"))
        mask.create_dataset("valid", data=np.array(valid, dtype="S"))
    return path
