"""PickPlace: pick up the cube and put it on the raised platform."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from envs.manipulation.arm import MAX_DELTA, ArmEnv, TaskStatus
from envs.progress import progress_toward

CUBE_HALF = 0.025
PLATFORM_HALF = 0.05
"""Half the side of the platform's square top, in metres."""
PLATFORM_HEIGHT = 0.06
"""Height of the platform's top above the table, in metres."""
PLACE_MARGIN = 0.01
"""The cube's centre must lie this far inside the platform top's edges."""
REST_TOLERANCE = 0.01
"""The cube's bottom may be up to this far above the platform top (and 5 mm into it)."""
PROGRESS_DISTANCE = 0.01
"""Placement distance at which ``progress`` reaches 1: any state this close succeeds."""
SUCCESS_BONUS = 1.0
START_LOW = np.array([-0.2, -0.1])
START_HIGH = np.array([0.2, 0.2])
MIN_SEPARATION = 0.16
"""Minimum distance between the cube's and the platform's centres at the start."""

# v1 reward (staged; see PickPlaceEnv's docstring), shared with Stack.
STAGE_SHARPNESS = 5.0
"""The ``k`` of the ``1 - tanh(k * d)`` reach and place terms, per metre."""
STAGED_SUCCESS_REWARD = 4.0
"""Reward of a step with success under v1: more than the 3 the stages can reach, so
a placed cube beats any state short of it."""

# Scripted expert.
GRASP_OFFSET = 0.01
"""TCP height above the cube's centre for a grasp: pads over its upper part."""
HOVER = 0.08
"""Height of the TCP above its grasp point while lining up over the cube."""
CLEARANCE = 0.05
"""Height of the carried cube's bottom above the platform top while carrying."""
CARRY_SPEED = 0.6
"""Action scale while holding the cube: ~1 cm per step, which the grasp survives."""


def platform_contains(cube: Sequence[float], platform_top: Sequence[float]) -> bool:
    """Whether the cube's centre is over the platform top, ``PLACE_MARGIN`` inside."""
    inside = PLATFORM_HALF - PLACE_MARGIN
    return abs(cube[0] - platform_top[0]) < inside and abs(cube[1] - platform_top[1]) < inside


def rests_on(cube: Sequence[float], surface_z: float) -> bool:
    """Whether the cube's bottom is on a surface at height ``surface_z`` (or just above)."""
    gap = cube[2] - CUBE_HALF - surface_z
    return -0.005 <= gap <= REST_TOLERANCE


def staged_placement_reward(
    success: bool, hand_distance: float, grasped: bool, place_distance: float
) -> float:
    """The v1 reward of a place-the-cube task, in [0, 4] (ManiSkill's PickCube stages).

    Reach the cube (``1 - tanh(5 * hand_distance)``); while both fingers hold it, 1
    for the grasp plus ``1 - tanh(5 * place_distance)`` for carrying it to the
    placement point; :data:`STAGED_SUCCESS_REWARD` on success, whatever the rest.
    """
    if success:
        return STAGED_SUCCESS_REWARD
    reward = 1.0 - math.tanh(STAGE_SHARPNESS * hand_distance)
    if grasped:  # the carry counts only for a held cube, so pushing it along does not pay
        reward += 2.0 - math.tanh(STAGE_SHARPNESS * place_distance)
    return reward


def placement_status(
    success: bool, place_distance: float, hand_distance: float, cube_height: float,
    start_distance: float, grasped: bool | None = None,
) -> TaskStatus:
    """Reward, progress and info of a place-the-cube task (PickPlace and Stack).

    v0 (``grasped`` None): reward ``-(hand_distance + 2 * place_distance)`` plus
    :data:`SUCCESS_BONUS` on success. v1 (``grasped`` given: whether both fingers
    touch the cube): :func:`staged_placement_reward`, and ``grasped`` in the extras.
    Progress is linear in ``place_distance`` from its start value down to
    :data:`PROGRESS_DISTANCE`, and 1 on success.
    """
    progress = 1.0 if success else progress_toward(
        place_distance, start_distance, PROGRESS_DISTANCE
    )
    extras = {
        "place_distance": place_distance,
        "hand_distance": hand_distance,
        "cube_height": cube_height,
    }
    if grasped is None:
        reward = -(hand_distance + 2.0 * place_distance) + SUCCESS_BONUS * success
    else:
        reward = staged_placement_reward(success, hand_distance, grasped, place_distance)
        extras["grasped"] = grasped
    return TaskStatus(reward=reward, is_success=success, progress=progress, extras=extras)


class PickPlaceEnv(ArmEnv):
    """Pick up the cube and put it on the platform, seen from a camera.

    ## Description
    A five-joint arm with a parallel-jaw gripper stands at the back of a table with
    a 5 cm cube and a raised square platform (top 10 x 10 cm, 6 cm above the table)
    on it. The instruction, e.g. ``"put the red cube on the green platform"``, names
    both colours. The cube has to be grasped, lifted over the platform and set down
    on its top; the platform does not move.

    ## Action space
    ``Box(-1, 1, (4,), float32)``: ``(dx, dy, dz, grip)``. The first three move the
    hand's target by up to 0.015 m per step along world x, y, z; the arm follows
    through a weld constraint. ``grip`` sets the finger opening (-1 open, +1 closed).
    In-shape values outside [-1, 1] are clipped; a wrong shape, a non-numeric dtype,
    NaN or infinity raises ``ValueError``.

    ## Observation space
    Set by ``obs_mode``. ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3),
    uint8)``, an RGB image from ``camera``. ``"state"``: ``Box(-inf, inf, (24,),
    float32)``, privileged simulator state (world frame, metres; renders nothing):

    - 0-2: ``tcp_x``, ``tcp_y``, ``tcp_z``: tool centre point (between the finger pads)
    - 3-5: ``tcp_vel_x``, ``tcp_vel_y``, ``tcp_vel_z``: its velocity (m/s)
    - 6-8: ``hand_target_dx``, ``hand_target_dy``, ``hand_target_dz``: the hand
      target (what the action moves; the arm lags it) minus the tool centre point
    - 9: ``finger_opening``: each finger's distance from the centre (0 closed, 0.05
      open)
    - 10-12: ``cube_x``, ``cube_y``, ``cube_z``: centre of the cube
    - 13-14: ``cube_yaw_sin``, ``cube_yaw_cos``: sine and cosine of 4 x the cube's yaw
      (its x axis' heading about the vertical; a cube looks the same every quarter
      turn, and the fingers grasp it square)
    - 15-17: ``place_x``, ``place_y``, ``place_z``: the placement point (the cube's
      centre when it rests on the middle of the platform top)
    - 18-20: ``cube_dx``, ``cube_dy``, ``cube_dz``: cube minus tool centre point
    - 21-23: ``place_dx``, ``place_dy``, ``place_dz``: placement point minus cube
      (``d_place`` is its length)

    ``"rgb+state"``: ``Dict({"rgb": <the image>, "state": <the vector>})``. The names
    are in ``env.unwrapped.state_names``.

    ## Rewards
    With ``d_place`` the distance in metres from the cube's centre to the placement
    point (the centre of a cube resting on the middle of the platform top, 8.5 cm
    above the table) and ``d_hand`` the distance from the tool centre point (between
    the finger pads) to the cube's centre:

    - v0: ``-(d_hand + 2 * d_place)``, plus 1 on every step with success. Unbounded;
      nothing in it rewards closing the fingers on the cube, and state PPO learned
      nothing from it in 500k steps (0% success).
    - v1: staged and bounded in [0, 4], as ManiSkill's PickCube:
      ``1 - tanh(5 * d_hand)`` (reach the cube), plus, while both finger pads touch
      the cube (*grasped*), ``1 + 1 - tanh(5 * d_place)`` (hold it and carry it to
      the placement point), and 4, the maximum, on every step with success.

    ## Info
    ``instruction``; ``is_success``: the cube's centre lies over the platform top at
    least 1 cm inside its edges and the cube's bottom is between 5 mm below and 1 cm
    above the top (a cube still held that low counts); ``progress`` in [0, 1]: 1 on
    success, otherwise linear in ``d_place`` from its start value (0) to 0.01 m (1);
    ``place_distance`` (``d_place``), ``hand_distance`` (``d_hand``) and
    ``cube_height`` (the cube's centre above the table); v1 adds ``grasped``.

    ## Starting state
    The arm starts at a fixed home pose (a random one with ``randomize_start``) with
    the gripper open. The cube (upright, on the table) and the platform are centred
    uniformly in x [-0.2, 0.2], y [-0.1, 0.2] m, at least 0.16 m apart; colours are
    sampled per episode (``randomize_colors``; fixed red cube and green platform
    otherwise).

    ## Episode end
    Truncation after 120 steps (``max_episode_steps`` at registration); termination
    on success only with ``terminate_on_success=True``.

    ## Arguments
    ``gym.make("vmalign/PickPlace-v0", render_mode=None, obs_size=64,
    camera="front", render_size=224, render_camera="front",
    terminate_on_success=False, randomize_colors=True, randomize_textures=False,
    randomize_lighting=False, camera_jitter=0.0, randomize_start=False,
    obs_mode="rgb")`` (the same for ``"vmalign/PickPlace-v1"``); see
    :class:`envs.manipulation.arm.ArmEnv` for each. Unknown keyword arguments raise
    ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``randomize_start``, the ``"side"`` camera and lists of
      ``render_camera`` added later (off by default, so episodes are unchanged);
      ``obs_mode`` added later (default ``"rgb"``: observations unchanged).
    - v1 (:class:`PickPlaceV1Env`): the staged, bounded v1 reward above.
      Observations, success, ``progress``, ``info`` (plus ``grasped``) and the
      dynamics are as in v0; v0 stays registered and unchanged.
    """

    asset = "pick_place.xml"
    default_colors = ("red", "green")
    task_state = (
        "cube_x", "cube_y", "cube_z", "cube_yaw_sin", "cube_yaw_cos",
        "place_x", "place_y", "place_z",
        "cube_dx", "cube_dy", "cube_dz",
        "place_dx", "place_dy", "place_dz",
    )

    _start_distance = 0.0

    def __init__(self, render_mode: str | None = None, **kwargs) -> None:
        super().__init__(render_mode, **kwargs)
        model = self.model
        self._cube = model.body("cube").id
        self._platform_mocap = model.body("platform").mocapid[0]

    def _reset_task(self) -> str:
        cube_color, platform_color = self.sample_colors(2)
        self.set_geom_color("cube", cube_color)
        self.set_geom_color("platform", platform_color)
        cube, platform = self.sample_separated_points(2, START_LOW, START_HIGH, MIN_SEPARATION)
        self.set_free_body_pose("cube", np.append(cube, CUBE_HALF))
        self.data.mocap_pos[self._platform_mocap] = np.append(platform, PLATFORM_HEIGHT / 2)
        return f"put the {cube_color} cube on the {platform_color} platform"

    # ----------------------------------------------------------- state
    def _cube_pos(self) -> np.ndarray:
        return self.data.xpos[self._cube]

    def _platform_top(self) -> list[float]:
        """Centre of the platform's top face (x, y, z)."""
        x, y, _ = self.data.mocap_pos[self._platform_mocap].tolist()
        return [x, y, PLATFORM_HEIGHT]

    def _placement_point(self) -> np.ndarray:
        """Where the cube's centre is when it rests on the middle of the platform."""
        x, y, z = self._platform_top()
        return np.array([x, y, z + CUBE_HALF])

    def _state(self, tcp: list[float]) -> list[float]:
        cube = self.data.xpos[self._cube].tolist()
        x, y, z = self._platform_top()
        place = (x, y, z + CUBE_HALF)
        return [*cube, *self.cube_yaw_features(self._cube), *place,
                cube[0] - tcp[0], cube[1] - tcp[1], cube[2] - tcp[2],
                place[0] - cube[0], place[1] - cube[1], place[2] - cube[2]]

    def _evaluate(self, first: bool) -> TaskStatus:
        # Plain floats: this runs every step, and numpy's per-call overhead on
        # 3-vectors would cost more than the rest of the function.
        cube = self.data.xpos[self._cube].tolist()
        tcp = self.data.site_xpos[self._tcp_site].tolist()
        top = self._platform_top()
        place_distance = math.dist(cube, (top[0], top[1], top[2] + CUBE_HALF))
        hand_distance = math.dist(tcp, cube)
        if first:
            self._start_distance = place_distance
        success = platform_contains(cube, top) and rests_on(cube, top[2])
        return placement_status(
            success, place_distance, hand_distance, cube[2], self._start_distance,
            grasped=self.grasps(self._cube) if self.reward_version else None,
        )

    # ---------------------------------------------------------- expert
    def expert_action(self) -> np.ndarray:
        """Grasp from above, lift, carry over the platform, set down, let go, rise.

        A function of the current state only (no memory), so it recovers from a
        dropped or displaced cube by starting over from wherever things are.
        """
        cube = self._cube_pos().copy()
        tcp = self.tcp
        top = self._platform_top()
        return pick_and_place_action(
            tcp, self.finger_opening, cube, self._placement_point(),
            top[2] + CUBE_HALF + CLEARANCE,
            placed=platform_contains(cube, top) and rests_on(cube, top[2]),
        )


class PickPlaceV1Env(PickPlaceEnv):
    """``vmalign/PickPlace-v1``: :class:`PickPlaceEnv` with the staged, bounded v1
    reward; the contract is :class:`PickPlaceEnv`'s (its Rewards section and version
    history give both versions)."""

    reward_version = 1


def pick_and_place_action(
    tcp: np.ndarray,
    opening: float,
    cube: np.ndarray,
    place: np.ndarray,
    carry_height: float,
    placed: bool,
) -> np.ndarray:
    """One step of the scripted pick-and-place expert (shared with Stack).

    :param tcp: tool centre point.
    :param opening: finger opening in metres (0 closed .. 0.05 open).
    :param cube: centre of the cube to move.
    :param place: where the cube's centre should end up.
    :param carry_height: height of the cube's centre while it is carried over.
    :param placed: whether the cube already rests where it should.
    """
    grasp = cube + (0.0, 0.0, GRASP_OFFSET)
    to_grasp = grasp - tcp
    held = (
        np.linalg.norm(to_grasp[:2]) < 0.02
        and abs(to_grasp[2]) < 0.02
        and 0.012 < opening < 0.03
    )
    if placed:
        if opening < 0.035 and tcp[2] < cube[2] + 0.03:
            return _toward(tcp, tcp, grip=-1.0)  # let go before moving
        return _toward(tcp, np.append(tcp[:2], place[2] + 0.1), grip=-1.0)
    if held:
        # Steer the cube, not the hand: the hand goes where the cube must go plus
        # the hand's offset from the cube, which absorbs slip in the fingers.
        offset = tcp - cube
        remaining = place[:2] - cube[:2]
        if np.linalg.norm(remaining) > 0.008:
            if cube[2] < carry_height - 0.015 and np.linalg.norm(remaining) > 0.03:
                goal = np.append(cube[:2], carry_height)  # lift straight up first
            else:
                goal = np.append(place[:2], carry_height)
        else:
            goal = place - (0.0, 0.0, 0.004)  # press gently onto the surface
        return _toward(tcp, goal + offset, grip=1.0, scale=CARRY_SPEED)
    # Not holding the cube: line up above it, descend with open fingers, close.
    xy_error = np.linalg.norm(to_grasp[:2])
    hover = grasp[2] + HOVER
    if xy_error > 0.012:
        if tcp[2] < hover - 0.02 and xy_error > 0.03:
            return _toward(tcp, np.append(tcp[:2], hover), grip=-1.0)  # rise first
        # Fly over at about the current height (no lower than hover, no higher
        # than 5 cm above it), then descend once lined up.
        height = min(max(tcp[2], hover), hover + 0.05)
        return _toward(tcp, np.append(grasp[:2], height), grip=-1.0)
    if to_grasp[2] < -0.006:
        return _toward(tcp, grasp, grip=-1.0)  # descend, fingers open
    return _toward(tcp, grasp, grip=1.0)  # at the grasp point: close


def _toward(tcp: np.ndarray, point: np.ndarray, grip: float, scale: float = 1.0) -> np.ndarray:
    """The action that moves the TCP toward ``point``, at most ``scale`` of full speed."""
    delta = np.clip((np.asarray(point) - tcp) / MAX_DELTA, -scale, scale)
    return np.append(delta, grip).astype(np.float32)
