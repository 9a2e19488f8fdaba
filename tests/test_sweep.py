"""Sweep: embodiments, success and progress semantics, and the scripted expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids, picks the GL backend before mujoco)
from envs.manipulation.sweep import (
    DECOY_SPOTS,
    EMBODIMENTS,
    NUM_DEBRIS,
    STICK_LENGTHS,
    ZONE_HIGH,
    ZONE_LOW,
    SweepEnv,
)

ENV_ID = "vmalign/Sweep-v0"
STICKS = list(STICK_LENGTHS)


def make(embodiment: str = "gripper", **kwargs) -> SweepEnv:
    return gym.make(ENV_ID, embodiment=embodiment, **kwargs).unwrapped


def place(env: SweepEnv, points) -> dict:
    """Puts the debris at the given (x, y) points, at rest, and returns the next info."""
    for i, (x, y) in enumerate(points):
        env.set_free_body_pose(f"debris{i}", np.array([x, y, 0.015]))
    env.data.qvel[:] = 0.0
    return env.step(np.zeros(4, np.float32))[4]


def test_embodiments_are_the_documented_four():
    assert EMBODIMENTS == ("gripper", "short_stick", "medium_stick", "long_stick")


@pytest.mark.parametrize("embodiment", EMBODIMENTS)
def test_check_env(embodiment):
    env = gym.make(ENV_ID, embodiment=embodiment, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    env.close()


@pytest.mark.parametrize("bad", ["stick", "Gripper", "", None, 3])
def test_unknown_embodiment_raises_value_error_listing_the_allowed(bad):
    with pytest.raises(ValueError, match="embodiment") as error:
        gym.make(ENV_ID, embodiment=bad)
    for name in EMBODIMENTS:
        assert name in str(error.value)


def test_unknown_kwarg_lists_embodiment_among_valid_ones():
    with pytest.raises(TypeError, match="embodiment"):
        gym.make(ENV_ID, embodyment="gripper")


def test_gripper_and_sticks_end_effectors():
    gripper = make("gripper")
    assert gripper.has_gripper
    assert gripper.model.body("finger_left").id > 0
    lengths = []
    for name in STICKS:
        env = make(name)
        model = env.model
        assert not env.has_gripper
        assert model.nu == 0 and model.neq == 1  # only the hand weld is left
        for body in ("finger_left", "finger_right"):
            with pytest.raises(KeyError):
                model.body(body)
        stick = model.geom("stick")
        lengths.append(2 * stick.size[0])
        # The bar's bottom is at TCP z - 0.03, like the fingertips.
        assert stick.pos[2] - stick.size[2] == pytest.approx(-0.03)
    assert lengths == pytest.approx([STICK_LENGTHS[name] for name in STICKS])
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)


@pytest.mark.parametrize("embodiment", STICKS)
def test_sticks_ignore_grip(embodiment):
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, size=(30, 4)).astype(np.float32)
    runs = []
    for grip in (-1.0, 1.0):
        env = make(embodiment)
        obs, _ = env.reset(seed=3)
        frames, rewards = [obs], []
        for action in actions:
            action = action.copy()
            action[3] = grip
            obs, reward, *_ = env.step(action)
            frames.append(obs)
            rewards.append(reward)
        runs.append((frames, rewards))
    assert runs[0][1] == runs[1][1]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[1][0]))


def test_camera_and_light_randomization_reach_the_render():
    """Sweep lets resting debris sleep; the world's camera and light must still move."""
    env = make(camera_jitter=0.05, randomize_lighting=True)
    camera, light = env.model.camera("front").id, env.model.light("key").id
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(2):
            assert np.allclose(env.data.cam_xpos[camera], env.model.cam_pos[camera])
            assert np.allclose(env.data.light_xdir[light], env.model.light_dir[light])
            for _ in range(30):  # long enough for the debris to fall asleep
                env.step(np.zeros(4, np.float32))


def test_starting_state():
    env = make(randomize_colors=False)
    for seed in range(10):
        _, info = env.reset(seed=seed)
        assert info["instruction"] == "sweep the yellow debris into the green zone"
        assert info["progress"] < 1e-6 and not info["is_success"]
        assert info["debris_in_zone"] == 0 and info["fraction_in_zone"] == 0.0
        debris = env.debris_positions()
        assert debris.shape == (NUM_DEBRIS, 3)
        assert np.all(debris[:, 1] < ZONE_LOW[1])
        gaps = [np.linalg.norm(debris[i, :2] - debris[j, :2])
                for i in range(NUM_DEBRIS) for j in range(i)]
        assert min(gaps) >= 0.07 - 1e-9
    colored = make(randomize_colors=True)
    instructions = {colored.reset(seed=seed)[1]["instruction"] for seed in range(10)}
    assert len(instructions) > 1


def test_all_debris_in_zone_is_success_with_full_progress():
    env = make()
    env.reset(seed=0)
    inside = [(-0.2, 0.2), (-0.05, 0.24), (0.1, 0.2), (0.25, 0.28)]
    info = place(env, inside)
    assert info["is_success"]
    assert info["progress"] == 1.0
    assert info["debris_in_zone"] == NUM_DEBRIS and info["fraction_in_zone"] == 1.0
    assert info["zone_distance"] == 0.0 and info["hand_distance"] == 0.0
    _, reward, *_ = env.step(np.zeros(4, np.float32))
    assert reward == pytest.approx(0.25 * NUM_DEBRIS)


def test_partial_sweep_counts_and_progress():
    env = make()
    env.reset(seed=0)
    start = env.debris_positions()[:, :2]
    # Two pieces in the zone, one halfway there (straight ahead), one untouched.
    halfway = (start[2, 0], (start[2, 1] + ZONE_LOW[1]) / 2)
    info = place(env, [(0.0, 0.2), (0.2, 0.25), halfway, tuple(start[3])])
    assert not info["is_success"]
    assert info["debris_in_zone"] == 2 and info["fraction_in_zone"] == 0.5
    assert info["progress"] == pytest.approx((1 + 1 + 0.5 + 0) / 4, abs=0.01)
    # Outside the far or side edges is outside the zone too.
    info = place(env, [(0.0, 0.2), (0.2, 0.25), (0.0, ZONE_HIGH[1] + 0.03),
                       (ZONE_HIGH[0] + 0.03, 0.2)])
    assert not info["is_success"] and info["debris_in_zone"] == 2


def test_reward_prefers_debris_nearer_the_zone():
    env = make()
    env.reset(seed=0)
    start = env.debris_positions()[:, :2]
    rewards = []
    for shift in (0.0, 0.05, 0.1):
        place(env, start + [0.0, shift])
        rewards.append(env.step(np.zeros(4, np.float32))[1])
    assert rewards[0] < rewards[1] < rewards[2]


def test_decoy_parks_the_lowered_tool_at_its_spot_and_leaves_the_debris():
    env = make("gripper", obs_mode="state")
    spots = set()
    for seed in range(6):
        env.reset(seed=seed)
        start = env.debris_positions()
        for _ in range(150):
            info = env.step(env.decoy_action())[4]
        tcp = env.data.site_xpos[env._tcp_site]
        spot = np.array(env._decoy_spot)
        if np.isnan(spot[0]):  # the zone, at the pieces' mean x
            assert ZONE_LOW[1] <= tcp[1] <= ZONE_HIGH[1]
            spot[0] = start[:, 0].mean()
        assert np.linalg.norm(tcp[:2] - spot) < 0.02 and tcp[2] < 0.04  # lowered there
        assert np.abs(env.debris_positions() - start).max() < 1e-3
        assert info["progress"] < 1e-6 and not info["is_success"]
        spots.add(str(env._decoy_spot))
    assert spots == {str(spot) for spot in DECOY_SPOTS}  # the layouts spread over all three
