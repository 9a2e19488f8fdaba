"""The environment's own reward, through the reward-module interface.

For reference runs: the same wrappers and logs as a learned reward, with the reward
the task designer wrote. It needs no frames, so wrappers skip rendering for it.
"""

from __future__ import annotations

import numpy as np

from rewards import arguments
from rewards.base import RewardModel
from rewards.registry import register


@register("ground_truth")
class GroundTruthReward(RewardModel):
    """Returns ``env_rewards`` unchanged (times ``scale``).

    :param scale: multiplies the environment's reward (default 1); a finite number.
    """

    needs_frames = False

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = arguments.number("scale", scale)

    def _score(self, frames, instructions, env_rewards):  # noqa: D102 - see base
        if env_rewards is None:
            raise ValueError(
                "the ground-truth reward module needs the environment's rewards "
                "(env_rewards=...); it cannot score frames alone"
            )
        return self.scale * np.asarray(env_rewards, dtype=np.float32)

    def config(self) -> dict[str, float]:
        return {"scale": self.scale}
