"""Room layouts, wall boxes and shortest paths (no MuJoCo)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.navigation import layout as grid
from envs.navigation.layout import CELL


@pytest.mark.parametrize("rooms, cells, extra",
                         [(1, 6, 0.0), (2, 3, 0.0), (3, 4, 0.2), (6, 4, 0.5)])
def test_every_room_is_reachable_and_walls_are_covered_exactly_once(rooms, cells, extra):
    for seed in range(10):
        layout = grid.room_layout(np.random.default_rng(seed), rooms, cells, extra)
        size = grid.grid_size(rooms, cells)
        assert layout.shape == (size, size)
        # Closed border, rooms of free cells, doors in the walls between them.
        walls = layout.walls
        assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
        assert len(layout.rooms) == rooms**2
        for room in layout.rooms:
            assert not any(walls[c] for c in room.cells())
        assert len(layout.doors) >= rooms**2 - 1  # a spanning tree at least
        assert grid.connected(~walls)
        boxes = grid.wall_boxes(walls)
        assert len(boxes) <= grid.max_wall_boxes(rooms)
        cover = np.zeros(walls.shape, dtype=int)
        for row, col, height, width in boxes:
            cover[row : row + height, col : col + width] += 1
        assert np.array_equal(cover, walls.astype(int))


def test_layouts_follow_the_generator():
    a = grid.room_layout(np.random.default_rng(3), 3, 4, 0.2)
    b = grid.room_layout(np.random.default_rng(3), 3, 4, 0.2)
    assert np.array_equal(a.walls, b.walls) and a.doors == b.doors
    others = {grid.room_layout(np.random.default_rng(s), 3, 4, 0.2).doors for s in range(10)}
    assert len(others) > 5


def test_distance_field_straight_diagonal_and_around_walls():
    passable = np.ones((5, 5), dtype=bool)
    field = grid.distance_field(passable, (0, 0))
    assert field[0, 4] == pytest.approx(4 * CELL)
    assert field[3, 3] == pytest.approx(3 * math.sqrt(2) * CELL)
    passable[1, :4] = False  # a wall with a gap at the right end
    field = grid.distance_field(passable, (0, 0))
    assert np.isinf(field[1, 0])
    # Right to column 4, down through the gap and back left: no diagonal move may
    # cut the wall's corner at (1, 3).
    assert field[2, 0] == pytest.approx((4 + 2 + 4) * CELL)
    assert field[2, 3] == pytest.approx((4 + 2 + 1) * CELL)
    assert field[3, 3] == pytest.approx((4 + 1 + 1 + math.sqrt(2)) * CELL)
    passable[1, 4] = False
    assert np.isinf(grid.distance_field(passable, (0, 0))[4, 4])


def test_the_source_counts_as_passable():
    passable = np.ones((3, 3), dtype=bool)
    passable[1, 1] = False  # an object's cell
    field = grid.distance_field(passable, (1, 1))
    assert field[1, 1] == 0 and field[0, 1] == pytest.approx(CELL)


def test_segment_clear_keeps_a_disc_off_blocked_cells():
    blocked = np.zeros((4, 4), dtype=bool)
    blocked[2, 2] = True
    start = grid.cell_center((0, 0))
    assert grid.segment_clear(blocked, start, grid.cell_center((0, 3)), 0.2)
    assert not grid.segment_clear(blocked, start, grid.cell_center((3, 3)), 0.2)
    assert grid.segment_clear(blocked, start, grid.cell_center((1, 3)), 0.05)


def test_segments_clear_answers_as_segment_clear_does():
    # Mazes with objects, segments from anywhere (inside walls, off the grid) to cell
    # centres and arbitrary points, clearances from none to a cell.
    rng = np.random.default_rng(0)
    agree = clear = 0
    for trial in range(40):
        layout = grid.room_layout(rng, 3, 4, 0.3)
        blocked = layout.walls | (rng.random(layout.shape) < 0.1)
        side = layout.shape[0] * CELL
        start = rng.uniform(-2.0, side + 0.2, size=2)  # also far off the grid
        ends = np.concatenate([
            [grid.cell_center(tuple(c)) for c in rng.integers(0, layout.shape[0], (6, 2))],
            rng.uniform(-2.0, side, size=(3, 2)),
            [start],  # a segment of length 0
        ])
        clearance = float(rng.choice([0.0, 0.05, 0.2, 0.5]))
        answers = grid.segments_clear(blocked, start, ends, clearance)
        expected = [grid.segment_clear(blocked, start, end, clearance) for end in ends]
        assert answers.dtype == bool and answers.tolist() == expected, trial
        agree += len(ends)
        clear += sum(expected)
    assert 0 < clear < agree  # both answers were exercised


def test_cells_and_centres():
    assert grid.cell_of(grid.cell_center((2, 5)), (10, 10)) == (2, 5)
    assert grid.cell_of(np.array([-1.0, 99.0]), (10, 10)) == (9, 0)
