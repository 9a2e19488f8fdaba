"""Text actions: parsing answers, parse errors, penalties, and never a chance action."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from envs.cards import TextActionError, TextActions, parse_action

BLACKJACK = ("stand", "hit")
POINTS = (*map(str, range(1, 11)), "+", "-", "*", "/", "(", ")", "=")


@pytest.mark.parametrize(
    "response, words, index",
    [
        ('{"thoughts": "13 against a 10: hit.", "action": "hit"}', BLACKJACK, 1),
        ('{"thoughts": "...", "action": " Stand "}', BLACKJACK, 0),
        ('```json\n{"thoughts": "x", "action": "stand"}\n```', BLACKJACK, 0),
        ('I think so. {"action": "hit"} That is all.', BLACKJACK, 1),
        ("hit", BLACKJACK, 1),
        ("  HIT\n", BLACKJACK, 1),
        ('{"action": "10"}', POINTS, 9),
        ('{"action": 10}', POINTS, 9),
        ('{"action": "1"}', POINTS, 0),
        ('{"action": "*"}', POINTS, 12),
        ('{"action": "("}', POINTS, 14),
        ('{"thoughts": "the \\"action\\": \\"hit\\" would bust", "action": "stand"}', BLACKJACK, 0),
        # Not valid JSON, but the action field is unambiguous.
        ("{'thoughts': 'risky', \"action\": \"hit\",}", BLACKJACK, 1),
        ('{"thoughts": "I have "16"", "action": "stand"}', BLACKJACK, 0),
        ('{"response": {"action": "hit"}}', BLACKJACK, 1),
        ('{"action": "hit", "thoughts": "a"} and again {"action": "hit"}', BLACKJACK, 1),
    ],
)
def test_parse_action_reads_answers(response, words, index):
    assert parse_action(response, words) == index


@pytest.mark.parametrize(
    "response, words, message",
    [
        (None, BLACKJACK, "NoneType, not text"),
        (1, BLACKJACK, "int, not text"),
        ("I will hit", BLACKJACK, "no JSON object"),  # no substring guessing
        ("", BLACKJACK, "no JSON object"),
        ('{"thoughts": "hmm"}', BLACKJACK, 'no "action" key'),
        ('{"thoughts": "hmm", "action": ', BLACKJACK, 'no "action" key'),
        ('{"action": "double"}', BLACKJACK,
         '"double", which is not an action.*allowed: "stand", "hit"'),
        ('{"action": "hit me"}', BLACKJACK, "not an action"),
        ('{"action": "11"}', POINTS, "not an action"),
        ('{"action": true}', BLACKJACK, "expected a string"),
        ('{"action": ["hit"]}', BLACKJACK, "expected a string"),
        ('{"action": 1.5}', POINTS, "expected a string"),
        ('{"action": "hit"} {"action": "stand"}', BLACKJACK, "several actions"),
        ('{"action": "/"}', ("1", "2", "+", "*", "="), "not an action"),
    ],
)
def test_parse_errors_say_why(response, words, message):
    with pytest.raises(TextActionError, match=message):
        parse_action(response, words)


def test_text_action_error_is_a_value_error():
    assert issubclass(TextActionError, ValueError)


def make(env_id="vmalign/NumberLine-v0", **wrapper_kwargs):
    return TextActions(gym.make(env_id, obs_size=64), **wrapper_kwargs)


def test_wrapper_plays_the_named_action():
    env = make("vmalign/Blackjack-v0")
    assert env.action_words == ("stand", "hit")
    assert '"stand", "hit"' in env.answer_format
    obs, info = env.reset(seed=0)
    assert info["parse_error"] is None and info["text_action"] is None
    obs, reward, terminated, truncated, info = env.step('{"thoughts": "", "action": "stand"}')
    assert terminated and info["text_action"] == "stand" and info["parse_error"] is None
    assert info["dealer_cards"] == [c.name for c in env.unwrapped.dealer]


def test_bad_answer_is_penalised_and_changes_nothing():
    env = make(penalty=-0.5)
    obs, info = env.reset(seed=3)
    state = env.unwrapped.state_text()
    obs2, reward, terminated, truncated, info2 = env.step("let me think about it")
    assert (reward, terminated, truncated) == (-0.5, False, False)
    assert "no JSON object" in info2["parse_error"] and info2["text_action"] is None
    assert np.array_equal(obs2, obs) and obs2 is not obs
    assert env.unwrapped.state_text() == state and env.unwrapped.steps_made == 0
    assert info2["text"] == info["text"]
    obs3, _, _, _, info3 = env.step('{"action": "+"}')
    assert info3["parse_error"] is None and info3["text_action"] == "+"
    assert env.unwrapped.steps_made == 1


def test_bad_answers_never_become_actions():
    """With or without unreadable answers in between, the game plays out identically:
    no action was substituted for them and no draw from the env's generator made."""
    clean, noisy = make("vmalign/Blackjack-v0"), make("vmalign/Blackjack-v0", max_parse_errors=None)
    for seed in range(30):
        clean.reset(seed=seed)
        noisy.reset(seed=seed)
        for _ in range(3):
            for junk in ("hit or stand?", '{"action": "double"}', None, '{"move": "hit"}'):
                assert noisy.step(junk)[1] == -1.0
            a = clean.step('{"action": "hit"}')
            b = noisy.step('{"action": "hit"}')
            assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
            if a[2] or a[3]:
                break


def test_too_many_parse_errors_truncate_the_episode():
    env = make(max_parse_errors=3)
    env.reset(seed=0)
    assert [env.step("?")[3] for _ in range(3)] == [False, False, True]
    assert env.parse_errors == 3
    with pytest.raises(RuntimeError, match="ended"):
        env.step('{"action": "+"}')
    env.reset(seed=0)
    assert env.parse_errors == 0 and env.step('{"action": "+"}')[4]["text_action"] == "+"


def test_wrapper_rejects_steps_after_the_game_ended_and_bad_settings():
    env = make("vmalign/NumberLine-v0")
    env.reset(seed=0, options={"target": 1, "current": 0})
    assert env.step('{"action": "+"}')[2]  # reached the target
    with pytest.raises(RuntimeError, match="ended"):
        env.step("nonsense")
    with pytest.raises(ValueError, match="max_parse_errors"):
        make(max_parse_errors=0)
    with pytest.raises(TypeError, match="action_words"):
        TextActions(gym.make("CartPole-v1"))


@pytest.mark.parametrize("env_id", ["vmalign/NumberLine-v0", "vmalign/EZPoints-v0",
                                    "vmalign/Points24-v0", "vmalign/Blackjack-v0"])
def test_every_card_game_can_be_played_in_text_by_its_expert(env_id):
    env = make(env_id)
    env.reset(seed=5)
    done = False
    while not done:
        word = env.action_words[env.unwrapped.expert_action()]
        _, _, terminated, truncated, info = env.step(f'{{"thoughts": "...", "action": "{word}"}}')
        done = terminated or truncated
    assert info["parse_error"] is None and info["text_action"] == word
