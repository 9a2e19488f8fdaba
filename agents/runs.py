"""A training run from config to folder: the checks before anything is written, the
run folder, and the hand-over to the algorithm's trainer.

Every run goes through :func:`train`:

1. :func:`preflight` checks what the config schema cannot: the device exists, the
   reward module builds (from ``reward_kwargs``, ``reward_checkpoint`` or the
   checkpoint a resumed run continues from), one env builds from ``env_kwargs``,
   resets and renders, and the reward scores its first frame. A failure raises here,
   before the run folder exists, so a bad run leaves nothing on disk.
2. The run folder receives ``config.yaml`` (the resolved config: ``--resume`` and
   ``vmalign eval`` read it back).
3. The algorithm's trainer (:mod:`agents.algorithms`) trains and returns a summary.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the ids)
import rewards
from agents import distributed
from agents.algorithms import ALGORITHMS
from agents.checkpoint import latest_checkpoint
from agents.config import EnvFields, RewardFields, RunConfig, load_config
from rewards.base import RewardModel
from rewards.durable import atomic_write

CONFIG_FILE = "config.yaml"
PROGRESS_FILE = "progress.csv"
SUMMARY_FILE = "train_summary.json"


@dataclasses.dataclass
class Checked:
    """What :func:`preflight` built and the trainer reuses."""

    device: str
    reward: RewardModel | None
    """The run's reward module (None for runs without one, e.g. behaviour cloning)."""
    frame_shape: tuple[int, ...] | None
    """Shape of one frame the reward scores (None without an env or a reward)."""
    observation_shape: tuple[int, ...] | None = None
    """Shape of the policy's observation (None without an env)."""


def preflight(config: RunConfig, reward_folder: Path | None = None,
              keep_frames: bool = False) -> Checked:
    """Checks that the run can start; raises ``ValueError`` naming what is wrong.

    :param reward_folder: a checkpoint's ``reward/`` to load the reward from (resume).
    :param keep_frames: the run keeps rendered frames even if its reward does not
        score them (the online preference loop cuts its queries from them).
    """
    device = str(rewards.get_device(None if config.device == "auto" else config.device))
    if distributed.world().is_distributed:
        device = join_process_group(config, device)
    reward = (build_reward(config, device, reward_folder)
              if isinstance(config, RewardFields) else None)
    frame_shape = observation_shape = None
    if isinstance(config, EnvFields):
        render = reward is not None and needs_rendered_frames(config.reward_frames, reward,
                                                              keep_frames)
        frame_shape, observation_shape = check_env(config.env, config.env_kwargs, reward,
                                                   render, config.seed)
    for env_id, kwargs in (getattr(config, "eval_envs", None) or {}).items():
        check_env(env_id, kwargs, None, False, config.seed)
    checked = Checked(device=device, reward=reward, frame_shape=frame_shape,
                      observation_shape=observation_shape)
    config.check_start(checked)
    return checked


def join_process_group(config: RunConfig, device: str) -> str:
    """Under ``torchrun``: checks the algorithm trains data-parallel, joins the
    process group and returns this process's device."""
    size = distributed.world().size
    if not ALGORITHMS[config.algo].data_parallel:
        allowed = [name for name, row in ALGORITHMS.items() if row.data_parallel]
        raise ValueError(f"algo {config.algo} trains in one process, but torchrun started "
                         f"{size} (WORLD_SIZE={size}); data-parallel algos: {allowed}. "
                         f"Run it without torchrun (vmalign sweep runs many seeds at once)")
    return distributed.join(device)


def needs_rendered_frames(reward_frames: str, reward: RewardModel, keep_frames: bool) -> bool:
    """Whether the envs must render the reward-model view each step."""
    if reward_frames != "render":
        return False
    return reward.needs_frames or reward.needs_trajectory or keep_frames


def build_reward(config: RewardFields, device: str, checkpoint_folder: Path | None = None
                 ) -> RewardModel:
    """The config's reward module: from a training checkpoint's ``reward/`` (resume),
    else from ``reward_checkpoint``, else made fresh from ``reward_kwargs``."""
    saved = checkpoint_folder if checkpoint_folder is not None else config.reward_checkpoint
    accepted = set(inspect.signature(rewards.get(config.reward).__init__).parameters)
    try:
        if saved is not None:
            overrides = dict(config.reward_kwargs) if checkpoint_folder is None else {}
            if "device" in accepted:
                overrides.setdefault("device", device)
            return rewards.load(saved, **overrides)
        kwargs = dict(config.reward_kwargs)
        if "seed" in accepted:
            kwargs.setdefault("seed", config.seed)  # type: ignore[attr-defined]
        if "device" in accepted:
            kwargs.setdefault("device", device)
        return rewards.make(config.reward, **kwargs)
    except TypeError as error:  # a wrong argument name or type
        raise ValueError(f"reward_kwargs for the {config.reward} reward: {error}") from None


def check_env(env_id: str, env_kwargs: dict[str, Any], reward: RewardModel | None,
              render: bool, seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Makes one env, resets it and scores its first frame with ``reward``, so that a
    bad env kwarg (the env's own message lists the valid ones) or a reward module
    that cannot score these frames (RAPL without demonstrations, a frame size a
    checkpoint was not made for) stops the run before it starts. Returns the shape
    of the frames the reward sees and of the observation."""
    kwargs = {**env_kwargs, **({"render_mode": "rgb_array"} if render else {})}
    try:
        env = gym.make(env_id, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"env_kwargs for {env_id}: {error}") from None
    try:
        obs, info = env.reset(seed=seed)
        frame = env.render() if render else obs
        shapes = tuple(np.shape(frame)), tuple(getattr(env.observation_space, "shape", None) or ())
        if reward is None:
            return shapes
        instruction = str(info.get("instruction", ""))
        try:
            if reward.needs_trajectory:
                reward.score_trajectory(np.stack([frame, frame]), instruction,
                                        np.zeros(2, np.float32))
            else:
                reward(frame[None] if reward.needs_frames else None, [instruction],
                       np.zeros(1, np.float32))
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"the {reward.name!r} reward cannot score {env_id}'s frames: "
                             f"{error}") from error
        return shapes
    finally:
        env.close()


def train(config: RunConfig, run_dir: Path, resume: bool = False, checked: Checked | None = None,
          progress_bar: bool = True, log: Any = print) -> dict[str, Any]:
    """Trains (or, with ``resume``, continues) the run in ``run_dir``; returns its summary.

    ``checked`` is :func:`preflight`'s result when the caller ran it already (the
    command line does, before it makes the run folder); otherwise the checks run here,
    before ``run_dir`` is created or written."""
    run_dir = Path(run_dir)
    if checked is None:
        checked = preflight_run(config, run_dir if resume else None)
    main = distributed.world().is_main  # under torchrun only the main process writes
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, config)
    trainer = ALGORITHMS[config.algo].train()
    summary = trainer(config, run_dir, resume=resume, checked=checked,
                      progress_bar=progress_bar, log=log)
    if main:
        write_summary(run_dir, summary)
    return summary


def preflight_run(config: RunConfig, resume_dir: Path | None) -> Checked:
    """:func:`preflight` for a new run, or for one resumed from ``resume_dir`` (whose
    latest checkpoint holds the reward module to continue with)."""
    restored = latest_checkpoint(resume_dir) if resume_dir is not None else None
    keep_frames = bool(getattr(config, "preference_loop", None))
    return preflight(config, restored.reward_folder if restored else None, keep_frames)


def load_run_config(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The config a run folder was started with (``RUN/config.yaml``)."""
    saved = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run folder {run_dir} not found")
    if not saved.is_file():
        raise FileNotFoundError(f"{saved} not found: {run_dir} is not a vmalign run folder "
                                f"(vmalign train writes {CONFIG_FILE} there)")
    return load_config(saved, overrides)


def write_config(run_dir: Path, config: RunConfig) -> None:
    """Writes the resolved config to ``RUN/config.yaml`` (what resume and eval read)."""
    atomic_write(run_dir / CONFIG_FILE, lambda handle: handle.write(config.to_yaml().encode()))


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Writes a trainer's summary to ``RUN/train_summary.json``."""
    text = json.dumps(summary, indent=2, default=str)
    atomic_write(run_dir / SUMMARY_FILE, lambda handle: handle.write(text.encode()))
