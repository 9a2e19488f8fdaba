"""Tasks easy enough to learn in seconds, for the training tests.

``vmalign-test/Slide-v0``: a white bar at one of 9 columns of a 32x32 image, moved
one column left or right, or kept still, per step; the task is to bring it to the
middle column (and keep it there: success is judged after the last step).
Ground-truth reward ``-|x - 4| / 4``; ``info`` carries ``is_success`` (in the middle),
``progress`` (1 - distance / start distance) and an instruction, as the vmalign envs
do. ``render()`` returns the observation, so pixel reward modules score it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "vmalign-test/Slide-v0"
COLUMNS = 9
MIDDLE = COLUMNS // 2
SIZE = 32
STEPS = 12


class SlideEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.action_space = spaces.Discrete(3)  # 0: left, 1: right, 2: stay
        self.position = 0
        self.start_distance = 1
        self.steps = 0

    def _frame(self) -> np.ndarray:
        frame = np.full((SIZE, SIZE, 3), 30, np.uint8)
        left = 2 + 3 * self.position
        frame[4:28, left:left + 3] = 255
        return frame

    def _info(self) -> dict[str, Any]:
        distance = abs(self.position - MIDDLE)
        return {"is_success": distance == 0, "progress": 1.0 - distance / self.start_distance,
                "instruction": "move the bar to the middle"}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        choices = [c for c in range(COLUMNS) if abs(c - MIDDLE) >= 2]
        self.position = int(self.np_random.choice(choices))
        self.start_distance = abs(self.position - MIDDLE)
        self.steps = 0
        return self._frame(), self._info()

    def step(self, action):
        move = {0: -1, 1: 1, 2: 0}[int(action)]
        self.position = int(np.clip(self.position + move, 0, COLUMNS - 1))
        self.steps += 1
        reward = -abs(self.position - MIDDLE) / MIDDLE
        return self._frame(), reward, False, self.steps >= STEPS, self._info()

    def render(self) -> np.ndarray | None:
        return self._frame() if self.render_mode == "rgb_array" else None

    def expert_action(self) -> int:
        if self.position == MIDDLE:
            return 2
        return 1 if self.position < MIDDLE else 0


POINT_ID = "vmalign-test/Point-v0"
POINT_STEPS = 20


class PointEnv(gym.Env):
    """``vmalign-test/Point-v0``: a point in the unit square moved by a continuous
    action (at most 0.1 per axis per step) to a fixed goal at the centre. The
    observation is the state (position, goal - position); ``render()`` draws the point
    in a 32x32 frame, so pixel reward modules score it. Reward ``-distance``, success
    within 0.1, progress ``1 - distance / start distance``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    GOAL = np.array([0.5, 0.5], np.float32)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = np.zeros(2, np.float32)
        self.start_distance = 1.0
        self.steps = 0

    def _observation(self) -> np.ndarray:
        return np.concatenate([self.position, self.GOAL - self.position]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        distance = float(np.linalg.norm(self.position - self.GOAL))
        return {"is_success": distance < 0.1, "instruction": "move the point to the centre",
                "progress": max(0.0, 1.0 - distance / self.start_distance)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        corner = self.np_random.integers(0, 2, 2).astype(np.float32)
        self.position = (0.05 + 0.1 * corner + 0.8 * corner * 0.9).astype(np.float32)
        self.start_distance = float(np.linalg.norm(self.position - self.GOAL))
        self.steps = 0
        return self._observation(), self._info()

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), -1, 1)
        self.position = np.clip(self.position + 0.1 * action, 0.0, 1.0).astype(np.float32)
        self.steps += 1
        reward = -float(np.linalg.norm(self.position - self.GOAL))
        return self._observation(), reward, False, self.steps >= POINT_STEPS, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        frame = np.full((SIZE, SIZE, 3), 30, np.uint8)
        x, y = (self.position * (SIZE - 4)).astype(int)
        frame[y:y + 4, x:x + 4] = 255
        return frame


def register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=SlideEnv)
    if POINT_ID not in gym.registry:
        gym.register(POINT_ID, entry_point=PointEnv)
