"""``algo: ppo`` and ``algo: sac``: stable-baselines3 against any env and reward module.

Trains PPO or SAC on the config's env (pixels by default; ``obs_mode: state`` for
state policies), with its reward module swapped in through the batched vector-env
wrapper (the reward always scores the rendered frames unless ``reward_frames:
observation``), and writes to the run folder:

- ``progress.csv`` and TensorBoard event files (``tensorboard --logdir RUN``);
- ``checkpoints/step-N/`` every ``checkpoint_every`` steps and at the end;
- ``preferences/``: the labels of the online preference loop (reward: preference);
- ``reward/``: the final learned reward module.

With an online preference loop, SAC keeps each transition's frame and relabels its
whole replay buffer after every reward update, and may pre-train on a state-entropy
bonus first (PEBBLE; :mod:`agents.sb3.replay`).

A resumed run continues from its latest checkpoint: policy, optimisers, SAC's replay
buffer, reward model, preference labels (all of them, including any written after
the checkpoint), RNG states and step counters. Episodes that were running when the run stopped are
started afresh (new seeds), which is all that differs from an uninterrupted run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

import rewards
from agents.checkpoint import Checkpoint, latest_checkpoint
from agents.labelling import labels_by_source
from agents.logs import PROGRESS_FILE, AppendingCSV, truncate_log
from agents.runs import Checked
from agents.sb3 import checkpoint as ckpt
from agents.sb3.callbacks import (EpisodeMetrics, PeriodicCheckpoint, ProgressBar,
                                  UnsupervisedPretraining)
from agents.sb3.config import SB3Config, SACConfig
from agents.sb3.preference_loop import (PREFERENCES, PreferenceLoop, demonstrations,
                                        import_labels)
from agents.sb3.relabel import RelabelRolloutBuffer
from agents.sb3.replay import FrameReplayBuffer
from agents.sb3.vector import make_training_env
from rewards.preference_store import PreferenceStore


ALGORITHM_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
"""The SB3 class of each ``algo`` this module trains."""


def build_model(config: SB3Config, venv: VecEnv, device: str,
                buffer: dict[str, Any] | None = None, evaluation: bool = False) -> BaseAlgorithm:
    """The SB3 learner the config describes, on ``venv``; ``buffer`` holds the
    rollout- or replay-buffer class and its arguments where the run needs its own.
    ``evaluation``: only the policy is used, so SAC gets a one-row replay buffer
    instead of allocating ``buffer_size`` transitions."""
    hyper = config.hyperparams
    arguments = hyper.sb3_arguments()
    if evaluation and "buffer_size" in arguments:
        arguments["buffer_size"] = 1
    return ALGORITHM_CLASSES[config.algo](
        hyper.policy, venv, seed=config.seed, device=device, verbose=0,
        policy_kwargs=hyper.policy_kwargs.arguments(), **(buffer or {}), **arguments)


def _buffer(config: SB3Config, reward: Any, layer: Any, frame_shape: tuple[int, ...] | None,
            loop: list[PreferenceLoop]) -> dict[str, Any] | None:
    """PPO with a whole-episode reward, or with the online preference loop (``loop``
    holds it once it exists): a rollout buffer relabelled before advantages.
    SAC: a replay buffer that keeps frames for relabelling (online preference loop)
    and can sample a state-entropy bonus (pre-training)."""
    if isinstance(config, SACConfig):
        keep = config.preference_loop is not None
        return {"replay_buffer_class": FrameReplayBuffer,
                "replay_buffer_kwargs": {"frames": (lambda: layer.last_frames) if keep else None,
                                         "frame_shape": frame_shape if keep else None}}
    if reward.needs_trajectory:
        return {"rollout_buffer_class": RelabelRolloutBuffer,
                "rollout_buffer_kwargs": {"relabel": lambda: layer.relabel(reward)}}
    if config.preference_loop is not None:  # the loop's round rewrites the rollout
        return {"rollout_buffer_class": RelabelRolloutBuffer,
                "rollout_buffer_kwargs": {"relabel": lambda: loop[0].rescore_rollout()}}
    return None


def normalize_rewards(config: SB3Config, venv: VecEnv) -> VecNormalize:
    """``venv`` under SB3's ``VecNormalize``, scaling rewards only (``normalize``)."""
    return VecNormalize(venv, norm_obs=False, norm_reward=True,
                        gamma=config.hyperparams.gamma,  # the return it scales by
                        **config.hyperparams.normalize_arguments())


def return_statistics(venv: VecNormalize) -> dict[str, float]:
    """The reward normaliser's running statistics, for a checkpoint."""
    stats = venv.ret_rms
    return {"mean": float(stats.mean), "var": float(stats.var), "count": float(stats.count)}


def set_return_statistics(venv: VecNormalize, state: dict[str, float]) -> None:
    """Restores :func:`return_statistics` (a resumed run scales rewards as before)."""
    venv.ret_rms.mean = float(state["mean"])
    venv.ret_rms.var = float(state["var"])
    venv.ret_rms.count = float(state["count"])


def train(config: SB3Config, run_dir: Path, resume: bool, checked: Checked,
          progress_bar: bool = True, log: Any = print) -> dict[str, Any]:
    """Trains (or continues) the PPO or SAC run in ``run_dir``; returns its summary.

    ``checked`` comes from :func:`agents.runs.preflight`: the device, and the reward
    module (loaded from the latest checkpoint when resuming)."""
    reward, device = checked.reward, checked.device
    restored = latest_checkpoint(run_dir) if resume else None
    if resume and restored is None:
        log(f"vmalign train: {run_dir} has no checkpoint yet; starting it from step 0")
    settings = config.preference_loop
    store = _preference_store(run_dir, settings, checked, log) if settings else None

    start = restored.num_timesteps if restored else 0
    hyper = config.hyperparams
    venv, layer = make_training_env(
        config.env, config.env_kwargs, reward, hyper.n_envs, seed=config.seed + start,
        reward_frames=config.reward_frames, vec_env=config.vec_env,
        frame_stack=hyper.frame_stack, keep_frames=settings is not None,
        frozen_encoder=hyper.frozen_encoder)
    normalize = hyper.normalize_arguments() is not None
    if normalize:
        venv = normalize_rewards(config, venv)
    loop_ref: list[PreferenceLoop] = []  # the buffer needs the loop, the loop the model
    buffer = _buffer(config, reward, layer, checked.frame_shape, loop_ref)
    model = build_model(config, venv, device, buffer)
    trainer_state: dict[str, Any] = restored.state.get("trainer", {}) if restored else {}
    if restored:
        _restore(restored, model, venv, config.seed + start, trainer_state, run_dir, log)
    model.set_logger(Logger(str(run_dir), [AppendingCSV(run_dir / PROGRESS_FILE),
                                           TensorBoardOutputFormat(str(run_dir))]))

    off_policy = isinstance(config, SACConfig)
    metrics = EpisodeMetrics(
        relabelled=(lambda: layer.last_rewards) if reward.needs_trajectory else None,
        raw_rewards=venv.get_original_reward if normalize else None,
        correlation_steps=1000 if off_policy else 0)
    pretrain = config.hyperparams.pretrain_steps if off_policy else 0
    loop = (_preference_loop(config, model, venv, layer, reward, store, trainer_state, log)
            if settings else None)
    loop_ref.extend([loop] if loop else [])
    learned = reward.name if reward.tensors() else None

    def save() -> Path:
        state: dict[str, Any] = {"preference": loop.state()} if loop else {}
        if normalize:
            state["normalize"] = return_statistics(venv)
        return ckpt.save_checkpoint(run_dir, model, reward if learned else None, state)

    callbacks: list[Any] = [metrics, *([loop] if loop else []),
                            PeriodicCheckpoint(config.checkpoint_every, save, start=start)]
    if pretrain:
        callbacks.insert(0, UnsupervisedPretraining(model.replay_buffer, pretrain))
    if progress_bar:
        callbacks.append(ProgressBar(hyper.n_timesteps, start, metrics))

    started = time.perf_counter()
    try:
        if hyper.n_timesteps > start:
            model.learn(total_timesteps=hyper.n_timesteps - start, callback=callbacks,
                        log_interval=1, reset_num_timesteps=False)
        final = save()
        if learned:
            rewards.save(reward, run_dir / "reward")
    finally:
        venv.close()
    return _summary(config, model, start, time.perf_counter() - started, metrics, loop, final,
                    device)


def _preference_loop(config: SB3Config, model: BaseAlgorithm, venv: VecEnv, layer: Any,
                     reward: Any, store: PreferenceStore, trainer_state: dict[str, Any],
                     log: Any) -> PreferenceLoop:
    """The online loop: SAC relabels its replay buffer after every refit and asks its
    first queries after pre-training; PPO rewrites the rollout a round was asked after."""
    off_policy = isinstance(config, SACConfig)
    settings = config.preference_loop
    demos = demonstrations(config.env, config.env_kwargs, settings.demo_policy,
                           settings.demo_episodes, config.seed)
    if demos:
        successes = sum(bool(e.success) for e in demos)
        log(f"vmalign train: {len(demos)} {settings.demo_policy} demonstration episodes in "
            f"the query pool ({successes} succeed)")
    return PreferenceLoop(
        layer, reward, store, config.preference_loop, seed=config.seed,
        state=trainer_state.get("preference"),
        first_round_at=config.hyperparams.pretrain_steps if off_policy else 0,
        after_refit=(lambda: _relabel(model, reward, log)) if off_policy else None,
        rewrite_rollouts=not off_policy,
        scale=venv.normalize_reward if isinstance(venv, VecNormalize) else None,
        demos=demos)


def _summary(config: SB3Config, model: BaseAlgorithm, start: int, seconds: float,
             metrics: EpisodeMetrics, loop: PreferenceLoop | None, final: Path,
             device: str) -> dict[str, Any]:
    """``train_summary.json``: steps, speed, the last episodes' returns and success."""
    summary = {
        "env": config.env, "reward": config.reward, "steps": int(model.num_timesteps),
        "resumed_from": start, "seconds": round(seconds, 1),
        "fps": round((model.num_timesteps - start) / seconds, 1) if seconds > 0 else None,
        "gt_return": _mean(metrics.gt_returns), "success_rate": _mean(metrics.successes),
        "learned_return": _mean(metrics.learned_returns),
        "checkpoint": str(final), "device": device,
    }
    if loop is not None:
        summary.update(queries_asked=loop.asked, labels=len(loop.store),
                       demo_episodes=len(loop.demos),
                       labels_by_source=labels_by_source(loop.store),
                       reward_training_accuracy=loop.last_accuracy)
    return summary


def _relabel(model: BaseAlgorithm, reward: Any, log: Any) -> None:
    """PEBBLE: every reward in the replay buffer recomputed by the refit module."""
    started = time.perf_counter()
    count = model.replay_buffer.relabel(reward)
    model.logger.record("preference/relabelled", count)
    model.logger.record("preference/relabel_seconds", round(time.perf_counter() - started, 2))


def _preference_store(run_dir: Path, settings: Any, checked: Checked, log: Any
                      ) -> PreferenceStore:
    """The run's label store, seeded once with ``initial_labels`` when there are some."""
    store = PreferenceStore(run_dir / PREFERENCES)
    if settings.initial_labels:
        copied = import_labels(store, settings.initial_labels,
                               (settings.segment, *checked.frame_shape))
        if copied:
            log(f"vmalign train: {copied} labels from {settings.initial_labels} copied into "
                f"{store.folder}")
    return store


def _restore(restored: Checkpoint, model: BaseAlgorithm, venv: VecEnv, seed: int,
             trainer_state: dict[str, Any], run_dir: Path, log: Any) -> None:
    """Puts a checkpoint back: weights, optimisers, SAC's replay buffer, counters, RNGs,
    the reward normaliser's statistics; log rows after the checkpoint move aside."""
    ckpt.load_policy_weights(restored, model)
    if hasattr(model, "replay_buffer"):
        ckpt.load_replay(restored, model)
    ckpt.restore_counters(restored, model)
    venv.seed(seed)  # fresh episodes, not the first run's again
    if isinstance(venv, VecNormalize) and "normalize" in trainer_state:
        set_return_statistics(venv, trainer_state["normalize"])
    moved = truncate_log(run_dir / PROGRESS_FILE, restored.num_timesteps)
    log(f"vmalign train: resuming {run_dir} from step {restored.num_timesteps}"
        + (f" ({moved} log rows after it moved to progress.discarded.csv)" if moved else ""))


def _mean(values: Any) -> float | None:
    values = list(values)
    return round(float(sum(values) / len(values)), 4) if values else None
