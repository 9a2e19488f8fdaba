"""Wiring reward modules into SB3 vector environments.

:class:`VecRewardWrapper` replaces the environment's reward with a reward module's score of the frame the
agent produced, and keep what the environment said in ``info`` (``env_reward``, and
the env's own ``is_success`` and ``progress`` untouched), so ground-truth return
and success are still logged next to the learned reward.

Frames: by default the reward model sees ``env.render()`` (the larger reward-model
view, ``render_mode="rgb_array"``), which :class:`FrameInInfo` puts into ``info``
inside the env process: with subprocess vector envs the frame travels back with the
step's results and is taken before an automatic reset, so the last step of an
episode is scored on its own frame. ``frames="observation"`` scores the
observation instead (then the terminal observation on the last step).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rewards.base import RewardModel

FRAME_KEY = "frame"
"""``info`` key :class:`FrameInInfo` stores the rendered frame under."""
FRAME_SOURCES = ("render", "observation")
SCORE_BATCH = 256
"""Frames per reward-module call when many steps are scored at once."""


def score_in_batches(reward: RewardModel, frames: np.ndarray | None, instructions: list[str],
                     env_rewards: np.ndarray) -> np.ndarray:
    """``reward`` over many steps (relabelling, rescoring, evaluation), ``SCORE_BATCH``
    frames a call: batched for speed, bounded for memory. ``frames`` may be None for a
    module that needs none (the ground truth)."""
    scores = np.empty(len(env_rewards), np.float32)
    for start in range(0, len(env_rewards), SCORE_BATCH):
        stop = min(start + SCORE_BATCH, len(env_rewards))
        scores[start:stop] = reward(None if frames is None else frames[start:stop],
                                    instructions[start:stop], env_rewards[start:stop])
    return scores


def _check_module(reward: RewardModel, frames: str) -> None:
    if not isinstance(reward, RewardModel):
        raise TypeError(f"reward must be a rewards.RewardModel, got {type(reward).__name__}")
    if reward.needs_trajectory:
        raise ValueError(
            f"the {reward.name!r} reward scores whole episodes, not steps; relabel "
            "collected episodes with reward.score_trajectory instead of wrapping the env"
        )
    if frames not in FRAME_SOURCES:
        raise ValueError(f"frames={frames!r} is not allowed; choose one of {list(FRAME_SOURCES)}")


class FrameInInfo(gym.Wrapper):
    """Adds ``env.render()`` to ``info[FRAME_KEY]`` at every reset and step."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(
                "FrameInInfo needs an env made with render_mode='rgb_array' "
                f"(got {env.render_mode!r})"
            )

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, FRAME_KEY: self.env.render()}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, FRAME_KEY: self.env.render()}


class VecRewardWrapper(VecEnvWrapper):
    """Scores all envs' frames in one batched call of ``reward`` at every step.

    Build the vector env with :class:`FrameInInfo` as ``wrapper_class`` (and
    ``env_kwargs={"render_mode": "rgb_array"}``) for ``frames="render"``. The
    env's reward goes to ``infos[i]["env_reward"]``.

    With ``keep_frames=True`` the last step's frames and env rewards stay readable
    as :attr:`last_frames` and :attr:`last_env_rewards` (the online preference loop
    cuts its query segments from them).
    """

    def __init__(self, venv: VecEnv, reward: RewardModel, frames: str = "render",
                 keep_frames: bool = False) -> None:
        _check_module(reward, frames)
        super().__init__(venv)
        self.reward_module = reward
        self.frames = frames
        self.keep_frames = keep_frames
        self.last_frames: np.ndarray | None = None
        self.last_env_rewards: np.ndarray | None = None

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        needs_frames = self.reward_module.needs_frames or self.keep_frames
        frames = self._frames(obs, dones, infos) if needs_frames else None
        if self.keep_frames:
            self.last_frames, self.last_env_rewards = frames, np.asarray(env_rewards, np.float32)
        instructions = [str(info.get("instruction", "")) for info in infos]
        rewards = self.reward_module(frames if self.reward_module.needs_frames else None,
                                     instructions, env_rewards)
        for info, env_reward in zip(infos, env_rewards):
            info["env_reward"] = float(env_reward)
        return obs, rewards, dones, infos

    def _frames(self, obs: Any, dones: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
        if self.frames == "render":
            if FRAME_KEY not in infos[0]:
                raise ValueError(
                    "frames='render' needs each env wrapped in agents.sb3.reward_wrappers.FrameInInfo "
                    "(make_vec_env(..., wrapper_class=FrameInInfo, "
                    "env_kwargs={'render_mode': 'rgb_array'}))"
                )
            # Drop the frames from info: they were only the transport.
            return np.stack([info.pop(FRAME_KEY) for info in infos])
        frames = np.array(obs, copy=True)
        for i, done in enumerate(dones):
            if done and "terminal_observation" in infos[i]:
                frames[i] = infos[i]["terminal_observation"]
        return frames
