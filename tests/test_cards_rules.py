"""The rules of each card game: rewards, endings, card reuse, deals, pictures."""

from __future__ import annotations

import itertools
from collections import Counter
from functools import cache

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.toy_text import blackjack as gymnasium_blackjack

from envs.cards.blackjack import (
    HIT,
    STAND,
    BlackjackEnv,
    basic_strategy,
    hand_total,
    has_usable_ace,
    is_natural,
    score,
)
from envs.cards.deck import SUITS, Card
from envs.cards.ezpoints import EZPointsEnv
from envs.cards.numberline import MINUS, PLUS, NumberLineEnv
from envs.cards.points24 import Points24Env
from envs.cards.solver import is_solvable


def type_tokens(env, tokens):
    """Steps the formula game with the actions named by ``tokens``; returns the steps."""
    return [env.step(env.action_words.index(token)) for token in tokens]


# ----------------------------------------------------------------- NumberLine
def test_numberline_rewards():
    env = NumberLineEnv()
    env.reset(seed=0, options={"target": 3, "current": 1})
    assert env.step(MINUS)[1:4] == (-1.0, False, False)  # away from the target
    assert env.current == 0
    assert env.step(MINUS)[1:4] == (-1.0, False, False)  # against the end: no move
    assert env.current == 0
    assert env.step(PLUS)[1:4] == (0.0, False, False)  # closer
    assert env.step(PLUS)[1:4] == (0.0, False, False)
    obs, reward, terminated, truncated, info = env.step(PLUS)
    assert (reward, terminated, truncated, info["is_success"]) == (1.0, True, False, True)
    assert info["text"] == "Target: 3. Current: 3." and info["current"] == 3


def test_numberline_upper_end_blocks():
    env = NumberLineEnv(max_position=5)
    env.reset(seed=0, options={"target": 2, "current": 5})
    assert env.step(PLUS)[1] == -1.0 and env.current == 5


@pytest.mark.parametrize("max_position", [1, 3, 5])
def test_numberline_truncates_after_twice_max_position_steps(max_position):
    env = NumberLineEnv(max_position=max_position)
    env.reset(seed=0, options={"target": max_position, "current": max_position - 1})
    for step in range(1, 2 * max_position + 1):
        _, reward, terminated, truncated, info = env.step(MINUS)
        assert reward == -1.0 and not terminated
        assert truncated == (step == 2 * max_position)
    assert not info["is_success"]


def test_numberline_start_never_equals_target_and_covers_every_pair():
    env = NumberLineEnv(max_position=3)
    pairs = Counter()
    for seed in range(600):
        _, info = env.reset(seed=seed)
        pairs[info["target"], info["current"]] += 1
    assert set(pairs) == {(t, c) for t in range(4) for c in range(4) if t != c}
    assert max(pairs.values()) < 2 * min(pairs.values())  # roughly uniform


@pytest.mark.parametrize(
    "options, message",
    [({"target": 2, "current": 2}, "differ"), ({"target": 9}, "target"),
     ({"current": -1}, "current"), ({"target": 1.5}, "target")],
)
def test_numberline_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        NumberLineEnv().reset(seed=0, options=options)


def test_numberline_one_option_alone_is_respected():
    env = NumberLineEnv(max_position=4)
    for seed in range(20):
        _, info = env.reset(seed=seed, options={"current": 2})
        assert info["current"] == 2 and info["target"] != 2
        _, info = env.reset(seed=seed, options={"target": 0})
        assert info["target"] == 0 and info["current"] != 0


# ------------------------------------------------------------------- EZPoints
def test_ezpoints_action_order_matches_gym_cards():
    assert EZPointsEnv.action_words == ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
                                        "+", "*", "=")


def test_ezpoints_win_with_both_cards():
    env = EZPointsEnv()
    env.reset(seed=0, options={"cards": ["4H", "3S"]})
    steps = type_tokens(env, ["4", "*", "3", "="])
    assert [s[1] for s in steps] == [0.0, 0.0, 0.0, 10.0]
    _, _, terminated, truncated, info = steps[-1]
    assert terminated and not truncated and info["is_success"]
    assert info["formula"] == "4 * 3" and env.result == 12


def test_ezpoints_face_cards_count_ten():
    env = EZPointsEnv()
    _, info = env.reset(seed=0, options={"cards": ["QD", "2C"]})
    assert info["numbers"] == [10, 2] and info["cards"] == ["QD", "2C"]
    assert type_tokens(env, ["10", "+", "2", "="])[-1][1] == 10.0


def test_ezpoints_wrong_result_and_empty_formula_lose():
    env = EZPointsEnv()
    env.reset(seed=0, options={"cards": ["4H", "3S"]})
    _, reward, terminated, _, info = type_tokens(env, ["4", "+", "3", "="])[-1]
    assert (reward, terminated, info["is_success"]) == (-1.0, True, False)
    env.reset(seed=0, options={"cards": ["4H", "3S"]})
    _, reward, terminated, _, _ = type_tokens(env, ["="])[-1]
    assert (reward, terminated) == (-1.0, True) and env.result is None


def test_ezpoints_reusing_a_card_costs_one_and_leaves_a_placeholder():
    env = EZPointsEnv()
    _, info = env.reset(seed=0, options={"cards": ["6H", "2S"]})
    six = env.action_words.index("6")
    assert info["action_mask"][six] == 1
    _, reward, _, _, info = env.step(six)
    assert reward == 0.0 and info["action_mask"][six] == 0 and "6" not in info["legal_actions"]
    _, reward, terminated, truncated, info = env.step(six)  # the only 6 is used
    assert (reward, terminated, truncated) == (-1.0, False, False)
    assert info["formula"] == "6 _"
    _, reward, *_ = env.step(env.action_words.index("5"))  # never dealt
    assert reward == -1.0 and env.formula == ["6", "_", "_"]
    # Placeholders are skipped when evaluating, as gym-cards' blanks were.
    steps = type_tokens(env, ["*", "2", "="])
    assert steps[-1][1] == 10.0 and env.formula == ["6", "_", "_", "*", "2"]


def test_ezpoints_two_equal_cards_can_both_be_used():
    env = EZPointsEnv()
    env.reset(seed=0, options={"cards": ["6H", "6S"]})
    assert type_tokens(env, ["6", "+", "6", "="])[-1][1] == 10.0


def test_ezpoints_truncates_past_five_tokens():
    env = EZPointsEnv()
    env.reset(seed=0, options={"cards": ["4H", "3S"]})
    for _ in range(6):  # the formula grows to 6 tokens: still running
        _, reward, terminated, truncated, _ = env.step(env.action_words.index("+"))
        assert (reward, terminated, truncated) == (0.0, False, False)
    # The next step truncates whatever the action, even "=".
    _, reward, terminated, truncated, info = env.step(env.action_words.index("="))
    assert (reward, terminated, truncated, info["is_success"]) == (-1.0, False, True, False)


def test_ezpoints_deals_follow_gym_cards():
    env = EZPointsEnv()
    firsts, kinds, orders = Counter(), Counter(), Counter()
    for seed in range(800):
        env.reset(seed=seed)
        a, b = env.numbers
        assert a + b == 12 or a * b == 12
        assert all(2 <= n <= 10 for n in env.numbers)
        kinds["product" if a * b == 12 and a + b != 12 else "sum"] += 1
        # The partner card is dealt as its number (never a face card).
        faces = [i for i, c in enumerate(env.cards) if c.rank > 10]
        assert len(faces) <= 1
        orders.update(faces)
        firsts.update(c.rank for c in env.cards)
    assert kinds["product"] > 100 and kinds["sum"] > 300
    assert orders[0] > 30 and orders[1] > 30  # the first-dealt card lands either side
    assert set(firsts) == set(range(2, 14))  # every rank 2-K, a 10 included
    assert firsts[10] > 0


# ------------------------------------------------------------------- Points24
def test_points24_action_orders_match_gym_cards():
    operators = ("+", "-", "*", "/", "(", ")", "=")
    assert Points24Env().action_words == (*map(str, range(1, 11)), *operators)
    full = Points24Env(treat_face_cards_as_10=False)
    assert full.action_words == (*map(str, range(1, 14)), *operators)
    assert full.action_space.n == 20


def test_points24_exact_fraction_wins():
    env = Points24Env()
    env.reset(seed=0, options={"cards": ["3H", "3S", "8D", "8C"]})
    assert 8 / (3 - 8 / 3) != 24  # what floating point made of it
    steps = type_tokens(env, ["8", "/", "(", "3", "-", "8", "/", "3", ")", "="])
    _, reward, terminated, _, info = steps[-1]
    assert (reward, terminated, info["is_success"]) == (10.0, True, True)
    assert env.result == 24


@pytest.mark.parametrize(
    "cards, tokens, why",
    [
        (["3H", "3S", "8D", "8C"], ["3", "*", "8", "="], "unused cards"),
        (["3H", "3S", "8D", "8C"], ["8", "/", "(", "3", "-", "3", ")", "+", "8", "="],
         "division by zero"),
        (["3H", "3S", "8D", "8C"], ["(", "3", "+", "3", "*", "8", "-", "8", "="], "unclosed"),
        (["2H", "4S", "AD", "AC"], ["2", "4", "*", "1", "*", "1", "="], "eval read 2 4 as 24"),
        (["2H", "3S", "3D", "AC"], ["2", "*", "*", "3", "*", "3", "*", "1", "="],
         "eval read * * as power"),
        (["3H", "3S", "8D", "8C"], ["3", "+", "3", "+", "8", "+", "8", "="], "22"),
    ],
)
def test_points24_every_other_equals_loses(cards, tokens, why):
    env = Points24Env()
    env.reset(seed=0, options={"cards": cards})
    _, reward, terminated, truncated, info = type_tokens(env, tokens)[-1]
    assert (reward, terminated, truncated, info["is_success"]) == (-1.0, True, False, False), why


def test_points24_unary_minus_is_accepted_as_eval_did():
    env = Points24Env()
    env.reset(seed=0, options={"cards": ["AH", "AS", "5D", "5C"]})
    assert type_tokens(env, ["-", "1", "+", "5", "*", "5", "*", "1", "="])[-1][1] == 10.0


def test_points24_face_cards_option():
    tens = Points24Env()
    _, info = tens.reset(seed=0, options={"cards": ["KH", "QS", "JD", "AC"]})
    assert info["numbers"] == [10, 10, 10, 1]
    full = Points24Env(treat_face_cards_as_10=False)
    _, info = full.reset(seed=0, options={"cards": ["KH", "QS", "JD", "AC"]})
    assert info["numbers"] == [13, 12, 11, 1]
    assert type_tokens(full, ["13", "+", "12", "-", "11", "*", "1", "="])[-1][1] == -1.0  # 14
    full.reset(seed=0, options={"cards": ["KH", "JS", "2D", "AC"]})
    assert type_tokens(full, ["13", "+", "11", "*", "1", "*", "1"])[-1][1] == -1.0  # no 2nd 1
    full.reset(seed=0, options={"cards": ["KH", "JS", "2D", "AC"]})
    assert type_tokens(full, ["(", "13", "-", "11", ")", "*", "2", "*", "1", "="])[-1][1] == -1.0
    full.reset(seed=0, options={"cards": ["KH", "JS", "AD", "AC"]})
    assert type_tokens(full, ["13", "+", "11", "*", "1", "*", "1", "="])[-1][1] == 10.0
    deals = set()
    for seed in range(200):
        full.reset(seed=seed)
        deals.update(full.numbers)
    assert {11, 12, 13} <= deals


def test_points24_target_points_option():
    env = Points24Env(target_points=10)
    env.reset(seed=0, options={"cards": ["AH", "AS", "AD", "10C"]})
    assert type_tokens(env, ["10", "*", "1", "*", "1", "*", "1", "="])[-1][1] == 10.0
    for seed in range(30):
        env.reset(seed=seed)
        assert is_solvable(env.numbers, 10)


def test_points24_truncates_past_twenty_tokens():
    env = Points24Env()
    env.reset(seed=0, options={"cards": ["3H", "3S", "8D", "8C"]})
    for _ in range(21):
        _, reward, terminated, truncated, _ = env.step(env.action_words.index("("))
        assert (reward, terminated, truncated) == (0.0, False, False)
    _, reward, terminated, truncated, _ = env.step(env.action_words.index("="))
    assert (reward, terminated, truncated) == (-1.0, False, True)


def test_points24_card_reuse():
    env = Points24Env()
    env.reset(seed=0, options={"cards": ["3H", "3S", "8D", "8C"]})
    three = env.action_words.index("3")
    assert env.step(three)[1] == 0.0 and env.step(three)[1] == 0.0
    _, reward, _, _, info = env.step(three)
    assert reward == -1.0 and info["formula"] == "3 3 _" and info["action_mask"][three] == 0
    assert env.step(env.action_words.index("1"))[1] == -1.0  # never dealt


def test_points24_solvable_only_and_uniform_deals():
    solvable = Points24Env()
    uniform = Points24Env(solvable_only=False)
    unsolvable = 0
    for seed in range(300):
        solvable.reset(seed=seed)
        assert is_solvable(solvable.numbers)
        uniform.reset(seed=seed)
        unsolvable += not is_solvable(uniform.numbers)
    assert 40 < unsolvable < 125  # 26.9% expected: 81 of 300


def test_points24_expert_continues_a_started_formula_and_gives_up_on_a_wrong_one():
    env = Points24Env()
    env.reset(seed=0, options={"cards": ["3H", "3S", "8D", "8C"]})
    type_tokens(env, ["5", "8"])  # a rejected number first: its placeholder is skipped
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.expert_action())
        done = terminated or truncated
    assert info["is_success"] and info["formula"] == "_ 8 / ( 3 - 8 / 3 )"
    env.reset(seed=0, options={"cards": ["3H", "3S", "8D", "8C"]})
    type_tokens(env, ["3", "+"])
    assert env.action_words[env.expert_action()] == "="  # nothing starts "3 +"


def test_formula_games_reject_bad_card_options():
    with pytest.raises(ValueError, match="4 card names"):
        Points24Env().reset(seed=0, options={"cards": ["3H", "3S"]})
    with pytest.raises(ValueError, match="rank \\+ suit"):
        EZPointsEnv().reset(seed=0, options={"cards": ["3H", "1X"]})
    with pytest.raises(ValueError, match="2 card names"):
        EZPointsEnv().reset(seed=0, options={"cards": "3H3S"})


def test_formula_picture_shows_formula_and_result():
    env = Points24Env(obs_size=128)
    first, _ = env.reset(seed=0, options={"cards": ["3H", "3S", "8D", "8C"]})
    after_one, *_ = env.step(env.action_words.index("8"))
    assert not np.array_equal(first, after_one)
    layout = env._layout(128)
    cards_area = slice(0, layout.card_xy[0][1] + layout.card_size[1])
    assert first[cards_area].std() > 30  # cards are drawn
    # The cards stay put while the formula grows.
    assert np.array_equal(first[cards_area], after_one[cards_area])
    type_tokens(env, ["/", "(", "3", "-", "8", "/", "3", ")"])
    before_equals = env._draw(128)
    final, *_ = env.step(env.action_words.index("="))
    assert not np.array_equal(before_equals, final)  # "= 24" appears


# ------------------------------------------------------------------ Blackjack
def bj(dealer, player, **kwargs):
    env = BlackjackEnv(**kwargs)
    env.reset(seed=0, options={"dealer": dealer, "player": player})
    return env


@pytest.mark.parametrize(
    "player, dealer, reward",
    [(["10H", "9S"], ["10C", "8D"], 1.0), (["10H", "9S"], ["10C", "9D"], 0.0),
     (["10H", "9S"], ["10C", "QD"], -1.0), (["10H", "2S"], ["10C", "7D"], -1.0)],
)
def test_blackjack_stand_compares_totals(player, dealer, reward):
    env = bj(dealer, player)
    _, r, terminated, truncated, info = env.step(STAND)
    assert (r, terminated, truncated, info["is_success"]) == (reward, True, False, reward > 0)


def test_blackjack_dealer_stands_on_soft_17_and_draws_below():
    env = bj(["AC", "6D"], ["10H", "9S"])
    env.step(STAND)
    assert len(env.dealer) == 2
    for seed in range(30):
        env = BlackjackEnv()
        env.reset(seed=seed, options={"dealer": ["10C", "2D"], "player": ["10H", "8S"]})
        env.step(STAND)
        assert len(env.dealer) >= 3 and (hand_total(env.dealer) >= 17)
        assert hand_total(env.dealer[:-1]) < 17  # stopped at the first total of 17+


@pytest.mark.parametrize(
    "natural, sab, reward", [(False, False, 1.0), (True, False, 1.5), (False, True, 1.0)]
)
def test_blackjack_natural_payouts(natural, sab, reward):
    env = bj(["9C", "8D"], ["AH", "KS"], natural=natural, sab=sab)
    assert env.step(STAND)[1] == reward


@pytest.mark.parametrize("natural, sab", [(False, False), (True, False), (False, True)])
def test_blackjack_two_naturals_draw(natural, sab):
    assert bj(["AC", "QD"], ["AH", "KS"], natural=natural, sab=sab).step(STAND)[1] == 0.0


def test_blackjack_sab_natural_beats_a_drawn_21():
    for seed in range(500):  # find a deal where the dealer draws to exactly 21
        plain = BlackjackEnv()
        plain.reset(seed=seed, options={"dealer": ["10C", "6D"], "player": ["AH", "KS"]})
        if plain.step(STAND)[1] == 0.0 and hand_total(plain.dealer) == 21:
            sab = BlackjackEnv(sab=True)
            sab.reset(seed=seed, options={"dealer": ["10C", "6D"], "player": ["AH", "KS"]})
            assert sab.step(STAND)[1] == 1.0
            return
    pytest.fail("no seed drew the dealer to 21")


def test_blackjack_hit_and_bust():
    for seed in range(100):
        env = BlackjackEnv()
        env.reset(seed=seed, options={"dealer": ["10C", "6D"], "player": ["10H", "QS"]})
        _, reward, terminated, _, info = env.step(HIT)
        if env.player[-1].rank == 1:  # an ace makes 21
            assert (reward, terminated) == (0.0, False)
        else:
            assert (reward, terminated, info["is_success"]) == (-1.0, True, False)
            assert len(env.dealer) == 2  # the dealer does not draw after a bust


def test_blackjack_hand_rules_match_gymnasium():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        count = int(rng.integers(2, 7))
        cards = [Card(int(r), SUITS[int(s)])
                 for r, s in zip(rng.integers(1, 14, count), rng.integers(0, 4, count))]
        values = [c.value() for c in cards]
        assert hand_total(cards) == gymnasium_blackjack.sum_hand(values)
        assert has_usable_ace(cards) == bool(gymnasium_blackjack.usable_ace(values))
        assert score(cards) == gymnasium_blackjack.score(values)
        assert is_natural(cards) == gymnasium_blackjack.is_natural(values)


def test_blackjack_draws_every_rank_including_ten():
    ranks = Counter()
    env = BlackjackEnv()
    for seed in range(200):
        env.reset(seed=seed)
        ranks.update(c.rank for c in env.player + env.dealer)
    assert set(ranks) == set(range(1, 14)) and ranks[10] > 30
    # A ten is drawn as "10", unlike a jack.
    ten = bj(["10C", "6D"], ["10H", "6S"])
    jack = bj(["10C", "6D"], ["JH", "6S"])
    assert ten.state_text() == "Dealer's card: 10. Player's cards: 10, 6."
    assert not np.array_equal(ten._draw(128), jack._draw(128))


def test_blackjack_hole_card_is_hidden_until_the_end():
    low, high = bj(["10C", "6D"], ["10H", "7S"]), bj(["10C", "9D"], ["10H", "7S"])
    for env in (low, high):
        info = env._info()
        assert info["dealer_cards"] == ["10C"] and info["text"].startswith("Dealer's card: 10.")
    assert np.array_equal(low._draw(128), high._draw(128))  # the picture hides it too
    _, _, _, _, info = high.step(STAND)
    assert info["dealer_cards"] == ["10C", "9D"]
    assert info["text"] == "Dealer's cards: 10, 9. Player's cards: 10, 7."


def test_blackjack_info():
    env = bj(["10C", "6D"], ["AH", "6S"])
    info = env._info()
    assert info["player_cards"] == ["AH", "6S"] and info["player_total"] == 17
    assert info["usable_ace"] is True and info["legal_actions"] == ("stand", "hit")


def _optimal_actions() -> dict[tuple[int, bool, int], int]:
    """Optimal hit/stand for Gymnasium's rules, by dynamic programming over an infinite
    deck: (player total, soft, dealer up value) -> action."""
    probabilities = {v: (4 if v == 10 else 1) / 13 for v in range(1, 11)}

    def total(hard, ace):
        return hard + 10 if ace and hard + 10 <= 21 else hard

    @cache
    def dealer_final(hard, ace):
        t = total(hard, ace)
        if t >= 17:
            return {t if t <= 21 else 0: 1.0}
        out = Counter()
        for v, p in probabilities.items():
            for k, q in dealer_final(hard + v, ace or v == 1).items():
                out[k] += p * q
        return out

    def dealer_from_up(up):
        out = Counter()
        for v, p in probabilities.items():
            for k, q in dealer_final(up + v, up == 1 or v == 1).items():
                out[k] += p * q
        return out

    @cache
    def value(hard, ace, up):
        t = total(hard, ace)
        if t > 21:
            return -1.0, None
        stand = sum(q * ((k < t) - (k > t)) for k, q in dealer_from_up(up).items())
        hit = sum(p * value(hard + v, ace or v == 1, up)[0] for v, p in probabilities.items())
        return (stand, STAND) if stand >= hit else (hit, HIT)

    table = {}
    for up, hard in itertools.product(range(1, 11), range(4, 22)):
        table[hard, False, up] = value(hard, False, up)[1]
    for up, hard in itertools.product(range(1, 11), range(2, 12)):  # soft: an ace as 11
        table[hard + 10, True, up] = value(hard, True, up)[1]
    return table


def test_blackjack_basic_strategy_is_optimal_for_these_rules():
    for (player_total, soft, up), action in _optimal_actions().items():
        assert basic_strategy(player_total, soft, up) == action, (player_total, soft, up)


def test_registered_blackjack_is_this_class():
    assert isinstance(gym.make("vmalign/Blackjack-v0").unwrapped, BlackjackEnv)
