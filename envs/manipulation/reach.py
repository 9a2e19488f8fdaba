"""Reach: move the gripper to the ball the instruction names."""

from __future__ import annotations

from typing import Any

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
    Set by ``obs_mode``. ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3),
    uint8)``, an RGB image from ``camera``. ``"state"``: ``Box(-inf, inf, (19,),
    float32)``, privileged simulator state (world frame, metres; renders nothing):

    - 0-2: ``tcp_x``, ``tcp_y``, ``tcp_z``: tool centre point (between the finger pads)
    - 3-5: ``tcp_vel_x``, ``tcp_vel_y``, ``tcp_vel_z``: its velocity (m/s)
    - 6-8: ``hand_target_dx``, ``hand_target_dy``, ``hand_target_dz``: the hand
      target (what the action moves; the arm lags it) minus the tool centre point
    - 9: ``finger_opening``: each finger's distance from the centre (0 closed, 0.05
      open)
    - 10-12: ``target_x``, ``target_y``, ``target_z``: centre of the named ball
    - 13-15: ``target_dx``, ``target_dy``, ``target_dz``: named ball minus tool centre
      point
    - 16-18: ``distractor_x``, ``distractor_y``, ``distractor_z``: centre of the other
      ball

    ``"rgb+state"``: ``Dict({"rgb": <the image>, "state": <the vector>})``. The names
    are in ``env.unwrapped.state_names``.

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
    camera_jitter=0.0, randomize_start=False, obs_mode="rgb")``; see
    :class:`envs.manipulation.arm.ArmEnv` for each.
    Unknown keyword arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``randomize_start``, the ``"side"`` camera and lists of
      ``render_camera`` added later (off by default, so episodes are unchanged);
      ``obs_mode`` added later (default ``"rgb"``: observations unchanged).
    """

    asset = "reach.xml"
    default_colors = ("red", "blue")
    task_state = (
        "target_x", "target_y", "target_z",
        "target_dx", "target_dy", "target_dz",
        "distractor_x", "distractor_y", "distractor_z",
    )

    _start_distance = 0.0

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(render_mode, **kwargs)
        self._goal = self.model.body("goal").id
        self._distractor = self.model.body("distractor").id

    def _reset_task(self) -> str:
        goal, distractor = self.sample_colors(2)
        self.set_geom_color("goal", goal)
        self.set_geom_color("distractor", distractor)
        positions = self.sample_separated_points(2, BALL_LOW, BALL_HIGH, min_distance=0.1)
        for body, pos in zip(("goal", "distractor"), positions):
            self.data.mocap_pos[self.model.body(body).mocapid[0]] = pos
        return f"move the gripper to the {goal} ball"

    def _state(self, tcp: list[float]) -> list[float]:
        target = self.data.xpos[self._goal].tolist()
        return [*target, target[0] - tcp[0], target[1] - tcp[1], target[2] - tcp[2],
                *self.data.xpos[self._distractor].tolist()]

    def _goal_distance(self) -> float:
        # Views, not tcp's and body_pos's copies: this runs every step.
        data = self.data
        return float(np.linalg.norm(data.site_xpos[self._tcp_site] - data.xpos[self._goal]))

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
