"""The reward wrapper of SB3 vector envs, with modules swapped by name."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

import envs  # noqa: F401
import rewards
from agents.sb3.reward_wrappers import FrameInInfo, VecRewardWrapper
from rewards.base import RewardModel


class MeanRed(RewardModel):
    """Test module: the mean red value of each frame, and what it was called with."""

    name = "mean_red"

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[str]]] = []

    def _score(self, frames, instructions, env_rewards):
        self.calls.append((len(frames), list(instructions)))
        return frames[..., 0].reshape(len(frames), -1).mean(axis=1) / 255.0


def make_venv(n_envs: int = 3, **env_kwargs):
    return make_vec_env("vmalign/Push-v0", n_envs=n_envs, seed=0, wrapper_class=FrameInInfo,
                        env_kwargs={"render_mode": "rgb_array", "render_size": 32, **env_kwargs})


def test_ground_truth_wrapper_keeps_the_env_reward():
    venv = VecRewardWrapper(make_vec_env("vmalign/Reach-v0", n_envs=1, seed=0),
                            rewards.make("ground_truth", scale=2.0), frames="observation")
    plain = gym.make("vmalign/Reach-v0")
    venv.reset()
    plain.reset(seed=0)
    for _ in range(5):
        action = np.array([0.3, -0.2, 0.1, 0.0], np.float32)
        _, reward, _, infos = venv.step(action[None])
        _, env_reward, _, _, plain_info = plain.step(action)
        assert reward[0] == pytest.approx(2.0 * env_reward)
        assert infos[0]["env_reward"] == pytest.approx(env_reward)
        assert infos[0]["is_success"] == plain_info["is_success"]
    venv.close()


def test_each_env_is_scored_on_its_rendered_frame():
    module = MeanRed()
    env = FrameInInfo(gym.make("vmalign/Push-v0", render_mode="rgb_array", render_size=48))
    venv = VecRewardWrapper(DummyVecEnv([lambda: env]), module)
    venv.reset()
    _, reward, _, infos = venv.step(np.zeros((1, 4), np.float32))
    frame = env.render()
    assert reward[0] == pytest.approx(frame[..., 0].mean() / 255.0, rel=1e-5)
    assert module.calls == [(1, [infos[0]["instruction"]])]
    venv.close()


def test_vec_wrapper_scores_all_envs_in_one_call_and_keeps_env_info():
    module = MeanRed()
    venv = VecRewardWrapper(make_venv(), module)
    venv.reset()
    actions = np.zeros((3, 4), np.float32)
    obs, rewards_, dones, infos = venv.step(actions)
    assert module.calls and module.calls[-1][0] == 3, "one batched call for all envs"
    assert rewards_.dtype == np.float32 and rewards_.shape == (3,)
    for info in infos:
        assert "env_reward" in info and "is_success" in info and "frame" not in info
    venv.close()


@pytest.mark.parametrize("name, kwargs", [
    ("ground_truth", {}),
    ("preference", {"image_size": 32, "ensemble_size": 2}),
    ("clip", {"model_config": "TINY", "pretrained": None}),
])
def test_one_vec_env_swapped_between_reward_modules_with_no_other_change(name, kwargs):
    # The same construction code for every module: only the name and its options differ.
    if kwargs.get("model_config") == "TINY":
        from rewards.clip import TINY_MODEL_CONFIG

        kwargs = {**kwargs, "model_config": TINY_MODEL_CONFIG}
    venv = VecRewardWrapper(make_venv(2), rewards.make(name, **kwargs))
    venv.reset()
    _, reward, _, infos = venv.step(np.zeros((2, 4), np.float32))
    assert reward.shape == (2,) and reward.dtype == np.float32 and np.all(np.isfinite(reward))
    env_rewards = [info["env_reward"] for info in infos]
    if name == "ground_truth":
        assert np.allclose(reward, env_rewards)
    else:
        assert not np.allclose(reward, env_rewards)  # the module's score, not the env's
    venv.close()


def test_last_step_of_an_episode_is_scored_on_its_own_frame():
    module = MeanRed()
    venv = VecRewardWrapper(
        make_vec_env("vmalign/Reach-v0", n_envs=1, seed=0, wrapper_class=FrameInInfo,
                     env_kwargs={"render_mode": "rgb_array", "render_size": 32}),
        module, frames="observation",
    )
    venv.reset()
    for _ in range(50):  # Reach truncates after 50 steps
        obs, reward, dones, infos = venv.step(np.ones((1, 4), np.float32))
    assert dones[0]
    terminal = infos[0]["terminal_observation"]
    assert reward[0] == pytest.approx(terminal[..., 0].mean() / 255.0, rel=1e-5)
    assert not np.array_equal(terminal, obs[0])
    venv.close()


def test_bad_wiring_gives_clear_errors():
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        FrameInInfo(gym.make("vmalign/Reach-v0"))
    with pytest.raises(ValueError, match="frames="):
        VecRewardWrapper(make_vec_env("vmalign/Reach-v0", n_envs=1), MeanRed(), frames="x")
    venv = VecRewardWrapper(make_vec_env("vmalign/Reach-v0", n_envs=1), MeanRed())
    venv.reset()
    with pytest.raises(ValueError, match="FrameInInfo"):
        venv.step(np.zeros((1, 4), np.float32))
    venv.close()
