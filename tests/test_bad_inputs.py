"""Bad datasets, paths, checkpoints and devices: one ``error:`` line naming the fix, exit status 2, no traceback.

(Bad override values have their own table in ``test_config_values.py``.)
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import zarr

from fmpolicy.cli import main
from fmpolicy.data.replay_buffer import write_replay_buffer

TRAIN = ["train", "task=pusht_lowdim", "train.steps=1", "policy.down_dims=[16,32]", "policy.n_groups=4"]


def _episode(n: int = 30, action_cols: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {
        "action": rng.uniform(0, 500, (n, action_cols)),
        "state": rng.uniform(0, 500, (n, 5)),
        "keypoint": rng.uniform(0, 500, (n, 9, 2)),
    }


def _zarr(tmp, episodes=None, **replace):
    """A Push-T-layout zarr; ``replace`` swaps raw arrays (``episode_ends`` included) after writing."""
    path = tmp / "d.zarr"
    write_replay_buffer(path, episodes or [_episode(30), _episode(40)])
    root = zarr.open_group(str(path), mode="r+")
    for key, value in replace.items():
        group = root["meta"] if key == "episode_ends" else root["data"]
        del group[key]
        group.array(key, value)
    return [*TRAIN, f"dataset.path={path}", f"out={tmp}/run"]


def _nan(tmp):
    ep = _episode()
    ep["action"][5, 0] = np.nan
    return _zarr(tmp, [ep, _episode(40)])


def _inf_obs(tmp):
    ep = _episode()
    ep["keypoint"][3, 2, 1] = np.inf
    return _zarr(tmp, [ep, _episode(40)])


def _ckpt(tmp, tiny_run, *extra):
    _, result = tiny_run
    return ["eval", f"checkpoint={result.checkpoint}", *extra, f"out={tmp}/e"]


def _nan_weights(tmp, tiny_run):
    _, result = tiny_run
    payload = torch.load(result.checkpoint, weights_only=False)
    key = next(k for k, v in payload["ema_model"].items() if v.is_floating_point() and v.numel() > 1)
    payload["ema_model"][key][0] = float("nan")
    torch.save(payload, tmp / "nan.pt")
    return ["eval", f"checkpoint={tmp}/nan.pt", f"out={tmp}/e"]


def _damaged_last(tmp, tiny_run):
    (tmp / "run" / "checkpoints").mkdir(parents=True)
    (tmp / "run" / "checkpoints" / "last.pt").write_bytes(b"\x00" * 100)
    return [*TRAIN, f"out={tmp}/run"]


def _other_architecture(tmp, tiny_run):
    cfg, result = tiny_run
    (tmp / "run" / "checkpoints").mkdir(parents=True)
    (tmp / "run" / "checkpoints" / "last.pt").write_bytes(result.checkpoint.read_bytes())
    return [*TRAIN[:3], "policy.down_dims=[32,64]", "policy.n_groups=4", f"out={tmp}/run"]


def _missing_source(tmp, tiny_run):
    _, result = tiny_run
    payload = torch.load(result.checkpoint, weights_only=False)
    payload["config"]["method"].update(kind="ft_mle", name="ft_mle")
    payload["source_checkpoint"] = str(tmp / "gone" / "last.pt")
    torch.save(payload, tmp / "ft.pt")
    return ["diagnose", f"checkpoint={tmp}/ft.pt", "diagnose.windows=4", f"out={tmp}/d"]


def _minari_without_key(tmp):
    with h5py.File(tmp / "main_data.hdf5", "w") as f:
        g = f.create_group("episode_0")
        g.create_group("observations").create_dataset("achieved_goal", data=np.zeros((11, 3)))
        g.create_dataset("actions", data=np.zeros((10, 9)))
    return ["train", "task=kitchen_lowdim", "dataset.format=minari", f"dataset.path={tmp}", f"out={tmp}/r"]


def _not_hdf5(tmp):
    (tmp / "main_data.hdf5").write_text("hello")
    return ["train", "task=kitchen_lowdim", "dataset.format=minari", f"dataset.path={tmp}", f"out={tmp}/r"]


def _out_is_file(tmp):
    (tmp / "f.txt").write_text("x")
    return [*TRAIN, f"out={tmp}/f.txt"]


# (name, argv builder taking tmp_path [and tiny_run], substrings of the error)
CASES = [
    # datasets
    ("nan action", _nan, ["'action' holds NaN or inf at 1 steps"]),
    ("inf observation", _inf_obs, ["'keypoint' holds NaN or inf"]),
    ("3-column action", lambda t: _zarr(t, [_episode(30, 3)]), ["'action' has shape (3,)", "expects (2,)"]),
    (
        "keypoints not (9, 2)",
        lambda t: _zarr(t, keypoint=np.zeros((70, 8, 2))),
        ["'keypoint' has shape (8, 2)", "expects (9, 2)"],
    ),
    ("string actions", lambda t: _zarr(t, action=np.array(["a"] * 70)), ["dtype <U1, not numeric"]),
    ("bool states", lambda t: _zarr(t, state=np.zeros((70, 5), bool)), ["'agent_pos' has dtype bool"]),
    ("ends decreasing", lambda t: _zarr(t, episode_ends=np.array([40, 30, 70])), ["strictly increasing"]),
    ("ends negative", lambda t: _zarr(t, episode_ends=np.array([-5, 70])), ["strictly increasing"]),
    (
        "ends float",
        lambda t: _zarr(t, episode_ends=np.array([30.5, 70.0])),
        ["episode_ends must be a 1-D array of integers"],
    ),
    ("ends past the data", lambda t: _zarr(t, episode_ends=np.array([30, 90])), ["is corrupt", "episode_ends says 90"]),
    ("ends short of the data", lambda t: _zarr(t, episode_ends=np.array([30, 60])), ["is corrupt"]),
    ("empty dataset", lambda t: _zarr(t, episode_ends=np.zeros(0, np.int64)), ["is empty"]),
    ("all episodes too short", lambda t: _zarr(t, [_episode(5), _episode(6)]), ["shorter than the 8 steps"]),
    ("not a zarr", lambda t: [*TRAIN, f"dataset.path={t}", f"out={t}/r"], ["is not a replay-buffer zarr"]),
    ("missing dataset", lambda t: [*TRAIN, f"dataset.path={t}/none.zarr", f"out={t}/r"], ["dataset not found"]),
    ("unknown builtin", lambda t: [*TRAIN, "dataset.path=builtin:nope.zip", f"out={t}/r"], ["no built-in dataset"]),
    ("unknown format", lambda t: [*TRAIN, "dataset.format=csv", f"out={t}/r"], ["dataset.format 'csv' unknown"]),
    (
        "unknown vector env",
        lambda t: [*TRAIN, "eval.vector_env=threads", f"out={t}/r"],
        ["eval.vector_env=threads: must be one of sync, async"],
    ),
    (
        "bad obs source",
        lambda t: [*TRAIN, "dataset.obs_sources={agent_pos: 'state[0:x]'}", f"out={t}/r"],
        ["not ARRAY"],
    ),
    ("minari without the key", _minari_without_key, ["lacks observations/observation"]),
    ("minari not hdf5", _not_hdf5, ["not a readable Minari HDF5 file"]),
    # paths
    ("out is a file", _out_is_file, ["is a file: pass a folder"]),
    ("train with a fine-tuning method", lambda t: [*TRAIN, "method=ft_mle", f"out={t}/r"], ["run 'fmpolicy finetune"]),
    ("demos without a task", lambda t: ["demos", "episodes=1", f"out={t}/d.zarr"], ["no task given"]),
    (
        "expert without DART noise",
        lambda t: ["demos", "task=pusht_lowdim", "episodes=1", "action_noise=0.1", f"out={t}/d.zarr"],
        ["suite 'pusht' does not take demos.action_noise"],
    ),
    ("pipeline unknown source", lambda t: ["pipeline", "source=teacher", f"out={t}/p"], ["source 'teacher' unknown"]),
    # checkpoints and run folders
    ("checkpoint missing", lambda t: ["eval", f"checkpoint={t}/none.pt"], ["checkpoint not found"]),
    (
        "checkpoint corrupt",
        lambda t: (t / "c.pt").write_bytes(b"junk") and ["eval", f"checkpoint={t}/c.pt"],
        ["corrupt"],
    ),
    ("checkpoint of another task", lambda t, r: _ckpt(t, r, "task=kitchen_lowdim"), ["task.shape_meta differs"]),
    ("checkpoint of another size", lambda t, r: _ckpt(t, r, "policy.down_dims=[32,64]"), ["does not fit the config"]),
    ("checkpoint with NaN weights", _nan_weights, ["hold NaN or inf"]),
    ("damaged last.pt in the run folder", _damaged_last, ["corrupt or not a checkpoint"]),
    ("run folder of another architecture", _other_architecture, ["holds a checkpoint of another architecture"]),
    ("source checkpoint gone", _missing_source, ["is gone"]),
    # devices
    ("device mps", lambda t, r: _ckpt(t, r, "device=mps"), ["torch has no mps device here", "device=cpu"]),
    ("device gpu0", lambda t, r: _ckpt(t, r, "device=gpu0"), ["is not a torch device"]),
    ("device cuda:7", lambda t, r: _ckpt(t, r, "device=cuda:7"), ["device=cpu"]),
    ("device xpu", lambda t, r: _ckpt(t, r, "device=xpu"), ["torch has no xpu device here"]),
]


@pytest.mark.parametrize("name,build,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(name, build, expected, tmp_path, tiny_run, capsys):
    argv = build(tmp_path, tiny_run) if build.__code__.co_argcount == 2 else build(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0]


def test_relative_checkpoint_one_folder_deep_works(tmp_path, tiny_run, monkeypatch):
    _, result = tiny_run
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "x.pt").write_bytes(result.checkpoint.read_bytes())
    monkeypatch.chdir(tmp_path)
    argv = ["eval", "checkpoint=ck/x.pt", "eval.episodes=1", "eval.max_episode_steps=8", "eval.videos=0"]
    assert main(argv) == 0
    assert (tmp_path / "ck" / "eval" / "metrics.json").exists()


def test_short_episodes_are_dropped_with_a_note(tmp_path, capsys):
    argv = _zarr(tmp_path, [_episode(40), _episode(2), _episode(40)])
    assert main([*argv, "dataset.val_ratio=0", "train.batch_size=8"]) == 0
    assert "1 episode(s) shorter than 8 steps are left out: [1]" in capsys.readouterr().out


def test_paths_stored_in_checkpoints_resolve_from_any_folder(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    _zarr(tmp_path / "a")  # writes a/d.zarr
    argv = [*TRAIN, "dataset.path=d.zarr", "dataset.val_ratio=0.5", "train.batch_size=8", "out=run"]
    assert main(argv) == 0
    monkeypatch.chdir(tmp_path / "b")  # the relative dataset path and checkpoint source must still resolve
    ft = ["finetune", "checkpoint=../a/run", "method=ft_mle", "train.steps=1", "train.batch_size=8"]
    assert main([*ft, "method.inverse_nfe=4", "train.val_batches=1", "out=ft"]) == 0
    diag = ["diagnose", "checkpoint=ft", "diagnose.windows=4", "diagnose.inverse_nfe=4", "diagnose.nfes=[1]"]
    assert main([*diag, "diagnose.certificate_samples=1", "diagnose.certificate_points=1", "out=d"]) == 0
