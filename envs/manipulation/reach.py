"""Reach: move the gripper to the ball the instruction names."""

from __future__ import annotations

import numpy as np

from envs.manipulation.arm import ArmEnv, TaskStatus
from envs.progress import progress_toward

SUCCESS_DISTANCE = 0.03
BALL_LOW = np.array([-0.22, -0.12, 0.06])
BALL_HIGH = np.array([0.22, 0.22, 0.25])


class ReachEnv(ArmEnv):
    """Move the gripper to the named ball, seen from a camera.

    ## Description
    A five-joint arm with a parallel-jaw gripper stands at the back of a table. Two
    balls of different colours float above the table (they do not collide); the
    episode's instruction, e.g. ``"move the gripper to the red ball"``, names one.

    ## Action space
    ``Box(-1, 1, (4,), float32)``: ``(dx, dy, dz, grip)``. The first three move the
    hand's target by up to 0.015 m per step along world x, y, z; the arm follows
    through a weld constraint. ``grip`` sets the finger opening (-1 open, +1 closed).
    In-shape values outside [-1, 1] are clipped; a wrong shape, a non-numeric dtype,
    NaN or infinity raises ``ValueError``.

    ## Observation space
    ``Box(0, 255, (obs_size, obs_size, 3), uint8)``: an RGB image from ``camera``.
    No state vector: the policy sees pixels only.

    ## Rewards
    ``-d``, the distance in metres from the tool centre point (between the finger
    pads) to the named ball's centre.

    ## Info
    ``instruction``; ``is_success`` (``d < 0.03``); ``progress`` in [0, 1], linear
    from the start distance to the success distance; ``distance`` (``d``).

    ## Starting state
    The arm starts at a fixed home pose (a random one with ``randomize_start``) with
    the gripper open above the table. Ball positions are uniform in x [-0.22, 0.22],
    y [-0.12, 0.22], z [0.06, 0.25] m, at least 0.1 m apart; colours are sampled per
    episode (``randomize_colors``).

    ## Episode end
    Truncation after 50 steps (``max_episode_steps`` at registration); termination on
    success only with ``terminate_on_success=True``.

    ## Arguments
    ``gym.make("vmalign/Reach-v0", render_mode=None, obs_size=64, camera="front",
    render_size=224, render_camera="front", terminate_on_success=False,
    randomize_colors=True, randomize_textures=False, randomize_lighting=False,
    camera_jitter=0.0, randomize_start=False)``; see :class:`envs.manipulation.arm.ArmEnv`
    for each.
    Unknown keyword arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``randomize_start``, the ``"side"`` camera and lists of
      ``render_camera`` added later (off by default, so episodes are unchanged).
    """

    asset = "reach.xml"
    default_colors = ("red", "blue")

    _start_distance = 0.0

    def _reset_task(self) -> str:
        goal, distractor = self.sample_colors(2)
        self.set_geom_color("goal", goal)
        self.set_geom_color("distractor", distractor)
        positions = self.sample_separated_points(2, BALL_LOW, BALL_HIGH, min_distance=0.1)
        for body, pos in zip(("goal", "distractor"), positions):
            self.data.mocap_pos[self.model.body(body).mocapid[0]] = pos
        return f"move the gripper to the {goal} ball"

    def _goal_distance(self) -> float:
        return float(np.linalg.norm(self.tcp - self.body_pos("goal")))

    def _evaluate(self, first: bool) -> TaskStatus:
        distance = self._goal_distance()
        if first:
            self._start_distance = distance
        return TaskStatus(
            reward=-distance,
            is_success=distance < SUCCESS_DISTANCE,
            progress=progress_toward(distance, self._start_distance, SUCCESS_DISTANCE),
            extras={"distance": distance},
        )

    def expert_action(self) -> np.ndarray:
        return self.move_toward(self.body_pos("goal"), grip=-1.0)
