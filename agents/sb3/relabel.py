"""Rewards that need whole episodes (RAPL's optimal transport) inside PPO.

PPO computes advantages from the rollout buffer's rewards at the end of each rollout,
before any callback runs, so an episode-level reward has to be written into the
buffer first. :class:`VecFrameRecorder` keeps every step's frame while the rollout is
collected (passing the env's reward through as a placeholder), and
:class:`RelabelRolloutBuffer` asks it for the learned rewards just before
``compute_returns_and_advantage``.

Each episode is scored whole when it ends inside the rollout, frames from before the
rollout included (the recorder carries an unfinished episode over). An episode still
running when the rollout ends is scored on its frames so far; with fixed-length
episodes and ``n_steps`` a multiple of the episode length (the shipped RAPL
configs), every episode is scored whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from agents.sb3.reward_wrappers import FRAME_KEY, FRAME_SOURCES
from rewards.base import RewardModel


class VecFrameRecorder(VecEnvWrapper):
    """Records each step's frame, env reward, done and instruction per env; rewards
    pass through unchanged until :meth:`relabel` replaces them in the buffer."""

    def __init__(self, venv: VecEnv, frames: str = "render") -> None:
        if frames not in FRAME_SOURCES:
            raise ValueError(f"frames={frames!r} is not allowed; choose one of {list(FRAME_SOURCES)}")
        super().__init__(venv)
        self.frames = frames
        self._carried: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]
        self._steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]] = []
        self.last_rewards: np.ndarray | None = None
        """float32 (n_steps, n_envs): the learned rewards of the last relabelled rollout."""

    def reset(self) -> Any:
        self._carried = [[] for _ in range(self.num_envs)]
        self._steps = []
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        if self.frames == "render":
            if FRAME_KEY not in infos[0]:
                raise ValueError("frames='render' needs each env wrapped in FrameInInfo")
            frames = np.stack([info.pop(FRAME_KEY) for info in infos])
        else:
            frames = np.array(obs, copy=True)
            for i, done in enumerate(dones):
                if done and "terminal_observation" in infos[i]:
                    frames[i] = infos[i]["terminal_observation"]
        instructions = [str(info.get("instruction", "")) for info in infos]
        env_rewards = np.asarray(env_rewards, np.float32)
        self._steps.append((frames, env_rewards, np.asarray(dones, bool), instructions))
        for info, env_reward in zip(infos, env_rewards):
            info["env_reward"] = float(env_reward)
        return obs, env_rewards, dones, infos

    def relabel(self, reward: RewardModel) -> tuple[np.ndarray, np.ndarray]:
        """Scores the steps recorded since the last call; returns the learned rewards
        and the env rewards, each float32 (n_steps, n_envs), and forgets the steps."""
        steps, self._steps = self._steps, []
        if not steps:
            raise RuntimeError("no steps recorded since the last relabel")
        frames = np.stack([s[0] for s in steps])  # (n, E, H, W, 3)
        env_rewards = np.stack([s[1] for s in steps])
        dones = np.stack([s[2] for s in steps])
        learned = np.zeros_like(env_rewards)
        for env in range(self.num_envs):
            episode = self._carried[env]
            first = 0  # rollout step where the current episode's in-rollout part starts
            for t in range(len(steps)):
                episode.append(frames[t, env])
                if dones[t, env] or t == len(steps) - 1:
                    scored = reward.score_trajectory(np.stack(episode), steps[t][3][env])
                    learned[first:t + 1, env] = scored[len(episode) - (t + 1 - first):]
                    first = t + 1
                    if dones[t, env]:
                        episode = []
            self._carried[env] = episode
        self.last_rewards = learned
        return learned, env_rewards


class RelabelRolloutBuffer(RolloutBuffer):
    """A rollout buffer that swaps in episode-level learned rewards before computing
    returns and advantages. ``relabel()`` returns (learned, env) rewards, each
    (n_steps, n_envs); the buffer's rewards, which hold the env's reward plus SB3's
    bootstrap term on truncated steps, become ``buffer - env + learned``."""

    def __init__(self, *args: Any, relabel: Callable[[], tuple[np.ndarray, np.ndarray]],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.relabel = relabel

    def compute_returns_and_advantage(self, last_values: Any, dones: np.ndarray) -> None:
        learned, env_rewards = self.relabel()
        if learned.shape != self.rewards.shape:
            raise RuntimeError(f"relabelled {learned.shape} rewards for a buffer of "
                               f"{self.rewards.shape}")
        self.rewards += learned - env_rewards
        super().compute_returns_and_advantage(last_values=last_values, dones=dones)
