"""The manipulation tasks' ``obs_mode``: "rgb", "state" and "rgb+state" (issue 24).

The state vector must describe the physics (by role: the object the instruction
names, not whichever comes first), must never render, and must leave everything
else (frames of ``render()``, rewards, ``info``) exactly as in "rgb" mode.
"""

from __future__ import annotations

import envs  # noqa: F401, I001  (first: registers the ids, sets MUJOCO_GL before mujoco loads)

import math
import re
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.colors import COLORS
from envs.experts import expert_policy
from envs.manipulation.arm import ARM_STATE, FINGER_OPEN, OBS_MODES
from envs.manipulation.pick_place import CUBE_HALF
from envs.manipulation.sweep import STICK_LENGTHS

TASKS = ("Reach", "Push", "PickPlace", "Stack", "Sweep")
MANIPULATION_IDS = [env_id for env_id in envs.ENV_IDS
                    if env_id.split("/")[1].split("-")[0] in TASKS]


def make(env_id: str, **kwargs):
    return gym.make(env_id, **kwargs).unwrapped


def state_of(env, obs) -> dict[str, float]:
    """The state observation as {name: value}."""
    vector = obs["state"] if isinstance(obs, dict) else obs
    assert vector.shape == (len(env.state_names),) and vector.dtype == np.float32
    return dict(zip(env.state_names, vector.tolist()))


def entries(state: dict[str, float], prefix: str, axes: str = "xyz") -> np.ndarray:
    return np.array([state[f"{prefix}_{axis}"] for axis in axes])


def named_geoms(env) -> list[list[int]]:
    """For each colour the instruction names, in its order, the ids of the geoms that
    have that colour."""
    named = sorted((env.instruction.index(f" {name} "), name) for name in COLORS
                   if f" {name} " in env.instruction)
    rgb = env.model.geom_rgba[:, :3]
    return [list(np.flatnonzero(np.isclose(rgb, COLORS[name], atol=1e-6).all(axis=1)))
            for _, name in named]


def test_every_manipulation_id_is_covered():
    assert {env_id.split("/")[1].split("-")[0] for env_id in MANIPULATION_IDS} == set(TASKS)
    assert "vmalign/Push-v1" in MANIPULATION_IDS


@pytest.mark.parametrize("obs_mode", OBS_MODES)
@pytest.mark.parametrize("env_id", MANIPULATION_IDS)
def test_check_env_in_every_mode(env_id, obs_mode):
    env = gym.make(env_id, obs_mode=obs_mode, render_mode="rgb_array")
    with warnings.catch_warnings():
        # The state Box is unbounded (-inf, inf), as in Gymnasium's MuJoCo envs.
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    if obs_mode == "rgb":
        assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    if obs_mode == "rgb+state":
        assert set(obs) == {"rgb", "state"}
    env.close()


def test_bad_obs_mode_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"obs_mode='pixels'.*\['rgb', 'state', 'rgb\+state'\]"):
        gym.make("vmalign/Push-v0", obs_mode="pixels")


@pytest.mark.parametrize("env_id", MANIPULATION_IDS)
def test_arm_entries_match_the_physics(env_id):
    env = make(env_id, obs_mode="state")
    obs, _ = env.reset(seed=1)
    assert not entries(state_of(env, obs), "tcp_vel").any()  # at rest
    for step in range(15):
        # Constant +x (from x = 0, short of the workspace's edge at 0.3): after a few
        # steps the hand moves at full speed, 1.5 cm a step.
        action = np.array([1.0, 0.0, 0.0, 0.6 if step > 5 else -1.0], np.float32)
        obs, *_ = env.step(action)
        state = state_of(env, obs)
        data = env.data
        tcp = data.site_xpos[env.model.site("tcp").id]
        np.testing.assert_allclose(entries(state, "tcp"), tcp, atol=1e-6)
        hand_target = data.mocap_pos[env.model.body("hand_target").mocapid[0]]
        np.testing.assert_allclose(entries(state, "hand_target", ("dx", "dy", "dz")),
                                   hand_target - tcp, atol=1e-6)
        opening = data.qpos[env.model.joint("finger_right").qposadr[0]]
        assert state["finger_opening"] == pytest.approx(opening, abs=1e-6)
    # Steady motion at 0.75 m/s on average (1.5 cm per 0.02 s step). The velocity is
    # the instant's, at the end of a step: lower, because the weld pulls the hand in
    # a burst after each jump of its target (measured: 0.58 m/s).
    assert 0.4 < state["tcp_vel_x"] < 0.8
    assert abs(state["tcp_vel_y"]) < 0.05 and abs(state["tcp_vel_z"]) < 0.05
    # Grip 0.6 closes the fingers to 0.05 * (1 - 0.6) / 2 = 0.01 m each.
    assert state["finger_opening"] == pytest.approx(FINGER_OPEN * 0.2, abs=2e-3)


def assert_relative(state: dict[str, float], name: str, vector: np.ndarray, axes="xyz"):
    np.testing.assert_allclose(entries(state, name, [f"d{axis}" for axis in axes]), vector,
                               atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reach_target_is_the_named_ball(seed):
    env = make("vmalign/Reach-v0", obs_mode="state")
    obs, _ = env.reset(seed=seed)
    obs, *_ = env.step(env.expert_action())
    state = state_of(env, obs)
    (target,) = named_geoms(env)[0]
    (other,) = {env.model.geom("goal").id, env.model.geom("distractor").id} - {target}
    tcp = entries(state, "tcp")
    np.testing.assert_allclose(entries(state, "target"), env.data.geom_xpos[target], atol=1e-6)
    np.testing.assert_allclose(entries(state, "distractor"), env.data.geom_xpos[other], atol=1e-6)
    assert_relative(state, "target", entries(state, "target") - tcp)


@pytest.mark.parametrize("env_id", ["vmalign/Push-v0", "vmalign/Push-v1"])
def test_push_entries_are_the_named_cube_and_pad(env_id):
    env = make(env_id, obs_mode="state")
    policy = expert_policy(env)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for _ in range(30):  # into the push: the cube moves
            obs, *_ = env.step(policy(obs))
        state = state_of(env, obs)
        (cube,), (pad,) = named_geoms(env)
        cube_pos, pad_pos = env.data.geom_xpos[cube], env.data.geom_xpos[pad]
        np.testing.assert_allclose(entries(state, "cube"), cube_pos, atol=1e-6)
        np.testing.assert_allclose(entries(state, "pad", "xy"), pad_pos[:2], atol=1e-6)
        assert_relative(state, "cube", cube_pos - entries(state, "tcp"))
        assert_relative(state, "pad", pad_pos[:2] - cube_pos[:2], "xy")


def test_pick_place_entries_are_the_named_cube_and_platform():
    env = make("vmalign/PickPlace-v0", obs_mode="state")
    obs, _ = env.reset(seed=4)
    state = state_of(env, obs)
    (cube,), (platform,) = named_geoms(env)
    cube_pos = env.data.geom_xpos[cube]
    top = env.data.geom_xpos[platform] + (0, 0, env.model.geom_size[platform, 2])
    np.testing.assert_allclose(entries(state, "cube"), cube_pos, atol=1e-6)
    np.testing.assert_allclose(entries(state, "place"), top + (0, 0, CUBE_HALF), atol=1e-6)
    assert_relative(state, "cube", cube_pos - entries(state, "tcp"))
    assert_relative(state, "place", top + (0, 0, CUBE_HALF) - cube_pos)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stack_entries_are_the_cube_to_move_and_the_base(seed):
    env = make("vmalign/Stack-v0", obs_mode="state")
    obs, _ = env.reset(seed=seed)
    state = state_of(env, obs)
    (moved,), (base,) = named_geoms(env)  # "stack the <moved> cube on the <base> cube"
    moved_pos, base_pos = env.data.geom_xpos[moved], env.data.geom_xpos[base]
    np.testing.assert_allclose(entries(state, "cube"), moved_pos, atol=1e-6)
    np.testing.assert_allclose(entries(state, "base"), base_pos, atol=1e-6)
    assert_relative(state, "place", base_pos + (0, 0, 0.05) - moved_pos)


@pytest.mark.parametrize("embodiment", ["gripper", "long_stick"])
def test_sweep_entries_are_every_piece_and_the_zone(embodiment):
    env = make("vmalign/Sweep-v0", obs_mode="state", embodiment=embodiment)
    policy = expert_policy(env)
    obs, _ = env.reset(seed=2)
    for _ in range(60):  # some pieces pushed into the zone
        obs, *_ = env.step(policy(obs))
    state = state_of(env, obs)
    debris, (zone,) = named_geoms(env)
    assert len(debris) == 4
    pieces = np.array([entries(state, f"debris{i}") for i in range(4)])
    np.testing.assert_allclose(pieces, env.data.geom_xpos[debris], atol=1e-6)
    np.testing.assert_allclose(entries(state, "zone", "xy"), env.data.geom_xpos[zone][:2],
                               atol=1e-6)
    np.testing.assert_allclose([state["zone_half_x"], state["zone_half_y"]],
                               env.model.geom_size[zone][:2], atol=1e-6)
    low = env.data.geom_xpos[zone][:2] - env.model.geom_size[zone][:2]
    high = env.data.geom_xpos[zone][:2] + env.model.geom_size[zone][:2]
    for i, piece in enumerate(pieces):
        assert_relative(state, f"debris{i}", piece - entries(state, "tcp"))
        to_zone = np.array([state[f"debris{i}_zone_dx"], state[f"debris{i}_zone_dy"]])
        np.testing.assert_allclose(to_zone, np.clip(piece[:2], low, high) - piece[:2],
                                   atol=1e-6)
    assert any(not to_zone.any() for to_zone in  # a piece in the zone has 0
               [entries(state, f"debris{i}", ["zone_dx", "zone_dy"]) for i in range(4)])
    if embodiment == "gripper":
        assert state["tool_half_width"] == pytest.approx(0.012)
    else:
        assert state["tool_half_width"] == pytest.approx(STICK_LENGTHS[embodiment] / 2)
        assert state["finger_opening"] == 0.0  # no fingers


@pytest.mark.parametrize("turn, expected", [(0.0, (0.0, 1.0)), (math.pi / 2, (0.0, 1.0)),
                                            (math.pi / 4, (0.0, -1.0)),
                                            (math.pi / 8, (1.0, 0.0)), (0.3, None)])
def test_cube_yaw_is_seen_modulo_a_quarter_turn(turn, expected):
    env = make("vmalign/Push-v0", obs_mode="state")
    env.reset(seed=0)
    address = env.model.jnt_qposadr[env.model.body("cube").jntadr[0]]
    env.data.qpos[address + 3:address + 7] = (math.cos(turn / 2), 0, 0, math.sin(turn / 2))
    mujoco.mj_forward(env.model, env.data)
    state = dict(zip(env.state_names, env.state().tolist()))
    expected = expected or (math.sin(4 * turn), math.cos(4 * turn))
    assert (state["cube_yaw_sin"], state["cube_yaw_cos"]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("env_id", MANIPULATION_IDS)
def test_modes_give_the_same_episode(env_id):
    """Same seed and actions: the same frames of render(), rewards, info and state in
    every mode, and "rgb+state" holds exactly what "rgb" and "state" give."""
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 4)).astype(np.float32)
    runs = {}
    for obs_mode in OBS_MODES:
        env = make(env_id, obs_mode=obs_mode, render_mode="rgb_array", render_size=48,
                   randomize_start=True)
        obs, info = env.reset(seed=5)
        steps = [(obs, 0.0, info, env.render(), env.state())]
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            steps.append((obs, reward, info, env.render(), env.state()))
        runs[obs_mode] = steps
        env.close()
    for step, (rgb, state, both) in enumerate(zip(*(runs[mode] for mode in OBS_MODES))):
        assert rgb[1:3] == state[1:3] == both[1:3], step  # reward, info
        np.testing.assert_array_equal(rgb[3], state[3])  # render()
        np.testing.assert_array_equal(rgb[3], both[3])
        np.testing.assert_array_equal(state[0], both[0]["state"])
        np.testing.assert_array_equal(rgb[0], both[0]["rgb"])
        np.testing.assert_array_equal(state[0], rgb[4])  # state() in rgb mode too
    # The frames moved: the comparison was not of one still picture.
    assert not np.array_equal(runs["rgb"][0][3], runs["rgb"][-1][3])


@pytest.mark.parametrize("env_id", ["vmalign/Reach-v0", "vmalign/Sweep-v0"])
def test_state_mode_never_makes_the_observation_gl_context(env_id):
    env = gym.make(env_id, obs_mode="state", render_mode="rgb_array", render_size=32)
    views = env.unwrapped._views
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
        env.render()  # the reward-model view has its own context
    assert views._observation_view is None
    assert set(views._render_views) == {"front"}
    plain = gym.make(env_id, obs_mode="state")
    plain.reset(seed=0)
    plain.step(plain.action_space.sample())
    assert plain.unwrapped._views._observation_view is None
    assert plain.unwrapped._views._render_views == {}


@pytest.mark.parametrize("env_id", MANIPULATION_IDS)
def test_docstring_lists_every_state_entry_at_its_index(env_id):
    env = make(env_id, obs_mode="state")
    names = env.state_names
    assert names[:len(ARM_STATE)] == ARM_STATE and len(set(names)) == len(names)
    doc = type(env).__doc__
    if "## Observation space" not in doc:  # a version class that points to its base
        doc = type(env).__mro__[1].__doc__
    section = doc.split("## Observation space")[1].split("\n    ## ")[0]
    assert f"Box(-inf, inf, ({len(names)},)," in section.replace("\n    ", " ")
    listed: dict[int, str] = {}
    for match in re.finditer(r"^    - (\d+)(?: \+ (\d+)i)?(?:-(\d+)| to \d+ \+ \d+i)?[^:]*: "
                             r"((?:``[\w{}]+``(?:,\s+)?)+)", section, re.MULTILINE):
        start, stride = int(match[1]), int(match[2] or 0)
        listed_names = re.findall(r"``([\w{}]+)``", match[4])
        for i in range(4 if stride else 1):  # "15 + 8i to 22 + 8i, for piece i = 0..3"
            for offset, name in enumerate(listed_names):
                listed[start + stride * i + offset] = name.replace("{i}", str(i))
        if match[3]:
            assert int(match[3]) == start + len(listed_names) - 1, match[0]
    assert listed == dict(enumerate(names))
