"""``obs_mode`` of the navigation and card envs: "rgb", "state" and "rgb+state".

What each mode must keep: the same episodes, ``render()`` frames and ``info`` as the
others (only the observation differs); a state vector that matches the simulation or
the game; and in state mode no observation rendering at all.
"""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.cards.formula_game import REJECTED, REJECTED_CODE
from envs.colors import COLORS
from envs.navigation import layout as grid
from envs.navigation import scene
from envs.navigation.nav import FORWARD, STATE_NAMES, TURN_LEFT, TURN_RIGHT, TURN_STEP

NAVIGATION_IDS = ["vmalign/GoToObject-v0", "vmalign/Maze-v0"]
CARD_IDS = ["vmalign/NumberLine-v0", "vmalign/EZPoints-v0", "vmalign/Points24-v0",
            "vmalign/Blackjack-v0"]
MODES = ["rgb", "state", "rgb+state"]


def nav_actions(count: int, seed: int = 0) -> list[np.int64]:
    """Forward-heavy random actions, so that walks reach walls and objects."""
    rng = np.random.default_rng(seed)
    return list(rng.choice(3, size=count, p=[0.2, 0.2, 0.6]))


def state_of(obs, env: gym.Env) -> np.ndarray:
    """The state vector an observation holds, or (rgb mode) the env's."""
    mode = env.unwrapped.obs_mode
    if mode == "state":
        return obs
    if mode == "rgb+state":
        return obs["state"]
    return env.unwrapped.state()


def same_info(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def record(env: gym.Env, seed: int, actions: list) -> dict[str, list]:
    """Everything an episode shows, per step: observation parts, rewards, flags, info
    and render() frames; starts a new episode when one ends."""
    out: dict[str, list] = {"state": [], "rgb": [], "step": [], "info": [], "frame": []}

    def keep(obs, info):
        out["state"].append(state_of(obs, env).copy())
        if env.unwrapped.obs_mode != "state":
            out["rgb"].append((obs if isinstance(obs, np.ndarray) else obs["rgb"]).copy())
        out["info"].append(info)
        out["frame"].append(env.render().copy())

    obs, info = env.reset(seed=seed)
    keep(obs, info)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out["step"].append((reward, terminated, truncated))
        keep(obs, info)
        if terminated or truncated:
            obs, info = env.reset()
            keep(obs, info)
    return out


def assert_same_episodes(runs: dict[str, dict[str, list]]) -> None:
    reference = runs["rgb"]
    for mode, run in runs.items():
        assert run["step"] == reference["step"], mode
        assert all(same_info(a, b) for a, b in zip(run["info"], reference["info"])), mode
        assert len(run["state"]) == len(reference["state"])
        for a, b in zip(run["state"], reference["state"]):
            assert a.dtype == np.float32 and np.array_equal(a, b), mode
        for a, b in zip(run["frame"], reference["frame"]):
            assert np.array_equal(a, b), mode
    assert len(runs["rgb+state"]["rgb"]) == len(reference["rgb"])
    for a, b in zip(runs["rgb+state"]["rgb"], reference["rgb"]):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", NAVIGATION_IDS + CARD_IDS)
def test_check_env_in_every_mode(env_id, mode):
    env = gym.make(env_id, obs_mode=mode, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    if mode == "rgb+state":
        assert isinstance(env.observation_space, gym.spaces.Dict)
        assert list(obs) == ["rgb", "state"]
    env.close()


@pytest.mark.parametrize("env_id", NAVIGATION_IDS + CARD_IDS)
def test_bad_obs_mode_lists_the_valid_modes(env_id):
    with pytest.raises(ValueError, match=r"obs_mode='pixels'.*\['rgb', 'state', 'rgb\+state'\]"):
        gym.make(env_id, obs_mode="pixels")


@pytest.mark.parametrize("env_id", NAVIGATION_IDS + CARD_IDS)
def test_default_is_rgb(env_id):
    env = gym.make(env_id)
    assert env.unwrapped.obs_mode == "rgb"
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
    state = gym.make(env_id, obs_mode="state").observation_space
    assert state.dtype == np.float32 and state.shape == (len(env.unwrapped.state_names),)


# ------------------------------------------------------------------ navigation
@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
@pytest.mark.parametrize("kwargs", [{}, {"obs_size": 96, "render_size": 96},
                                    {"continuous": True, "render_camera": "top"}],
                         ids=["default", "render_shares_the_obs_camera", "continuous_top"])
def test_navigation_modes_give_the_same_episodes_states_and_frames(env_id, kwargs):
    # obs_size == render_size: in rgb mode render() copies the last observation, in
    # state mode it draws afresh; the frames must still be equal.
    runs = {}
    for mode in MODES:
        env = gym.make(env_id, obs_mode=mode, render_mode="rgb_array", max_steps=25, **kwargs)
        if kwargs.get("continuous"):
            actions = list(np.random.default_rng(0).uniform(-1, 1, (40, 2)).astype(np.float32))
        else:
            actions = nav_actions(40)
        runs[mode] = record(env, seed=3, actions=actions)
        env.close()
    assert_same_episodes(runs)


def _goal_geom(env) -> int:
    """The one visible geom of the colour and shape the instruction names."""
    color, shape = env.instruction.split(" ")[-2:]
    model = env.model
    shown = [g for g in range(model.ngeom)
             if model.geom_group[g] == 0 and model.geom_type[g] == scene.SHAPES[shape][0]
             and np.allclose(model.geom_rgba[g, :3], COLORS[color])]
    assert len(shown) == 1, env.instruction
    return shown[0]


def _seen_from(heading: np.ndarray, delta: np.ndarray) -> tuple[float, float, float]:
    """(distance, cos, sin) of ``delta`` from a unit ``heading``, by dot and cross."""
    distance = float(np.linalg.norm(delta))
    forward = heading @ delta
    left = heading[0] * delta[1] - heading[1] * delta[0]
    return distance, forward / distance, left / distance


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_navigation_state_matches_the_simulation(env_id):
    env = gym.make(env_id, obs_mode="state").unwrapped
    assert env.state_names == STATE_NAMES and len(STATE_NAMES) == 14
    model = env.model
    agent = model.body("agent").id
    # A copy of the simulation for kinematics: mj_step leaves body poses computed
    # before its last integration, so the env's own data lags qpos by one substep.
    kinematics = mujoco.MjData(model)
    actions = nav_actions(120, seed=1)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        goal = model.geom_pos[_goal_geom(env), :2]
        for action in [None, *actions]:
            if action is not None:
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            assert env.observation_space.contains(obs)
            kinematics.qpos[:] = env.data.qpos
            mujoco.mj_kinematics(model, kinematics)
            xy = kinematics.xpos[agent, :2]
            heading = kinematics.xmat[agent].reshape(3, 3)[:2, 0]  # the body's x axis
            np.testing.assert_allclose(obs[0:2], xy, atol=1e-5)
            np.testing.assert_allclose(obs[2:4], heading, atol=1e-6)
            np.testing.assert_allclose(obs[4:6], goal, atol=1e-6)
            np.testing.assert_allclose(obs[6:9], _seen_from(heading, goal - xy), atol=1e-5)
            waypoint = obs[9:11].astype(float)
            if np.linalg.norm(goal - xy) <= 0.55:
                np.testing.assert_array_equal(waypoint, goal)
            if np.linalg.norm(waypoint - xy) > 1e-4:
                np.testing.assert_allclose(obs[11:14], _seen_from(heading, waypoint - xy),
                                           atol=1e-4)
            if not np.array_equal(waypoint, goal):
                # A cell centre of the shortest path ahead: nearer the goal along it,
                # at most 8 cells on, and in clear view, or else the path's second cell
                # (the first is a neighbour of the agent's: within three cells' diagonal).
                cell = waypoint / grid.CELL - 0.5
                assert np.array_equal(cell, np.round(cell)), waypoint
                assert env.geodesic_distance(waypoint) < env.geodesic_distance(xy) + 1e-6
                assert env.geodesic_distance(xy) - env.geodesic_distance(waypoint) <= (
                    8 * grid.CELL * math.sqrt(2) + 1.0)
                clear = grid.segment_clear(env._blocked, xy, waypoint, scene.AGENT_RADIUS)
                assert clear or np.linalg.norm(waypoint - xy) <= 3 * grid.CELL * math.sqrt(2)


def state_policy(state: np.ndarray) -> np.int64:
    """Navigation from the state vector alone: face the waypoint (the goal once close)
    within half a turn, then go forward; near the goal, keep it centred."""
    distance = float(state[6])
    near = distance <= 0.55
    cos_b, sin_b = (state[7], state[8]) if near else (state[12], state[13])
    error = math.atan2(sin_b, cos_b)
    toward = np.int64(TURN_LEFT if error > 0 else TURN_RIGHT)
    if abs(error) > TURN_STEP / 2 or (near and distance < 0.4 and abs(error) > math.radians(5)):
        return toward
    return np.int64(FORWARD)


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_a_policy_reading_only_the_state_succeeds(env_id):
    env = gym.make(env_id, obs_mode="state", terminate_on_success=True)
    successes = 0
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(state_policy(obs))
        successes += info["is_success"]
    assert successes >= 9, successes


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_only_image_modes_make_the_observation_gl_context(env_id, mode):
    # Render shares the observation's camera and size: with an image observation,
    # render() copies it (no context of its own); in state mode it must draw itself.
    env = gym.make(env_id, obs_mode=mode, render_mode="rgb_array", obs_size=64,
                   render_size=64)
    env.reset(seed=0)
    for action in nav_actions(5):
        env.step(action)
    assert env.render().shape == (64, 64, 3)
    views = env.unwrapped._views
    assert (views._observation_view is None) == (mode == "state")
    assert bool(views._render_views) == (mode == "state")
    env.close()


# ----------------------------------------------------------------------- cards
def card_actions(env_id: str, count: int, seed: int = 0) -> list[int]:
    n = gym.make(env_id).action_space.n
    return list(np.random.default_rng(seed).integers(0, n, count))


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_card_modes_give_the_same_episodes_states_and_frames(env_id):
    runs = {}
    for mode in MODES:
        env = gym.make(env_id, obs_mode=mode, render_mode="rgb_array", render_size=96)
        runs[mode] = record(env, seed=5, actions=card_actions(env_id, 60))
    assert_same_episodes(runs)


def _decode(env, codes: np.ndarray) -> str:
    words = {i + 1: word for i, word in enumerate(env.action_words)}
    words[REJECTED_CODE] = REJECTED
    return " ".join(words[int(code)] for code in codes if code != 0)


def _check_card_state(env, obs: np.ndarray, info: dict) -> None:
    assert obs.dtype == np.float32 and env.observation_space.contains(obs), obs
    name = type(env).__name__
    if name == "NumberLineEnv":
        assert obs.tolist() == [info["target"], info["current"]]
    elif name == "BlackjackEnv":
        dealer_up = min(int(env.dealer[0].rank), 10)  # an ace is 1, a face card 10
        assert info["dealer_cards"][0] == env.dealer[0].name
        assert obs.tolist() == [info["player_total"], dealer_up, float(info["usable_ace"])]
    else:
        count = env.card_count
        assert obs[:count].tolist() == info["numbers"]
        assert _decode(env, obs[count:]) == info["formula"]
        # Tokens fill the slots from the start, with no gaps.
        length = len(info["formula"].split())
        assert np.all(obs[count:count + length] != 0) and np.all(obs[count + length:] == 0)


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_card_state_matches_the_game(env_id):
    env = gym.make(env_id, obs_mode="state").unwrapped
    assert len(env.state_names) == env.observation_space.shape[0]
    rng = np.random.default_rng(0)
    env.action_space.seed(0)
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        _check_card_state(env, obs, info)
        done = False
        while not done:
            # Half expert, half random: wins, losses, rejected numbers, long formulas.
            action = env.expert_action() if rng.random() < 0.5 else env.action_space.sample()
            obs, _, terminated, truncated, info = env.step(action)
            _check_card_state(env, obs, info)
            done = terminated or truncated


@pytest.mark.parametrize("env_id, spam", [("vmalign/EZPoints-v0", "+"),
                                          ("vmalign/Points24-v0", "("),
                                          ("vmalign/Points24-v0", "1")])
def test_the_longest_formula_fits_the_state(env_id, spam):
    # "1" is rejected (the cards below show none): the formula fills with "_".
    env = gym.make(env_id, obs_mode="state").unwrapped
    cards = ["3H", "4S"] if "EZ" in env_id else ["3H", "3S", "8D", "8C"]
    obs, info = env.reset(seed=0, options={"cards": cards})
    action = env.action_words.index(spam)
    truncated = False
    while not truncated:
        obs, _, terminated, truncated, info = env.step(action)
        assert not terminated
        _check_card_state(env, obs, info)
    assert np.all(obs[env.card_count:] != 0)  # every slot used
    assert len(info["formula"].split()) == env.max_tokens + 1


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_card_state_mode_draws_no_observation(env_id):
    state = gym.make(env_id, obs_mode="state").unwrapped
    rgb = gym.make(env_id, obs_mode="rgb").unwrapped
    for env in (state, rgb):
        env.reset(seed=0)
        env.step(env.expert_action())
    assert state._tables == {} and state._layouts == {}
    assert rgb._tables  # the attribute is the right one: rgb mode draws
