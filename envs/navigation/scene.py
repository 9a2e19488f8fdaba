"""The MuJoCo side of navigation: one compiled model per env, edited per episode.

:func:`build_model` compiles ``assets/navigation/navigation.xml`` plus a fixed pool
of wall boxes and object geoms (enough for any layout of the env's size), a floor
and an orthographic top camera sized to the layout. Every reset then only writes
model fields (:func:`place_walls`, :func:`place_objects`, :func:`paint`): no
recompiling and, above all, no new OpenGL context, which would cost far more than
the episode's first steps.

Walls and objects are static geoms of the world body. Moving them is fine for the
simulation because the model disables MuJoCo's midphase (whose bounding-volume tree
of the world body is built at compile time): every agent-geom pair is then tested
against the geoms' current ``geom_pos``, ``geom_size`` and ``geom_rbound``, which
:func:`place_walls` and :func:`place_objects` keep consistent. Unused pool geoms are
hidden: geom group :data:`HIDDEN_GROUP` (not drawn) and ``conaffinity`` 0 (no contact).
"""

from __future__ import annotations

import dataclasses
from importlib import resources

import mujoco
import numpy as np

from envs.navigation.layout import CELL

WALL_HEIGHT = 0.9
"""Metres; the first-person camera is at 0.4 m, so nearby walls fill the view."""

SKY_HEIGHT = 2.5
"""Height of the self-lit ceiling that stands in for a sky; the orthographic top
camera looks down from just below it."""

AGENT_RADIUS = 0.15
"""Radius of the agent's collision sphere, metres (see navigation.xml)."""

HIDDEN_GROUP = 5
"""Geom group that no renderer draws (MjvOption shows groups 0-2 by default)."""

SHAPES: dict[str, tuple[int, tuple[float, float, float], float]] = {
    # name: (MuJoCo geom type, size, height of the centre above the floor)
    "ball": (int(mujoco.mjtGeom.mjGEOM_SPHERE), (0.15, 0.0, 0.0), 0.15),
    "box": (int(mujoco.mjtGeom.mjGEOM_BOX), (0.13, 0.13, 0.13), 0.13),
    "cylinder": (int(mujoco.mjtGeom.mjGEOM_CYLINDER), (0.13, 0.16, 0.0), 0.16),
    "capsule": (int(mujoco.mjtGeom.mjGEOM_CAPSULE), (0.11, 0.12, 0.0), 0.23),
}
"""Object shapes the instructions name. Every one fits in a 0.3 m disc, so an object
never reaches past its cell's centre by more than 0.15 m."""

WALL_MATERIALS = ("wall_brick", "wall_plaster", "wall_panel")
FLOOR_MATERIALS = ("floor_checker", "floor_tiles", "floor_carpet")


def asset_path(name: str) -> str:
    """Absolute path of a navigation MJCF file shipped in the ``assets`` package."""
    return str(resources.files("assets") / "navigation" / name)


@dataclasses.dataclass(frozen=True)
class SceneIds:
    """Ids of the pool geoms and other model elements the env edits."""

    walls: np.ndarray
    objects: dict[str, np.ndarray]
    """Per shape, ``max_objects`` geom ids."""
    floor: int
    wall_materials: np.ndarray
    floor_materials: np.ndarray
    qpos: np.ndarray
    """qpos addresses of the agent's x, y and yaw joints (qvel uses the same: no
    free joints)."""


def build_model(
    grid_cells: int, max_walls: int, max_objects: int
) -> tuple[mujoco.MjModel, SceneIds]:
    """Compiles the navigation model for a square grid of ``grid_cells`` a side."""
    spec = mujoco.MjSpec.from_file(asset_path("navigation.xml"))
    extent = grid_cells * CELL
    center = extent / 2.0
    spec.stat.extent = extent
    spec.stat.center = [center, center, 0.0]
    # The clipping planes are relative to the extent: keep the first-person near
    # plane at 4 cm whatever the layout size, closer than any wall can come to the
    # camera, and the far plane at 100 m, past the sky's far edge.
    spec.visual.map.znear = 0.04 / extent
    spec.visual.map.zfar = 100.0 / extent

    floor = spec.geom("floor")
    floor.pos = [center, center, -0.05]
    floor.size = [center, center, 0.05]
    sky = spec.geom("sky")
    # Wider than the layout, so that it fills the view above every wall.
    sky.pos = [center, center, SKY_HEIGHT]
    sky.size = [center + 30.0, center + 30.0, 0.01]

    # Pool geoms start hidden. conaffinity 1 at compile time all the same, so that
    # the world body counts as collidable (MuJoCo derives body_conaffinity from its
    # geoms when compiling); place_walls and place_objects set it per geom.
    hidden = dict(group=HIDDEN_GROUP, contype=0, conaffinity=1)
    for k in range(max_walls):
        spec.worldbody.add_geom(
            name=f"wall_{k}", type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[CELL / 2, CELL / 2, WALL_HEIGHT / 2], pos=[center, center, -10.0],
            material=WALL_MATERIALS[0], condim=1, **hidden,
        )
    for shape, (geom_type, size, height) in SHAPES.items():
        for k in range(max_objects):
            spec.worldbody.add_geom(
                name=f"{shape}_{k}", type=mujoco.mjtGeom(geom_type), size=list(size),
                pos=[center, center, height - 10.0], rgba=[0.5, 0.5, 0.5, 1.0], condim=1,
                **hidden,
            )
    spec.worldbody.add_camera(
        name="top", pos=[center, center, SKY_HEIGHT - 0.1], quat=[1.0, 0.0, 0.0, 0.0],
        proj=mujoco.mjtProjection.mjPROJ_ORTHOGRAPHIC, fovy=extent,
    )
    model = spec.compile()
    ids = SceneIds(
        walls=np.array([model.geom(f"wall_{k}").id for k in range(max_walls)], dtype=int),
        objects={shape: np.array([model.geom(f"{shape}_{k}").id for k in range(max_objects)],
                                 dtype=int) for shape in SHAPES},
        floor=model.geom("floor").id,
        wall_materials=np.array([model.material(m).id for m in WALL_MATERIALS]),
        floor_materials=np.array([model.material(m).id for m in FLOOR_MATERIALS]),
        qpos=np.array([model.joint(j).qposadr[0] for j in ("agent_x", "agent_y", "agent_yaw")]),
    )
    return model, ids


def _show(model: mujoco.MjModel, geoms: np.ndarray, visible: np.ndarray) -> None:
    model.geom_group[geoms] = np.where(visible, 0, HIDDEN_GROUP)
    model.geom_conaffinity[geoms] = visible.astype(int)


def place_walls(
    model: mujoco.MjModel, ids: SceneIds, boxes: list[tuple[int, int, int, int]]
) -> None:
    """Shows one wall geom per ``(row, col, rows, cols)`` box; hides the rest of the pool."""
    count = len(boxes)
    if count > len(ids.walls):
        raise RuntimeError(f"layout needs {count} wall boxes; the pool has {len(ids.walls)}")
    geoms = ids.walls[:count]
    if count:
        b = np.asarray(boxes, dtype=float)
        half = np.column_stack([b[:, 3] * CELL / 2, b[:, 2] * CELL / 2,
                                np.full(count, WALL_HEIGHT / 2)])
        model.geom_size[geoms] = half
        model.geom_pos[geoms] = np.column_stack([b[:, 1] * CELL + half[:, 0],
                                                 b[:, 0] * CELL + half[:, 1], half[:, 2]])
        model.geom_rbound[geoms] = np.linalg.norm(half, axis=1)
        model.geom_aabb[geoms, :3] = 0.0
        model.geom_aabb[geoms, 3:] = half
    _show(model, ids.walls, np.arange(len(ids.walls)) < count)


def place_objects(
    model: mujoco.MjModel,
    ids: SceneIds,
    objects: list[tuple[str, tuple[float, float, float], np.ndarray, float]],
) -> list[int]:
    """Shows ``(shape, rgb, xy, yaw)`` objects; hides the rest. Returns their geom ids."""
    used: list[int] = []
    counts = {shape: 0 for shape in SHAPES}
    for shape, rgb, xy, yaw in objects:
        geom = int(ids.objects[shape][counts[shape]])
        counts[shape] += 1
        model.geom_pos[geom] = (xy[0], xy[1], SHAPES[shape][2])
        model.geom_quat[geom] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        model.geom_rgba[geom] = (*rgb, 1.0)
        used.append(geom)
    for shape, geoms in ids.objects.items():
        _show(model, geoms, np.arange(len(geoms)) < counts[shape])
    return used


def paint(model: mujoco.MjModel, ids: SceneIds, defaults: np.ndarray,
          wall: int, floor: int, wall_tint: np.ndarray, floor_tint: np.ndarray) -> None:
    """Wall and floor materials (indices into the material tuples) and rgb tints;
    ``defaults`` is the model's original ``mat_rgba``."""
    model.mat_rgba[:] = defaults
    wall_material, floor_material = ids.wall_materials[wall], ids.floor_materials[floor]
    model.geom_matid[ids.walls] = wall_material
    model.geom_matid[ids.floor] = floor_material
    model.mat_rgba[wall_material, :3] *= wall_tint
    model.mat_rgba[floor_material, :3] *= floor_tint
