import numpy as np
import pytest
import torch
import zarr

from fmpolicy.data.replay_buffer import read_replay_buffer, write_replay_buffer
from fmpolicy.data.tasks import load_task_data
from fmpolicy.data.windows import WindowDataset, split_episodes
from fmpolicy.errors import UserError
from fmpolicy.policy.normalizer import MinMaxNormalizer
from tests.conftest import tiny_config


def test_real_zarr_shapes_and_episode_boundaries(real_zarr):
    buf = read_replay_buffer(real_zarr, ["action", "state", "keypoint", "n_contacts"])
    assert buf.n_episodes == 206 and buf.n_steps == 25650
    assert buf.data["action"].shape == (25650, 2)
    assert buf.data["state"].shape == (25650, 5)
    assert buf.data["keypoint"].shape == (25650, 9, 2)
    assert buf.episode_starts[0] == 0 and buf.episode_ends[0] == 161
    assert np.all(buf.episode_starts[1:] == buf.episode_ends[:-1])
    # Episodes really are separate demonstrations: the agent jumps between them.
    jumps = np.linalg.norm(
        buf.data["state"][buf.episode_starts[1:], :2] - buf.data["state"][buf.episode_ends[:-1] - 1, :2], axis=1
    )
    inside = np.linalg.norm(np.diff(buf.data["state"][:161, :2], axis=0), axis=1)
    assert np.median(jumps) > 5 * np.median(inside)


def _toy_buffer(lengths):
    episodes = [
        {"action": np.arange(n, dtype=np.float32)[:, None] + 100 * i, "state": np.zeros((n, 5))}
        for i, n in enumerate(lengths)
    ]
    return episodes


def test_padding_at_both_ends(tmp_path):
    write_replay_buffer(tmp_path / "toy.zarr", _toy_buffer([10, 6]))
    buf = read_replay_buffer(tmp_path / "toy.zarr", ["action", "state"])
    assert list(buf.episode_ends) == [10, 16]
    act = buf.data["action"]
    ds = WindowDataset(buf, {"a": act}, act, np.array([0, 1]), horizon=4, n_obs_steps=2, n_action_steps=3)
    # Episode of 10: starts -1 .. 10 - 4 + 2 = 8 -> 10 windows; episode of 6: -1 .. 4 -> 6 windows.
    assert len(ds) == 16
    obs, action = ds.get_batch(np.array([0, 9, 10, 15]))
    assert action[0, :, 0].tolist() == [0, 0, 1, 2]  # start padded by repeating the first step
    assert obs["a"][0, :, 0].tolist() == [0, 0]
    assert action[1, :, 0].tolist() == [8, 9, 9, 9]  # end padded by repeating the last step
    assert action[2, :, 0].tolist() == [100, 100, 101, 102]  # never crosses into the previous episode
    assert action[3, :, 0].tolist() == [104, 105, 105, 105]


def test_split_is_by_episode_and_disjoint():
    train, val = split_episodes(206, 0.05, seed=42)
    assert len(val) == 10 and len(train) == 196
    assert not set(train) & set(val)
    assert np.array_equal(split_episodes(206, 0.05, 42)[1], val)


def test_normalizer_round_trip_and_range():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)) * [1, 100, 0] + [0, 5, 7]  # third column constant
    norm = MinMaxNormalizer(3).fit(x)
    t = torch.as_tensor(x, dtype=torch.float32)
    y = norm.normalize(t)
    assert y[:, :2].min().item() == pytest.approx(-1, abs=1e-5) and y[:, :2].max().item() == pytest.approx(1, abs=1e-5)
    assert torch.all(y[:, 2] == 0)
    assert torch.allclose(norm.unnormalize(y), t, atol=1e-4)
    state = norm.state_dict()
    other = MinMaxNormalizer(3)
    other.load_state_dict(state)
    assert torch.equal(other.normalize(t), y)


def test_task_data_uses_keypoints_and_agent_position(real_zarr, tmp_path):
    data = load_task_data(tiny_config(tmp_path, real_zarr))
    assert data.obs["keypoint"].shape == (25650, 9, 2) and data.obs["agent_pos"].shape == (25650, 2)
    raw = zarr.open(str(real_zarr), "r")
    assert np.array_equal(data.obs["keypoint"][5], raw["data/keypoint"][5])
    assert np.array_equal(data.obs["agent_pos"][5], raw["data/state"][5, :2])


def test_missing_dataset_and_missing_arrays(tmp_path):
    with pytest.raises(UserError, match="dataset not found.*dataset.path"):
        read_replay_buffer(tmp_path / "nope.zarr", ["action"])
    write_replay_buffer(tmp_path / "toy.zarr", _toy_buffer([5]))
    with pytest.raises(UserError, match="lacks data/keypoint"):
        read_replay_buffer(tmp_path / "toy.zarr", ["action", "keypoint"])
