"""The vector environment a config trains and evaluates on.

Layers, inside out: ``gym.make(env, **env_kwargs)`` -> SB3 ``Monitor`` (episode
return and length of the env's own reward: the ground truth) -> :class:`FrameInInfo`
(when the reward module or the preference loop needs the rendered frame) ->
``DummyVecEnv`` or ``SubprocVecEnv`` -> the reward layer -> ``VecFrameStack``
(``frame_stack`` > 1). SB3 adds ``VecTransposeImage`` for the CNN policy.

The reward layer is :class:`~agents.reward_wrappers.VecRewardWrapper` for modules that
score single steps, or :class:`~agents.relabel.VecFrameRecorder` for modules that
score whole episodes (RAPL): those are relabelled in the rollout buffer.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecFrameStack

import envs  # noqa: F401  (registers the ids)
from agents.config import TrainConfig
from agents.relabel import VecFrameRecorder
from agents.reward_wrappers import FrameInInfo, VecRewardWrapper
from rewards.base import RewardModel


def needs_rendered_frames(config: TrainConfig, reward: RewardModel) -> bool:
    """Whether the envs must render the reward-model view each step."""
    if config.reward_frames != "render":
        return False
    return reward.needs_frames or reward.needs_trajectory or config.preference is not None


def make_env_kwargs(config: TrainConfig, render: bool) -> dict[str, Any]:
    kwargs = dict(config.env_kwargs)
    if render:
        kwargs["render_mode"] = "rgb_array"
    return kwargs


def check_env_and_reward(config: TrainConfig, reward: RewardModel,
                         render: bool) -> tuple[int, ...]:
    """Makes one env and scores its first frame with ``reward``, so that a bad env
    kwarg (the env's own message lists the valid ones) or a reward module that cannot
    score these frames (RAPL without demonstrations, a frame size a checkpoint was
    not made for) stops the run at start-up rather than at its first step. Returns
    the shape of the frames the reward sees."""
    import numpy as np

    env = gym.make(config.env, **make_env_kwargs(config, render))
    try:
        obs, info = env.reset(seed=config.seed)
        frame = env.render() if render else obs
        instruction = str(info.get("instruction", ""))
        try:
            if reward.needs_trajectory:
                reward.score_trajectory(np.stack([frame, frame]), instruction,
                                        np.zeros(2, np.float32))
            else:
                reward(frame[None] if reward.needs_frames else None, [instruction],
                       np.zeros(1, np.float32))
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"the {reward.name!r} reward cannot score {config.env}'s frames: "
                             f"{error}") from error
        return tuple(np.shape(frame))
    finally:
        env.close()


def make_training_env(config: TrainConfig, reward: RewardModel, n_envs: int, seed: int,
                      vec_env: str | None = None) -> tuple[VecEnv, VecRewardWrapper | VecFrameRecorder]:
    """The wrapped vector env, and its reward layer (which holds each step's frames)."""
    render = needs_rendered_frames(config, reward)
    kind = vec_env or config.vec_env
    venv = make_vec_env(
        config.env,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=make_env_kwargs(config, render),
        wrapper_class=FrameInInfo if render else None,
        vec_env_cls=SubprocVecEnv if kind == "subproc" and n_envs > 1 else DummyVecEnv,
    )
    frames = "render" if render else "observation"
    if reward.needs_trajectory:
        layer: VecRewardWrapper | VecFrameRecorder = VecFrameRecorder(venv, frames=frames)
    else:
        layer = VecRewardWrapper(venv, reward, frames=frames, keep_frames=config.preference is not None)
    wrapped: VecEnv = layer
    if config.frame_stack > 1:
        wrapped = VecFrameStack(wrapped, config.frame_stack)
    return wrapped, layer
