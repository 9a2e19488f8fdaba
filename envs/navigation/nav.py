"""The navigation agent, its controls, ground truth and planner expert, shared by every task.

A task module (``go_to_object.py``, ``maze.py``) subclasses :class:`NavigationEnv`
and says how big its layout is and how it places objects and the agent
(:meth:`NavigationEnv._place`). Everything else lives here: the compiled scene
(``scene.py``), the per-episode layout (``layout.py``), stepping, the shortest-path
ground truth (``progress``, reward) and the planner expert.

Control: the agent is a sphere on slide x, slide y and hinge yaw joints. An action
sets the joints' velocities for :data:`SUBSTEPS` physics steps (one env step lasts
0.1 s); walls and objects stop the agent through MuJoCo contacts, and as the sphere
is frictionless it slides along a wall it meets at an angle.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.checks import (
    check_bool,
    check_box_action,
    check_choice,
    check_discrete_action,
    check_int_range,
    reject_unknown_kwargs,
)
from envs.colors import COLORS
from envs.progress import progress_toward
from envs.navigation import layout as grid
from envs.navigation import scene
from envs.navigation.layout import Layout
from envs.rendering import EnvViews

SUBSTEPS = 10
"""Physics steps (of 10 ms) per environment step: control at 10 Hz."""

FORWARD_STEP = 0.2
"""Metres one ``forward`` action moves the agent (unless something blocks it)."""

TURN_STEP = math.radians(30.0)
"""Radians one ``turn`` action rotates the agent."""

SUCCESS_DISTANCE = 0.6
"""The agent succeeds within this distance (centre to centre, metres) of the goal."""

FACING_ANGLE = math.radians(30.0)
"""With ``require_facing``, the goal must also lie within this angle of the heading."""

SUCCESS_BONUS = 1.0
"""Reward added on every step that ends in success."""

CAMERAS = ("first_person", "top")

OBS_MODES = ("rgb", "state", "rgb+state")
"""What an observation holds: the camera image, the state vector, or both (a Dict)."""

STATE_NAMES = (
    "agent_x", "agent_y", "agent_cos_yaw", "agent_sin_yaw",
    "goal_x", "goal_y", "goal_distance", "goal_cos_bearing", "goal_sin_bearing",
    "waypoint_x", "waypoint_y", "waypoint_distance", "waypoint_cos_bearing",
    "waypoint_sin_bearing",
)
"""The entries of the ``obs_mode="state"`` vector (:meth:`NavigationEnv.state`), in
order; each task's "Observation space" gives their meaning and units."""

TURN_LEFT, TURN_RIGHT, FORWARD, DONE = 0, 1, 2, 3

_MARGIN = 0.05
"""Extra clearance (metres) the expert keeps from walls and distractors."""

_PRESS_DISTANCE = 0.4
_PRESS_ANGLE = math.radians(5.0)
"""Within this distance of the goal (it touches every object's surface) the expert
presses forward only when the goal is this close to straight ahead."""


@dataclasses.dataclass(frozen=True)
class NavObject:
    """One object of the scene."""

    shape: str
    color: str
    cell: tuple[int, int]
    pos: np.ndarray
    """World (x, y) of its centre."""

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


Observation = np.ndarray | dict[str, np.ndarray]
"""An image, a state vector, or ``{"rgb": image, "state": vector}`` (``obs_mode``)."""


class NavigationEnv(gym.Env[Observation, Any]):
    """Base class of the navigation tasks; see each task for its full contract.

    Keyword arguments shared by every task:

    - ``render_mode``: ``None`` or ``"rgb_array"``.
    - ``obs_mode`` (``"rgb"``, ``"state"`` or ``"rgb+state"``, default ``"rgb"``): the
      camera image, the ground-truth vector of :meth:`state` (the env then
      never renders an observation), or both in a ``Dict``; :meth:`render` and
      ``info`` are the same in every mode.
    - ``obs_size`` (int, 16-512, default 64): observation height and width.
    - ``camera`` (``"first_person"`` or ``"top"``, default ``"first_person"``):
      observation camera; ``"top"`` looks straight down on the whole layout
      (orthographic).
    - ``render_size`` (int, 16-1024, default 224): size of :meth:`render`'s frame, the
      view meant for reward models.
    - ``render_camera`` (default ``"first_person"``): camera of :meth:`render`.
    - ``continuous`` (bool, default False): ``Box`` actions (forward speed, turn rate)
      instead of ``Discrete`` ones.
    - ``done_action`` (bool, default False): add a fourth discrete action, ``done``,
      that ends the episode; success then needs ``done`` at the goal.
    - ``require_facing`` (bool, default False): success also needs the goal within 30
      degrees of the agent's heading.
    - ``terminate_on_success`` (bool, default False): end the episode on success.
    - ``num_objects`` (int): objects in the scene; task-specific default and range.
    - ``randomize_textures`` (bool, default True): per-episode wall and floor
      material and tint; when False every episode uses the same ones.
    - ``max_steps`` (int or None): truncate after this many steps; None uses the
      task's default, which grows with the layout.

    The bool arguments take ``True`` or ``False`` only: anything else (``"no"``,
    ``1``, ``None``) raises ``ValueError`` naming the argument.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}
    verb: ClassVar[str]
    """Instruction prefix: ``"go to"`` gives ``"go to the red ball"``."""
    num_objects_range: ClassVar[tuple[int, int]]
    state_names: ClassVar[tuple[str, ...]] = STATE_NAMES
    """The names of :meth:`state`'s entries, in order."""

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        obs_mode: str = "rgb",
        obs_size: int = 64,
        camera: str = "first_person",
        render_size: int = 224,
        render_camera: str = "first_person",
        continuous: bool = False,
        done_action: bool = False,
        require_facing: bool = False,
        terminate_on_success: bool = False,
        num_objects: int = 4,
        randomize_textures: bool = True,
        max_steps: int | None = None,
        **unknown: Any,
    ) -> None:
        reject_unknown_kwargs(type(self), unknown)
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        check_choice("obs_mode", obs_mode, OBS_MODES)
        check_choice("camera", camera, CAMERAS)
        check_choice("render_camera", render_camera, CAMERAS)
        self.obs_size = check_int_range("obs_size", obs_size, 16, 512)
        self.render_size = check_int_range("render_size", render_size, 16, 1024)
        self.num_objects = check_int_range("num_objects", num_objects, *self.num_objects_range)
        capacity, where = self._object_capacity()
        if self.num_objects > capacity:
            raise ValueError(f"num_objects={num_objects} does not fit {where}; "
                             f"use at most {capacity}")
        # check_bool, not bool(): bool("no") is True, so a config or command-line
        # string would silently switch a flag on.
        self.continuous = check_bool("continuous", continuous)
        self.done_action = check_bool("done_action", done_action)
        self.require_facing = check_bool("require_facing", require_facing)
        self.terminate_on_success = check_bool("terminate_on_success", terminate_on_success)
        self.randomize_textures = check_bool("randomize_textures", randomize_textures)
        if self.continuous and self.done_action:
            raise ValueError("done_action=True needs discrete actions (continuous=False)")
        self.render_mode = render_mode
        self.obs_mode = obs_mode
        self.camera = camera
        self.render_camera = render_camera
        default_steps = self._default_max_steps()
        self.max_steps = (default_steps if max_steps is None
                          else check_int_range("max_steps", max_steps, 1, 1_000_000))

        rooms, cells = self._room_grid()
        self.grid_cells = grid.grid_size(rooms, cells)
        self.model, self._ids = scene.build_model(
            self.grid_cells, grid.max_wall_boxes(rooms), self.num_objects)
        self.data = mujoco.MjData(self.model)
        self._default_mat_rgba = self.model.mat_rgba.copy()
        self._qpos = self._ids.qpos

        if self.continuous:
            self.action_space: spaces.Space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        else:
            self.action_space = spaces.Discrete(4 if self.done_action else 3)
        image = spaces.Box(0, 255, shape=(self.obs_size, self.obs_size, 3), dtype=np.uint8)
        state = _state_space(self.grid_cells * grid.CELL)
        self.observation_space: spaces.Space = {
            "rgb": image, "state": state,
            "rgb+state": spaces.Dict({"rgb": image, "state": state}),
        }[obs_mode]
        # Made in every mode, for render(); EnvViews makes the observation camera's GL
        # context only on the first observe(), which state mode never calls.
        self._views = EnvViews(self.model, self.obs_size, camera, self.render_size,
                               self.render_camera)

        self.instruction = ""
        self.layout: Layout | None = None
        self.objects: list[NavObject] = []
        self.goal: NavObject | None = None
        self._field = np.zeros((0, 0))
        self._passable = np.zeros((0, 0), dtype=bool)
        self._blocked = np.zeros((0, 0), dtype=bool)
        self._start_distance = 0.0
        self._distance = 0.0
        self._steps = 0
        self._success = False
        self._reset_called = False

    # ------------------------------------------------------------- task interface
    def _room_grid(self) -> tuple[int, int]:
        """(rooms per side, free cells per room side) of this task's layouts."""
        raise NotImplementedError

    def _default_max_steps(self) -> int:
        """Truncation step when ``max_steps`` is None."""
        raise NotImplementedError

    def _object_capacity(self) -> tuple[int, str]:
        """The most objects this task's layout takes, and the layout in words."""
        raise NotImplementedError

    def _generate(self) -> tuple[Layout, list[tuple[int, int]], tuple[int, int]]:
        """A layout, the cells of the objects and the agent's start cell, from
        ``self.np_random``; the goal object is the first one."""
        raise NotImplementedError

    # ------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        layout, cells, start = self._generate()
        self._build_scene(layout, cells)
        data = self.data
        mujoco.mj_resetData(self.model, data)
        xy = grid.cell_center(start)
        data.qpos[self._qpos] = (xy[0], xy[1], rng.uniform(-math.pi, math.pi))
        mujoco.mj_forward(self.model, data)
        self._steps = 0
        self._success = False
        self._reset_called = True
        self._distance = self._start_distance = self.geodesic_distance()
        return self._observe(), self._info()

    def step(self, action: Any) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Applies ``action``. Discrete actions must be integers in the space, else
        ``ValueError``; continuous ones are clipped to [-1, 1], and a wrong shape, a
        non-numeric dtype, NaN or infinity raise ``ValueError``."""
        if not self._reset_called:
            raise RuntimeError("call reset() before step()")
        done = False
        if self.continuous:
            forward, turn = check_box_action(action, self.action_space)  # type: ignore[arg-type]
            self._drive(float(forward) * FORWARD_STEP, float(turn) * TURN_STEP)
        else:
            choice = check_discrete_action(action, self.action_space)  # type: ignore[arg-type]
            if choice == DONE:
                done = True
            elif choice == FORWARD:
                self._drive(FORWARD_STEP, 0.0)
            else:
                self._drive(0.0, TURN_STEP if choice == TURN_LEFT else -TURN_STEP)
        self._steps += 1
        previous = self._distance
        self._distance = self.geodesic_distance()
        at_goal = self.at_goal()
        self._success = at_goal and (done or not self.done_action)
        reward = previous - self._distance + (SUCCESS_BONUS if self._success else 0.0)
        terminated = done or (self.terminate_on_success and self._success)
        truncated = not terminated and self._steps >= self.max_steps
        return self._observe(), float(reward), terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """The reward-model view: ``render_size`` square from ``render_camera``."""
        if self.render_mode != "rgb_array":
            return None
        return self._views.render(self.data)

    def close(self) -> None:
        self._views.close()

    # -------------------------------------------------------------- the scene
    def _build_scene(self, layout: Layout, cells: list[tuple[int, int]]) -> None:
        rng = self.np_random
        names = self._sample_names(len(cells))
        self.objects = [
            NavObject(shape, color, cell, grid.cell_center(cell))
            for (shape, color), cell in zip(names, cells)
        ]
        self.goal = self.objects[0]
        self.instruction = f"{self.verb} the {self.goal.name}"
        yaws = rng.uniform(0.0, math.pi / 2, size=len(cells))
        scene.place_walls(self.model, self._ids, grid.wall_boxes(layout.walls))
        scene.place_objects(self.model, self._ids, [
            (o.shape, COLORS[o.color], o.pos, yaw) for o, yaw in zip(self.objects, yaws)
        ])
        if self.randomize_textures:
            scene.paint(self.model, self._ids, self._default_mat_rgba,
                        wall=int(rng.integers(len(scene.WALL_MATERIALS))),
                        floor=int(rng.integers(len(scene.FLOOR_MATERIALS))),
                        wall_tint=_tint(rng, 0.85, 1.1), floor_tint=_tint(rng, 0.7, 1.1))
        else:
            scene.paint(self.model, self._ids, self._default_mat_rgba, wall=0, floor=0,
                        wall_tint=np.ones(3), floor_tint=np.ones(3))

        self.layout = layout
        objects = np.zeros_like(layout.walls)
        for cell in cells:
            objects[cell] = True
        self._passable = ~layout.walls & ~objects
        # The expert keeps clear of walls and distractors, and heads for the goal.
        self._blocked = ~self._passable
        self._blocked[self.goal.cell] = False
        self._field = grid.distance_field(self._passable, self.goal.cell)

    def _sample_names(self, count: int) -> list[tuple[str, str]]:
        """``count`` distinct (shape, colour) pairs: an instruction names one object."""
        pairs = [(shape, color) for shape in scene.SHAPES for color in COLORS]
        rng = self.np_random
        picks = rng.choice(len(pairs), size=count, replace=False)
        return [pairs[i] for i in picks]

    def _drive(self, forward: float, turn: float) -> None:
        """Moves ``forward`` metres along the heading while turning ``turn`` radians,
        over one env step, through joint velocities; contacts stop the agent."""
        model, data, (x, y, yaw) = self.model, self.data, self._qpos
        duration = SUBSTEPS * model.opt.timestep
        speed, rate = forward / duration, turn / duration
        for _ in range(SUBSTEPS):
            heading = data.qpos[yaw]
            data.qvel[x] = speed * math.cos(heading)
            data.qvel[y] = speed * math.sin(heading)
            data.qvel[yaw] = rate
            mujoco.mj_step(model, data)

    def _observe(self) -> Observation:
        if self.obs_mode == "state":
            return self.state()
        image = self._views.observe(self.data)
        if self.obs_mode == "rgb":
            return image
        return {"rgb": image, "state": self.state()}

    def _info(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "is_success": self._success,
            "progress": self.progress(),
            "distance": float(self._distance),
        }

    # ------------------------------------------------------------ ground truth
    @property
    def agent_xy(self) -> np.ndarray:
        """The agent's world (x, y), metres (a copy)."""
        return self.data.qpos[self._qpos[:2]].copy()

    @property
    def agent_yaw(self) -> float:
        """The agent's heading in radians, wrapped to [-pi, pi); 0 faces +x."""
        return _wrap(float(self.data.qpos[self._qpos[2]]))

    def goal_bearing(self) -> float:
        """Angle from the heading to the goal's centre, radians in [-pi, pi)."""
        assert self.goal is not None
        delta = self.goal.pos - self.agent_xy
        return _wrap(math.atan2(delta[1], delta[0]) - self.agent_yaw)

    def at_goal(self) -> bool:
        """Within :data:`SUCCESS_DISTANCE` of the goal (and facing it, if required)."""
        assert self.goal is not None
        near = float(np.linalg.norm(self.goal.pos - self.agent_xy)) <= SUCCESS_DISTANCE
        return near and (not self.require_facing or abs(self.goal_bearing()) <= FACING_ANGLE)

    def geodesic_distance(self, xy: np.ndarray | None = None) -> float:
        """Shortest-path length (metres) from ``xy`` (default: the agent) to the goal's
        centre around walls and other objects.

        The precomputed grid distance of a neighbouring cell plus the straight line to
        that cell's centre, minimised over the 3x3 cells around ``xy``: exact at cell
        centres, and the length of a real path everywhere else.
        """
        assert self.goal is not None
        xy = self.agent_xy if xy is None else np.asarray(xy, dtype=float)
        return self._best_entry(xy)[0]

    def _best_entry(self, xy: np.ndarray) -> tuple[float, tuple[int, int]]:
        """(distance, cell) of the best neighbouring cell to enter the grid path at."""
        assert self.goal is not None
        field, passable = self._field, self._passable
        rows, cols = field.shape
        i0, j0 = grid.cell_of(xy, (rows, cols))
        best, best_cell = math.inf, (i0, j0)
        # Diagonal cells only past free corners; failing any, (the agent squeezed
        # into the corner of an object's cell) any neighbour; failing that, a straight
        # line to the goal.
        for strict in (True, False):
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    i, j = i0 + di, j0 + dj
                    if not (0 <= i < rows and 0 <= j < cols):
                        continue
                    if (i, j) == self.goal.cell:
                        target = self.goal.pos
                    elif passable[i, j] and (not strict or di == 0 or dj == 0 or (
                            passable[i0 + di, j0] and passable[i0, j0 + dj])):
                        target = grid.cell_center((i, j))
                    else:
                        continue
                    value = field[i, j] + math.hypot(xy[0] - target[0], xy[1] - target[1])
                    if value < best:
                        best, best_cell = value, (i, j)
            if best < math.inf:
                return best, best_cell
        return float(np.linalg.norm(self.goal.pos - xy)), self.goal.cell

    def progress(self) -> float:
        """Task completion in [0, 1]: 0 at the start, linear in shortest-path distance,
        1 exactly when the episode's step succeeded (0.99 at most before)."""
        if self._success:
            return 1.0
        return min(progress_toward(self._distance, self._start_distance, SUCCESS_DISTANCE), 0.99)

    def state(self) -> np.ndarray:
        """The ``obs_mode="state"`` observation (``float32``, one entry per
        :data:`STATE_NAMES`; each task's "Observation space" gives their meaning and
        units), available in every mode.

        Read from the joint positions (``qpos``), the same ground truth as rewards and
        success; nothing is rendered. Angles are given as cosine and sine, which, unlike
        an angle, do not jump at +-pi.
        """
        assert self.goal is not None
        xy, yaw = self.agent_xy, self.agent_yaw
        goal = self.goal.pos
        aim = self._aim_point(xy)
        return np.array([xy[0], xy[1], math.cos(yaw), math.sin(yaw),
                         goal[0], goal[1], *_polar(goal - xy, yaw),
                         aim[0], aim[1], *_polar(aim - xy, yaw)], dtype=np.float32)

    # --------------------------------------------------------------- the expert
    def expert_action(self) -> Any:
        """The planner expert's action: the shortest path on the known layout.

        It aims at the farthest cell of the shortest path it can reach in a straight
        line with clearance, turns toward it until within half a turn step, then moves
        forward. Near the goal it faces it and presses forward (the object stops it),
        or says ``done`` when that action exists.
        """
        assert self.goal is not None
        xy = self.agent_xy
        near = self._near_goal(xy)
        delta = self._aim_point(xy) - xy
        error = _wrap(math.atan2(delta[1], delta[0]) - self.agent_yaw)
        if self.continuous:
            turn = float(np.clip(error / TURN_STEP, -1.0, 1.0))
            if near:
                forward = 0.0
            else:
                forward = float(np.clip(np.linalg.norm(delta) / FORWARD_STEP, 0.0, 1.0))
                forward *= max(0.0, math.cos(error)) ** 4
            return np.array([forward, turn], dtype=np.float32)
        turn_toward = np.int64(TURN_LEFT if error > 0 else TURN_RIGHT)
        if abs(error) > TURN_STEP / 2:
            return turn_toward
        if near and self.done_action and self.at_goal():
            return np.int64(DONE)
        if near and np.linalg.norm(delta) < _PRESS_DISTANCE and abs(error) > _PRESS_ANGLE:
            # Pressing on the goal off-centre would slide around it: turn instead,
            # which keeps it within 30 - 5 degrees of the heading.
            return turn_toward
        return np.int64(FORWARD)

    def _near_goal(self, xy: np.ndarray) -> bool:
        """Close enough that the expert heads for the goal itself (a margin inside
        :data:`SUCCESS_DISTANCE`)."""
        assert self.goal is not None
        return float(np.linalg.norm(self.goal.pos - xy)) <= SUCCESS_DISTANCE - _MARGIN

    def _aim_point(self, xy: np.ndarray) -> np.ndarray:
        """The point the expert heads for from ``xy``: the goal's centre when
        :meth:`_near_goal`, else :meth:`_waypoint`. Shared with :meth:`state`,
        so that the expert's action is a function of the state observation."""
        assert self.goal is not None
        return self.goal.pos if self._near_goal(xy) else self._waypoint(xy)

    def _waypoint(self, xy: np.ndarray) -> np.ndarray:
        """The farthest point of the shortest path (up to 8 cells ahead) in clear view."""
        assert self.goal is not None
        field, passable = self._field, self._passable
        rows, cols = field.shape
        _, cell = self._best_entry(xy)
        path = [cell]
        while cell != self.goal.cell and len(path) < 9:
            best, nxt = field[cell], None
            for di, dj, _ in grid._NEIGHBOURS:
                i, j = cell[0] + di, cell[1] + dj
                if not (0 <= i < rows and 0 <= j < cols):
                    continue
                if not (passable[i, j] or (i, j) == self.goal.cell):
                    continue
                if not grid.diagonal_ok(passable, cell, di, dj):
                    continue
                if field[i, j] < best:
                    best, nxt = field[i, j], (i, j)
            if nxt is None:
                break
            cell = nxt
            path.append(cell)
        points = [self.goal.pos if c == self.goal.cell else grid.cell_center(c) for c in path]
        if len(points) == 1:
            return points[0]
        clearance = scene.AGENT_RADIUS + _MARGIN
        clear = np.flatnonzero(grid.segments_clear(self._blocked, xy, np.array(points[1:]),
                                                   clearance))
        return points[1 + clear[-1]] if len(clear) else points[1]


def _tint(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """An rgb multiplier: a brightness in [low, high] with a slight hue shift, so that
    walls and floor stay greyish and never look like an object's colour."""
    return rng.uniform(low, high) * rng.uniform(0.93, 1.07, size=3)


def _polar(delta: np.ndarray, yaw: float) -> tuple[float, float, float]:
    """(distance, cos bearing, sin bearing) of a world offset seen from heading ``yaw``;
    the bearing is positive to the left."""
    bearing = math.atan2(delta[1], delta[0]) - yaw
    return float(math.hypot(delta[0], delta[1])), math.cos(bearing), math.sin(bearing)


def _state_space(side: float) -> spaces.Box:
    """Bounds of :meth:`NavigationEnv.state` in a square layout ``side`` metres
    wide: positions in [0, side], distances up to its diagonal, cosines and sines in
    [-1, 1]."""
    far = side * math.sqrt(2.0)
    position, unit, polar = (0.0, side), (-1.0, 1.0), ((0.0, far), (-1.0, 1.0), (-1.0, 1.0))
    bounds = [position, position, unit, unit,  # agent x, y, heading
              position, position, *polar,      # goal x, y; its distance and bearing
              position, position, *polar]      # waypoint x, y; its distance and bearing
    low, high = np.array(bounds, dtype=np.float32).T
    return spaces.Box(low, high, dtype=np.float32)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi
