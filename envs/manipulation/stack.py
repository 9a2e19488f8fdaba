"""Stack: put one cube on top of the other."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from envs.manipulation.arm import ArmEnv, TaskStatus
from envs.manipulation.pick_place import CLEARANCE, pick_and_place_action, placement_status

CUBE_HALF = 0.025
CUBE_SIZE = 2 * CUBE_HALF
ALIGN_DISTANCE = 0.02
"""Largest horizontal offset between the two cubes' centres that counts as stacked."""
HEIGHT_TOLERANCE = 0.01
"""Allowed deviation of the centres' height difference from one cube size (5 cm)."""
START_LOW = np.array([-0.2, -0.1])
START_HIGH = np.array([0.2, 0.2])
MIN_SEPARATION = 0.12
"""Minimum distance between the cubes' centres at the start: open fingers around one
cube stay clear of the other."""


def is_stacked(top: Sequence[float], base: Sequence[float]) -> bool:
    """Whether the cube centred at ``top`` sits on the one centred at ``base``."""
    aligned = math.hypot(top[0] - base[0], top[1] - base[1]) < ALIGN_DISTANCE
    return aligned and abs(top[2] - base[2] - CUBE_SIZE) <= HEIGHT_TOLERANCE


class StackEnv(ArmEnv):
    """Stack the named cube on the other one, seen from a camera.

    ## Description
    A five-joint arm with a parallel-jaw gripper stands at the back of a table with
    two 5 cm cubes of different colours on it. The instruction, e.g. ``"stack the
    red cube on the blue cube"``, names the cube to move first and the cube to put
    it on second. Both cubes are free; the bottom one can be pushed or knocked over.

    ## Action space
    ``Box(-1, 1, (4,), float32)``: ``(dx, dy, dz, grip)``. The first three move the
    hand's target by up to 0.015 m per step along world x, y, z; the arm follows
    through a weld constraint. ``grip`` sets the finger opening (-1 open, +1 closed).
    In-shape values outside [-1, 1] are clipped; a wrong shape, a non-numeric dtype,
    NaN or infinity raises ``ValueError``.

    ## Observation space
    Set by ``obs_mode``. ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3),
    uint8)``, an RGB image from ``camera``. ``"state"``: ``Box(-inf, inf, (26,),
    float32)``, privileged simulator state (world frame, metres; renders nothing):

    - 0-2: ``tcp_x``, ``tcp_y``, ``tcp_z``: tool centre point (between the finger pads)
    - 3-5: ``tcp_vel_x``, ``tcp_vel_y``, ``tcp_vel_z``: its velocity (m/s)
    - 6-8: ``hand_target_dx``, ``hand_target_dy``, ``hand_target_dz``: the hand
      target (what the action moves; the arm lags it) minus the tool centre point
    - 9: ``finger_opening``: each finger's distance from the centre (0 closed, 0.05
      open)
    - 10-12: ``cube_x``, ``cube_y``, ``cube_z``: centre of the cube to move (named
      first)
    - 13-14: ``cube_yaw_sin``, ``cube_yaw_cos``: sine and cosine of 4 x its yaw (its
      x axis' heading about the vertical; a cube looks the same every quarter turn,
      and the fingers grasp it square)
    - 15-17: ``base_x``, ``base_y``, ``base_z``: centre of the cube to stack it on
    - 18-19: ``base_yaw_sin``, ``base_yaw_cos``: the same of the base cube's yaw
    - 20-22: ``cube_dx``, ``cube_dy``, ``cube_dz``: cube to move minus tool centre
      point
    - 23-25: ``place_dx``, ``place_dy``, ``place_dz``: placement point (5 cm above the
      base cube's centre) minus the cube to move (``d_place`` is its length)

    ``"rgb+state"``: ``Dict({"rgb": <the image>, "state": <the vector>})``. The names
    are in ``env.unwrapped.state_names``.

    ## Rewards
    With ``d_place`` the distance in metres from the moved cube's centre to the
    placement point (5 cm straight above the bottom cube's centre, wherever that cube
    is now) and ``d_hand`` the distance from the tool centre point (between the
    finger pads) to the moved cube's centre:

    - v0: ``-(d_hand + 2 * d_place)``, plus 1 on every step with success (state PPO
      learned nothing from it in 500k steps: 0% success).
    - v1: staged and bounded in [0, 4], as PickPlace-v1's:
      ``1 - tanh(5 * d_hand)`` (reach the moved cube), plus, while both finger pads
      touch it (*grasped*), ``1 + 1 - tanh(5 * d_place)``, and 4, the maximum, on
      every step with success.

    ## Info
    ``instruction``; ``is_success``: the moved cube's centre is within 2 cm of the
    bottom cube's centre horizontally and 5 cm +- 1 cm above it (a cube still held
    there counts); ``progress`` in [0, 1]: 1 on success, otherwise linear in
    ``d_place`` from its start value (0) to 0.01 m (1); ``place_distance``
    (``d_place``), ``hand_distance`` (``d_hand``) and ``cube_height`` (the moved
    cube's centre above the table); v1 adds ``grasped``.

    ## Starting state
    The arm starts at a fixed home pose (a random one with ``randomize_start``) with
    the gripper open. Both cubes stand upright on the table, centred uniformly in x
    [-0.2, 0.2], y [-0.1, 0.2] m, at least 0.12 m apart; colours are sampled per
    episode (``randomize_colors``; red on blue otherwise).

    ## Episode end
    Truncation after 150 steps (``max_episode_steps`` at registration); termination
    on success only with ``terminate_on_success=True``.

    ## Arguments
    ``gym.make("vmalign/Stack-v0", render_mode=None, obs_size=64, camera="front",
    render_size=224, render_camera="front", terminate_on_success=False,
    randomize_colors=True, randomize_textures=False, randomize_lighting=False,
    camera_jitter=0.0, randomize_start=False, obs_mode="rgb")`` (the same for
    ``"vmalign/Stack-v1"``); see :class:`envs.manipulation.arm.ArmEnv` for each.
    Unknown keyword arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``randomize_start``, the ``"side"`` camera and lists of
      ``render_camera`` added later (off by default, so episodes are unchanged);
      ``obs_mode`` added later (default ``"rgb"``: observations unchanged).
    - v1 (:class:`StackV1Env`): the staged, bounded v1 reward above. Observations,
      success, ``progress``, ``info`` (plus ``grasped``) and the dynamics are as in
      v0; v0 stays registered and unchanged.
    """

    asset = "stack.xml"
    default_colors = ("red", "blue")
    task_state = (
        "cube_x", "cube_y", "cube_z", "cube_yaw_sin", "cube_yaw_cos",
        "base_x", "base_y", "base_z", "base_yaw_sin", "base_yaw_cos",
        "cube_dx", "cube_dy", "cube_dz",
        "place_dx", "place_dy", "place_dz",
    )

    _start_distance = 0.0

    def __init__(self, render_mode: str | None = None, **kwargs) -> None:
        super().__init__(render_mode, **kwargs)
        model = self.model
        self._moved = model.body("cube_a").id
        self._base = model.body("cube_b").id

    def _reset_task(self) -> str:
        moved_color, base_color = self.sample_colors(2)
        self.set_geom_color("cube_a", moved_color)
        self.set_geom_color("cube_b", base_color)
        positions = self.sample_separated_points(2, START_LOW, START_HIGH, MIN_SEPARATION)
        for body, xy in zip(("cube_a", "cube_b"), positions):
            self.set_free_body_pose(body, np.append(xy, CUBE_HALF))
        return f"stack the {moved_color} cube on the {base_color} cube"

    def _state(self, tcp: list[float]) -> list[float]:
        moved = self.data.xpos[self._moved].tolist()
        base = self.data.xpos[self._base].tolist()
        return [*moved, *self.cube_yaw_features(self._moved),
                *base, *self.cube_yaw_features(self._base),
                moved[0] - tcp[0], moved[1] - tcp[1], moved[2] - tcp[2],
                base[0] - moved[0], base[1] - moved[1], base[2] + CUBE_SIZE - moved[2]]

    def _evaluate(self, first: bool) -> TaskStatus:
        # Plain floats: cheaper than numpy on 3-vectors, and this runs every step.
        moved = self.data.xpos[self._moved].tolist()
        base = self.data.xpos[self._base].tolist()
        tcp = self.data.site_xpos[self._tcp_site].tolist()
        place_distance = math.dist(moved, (base[0], base[1], base[2] + CUBE_SIZE))
        hand_distance = math.dist(tcp, moved)
        if first:
            self._start_distance = place_distance
        success = is_stacked(moved, base)
        return placement_status(
            success, place_distance, hand_distance, moved[2], self._start_distance,
            grasped=self.grasps(self._moved) if self.reward_version else None,
        )

    def expert_action(self) -> np.ndarray:
        """Grasp the moved cube, lift, carry over the other, set down, let go, rise.

        The same memoryless pick-and-place script as PickPlace's expert, aimed at the
        bottom cube's current position.
        """
        moved, base = self.data.xpos[self._moved].copy(), self.data.xpos[self._base].copy()
        place = base + (0.0, 0.0, CUBE_SIZE)
        return pick_and_place_action(
            self.tcp, self.finger_opening, moved, place,
            base[2] + CUBE_SIZE + CUBE_HALF + CLEARANCE, placed=is_stacked(moved, base),
        )


class StackV1Env(StackEnv):
    """``vmalign/Stack-v1``: :class:`StackEnv` with the staged, bounded v1 reward; the
    contract is :class:`StackEnv`'s (its Rewards section and version history give
    both versions)."""

    reward_version = 1
