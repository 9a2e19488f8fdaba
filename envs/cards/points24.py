"""Points24: the 24 game, make 24 from four cards with + - * / and parentheses."""

from __future__ import annotations

import collections
import itertools
import math
from fractions import Fraction
from typing import Any

from envs.cards import solver
from envs.cards.deck import Card, draw_card
from envs.cards.formula_game import FormulaGameEnv
from envs.checks import check_bool, check_int_range, reject_unknown_kwargs

OPERATOR_WORDS = ("+", "-", "*", "/", "(", ")", "=")


def solvable_fraction(treat_face_cards_as_10: bool = True, target: int = 24) -> Fraction:
    """The exact share of uniform four-card deals that have a solution.

    Enumerates every multiset of four ranks with its multinomial weight and asks the
    solver; this is where the figures in :class:`Points24Env`'s docstring come from.
    """
    solvable = 0
    for ranks in itertools.combinations_with_replacement(range(1, 14), 4):
        values = [min(r, 10) if treat_face_cards_as_10 else r for r in ranks]
        if solver.is_solvable(values, target):
            weight = math.factorial(4)
            for repeats in collections.Counter(ranks).values():
                weight //= math.factorial(repeats)
            solvable += weight
    return Fraction(solvable, 13**4)


class Points24Env(FormulaGameEnv):
    """Type a formula that uses all four cards once and equals 24.

    ## Description
    The 24 game of gym-cards: four cards lie on green felt; the agent types a formula
    one token a step (the formula so far is shown under the cards) and ends it with
    ``=``. J, Q and K count 10 (``treat_face_cards_as_10=False``: 11, 12, 13).

    By default only deals with a solution are dealt (``solvable_only=True``). Measured
    by the exact solver over all 13^4 equally likely rank tuples
    (:func:`solvable_fraction`), uniform deals are solvable 20876/28561 = 73.1% of the
    time with J/Q/K as 10 and 22615/28561 = 79.2% with J/Q/K as 11-13; gym-cards dealt
    the rest too, so about a quarter of its episodes could not be won.

    ## Action space
    ``Discrete(17)``: 0-9 the numbers ``"1"`` to ``"10"``, then ``"+" "-" "*" "/" "("
    ")" "="`` (10-16), gym-cards' order. With ``treat_face_cards_as_10=False``,
    ``Discrete(20)``: 0-12 ``"1"`` to ``"13"``, then the same seven (13-19). The words
    are ``action_words``. Anything but an integer in range raises ``ValueError``.

    ## Observation space
    Chosen by ``obs_mode``:

    - ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3), uint8)``, the four
      cards (rank large in the corner; a 10 shows "10") and the formula, white on
      green, wrapped over lines as it grows. When ``=`` ends the episode the picture
      adds ``= value`` (exact, e.g. ``= 23/2``; ``?`` when malformed).
    - ``"state"``: ``Box(low, high, (25,), float32)``, the picture as numbers: index
      0-3 the four cards' values (1-10, or 1-13 with
      ``treat_face_cards_as_10=False``; in the picture's order); 4-24 the formula's
      tokens in order, one per slot (the rules allow 21 before a step truncates),
      0 for an empty slot, a number token its value, ``+ - * / ( )`` 11-16 (14-19
      with ``treat_face_cards_as_10=False``: a token's action index plus one), and
      -1 for the ``_`` of a rejected number. Suits, which never matter, and the
      final ``= value`` are left out; ``target_points`` is in the instruction, as
      in the picture's case. No picture is drawn.
    - ``"rgb+state"``: ``Dict({"rgb": ..., "state": ...})`` holding both.

    :meth:`render` and ``info`` are the same in every mode.

    ## Rewards
    gym-cards' rules, scored exactly (see :mod:`envs.cards.formula_game`): +10 for
    ``=`` when all four cards are used and the formula equals ``target_points``; -1 for
    any other ``=`` (wrong value, unused cards, malformed, division by zero); -1 for a
    number no unused card shows (the formula gets a ``_`` placeholder); -1 for the
    step that truncates; else 0. Formulas are exact rational arithmetic, so ``8 / (3 -
    8 / 3)`` scores +10 (gym-cards' Python eval made it 23.999... and -1). Unary ``+``
    and ``-`` are accepted as eval did; Python-only readings are not: ``* *``,
    ``/ /`` and two numbers in a row are malformed.

    ## Info
    ``instruction``, ``is_success`` (the episode ended with a correct ``=``),
    ``progress`` (the share of a winning formula typed, by the exact solver: the
    longest beginning of the formula that a solution starts with, over the length of
    the shortest such solution plus one for ``=``; 1 exactly on success, 0 throughout
    on a deal with no solution; see :mod:`envs.cards.formula_game`), ``action_mask``
    (0 for numbers no unused card shows), ``legal_actions``, ``text``
    (``"Cards: 3H, 3S, 8D, 8C. Numbers: 3, 3, 8, 8. Formula: 8 / ("``), ``cards``,
    ``numbers`` and ``formula`` (tokens joined by spaces).

    ## Starting state
    Four cards, each rank uniform in A-K and suit uniform, from ``self.np_random``;
    redealt until solvable when ``solvable_only``. ``reset(options={"cards": ["3H",
    "3S", "8D", "8C"]})`` deals given cards instead (solvable or not).

    ## Episode end
    Termination on ``=``. Truncation (reward -1) for a step taken while the formula
    holds more than 20 tokens, done by the environment itself (registered without
    ``max_episode_steps``): an episode lasts at most 22 steps.

    ## Expert
    :meth:`expert_action` types the shortest formula of the exact solver
    (:mod:`envs.cards.solver`, every solution with rational arithmetic) and presses
    ``=``; on a deal with no solution it presses ``=`` at once. Success rate 100% with
    ``solvable_only=True`` (measured over 300 seeded episodes in the tests), and the
    solvable fraction above without it.

    ## Arguments
    ``gym.make("vmalign/Points24-v0", render_mode=None, treat_face_cards_as_10=True,
    target_points=24, solvable_only=True, obs_mode="rgb", obs_size=128,
    render_size=224)``; ``target_points`` is an integer in [1, 100] (gym-cards'
    names for both options). See :class:`envs.cards.card_game.CardGameEnv` for the
    rest. Unknown keyword arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release (gym-cards' ``Points24-v0`` rules, seeded, exact scoring,
      solvable deals only by default); ``info["progress"]`` and ``obs_mode`` added
      later (episodes unchanged; the default ``obs_mode="rgb"`` observes as before).
    """

    card_count = 4
    formula_lines = 3
    max_tokens = 20
    operators = solver.ALL_OPERATORS

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        treat_face_cards_as_10: bool = True,
        target_points: int = 24,
        solvable_only: bool = True,
        obs_mode: str = "rgb",
        obs_size: int = 128,
        render_size: int = 224,
        **unknown: Any,
    ) -> None:
        reject_unknown_kwargs(type(self), unknown)
        # check_bool: a membership test in (True, False) would take 1 and 0 as well.
        self.treat_face_cards_as_10 = check_bool("treat_face_cards_as_10",
                                                 treat_face_cards_as_10)
        self.solvable_only = check_bool("solvable_only", solvable_only)
        self.target = check_int_range("target_points", target_points, 1, 100)
        highest = 10 if self.treat_face_cards_as_10 else 13
        self.action_words = (*(str(n) for n in range(1, highest + 1)), *OPERATOR_WORDS)
        super().__init__(render_mode, obs_mode=obs_mode, obs_size=obs_size,
                         render_size=render_size)

    def card_value(self, card: Card) -> int:
        return card.value(self.treat_face_cards_as_10)

    def _deal_cards(self) -> list[Card]:
        while True:
            cards = [draw_card(self.np_random) for _ in range(self.card_count)]
            values = [self.card_value(card) for card in cards]
            if not self.solvable_only or solver.is_solvable(values, self.target):
                return cards

    def _instruction(self) -> str:
        return (
            f"use all four cards once to make {self.target} with + - * / and parentheses, "
            "then press ="
        )
