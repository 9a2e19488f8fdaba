"""What a training run logs and keeps: metrics, checkpoints, a progress bar.

Logged per rollout (CSV, TensorBoard):

- ``rollout/gt_return``, ``rollout/success_rate``: mean ground-truth return (the
  env's own reward) and success of the episodes that ended in the last 100;
- ``rollout/learned_return``: the mean return under the reward module PPO trains on;
- ``rollout/reward_progress_spearman``: Spearman correlation, over the rollout's
  steps, of that reward with ``info["progress"]`` (where the env reports progress);
- ``time/fps`` and ``time/total_timesteps`` (stable-baselines3's own).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from agents.metrics import reward_progress_spearman


class EpisodeMetrics(BaseCallback):
    """Ground-truth and learned returns, success, and reward-progress correlation.

    :param relabelled: for episode-level rewards, returns the last rollout's learned
        rewards (n_steps, n_envs) once the buffer was relabelled; None otherwise.
    :param window: episodes averaged in the logged means (SB3's 100).
    :param raw_rewards: returns the last step's rewards before reward normalisation
        (``VecNormalize.get_original_reward``); None when the learner sees them unscaled.
    :param correlation_steps: steps the reward-progress correlation is computed over;
        0: each rollout's (PPO). SAC's "rollouts" are a step or a few, too few to
        correlate, so its steps are pooled until there are this many.
    """

    def __init__(self, relabelled: Callable[[], np.ndarray | None] | None = None,
                 window: int = 100,
                 raw_rewards: Callable[[], np.ndarray] | None = None,
                 correlation_steps: int = 0) -> None:
        super().__init__()
        self.relabelled = relabelled
        self.raw_rewards = raw_rewards
        self.correlation_steps = correlation_steps
        self.gt_returns: deque[float] = deque(maxlen=window)
        self.learned_returns: deque[float] = deque(maxlen=window)
        self.successes: deque[float] = deque(maxlen=window)
        self._rewards: list[np.ndarray] = []
        self._progress: list[np.ndarray] = []
        self._dones: list[np.ndarray] = []
        self._pooled = 0
        self._running: np.ndarray | None = None

    def _on_rollout_start(self) -> None:
        if self._pooled >= self.correlation_steps:
            self._rewards, self._progress, self._dones, self._pooled = [], [], [], 0

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        rewards = np.asarray(self.raw_rewards() if self.raw_rewards else self.locals["rewards"],
                             np.float64)
        self._rewards.append(rewards)
        self._progress.append(np.array([info.get("progress", np.nan) for info in infos], np.float64))
        self._dones.append(np.asarray(dones, bool))
        self._pooled += len(rewards)
        if self.relabelled is None:  # step rewards are final: count them now
            self._add_to_returns(rewards, self._dones[-1])
        for info, done in zip(infos, dones):
            if done and "episode" in info:  # SB3's Monitor: the env's own reward
                self.gt_returns.append(float(info["episode"]["r"]))
                if "is_success" in info:
                    self.successes.append(float(info["is_success"]))
        return True

    def _add_to_returns(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        if self._running is None:
            self._running = np.zeros(len(rewards))
        self._running += rewards
        for env in np.flatnonzero(dones):
            self.learned_returns.append(float(self._running[env]))
            self._running[env] = 0.0

    def _on_rollout_end(self) -> None:
        rewards = np.stack(self._rewards)
        if self.relabelled is not None:  # the rollout's rewards, rewritten before advantages
            if self.relabelled() is not None:
                rewards = np.asarray(self.relabelled(), np.float64)
            for step_rewards, step_dones in zip(rewards, self._dones):
                self._add_to_returns(step_rewards, step_dones)
        if self.gt_returns:
            self.logger.record("rollout/gt_return", float(np.mean(self.gt_returns)))
        if self.successes:
            self.logger.record("rollout/success_rate", float(np.mean(self.successes)))
        if self.learned_returns:
            self.logger.record("rollout/learned_return", float(np.mean(self.learned_returns)))
        if self._pooled >= self.correlation_steps:
            correlation = reward_progress_spearman(rewards, np.stack(self._progress))
            if correlation is not None:
                self.logger.record("rollout/reward_progress_spearman", correlation)


class UnsupervisedPretraining(BaseCallback):
    """PEBBLE's unsupervised pre-training: the replay buffer samples a state-entropy
    bonus instead of its rewards for the run's first ``steps`` environment steps
    (:meth:`agents.sb3.replay.FrameReplayBuffer.enable_entropy_bonus`); a run resumed
    past them samples its rewards."""

    def __init__(self, buffer: Any, steps: int) -> None:
        super().__init__()
        self.buffer, self.steps = buffer, steps

    def _on_training_start(self) -> None:
        self.buffer.enable_entropy_bonus(self.num_timesteps < self.steps)

    def _on_step(self) -> bool:
        if self.buffer.entropy_bonus and self.num_timesteps >= self.steps:
            self.buffer.enable_entropy_bonus(False)
            self.logger.record("train/pretraining_ended_at", self.num_timesteps)
        return True


class PeriodicCheckpoint(BaseCallback):
    """Calls ``save()`` at the start of the first rollout at or after every
    ``every`` environment steps: the policy has then been trained on every step
    counted, so a resumed run repeats nothing and skips nothing."""

    def __init__(self, every: int, save: Callable[[], Any], start: int = 0) -> None:
        super().__init__()
        self.every = every
        self.save = save
        self.next_at = (start // every + 1) * every

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self.next_at:
            self.save()
            self.next_at = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        return True


class ProgressBar(BaseCallback):
    """A tqdm bar over environment steps with ETA, and the latest success rate."""

    def __init__(self, total: int, start: int, metrics: EpisodeMetrics) -> None:
        super().__init__()
        self.total, self.start, self.metrics = total, start, metrics
        self.bar: Any = None

    def _on_training_start(self) -> None:
        interactive = os.isatty(2)
        self.bar = tqdm(total=self.total, initial=self.start, unit="step", dynamic_ncols=True,
                        mininterval=0.5 if interactive else 30.0, smoothing=0.05)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_rollout_end(self) -> None:
        if self.metrics.successes:
            self.bar.set_postfix(success=f"{np.mean(self.metrics.successes):.2f}",
                                 gt_return=f"{np.mean(self.metrics.gt_returns):.1f}", refresh=False)

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
