"""A preference teacher that asks a vision-language model instead of a person.

In the spirit of RL-VLM-F (Wang et al. 2024), segment pairs are labelled by a VLM
rather than by a human or the ground truth; here the judge is the zero-shot CLIP
reward (:class:`rewards.clip.ClipReward`): the segment whose frames score higher
in total is preferred. The preference pipeline can then run with no human and no
ground-truth reward. It is a :class:`rewards.teachers.Teacher`, like the simulated
B-Pref teachers, whose per-step ground-truth rewards it accepts and ignores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rewards.base import RewardModel
from rewards.teachers import Teacher


class ClipTeacher(Teacher):
    """Labels segment pairs by their summed zero-shot reward.

    With ``S_a = sum_t R(a_t)`` and ``S_b`` likewise, the label is 1 (``a`` preferred)
    if ``S_a - S_b > tie_threshold``, 0 if ``S_b - S_a > tie_threshold``, and 0.5 (a
    tie, "equally good") otherwise.

    :param reward: the judge, a frame-scoring reward module, normally
        ``rewards.make("clip", ...)``.
    :param tie_threshold: largest ``|S_a - S_b|`` labelled a tie, in units of summed
        reward over a segment (>= 0). Zero-shot CLIP scores have no natural unit, so
        calibrate it per model; the default 0 labels only exact ties 0.5.

    It never skips a query (no NaN labels).
    """

    name = "clip"

    def __init__(self, reward: RewardModel, tie_threshold: float = 0.0) -> None:
        if not isinstance(reward, RewardModel) or not reward.needs_frames \
                or reward.needs_trajectory:
            raise TypeError("the teacher's reward must be a RewardModel that scores single "
                            f"frames (e.g. rewards.make('clip')), got {type(reward).__name__}")
        if not tie_threshold >= 0.0:
            raise ValueError(f"tie_threshold must be >= 0, got {tie_threshold!r}")
        self.reward = reward
        self.tie_threshold = float(tie_threshold)

    def segment_scores(self, frames: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        """Summed reward ``(N,)`` of ``N`` segments ``uint8 (N, T, H, W, 3)``, one
        instruction per segment, scored in one batched call."""
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"segments must have shape (N, T, H, W, 3), got {frames.shape}")
        count, length = frames.shape[:2]
        instructions = _instruction_list(instructions, count)
        per_frame = [text for text in instructions for _ in range(length)]
        rewards = self.reward(frames.reshape(count * length, *frames.shape[2:]), per_frame)
        return rewards.reshape(count, length).sum(axis=1, dtype=np.float64)

    def label(
        self,
        frames_a: np.ndarray,
        frames_b: np.ndarray,
        instructions: Sequence[str],
        rewards_a: np.ndarray | None = None,
        rewards_b: np.ndarray | None = None,
    ) -> np.ndarray:
        """Labels ``N`` pairs of segments ``uint8 (N, T, H, W, 3)``: float32 ``(N,)`` in
        {0, 0.5, 1}, 1 where ``a`` is preferred. ``rewards_a`` / ``rewards_b`` (the
        ground truth the simulated teachers use) are accepted for the shared interface
        and ignored."""
        if frames_a is None or frames_b is None:
            raise ValueError("the CLIP teacher judges pixels: pass frames_a and frames_b, "
                             "uint8 (N, T, H, W, 3)")
        frames_a, frames_b = np.asarray(frames_a), np.asarray(frames_b)
        if frames_a.shape != frames_b.shape:
            raise ValueError(f"segments a {frames_a.shape} and b {frames_b.shape} must have "
                             f"the same shape (N, T, H, W, 3)")
        instructions = _instruction_list(instructions, len(frames_a))
        # Both sides in one call: one model batch, and identical numerics for a and b.
        scores = self.segment_scores(np.concatenate([frames_a, frames_b]), instructions * 2)
        difference = scores[: len(frames_a)] - scores[len(frames_a):]
        labels = np.full(len(frames_a), 0.5, dtype=np.float32)
        labels[difference > self.tie_threshold] = 1.0
        labels[difference < -self.tie_threshold] = 0.0
        return labels


def _instruction_list(instructions: Sequence[str], count: int) -> list[str]:
    """The instructions as ``count`` strings (one per segment), or a ``ValueError``."""
    if isinstance(instructions, str):
        raise ValueError("instructions must be a list of strings, one per segment, not one string")
    result = list(instructions)
    if len(result) != count or not all(isinstance(text, str) for text in result):
        raise ValueError(f"expected {count} instruction strings (one per segment), "
                         f"got {result!r:.200}")
    return result
