"""Push: slide the cube onto the target pad."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from envs.manipulation.arm import ArmEnv, TaskStatus
from envs.progress import progress_toward

SUCCESS_DISTANCE = 0.04
CUBE_HALF = 0.025
PUSH_HEIGHT = 0.032
"""TCP height while pushing: fingertips 5 mm above the table, pads on the cube."""
HOVER_HEIGHT = 0.11
START_LOW = np.array([-0.2, -0.1])
START_HIGH = np.array([0.2, 0.2])
MIN_SEPARATION = 0.14

# v1 reward (see PushEnv's docstring).
PUSH_POINT_BEHIND = 0.045
"""Metres from the cube's centre back to the push point: the closed finger pads
(1.2 cm in front of the TCP) touch the back face (2.5-3.5 cm from the centre, by
the cube's yaw)."""
REACH_SHARPNESS = 5.0
PUSH_SHARPNESS = 3.0
"""The ``k`` of the ``1 - tanh(k * d)`` terms, per metre: gentle enough that the
farthest start distances (about 0.3 m to the push point, 0.5 m to the pad) still
give a gradient."""
REACHED_DISTANCE = 0.025
"""``d_push`` below which the push term counts; the TCP of fingers pushing the cube
sits 0.7 cm or less from the push point, plus what lateral play the push allows."""
SUCCESS_REWARD = 3.0
"""Reward of a step with success: more than the 2 the two terms can reach, so
staying on the pad beats any state short of it."""


class PushEnv(ArmEnv):
    """Push the cube onto the target pad, seen from a camera.

    ## Description
    A five-joint arm with a parallel-jaw gripper stands at the back of a table with
    a 5 cm cube and a flat round target pad (radius 4.5 cm) on it. The instruction,
    e.g. ``"push the red cube onto the green target"``, names both colours. The
    cube can be pushed with the fingers or picked up; the pad does not collide.

    ## Action space
    ``Box(-1, 1, (4,), float32)``: ``(dx, dy, dz, grip)``. The first three move the
    hand's target by up to 0.015 m per step along world x, y, z; the arm follows
    through a weld constraint. ``grip`` sets the finger opening (-1 open, +1 closed).
    In-shape values outside [-1, 1] are clipped; a wrong shape, a non-numeric dtype,
    NaN or infinity raises ``ValueError``.

    ## Observation space
    Set by ``obs_mode``. ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3),
    uint8)``, an RGB image from ``camera``. ``"state"``: ``Box(-inf, inf, (22,),
    float32)``, privileged simulator state (world frame, metres; renders nothing):

    - 0-2: ``tcp_x``, ``tcp_y``, ``tcp_z``: tool centre point (between the finger pads)
    - 3-5: ``tcp_vel_x``, ``tcp_vel_y``, ``tcp_vel_z``: its velocity (m/s)
    - 6-8: ``hand_target_dx``, ``hand_target_dy``, ``hand_target_dz``: the hand
      target (what the action moves; the arm lags it) minus the tool centre point
    - 9: ``finger_opening``: each finger's distance from the centre (0 closed, 0.05
      open)
    - 10-12: ``cube_x``, ``cube_y``, ``cube_z``: centre of the cube to push
    - 13-14: ``cube_yaw_sin``, ``cube_yaw_cos``: sine and cosine of 4 x the cube's yaw
      (its x axis' heading about the vertical; a cube looks the same every quarter
      turn)
    - 15-16: ``pad_x``, ``pad_y``: centre of the target pad (flat on the table)
    - 17-19: ``cube_dx``, ``cube_dy``, ``cube_dz``: cube minus tool centre point
    - 20-21: ``pad_dx``, ``pad_dy``: pad minus cube, horizontal (``d_goal`` is its
      length)

    ``"rgb+state"``: ``Dict({"rgb": <the image>, "state": <the vector>})``. The names
    are in ``env.unwrapped.state_names``.

    ## Rewards
    With ``d_goal`` the horizontal distance in metres from the cube's centre to the
    pad's centre and ``d_hand`` the distance from the tool centre point to the cube's
    centre:

    - v0: ``-(d_hand + 2 * d_goal)``, plus 1 on every step with success. Unbounded,
      and with a local optimum at the cube: getting behind it means moving away
      from it first, and pushing from any other side raises ``d_goal``.
    - v1: staged and bounded in [0, 3], as ManiSkill's PushCube. The *push point*
      lies 4.5 cm behind the cube's centre on the line from the pad through the
      cube, at the pushing height (tool centre point 3.2 cm above the table), where
      the closed finger pads touch the cube's back face; ``d_push`` is the distance
      from the tool centre point to it. The reward is ``1 - tanh(5 * d_push)``
      (reach the push point), plus ``1 - tanh(3 * d_goal)`` while ``d_push < 0.025``
      (push from there), and 3, the maximum, on every step with success.

    ## Info
    ``instruction``; ``is_success`` (``d_goal < 0.04``); ``progress`` in [0, 1],
    linear in ``d_goal`` from its start value to the success distance;
    ``goal_distance`` (``d_goal``) and ``hand_distance`` (``d_hand``); v1 adds
    ``push_distance`` (``d_push``; 0 on success, where the push point is undefined).

    ## Starting state
    The arm starts at a fixed home pose (a random one with ``randomize_start``) with
    the gripper open. Cube and pad centres are uniform in x [-0.2, 0.2], y [-0.1,
    0.2] m, at least 0.14 m apart; colours are sampled per episode
    (``randomize_colors``).

    ## Episode end
    Truncation after 100 steps; termination on success only with
    ``terminate_on_success=True``.

    ## Arguments
    ``gym.make("vmalign/Push-v1", render_mode=None, obs_size=64, camera="front",
    render_size=224, render_camera="front", terminate_on_success=False,
    randomize_colors=True, randomize_textures=False, randomize_lighting=False,
    camera_jitter=0.0, randomize_start=False, obs_mode="rgb")`` (the same for
    ``"vmalign/Push-v0"``); see :class:`envs.manipulation.arm.ArmEnv` for each.
    Unknown keyword arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``randomize_start``, the ``"side"`` camera and lists of
      ``render_camera`` added later (off by default, so episodes are unchanged);
      ``obs_mode`` added later (default ``"rgb"``: observations unchanged).
    - v1 (:class:`PushV1Env`): the staged, bounded reward above, without v0's
      local optimum at the cube (PPO and SAC from state learned to hover there
      under v0's reward, with 0% success). Observations, success, ``progress``,
      ``info`` (plus ``push_distance``) and the dynamics are as in v0; v0 stays
      registered and unchanged.
    """

    asset = "push.xml"
    default_colors = ("red", "green")
    task_state = (
        "cube_x", "cube_y", "cube_z", "cube_yaw_sin", "cube_yaw_cos",
        "pad_x", "pad_y",
        "cube_dx", "cube_dy", "cube_dz",
        "pad_dx", "pad_dy",
    )
    _start_distance = 0.0

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(render_mode, **kwargs)
        self._cube = self.model.body("cube").id
        self._pad = self.model.body("target").id

    def _reset_task(self) -> str:
        cube_color, target_color = self.sample_colors(2)
        self.set_geom_color("cube", cube_color)
        self.set_geom_color("target", target_color)
        cube, target = self.sample_separated_points(2, START_LOW, START_HIGH, MIN_SEPARATION)
        self.set_free_body_pose("cube", np.append(cube, CUBE_HALF))
        self.data.mocap_pos[self.model.body("target").mocapid[0]] = np.append(target, 0.001)
        return f"push the {cube_color} cube onto the {target_color} target"

    def _state(self, tcp: list[float]) -> list[float]:
        cube = self.data.xpos[self._cube].tolist()
        pad = self.data.xpos[self._pad].tolist()
        return [*cube, *self.cube_yaw_features(self._cube), pad[0], pad[1],
                cube[0] - tcp[0], cube[1] - tcp[1], cube[2] - tcp[2],
                pad[0] - cube[0], pad[1] - cube[1]]

    def _evaluate(self, first: bool) -> TaskStatus:
        # Views, not body_pos's copies: this runs every step.
        cube = self.data.xpos[self._cube]
        goal_distance = float(np.linalg.norm(cube[:2] - self.data.xpos[self._pad][:2]))
        hand_distance = float(np.linalg.norm(self.data.site_xpos[self._tcp_site] - cube))
        if first:
            self._start_distance = goal_distance
        success = goal_distance < SUCCESS_DISTANCE
        extras = {"goal_distance": goal_distance, "hand_distance": hand_distance}
        if self.reward_version == 0:
            reward = -(hand_distance + 2.0 * goal_distance) + float(success)
        else:
            reward, extras["push_distance"] = self._staged_reward(goal_distance, success)
        return TaskStatus(
            reward=reward,
            is_success=success,
            progress=progress_toward(goal_distance, self._start_distance, SUCCESS_DISTANCE),
            extras=extras,
        )

    def push_point(self) -> np.ndarray:
        """The v1 reward's push point (x, y, z): :data:`PUSH_POINT_BEHIND` behind the
        cube's centre on the line from the pad through the cube, at the pushing
        height. Undefined (NaN) with the cube's centre on the pad's."""
        cube = self.data.xpos[self._cube]
        to_pad = self.data.xpos[self._pad][:2] - cube[:2]
        with np.errstate(invalid="ignore", divide="ignore"):
            behind = cube[:2] - PUSH_POINT_BEHIND * to_pad / np.linalg.norm(to_pad)
        return np.append(behind, PUSH_HEIGHT)

    def _staged_reward(self, goal_distance: float, success: bool) -> tuple[float, float]:
        """The v1 reward and ``d_push`` (0 on success)."""
        if success:  # d_goal < 0.04, so the pad direction below is always defined
            return SUCCESS_REWARD, 0.0
        push_distance = math.dist(self.data.site_xpos[self._tcp_site], self.push_point())
        reward = 1.0 - math.tanh(REACH_SHARPNESS * push_distance)
        if push_distance < REACHED_DISTANCE:  # the push counts only from behind the cube
            reward += 1.0 - math.tanh(PUSH_SHARPNESS * goal_distance)
        return reward, push_distance

    def expert_action(self) -> np.ndarray:
        """Closed-loop pushing with closed fingers from behind the cube.

        Behind the cube and on the line to the target: push through the cube's
        centre (re-aimed every step, which corrects drift and rotation). Otherwise
        rise, fly to the pre-push point behind the cube, and descend.
        """
        cube, tcp = self.body_pos("cube"), self.tcp
        target = self.body_pos("target")[:2]
        to_target = target - cube[:2]
        remaining = np.linalg.norm(to_target)
        if remaining < 0.012:
            return np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)  # stay: done
        direction = to_target / remaining
        offset = tcp[:2] - cube[:2]
        along = float(offset @ direction)
        lateral = float(np.linalg.norm(offset - along * direction))
        behind = -0.12 < along < -0.02 and lateral < 0.025
        if behind and tcp[2] < PUSH_HEIGHT + 0.02:
            aim = cube[:2] + direction * 0.03
            action = self.move_toward(np.append(aim, PUSH_HEIGHT), grip=1.0)
            # Push gently and slow down near the target: a cube struck at full
            # speed slides on after the fingers stop.
            action[:2] *= np.clip(remaining / 0.1, 0.15, 0.6)
            return action
        pre_push = cube[:2] - direction * 0.055
        if np.linalg.norm(tcp[:2] - pre_push) > 0.012:
            height = HOVER_HEIGHT if np.linalg.norm(offset) < 0.09 or tcp[2] > 0.06 else tcp[2]
            if tcp[2] < HOVER_HEIGHT - 0.02 and np.linalg.norm(offset) < 0.09:
                return self.move_toward(np.append(tcp[:2], HOVER_HEIGHT), grip=1.0)
            return self.move_toward(np.append(pre_push, height), grip=1.0)
        return self.move_toward(np.append(pre_push, PUSH_HEIGHT), grip=1.0)


class PushV1Env(PushEnv):
    """``vmalign/Push-v1``: :class:`PushEnv` with the staged, bounded v1 reward.

    The contract is :class:`PushEnv`'s (its docstring's Rewards section and version
    history give both versions); only the reward differs from ``vmalign/Push-v0``.
    """

    reward_version = 1
