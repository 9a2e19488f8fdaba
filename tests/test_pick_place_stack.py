"""PickPlace and Stack: success, progress and reward on constructed states.

The shared contract (check_env, determinism, experts, colours) is in
tests/test_manipulation.py."""

from __future__ import annotations

import envs  # noqa: F401, I001  (first: registers the ids, sets MUJOCO_GL before mujoco loads)

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from envs.manipulation.pick_place import CUBE_HALF, PLATFORM_HEIGHT
from envs.manipulation.stack import CUBE_SIZE



def settle(env, steps: int = 0):
    """Recomputes derived state after a hand edit, optionally simulates ``steps``
    no-op steps (open gripper, hand still), and returns the task status."""
    mujoco.mj_forward(env.model, env.data)
    status = env._evaluate(first=False)
    for _ in range(steps):
        _, _, _, _, info = env.step(np.array([0, 0, 0, -1], np.float32))
        status = env._status
        assert info["is_success"] == status.is_success
    return status


def test_pick_place_success_on_constructed_states():
    env = gym.make("vmalign/PickPlace-v0").unwrapped
    _, info = env.reset(seed=0)
    assert not info["is_success"] and info["progress"] == 0.0
    top = env._platform_top()
    on_top = np.array([top[0], top[1], PLATFORM_HEIGHT + CUBE_HALF])

    env.set_free_body_pose("cube", on_top)
    status = settle(env)
    assert status.is_success and status.progress == 1.0
    assert status.extras["place_distance"] == pytest.approx(0.0, abs=1e-9)
    assert status.reward == pytest.approx(-status.extras["hand_distance"] + 1.0)
    # It stays there under physics: a cube resting on the platform is a success.
    assert settle(env, steps=10).is_success

    env.reset(seed=0)
    env.set_free_body_pose("cube", on_top + (0.03, -0.02, 0.0))  # off centre, still well on
    assert settle(env, steps=10).is_success

    for offset, why in [
        ((0.045, 0.0, 0.0), "centre within 1 cm of the edge"),
        ((0.0, 0.0, 0.03), "held 3 cm above the top"),
        ((0.0, 0.12, -PLATFORM_HEIGHT), "on the table beside the platform"),
    ]:
        env.reset(seed=0)
        env.set_free_body_pose("cube", on_top + offset)
        status = settle(env)
        assert not status.is_success, why
        assert status.progress < 1.0, why


def test_pick_place_progress_and_reward_follow_the_cube():
    env = gym.make("vmalign/PickPlace-v0").unwrapped
    _, info = env.reset(seed=2)
    start = env.data.xpos[env._cube].copy()
    place = env._placement_point()
    env.set_free_body_pose("cube", (start + place) / 2)  # halfway, in the air
    status = settle(env)
    assert not status.is_success
    start_distance = info["place_distance"]
    expected = (start_distance / 2) / (start_distance - 0.01)  # linear: start 0, 1 cm 1
    assert status.progress == pytest.approx(expected, abs=1e-6)
    assert status.reward == pytest.approx(
        -(status.extras["hand_distance"] + 2 * status.extras["place_distance"]))


# -------------------------------------------------------------------- Stack
def test_stack_success_on_constructed_states():
    env = gym.make("vmalign/Stack-v0").unwrapped
    _, info = env.reset(seed=0)
    assert not info["is_success"] and info["progress"] == 0.0
    base = env.data.xpos[env._base].copy()

    env.set_free_body_pose("cube_a", base + (0.0, 0.0, CUBE_SIZE))
    status = settle(env)
    assert status.is_success and status.progress == 1.0
    assert settle(env, steps=10).is_success  # stays stacked under physics

    env.reset(seed=0)
    env.set_free_body_pose("cube_a", base + (0.015, 0.0, CUBE_SIZE))  # 1.5 cm off centre
    assert settle(env).is_success

    for body, pos, why in [
        ("cube_a", base + (0.025, 0.0, CUBE_SIZE), "2.5 cm off centre"),
        ("cube_a", base + (0.0, 0.0, CUBE_SIZE + 0.02), "held 2 cm above"),
        ("cube_a", base + (0.0, 0.08, 0.0), "beside it on the table"),
    ]:
        env.reset(seed=0)
        env.set_free_body_pose(body, pos)
        status = settle(env)
        assert not status.is_success and status.progress < 1.0, why

    # The wrong way round: the base cube on the moved cube is not success.
    env.reset(seed=0)
    moved = env.data.xpos[env._moved].copy()
    env.set_free_body_pose("cube_b", moved + (0.0, 0.0, CUBE_SIZE))
    assert not settle(env).is_success


@pytest.mark.parametrize(
    "env_id, instruction",
    [("vmalign/PickPlace-v0", "put the red cube on the green platform"),
     ("vmalign/Stack-v0", "stack the red cube on the blue cube")],
)
def test_fixed_colours(env_id, instruction):
    env = gym.make(env_id, randomize_colors=False)
    assert {env.reset(seed=seed)[1]["instruction"] for seed in range(3)} == {instruction}
