import numpy as np

from fmpolicy.config import compose
from fmpolicy.data.replay_buffer import read_replay_buffer
from fmpolicy.envs import make_env
from fmpolicy.envs.pusht import PushTKeypointEnv


def test_replaying_real_demonstrations_reproduces_recorded_states(real_zarr):
    """Env and data agree: every episode, from its recorded start, tracks the recording to < 1 px."""
    buf = read_replay_buffer(real_zarr, ["action", "state", "keypoint"])
    env = PushTKeypointEnv()
    worst_state, worst_keypoint = 0.0, 0.0
    for ep in range(buf.n_episodes):
        e = buf.episode(ep)
        obs, _ = env.reset(options={"reset_to_state": e["state"][0]})
        worst_keypoint = max(worst_keypoint, np.abs(obs["keypoint"] - e["keypoint"][0]).max())
        for i in range(len(e["action"]) - 1):
            obs, *_ = env.step(e["action"][i])
            worst_state = max(worst_state, np.abs(obs["state"][:4] - e["state"][i + 1, :4]).max())
    assert worst_state < 1.0
    assert worst_keypoint < 3.0  # the keypoint layout is the dataset's 9-point one


def test_gym_pusht_reset_order_would_not_reproduce(real_zarr):
    """Guards the reason for our reset: gym-pusht's own order moves some blocks far."""
    from gym_pusht.envs.pusht import PushTEnv

    buf = read_replay_buffer(real_zarr, ["state"])
    env = PushTEnv(obs_type="state")
    starts = buf.data["state"][buf.episode_starts]
    errors = []
    for s in starts[:40]:
        obs, _ = env.reset(options={"reset_to_state": s})
        errors.append(np.abs(obs[2:4] - s[2:4]).max())
    assert max(errors) > 10.0


def test_chunk_wrapper_history_and_limits():
    env = make_env(compose({"task": "pusht_lowdim"})["task"], n_obs_steps=2, n_action_steps=8, max_episode_steps=20)
    obs, _ = env.reset(seed=3)
    assert obs["keypoint"].shape == (2, 9, 2) and obs["agent_pos"].shape == (2, 2)
    assert np.array_equal(obs["agent_pos"][0], obs["agent_pos"][1])  # first observation repeated
    target = obs["agent_pos"][-1] + 20.0
    obs, reward, terminated, truncated, info = env.step(np.repeat(target[None], 8, 0))
    assert info["env_steps"] == 8 and not truncated
    assert not np.array_equal(obs["agent_pos"][0], obs["agent_pos"][1])
    assert 0.0 <= reward <= 1.0 and 0.0 <= info["max_coverage"] <= 1.0
    assert info["score"] == min(1.0, info["max_coverage"] / 0.95) and info["success"] == (info["max_coverage"] > 0.95)
    env.step(np.repeat(target[None], 8, 0))
    *_, truncated, info = env.step(np.repeat(target[None], 8, 0))
    assert truncated and info["env_steps"] == 20
