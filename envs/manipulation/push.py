"""Push: slide the cube onto the target pad."""

from __future__ import annotations

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
    ``Box(0, 255, (obs_size, obs_size, 3), uint8)``: an RGB image from ``camera``.

    ## Rewards
    ``-(d_hand + 2 * d_goal)``, with ``d_goal`` the horizontal distance in metres
    from the cube's centre to the pad's centre and ``d_hand`` the distance from the
    tool centre point to the cube's centre; plus 1 on every step with success.

    ## Info
    ``instruction``; ``is_success`` (``d_goal < 0.04``); ``progress`` in [0, 1],
    linear in ``d_goal`` from its start value to the success distance;
    ``goal_distance`` (``d_goal``) and ``hand_distance`` (``d_hand``).

    ## Starting state
    The arm starts at a fixed home pose (a random one with ``randomize_start``) with
    the gripper open. Cube and pad centres are uniform in x [-0.2, 0.2], y [-0.1,
    0.2] m, at least 0.14 m apart; colours are sampled per episode
    (``randomize_colors``).

    ## Episode end
    Truncation after 100 steps; termination on success only with
    ``terminate_on_success=True``.

    ## Arguments
    ``gym.make("vmalign/Push-v0", render_mode=None, obs_size=64, camera="front",
    render_size=224, render_camera="front", terminate_on_success=False,
    randomize_colors=True, randomize_textures=False, randomize_lighting=False,
    camera_jitter=0.0, randomize_start=False)``; see :class:`envs.manipulation.arm.ArmEnv`
    for each.
    Unknown keyword arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``randomize_start``, the ``"side"`` camera and lists of
      ``render_camera`` added later (off by default, so episodes are unchanged).
    """

    asset = "push.xml"
    default_colors = ("red", "green")
    _start_distance = 0.0

    def _reset_task(self) -> str:
        cube_color, target_color = self.sample_colors(2)
        self.set_geom_color("cube", cube_color)
        self.set_geom_color("target", target_color)
        cube, target = self.sample_separated_points(2, START_LOW, START_HIGH, MIN_SEPARATION)
        self.set_free_body_pose("cube", np.append(cube, CUBE_HALF))
        self.data.mocap_pos[self.model.body("target").mocapid[0]] = np.append(target, 0.001)
        return f"push the {cube_color} cube onto the {target_color} target"

    def _evaluate(self, first: bool) -> TaskStatus:
        cube = self.body_pos("cube")
        goal_distance = float(np.linalg.norm(cube[:2] - self.body_pos("target")[:2]))
        hand_distance = float(np.linalg.norm(self.tcp - cube))
        if first:
            self._start_distance = goal_distance
        success = goal_distance < SUCCESS_DISTANCE
        return TaskStatus(
            reward=-(hand_distance + 2.0 * goal_distance) + float(success),
            is_success=success,
            progress=progress_toward(goal_distance, self._start_distance, SUCCESS_DISTANCE),
            extras={"goal_distance": goal_distance, "hand_distance": hand_distance},
        )

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
