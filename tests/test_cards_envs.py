"""Contract tests shared by every card game: API, arguments, frames, experts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.cards.numberline import MINUS, PLUS
from envs.cards.sprites import text_sprite
from envs.experts import expert_policy

REPO = Path(__file__).resolve().parents[1]
CARD_IDS = ["vmalign/NumberLine-v0", "vmalign/EZPoints-v0", "vmalign/Points24-v0",
            "vmalign/Blackjack-v0"]


def play(
    env: gym.Env, seed: int, actions: list[int]
) -> tuple[list[np.ndarray], list[float], list[str]]:
    """Frames, rewards and info texts of one seeded episode; stops early when it ends."""
    obs, info = env.reset(seed=seed)
    frames, rewards, texts = [obs], [], [info["text"]]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(obs)
        rewards.append(reward)
        texts.append(info["text"])
        if terminated or truncated:
            break
    return frames, rewards, texts


def test_card_ids_are_registered_without_a_time_limit():
    assert [env_id for env_id in envs.ENV_IDS if env_id in CARD_IDS] == CARD_IDS
    for env_id in CARD_IDS:
        spec = gym.spec(env_id)
        assert spec.max_episode_steps is None  # each game ends its episodes itself


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_check_env(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    assert env.unwrapped.metadata["render_fps"] > 0


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_same_seed_same_episode_and_different_seeds_differ(env_id):
    actions = list(np.random.default_rng(0).integers(0, gym.make(env_id).action_space.n, 30))
    first, second = gym.make(env_id), gym.make(env_id)
    frames_a, rewards_a, texts_a = play(first, 7, actions)
    play(first, 8, actions)  # another episode in between must not leak into the next
    frames_c, rewards_c, texts_c = play(first, 7, actions)
    frames_b, rewards_b, texts_b = play(second, 7, actions)
    for frames, rewards, texts in ((frames_b, rewards_b, texts_b), (frames_c, rewards_c, texts_c)):
        assert rewards == rewards_a and texts == texts_a
        assert len(frames) == len(frames_a)
        assert all(np.array_equal(x, y) for x, y in zip(frames, frames_a))
    starts = {first.reset(seed=seed)[1]["text"] for seed in range(10)}
    assert len(starts) > 1, "every seed dealt the same start"


@pytest.mark.parametrize("env_id", CARD_IDS)
@pytest.mark.parametrize("size", [64, 448])
def test_observation_sizes_and_render_size(env_id, size):
    env = gym.make(env_id, obs_size=size, render_mode="rgb_array", render_size=100)
    assert env.observation_space.shape == (size, size, 3)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (size, size, 3) and obs.dtype == np.uint8
    assert obs.std() > 10, "blank observation"
    frame = env.render()
    assert frame.shape == (100, 100, 3) and frame.dtype == np.uint8
    obs2, *_ = env.step(env.unwrapped.expert_action())
    assert obs2.flags.writeable and not np.shares_memory(obs, obs2)  # fresh arrays


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_render_is_the_observation_picture_at_render_size(env_id):
    env = gym.make(env_id, render_mode="rgb_array", obs_size=160, render_size=160)
    obs, _ = env.reset(seed=3)
    assert np.array_equal(env.render(), obs)
    assert gym.make(env_id).unwrapped.render() is None  # render_mode None


@pytest.mark.parametrize("size", [32, 1024])
def test_extreme_render_sizes_draw(size):
    for env_id in CARD_IDS:
        env = gym.make(env_id, render_mode="rgb_array", render_size=size)
        env.reset(seed=0)
        assert env.render().shape == (size, size, 3)


@pytest.mark.parametrize("env_id", CARD_IDS)
@pytest.mark.parametrize("bad", [2.5, -1, 99, "hit", None, np.array([0, 1]), True, np.float32(1)])
def test_bad_actions_raise_value_error_and_change_nothing(env_id, bad):
    env = gym.make(env_id).unwrapped
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Discrete\(\d+\)"):
        env.step(bad)
    assert env.state_text() == info["text"]
    obs2, *_ = env.step(env.expert_action())  # still usable
    assert obs2.shape == obs.shape


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_step_before_reset_and_after_the_end_raise(env_id):
    env = gym.make(env_id).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.expert_action())
        done = terminated or truncated
    with pytest.raises(RuntimeError, match="ended"):
        env.step(0)


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_unknown_kwarg_lists_valid_ones(env_id):
    with pytest.raises(TypeError, match=r"obs_sise.*valid ones are.*obs_size.*render_size"):
        gym.make(env_id, obs_sise=64)


@pytest.mark.parametrize(
    "env_id, kwargs, message",
    [
        ("vmalign/NumberLine-v0", {"obs_size": 63}, "obs_size"),
        ("vmalign/NumberLine-v0", {"obs_size": 449}, "obs_size"),
        ("vmalign/EZPoints-v0", {"obs_size": 128.0}, "obs_size"),
        ("vmalign/Blackjack-v0", {"render_size": 2000}, "render_size"),
        ("vmalign/Blackjack-v0", {"render_mode": "depth"}, "render_mode"),
        ("vmalign/Blackjack-v0", {"natural": "yes"}, "natural"),
        ("vmalign/NumberLine-v0", {"max_position": 0}, "max_position"),
        ("vmalign/Points24-v0", {"target_points": 0}, "target_points"),
        ("vmalign/Points24-v0", {"solvable_only": None}, "solvable_only"),
        ("vmalign/Points24-v0", {"treat_face_cards_as_10": 2}, "treat_face_cards_as_10"),
        # 1 == True, so a membership test in (True, False) let these through.
        ("vmalign/Blackjack-v0", {"sab": 1}, "sab must be true or false"),
        ("vmalign/Blackjack-v0", {"natural": 0}, "natural must be true or false"),
        ("vmalign/Points24-v0", {"solvable_only": 1}, "solvable_only must be true or false"),
        ("vmalign/Points24-v0", {"treat_face_cards_as_10": 0},
         "treat_face_cards_as_10 must be true or false"),
    ],
)
@pytest.mark.filterwarnings("ignore:.*render_mode='depth'")  # Gymnasium's own warning first
def test_bad_arguments_say_what_is_allowed(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **kwargs)


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_bad_reset_options_are_rejected(env_id):
    env = gym.make(env_id).unwrapped
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(seed=0, options={"nonsense": 1})
    env.reset(seed=0, options={})  # an empty dict is fine


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_info_keys(env_id):
    env = gym.make(env_id)
    _, info = env.reset(seed=0)
    words = env.unwrapped.action_words
    assert isinstance(info["instruction"], str) and info["instruction"]
    assert info["is_success"] is False
    assert info["progress"] == 0.0 and isinstance(info["progress"], float)
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (len(words),)
    assert info["legal_actions"] == tuple(w for w, m in zip(words, info["action_mask"]) if m)
    assert isinstance(info["text"], str) and info["text"]
    json.dumps({k: v for k, v in info.items() if k != "action_mask"})  # plain data for logs


def test_sprites_are_cached_read_only():
    sprite = text_sprite("24", 13, (255, 255, 255), (0, 0, 0))
    assert sprite is text_sprite("24", 13, (255, 255, 255), (0, 0, 0))
    with pytest.raises(ValueError):
        sprite[0, 0] = 0


_FRAME_HASHES = """
import hashlib, json, sys
import gymnasium as gym
import envs
out = {}
for env_id in sys.argv[1:]:
    env = gym.make(env_id, render_mode="rgb_array", obs_size=96, render_size=150)
    obs, _ = env.reset(seed=11)
    obs2, *_ = env.step(env.unwrapped.expert_action())
    out[env_id] = [hashlib.sha256(a.tobytes()).hexdigest() for a in (obs, obs2, env.render())]
print(json.dumps(out))
"""


def test_frames_do_not_depend_on_the_working_directory(tmp_path):
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    outputs = []
    for cwd in (REPO, tmp_path):
        result = subprocess.run([sys.executable, "-c", _FRAME_HASHES, *CARD_IDS], cwd=cwd,
                                capture_output=True, text=True, env=environment, timeout=120)
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    here = {}
    for env_id in CARD_IDS:  # and the same frames in this process
        env = gym.make(env_id, render_mode="rgb_array", obs_size=96, render_size=150)
        obs, _ = env.reset(seed=11)
        obs2, *_ = env.step(env.unwrapped.expert_action())
        here[env_id] = [hashlib.sha256(a.tobytes()).hexdigest() for a in (obs, obs2, env.render())]
    assert here == outputs[0]


def run_expert(env: gym.Env, episodes: int) -> tuple[float, float, int]:
    """(success rate, mean return, longest episode) of the expert over seeded episodes."""
    policy = expert_policy(env)
    successes, returns, longest = 0, 0.0, 0
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        done, steps = False, 0
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            returns += reward
            steps += 1
            done = terminated or truncated
        successes += info["is_success"]
        longest = max(longest, steps)
    return successes / episodes, returns / episodes, longest


def test_numberline_expert_always_wins_optimally():
    env = gym.make("vmalign/NumberLine-v0", obs_size=64, max_position=7)
    rate, mean_return, longest = run_expert(env, 300)
    assert rate == 1.0 and mean_return == 1.0  # never a step away from the target
    assert longest <= 7


def test_ezpoints_expert_always_wins():
    rate, mean_return, longest = run_expert(gym.make("vmalign/EZPoints-v0", obs_size=64), 1000)
    assert rate == 1.0 and mean_return == 10.0 and longest == 4


def test_points24_expert_always_wins_solvable_deals():
    rate, mean_return, longest = run_expert(gym.make("vmalign/Points24-v0", obs_size=64), 300)
    assert rate == 1.0 and mean_return == 10.0 and longest <= 14


def test_points24_expert_wins_exactly_the_solvable_uniform_deals():
    env = gym.make("vmalign/Points24-v0", obs_size=64, solvable_only=False)
    rate, _, _ = run_expert(env, 400)
    # 73.1% of uniform deals are solvable (test_cards_solver checks the exact figure);
    # 400 deals put the measured rate within +-0.07 of it with overwhelming odds.
    assert abs(rate - 0.731) < 0.07


def test_blackjack_expert_matches_its_documented_rates():
    env = gym.make("vmalign/Blackjack-v0", obs_size=64)
    rate, mean_return, _ = run_expert(env, 4000)
    # Exact (dynamic programming): wins 0.4295, mean return -0.0466. Standard errors
    # over 4000 episodes: 0.008 and 0.015; these bounds are about 4 of them.
    assert abs(rate - 0.4295) < 0.032
    assert abs(mean_return - (-0.0466)) < 0.06


# -------------------------------------------------------------------- progress
def progress_of_episode(env: gym.Env, seed: int, policy) -> tuple[list[float], dict]:
    """``info["progress"]`` at reset and after every step, and the last info."""
    obs, info = env.reset(seed=seed)
    progress = [info["progress"]]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        assert 0.0 <= info["progress"] <= 1.0
        assert (info["progress"] == 1.0) == info["is_success"]
        progress.append(info["progress"])
        done = terminated or truncated
    return progress, info


@pytest.mark.parametrize("env_id", CARD_IDS)
def test_progress_is_in_the_unit_interval_and_one_exactly_on_success(env_id):
    env = gym.make(env_id, obs_size=64)
    rng = np.random.default_rng(0)
    for seed in range(20):
        progress, info = progress_of_episode(env, seed, expert_policy(env))
        assert progress[0] == 0.0
        if info["is_success"]:
            assert progress[-1] == 1.0
        if env_id != "vmalign/Blackjack-v0":  # its progress is the outcome alone
            assert info["is_success"]  # the expert always wins these
            assert len(set(progress)) > 1 and progress == sorted(progress)
        # Random play too: masks off illegal numbers, so the formulas go wrong often.
        progress_of_episode(env, seed, lambda obs: rng.integers(env.action_space.n))


def test_numberline_progress_is_linear_in_the_distance_left():
    env = gym.make("vmalign/NumberLine-v0").unwrapped
    _, info = env.reset(seed=0, options={"target": 3, "current": 1})
    assert info["progress"] == 0.0
    seen = [env.step(action)[4]["progress"] for action in (MINUS, PLUS, PLUS, PLUS)]
    assert seen == [0.0, 0.0, 0.5, 1.0]  # a step away floors at 0


def test_formula_progress_counts_the_solution_typed_and_stays_when_it_goes_wrong():
    env = gym.make("vmalign/EZPoints-v0").unwrapped
    words = env.action_words
    env.reset(seed=0, options={"cards": ["4H", "3S"]})
    seen = [env.step(words.index(t))[4]["progress"] for t in ("4", "4", "*", "3", "=")]
    # The second "4" is a rejected card (a "_" placeholder, skipped when evaluated).
    assert seen == [0.25, 0.25, 0.5, 0.75, 1.0]
    env.reset(seed=0, options={"cards": ["4H", "3S"]})
    seen = [env.step(words.index(t))[4]["progress"] for t in ("4", "+", "3", "=")]
    assert seen == [0.25, 0.25, 0.25, 0.25]  # "4 +" starts no solution

    points = gym.make("vmalign/Points24-v0").unwrapped
    points.reset(seed=0, options={"cards": ["AH", "AS", "AD", "AC"]})  # no solution
    for token in ("1", "+", "1", "+", "1", "+", "1", "="):
        assert points.step(points.action_words.index(token))[4]["progress"] == 0.0


@pytest.mark.parametrize("dealer, player, action, expected", [
    (["KS", "7H"], ["10H", "7C"], "stand", 0.5),  # 17 against 17: a draw
    (["KS", "7H"], ["10H", "6C"], "stand", 0.0),  # a loss
    (["KS", "7H"], ["10H", "9C"], "stand", 1.0),  # a win
])
def test_blackjack_progress_is_the_outcome(dealer, player, action, expected):
    env = gym.make("vmalign/Blackjack-v0").unwrapped
    _, info = env.reset(seed=0, options={"dealer": dealer, "player": player})
    assert info["progress"] == 0.0
    assert env.step(env.action_words.index(action))[4]["progress"] == expected


# ------------------------------------------------------ NumberLine start state
def gym_cards_numberline_deals(max_position: int) -> Counter:
    """Exact weights of gym-cards' (start, target) deals: its ``reset`` draws both with
    ``random.randint(0, max_position)`` and, when they are equal, sets the target to
    ``(target + 1) % max_position`` (RL4VLM gym-cards/gym_cards/envs/numberline.py)."""
    deals: Counter = Counter()
    for start in range(max_position + 1):
        for target in range(max_position + 1):
            if start == target:
                target = (target + 1) % max_position
            deals[start, target] += 1
    return deals


@pytest.mark.parametrize("max_position", [1, 2, 5])
def test_numberline_deals_every_pair_apart_equally_and_starts_as_gym_cards(max_position):
    env = gym.make("vmalign/NumberLine-v0", max_position=max_position).unwrapped
    top, draws = max_position + 1, 3000
    pairs = Counter()
    for seed in range(draws):
        env.reset(seed=seed)
        pairs[env.current, env.target] += 1
    # Never on the target, and every other ordered pair equally likely (each count
    # within 5 standard deviations of draws / (top * max_position)).
    assert set(pairs) == {(c, t) for c in range(top) for t in range(top) if c != t}
    expected = draws / (top * max_position)
    assert all(abs(n - expected) < 5 * expected**0.5 for n in pairs.values())
    # So the start is uniform, as gym-cards' is; its target is not (the docstring
    # says how), and with max_position=1 it could deal a won start.
    reference = gym_cards_numberline_deals(max_position)
    starts = Counter()
    for (start, _), weight in reference.items():
        starts[start] += weight
    assert set(starts.values()) == {top}  # uniform start in gym-cards
    assert (max_position == 1) == any(s == t for s, t in reference)
