"""Evaluate a trained run: success rate, best and worst episode videos, learning curve.

``vmalign eval RUN_DIR`` loads the run's config (``config.yaml``) and latest checkpoint
(or ``--checkpoint``), rebuilds the policy exactly as training built it (same env
kwargs, frame stacking and CNN policy), and plays ``--episodes`` episodes (default:
the config's ``eval_episodes``) on held-out seeds: episode i is reset with seed
``S + i``, where ``S`` is ``--seed`` or the config's seed + 1,000,000 (training seeds
count up from the config's seed). It writes into ``RUN_DIR/eval/`` (``eval-1``,
``eval-2``, ... when that already holds files; nothing is overwritten):

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

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.metrics import reward_progress_spearman

CONFIG_FILE = "config.yaml"
PROGRESS_FILE = "progress.csv"
EVAL_DIR = "eval"
SEED_OFFSET = 1_000_000
"""Default evaluation seeds start at the config's seed plus this (held out from training)."""
VIDEO_FPS = 20
"""Video frame rate; lower when the env renders slower (``metadata["render_fps"]``)."""
MIN_VIDEO_SIZE = 16
SCORE_BATCH = 256
"""Frames per reward-module call when recomputing the learned return."""
STEP_KEY = "time/total_timesteps"
CURVES = {
    "gt_return": "rollout/gt_return",
    "success_rate": "rollout/success_rate",
    "learned_return": "rollout/learned_return",
}


@dataclass
class _Episode:
    """What the recorder keeps of one episode."""

    frames: list[np.ndarray] = field(default_factory=list)
    """The reset frame, then one rendered frame per step (taken before any auto-reset)."""
    observations: list[np.ndarray] = field(default_factory=list)
    """The env's own observation after each step (no frame stacking)."""
    rewards: list[float] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)
    """``info["progress"]`` after each step (NaN where the env reports none)."""
    instructions: list[str] = field(default_factory=list)
    success: bool | None = None
    done: bool = False


def _recorder_class() -> type:
    import gymnasium as gym

    class EpisodeRecorder(gym.Wrapper):
        """Keeps each episode's frames, observations, rewards and outcome.

        It sits directly on the env, inside the vector env, so a step's frame is
        rendered before ``DummyVecEnv`` resets a finished episode.
        """

        def __init__(self, env: gym.Env, observations: bool) -> None:
            super().__init__(env)
            self.keep_observations = observations
            self.current = _Episode()
            self.finished: _Episode | None = None

        def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
            obs, info = self.env.reset(**kwargs)
            self.current = _Episode(frames=[_frame(self.env.render())])
            return obs, info

        def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
            obs, reward, terminated, truncated, info = self.env.step(action)
            episode = self.current
            episode.frames.append(_frame(self.env.render()))
            if self.keep_observations:
                episode.observations.append(np.array(obs, copy=True))
            episode.rewards.append(float(reward))
            episode.progress.append(float(info.get("progress", np.nan)))
            episode.instructions.append(str(info.get("instruction", "")))
            if "is_success" in info:
                episode.success = bool(info["is_success"])
            if terminated or truncated:
                episode.done = True
                self.finished = episode
            return obs, reward, terminated, truncated, info

    return EpisodeRecorder


def _frame(frame: Any) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise RuntimeError(f"render() must return an (H, W, 3) array, got {array.shape}")
    return array.astype(np.uint8, copy=False)


def evaluate_run(
    run_dir: str | os.PathLike[str],
    episodes: int | None = None,
    seed: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    video_size: int | None = None,
    deterministic: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluates the run in ``run_dir``; writes its eval folder and returns the summary
    written to ``eval.json``, plus ``out_dir``.

    :param episodes: episodes to play (default: the config's ``eval_episodes``).
    :param seed: seed of the first episode; episode i uses ``seed + i`` (default: the
        config's seed + 1,000,000).
    :param checkpoint: a checkpoint folder (``checkpoints/step-N``, or just its name)
        instead of the latest one.
    :param video_size: rendered frame size of the videos (default: the run's
        ``render_size``).
    :param deterministic: the policy's most likely action (default) or a sampled one.
    :raises FileNotFoundError: no run folder, no ``config.yaml`` or no such checkpoint.
    :raises ValueError: the run has no checkpoint yet, or a bad argument.
    """
    from agents.checkpoint import rng_state, set_rng_state

    if episodes is not None and (isinstance(episodes, bool) or not isinstance(episodes, int)
                                 or episodes < 1):
        raise ValueError(f"--episodes must be an integer >= 1, got {episodes!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"--seed must be an integer >= 0, got {seed!r}")
    if video_size is not None and (isinstance(video_size, bool) or not isinstance(video_size, int)
                                   or video_size < MIN_VIDEO_SIZE):
        raise ValueError(f"--video-size must be an integer >= {MIN_VIDEO_SIZE} pixels, "
                         f"got {video_size!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} not found")
    if (run_dir / CONFIG_FILE).is_file():
        from agents.config import load_config

        config = load_config(run_dir / CONFIG_FILE)
        if config.algo != "ppo":
            from agents.vla.evaluate import evaluate_vla_run

            return evaluate_vla_run(run_dir, config, episodes, seed, checkpoint, log)
    config, restored = _load_run(run_dir, checkpoint)
    count = episodes if episodes is not None else config.eval_episodes
    first_seed = seed if seed is not None else config.seed + SEED_OFFSET

    saved_rng = rng_state()  # building PPO and sampling actions reseed the global RNGs
    try:
        return _evaluate(run_dir, config, restored, count, first_seed, video_size,
                         deterministic, log)
    finally:
        set_rng_state(saved_rng)


def _load_run(run_dir: Path, checkpoint: str | os.PathLike[str] | None) -> tuple[Any, Any]:
    from agents.checkpoint import CHECKPOINTS, checkpoint_folder, latest_checkpoint, read_checkpoint
    from agents.config import load_config

    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} not found")
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        raise FileNotFoundError(f"{saved} not found: {run_dir} is not a vmalign run folder "
                                f"(vmalign train writes {CONFIG_FILE} there)")
    config = load_config(saved)
    if checkpoint is not None:
        return config, read_checkpoint(checkpoint_folder(run_dir, checkpoint))
    restored = latest_checkpoint(run_dir)
    if restored is None:
        raise ValueError(f"{run_dir} has no checkpoint yet (nothing in "
                         f"{run_dir / CHECKPOINTS}): train longer (checkpoints are written "
                         f"every checkpoint_every={config.checkpoint_every} steps and at the "
                         f"end), or check the folder")
    return config, restored


def _evaluate(run_dir: Path, config: Any, restored: Any, count: int, first_seed: int,
              video_size: int | None, deterministic: bool, log: Callable[[str], None]) -> dict[str, Any]:
    import warnings

    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    import envs  # noqa: F401  (registers the ids)
    from agents.callbacks import read_rows
    from agents.checkpoint import load_policy_weights
    from agents.output import make_output_dir
    from agents.preview import MAX_EPISODE_STEPS, write_video
    from agents.train import build_model, build_reward
    from rewards.device import get_device

    started = time.perf_counter()
    notes: list[str] = []
    device = str(get_device(None if config.device == "auto" else config.device))
    reward = build_reward(config, device, restored.reward_folder)
    learned_source = _learned_source(config, reward, restored, video_size, notes)

    env, frame_size = _make_env(config, video_size, notes)
    recorder = _recorder_class()(env, observations=learned_source == "observation")
    venv: Any = DummyVecEnv([lambda: recorder])
    if config.frame_stack > 1:
        venv = VecFrameStack(venv, config.frame_stack)
    try:
        with warnings.catch_warnings():
            # One env instead of n_envs: PPO warns that the (unused) rollout buffer
            # no longer divides into mini-batches.
            warnings.simplefilter("ignore", UserWarning)
            model = build_model(config, venv, device)
        load_policy_weights(restored, model, optimizer=False)
        policy_env = model.get_env()  # venv, plus VecTransposeImage as in training
        fps = min(VIDEO_FPS, env.metadata.get("render_fps") or VIDEO_FPS)
        log(f"vmalign eval: {config.env} ({config.reward} reward), checkpoint step "
            f"{restored.num_timesteps}; {count} episode(s), seeds {first_seed}.."
            f"{first_seed + count - 1}, {'deterministic' if deterministic else 'stochastic'} "
            f"policy")
        set_random_seed(first_seed)  # the sampled actions of --stochastic
        results: list[dict[str, Any]] = []
        learned_steps: list[np.ndarray] = []
        progress_steps: list[np.ndarray] = []
        best: tuple[int, list[np.ndarray]] | None = None
        worst: tuple[int, list[np.ndarray]] | None = None
        for index in range(count):
            episode_seed = first_seed + index
            policy_env.seed(episode_seed)
            obs = policy_env.reset()
            recorder.finished = None
            for _ in range(MAX_EPISODE_STEPS):
                action, _state = model.predict(obs, deterministic=deterministic)
                obs, _rewards, dones, _infos = policy_env.step(action)
                if dones[0]:
                    break
            episode = recorder.finished or recorder.current  # the latter: step cap hit
            if not episode.done:
                notes.append(f"episode {index} stopped at the {MAX_EPISODE_STEPS}-step cap")
            result: dict[str, Any] = {
                "episode": index, "seed": episode_seed,
                "return": round(float(sum(episode.rewards)), 6),
                "success": episode.success, "length": len(episode.rewards),
            }
            if learned_source is not None:
                learned_rewards = _learned_rewards(reward, episode, learned_source)
                result["learned_return"] = round(float(learned_rewards.sum()), 6)
                learned_steps.append(learned_rewards)
                progress_steps.append(np.asarray(episode.progress, np.float64))
            results.append(result)
            if best is None or result["return"] > results[best[0]]["return"]:
                best = (index, episode.frames)
            if worst is None or result["return"] < results[worst[0]]["return"]:
                worst = (index, episode.frames)
            success = {True: "yes", False: "no", None: "unknown"}[episode.success]
            log(f"  episode {index + 1}/{count} (seed {episode_seed}): return "
                f"{result['return']:.3f}, success {success}, {result['length']} steps"
                + (f", learned return {result['learned_return']:.3f}"
                   if "learned_return" in result else ""))
    finally:
        venv.close()
    assert best is not None and worst is not None

    out = make_output_dir(run_dir / EVAL_DIR)
    for name, (index, frames) in (("best", best), ("worst", worst)):
        write_video([_resize(frame, video_size) for frame in frames], out / f"{name}.mp4", fps=fps)

    returns = np.array([r["return"] for r in results], np.float64)
    successes = [r["success"] for r in results if r["success"] is not None]
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "env": config.env,
        "reward": config.reward,
        "checkpoint": str(restored.folder),
        "checkpoint_step": restored.num_timesteps,
        "episodes": count,
        "seed": first_seed,
        "deterministic": deterministic,
        "success_rate": round(float(np.mean(successes)), 4) if successes else None,
        "mean_return": round(float(returns.mean()), 4),
        "std_return": round(float(returns.std()), 4),
        "mean_length": round(float(np.mean([r["length"] for r in results])), 2),
    }
    if learned_source is not None:
        learned = np.array([r["learned_return"] for r in results], np.float64)
        summary["mean_learned_return"] = round(float(learned.mean()), 4)
        summary["std_learned_return"] = round(float(learned.std()), 4)
        correlation = reward_progress_spearman(np.concatenate(learned_steps),
                                               np.concatenate(progress_steps))
        summary["reward_progress_spearman"] = (None if correlation is None
                                               else round(correlation, 4))
    summary["videos"] = {
        name: {"file": f"{name}.mp4", "episode": index, "seed": results[index]["seed"],
               "return": results[index]["return"]}
        for name, (index, _frames) in (("best", best), ("worst", worst))
    }
    summary["video_size"] = video_size or frame_size
    summary["video_fps"] = fps

    rows = read_rows(run_dir / PROGRESS_FILE)
    written, curve_note = write_learning_curve(rows, out / "learning_curve.png", config.reward,
                                               evaluated=(restored.num_timesteps, summary))
    summary["learning_curve"] = "learning_curve.png" if written else None
    if curve_note is not None:
        notes.append(curve_note)
    summary["episode_results"] = results
    summary["notes"] = notes
    summary["seconds"] = round(time.perf_counter() - started, 1)

    from rewards.durable import atomic_write

    text = json.dumps(summary, indent=2)
    atomic_write(out / "eval.json", lambda handle: handle.write(text.encode()))
    for note in notes:
        log(f"  note: {note}")
    rate = summary["success_rate"]
    log(f"vmalign eval: success rate {'unknown' if rate is None else f'{rate:.2f}'} over "
        f"{count} episode(s), mean return {summary['mean_return']:.3f} "
        f"(std {summary['std_return']:.3f}); wrote eval.json, best.mp4, worst.mp4"
        f"{', learning_curve.png' if summary['learning_curve'] else ''} to {out}")
    return {**summary, "out_dir": str(out)}


def _learned_source(config: Any, reward: Any, restored: Any, video_size: int | None,
                    notes: list[str]) -> str | None:
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


def _render_size(config: Any) -> int | None:
    """The render size training used: the config's, else the env's default."""
    import gymnasium as gym

    if "render_size" in config.env_kwargs:
        return int(config.env_kwargs["render_size"])
    env = gym.make(config.env, **config.env_kwargs)
    try:
        size = getattr(env.unwrapped, "render_size", None)
    finally:
        env.close()
    return int(size) if size is not None else None


def _make_env(config: Any, video_size: int | None, notes: list[str]) -> tuple[Any, int | None]:
    """The config's env made to render, at ``video_size`` where the env allows; returns
    it and its render size (None if unknown)."""
    import gymnasium as gym

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


def _learned_rewards(reward: Any, episode: _Episode, source: str) -> np.ndarray:
    """The episode's per-step rewards under the reward module, scored as training
    scored them: one reward per step, on the frame after that step."""
    if not episode.rewards:
        return np.zeros(0, np.float32)
    env_rewards = np.asarray(episode.rewards, np.float32)
    if source == "render":
        frames: np.ndarray | None = np.stack(episode.frames[1:])
    elif source == "observation":
        frames = np.stack(episode.observations)
    else:
        frames = None
    if reward.needs_trajectory:
        return np.asarray(reward.score_trajectory(frames, episode.instructions[-1], env_rewards))
    chunks = []
    for start in range(0, len(env_rewards), SCORE_BATCH):
        stop = start + SCORE_BATCH
        batch = frames[start:stop] if frames is not None else None
        chunks.append(reward(batch, episode.instructions[start:stop], env_rewards[start:stop]))
    return np.concatenate(chunks)


def _resize(frame: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or frame.shape[:2] == (size, size):
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for row in rows:
        try:
            step, value = float(row.get(STEP_KEY) or "nan"), float(row.get(key) or "nan")
        except ValueError:
            continue
        if math.isfinite(step) and math.isfinite(value):
            steps.append(step)
            values.append(value)
    return steps, values


def write_learning_curve(rows: list[dict[str, str]], path: Path, reward: str,
                         evaluated: tuple[int, dict[str, Any]] | None = None,
                         ) -> tuple[bool, str | None]:
    """Plots ground-truth return and learned return (top, twin axes) and success rate
    (bottom) against training steps from ``progress.csv`` rows; marks this evaluation
    at its checkpoint step. Returns whether it was written (not without rows) and a
    note on what is missing, if anything."""
    if not rows:
        return False, "no learning curve: the run has no progress.csv rows yet"
    series = {name: _series(rows, key) for name, key in CURVES.items()}
    if reward == "ground_truth":
        series["learned_return"] = ([], [])  # the same numbers as gt_return
    empty = not any(values for _steps, values in series.values())

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    # Points as well as lines for short logs (a single row is no line).
    style = {"marker": "o", "markersize": 3} if len(rows) < 30 else {}
    top.plot(*series["gt_return"], color="tab:blue", label="ground-truth return", **style)
    top.set_ylabel("ground-truth return", color="tab:blue")
    handles, labels = top.get_legend_handles_labels()
    if series["learned_return"][1]:
        twin = top.twinx()
        twin.plot(*series["learned_return"], color="tab:orange", label=f"learned return ({reward})",
                  **style)
        twin.set_ylabel("learned return", color="tab:orange")
        more, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more, labels + more_labels
    bottom.plot(*series["success_rate"], color="tab:green", label="success rate", **style)
    bottom.set_ylabel("success rate")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel("environment steps")
    if evaluated is not None:
        step, summary = evaluated
        label = f"this eval, ground truth ({summary['episodes']} episodes)"
        marker = top.scatter([step], [summary["mean_return"]], color="black", marker="x", zorder=3)
        if summary.get("success_rate") is not None:
            bottom.scatter([step], [summary["success_rate"]], color="black", marker="x", zorder=3,
                           label=label)
        handles.append(marker)
        labels.append(label)
    top.legend(handles, labels, loc="best", fontsize="small")
    bottom.legend(loc="best", fontsize="small")
    top.set_title("training progress (rollout means of the last 100 episodes)")
    if empty:
        top.text(0.5, 0.5, "no finished training episode logged yet", transform=top.transAxes,
                 ha="center", va="center", color="gray")
    from agents.output import save_atomically

    save_atomically(path, lambda partial: figure.savefig(partial, format="png"))
    if empty:
        return True, ("the learning curve is empty: progress.csv logs no finished training "
                      "episode yet")
    return True, None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``vmalign eval``'s options to ``parser``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                        help="a run folder written by vmalign train")
    parser.add_argument("--episodes", type=int, default=None, metavar="N",
                        help="episodes to play (default: the config's eval_episodes)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help=f"seed of the first episode, S+i for episode i (default: the "
                             f"config's seed + {SEED_OFFSET:,})")
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                        help="a checkpoint folder, its name in RUN_DIR/checkpoints, or "
                             "'latest' (the default)")
    parser.add_argument("--video-size", type=int, default=None, metavar="PX",
                        help="video frame size in pixels (default: the run's render_size)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=True,
                      help="take the policy's most likely action (default)")
    mode.add_argument("--stochastic", dest="deterministic", action="store_false",
                      help="sample actions from the policy")


def run(args: argparse.Namespace) -> int:
    """Runs ``vmalign eval``."""
    evaluate_run(args.run_dir, episodes=args.episodes, seed=args.seed,
                 checkpoint=args.checkpoint, video_size=args.video_size,
                 deterministic=args.deterministic)
    return 0
