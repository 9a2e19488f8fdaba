"""GoToObject: walk to the object the instruction names, in one room."""

from __future__ import annotations

from typing import Any

from envs.checks import check_int_range
from envs.navigation import layout as grid
from envs.navigation.layout import Layout
from envs.navigation.nav import NavigationEnv


class GoToObjectEnv(NavigationEnv):
    """Walk to the named object in a room, seeing only a first-person camera (or,
    with ``obs_mode="state"``, a ground-truth vector).

    ## Description
    A square room of ``room_size`` x ``room_size`` cells of 0.5 m, walled in, holds
    ``num_objects`` objects, each a ball, box, cylinder or capsule in one of eight
    colours (the pairs are distinct, so distractors may share the goal's colour or
    shape). The instruction, e.g. ``"go to the red ball"``, names one of them. The
    agent is a sphere of radius 0.15 m with a camera at 0.4 m height looking ahead.

    ## Action space
    ``Discrete(3)``: 0 turn left 30 degrees, 1 turn right 30 degrees, 2 move forward
    0.2 m. With ``done_action=True``, ``Discrete(4)`` where 3 is ``done`` (ends the
    episode). With ``continuous=True``, ``Box(-1, 1, (2,), float32)``: (forward
    speed, turn rate), where 1 means 0.2 m forward (negative: backward) and 30 degrees
    to the left (negative: right) per step; out-of-range values are clipped. Walls
    and objects block the agent (MuJoCo contacts); it slides along walls. A
    non-integer or out-of-range discrete action, or a box action of the wrong shape,
    a non-numeric dtype, NaN or infinity raise ``ValueError`` naming the space.

    ## Observation space
    Chosen by ``obs_mode``:

    - ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3), uint8)``, an RGB
      image from ``camera`` (first-person by default; ``"top"`` is an overhead view
      of the whole room).
    - ``"state"``: ``Box(low, high, (14,), float32)``, ground truth read from the
      joint positions, as rewards and success are; nothing is rendered (the env never
      makes the observation camera's GL context). World frame in metres, x and y on
      the floor; yaw 0 faces +x; a bearing is the angle from the agent's heading to
      a point, positive to the left. Angles come as cosine and sine, which do not
      jump at +-pi.

      | Index  | Meaning                                             | Unit, bounds     |
      |--------|-----------------------------------------------------|------------------|
      | 0, 1   | agent x, y                                          | m, [0, L]        |
      | 2, 3   | cos, sin of the agent's heading (yaw)               | [-1, 1]          |
      | 4, 5   | goal x, y: the named object's centre                | m, [0, L]        |
      | 6      | goal distance (straight line, centre to centre)     | m, [0, L sqrt 2] |
      | 7, 8   | cos, sin of the goal's bearing                      | [-1, 1]          |
      | 9, 10  | waypoint x, y                                       | m, [0, L]        |
      | 11     | waypoint distance                                   | m, [0, L sqrt 2] |
      | 12, 13 | cos, sin of the waypoint's bearing                  | [-1, 1]          |

      ``L = (room_size + 2) * 0.5`` m is the side of the layout, walls included. The
      waypoint is the point the planner expert heads for: the farthest point of the
      shortest path to the goal (up to 8 cells of 0.5 m ahead) that the agent can
      reach in a straight line clear of walls and other objects, or the goal's
      centre once within 0.55 m of it. It is privileged, planned on the known
      layout: it shows the way round the other objects, which a first-person camera
      reveals only by looking around. So state mode is an easier, fully observed
      variant for fast checks of rewards and learners, not the pixel task decoded;
      a policy reading only this vector can act as the expert does (the tests check
      that it succeeds).
    - ``"rgb+state"``: ``Dict({"rgb": ..., "state": ...})`` holding both.

    :meth:`render` (the reward models' view) and ``info`` are the same in every mode.

    ## Rewards
    The decrease of the shortest-path distance ``d`` (metres, around walls and
    other objects) to the goal's centre during the step, plus 1 on a step that ends
    in success.

    ## Info
    ``instruction``; ``is_success`` (within 0.6 m of the goal's centre, and facing it
    within 30 degrees with ``require_facing``; with ``done_action`` only on the step
    that says ``done`` there); ``progress`` in [0, 1], linear in ``d`` from its start
    value to 0.6 m, 1 exactly on success; ``distance`` (``d``).

    ## Starting state
    Per reset, from the seed: object cells (uniform in the room, with the free cells
    kept connected and one free beside the goal), their colours and shapes, which
    one is the goal, wall and floor materials and tints (``randomize_textures``);
    the agent starts at the centre of a free cell at least two cells from the goal,
    with a uniform random heading.

    ## Episode end
    Truncation after ``max_steps`` steps (default ``10 * room_size + 40``: 100 for the
    default room); termination on ``done`` and, with ``terminate_on_success=True``, on
    success. Registered without ``max_episode_steps``: the env truncates itself.

    ## Arguments
    ``gym.make("vmalign/GoToObject-v0", render_mode=None, obs_mode="rgb",
    obs_size=64, camera="first_person", render_size=224,
    render_camera="first_person", continuous=False, done_action=False,
    require_facing=False, terminate_on_success=False, num_objects=4,
    randomize_textures=True, max_steps=None, room_size=6)``: ``room_size`` is 4-12
    cells, ``num_objects`` 1-6 and at most ``room_size``; see
    :class:`envs.navigation.nav.NavigationEnv` for the rest. Unknown keyword
    arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``obs_mode`` added later (the default, ``"rgb"``, gives the
      same episodes as before).
    """

    verb = "go to"
    num_objects_range = (1, 6)

    def __init__(self, render_mode: str | None = None, *, room_size: int = 6,
                 **kwargs: Any) -> None:
        self.room_size = check_int_range("room_size", room_size, 4, 12)
        super().__init__(render_mode, **kwargs)

    def _object_capacity(self) -> tuple[int, str]:
        return self.room_size, f"a room of {self.room_size} cells a side"

    def _room_grid(self) -> tuple[int, int]:
        return 1, self.room_size

    def _default_max_steps(self) -> int:
        return 10 * self.room_size + 40

    def _generate(self) -> tuple[Layout, list[tuple[int, int]], tuple[int, int]]:
        rng = self.np_random
        layout = grid.room_layout(rng, 1, self.room_size)
        cells = layout.rooms[0].cells()
        while True:  # a few tries at most: objects rarely wall off a cell
            picks = rng.choice(len(cells), size=self.num_objects, replace=False)
            objects = [cells[i] for i in picks]
            passable = ~layout.walls
            for cell in objects:
                passable[cell] = False
            goal = objects[0]
            starts = [c for c in cells if passable[c]
                      and max(abs(c[0] - goal[0]), abs(c[1] - goal[1])) >= 2]
            # Success needs a free cell beside the goal (its diagonal ones are too far).
            beside = any(passable[goal[0] + di, goal[1] + dj]
                         for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)))
            if starts and beside and grid.connected(passable):
                break
        start = starts[int(rng.integers(len(starts)))]
        return layout, objects, start
