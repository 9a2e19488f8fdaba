"""Contract tests of the navigation environments (GoToObject, Maze)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import check_env

import envs
from envs.experts import expert_policy
from envs.colors import COLORS
from envs.navigation import layout as grid
from envs.navigation import scene
from envs.navigation.layout import CELL
from envs.navigation.nav import (
    DONE,
    FORWARD,
    FORWARD_STEP,
    SUCCESS_BONUS,
    SUCCESS_DISTANCE,
    TURN_LEFT,
    TURN_RIGHT,
    TURN_STEP,
)

NAVIGATION_IDS = ["vmalign/GoToObject-v0", "vmalign/Maze-v0"]
# Every task with each control variant: (id, constructor kwargs).
VARIANTS = [(env_id, kwargs) for env_id in NAVIGATION_IDS
            for kwargs in ({}, {"continuous": True})]
VARIANT_NAMES = [f"{env_id}{kwargs or ''}" for env_id, kwargs in VARIANTS]
BOX_SPACE = r"Box\(-1\.0, 1\.0, \(2,\), float32\)"


def rollout(env: gym.Env, seed: int, actions) -> tuple[list[np.ndarray], list[float]]:
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for action in actions:
        obs, reward, *_ = env.step(action)
        frames.append(obs)
        rewards.append(reward)
    return frames, rewards


def random_actions(env: gym.Env, count: int, seed: int = 0) -> list:
    """Forward-heavy random actions, so that walks reach walls and objects."""
    rng = np.random.default_rng(seed)
    if env.unwrapped.continuous:
        actions = rng.uniform(-1, 1, size=(count, 2)).astype(np.float32)
        actions[:, 0] = np.abs(actions[:, 0]) * 1.5  # mostly forward, often clipped
        return list(actions)
    return list(rng.choice(3, size=count, p=[0.2, 0.2, 0.6]))


def test_both_tasks_are_registered_and_truncate_themselves():
    assert set(NAVIGATION_IDS) <= set(envs.ENV_IDS)
    for env_id in NAVIGATION_IDS:
        env = gym.make(env_id, max_steps=5)
        env.reset(seed=0)
        for step in range(5):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            assert not terminated and truncated == (step == 4)


@pytest.mark.parametrize("env_id, kwargs", VARIANTS + [("vmalign/Maze-v0", {"done_action": True})],
                         ids=VARIANT_NAMES + ["Maze-done_action"])
def test_check_env(env_id, kwargs):
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("env_id, kwargs", VARIANTS, ids=VARIANT_NAMES)
def test_same_seed_same_actions_same_frames_and_rewards(env_id, kwargs):
    first = gym.make(env_id, **kwargs)
    second = gym.make(env_id, **kwargs)
    actions = random_actions(first, 60)
    frames_a, rewards_a = rollout(first, 7, actions)
    rollout(first, 8, actions)  # another episode in between must not leak into the next
    frames_c, rewards_c = rollout(first, 7, actions)
    frames_b, rewards_b = rollout(second, 7, actions)
    for frames, rewards in ((frames_b, rewards_b), (frames_c, rewards_c)):
        assert rewards == rewards_a
        assert all(np.array_equal(x, y) for x, y in zip(frames, frames_a))
    other, _ = rollout(first, 8, actions[:0])
    assert not np.array_equal(other[0], frames_a[0]), "different seeds gave the same scene"


def test_scenes_are_generated_per_reset():
    env = gym.make("vmalign/Maze-v0").unwrapped
    model, view = env.model, env._views.observation_view
    walls, floors, instructions = set(), set(), set()
    for seed in range(8):
        env.reset(seed=seed)
        walls.add(env.layout.walls.tobytes())
        floors.add((int(model.geom_matid[env._ids.floor]),
                    tuple(np.round(model.mat_rgba[model.geom_matid[env._ids.floor]], 6))))
        instructions.add(env.instruction)
    assert len(walls) == 8 and len(floors) == 8 and len(instructions) > 4
    # One compiled model and one GL context for every episode.
    assert env.model is model and env._views.observation_view is view


def test_fixed_textures_when_not_randomized():
    env = gym.make("vmalign/GoToObject-v0", randomize_textures=False).unwrapped
    looks = set()
    for seed in range(4):
        env.reset(seed=seed)
        looks.add((env.model.mat_rgba.tobytes(), env.model.geom_matid[env._ids.walls[0]],
                   env.model.geom_matid[env._ids.floor]))
    assert len(looks) == 1


def expert_success_rate(env_id: str, seeds: range, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    policy = expert_policy(env)
    successes = 0
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(policy(obs))
        successes += info["is_success"]
    env.close()
    return successes / len(seeds)


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_expert_succeeds_on_95_percent_of_20_seeds(env_id):
    assert expert_success_rate(env_id, range(20), obs_size=16) >= 0.95


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
@pytest.mark.parametrize("kwargs", [{"continuous": True}, {"done_action": True},
                                    {"require_facing": True, "terminate_on_success": True}])
def test_expert_succeeds_in_every_control_variant(env_id, kwargs):
    assert expert_success_rate(env_id, range(20), obs_size=16, **kwargs) >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("env_id, kwargs", [
    ("vmalign/GoToObject-v0", {"room_size": 12, "num_objects": 6}),
    ("vmalign/GoToObject-v0", {"room_size": 4}),
    ("vmalign/Maze-v0", {"maze_size": 6, "num_objects": 8}),
    ("vmalign/Maze-v0", {"maze_size": 2}),
])
def test_expert_succeeds_on_other_layout_sizes(env_id, kwargs):
    assert expert_success_rate(env_id, range(50), obs_size=16, terminate_on_success=True,
                               **kwargs) >= 0.95


def _box_distance(xy: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> float:
    """Distance from a point to the nearest wall box (0 inside one)."""
    b = np.asarray(boxes, dtype=float)
    low_x, low_y = b[:, 1] * CELL, b[:, 0] * CELL
    high_x, high_y = low_x + b[:, 3] * CELL, low_y + b[:, 2] * CELL
    dx = np.maximum(np.maximum(low_x - xy[0], xy[0] - high_x), 0.0)
    dy = np.maximum(np.maximum(low_y - xy[1], xy[1] - high_y), 0.0)
    return float(np.hypot(dx, dy).min())


@pytest.mark.parametrize("env_id, kwargs", VARIANTS, ids=VARIANT_NAMES)
def test_no_wall_or_object_penetration_over_long_random_walks(env_id, kwargs):
    env = gym.make(env_id, obs_size=16, max_steps=100_000, **kwargs).unwrapped
    # The smallest footprint radius of any object shape (a box's inscribed circle).
    object_radius = min(size[0] for _, size, _ in scene.SHAPES.values())
    closest_wall = closest_object = math.inf
    moved = 0.0
    for seed in range(2):
        env.reset(seed=seed)
        boxes = grid.wall_boxes(env.layout.walls)
        centres = np.array([o.pos for o in env.objects])
        previous = env.agent_xy
        for action in random_actions(env, 1500, seed):
            env.step(action)
            xy = env.agent_xy
            assert not env.layout.walls[grid.cell_of(xy, env.layout.shape)], (seed, xy)
            closest_wall = min(closest_wall, _box_distance(xy, boxes))
            closest_object = min(closest_object,
                                 float(np.linalg.norm(centres - xy, axis=1).min()))
            moved += float(np.linalg.norm(xy - previous))
            previous = xy
    assert moved > 100.0, "the walk hardly moved"
    # Contacts are soft: a few centimetres of overlap at most, never passing through.
    assert closest_wall > scene.AGENT_RADIUS - 0.03, closest_wall
    assert closest_object > scene.AGENT_RADIUS + object_radius - 0.03, closest_object
    assert closest_wall < scene.AGENT_RADIUS + 0.02, "the walk never touched a wall"


def test_forward_and_turn_move_the_agent_as_documented():
    env = gym.make("vmalign/GoToObject-v0", room_size=12, num_objects=1).unwrapped
    for seed in range(20):  # find a start with open space ahead
        env.reset(seed=seed)
        heading = np.array([math.cos(env.agent_yaw), math.sin(env.agent_yaw)])
        ahead = env.agent_xy + 3 * FORWARD_STEP * heading
        if grid.segment_clear(~env._passable, env.agent_xy, ahead, 0.3):
            break
    start, yaw = env.agent_xy, env.agent_yaw
    env.step(FORWARD)
    assert np.allclose(env.agent_xy, start + FORWARD_STEP * heading, atol=1e-6)
    env.step(TURN_LEFT)
    assert env.agent_yaw == pytest.approx(yaw + TURN_STEP)
    env.step(TURN_RIGHT)
    env.step(TURN_RIGHT)
    assert env.agent_yaw == pytest.approx(yaw - TURN_STEP)


def _parse(instruction: str, verb: str) -> tuple[str, str]:
    prefix = f"{verb} the "
    assert instruction.startswith(prefix), instruction
    color, shape = instruction[len(prefix):].split(" ")
    return color, shape


@pytest.mark.parametrize("env_id, verb", [("vmalign/GoToObject-v0", "go to"),
                                          ("vmalign/Maze-v0", "find")])
def test_instruction_names_exactly_one_object_actually_present(env_id, verb):
    env = gym.make(env_id, render_mode="rgb_array", render_camera="top", render_size=128)
    unwrapped = env.unwrapped
    model = unwrapped.model
    for seed in range(10):
        _, info = env.reset(seed=seed)
        color, shape = _parse(info["instruction"], verb)
        assert color in COLORS and shape in scene.SHAPES
        # Exactly one visible geom of that colour and shape, where the goal stands.
        shown = [g for g in range(model.ngeom)
                 if model.geom_group[g] == 0 and model.geom_type[g] == scene.SHAPES[shape][0]
                 and np.allclose(model.geom_rgba[g, :3], COLORS[color])]
        assert len(shown) == 1, (info["instruction"], shown)
        assert np.allclose(model.geom_pos[shown[0], :2], unwrapped.goal.pos)
        assert unwrapped.goal.name == f"{color} {shape}"
        names = [o.name for o in unwrapped.objects]
        assert len(names) == len(set(names)) == unwrapped.num_objects
        # The goal is drawn: hiding it changes the top view.
        with_goal = env.render().copy()
        model.geom_group[shown[0]] = scene.HIDDEN_GROUP
        assert not np.array_equal(with_goal, env.render())
        model.geom_group[shown[0]] = 0


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_goal_fills_the_first_person_view_at_the_end(env_id):
    env = gym.make(env_id, require_facing=True, terminate_on_success=True).unwrapped
    env.reset(seed=3)
    terminated = False
    while not terminated:
        obs, _, terminated, _, info = env.step(env.expert_action())
    assert info["is_success"]
    geom = [g for g in env._ids.objects[env.goal.shape]
            if np.allclose(env.model.geom_pos[g, :2], env.goal.pos)][0]
    env.model.geom_group[geom] = scene.HIDDEN_GROUP
    changed = np.any(obs != env._observe(), axis=-1).mean()
    assert changed > 0.1, changed


def test_maze_places_objects_in_distinct_rooms_away_from_doors():
    env = gym.make("vmalign/Maze-v0", maze_size=4, num_objects=8).unwrapped
    for seed in range(10):
        env.reset(seed=seed)
        layout = env.layout
        rooms = [layout.room_of(o.cell) for o in env.objects]
        assert -1 not in rooms and len(set(rooms)) == 8
        for door in layout.doors:
            for o in env.objects:
                assert abs(o.cell[0] - door[0]) + abs(o.cell[1] - door[1]) > 1
        start = grid.cell_of(env.agent_xy, layout.shape)
        assert layout.room_of(start) not in (-1, rooms[0])


@pytest.mark.parametrize("env_id, kwargs, cells", [
    ("vmalign/GoToObject-v0", {"room_size": 10}, 12),
    ("vmalign/GoToObject-v0", {"room_size": 4, "num_objects": 2}, 6),
    ("vmalign/Maze-v0", {"maze_size": 2}, 11),
    ("vmalign/Maze-v0", {"maze_size": 5, "num_objects": 6}, 26),
])
def test_layout_sizes(env_id, kwargs, cells):
    env = gym.make(env_id, **kwargs).unwrapped
    env.reset(seed=0)
    assert env.layout.shape == (cells, cells) and len(env.objects) == env.num_objects
    # The top camera frames the whole layout: both outer walls at the image edges.
    view = gym.make(env_id, camera="top", obs_size=64, **kwargs)
    obs, _ = view.reset(seed=0)
    assert obs.std() > 10
    wall = obs[0, obs.shape[1] // 2].astype(int)
    assert np.abs(obs[-1, obs.shape[1] // 2].astype(int) - wall).max() < 40


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
@pytest.mark.parametrize("camera", ["first_person", "top"])
def test_observation_and_render_sizes(env_id, camera):
    env = gym.make(env_id, render_mode="rgb_array", obs_size=40, camera=camera,
                   render_size=100, render_camera=camera)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (40, 40, 3) and obs.dtype == np.uint8
    assert env.observation_space.shape == (40, 40, 3)
    frame = env.render()
    assert frame.shape == (100, 100, 3) and frame.dtype == np.uint8
    assert obs.std() > 5 and frame.std() > 5, "blank image"
    obs2, *_ = env.step(env.action_space.sample())
    assert obs2 is not obs  # observations are fresh arrays, safe to keep


def test_top_and_first_person_views_differ_and_render_is_none_without_mode():
    first = gym.make("vmalign/GoToObject-v0")
    top = gym.make("vmalign/GoToObject-v0", camera="top")
    obs_first, _ = first.reset(seed=0)
    obs_top, _ = top.reset(seed=0)
    assert not np.array_equal(obs_first, obs_top)
    assert first.render() is None


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
@pytest.mark.parametrize("bad", [3, -1, 1.0, np.float32(2), np.array([1]), True, "left", None])
def test_bad_discrete_actions_raise_value_error_naming_the_space(env_id, bad):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Discrete\(3\)"):
        env.step(bad)
    obs, reward, *_ = env.step(FORWARD)  # still usable
    assert obs.shape == (64, 64, 3) and np.isfinite(reward)


def test_done_is_only_valid_when_enabled():
    env = gym.make("vmalign/GoToObject-v0", done_action=True).unwrapped
    env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(4)
    with pytest.raises(ValueError, match=r"Discrete\(4\)"):
        env.step(4)


@pytest.mark.parametrize(
    "bad",
    [np.zeros(3, np.float32), np.zeros((1, 2), np.float32), np.array(["a", "b"]),
     np.array([True, False]), np.array([0, np.nan], np.float32), np.array([np.inf, 0]),
     "left", None, 1],
)
def test_bad_continuous_actions_raise_value_error_naming_the_space(bad):
    env = gym.make("vmalign/Maze-v0", continuous=True).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=BOX_SPACE):
        env.step(bad)
    obs, reward, *_ = env.step(np.zeros(2, np.float32))
    assert obs.shape == (64, 64, 3) and np.isfinite(reward)


def test_out_of_range_continuous_actions_are_clipped():
    clipped = gym.make("vmalign/GoToObject-v0", continuous=True).unwrapped
    exact = gym.make("vmalign/GoToObject-v0", continuous=True).unwrapped
    clipped.reset(seed=3)
    exact.reset(seed=3)
    for _ in range(5):
        obs_a, reward_a, *_ = clipped.step(np.array([5.0, -9.0]))
        obs_b, reward_b, *_ = exact.step(np.array([1.0, -1.0], np.float32))
    assert np.array_equal(obs_a, obs_b) and reward_a == reward_b


@pytest.mark.parametrize("env_id, own", [("vmalign/GoToObject-v0", "room_size"),
                                         ("vmalign/Maze-v0", "maze_size")])
def test_unknown_kwarg_lists_valid_ones(env_id, own):
    with pytest.raises(TypeError, match=r"obs_sise.*valid ones are") as error:
        gym.make(env_id, obs_sise=32)
    valid = str(error.value).split("valid ones are")[1]
    for name in (own, "obs_size", "camera", "continuous", "done_action", "num_objects"):
        assert f"'{name}'" in valid


@pytest.mark.parametrize(
    "env_id, kwargs, message",
    [("vmalign/Maze-v0", {"obs_size": 8}, "obs_size"),
     ("vmalign/Maze-v0", {"camera": "front"}, "camera"),
     ("vmalign/Maze-v0", {"render_camera": "side"}, "render_camera"),
     ("vmalign/Maze-v0", {"render_size": 4096}, "render_size"),
     ("vmalign/Maze-v0", {"render_mode": "depth"}, "render_mode"),
     ("vmalign/Maze-v0", {"maze_size": 1}, "maze_size"),
     ("vmalign/Maze-v0", {"maze_size": 2.5}, "maze_size"),
     ("vmalign/Maze-v0", {"maze_size": 2, "num_objects": 5}, "num_objects"),
     ("vmalign/Maze-v0", {"num_objects": 0}, "num_objects"),
     ("vmalign/Maze-v0", {"max_steps": 0}, "max_steps"),
     ("vmalign/Maze-v0", {"continuous": True, "done_action": True}, "done_action"),
     ("vmalign/GoToObject-v0", {"room_size": 3}, "room_size"),
     ("vmalign/GoToObject-v0", {"room_size": 4, "num_objects": 5}, "num_objects")],
)
def test_bad_arguments_say_what_is_allowed(env_id, kwargs, message):
    env_class = load_env_creator(gym.spec(env_id).entry_point)  # no gym.make warnings
    with pytest.raises(ValueError, match=message):
        env_class(**kwargs)


NAV_BOOL_ARGUMENTS = ["continuous", "done_action", "require_facing", "terminate_on_success",
                      "randomize_textures"]


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
@pytest.mark.parametrize("name", NAV_BOOL_ARGUMENTS)
@pytest.mark.parametrize("bad", ["no", "yes", 1, None])
def test_bool_arguments_reject_non_bools(env_id, name, bad):
    # bool("no") is True: a flag from a config file or command line must not be
    # switched on by its string spelling.
    env_class = load_env_creator(gym.spec(env_id).entry_point)
    with pytest.raises(ValueError, match=rf"^{name} must be true or false, got {bad!r}$"):
        env_class(**{name: bad})


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_progress_reward_and_success_follow_the_shortest_path(env_id):
    env = gym.make(env_id).unwrapped
    _, info = env.reset(seed=1)
    assert info["progress"] == 0.0 and not info["is_success"]
    assert info["distance"] > SUCCESS_DISTANCE
    assert info["distance"] >= np.linalg.norm(env.goal.pos - env.agent_xy) - 1e-9
    # At cell centres the distance is the grid's shortest path.
    cell = grid.cell_of(env.agent_xy, env.layout.shape)
    assert info["distance"] == pytest.approx(env._field[cell])
    previous = info_start = info["distance"]
    progress = [0.0]
    for _ in range(env.max_steps):
        _, reward, _, _, info = env.step(env.expert_action())
        bonus = SUCCESS_BONUS if info["is_success"] else 0.0
        assert reward == pytest.approx(previous - info["distance"] + bonus)
        assert 0.0 <= info["progress"] <= 1.0
        assert (info["progress"] == 1.0) == info["is_success"]
        previous = info["distance"]
        progress.append(info["progress"])
        if info["is_success"]:
            break
    assert info["is_success"]
    assert np.linalg.norm(env.goal.pos - env.agent_xy) <= SUCCESS_DISTANCE
    # The planner heads along the shortest path: the distance never grows by more
    # than the centimetre a step 15 degrees off course or a soft contact can add.
    assert all(b >= a - 0.02 / info_start for a, b in zip(progress, progress[1:]))


def test_done_action_ends_the_episode_and_succeeds_only_at_the_goal():
    env = gym.make("vmalign/GoToObject-v0", done_action=True).unwrapped
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(DONE)
    assert terminated and not info["is_success"] and reward == 0.0
    env.reset(seed=0)
    while True:
        action = env.expert_action()
        _, reward, terminated, _, info = env.step(action)
        if action == DONE:
            break
        assert not terminated and not info["is_success"]  # at the goal, but no done yet
    assert terminated and info["is_success"] and info["progress"] == 1.0
    assert reward == pytest.approx(SUCCESS_BONUS)


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_terminate_on_success(env_id):
    env = gym.make(env_id, terminate_on_success=True)
    env.reset(seed=0)
    policy = expert_policy(env)
    for _ in range(env.unwrapped.max_steps):
        _, _, terminated, truncated, info = env.step(policy(None))
        if terminated or truncated:
            break
    assert terminated and info["is_success"] and not truncated


def test_require_facing():
    env = gym.make("vmalign/GoToObject-v0", require_facing=True, terminate_on_success=True)
    unwrapped = env.unwrapped
    env.reset(seed=2)
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step(unwrapped.expert_action())
    assert abs(unwrapped.goal_bearing()) <= math.radians(30)
    # Turning away by 90 degrees leaves the agent as near, but no longer successful.
    for _ in range(3):
        _, _, _, _, info = env.step(TURN_LEFT)
    assert np.linalg.norm(unwrapped.goal.pos - unwrapped.agent_xy) <= SUCCESS_DISTANCE
    assert not info["is_success"] and info["progress"] < 1.0
