"""Scripted-expert previews: one video per environment and a contact sheet.

:func:`run_preview` (what ``vmalign preview`` runs) records one seeded expert
episode per env id (:func:`record_episode`) and draws first, middle and last frames
into one labelled sheet (:func:`write_contact_sheet`); the acting policy can be
swapped with ``policy_factory``. Every env is built once at the requested size
before the output folder is made, so a size an env refuses writes nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import envs
from agents.output import make_output_dir, write_video
from rewards.durable import atomic_save

Policy = Callable[[Any], Any]
"""Maps an observation to an action."""
PolicyFactory = Callable[[gym.Env], Policy]
"""Builds the policy for one environment instance."""

DEFAULT_SIZE = 224
"""Default rendered frame size in pixels (the reward models' input size)."""
FRAMES_PER_ROW = 3
"""Contact-sheet frames per environment: first, middle, last."""
LABEL_HEIGHT = 40
"""Pixels above each contact-sheet row for its two label lines."""
_FONT_SIZE = 14
_FALLBACK_FPS = 30
MAX_EPISODE_STEPS = 10_000
"""Stops an episode of an environment registered without a time limit."""


class UnknownEnvError(ValueError):
    """An environment id that the ``envs`` package does not register."""


@dataclass
class EpisodeResult:
    """What one recorded expert episode produced."""

    env_id: str
    video: Path
    steps: int
    success: bool
    episode_return: float
    instruction: str
    sheet_frames: tuple[np.ndarray, ...]
    """First, middle and last frame, for the contact sheet."""


@dataclass
class PreviewResult:
    """Everything one preview run wrote."""

    out_dir: Path
    episodes: list[EpisodeResult]
    contact_sheet: Path


def expert_policy_factory(env: gym.Env) -> Policy:
    """The default policy: the environment's scripted expert from ``envs.experts``."""
    # Looked up at call time so tests (or users) can substitute envs.experts.
    from envs import experts

    return experts.expert_policy(env)


def known_env_ids() -> tuple[str, ...]:
    """Every id the ``envs`` package registers."""
    return tuple(envs.ENV_IDS)


def resolve_env_ids(env_ids: Iterable[str] | None) -> list[str]:
    """Checks ``env_ids`` against :func:`known_env_ids` (default: all), dropping repeats.

    :raises UnknownEnvError: an id is not registered by ``envs``.
    """
    valid = known_env_ids()
    requested = list(valid if env_ids is None else env_ids)
    unknown = [env_id for env_id in requested if env_id not in valid]
    if unknown:
        raise UnknownEnvError(
            f"unknown environment id(s) {', '.join(map(repr, unknown))}; "
            f"valid ids: {', '.join(valid)}"
        )
    return list(dict.fromkeys(requested))


def record_episode(
    env_id: str,
    video_path: Path,
    seed: int,
    size: int,
    policy_factory: PolicyFactory,
) -> EpisodeResult:
    """Runs one seeded episode of ``policy_factory(env)`` and writes its video.

    Frames are the reset frame plus one per step, all held in memory until the
    episode ends (an expert episode is a few hundred small frames).
    """
    env = gym.make(env_id, render_mode="rgb_array", render_size=size)
    try:
        policy = policy_factory(env)
        obs, info = env.reset(seed=seed)
        instruction = str(info.get("instruction", "") or getattr(env.unwrapped, "instruction", ""))
        frames = [_render(env, env_id)]
        episode_return, steps = 0.0, 0
        terminated = truncated = False
        while not (terminated or truncated) and steps < MAX_EPISODE_STEPS:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            episode_return += float(reward)
            steps += 1
            frames.append(_render(env, env_id))
        fps = env.metadata.get("render_fps") or _FALLBACK_FPS
    finally:
        env.close()
    write_video(frames, video_path, fps=fps)
    return EpisodeResult(
        env_id=env_id,
        video=video_path,
        steps=steps,
        success=bool(info.get("is_success", False)),
        episode_return=episode_return,
        instruction=str(info.get("instruction", "") or instruction),
        sheet_frames=(frames[0], frames[len(frames) // 2], frames[-1]),
    )


def _render(env: gym.Env, env_id: str) -> np.ndarray:
    """``env.render()``, checked to be an RGB ``uint8`` image."""
    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        raise RuntimeError(f"{env_id}: render() must return an (H, W, 3) array, got {type(frame)}")
    return frame.astype(np.uint8, copy=False)


def write_contact_sheet(episodes: Sequence[EpisodeResult], path: Path, size: int) -> None:
    """Writes a PNG with one labelled row of first/middle/last frames per episode.

    The image is ``FRAMES_PER_ROW * size`` wide and ``len(episodes) * (LABEL_HEIGHT + size)``
    tall; it is written under a temporary name and renamed when complete.
    """
    width, row_height = FRAMES_PER_ROW * size, LABEL_HEIGHT + size
    sheet = Image.new("RGB", (width, row_height * len(episodes)), color=(24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=_FONT_SIZE)
    for row, episode in enumerate(episodes):
        top = row * row_height
        header = (
            f"{episode.env_id}  success: {'yes' if episode.success else 'no'}  "
            f"steps: {episode.steps}  return: {episode.episode_return:.2f}"
        )
        for line, text in enumerate((header, episode.instruction)):
            text = _fit(text, font, width - 8)
            color = (255, 255, 255) if line == 0 else (200, 200, 200)
            draw.text((4, top + 3 + line * (_FONT_SIZE + 4)), text, fill=color, font=font)
        for column, frame in enumerate(episode.sheet_frames):
            image = Image.fromarray(frame)
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            sheet.paste(image, (column * size, top + LABEL_HEIGHT))
    atomic_save(path, lambda partial: sheet.save(partial, format="PNG"))


def _fit(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text`` shortened with '...' so it is at most ``width`` pixels wide."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _video_name(env_id: str, taken: set[str]) -> str:
    """File stem for ``env_id``: the part after the namespace, unique within a run."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", env_id.rsplit("/", 1)[-1])
    if name in taken:  # same name in two namespaces: fall back to the full id
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", env_id)
    taken.add(name)
    return name


def run_preview(
    env_ids: Iterable[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    policy_factory: PolicyFactory | None = None,
    log: Callable[[str], None] = print,
) -> PreviewResult:
    """Records one expert episode per environment and writes videos and a contact sheet.

    :param env_ids: ids to preview; default every id in ``envs.ENV_IDS``.
    :param out_dir: output folder; see :func:`make_output_dir` for the default and
        what happens when it already holds files.
    :param seed: reset seed, the same for every environment.
    :param size: rendered frame size in pixels (the env's ``render_size``).
    :param policy_factory: builds the acting policy per environment; default
        :func:`expert_policy_factory`.
    :param log: receives the progress lines.
    :raises UnknownEnvError: before anything is written, if an id is not registered.
    :raises ValueError: before anything is written, if an env refuses ``size``.
    """
    ids = resolve_env_ids(env_ids)
    for env_id in ids:  # a size an env refuses fails here, before the folder exists
        gym.make(env_id, render_mode="rgb_array", render_size=size).close()
    factory = policy_factory or expert_policy_factory
    out = make_output_dir(out_dir, prefix="preview")
    log(f"vmalign preview: writing to {out}")
    episodes: list[EpisodeResult] = []
    taken: set[str] = set()
    for env_id in ids:
        video = out / f"{_video_name(env_id, taken)}.mp4"
        episode = record_episode(env_id, video, seed=seed, size=size, policy_factory=factory)
        episodes.append(episode)
        log(
            f"  {env_id}: {episode.steps} steps, success {'yes' if episode.success else 'no'}, "
            f"return {episode.episode_return:.2f} -> {video.name}"
        )
    sheet = out / "contact_sheet.png"
    write_contact_sheet(episodes, sheet, size=size)
    log(f"vmalign preview: done, {len(episodes)} env(s) in {out.resolve()}")
    return PreviewResult(out_dir=out, episodes=episodes, contact_sheet=sheet)
