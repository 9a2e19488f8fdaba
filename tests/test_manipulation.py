"""Contract tests shared by every manipulation environment."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.experts import expert_policy
from envs.manipulation.arm import START_HIGH, START_LOW
from envs.colors import COLORS

MANIPULATION_IDS = [env_id for env_id in envs.ENV_IDS if env_id.split("/")[1].split("-")[0]
                    in {"Reach", "Push", "PickPlace", "Stack", "Sweep"}]
# Every task, plus Sweep's other embodiments: (id, constructor kwargs).
VARIANTS = [(env_id, {}) for env_id in MANIPULATION_IDS] + [
    ("vmalign/Sweep-v0", {"embodiment": embodiment})
    for embodiment in ("short_stick", "medium_stick", "long_stick")
]
VARIANT_NAMES = [f"{env_id}{kwargs or ''}" for env_id, kwargs in VARIANTS]


def rollout(env: gym.Env, seed: int, actions: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for action in actions:
        obs, reward, *_ = env.step(action)
        frames.append(obs)
        rewards.append(reward)
    return frames, rewards


def test_every_task_is_registered():
    assert set(MANIPULATION_IDS) == {
        "vmalign/Reach-v0", "vmalign/Push-v0", "vmalign/Push-v1", "vmalign/PickPlace-v0",
        "vmalign/PickPlace-v1", "vmalign/Stack-v0", "vmalign/Stack-v1", "vmalign/Sweep-v0",
        "vmalign/Sweep-v1",
    }
    for task in ("Push", "PickPlace", "Stack", "Sweep"):
        assert gym.spec(f"vmalign/{task}-v1").max_episode_steps == gym.spec(
            f"vmalign/{task}-v0").max_episode_steps


@pytest.mark.parametrize("env_id", MANIPULATION_IDS)
def test_check_env(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("env_id, kwargs", VARIANTS, ids=VARIANT_NAMES)
def test_same_seed_same_actions_same_frames_and_rewards(env_id, kwargs):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(40, 4)).astype(np.float32)
    visuals = dict(randomize_textures=True, randomize_lighting=True, camera_jitter=0.02,
                   randomize_start=True)
    first = gym.make(env_id, **visuals, **kwargs)
    second = gym.make(env_id, **visuals, **kwargs)
    frames_a, rewards_a = rollout(first, 7, actions)
    rollout(first, 8, actions)  # another episode in between must not leak into the next
    frames_c, rewards_c = rollout(first, 7, actions)
    frames_b, rewards_b = rollout(second, 7, actions)
    for frames, rewards in ((frames_b, rewards_b), (frames_c, rewards_c)):
        assert rewards == rewards_a
        assert all(np.array_equal(x, y) for x, y in zip(frames, frames_a))
    other, _ = rollout(first, 8, actions[:0])
    assert not np.array_equal(other[0], frames_a[0]), "different seeds gave the same scene"


@pytest.mark.parametrize("env_id", ["vmalign/Reach-v0", "vmalign/Push-v0"])
@pytest.mark.parametrize(
    "bad",
    [np.zeros(3, np.float32), np.zeros((1, 4), np.float32), np.array(["a", "b", "c", "d"]),
     np.array([True, False, True, False]), np.array([0, 0, np.nan, 0], np.float32),
     np.array([0, np.inf, 0, 0]), "left", None],
)
def test_bad_actions_raise_value_error_naming_the_space(env_id, bad):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Box\(-1\.0, 1\.0, \(4,\), float32\)"):
        env.step(bad)
    # The env is still usable afterwards and the episode is unaffected.
    obs, reward, *_ = env.step(np.zeros(4, np.float32))
    assert obs.shape == (64, 64, 3) and np.isfinite(reward)


def test_out_of_range_actions_are_clipped():
    clipped = gym.make("vmalign/Push-v0").unwrapped
    exact = gym.make("vmalign/Push-v0").unwrapped
    clipped.reset(seed=3)
    exact.reset(seed=3)
    for _ in range(5):
        obs_a, reward_a, *_ = clipped.step(np.array([5.0, -9.0, 2.0, 3.0]))
        obs_b, reward_b, *_ = exact.step(np.array([1.0, -1.0, 1.0, 1.0], np.float32))
    assert np.array_equal(obs_a, obs_b) and reward_a == reward_b
    # Integer actions are real numbers too.
    clipped.step(np.array([0, 1, 0, -1]))


@pytest.mark.parametrize("env_id", MANIPULATION_IDS)
def test_unknown_kwarg_lists_valid_ones(env_id):
    with pytest.raises(TypeError, match=r"obs_sise.*valid ones are.*obs_size"):
        gym.make(env_id, obs_sise=32)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"obs_size": 8}, "obs_size"), ({"obs_size": 64.5}, "obs_size"), ({"camera": "top"}, "camera"),
     ({"render_size": 4096}, "render_size"), ({"camera_jitter": -1}, "camera_jitter"),
     ({"render_mode": "depth"}, "render_mode"), ({"randomize_start": "false"}, "randomize_start"),
     ({"terminate_on_success": 1}, "terminate_on_success"),
     ({"render_camera": []}, "render_camera"), ({"render_camera": ["side", "ceiling"]}, "ceiling"),
     ({"render_camera": ["side", "side"]}, "names a camera twice"),
     ({"render_camera": 2}, "render_camera")],
)
def test_bad_arguments_say_what_is_allowed(kwargs, message):
    from envs.manipulation.reach import ReachEnv

    with pytest.raises(ValueError, match=message):
        ReachEnv(**kwargs)


@pytest.mark.parametrize("camera", ["front", "workspace", "side", "wrist"])
def test_observation_and_render_sizes(camera):
    env = gym.make("vmalign/Push-v0", render_mode="rgb_array", obs_size=40, camera=camera,
                   render_size=100, render_camera=camera)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (40, 40, 3) and obs.dtype == np.uint8
    assert env.observation_space.shape == (40, 40, 3)
    frame = env.render()
    assert frame.shape == (100, 100, 3) and frame.dtype == np.uint8
    assert obs.std() > 5 and frame.std() > 5, "blank image"
    obs2, *_ = env.step(env.action_space.sample())
    assert obs2 is not obs  # observations are fresh arrays, safe to keep


@pytest.mark.parametrize("env_id", ["vmalign/Push-v0", "vmalign/GoToObject-v0"])
def test_render_of_the_observation_view_is_the_observation_until_the_state_moves(env_id):
    # Same camera and size: render() reuses the observation instead of drawing it
    # again, and must give exactly what a separate render view would.
    same = gym.make(env_id, render_mode="rgb_array", obs_size=48, render_size=48)
    other = gym.make(env_id, render_mode="rgb_array", obs_size=48, render_size=48)
    obs, _ = same.reset(seed=3)
    other.reset(seed=3)
    for _ in range(3):
        frame = same.render()
        np.testing.assert_array_equal(frame, obs)
        frame[:] = 0  # a copy: the caller may keep or change it
        np.testing.assert_array_equal(same.render(), obs)
        action = same.action_space.sample()
        obs, *_ = same.step(action)
        other.step(action)
    # A state moved by hand, with no new observation, is drawn afresh.
    data = same.unwrapped.data
    data.qpos[:] = other.unwrapped.data.qpos + 0.05
    import mujoco

    mujoco.mj_forward(same.unwrapped.model, data)
    assert not np.array_equal(same.render(), obs)


@pytest.mark.parametrize("cameras", [["workspace", "side"], ["side", "front", "workspace"]])
def test_render_with_several_cameras_places_their_views_side_by_side(cameras):
    # The observation's camera at the render size is copied from the observation;
    # the rest are drawn. Either way each tile must equal that camera's own render.
    env = gym.make("vmalign/Reach-v0", render_mode="rgb_array", obs_size=48, camera="workspace",
                   render_size=48, render_camera=cameras)
    singles = {camera: gym.make("vmalign/Reach-v0", render_mode="rgb_array", obs_size=48,
                                camera="workspace", render_size=48, render_camera=camera)
               for camera in cameras}
    env.reset(seed=4)
    for single in singles.values():
        single.reset(seed=4)
    for _ in range(2):
        frame = env.render()
        assert frame.shape == (48, 48 * len(cameras), 3) and frame.dtype == np.uint8
        for index, camera in enumerate(cameras):
            tile = frame[:, 48 * index:48 * (index + 1)]
            np.testing.assert_array_equal(tile, singles[camera].render())
            assert tile.std() > 5, f"blank {camera} view"
        action = env.action_space.sample()
        env.step(action)
        for single in singles.values():
            single.step(action)
    # The views really differ: a list is not one camera repeated.
    tiles = [frame[:, 48 * i:48 * (i + 1)] for i in range(len(cameras))]
    assert not np.array_equal(tiles[0], tiles[1])


def test_render_is_none_without_render_mode():
    env = gym.make("vmalign/Reach-v0")
    env.reset(seed=0)
    assert env.render() is None


@pytest.mark.parametrize("env_id", MANIPULATION_IDS)
def test_info_contract_and_instruction_names_applied_colours(env_id):
    env = gym.make(env_id)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        unwrapped = env.unwrapped
        assert info["instruction"] == unwrapped.instruction != ""
        assert isinstance(info["is_success"], bool) and 0.0 <= info["progress"] <= 1.0
        named = [c for c in COLORS if f" {c} " in f" {info['instruction']} "]
        assert named, info["instruction"]
        applied = unwrapped.model.geom_rgba[:, :3]
        for color in named:
            assert np.isclose(applied, COLORS[color], atol=1e-6).all(axis=1).any(), (
                color, info["instruction"])
        _, _, _, _, info = env.step(env.action_space.sample())
        assert 0.0 <= info["progress"] <= 1.0


def test_terminate_on_success():
    env = gym.make("vmalign/Reach-v0", terminate_on_success=True)
    env.reset(seed=0)
    policy = expert_policy(env)
    for step in range(50):
        _, _, terminated, truncated, info = env.step(policy(None))
        if terminated:
            break
    assert terminated and info["is_success"] and not truncated


def test_fixed_colours_when_not_randomized():
    env = gym.make("vmalign/Push-v0", randomize_colors=False)
    instructions = {env.reset(seed=s)[1]["instruction"] for s in range(4)}
    assert instructions == {"push the red cube onto the green target"}


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


@pytest.mark.parametrize("env_id, kwargs", VARIANTS, ids=VARIANT_NAMES)
def test_expert_succeeds_on_95_percent_of_20_seeds(env_id, kwargs):
    assert expert_success_rate(env_id, range(20), **kwargs) >= 0.95


@pytest.mark.parametrize("env_id, kwargs", VARIANTS, ids=VARIANT_NAMES)
def test_random_start_puts_the_arm_at_rest_in_the_start_box(env_id, kwargs):
    env = gym.make(env_id, randomize_start=True, **kwargs).unwrapped
    starts = []
    for seed in range(4):
        _, info = env.reset(seed=seed)
        assert info["progress"] == 0.0 and not info["is_success"]
        hand = env.body_pos("hand")
        assert np.all(hand >= START_LOW - 1e-3) and np.all(hand <= START_HIGH + 1e-3)
        assert np.abs(env.data.qvel).max() == 0.0
        before = env.data.qpos.copy()
        for _ in range(3):  # holding still: nothing drifts, nothing was knocked over
            env.step(np.array([0.0, 0.0, 0.0, -1.0], dtype=np.float32))
        assert np.abs(env.data.qpos - before).max() < 2e-3
        starts.append(hand)
    assert min(np.linalg.norm(a - b) for i, a in enumerate(starts) for b in starts[:i]) > 0.01
    home = gym.make(env_id, **kwargs).unwrapped
    home_hands = []
    for seed in range(2):
        home.reset(seed=seed)
        home_hands.append(home.body_pos("hand"))
    assert np.allclose(home_hands[0], home_hands[1]), "the default start must stay fixed"


@pytest.mark.parametrize("env_id", MANIPULATION_IDS)
def test_expert_succeeds_from_random_starts(env_id):
    assert expert_success_rate(env_id, range(10), randomize_start=True) >= 0.9


def test_reach_progress_and_success_follow_distance():
    env = gym.make("vmalign/Reach-v0").unwrapped
    _, info = env.reset(seed=1)
    assert info["progress"] == 0.0 and not info["is_success"]
    distances = [info["distance"]]
    for _ in range(50):
        _, reward, _, _, info = env.step(env.expert_action())
        distances.append(info["distance"])
        assert reward == pytest.approx(-info["distance"])
    assert info["is_success"] and info["progress"] == 1.0
    assert distances[-1] < 0.03 < distances[0]


def test_visual_randomization_options_change_the_scene_only_when_asked():
    plain = gym.make("vmalign/Push-v0").unwrapped
    varied = gym.make("vmalign/Push-v0", randomize_textures=True, randomize_lighting=True,
                      camera_jitter=0.05).unwrapped
    table = plain.model.geom("table").id
    plain_state = []
    seen = {"material": set(), "light": set(), "camera": set()}
    for seed in range(6):
        plain.reset(seed=seed)
        plain_state.append((plain.model.geom_matid[table], tuple(plain.model.light_dir[0]),
                            tuple(plain.model.cam_pos[0])))
        varied.reset(seed=seed)
        seen["material"].add(int(varied.model.geom_matid[table]))
        seen["light"].add(tuple(np.round(varied.model.light_dir[0], 6)))
        seen["camera"].add(tuple(np.round(varied.model.cam_pos[0], 6)))
    assert len(set(plain_state)) == 1, "randomisation switched off must keep the scene fixed"
    assert len(seen["material"]) > 1 and len(seen["light"]) == 6 and len(seen["camera"]) == 6
    # The jittered camera still looks at the table: the image is not blank.
    assert varied._observe().std() > 5


def test_push_v0_reward_is_unchanged():
    # v0 stays what earlier results were computed with: -(d_hand + 2 d_goal) + success.
    env = gym.make("vmalign/Push-v0")
    policy = expert_policy(env)
    obs, info = env.reset(seed=2)
    assert "push_distance" not in info
    for _ in range(60):
        obs, reward, _, _, info = env.step(policy(obs))
        assert reward == -(info["hand_distance"] + 2 * info["goal_distance"]) + info["is_success"]
    assert info["is_success"]


def test_push_v1_is_v0_with_the_staged_reward():
    from envs.manipulation.push import PUSH_HEIGHT, PUSH_POINT_BEHIND, SUCCESS_REWARD

    v0, v1 = gym.make("vmalign/Push-v0"), gym.make("vmalign/Push-v1")
    rng = np.random.default_rng(0)
    for seed in range(2):
        obs0, info0 = v0.reset(seed=seed)
        obs1, info1 = v1.reset(seed=seed)
        policy = expert_policy(v1)
        for step in range(100):
            np.testing.assert_array_equal(obs0, obs1)
            assert info1.pop("push_distance") >= 0.0
            assert info0 == info1  # success and progress as in v0
            action = policy(obs1) if step > 10 else rng.uniform(-1, 1, 4).astype(np.float32)
            obs0, reward0, *_, info0 = v0.step(action)
            obs1, reward1, *_, info1 = v1.step(action)
            assert 0.0 <= reward1 <= SUCCESS_REWARD
            if info1["is_success"]:
                assert reward1 == SUCCESS_REWARD
            else:
                unwrapped = v1.unwrapped
                cube, pad = unwrapped.body_pos("cube"), unwrapped.body_pos("target")
                direction = (pad - cube)[:2] / np.linalg.norm((pad - cube)[:2])
                push_point = np.append(cube[:2] - PUSH_POINT_BEHIND * direction, PUSH_HEIGHT)
                assert info1["push_distance"] == pytest.approx(
                    np.linalg.norm(unwrapped.tcp - push_point))
                reach = 1 - np.tanh(5 * info1["push_distance"])
                push = (1 - np.tanh(3 * info1["goal_distance"])) * (info1["push_distance"] < 0.025)
                assert reward1 == pytest.approx(reach + push)
        assert info1["is_success"]


def test_push_v1_ranks_pushing_above_hovering_at_the_cube():
    """v0's local optimum, hovering at the cube, must score below getting behind it,
    which must score below the expert's push."""
    env = gym.make("vmalign/Push-v1")
    unwrapped = env.unwrapped
    policies = {
        "hover at the cube": lambda: unwrapped.move_toward(unwrapped.body_pos("cube"), 1.0),
        "hold the push point": lambda: unwrapped.move_toward(unwrapped.push_point(), 1.0),
        "expert": unwrapped.expert_action,
    }
    returns = {}
    for name, policy in policies.items():
        total = 0.0
        for seed in range(3):
            env.reset(seed=seed)
            for _ in range(100):
                total += env.step(policy())[1]
        returns[name] = total / 3
    assert returns["hover at the cube"] < returns["hold the push point"] < returns["expert"]


# (v1 id, the info key v1 adds)
STAGED_V1 = [("vmalign/PickPlace-v1", "grasped"), ("vmalign/Stack-v1", "grasped"),
             ("vmalign/Sweep-v1", "push_distance")]


@pytest.mark.parametrize("env_id, added", STAGED_V1)
def test_v1_is_v0_with_the_staged_reward(env_id, added):
    """Same observations, success, progress and dynamics as v0 under the same actions
    (the expert after random ones); the v1 reward bounded, at its maximum on success."""
    from envs.manipulation.pick_place import STAGED_SUCCESS_REWARD

    v0, v1 = gym.make(env_id.replace("-v1", "-v0")), gym.make(env_id)
    top = STAGED_SUCCESS_REWARD if added == "grasped" else 7.0
    rng = np.random.default_rng(0)
    obs0, info0 = v0.reset(seed=3)
    obs1, info1 = v1.reset(seed=3)
    policy = expert_policy(v1)
    successes = 0
    for step in range(v1.spec.max_episode_steps):
        np.testing.assert_array_equal(obs0, obs1)
        info1.pop(added)
        assert info0 == info1
        action = policy(obs1) if step > 5 else rng.uniform(-1, 1, 4).astype(np.float32)
        obs0, reward0, *_, info0 = v0.step(action)
        obs1, reward1, *_, info1 = v1.step(action)
        assert 0.0 <= reward1 <= top
        successes += info1["is_success"]
        if info1["is_success"]:
            assert reward1 == pytest.approx(top)
    assert successes  # the expert got there, so the success branch ran


def test_placement_v1_reward_follows_its_stages():
    """Reach term, grasp from both finger pads' contacts, carry term while grasped."""
    env = gym.make("vmalign/PickPlace-v1")
    unwrapped = env.unwrapped
    env.reset(seed=0)
    grasped_steps = 0
    for _ in range(120):
        _, reward, _, _, info = env.step(unwrapped.expert_action())
        if info["is_success"]:
            continue
        assert info["grasped"] == unwrapped.grasps(unwrapped.model.body("cube").id)
        reach = 1 - np.tanh(5 * info["hand_distance"])
        carry = (2 - np.tanh(5 * info["place_distance"])) * info["grasped"]
        assert reward == pytest.approx(reach + carry)
        grasped_steps += info["grasped"]
    assert grasped_steps > 10  # the expert carried the cube


def test_grasp_needs_both_finger_pads_on_the_cube():
    env = gym.make("vmalign/PickPlace-v1")
    unwrapped = env.unwrapped
    env.reset(seed=0)
    cube = unwrapped.model.body("cube").id
    assert not unwrapped.grasps(cube)  # open hand far above it
    for _ in range(60):  # open fingers lowered around the cube: neither pad touches it
        env.step(unwrapped.move_toward(unwrapped.body_pos("cube") + (0, 0, 0.006), -1.0))
    assert np.linalg.norm(unwrapped.tcp - unwrapped.body_pos("cube")) < 0.02
    assert not unwrapped.grasps(cube)
    for _ in range(10):  # closed on it: both pads touch it
        env.step(unwrapped.move_toward(unwrapped.body_pos("cube") + (0, 0, 0.006), 1.0))
    assert unwrapped.grasps(cube)
    stick = gym.make("vmalign/Sweep-v1", embodiment="long_stick").unwrapped
    stick.reset(seed=0)
    assert not stick.grasps(stick.model.body("debris0").id)  # no fingers at all


@pytest.mark.parametrize("env_id", [env_id for env_id, _ in STAGED_V1])
def test_v1_ranks_the_expert_above_stopping_short(env_id):
    """The expert's return beats stopping at an earlier stage: holding the cube where
    it lies (pick and place) or pushing only the first piece (Sweep), which beats
    standing still."""
    env = gym.make(env_id)
    unwrapped = env.unwrapped
    if "Sweep" in env_id:
        def short() -> np.ndarray:
            debris = unwrapped.debris_positions()
            if (debris[:, 1] > 0.2).any():  # one piece in: stop there
                return np.zeros(4, np.float32)
            return unwrapped.expert_action()
    else:
        cube = unwrapped.model.body("cube" if "PickPlace" in env_id else "cube_a").id

        def short() -> np.ndarray:  # close on the cube and keep it there
            return unwrapped.move_toward(unwrapped.data.xpos[cube] + (0, 0, 0.006), 0.0)
    policies = {"still": lambda: np.zeros(4, np.float32), "short": short,
                "expert": unwrapped.expert_action}
    returns = {}
    for name, policy in policies.items():
        total = 0.0
        for seed in range(2):
            env.reset(seed=seed)
            for _ in range(env.spec.max_episode_steps):
                total += env.step(policy())[1]
        returns[name] = total
    assert returns["still"] < returns["short"] < returns["expert"]


def test_sweep_push_distance_is_to_the_nearest_push_point():
    from envs.manipulation.sweep import DEBRIS_HALF, PRE_PUSH_GAP, PUSH_HEIGHT, push_distance

    pieces = np.array([[0.0, 0.0, DEBRIS_HALF], [0.2, -0.1, DEBRIS_HALF]])
    behind = -DEBRIS_HALF - 0.012 - PRE_PUSH_GAP  # the gripper's half depth
    at_first = np.array([0.0, behind, PUSH_HEIGHT])
    assert push_distance(at_first, pieces, 0.012, 0.012) == pytest.approx(0.0, abs=1e-12)
    assert push_distance(at_first + (0, 0, 0.05), pieces, 0.012, 0.012) == pytest.approx(0.05)
    # A long stick (half width 0.13) may sit off-centre by 0.13 - 0.015 along x.
    beside = at_first + (0.1, 0, 0)
    assert push_distance(beside, pieces, 0.012, 0.012) == pytest.approx(0.1)
    assert push_distance(beside, pieces, 0.13, 0.012) == pytest.approx(0.0, abs=1e-12)
