"""Grid layouts of rooms and doors, and shortest paths on them.

Pure functions of numpy arrays and a ``numpy.random.Generator``: no MuJoCo here.
A layout is a boolean grid of wall cells; walls are one cell thick, so a room of
``room_cells`` x ``room_cells`` free cells is surrounded by wall cells, and a door
is a free cell in the wall between two rooms. Row ``i`` of the grid runs along the
world y axis and column ``j`` along x: cell ``(i, j)`` covers
``x in [j, j+1] * CELL`` and ``y in [i, i+1] * CELL``.
"""

from __future__ import annotations

import dataclasses
import heapq
import math

import numpy as np

CELL = 0.5
"""Side of a grid cell in metres."""

_SQRT2 = math.sqrt(2.0)
_NEIGHBOURS = (
    (-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0),
    (-1, -1, _SQRT2), (-1, 1, _SQRT2), (1, -1, _SQRT2), (1, 1, _SQRT2),
)
"""(row step, column step, length in cells) of the 8-connected grid moves."""


@dataclasses.dataclass(frozen=True)
class Room:
    """A room's free interior: rows ``row .. row+size-1``, columns ``col .. col+size-1``."""

    row: int
    col: int
    size: int

    def cells(self) -> list[tuple[int, int]]:
        return [(self.row + i, self.col + j) for i in range(self.size) for j in range(self.size)]

    def contains(self, cell: tuple[int, int]) -> bool:
        return (self.row <= cell[0] < self.row + self.size
                and self.col <= cell[1] < self.col + self.size)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Walls, rooms and doors of one episode's scene."""

    walls: np.ndarray
    """``(rows, cols)`` bool: True where a cell is wall."""
    rooms: tuple[Room, ...]
    doors: tuple[tuple[int, int], ...]
    """Free cells in the walls between rooms."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape  # type: ignore[return-value]

    def room_of(self, cell: tuple[int, int]) -> int:
        """Index of the room holding ``cell``; -1 for door and wall cells."""
        for index, room in enumerate(self.rooms):
            if room.contains(cell):
                return index
        return -1


def grid_size(rooms_per_side: int, room_cells: int) -> int:
    """Cells per side of a layout of ``rooms_per_side`` square rooms of ``room_cells``."""
    return rooms_per_side * (room_cells + 1) + 1


def max_wall_boxes(rooms_per_side: int) -> int:
    """Upper bound on ``len(wall_boxes(...))`` for any layout of that many rooms a side.

    Horizontal runs: at most ``n + 1`` per wall row (doors split a row), ``n + 1``
    rows. Cells left over lie in the ``n + 1`` wall columns, each split into at most
    ``2 n + 2`` vertical runs by doors and by cells already covered.
    """
    n = rooms_per_side
    return (n + 1) ** 2 + (n + 1) * (2 * n + 2)


def room_layout(
    rng: np.random.Generator, rooms_per_side: int, room_cells: int, extra_door_prob: float = 0.0
) -> Layout:
    """A square grid of rooms joined by one-cell doors.

    The doors form a random spanning tree of the rooms (a maze: every room reachable
    from every other), plus a door in each remaining wall between neighbouring rooms
    with probability ``extra_door_prob`` (loops). Each door sits at a random cell of
    its wall.
    """
    n, r = rooms_per_side, room_cells
    size = grid_size(n, r)
    walls = np.zeros((size, size), dtype=bool)
    walls[:: r + 1, :] = True
    walls[:, :: r + 1] = True
    rooms = tuple(Room(a * (r + 1) + 1, b * (r + 1) + 1, r) for a in range(n) for b in range(n))

    # Randomised depth-first search over the room graph: a uniform-ish spanning tree.
    connected: set[tuple[tuple[int, int], tuple[int, int]]] = set()
    start = (int(rng.integers(n)), int(rng.integers(n)))
    visited, stack = {start}, [start]
    while stack:
        a, b = stack[-1]
        options = [(a + da, b + db) for da, db in ((-1, 0), (1, 0), (0, -1), (0, 1))
                   if 0 <= a + da < n and 0 <= b + db < n and (a + da, b + db) not in visited]
        if not options:
            stack.pop()
            continue
        nxt = options[int(rng.integers(len(options)))]
        connected.add(tuple(sorted(((a, b), nxt))))  # type: ignore[arg-type]
        visited.add(nxt)
        stack.append(nxt)
    for a in range(n):
        for b in range(n):
            for nxt in ((a + 1, b), (a, b + 1)):
                if nxt[0] < n and nxt[1] < n and ((a, b), nxt) not in connected:
                    if rng.random() < extra_door_prob:
                        connected.add(((a, b), nxt))

    doors = []
    for (a, b), (a2, b2) in sorted(connected):
        offset = 1 + int(rng.integers(r))
        if a2 == a + 1:  # wall row between room rows a and a+1
            cell = ((a + 1) * (r + 1), b * (r + 1) + offset)
        else:  # wall column between room columns b and b+1
            cell = (a * (r + 1) + offset, (b + 1) * (r + 1))
        walls[cell] = False
        doors.append(cell)
    return Layout(walls=walls, rooms=rooms, doors=tuple(doors))


def wall_boxes(walls: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Covers the wall cells exactly once with few rectangles ``(row, col, rows, cols)``.

    Horizontal runs of two or more cells first, then the cells left over merged into
    vertical runs: one MuJoCo box per rectangle keeps the geom count (and so the
    render cost) low.
    """
    covered = np.zeros_like(walls)
    boxes = []
    rows, cols = walls.shape
    for i in range(rows):
        j = 0
        while j < cols:
            if not walls[i, j]:
                j += 1
                continue
            end = j
            while end + 1 < cols and walls[i, end + 1]:
                end += 1
            if end > j:
                boxes.append((i, j, 1, end - j + 1))
                covered[i, j : end + 1] = True
            j = end + 1
    left = walls & ~covered
    for j in range(cols):
        i = 0
        while i < rows:
            if not left[i, j]:
                i += 1
                continue
            end = i
            while end + 1 < rows and left[end + 1, j]:
                end += 1
            boxes.append((i, j, end - i + 1, 1))
            i = end + 1
    return boxes


def cell_center(cell: tuple[int, int]) -> np.ndarray:
    """World (x, y) of a cell's centre."""
    return np.array([(cell[1] + 0.5) * CELL, (cell[0] + 0.5) * CELL])


def cell_of(xy: np.ndarray, shape: tuple[int, int]) -> tuple[int, int]:
    """The grid cell holding world point ``xy`` (clamped to the grid)."""
    row = min(max(int(math.floor(xy[1] / CELL)), 0), shape[0] - 1)
    col = min(max(int(math.floor(xy[0] / CELL)), 0), shape[1] - 1)
    return row, col


def diagonal_ok(passable: np.ndarray, cell: tuple[int, int], di: int, dj: int) -> bool:
    """A move from ``cell`` by (di, dj) does not cut a blocked corner."""
    if di == 0 or dj == 0:
        return True
    return bool(passable[cell[0] + di, cell[1]] and passable[cell[0], cell[1] + dj])


def distance_field(passable: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Shortest-path length in metres from every cell's centre to ``source``'s centre.

    Dijkstra on the 8-connected grid of ``passable`` cells (diagonal moves only where
    both cells they cut past are passable too); ``source`` counts as passable even if
    it is not (an object's cell). Unreachable cells get ``inf``.
    """
    rows, cols = passable.shape
    passable = passable.copy()
    passable[source] = True
    field = np.full((rows, cols), np.inf)
    field[source] = 0.0
    heap = [(0.0, source)]
    while heap:
        dist, cell = heapq.heappop(heap)
        if dist > field[cell]:
            continue
        i, j = cell
        for di, dj, length in _NEIGHBOURS:
            ni, nj = i + di, j + dj
            if not (0 <= ni < rows and 0 <= nj < cols) or not passable[ni, nj]:
                continue
            if not diagonal_ok(passable, cell, di, dj):
                continue
            candidate = dist + length * CELL
            if candidate < field[ni, nj]:
                field[ni, nj] = candidate
                heapq.heappush(heap, (candidate, (ni, nj)))
    return field


def segment_clear(
    blocked: np.ndarray, start: np.ndarray, end: np.ndarray, clearance: float
) -> bool:
    """Whether a disc of radius ``clearance`` swept from ``start`` to ``end`` (world
    x, y) stays clear of every ``blocked`` cell's square.

    The plain reference; :func:`segments_clear` checks many segments at once.
    """
    length = float(np.linalg.norm(end - start))
    steps = max(1, int(math.ceil(length / (0.25 * CELL))))
    rows, cols = blocked.shape
    for t in np.linspace(0.0, 1.0, steps + 1):
        point = start + t * (end - start)
        row0 = int(math.floor((point[1] - clearance) / CELL))
        row1 = int(math.floor((point[1] + clearance) / CELL))
        col0 = int(math.floor((point[0] - clearance) / CELL))
        col1 = int(math.floor((point[0] + clearance) / CELL))
        for i in range(max(row0, 0), min(row1, rows - 1) + 1):
            for j in range(max(col0, 0), min(col1, cols - 1) + 1):
                if not blocked[i, j]:
                    continue
                # Distance from the point to the cell's square.
                dx = max(j * CELL - point[0], 0.0, point[0] - (j + 1) * CELL)
                dy = max(i * CELL - point[1], 0.0, point[1] - (i + 1) * CELL)
                if dx * dx + dy * dy < clearance * clearance:
                    return False
    return True


def segments_clear(
    blocked: np.ndarray, start: np.ndarray, ends: np.ndarray, clearance: float
) -> np.ndarray:
    """:func:`segment_clear` from ``start`` to each row of ``ends`` (an ``(n, 2)``
    array), as an ``(n,)`` bool array, in one numpy pass.

    The planner checks up to 8 segments a step, and the state observation asks it
    every step; :func:`segment_clear` in a Python loop took most of a state-mode
    step in a maze. The same sample points and test as :func:`segment_clear`, up to
    rounding.
    """
    start = np.asarray(start, dtype=float)
    ends = np.asarray(ends, dtype=float).reshape(-1, 2)
    deltas = ends - start
    lengths = np.sqrt(deltas[:, 0] * deltas[:, 0] + deltas[:, 1] * deltas[:, 1])
    counts = np.maximum(np.ceil(lengths / (0.25 * CELL)).astype(int), 1)
    # Segment s is cut in n = counts[s] pieces: its points are at t = k / n, k = 0..n.
    segment = np.repeat(np.arange(len(ends)), counts + 1)
    first = np.cumsum(counts + 1) - (counts + 1)
    k = np.arange(len(segment)) - first[segment]
    t = k / counts[segment]
    points = start + t[:, None] * deltas[segment]
    # The blocked cells any point's disc could reach, then every point's distance to
    # every such cell's square: per axis, how far it lies outside the square.
    low = np.maximum(np.floor((points.min(axis=0) - clearance) / CELL).astype(int), 0)
    high = np.floor((points.max(axis=0) + clearance) / CELL).astype(int) + 1
    cells = np.argwhere(blocked[low[1]:max(high[1], 0), low[0]:max(high[0], 0)])
    centres = (cells[:, ::-1] + low + 0.5) * CELL  # (cells, 2): x, y
    outside = np.maximum(np.abs(points[:, None, :] - centres) - CELL / 2, 0.0)
    hit = ((outside * outside).sum(axis=2) < clearance * clearance).any(axis=1)
    return np.bincount(segment, weights=hit, minlength=len(ends)) == 0


def connected(passable: np.ndarray) -> bool:
    """Whether the ``passable`` cells form one 4-connected region (True if none)."""
    cells = np.argwhere(passable)
    if len(cells) == 0:
        return True
    seen = np.zeros_like(passable)
    start = tuple(cells[0])
    seen[start] = True
    stack = [start]
    rows, cols = passable.shape
    while stack:
        i, j = stack.pop()
        for ni, nj in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= ni < rows and 0 <= nj < cols and passable[ni, nj] and not seen[ni, nj]:
                seen[ni, nj] = True
                stack.append((ni, nj))
    return int(seen.sum()) == len(cells)
