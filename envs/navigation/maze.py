"""Maze: find the object the instruction names, somewhere in a grid of rooms."""

from __future__ import annotations

from typing import Any

from envs.checks import check_int_range
from envs.navigation import layout as grid
from envs.navigation.layout import Layout
from envs.navigation.nav import NavigationEnv

ROOM_CELLS = 4
"""Free cells along a room's side (2 m)."""

EXTRA_DOOR_PROB = 0.2
"""Chance of a door in each wall the spanning tree of rooms leaves closed (loops)."""


class MazeEnv(NavigationEnv):
    """Find the named object in a procedurally generated maze of rooms, seeing only a
    first-person camera (or, with ``obs_mode="state"``, a ground-truth vector).

    ## Description
    ``maze_size`` x ``maze_size`` square rooms of 4 x 4 cells (2 m) are joined by
    one-cell doors: a random spanning tree of the rooms (every room is reachable)
    plus, with probability 0.2, a door in each other wall between neighbours.
    ``num_objects`` objects (ball, box, cylinder or capsule, in one of eight
    colours; the pairs are distinct) stand in distinct random rooms, never in front
    of a door. The instruction, e.g. ``"find the blue box"``, names one of them. The
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
      of the whole maze).
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

      ``L = (5 * maze_size + 1) * 0.5`` m is the side of the layout, walls included.
      The waypoint is the point the planner expert heads for: the farthest point of
      the shortest path to the goal (up to 8 cells of 0.5 m ahead) that the agent
      can reach in a straight line clear of walls and other objects, or the goal's
      centre once within 0.55 m of it. It is privileged, planned on the known
      layout: it leads through the right doors of a maze that a first-person camera
      reveals only by exploring. So state mode is an easier, fully observed variant
      for fast checks of rewards and learners, not the pixel task decoded; a policy
      reading only this vector can act as the expert does (the tests check that it
      succeeds).
    - ``"rgb+state"``: ``Dict({"rgb": ..., "state": ...})`` holding both.

    :meth:`render` (the reward models' view) and ``info`` are the same in every mode.

    ## Rewards
    The decrease of the shortest-path distance ``d`` (metres, through doors and
    around objects) to the goal's centre during the step, plus 1 on a step that ends
    in success.

    ## Info
    ``instruction``; ``is_success`` (within 0.6 m of the goal's centre, and facing it
    within 30 degrees with ``require_facing``; with ``done_action`` only on the step
    that says ``done`` there); ``progress`` in [0, 1], linear in ``d`` from its start
    value to 0.6 m, 1 exactly on success; ``distance`` (``d``).

    ## Starting state
    Per reset, from the seed: the maze (doors), the objects' rooms, cells, colours
    and shapes, which one is the goal, wall and floor materials and tints
    (``randomize_textures``); the agent starts at the centre of a free cell of a
    room other than the goal's, with a uniform random heading.

    ## Episode end
    Truncation after ``max_steps`` steps (default ``30 * maze_size ** 2 + 30``: 300
    for the default maze); termination on ``done`` and, with
    ``terminate_on_success=True``, on success. Registered without
    ``max_episode_steps``: the env truncates itself.

    ## Arguments
    ``gym.make("vmalign/Maze-v0", render_mode=None, obs_mode="rgb", obs_size=64,
    camera="first_person", render_size=224, render_camera="first_person",
    continuous=False, done_action=False, require_facing=False,
    terminate_on_success=False, num_objects=4, randomize_textures=True,
    max_steps=None, maze_size=3)``: ``maze_size`` is 2-6 rooms a side,
    ``num_objects`` 1-8 and at most the number of rooms; see
    :class:`envs.navigation.nav.NavigationEnv` for the rest. Unknown keyword
    arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release; ``obs_mode`` added later (the default, ``"rgb"``, gives the
      same episodes as before).
    """

    verb = "find"
    num_objects_range = (1, 8)

    def __init__(self, render_mode: str | None = None, *, maze_size: int = 3,
                 **kwargs: Any) -> None:
        self.maze_size = check_int_range("maze_size", maze_size, 2, 6)
        super().__init__(render_mode, **kwargs)

    def _object_capacity(self) -> tuple[int, str]:
        return self.maze_size**2, f"the {self.maze_size**2} rooms of the maze (one per room)"

    def _room_grid(self) -> tuple[int, int]:
        return self.maze_size, ROOM_CELLS

    def _default_max_steps(self) -> int:
        return 30 * self.maze_size**2 + 30

    def _generate(self) -> tuple[Layout, list[tuple[int, int]], tuple[int, int]]:
        rng = self.np_random
        layout = grid.room_layout(rng, self.maze_size, ROOM_CELLS, EXTRA_DOOR_PROB)
        in_front_of_doors = {(i + di, j + dj) for i, j in layout.doors
                             for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))}
        rooms = rng.choice(len(layout.rooms), size=self.num_objects, replace=False)
        objects = []
        for index in rooms:
            cells = [c for c in layout.rooms[index].cells() if c not in in_front_of_doors]
            objects.append(cells[int(rng.integers(len(cells)))])
        start_rooms = [k for k in range(len(layout.rooms)) if k != rooms[0]]
        room = layout.rooms[start_rooms[int(rng.integers(len(start_rooms)))]]
        cells = [c for c in room.cells() if c not in objects]
        start = cells[int(rng.integers(len(cells)))]
        return layout, objects, start
