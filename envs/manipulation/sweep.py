"""Sweep: push scattered debris into the goal zone, with a gripper or a stick."""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from envs.checks import check_choice
from envs.manipulation.arm import SLEEP_FLAG, ArmEnv, TaskStatus

NUM_DEBRIS = 4
DEBRIS_HALF = 0.015
"""Half the edge of a debris cube, in metres (3 cm cubes)."""

ZONE_LOW = np.array([-0.3, 0.17])
ZONE_HIGH = np.array([0.3, 0.3])
"""The goal zone, a rectangle on the table (x, y in metres); matches ``sweep.xml``."""

_ZONE_STATE = (*((ZONE_LOW + ZONE_HIGH) / 2).tolist(), *((ZONE_HIGH - ZONE_LOW) / 2).tolist())
"""The zone's centre and half extents, as the state vector lists them."""

DEBRIS_LOW = np.array([-0.2, -0.12])
DEBRIS_HIGH = np.array([0.2, 0.05])
MIN_SEPARATION = 0.07
"""Debris centres start uniform in [DEBRIS_LOW, DEBRIS_HIGH], this far apart."""


HAND_WEIGHT = 0.1
IN_ZONE_BONUS = 0.25

# v1 reward (staged; see SweepEnv's docstring).
REACH_SHARPNESS = 5.0
ZONE_SHARPNESS = 5.0
"""The ``k`` of the ``1 - tanh(k * d)`` terms, per metre: the farthest pieces start
about 0.3 m from the zone and still get a gradient."""
ZONE_WEIGHT = 2.0

STICK_LENGTHS = {"short_stick": 0.08, "medium_stick": 0.16, "long_stick": 0.26}
"""Total length (along world x) of each stick end effector, in metres."""
EMBODIMENTS = ("gripper", *STICK_LENGTHS)
STICK_HALF_THICKNESS = 0.01
STICK_RGBA = (0.62, 0.68, 0.8, 1.0)
"""Steel blue-grey: unlike the robot's white and black and every debris colour."""

FINGER_HALF_WIDTH = 0.012
"""Half the x extent of the closed finger pads (two 12 mm wide pads side by side)."""
FINGER_HALF_DEPTH = 0.012
"""Half the y extent of a finger pad, and of the stick's pushing face."""

PUSH_HEIGHT = 0.032
"""TCP height while pushing: the tool's bottom (TCP z - 0.03) 2 mm above the table."""
CLEAR_HEIGHT = 0.072
"""TCP height above which the tool passes over debris (3 cm tall) without touching."""
HOVER_HEIGHT = 0.09
DONE_Y = ZONE_LOW[1] + 0.025
"""The expert pushes each piece until its centre is this far into the zone."""
PRE_PUSH_GAP = 0.012
"""Clearance between tool and debris where the expert lowers the tool."""
DECOY_SPOTS = ((np.nan, float(ZONE_LOW[1] + ZONE_HIGH[1]) / 2), (-0.27, -0.03), (0.27, -0.03))
"""Where the decoy parks the lowered tool (x, y): in the goal zone (x: the pieces'
mean), at the table's left edge, at its right edge; clear of every piece's start
for the gripper (a long stick's ends may reach the outermost pieces)."""


def push_distance(tcp: np.ndarray, pieces: np.ndarray, tool_half_width: float,
                  tool_half_depth: float) -> float:
    """The v1 reward's ``d_push``: from the tool centre point to the nearest push point
    of the ``pieces`` (n, 3) still outside the zone.

    A piece's push point lies just behind it (toward the robot, -y) at the pushing
    height: the tool's front face :data:`PRE_PUSH_GAP` from the piece's back face.
    Along x, a tool wider than a piece may be off-centre by the difference.
    """
    behind = pieces[:, 1] - DEBRIS_HALF - tool_half_depth - PRE_PUSH_GAP
    slack = max(tool_half_width - DEBRIS_HALF, 0.0)
    dx = np.maximum(np.abs(tcp[0] - pieces[:, 0]) - slack, 0.0)
    squared = dx**2 + (tcp[1] - behind) ** 2 + (tcp[2] - PUSH_HEIGHT) ** 2
    return float(np.sqrt(squared.min()))


def zone_distances(xy: np.ndarray) -> np.ndarray:
    """Horizontal distance of each point in ``xy`` (n, 2) to the zone; 0 inside."""
    outside = np.maximum(np.maximum(ZONE_LOW - xy, xy - ZONE_HIGH), 0.0)
    return np.sqrt((outside**2).sum(axis=1))


def push_speed(lead_y: float) -> float:
    """Fraction of full speed for the expert's push, given the leading piece's y.

    A light cube pushed at full speed (0.75 m/s) slides on several centimetres
    after contact ends, out past the zone's far edge; so slow down near the zone.
    """
    return float(np.clip((DONE_Y + 0.03 - lead_y) / 0.1, 0.3, 1.0))


def debris_progress(distance: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per-piece progress: linear from the start distance (0) to the zone (1)."""
    return np.clip(1.0 - distance / np.maximum(start, 1e-9), 0.0, 1.0)


class SweepEnv(ArmEnv):
    """Sweep the scattered debris into the goal zone, seen from a camera.

    ## Description
    The X-Magical "sweep to top" task on a tabletop arm. Four light 3 cm cubes of
    one colour (the debris) lie scattered on the near half of the table; a flat
    coloured strip along the far side, x in [-0.3, 0.3] and y in [0.17, 0.3] m,
    is the goal zone (visual only; it does not collide). The instruction, e.g.
    ``"sweep the yellow debris into the green zone"``, names both colours.

    The ``embodiment`` argument chooses the end effector, as X-Magical's
    cross-embodiment setting does: ``"gripper"`` keeps the parallel-jaw gripper;
    ``"short_stick"``, ``"medium_stick"`` and ``"long_stick"`` replace the fingers
    with a rigid horizontal bar along world x, 0.08, 0.16 and 0.26 m long (2 cm
    square section, steel grey), mounted where the fingers were so that its bottom
    is at TCP z - 0.03 like the fingertips. Longer sticks sweep more at once.

    ## Action space
    ``Box(-1, 1, (4,), float32)`` for every embodiment: ``(dx, dy, dz, grip)``. The
    first three move the hand's target by up to 0.015 m per step along world x, y,
    z; the arm follows through a weld constraint. With the gripper, ``grip`` sets
    the finger opening (-1 open, +1 closed); with a stick it is ignored (accepted
    and checked, so policies and reward models transfer between embodiments).
    In-shape values outside [-1, 1] are clipped; a wrong shape, a non-numeric
    dtype, NaN or infinity raises ``ValueError``.

    ## Observation space
    Set by ``obs_mode``. ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3),
    uint8)``, an RGB image from ``camera``. ``"state"``: ``Box(-inf, inf, (47,),
    float32)``, privileged simulator state (world frame, metres; renders nothing):

    - 0-2: ``tcp_x``, ``tcp_y``, ``tcp_z``: tool centre point (between the finger pads,
      or where they were for a stick: the stick's bottom is 3 cm below it)
    - 3-5: ``tcp_vel_x``, ``tcp_vel_y``, ``tcp_vel_z``: its velocity (m/s)
    - 6-8: ``hand_target_dx``, ``hand_target_dy``, ``hand_target_dz``: the hand
      target (what the action moves; the arm lags it) minus the tool centre point
    - 9: ``finger_opening``: each finger's distance from the centre (0 closed, 0.05
      open); always 0 with a stick
    - 10: ``tool_half_width``: half the pushing face's extent along x (0.012 for the
      closed fingers; 0.04, 0.08, 0.13 for the short, medium and long stick)
    - 11-12: ``zone_x``, ``zone_y``: centre of the goal zone (fixed: 0, 0.235)
    - 13-14: ``zone_half_x``, ``zone_half_y``: its half extents (fixed: 0.3, 0.065)
    - 15 + 8i to 22 + 8i, for piece i = 0..3: ``debris{i}_x``, ``debris{i}_y``,
      ``debris{i}_z``, ``debris{i}_dx``, ``debris{i}_dy``, ``debris{i}_dz``,
      ``debris{i}_zone_dx``, ``debris{i}_zone_dy``: the piece's centre, the centre
      minus the tool centre point, and the nearest point of the zone minus the
      centre (horizontal; 0 inside the zone; ``d_i`` is its length)

    ``"rgb+state"``: ``Dict({"rgb": <the image>, "state": <the vector>})``. The names
    are in ``env.unwrapped.state_names``.

    ## Rewards
    With ``d_i`` the horizontal distance in metres from piece ``i``'s centre to the
    zone rectangle (0 inside), ``n_in`` the number of pieces inside the zone and
    ``d_hand`` the distance from the tool centre point to the nearest piece still
    outside the zone (0 when none is):

    - v0: ``-mean_i(d_i) - 0.1 * d_hand + 0.25 * n_in``; the maximum, 1.0, when every
      piece is in the zone. State PPO learned nothing from it in 500k steps (0%
      success).
    - v1: staged and bounded in [0, 7]: ``n_in`` (one per piece done), plus
      ``1 - tanh(5 * d_push)`` (reach the next piece's push point; 1 when none is
      left), plus ``2 * mean_i(1 - tanh(5 * d_i))`` (pieces moving toward the zone).
      ``d_push`` is the distance from the tool centre point to the nearest push
      point of a piece outside the zone: just behind the piece (toward the robot),
      the tool's front face 1.2 cm from it, at the pushing height (tool 2 mm above
      the table), off-centre along x by as much as the tool is wider than a piece.
      Finishing a piece gains 1 and loses at most 1 of the reach term, so no state
      pays more for holding a piece just short of the zone; the maximum, 7, is
      reached exactly on success.

    ## Info
    ``instruction``; ``is_success`` (every piece's centre inside the zone);
    ``progress`` in [0, 1], the mean over pieces of each piece's progress (1 inside
    the zone, otherwise linear in ``d_i`` from its start value to 0);
    ``debris_in_zone`` (``n_in``), ``fraction_in_zone`` (``n_in / 4``),
    ``zone_distance`` (``mean_i(d_i)``) and ``hand_distance`` (``d_hand``); v1 adds
    ``push_distance`` (``d_push``; 0 when every piece is in).

    ## Starting state
    The arm starts at a fixed home pose (a random one with ``randomize_start``) with
    the gripper open above the table. Debris centres are uniform in x [-0.2, 0.2], y
    [-0.12, 0.05] m, at least 0.07 m apart, upright and axis-aligned; colours are
    sampled per episode (``randomize_colors``; otherwise yellow debris and a green
    zone).

    ## Scripted policies
    ``expert_action()`` sweeps the pieces one by one (several at once with a long
    stick); ``decoy_action()`` parks the lowered tool in the zone or at a table edge
    and moves no piece (rollout policy ``decoy``: negative examples for learned
    rewards).

    ## Episode end
    Truncation after 200 steps; termination on success only with
    ``terminate_on_success=True``.

    ## Arguments
    ``gym.make("vmalign/Sweep-v0", render_mode=None, embodiment="gripper",
    obs_size=64, camera="front", render_size=224, render_camera="front",
    terminate_on_success=False, randomize_colors=True, randomize_textures=False,
    randomize_lighting=False, camera_jitter=0.0, randomize_start=False,
    obs_mode="rgb")`` (the same for ``"vmalign/Sweep-v1"``).
    ``embodiment`` is one of ``"gripper"``, ``"short_stick"``, ``"medium_stick"``,
    ``"long_stick"`` (anything else raises ``ValueError`` listing these); see
    :class:`envs.manipulation.arm.ArmEnv` for the others. Unknown keyword
    arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``randomize_start``, the ``"side"`` camera and lists of
      ``render_camera`` added later (off by default, so episodes are unchanged);
      ``obs_mode`` added later (default ``"rgb"``: observations unchanged).
    - v1 (:class:`SweepV1Env`): the staged, bounded v1 reward above. Observations,
      success, ``progress``, ``info`` (plus ``push_distance``) and the dynamics are
      as in v0; v0 stays registered and unchanged.
    """

    asset = "sweep.xml"
    default_colors = ("yellow", "green")
    task_state = (
        "tool_half_width", "zone_x", "zone_y", "zone_half_x", "zone_half_y",
        *(f"debris{i}_{entry}" for i in range(NUM_DEBRIS)
          for entry in ("x", "y", "z", "dx", "dy", "dz", "zone_dx", "zone_dy")),
    )

    def __init__(
        self, render_mode: str | None = None, *, embodiment: str = "gripper", **kwargs: Any
    ) -> None:
        check_choice("embodiment", embodiment, EMBODIMENTS)
        self.embodiment = embodiment  # read by _edit_spec, inside super().__init__
        super().__init__(render_mode, **kwargs)
        self._debris_bodies = np.array(
            [self.model.body(f"debris{i}").id for i in range(NUM_DEBRIS)]
        )
        self._debris_geoms = [f"debris{i}" for i in range(NUM_DEBRIS)]
        self._start_distances = np.ones(NUM_DEBRIS)
        if embodiment == "gripper":
            self._tool_half_width, self._tool_half_depth = FINGER_HALF_WIDTH, FINGER_HALF_DEPTH
        else:
            self._tool_half_width = STICK_LENGTHS[embodiment] / 2
            self._tool_half_depth = STICK_HALF_THICKNESS

    # ------------------------------------------------------------------ model
    def _edit_spec(self, spec: mujoco.MjSpec) -> None:
        """Lets resting debris sleep; replaces the fingers by a stick for the sticks."""
        # Four boxes resting on the table triple the physics cost of a step
        # (measured: 190 us against 58 us for Reach); asleep they cost nothing until
        # the tool touches them, which wakes them. Deterministic like the rest.
        # ArmEnv.reset handles the one thing sleeping changes.
        spec.option.enableflags |= SLEEP_FLAG
        if self.embodiment == "gripper":
            return
        for equality in list(spec.equalities):
            if equality.type == mujoco.mjtEq.mjEQ_JOINT and equality.name1 == "finger_left":
                spec.delete(equality)
        for exclude in list(spec.excludes):
            if {exclude.bodyname1, exclude.bodyname2} == {"finger_left", "finger_right"}:
                spec.delete(exclude)
        spec.delete(spec.actuator("gripper"))
        spec.delete(spec.body("finger_left"))
        spec.delete(spec.body("finger_right"))
        half = STICK_HALF_THICKNESS
        hand = spec.body("hand")
        hand.add_geom(  # the bar: bottom at TCP z - 0.03, like the fingertips
            name="stick",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[STICK_LENGTHS[self.embodiment] / 2, half, half],
            pos=[0.0, 0.0, -0.03 + half],
            rgba=STICK_RGBA,
            condim=4,
            friction=[0.8, 0.02, 0.0001],
            contype=1,
            conaffinity=1,
            mass=0.05,
        )
        hand.add_geom(  # the post joining the bar to the palm
            name="stick_post",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.006, 0.006, 0.02],
            pos=[0.0, 0.0, 0.01],
            rgba=STICK_RGBA,
            contype=0,
            conaffinity=0,
            mass=0.01,
        )

    # ----------------------------------------------------------- task API
    def _reset_task(self) -> str:
        debris_color, zone_color = self.sample_colors(2)
        for geom in self._debris_geoms:
            self.set_geom_color(geom, debris_color)
        self.set_geom_color("zone", zone_color)
        points = self.sample_separated_points(NUM_DEBRIS, DEBRIS_LOW, DEBRIS_HIGH, MIN_SEPARATION)
        for i, point in enumerate(points):
            self.set_free_body_pose(f"debris{i}", np.append(point, DEBRIS_HALF))
        # The decoy's parking spot, from the layout rather than from np_random, so
        # that every other policy's episodes stay as they were.
        spot = int(abs(sum(point[0] for point in points)) * 1e4) % len(DECOY_SPOTS)
        self._decoy_spot = DECOY_SPOTS[spot]
        return f"sweep the {debris_color} debris into the {zone_color} zone"

    def debris_positions(self) -> np.ndarray:
        """Centres of the debris pieces, (4, 3), in metres."""
        return self.data.xpos[self._debris_bodies].copy()

    def _state(self, tcp: list[float]) -> list[float]:
        debris = self.data.xpos[self._debris_bodies]
        to_zone = np.clip(debris[:, :2], ZONE_LOW, ZONE_HIGH) - debris[:, :2]
        pieces = np.concatenate([debris, debris - tcp, to_zone], axis=1)  # (4, 8)
        return [self._tool_half_width, *_ZONE_STATE, *pieces.ravel().tolist()]

    def _evaluate(self, first: bool) -> TaskStatus:
        debris = self.data.xpos[self._debris_bodies]
        distances = zone_distances(debris[:, :2])
        inside = distances == 0.0
        if first:
            self._start_distances = distances.copy()
        n_in = int(inside.sum())
        if n_in < NUM_DEBRIS:
            offsets = debris[~inside] - self.data.site_xpos[self._tcp_site]
            hand_distance = float(np.sqrt((offsets**2).sum(axis=1)).min())
        else:
            hand_distance = 0.0
        progress = debris_progress(distances, self._start_distances)  # 1 inside
        zone_distance = float(distances.mean())
        extras = {
            "debris_in_zone": n_in,
            "fraction_in_zone": n_in / NUM_DEBRIS,
            "zone_distance": zone_distance,
            "hand_distance": hand_distance,
        }
        if self.reward_version == 0:
            reward = -zone_distance - HAND_WEIGHT * hand_distance + IN_ZONE_BONUS * n_in
        else:
            reward = self._staged_reward(debris, distances, inside, extras)
        return TaskStatus(
            reward=reward,
            is_success=n_in == NUM_DEBRIS,
            progress=float(progress.mean()),
            extras=extras,
        )

    def _staged_reward(self, debris: np.ndarray, distances: np.ndarray,
                       inside: np.ndarray, extras: dict[str, Any]) -> float:
        """The v1 reward; records ``push_distance`` in ``extras``."""
        push = 0.0
        if not inside.all():
            push = push_distance(self.data.site_xpos[self._tcp_site], debris[~inside],
                                 self._tool_half_width, self._tool_half_depth)
        extras["push_distance"] = push
        toward_zone = (1.0 - np.tanh(ZONE_SHARPNESS * distances)).mean()
        return (float(inside.sum()) + 1.0 - float(np.tanh(REACH_SHARPNESS * push))
                + ZONE_WEIGHT * float(toward_zone))

    # ------------------------------------------------------------- expert
    def expert_action(self) -> np.ndarray:
        """Pushes the pieces one by one (or several at once with a long stick) to +y.

        A function of the state only: if a piece not yet well inside the zone lies
        just in front of the lowered tool, push it forward (the gripper re-centres
        on it; a stick goes straight). Otherwise take the remaining piece nearest
        the robot (lowest y): rise clear of the debris, fly to a point just behind
        it, descend to the table. The fingers stay closed; sticks ignore the grip.
        """
        debris = self.data.xpos[self._debris_bodies]
        tcp = self.data.site_xpos[self._tcp_site]
        remaining = np.flatnonzero(debris[:, 1] < DONE_Y)
        if remaining.size == 0:
            return np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
        width, depth = self._tool_half_width, self._tool_half_depth
        ahead = debris[remaining, 1] - tcp[1]
        lateral = np.abs(debris[remaining, 0] - tcp[0])
        engaged = (
            (tcp[2] < PUSH_HEIGHT + 0.015)
            & (ahead > 0.0)
            & (ahead < depth + DEBRIS_HALF + 0.04)
            & (lateral < width + DEBRIS_HALF * 0.5)
        )
        if engaged.any():
            target = debris[remaining[engaged][np.argmin(ahead[engaged])]]
            aim = np.array([target[0], target[1] + 0.05, PUSH_HEIGHT])
            if self.embodiment != "gripper":
                # A stick pushes straight ahead: sideways motion would shove the
                # pieces near its ends out past the zone's side edges.
                aim[0] = tcp[0]
            action = self.move_toward(aim, grip=1.0)
            action[1] *= push_speed(float(debris[remaining[engaged], 1].max()))
            return action
        target = debris[remaining[np.argmin(debris[remaining, 1])]]
        pre_push = np.array([target[0], target[1] - DEBRIS_HALF - depth - PRE_PUSH_GAP])
        if np.linalg.norm(tcp[:2] - pre_push) > 0.02:
            if tcp[2] < CLEAR_HEIGHT:
                return self.move_toward(np.array([tcp[0], tcp[1], HOVER_HEIGHT]), grip=1.0)
            return self.move_toward(np.append(pre_push, HOVER_HEIGHT), grip=1.0)
        return self.move_toward(np.append(pre_push, PUSH_HEIGHT), grip=1.0)

    def decoy_action(self) -> np.ndarray:
        """Parks the lowered tool away from the debris and leaves the pieces where
        they lie.

        What a reward that follows the tool rather than the debris can score as high
        as the expert (PPO found it against the gripper-trained RAPL reward on the
        long stick: the stick lowered and held at one side of the table). The
        parking spot is one of ``DECOY_SPOTS`` (the goal zone at the pieces' mean x,
        or the table's left or right edge), chosen by the episode's layout: rise
        clear of the debris, fly over it to the spot, lower the tool to the pushing
        height there and hold it. A function of the state only, like
        :meth:`expert_action`; its episodes, ranked low by the ground truth, show a
        learned reward that a lowered tool is not the task done.
        """
        debris = self.data.xpos[self._debris_bodies]
        tcp = self.data.site_xpos[self._tcp_site]
        spot = np.array(self._decoy_spot)
        if np.isnan(spot[0]):  # the zone, at the pieces' mean x
            spot[0] = np.clip(debris[:, 0].mean(), -0.2, 0.2)
        if np.linalg.norm(tcp[:2] - spot) < 0.02:
            return self.move_toward(np.append(spot, PUSH_HEIGHT), grip=1.0)
        if tcp[2] < CLEAR_HEIGHT:
            return self.move_toward(np.array([tcp[0], tcp[1], HOVER_HEIGHT]), grip=1.0)
        return self.move_toward(np.append(spot, HOVER_HEIGHT), grip=1.0)


class SweepV1Env(SweepEnv):
    """``vmalign/Sweep-v1``: :class:`SweepEnv` with the staged, bounded v1 reward; the
    contract is :class:`SweepEnv`'s (its Rewards section and version history give
    both versions)."""

    reward_version = 1
