"""The arm, its controller, cameras and visual randomisation, shared by every task.

A task module (``reach.py``, ``push.py``, ...) subclasses :class:`ArmEnv`, names its
MJCF file in ``assets/manipulation/`` and implements four small functions of the
physics: :meth:`ArmEnv._reset_task` (place objects, return the instruction),
:meth:`ArmEnv._evaluate` (reward, success, progress), :meth:`ArmEnv._state` (its
entries of the state observation, named in :attr:`ArmEnv.task_state`) and
:meth:`ArmEnv.expert_action`.

Observations (``obs_mode``): the camera image, a state vector, or both. The state
vector is :data:`ARM_STATE` (the same for every task) followed by the task's
entries; state mode never renders, so a step costs little more than its physics.

Control: an action ``(dx, dy, dz, grip)`` in [-1, 1] moves the mocap body
``hand_target`` by at most :data:`MAX_DELTA` metres per axis per step; a weld
constraint drags the hand after it and the five arm joints follow, so the whole arm
moves as under an operational-space controller. ``grip`` sets the finger opening:
-1 fully open, +1 fully closed (force-limited, so fingers stop on an object).
"""

from __future__ import annotations

import dataclasses
import math
from importlib import resources
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.checks import (
    check_bool,
    check_box_action,
    check_cameras,
    check_choice,
    check_int_range,
    reject_unknown_kwargs,
)
from envs.colors import COLORS

from envs.rendering import EnvViews

FRAME_SKIP = 10
"""Physics steps (of 2 ms) per environment step: control at 50 Hz."""

MAX_DELTA = 0.015
"""Metres the hand target moves along an axis per step when that action is +-1."""

LEASH = 0.04
"""The hand target never runs further than this from the hand, so a blocked hand
(pressing on the table or an object) does not wind up an ever larger weld force."""

WORKSPACE_LOW = np.array([-0.3, -0.2, 0.03])
WORKSPACE_HIGH = np.array([0.3, 0.3, 0.35])
"""Box the tool centre point (between the finger pads) is kept in, in metres."""
_WORKSPACE_LOW, _WORKSPACE_HIGH = WORKSPACE_LOW.tolist(), WORKSPACE_HIGH.tolist()

HOME_TCP = np.array([0.0, -0.05, 0.2])
"""Tool centre point at the start of every episode (unless ``randomize_start``)."""

START_LOW = np.array([-0.2, -0.12, 0.12])
START_HIGH = np.array([0.2, 0.2, 0.3])
"""Box the hand target is drawn from when ``randomize_start=True``. Its floor keeps
the fingers above every task's objects, which are placed after the arm settles."""

START_SETTLE_STEPS = 200
"""Physics steps (0.4 s) that bring the arm from home to a random start at rest;
measured: the hand is within 1e-10 m of its target and joint speeds below 1e-9."""

FINGER_OPEN = 0.05
"""Finger joint position (metres from centre) when the gripper is fully open."""

TABLE_HEIGHT = 0.0
CAMERAS = ("front", "workspace", "side", "wrist")
OBS_MODES = ("rgb", "state", "rgb+state")

ARM_STATE = (
    "tcp_x", "tcp_y", "tcp_z",
    "tcp_vel_x", "tcp_vel_y", "tcp_vel_z",
    "hand_target_dx", "hand_target_dy", "hand_target_dz",
    "finger_opening",
)
"""The first entries of every task's state vector: the tool centre point (m), its
velocity (m/s), the hand target (the mocap body the action moves) minus the tool
centre point (m: the arm lags its target, and the target, not the hand, is what the
next action moves), and the finger opening (m, 0 closed to 0.05 open; 0 for an end
effector without fingers)."""


_TABLE_MATERIALS = ("table_wood", "table_check", "table_plain")
_FLOOR_MATERIALS = ("floor_checker", "floor_grid", "floor_plain")
_ARM_JOINTS = ("yaw", "shoulder", "elbow", "wrist_pitch", "wrist_roll")
SLEEP_FLAG = int(mujoco.mjtEnableBit.mjENBL_SLEEP)
"""MuJoCo option bit that lets resting bodies sleep; tasks with many objects set it."""


@dataclasses.dataclass
class TaskStatus:
    """What a task reports after each step."""

    reward: float
    is_success: bool
    progress: float
    """Task completion in [0, 1]: 0 at the start state, 1 at success."""
    extras: dict[str, float] = dataclasses.field(default_factory=dict)
    """Task-specific measurements added to ``info`` (distances and the like)."""


def asset_path(name: str) -> str:
    """Absolute path of a manipulation MJCF file shipped in the ``assets`` package."""
    return str(resources.files("assets") / "manipulation" / name)


class ArmEnv(gym.Env[Any, np.ndarray]):
    """Base class of the manipulation tasks; see each task for its full contract.

    Keyword arguments shared by every task:

    - ``render_mode``: ``None`` or ``"rgb_array"``.
    - ``obs_size`` (int, 16-512, default 64): observation height and width.
    - ``camera`` (``"front"``, ``"workspace"``, ``"side"`` or ``"wrist"``, default
      ``"front"``): observation camera. ``"front"`` shows the whole arm;
      ``"workspace"`` is closer and steeper, centred on where the objects start, so
      they cover about twice the pixels (what a 64x64 pixel policy needs); ``"side"``
      looks at the same area from the table's left, about 120 degrees round from
      ``"workspace"``; ``"wrist"`` moves with the hand.
    - ``render_size`` (int, 16-1024, default 224): size of :meth:`render`'s frame, the
      view meant for reward models.
    - ``render_camera`` (default ``"front"``): camera of :meth:`render`, or a list of
      cameras, e.g. ``["workspace", "side"]``, whose views :meth:`render` places side
      by side in one ``(render_size, k * render_size, 3)`` frame: two views give a
      reward model depth (one view cannot tell a hand in front of an object from a
      hand at it).
    - ``terminate_on_success`` (bool, default False): end the episode on success.
    - ``randomize_colors`` (bool, default True): sample object colours per episode;
      when False every episode uses the task's fixed colours.
    - ``randomize_textures`` (bool, default False): per-episode table and floor
      material and tint.
    - ``randomize_lighting`` (bool, default False): per-episode light direction and
      intensity.
    - ``camera_jitter`` (float, metres, 0-0.1, default 0): per-episode random offset of
      the front and workspace cameras' positions; each keeps looking at its point
      (the side camera stays fixed).
    - ``obs_mode`` (``"rgb"``, ``"state"`` or ``"rgb+state"``, default ``"rgb"``):
      the observation. ``"rgb"`` is the ``uint8`` (obs_size, obs_size, 3) image from
      ``camera``; ``"state"`` a flat ``float32`` vector of privileged simulator state
      (:data:`ARM_STATE`, then the task's entries, listed in each task's docstring
      and in :attr:`state_names`), which renders nothing; ``"rgb+state"`` a
      ``Dict`` with both, under ``"rgb"`` and ``"state"``. :meth:`render`, rewards
      and ``info`` are the same in every mode.
    - ``randomize_start`` (bool, default False): start each episode with the hand at
      a uniform random point of the box :data:`START_LOW`-:data:`START_HIGH` (arm at
      rest, gripper open) instead of the fixed home pose. Data for reward learning
      wants it: when every rollout leaves from home, "arm far from home" correlates
      with progress and a learned reward can score that instead of the task.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}
    asset: ClassVar[str]
    """File name of the task's MJCF model in ``assets/manipulation/``."""
    default_colors: ClassVar[tuple[str, ...]]
    """Colours used when ``randomize_colors=False``, in the order a task asks for them."""
    task_state: ClassVar[tuple[str, ...]]
    """Names of the task's state entries, in the order its ``_state`` returns them."""
    reward_version: ClassVar[int] = 0
    """Which reward of the task docstring's Rewards section the env gives (its
    registered id's version)."""

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        obs_size: int = 64,
        camera: str = "front",
        render_size: int = 224,
        render_camera: str | Sequence[str] = "front",
        terminate_on_success: bool = False,
        randomize_colors: bool = True,
        randomize_textures: bool = False,
        randomize_lighting: bool = False,
        camera_jitter: float = 0.0,
        randomize_start: bool = False,
        obs_mode: str = "rgb",
        **unknown: Any,
    ) -> None:
        reject_unknown_kwargs(type(self), unknown)
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        check_choice("obs_mode", obs_mode, OBS_MODES)
        check_choice("camera", camera, CAMERAS)
        render_cameras = check_cameras("render_camera", render_camera, CAMERAS)
        self.obs_size = check_int_range("obs_size", obs_size, 16, 512)
        self.render_size = check_int_range("render_size", render_size, 16, 1024)
        jitter = float(camera_jitter)
        if not 0.0 <= jitter <= 0.1:
            raise ValueError(f"camera_jitter must be in [0, 0.1] metres, got {camera_jitter!r}")
        self.render_mode = render_mode
        self.camera = camera
        self.render_camera = render_camera
        self.terminate_on_success = check_bool("terminate_on_success", terminate_on_success)
        self.randomize_colors = check_bool("randomize_colors", randomize_colors)
        self.randomize_textures = check_bool("randomize_textures", randomize_textures)
        self.randomize_lighting = check_bool("randomize_lighting", randomize_lighting)
        self.camera_jitter = jitter
        self.randomize_start = check_bool("randomize_start", randomize_start)
        self.obs_mode = obs_mode

        self.model = self._load_model()
        self.data = mujoco.MjData(self.model)
        self._defaults = {
            "geom_matid": self.model.geom_matid.copy(),
            "mat_rgba": self.model.mat_rgba.copy(),
            "light_dir": self.model.light_dir.copy(),
            "light_diffuse": self.model.light_diffuse.copy(),
            "cam_pos": self.model.cam_pos.copy(),
            "cam_quat": self.model.cam_quat.copy(),
        }
        self._body_ids = {self.model.body(i).name: i for i in range(self.model.nbody)}
        self._tcp_site = self.model.site("tcp").id
        self._hand_mocap = self.model.body("hand_target").mocapid[0]
        self._gripper = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_ACTUATOR, "gripper")
        self._finger_qpos = (self.model.joint("finger_right").qposadr[0]
                             if self._gripper >= 0 else -1)
        self._finger_bodies = np.array([self._body_ids.get(f"finger_{side}", -1)
                                        for side in ("left", "right")])
        self._tcp_velocity = np.zeros(6)  # mj_objectVelocity's output: angular, linear
        self._arm_qpos = np.array([self.model.joint(j).qposadr[0] for j in self._robot_joints()])
        self._home_qpos = self._settle_home()

        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        image = spaces.Box(0, 255, shape=(self.obs_size, self.obs_size, 3), dtype=np.uint8)
        state = spaces.Box(-np.inf, np.inf, shape=(len(self.state_names),), dtype=np.float32)
        self.observation_space = {
            "rgb": image, "state": state, "rgb+state": spaces.Dict({"rgb": image, "state": state}),
        }[obs_mode]
        self._views = EnvViews(self.model, self.obs_size, camera, self.render_size,
                               render_cameras)
        self.instruction = ""
        self._status: TaskStatus | None = None

    # ------------------------------------------------------------------ model
    def _load_model(self) -> mujoco.MjModel:
        spec = mujoco.MjSpec.from_file(asset_path(self.asset))
        self._edit_spec(spec)
        return spec.compile()

    def _edit_spec(self, spec: mujoco.MjSpec) -> None:
        """Hook for tasks that change the model before compiling (e.g. end effectors)."""

    def _robot_joints(self) -> list[str]:
        joints = list(_ARM_JOINTS)
        if self.has_gripper:
            joints += ["finger_left", "finger_right"]
        return joints

    @property
    def has_gripper(self) -> bool:
        """Whether the end effector has fingers (the action's ``grip`` does something)."""
        return mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_ACTUATOR, "gripper") >= 0

    def _settle_home(self) -> np.ndarray:
        """Joint positions with the hand at :data:`HOME_TCP`, found by simulating once."""
        data = self.data
        data.mocap_pos[self._hand_mocap] = HOME_TCP
        if self._gripper >= 0:
            data.ctrl[self._gripper] = FINGER_OPEN
        mujoco.mj_step(self.model, data, nstep=1500)
        home = data.qpos[self._arm_qpos].copy()
        mujoco.mj_resetData(self.model, data)
        return home

    # ------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        model, data = self.model, self.data
        # A task may let resting bodies sleep (MuJoCo's sleep flag). While it is on,
        # mj_forward skips the static world body's frames, so the cameras and lights
        # moved by visual randomisation would keep last episode's pose: reset with
        # it off, and restore it for stepping.
        sleep_flags = model.opt.enableflags & SLEEP_FLAG
        model.opt.enableflags &= ~SLEEP_FLAG
        try:
            self._reset_state()
        finally:
            model.opt.enableflags |= sleep_flags
        return self._observe(), self._info()

    def _reset_state(self) -> None:
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        data.qpos[self._arm_qpos] = self._home_qpos
        data.mocap_pos[self._hand_mocap] = HOME_TCP
        if self._gripper >= 0:
            data.ctrl[self._gripper] = FINGER_OPEN
        self._randomize_visuals()
        if self.randomize_start:
            self._settle_at_random_start()
        self.instruction = self._reset_task()
        mujoco.mj_forward(model, data)
        self._status = self._evaluate(first=True)

    def _settle_at_random_start(self) -> None:
        """Moves the arm from home to a random hand position and lets it come to rest.

        Runs before the task places its objects, so the arm cannot knock them."""
        model, data = self.model, self.data
        start = self.np_random.uniform(START_LOW, START_HIGH)
        data.mocap_pos[self._hand_mocap] = start
        mujoco.mj_step(model, data, nstep=START_SETTLE_STEPS)
        data.qvel[:] = 0.0
        data.time = 0.0

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies ``action``; values outside [-1, 1] are clipped, wrong shapes,
        non-numeric dtypes, NaN and infinity raise ``ValueError``."""
        if self._status is None:
            raise RuntimeError("call reset() before step()")
        action = check_box_action(action, self.action_space)
        self._apply_action(action)
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        self._status = self._evaluate(first=False)
        terminated = self.terminate_on_success and self._status.is_success
        return self._observe(), self._status.reward, terminated, False, self._info()

    def render(self) -> np.ndarray | None:
        """The reward-model view: ``render_size`` square from ``render_camera`` (or
        from each of a list of cameras, side by side)."""
        if self.render_mode != "rgb_array":
            return None
        return self._views.render(self.data)

    def close(self) -> None:
        self._views.close()

    # --------------------------------------------------------- internals
    def _apply_action(self, action: np.ndarray) -> None:
        data = self.data
        tcp = data.site_xpos[self._tcp_site].tolist()
        hand_target = data.mocap_pos[self._hand_mocap]
        # Plain floats, as np.clip computes them (a float64 max, then a min), but
        # without numpy's per-call overhead on 3-vectors, which cost as much as the
        # rest of a state-mode step's Python. The step stays a float32 product (a
        # Python float times a float32 array), so trajectories are bit-for-bit as
        # before.
        step = (MAX_DELTA * action[:3]).tolist()
        hand_target[:] = [
            min(max(min(max(old + delta, at - LEASH), at + LEASH), low), high)
            for old, delta, at, low, high
            in zip(hand_target.tolist(), step, tcp, _WORKSPACE_LOW, _WORKSPACE_HIGH)
        ]
        if self._gripper >= 0:
            data.ctrl[self._gripper] = FINGER_OPEN * (1.0 - action[3]) / 2.0

    def _observe(self) -> Any:
        if self.obs_mode == "rgb":
            return self._views.observe(self.data)
        state = self.state()
        if self.obs_mode == "state":
            return state  # no rendering at all: the observation GL context is never made
        return {"rgb": self._views.observe(self.data), "state": state}

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the state vector's entries, in order: :data:`ARM_STATE`, then the
        task's :attr:`task_state`."""
        return ARM_STATE + self.task_state

    def state(self) -> np.ndarray:
        """The state observation (``float32``, one entry per :attr:`state_names`) of
        the current simulator state; available in every ``obs_mode``."""
        data = self.data
        tcp = data.site_xpos[self._tcp_site].tolist()
        target = data.mocap_pos[self._hand_mocap].tolist()
        velocity = self._tcp_velocity
        mujoco.mj_objectVelocity(self.model, data, mujoco.mjtObj.mjOBJ_SITE, self._tcp_site,
                                 velocity, 0)  # 0: world-aligned axes
        # Plain Python floats, one array at the end: numpy's per-call overhead on
        # 3-vectors would cost more than the physics step this observes.
        return np.array(
            [*tcp, *velocity[3:].tolist(),
             target[0] - tcp[0], target[1] - tcp[1], target[2] - tcp[2],
             self.finger_opening, *self._state(tcp)],
            dtype=np.float32,
        )

    def _info(self) -> dict[str, Any]:
        assert self._status is not None
        return {
            "instruction": self.instruction,
            "is_success": self._status.is_success,
            "progress": self._status.progress,
            **self._status.extras,
        }

    def _randomize_visuals(self) -> None:
        model, rng, defaults = self.model, self.np_random, self._defaults
        model.geom_matid[:] = defaults["geom_matid"]
        model.mat_rgba[:] = defaults["mat_rgba"]
        model.light_dir[:] = defaults["light_dir"]
        model.light_diffuse[:] = defaults["light_diffuse"]
        model.cam_pos[:] = defaults["cam_pos"]
        model.cam_quat[:] = defaults["cam_quat"]
        if self.randomize_textures:
            for geom, materials in (("table", _TABLE_MATERIALS), ("floor", _FLOOR_MATERIALS)):
                material = model.material(materials[rng.integers(len(materials))]).id
                model.geom_matid[model.geom(geom).id] = material
                model.mat_rgba[material, :3] *= rng.uniform(0.75, 1.1, size=3)
        if self.randomize_lighting:
            light = model.light("key").id
            direction = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), -1.0])
            model.light_dir[light] = direction / np.linalg.norm(direction)
            model.light_diffuse[light] = rng.uniform(0.35, 0.75)
        if self.camera_jitter > 0:
            # The side camera (added later) stays put: drawing its offset too would
            # change every earlier camera_jitter episode of a given seed.
            for name in ("front", "workspace"):
                camera = model.camera(name).id
                look_at = _camera_look_at(model.cam_pos[camera], model.cam_quat[camera])
                model.cam_pos[camera] += rng.uniform(-self.camera_jitter, self.camera_jitter, 3)
                model.cam_quat[camera] = _look_at_quat(model.cam_pos[camera], look_at)

    # ------------------------------------------------- helpers for tasks
    def sample_colors(self, count: int) -> list[str]:
        """``count`` distinct colour names: random per episode, or the task defaults."""
        if not self.randomize_colors:
            return list(self.default_colors[:count])
        names = list(COLORS)
        picks = self.np_random.permutation(len(names))[:count]
        return [names[i] for i in picks]

    def set_geom_color(self, geom: str, color: str, alpha: float = 1.0) -> None:
        self.model.geom_rgba[self.model.geom(geom).id] = (*COLORS[color], alpha)

    def set_free_body_pose(self, body: str, pos: np.ndarray) -> None:
        """Places a body with a free joint at ``pos``, upright and at rest."""
        joint = self.model.body(body).jntadr[0]
        address = self.model.jnt_qposadr[joint]
        self.data.qpos[address : address + 7] = (*pos, 1.0, 0.0, 0.0, 0.0)

    def sample_separated_points(
        self, count: int, low: np.ndarray, high: np.ndarray, min_distance: float
    ) -> list[np.ndarray]:
        """``count`` points uniform in the box [low, high], pairwise ``min_distance`` apart."""
        points: list[np.ndarray] = []
        while len(points) < count:
            candidate = self.np_random.uniform(low, high)
            if all(np.linalg.norm(candidate - p) >= min_distance for p in points):
                points.append(candidate)
        return points

    @property
    def finger_opening(self) -> float:
        """Each finger's distance from the centre in metres (0 closed .. 0.05 open);
        0 for an end effector without fingers."""
        return float(self.data.qpos[self._finger_qpos]) if self._finger_qpos >= 0 else 0.0

    def grasps(self, body: int) -> bool:
        """Whether both finger pads touch the body (by id): it is held between them.

        From the contacts of the last physics step, so a hand hovering by the body
        with half-closed fingers does not count; False without fingers."""
        if self._gripper < 0:
            return False
        count = self.data.ncon
        bodies = self.model.geom_bodyid
        first = bodies[self.data.contact.geom1[:count]]
        second = bodies[self.data.contact.geom2[:count]]
        touching = np.concatenate([first[second == body], second[first == body]])
        return bool(np.isin(self._finger_bodies, touching).all())

    def cube_yaw_features(self, body: int) -> list[float]:
        """``[sin(4 yaw), cos(4 yaw)]`` of a body (by id), yaw being the heading of its x
        axis about the vertical. A cube looks the same every quarter turn, so this is
        its orientation as the fixed-orientation fingers see it, without a jump."""
        xmat = self.data.xmat[body]
        yaw4 = 4.0 * math.atan2(xmat[3], xmat[0])  # R[1, 0], R[0, 0]
        return [math.sin(yaw4), math.cos(yaw4)]

    @property
    def tcp(self) -> np.ndarray:
        """Tool centre point: the point between the finger pads, in world coordinates."""
        return self.data.site_xpos[self._tcp_site].copy()

    def body_pos(self, body: str) -> np.ndarray:
        """World position of a body's frame (a copy, safe to keep)."""
        return self.data.xpos[self._body_ids[body]].copy()

    def move_toward(self, point: np.ndarray, grip: float) -> np.ndarray:
        """Expert helper: the action that moves the tool centre point toward ``point``."""
        delta = (np.asarray(point) - self.tcp) / MAX_DELTA
        return np.append(np.clip(delta, -1.0, 1.0), grip).astype(np.float32)

    # ------------------------------------------------- task interface
    def _reset_task(self) -> str:
        """Places the task's objects using ``self.np_random``; returns the instruction."""
        raise NotImplementedError

    def _evaluate(self, first: bool) -> TaskStatus:
        """Reward, success and progress of the current state (``first`` on reset)."""
        raise NotImplementedError

    def _state(self, tcp: list[float]) -> list[float]:
        """The task's state entries (:attr:`task_state`), as floats; ``tcp`` is the
        tool centre point, for the relative entries."""
        raise NotImplementedError

    def expert_action(self) -> np.ndarray:
        """A scripted expert's action for the current state (uses privileged state)."""
        raise NotImplementedError


def _camera_look_at(pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """Where the camera's optical axis meets the table plane."""
    rotation = np.empty(9)
    mujoco.mju_quat2Mat(rotation, quat)
    forward = -rotation.reshape(3, 3)[:, 2]  # cameras look along their -z axis
    t = (TABLE_HEIGHT - pos[2]) / forward[2]
    return pos + t * forward


def _look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera orientation at ``pos`` looking at ``target`` with the world z axis up."""
    z_axis = pos - target
    z_axis /= np.linalg.norm(z_axis)
    x_axis = np.cross([0.0, 0.0, 1.0], z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([x_axis, y_axis, z_axis]).ravel())
    return quat
