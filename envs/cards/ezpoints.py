"""EZPoints: make 12 from two cards with + and *, one token a step."""

from __future__ import annotations

from typing import Any

from envs.cards.deck import Card, draw_card, draw_suit
from envs.cards.formula_game import FormulaGameEnv
from envs.checks import reject_unknown_kwargs

TARGET = 12
_FACTORS_OF_TARGET = (2, 3, 4, 6)
"""First-card values whose partner may be dealt as a factor (12 = v * 12/v)."""


class EZPointsEnv(FormulaGameEnv):
    """Type a formula that uses both cards and equals 12.

    ## Description
    The easy point game of gym-cards: two cards lie on green felt; the agent types a
    formula one token a step (the formula so far is shown under the cards) and ends
    it with ``=``. J, Q and K count 10. Every deal has a solution.

    ## Action space
    ``Discrete(13)``: 0-9 the numbers ``"1"`` to ``"10"``, 10 ``"+"``, 11 ``"*"``, 12
    ``"="``, gym-cards' order; the words are ``action_words``. Anything but an integer
    in range raises ``ValueError``.

    ## Observation space
    Chosen by ``obs_mode``:

    - ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3), uint8)``, the two
      cards (rank large in the corner; a 10 shows "10") and the formula, white on
      green. When ``=`` ends the episode the picture adds ``= value`` (exact; ``?``
      when malformed).
    - ``"state"``: ``Box(low, high, (8,), float32)``, the picture as numbers: index
      0-1 the two cards' values (1-10, in the picture's order); 2-7 the formula's
      tokens in order, one per slot (the rules allow 6 before a step truncates),
      0 for an empty slot, a number token its value (1-10), ``+`` 11, ``*`` 12, and
      -1 for the ``_`` of a rejected number. Suits, which never matter, and the
      final ``= value`` are left out. No picture is drawn.
    - ``"rgb+state"``: ``Dict({"rgb": ..., "state": ...})`` holding both.

    :meth:`render` and ``info`` are the same in every mode.

    ## Rewards
    gym-cards' rules, scored exactly (see :mod:`envs.cards.formula_game`): +10 for
    ``=`` when both cards are used and the formula equals 12; -1 for any other ``=``;
    -1 for a number no unused card shows (a reused or undealt card: the formula gets
    a ``_`` placeholder); -1 for the step that truncates; else 0. Formulas are exact
    rational arithmetic, not Python's eval; ``* *`` is not a power here.

    ## Info
    ``instruction``, ``is_success`` (the episode ended with a correct ``=``),
    ``progress`` (the share of a winning formula typed: the longest beginning of the
    formula that a solution starts with, over the length of the shortest such
    solution plus one for ``=``; so 0, 1/4, 2/4, 3/4 and 1 along ``4 * 3 =``; 1
    exactly on success; see :mod:`envs.cards.formula_game`), ``action_mask`` (0 for
    numbers no unused card shows), ``legal_actions``, ``text`` (``"Cards: 3H, 4S.
    Numbers: 3, 4. Formula: 3 *"``), ``cards`` (names such as
    ``"10H"``), ``numbers`` (the values) and ``formula`` (tokens joined by spaces).

    ## Starting state
    As gym-cards: the first card's rank is uniform in 2-K; its partner is 12 minus its
    value or, with probability 1/2 when the value is 2, 3, 4 or 6, 12 divided by it;
    the two are swapped with probability 1/2; suits are uniform. Everything is drawn
    from ``self.np_random``. ``reset(options={"cards": ["4H", "3S"]})`` deals given
    cards instead (any two cards, solvable or not).

    ## Episode end
    Termination on ``=``. Truncation (reward -1) for a step taken while the formula
    holds more than 5 tokens, done by the environment itself (registered without
    ``max_episode_steps``): an episode lasts at most 7 steps.

    ## Expert
    :meth:`expert_action` types the shortest formula the exact solver finds (``a +
    b`` or ``a * b``) and presses ``=``: success rate 100% (measured over 1000 seeded
    episodes in the tests).

    ## Arguments
    ``gym.make("vmalign/EZPoints-v0", render_mode=None, obs_mode="rgb", obs_size=128,
    render_size=224)``; see :class:`envs.cards.card_game.CardGameEnv`. Unknown keyword
    arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release (gym-cards' ``EZPoints-v0`` rules, seeded, exact scoring);
      ``info["progress"]`` and ``obs_mode`` added later (episodes unchanged; the
      default ``obs_mode="rgb"`` observes as before).
    """

    action_words = (*(str(n) for n in range(1, 11)), "+", "*", "=")
    card_count = 2
    target = TARGET
    formula_lines = 2
    max_tokens = 5
    operators = "+*"

    def __init__(
        self, render_mode: str | None = None, *, obs_mode: str = "rgb", obs_size: int = 128,
        render_size: int = 224, **unknown: Any,
    ) -> None:
        reject_unknown_kwargs(type(self), unknown)
        super().__init__(render_mode, obs_mode=obs_mode, obs_size=obs_size,
                         render_size=render_size)

    def _deal_cards(self) -> list[Card]:
        rng = self.np_random
        first = draw_card(rng, low_rank=2)
        value = first.value()
        if value in _FACTORS_OF_TARGET and rng.integers(2) == 1:  # a fair coin
            partner = TARGET // value
        else:
            partner = TARGET - value
        cards = [first, Card(partner, draw_suit(rng))]
        if rng.integers(2) == 1:
            cards.reverse()
        return cards

    def _instruction(self) -> str:
        return f"use both cards to make {TARGET} with + and *, then press ="
