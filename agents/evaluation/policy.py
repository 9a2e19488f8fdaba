"""``vmalign eval`` for stable-baselines3 runs (PPO, SAC): play, summarise, write.

Rebuilds the policy exactly as training built it (same env kwargs, frame stacking and
policy network) from the run's latest checkpoint (or a chosen one), plays the
episodes on held-out seeds (:func:`play`), summarises them (:func:`summarise`) and
writes into ``RUN/eval/`` (:func:`write`; ``eval-1``, ``eval-2``, ... when that
already holds files: nothing is overwritten):

- ``eval.json``: success rate, mean and std of the ground-truth return (the env's own
  reward), and per episode its seed, return, success and length; the learned return
  (the reward module PPO trained on) where the run has one that can be recomputed;
- ``best.mp4`` and ``worst.mp4``: the episodes with the highest and lowest
  ground-truth return;
- ``learning_curve.png``: ground-truth return, success rate and learned return
  against training steps, from the run's ``progress.csv``.

Videos show ``env.render()``, the reward-model view, at the run's ``render_size``
unless ``--video-size`` asks for another; a learned reward that scores rendered
frames is then not recomputed (its frames would differ from training's).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv

import envs  # noqa: F401  (registers the ids)
from agents.checkpoint import (CHECKPOINTS, Checkpoint, checkpoint_folder, latest_checkpoint,
                               read_checkpoint, rng_state, set_rng_state)
from agents.evaluation import EVAL_SEED_OFFSET
from agents.evaluation.curves import write_learning_curve
from agents.logs import PROGRESS_FILE, read_rows
from agents.metrics import reward_progress_spearman
from agents.output import EVAL_DIR, make_output_dir, write_json, write_video
from agents.rollouts import Episode, mean_final_progress
from agents.runs import build_reward
from agents.sb3.checkpoint import load_policy_weights
from agents.sb3.config import SB3Config
from agents.sb3.reward_wrappers import score_in_batches
from agents.sb3.train import build_model
from agents.sb3.vector import observation_layers
from rewards.base import RewardModel
from rewards.device import get_device

VIDEO_FPS = 20
"""Video frame rate; lower when the env renders slower (``metadata["render_fps"]``)."""
MAX_EPISODE_STEPS = 10_000
"""Stops an episode of an environment registered without a time limit."""


class EpisodeRecorder(gym.Wrapper):
    """Records each episode's frames, observations, rewards and outcome as an
    :class:`~agents.rollouts.Episode`.

    It sits directly on the env, inside the vector env, so a step's frame is
    rendered before ``DummyVecEnv`` resets a finished episode.
    """

    def __init__(self, env: gym.Env, observations: bool) -> None:
        super().__init__(env)
        self.keep_observations = observations
        self.finished: Episode | None = None
        self._start(None)

    def _start(self, first_frame: np.ndarray | None) -> None:
        self.first_frame = first_frame
        self.frames: list[np.ndarray] = []
        self.observations: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.progress: list[float] = []
        self.instruction = ""
        self.success: bool | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._start(_frame(self.env.render()))
        self.instruction = str(info.get("instruction", ""))
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(_frame(self.env.render()))
        if self.keep_observations:
            self.observations.append(np.array(obs, copy=True))
        self.rewards.append(float(reward))
        self.progress.append(float(info.get("progress", np.nan)))
        self.instruction = str(info.get("instruction", self.instruction))
        if "is_success" in info:
            self.success = bool(info["is_success"])
        if terminated or truncated:
            self.finished = self.current(done=True)
        return obs, reward, terminated, truncated, info

    def current(self, done: bool = False) -> Episode:
        """The episode recorded so far."""
        return Episode(
            frames=np.stack(self.frames), env_rewards=np.asarray(self.rewards, np.float32),
            instruction=self.instruction, progress=np.asarray(self.progress, np.float32),
            success=self.success, policy="ppo", first_frame=self.first_frame, done=done,
            observations=np.stack(self.observations) if self.observations else None)


def _frame(frame: Any) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise RuntimeError(f"render() must return an (H, W, 3) array, got {array.shape}")
    return array.astype(np.uint8, copy=False)


@dataclasses.dataclass
class Played:
    """What :func:`play` returns: the episodes and, where recomputed, their learned rewards."""

    episodes: list[Episode]
    seeds: list[int]
    learned: list[np.ndarray] | None
    notes: list[str]
    fps: float
    frame_size: int | None


def evaluate(run_dir: Path, config: SB3Config, episodes: int | None, seed: int | None,
             checkpoint: str | Path | None, video_size: int | None, deterministic: bool,
             log: Callable[[str], None]) -> dict[str, Any]:
    """Evaluates the SB3 run in ``run_dir``; writes its eval folder and returns the
    summary written to ``eval.json``, plus ``out_dir``."""
    restored = _checkpoint(run_dir, config, checkpoint)
    count = episodes if episodes is not None else config.eval_episodes
    first_seed = seed if seed is not None else config.seed + EVAL_SEED_OFFSET
    started = time.perf_counter()
    saved_rng = rng_state()  # building PPO and sampling actions reseed the global RNGs
    try:
        log(f"vmalign eval: {config.env} ({config.reward} reward), checkpoint step "
            f"{restored.num_timesteps}; {count} episode(s), seeds {first_seed}.."
            f"{first_seed + count - 1}, {'deterministic' if deterministic else 'stochastic'} "
            f"policy")
        played = play(config, restored, list(range(first_seed, first_seed + count)),
                      video_size, deterministic, log)
    finally:
        set_rng_state(saved_rng)
    summary = summarise(run_dir, config, restored, played, first_seed, deterministic)
    summary["video_size"] = video_size or played.frame_size
    out = write(run_dir, config, restored, played, summary, video_size)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / "eval.json", {key: value for key, value in summary.items()})
    for note in summary["notes"]:
        log(f"  note: {note}")
    rate = summary["success_rate"]
    log(f"vmalign eval: success rate {'unknown' if rate is None else f'{rate:.2f}'} over "
        f"{count} episode(s), mean return {summary['mean_return']:.3f} "
        f"(std {summary['std_return']:.3f})"
        + (f", mean final progress {summary['mean_final_progress']:.2f}"
           if "mean_final_progress" in summary else "")
        + f"; wrote eval.json, best.mp4, worst.mp4"
        f"{', learning_curve.png' if summary['learning_curve'] else ''} to {out}")
    return {**summary, "out_dir": str(out)}


def _checkpoint(run_dir: Path, config: SB3Config, checkpoint: str | Path | None) -> Checkpoint:
    if checkpoint is not None:
        return read_checkpoint(checkpoint_folder(run_dir, checkpoint))
    restored = latest_checkpoint(run_dir)
    if restored is None:
        raise ValueError(f"{run_dir} has no checkpoint yet (nothing in "
                         f"{run_dir / CHECKPOINTS}): train longer (checkpoints are written "
                         f"every checkpoint_every={config.checkpoint_every} steps and at the "
                         f"end), or check the folder")
    return restored


def play(config: SB3Config, restored: Checkpoint, seeds: list[int], video_size: int | None,
         deterministic: bool, log: Callable[[str], None]) -> Played:
    """Plays one episode per seed with the checkpoint's policy, recording each."""
    notes: list[str] = []
    device = str(get_device(None if config.device == "auto" else config.device))
    reward = build_reward(config, device, restored.reward_folder)
    source = _learned_source(config, reward, restored, video_size, notes)
    env, frame_size = _make_env(config, video_size, notes)
    recorder = EpisodeRecorder(env, observations=source == "observation")
    venv: Any = observation_layers(DummyVecEnv([lambda: recorder]),
                                   config.hyperparams.frozen_encoder,
                                   config.hyperparams.frame_stack)
    played: list[Episode] = []
    learned: list[np.ndarray] = []
    try:
        with warnings.catch_warnings():
            # One env instead of n_envs: PPO warns that the (unused) rollout buffer
            # no longer divides into mini-batches.
            warnings.simplefilter("ignore", UserWarning)
            model = build_model(config, venv, device, evaluation=True)
        load_policy_weights(restored, model, optimizer=False)
        policy_env = model.get_env()  # venv, plus VecTransposeImage as in training
        set_random_seed(seeds[0] if seeds else 0)  # the sampled actions of --stochastic
        for index, episode_seed in enumerate(seeds):
            policy_env.seed(episode_seed)
            obs = policy_env.reset()
            recorder.finished = None
            for _ in range(MAX_EPISODE_STEPS):
                action, _state = model.predict(obs, deterministic=deterministic)
                obs, _rewards, dones, _infos = policy_env.step(action)
                if dones[0]:
                    break
            episode = recorder.finished or recorder.current()  # the latter: step cap hit
            episode.seed = episode_seed
            if not episode.done:
                notes.append(f"episode {index} stopped at the {MAX_EPISODE_STEPS}-step cap")
            played.append(episode)
            if source is not None:
                learned.append(learned_rewards(reward, episode, source))
            success = {True: "yes", False: "no", None: "unknown"}[episode.success]
            log(f"  episode {index + 1}/{len(seeds)} (seed {episode_seed}): return "
                f"{episode.ground_truth_return:.3f}, success {success}, {len(episode)} steps"
                + (f", learned return {learned[-1].sum():.3f}" if source else ""))
    finally:
        venv.close()
    fps = min(VIDEO_FPS, env.metadata.get("render_fps") or VIDEO_FPS)
    return Played(played, seeds, learned if source else None, notes, fps, frame_size)


def summarise(run_dir: Path, config: SB3Config, restored: Checkpoint, played: Played,
              first_seed: int, deterministic: bool) -> dict[str, Any]:
    """``eval.json``'s figures: success rate, returns, per-episode results."""
    episodes = played.episodes
    results: list[dict[str, Any]] = []
    for index, episode in enumerate(episodes):
        result = {"episode": index, "seed": episode.seed,
                  "return": round(episode.ground_truth_return, 6),
                  "success": episode.success, "length": len(episode)}
        if episode.final_progress is not None:
            result["final_progress"] = round(episode.final_progress, 4)
        if played.learned is not None:
            result["learned_return"] = round(float(played.learned[index].sum()), 6)
        results.append(result)
    returns = np.array([r["return"] for r in results], np.float64)
    successes = [r["success"] for r in results if r["success"] is not None]
    summary: dict[str, Any] = {
        "run_dir": str(run_dir), "env": config.env, "reward": config.reward,
        "checkpoint": str(restored.folder), "checkpoint_step": restored.num_timesteps,
        "episodes": len(episodes), "seed": first_seed, "deterministic": deterministic,
        "success_rate": round(float(np.mean(successes)), 4) if successes else None,
        "mean_return": round(float(returns.mean()), 4),
        "std_return": round(float(returns.std()), 4),
        "mean_length": round(float(np.mean([r["length"] for r in results])), 2),
    }
    partial = mean_final_progress(episodes)  # partial success, e.g. Sweep's debris moved
    if partial is not None:
        summary["mean_final_progress"] = partial
    if played.learned is not None:
        learned = np.array([r["learned_return"] for r in results], np.float64)
        summary["mean_learned_return"] = round(float(learned.mean()), 4)
        summary["std_learned_return"] = round(float(learned.std()), 4)
        correlation = reward_progress_spearman(np.concatenate(played.learned),
                                               np.concatenate([e.progress for e in episodes]))
        summary["reward_progress_spearman"] = (None if correlation is None
                                               else round(correlation, 4))
    best, worst = int(returns.argmax()), int(returns.argmin())
    summary["videos"] = {
        name: {"file": f"{name}.mp4", "episode": index, "seed": results[index]["seed"],
               "return": results[index]["return"]}
        for name, index in (("best", best), ("worst", worst))}
    summary["video_fps"] = played.fps
    summary["episode_results"] = results
    summary["notes"] = list(played.notes)
    return summary


def write(run_dir: Path, config: SB3Config, restored: Checkpoint, played: Played,
          summary: dict[str, Any], video_size: int | None) -> Path:
    """The videos and learning curve, into a fresh ``RUN/eval`` folder; returns it."""
    out = make_output_dir(run_dir / EVAL_DIR)
    for name, video in summary["videos"].items():
        frames = played.episodes[video["episode"]].video_frames()
        write_video([_resize(frame, video_size) for frame in frames], out / video["file"],
                    fps=played.fps)
    rows = read_rows(run_dir / PROGRESS_FILE)
    written, note = write_learning_curve(rows, out / "learning_curve.png", config.reward,
                                         evaluated=(restored.num_timesteps, summary))
    summary["learning_curve"] = "learning_curve.png" if written else None
    if note is not None:
        summary["notes"].append(note)
    return out


def _learned_source(config: SB3Config, reward: RewardModel, restored: Checkpoint,
                    video_size: int | None, notes: list[str]) -> str | None:
    """Where the learned return's frames come from ("render", "observation", "none"
    for a module that needs none), or None when it is not recomputed."""
    if config.reward == "ground_truth":
        return None  # it would only repeat the ground-truth return
    if reward.tensors() and restored.reward_folder is None:
        notes.append(f"no learned return: the checkpoint {restored.folder} holds no reward "
                     f"module")
        return None
    if not (reward.needs_frames or reward.needs_trajectory):
        return "none"
    if config.reward_frames == "observation":
        return "observation"
    trained_size = _render_size(config)
    if video_size is not None and video_size != trained_size:
        notes.append(f"no learned return: the reward module scored {trained_size} px frames "
                     f"in training and --video-size renders {video_size} px; leave out "
                     f"--video-size to get it")
        return None
    return "render"


def _render_size(config: SB3Config) -> int | None:
    """The render size training used: the config's, else the env's default."""
    if "render_size" in config.env_kwargs:
        return int(config.env_kwargs["render_size"])
    env = gym.make(config.env, **config.env_kwargs)
    try:
        size = getattr(env.unwrapped, "render_size", None)
    finally:
        env.close()
    return int(size) if size is not None else None


def _make_env(config: SB3Config, video_size: int | None, notes: list[str]) -> tuple[gym.Env, int | None]:
    """The config's env made to render, at ``video_size`` where the env allows; returns
    it and its render size (None if unknown)."""
    kwargs = {**config.env_kwargs, "render_mode": "rgb_array"}
    if video_size is not None:
        kwargs["render_size"] = video_size
    try:
        env = gym.make(config.env, **kwargs)
    except TypeError as error:
        if video_size is None or "render_size" not in str(error):
            raise
        kwargs.pop("render_size")
        env = gym.make(config.env, **kwargs)
        notes.append(f"{config.env} takes no render_size: its frames are resized to "
                     f"{video_size} px for the videos")
    size = getattr(env.unwrapped, "render_size", None)
    return env, int(size) if size is not None else None


def learned_rewards(reward: RewardModel, episode: Episode, source: str) -> np.ndarray:
    """The episode's per-step rewards under the reward module, scored as training
    scored them: one reward per step, on the frame after that step."""
    if not len(episode):
        return np.zeros(0, np.float32)
    frames = {"render": episode.frames, "observation": episode.observations}.get(source)
    if reward.needs_trajectory:
        return np.asarray(reward.score_trajectory(frames, episode.instruction,
                                                  episode.env_rewards))
    return score_in_batches(reward, frames, [episode.instruction] * len(episode),
                            episode.env_rewards)


def _resize(frame: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or frame.shape[:2] == (size, size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))
