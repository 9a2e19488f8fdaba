"""The vector environment a config trains and evaluates on.

Layers, inside out: ``gym.make(env, **env_kwargs)`` -> SB3 ``Monitor`` (episode
return and length of the env's own reward: the ground truth) -> :class:`FrameInInfo`
(when the reward module or the preference loop needs the rendered frame) ->
``DummyVecEnv`` or ``SubprocVecEnv`` -> the reward layer -> the observation layers
(:func:`observation_layers`: ``frozen_encoder`` features, then ``VecFrameStack`` when
``frame_stack`` > 1). SB3 adds ``VecTransposeImage`` for the CNN policy.

The reward layer is :class:`~agents.sb3.reward_wrappers.VecRewardWrapper` for modules that
score single steps, or :class:`~agents.sb3.relabel.VecFrameRecorder` for modules that
score whole episodes (RAPL): those are relabelled in the rollout buffer. The VLA
PPO trainer (:mod:`agents.vla.ppo`) uses the same env.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecFrameStack

import envs  # noqa: F401  (registers the ids)
from agents.runs import needs_rendered_frames
from agents.sb3.frozen_features import VecFrozenFeatures
from agents.sb3.relabel import VecFrameRecorder
from agents.sb3.reward_wrappers import FrameInInfo, VecRewardWrapper
from rewards.base import RewardModel


def make_training_env(env_id: str, env_kwargs: dict[str, Any], reward: RewardModel, n_envs: int,
                      seed: int, reward_frames: str = "render", vec_env: str = "dummy",
                      frame_stack: int = 1, keep_frames: bool = False,
                      frozen_encoder: str | None = None,
                      ) -> tuple[VecEnv, VecRewardWrapper | VecFrameRecorder]:
    """The wrapped vector env, and its reward layer (which holds each step's frames).

    :param reward_frames: what the reward scores: ``render`` (the reward-model view)
        or ``observation``.
    :param keep_frames: keep each step's frames readable on the reward layer (the
        online preference loop cuts its queries from them).
    """
    render = needs_rendered_frames(reward_frames, reward, keep_frames)
    venv = make_vec_env(
        env_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs={**env_kwargs, **({"render_mode": "rgb_array"} if render else {})},
        wrapper_class=FrameInInfo if render else None,
        vec_env_cls=SubprocVecEnv if vec_env == "subproc" and n_envs > 1 else DummyVecEnv,
    )
    frames = "render" if render else "observation"
    if reward.needs_trajectory:
        layer: VecRewardWrapper | VecFrameRecorder = VecFrameRecorder(venv, frames=frames)
    else:
        layer = VecRewardWrapper(venv, reward, frames=frames, keep_frames=keep_frames)
    return observation_layers(layer, frozen_encoder, frame_stack), layer


def observation_layers(venv: VecEnv, frozen_encoder: str | None, frame_stack: int) -> VecEnv:
    """What the policy reads, as training and evaluation both build it: a frozen
    encoder's features (:mod:`agents.sb3.frozen_features`), then stacked steps."""
    if frozen_encoder is not None:
        venv = VecFrozenFeatures(venv, frozen_encoder)
    if frame_stack > 1:
        venv = VecFrameStack(venv, frame_stack)
    return venv
