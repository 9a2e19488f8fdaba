"""Blackjack: Gymnasium's Blackjack-v1 rules, seen as cards on a table."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.cards.card_game import CardGameEnv
from envs.cards.deck import Card, draw_card
from envs.cards.sprites import (
    FELT,
    WHITE,
    card_size_fitting,
    card_sprite,
    line_height,
    paste,
    text_sprite,
)
from envs.checks import check_bool, reject_unknown_kwargs

STAND, HIT = 0, 1
DEALER_STANDS_ON = 17
"""The dealer draws while the hand totals less (a soft 17 stands), as Gymnasium."""


# ------------------------------------------------------------------ hand rules
def hand_total(cards: Sequence[Card]) -> int:
    """Best total: an ace counts 11 when that does not bust the hand, else 1."""
    values = [card.value() for card in cards]
    total = sum(values)
    return total + 10 if has_usable_ace(cards) else total


def has_usable_ace(cards: Sequence[Card]) -> bool:
    """Whether an ace can count 11 without busting (a soft hand)."""
    values = [card.value() for card in cards]
    return 1 in values and sum(values) + 10 <= 21


def is_natural(cards: Sequence[Card]) -> bool:
    """An ace and a ten-valued card as the first two cards."""
    return len(cards) == 2 and sorted(card.value() for card in cards) == [1, 10]


def score(cards: Sequence[Card]) -> int:
    """The total, or 0 for a bust hand."""
    total = hand_total(cards)
    return 0 if total > 21 else total


def basic_strategy(player_total: int, soft: bool, dealer_up_value: int) -> int:
    """Hit-or-stand basic strategy for an infinite deck, dealer standing on soft 17.

    ``dealer_up_value`` is 1 for an ace. These are the hit/stand decisions of the
    published basic strategy (no doubling or splitting here); for these rules they are
    exactly the optimal ones, which the tests check by dynamic programming.
    """
    dealer = 11 if dealer_up_value == 1 else dealer_up_value
    if soft:
        if player_total >= 19:
            return STAND
        if player_total == 18:
            return STAND if 2 <= dealer <= 8 else HIT
        return HIT
    if player_total >= 17:
        return STAND
    if 13 <= player_total <= 16:
        return STAND if 2 <= dealer <= 6 else HIT
    if player_total == 12:
        return STAND if 4 <= dealer <= 6 else HIT
    return HIT


@dataclasses.dataclass(frozen=True)
class _Layout:
    label_px: int
    label_xy: tuple[tuple[int, int], tuple[int, int]]
    """Top-left of "Dealer" and "Player"."""
    card_size: tuple[int, int]
    row_y: tuple[int, int]
    """Top of the dealer's and the player's card rows."""
    left: int
    width: int
    gap: int


class BlackjackEnv(CardGameEnv):
    """Beat the dealer at blackjack by hitting or standing, seen as cards on a table.

    ## Description
    Gymnasium's ``Blackjack-v1`` (Sutton and Barto's example 5.1) with gym-cards'
    picture: the dealer's face-up card and a face-down card above, the player's
    cards below, on green felt. Cards come from an infinite deck: ranks A-K uniform
    (J, Q, K count 10; an ace 11 unless that busts the hand), suits uniform. Unlike
    gym-cards, ten-valued cards show as 10, J, Q or K (gym-cards never drew a 10).

    ## Action space
    ``Discrete(2)``: 0 ``"stand"`` (Gymnasium's "stick"), 1 ``"hit"``, the words of
    ``action_words`` as RL4VLM's agents answer. Anything but an integer in range
    raises ``ValueError``.

    ## Observation space
    Chosen by ``obs_mode``:

    - ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3), uint8)``, "Dealer"
      with the up card and a card back, "Player" with the player's cards
      (overlapping when they no longer fit side by side; the rank in each card's
      corner stays visible). When the episode ends the dealer's hand is shown face
      up.
    - ``"state"``: ``Box([4, 1, 0], [31, 10, 1], (3,), float32)``, Gymnasium's
      ``Blackjack-v1`` observation as numbers: index 0 the player's total (an ace
      counted 11 when that does not bust the hand; above 21 after a bust), 1 the
      value of the dealer's up card (1 for an ace, 10 for a ten or face card), 2
      whether the player holds a usable ace (1 or 0). Everything the rules and basic
      strategy depend on; the dealer's hand revealed at the end is not in it (the
      reward tells the outcome). No picture is drawn.
    - ``"rgb+state"``: ``Dict({"rgb": ..., "state": ...})`` holding both.

    :meth:`render` and ``info`` are the same in every mode.

    ## Rewards
    Gymnasium's: after ``stand`` the dealer draws to 17 or more, then +1 for a win
    (a higher total, or the dealer busts), 0 for a draw, -1 for a loss; -1 when a hit
    busts the player; 0 for a hit that does not. ``natural=True``: a win with a
    natural (ace and ten-card) pays +1.5. ``sab=True`` (overrides ``natural``): a
    natural beats any dealer hand but a natural, which draws.

    ## Info
    ``instruction``, ``is_success`` (the episode ended with a positive reward),
    ``progress`` (0 while the hand is played, then the outcome: 1 for a win, 0.5 for a
    draw, 0 for a loss; a hit is no step toward a win, so nothing in between),
    ``action_mask`` (both actions always legal), ``legal_actions``, ``text``
    (RL4VLM's text observation: ``"Dealer's card: K. Player's cards: 10, 6."``),
    ``dealer_cards`` (names of the dealer's visible cards: the up card until the
    episode ends, then the whole hand), ``player_cards``, ``player_total`` and
    ``usable_ace``.

    ## Starting state
    Two cards to the dealer, then two to the player, from ``self.np_random``.
    ``reset(options={"dealer": ["KS", "7H"], "player": ["AH", "10C"]})`` sets either
    hand instead (first dealer card face up); later cards are still drawn.

    ## Episode end
    Termination on ``stand`` or a bust. No truncation is needed: every episode ends
    within 21 hits (registered without ``max_episode_steps``).

    ## Expert
    :meth:`expert_action` plays hit/stand basic strategy (:func:`basic_strategy`),
    which for these rules equals the optimal policy (checked by dynamic programming in
    the tests). With ``natural=False`` it wins 42.9%, draws 9.5% and loses 47.6% of
    episodes, a mean return of -0.047 (exact, by dynamic programming; the tests
    measure it over seeded episodes): its success rate is the 42.9% of wins.

    ## Arguments
    ``gym.make("vmalign/Blackjack-v0", render_mode=None, natural=False, sab=False,
    obs_mode="rgb", obs_size=128, render_size=224)``; Gymnasium's names for both
    rules. See :class:`envs.cards.card_game.CardGameEnv` for the rest. Unknown
    keyword arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release (Gymnasium ``Blackjack-v1`` rules and payouts as gym-cards'
      ``Blackjack-v0``; tens drawn; dealer revealed at the end); ``info["progress"]``
      and ``obs_mode`` added later (episodes unchanged; the default
      ``obs_mode="rgb"`` observes as before).
    """

    action_words = ("stand", "hit")

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        natural: bool = False,
        sab: bool = False,
        obs_mode: str = "rgb",
        obs_size: int = 128,
        render_size: int = 224,
        **unknown: Any,
    ) -> None:
        reject_unknown_kwargs(type(self), unknown)
        # check_bool: a membership test in (True, False) would take 1 and 0 as well.
        self.natural = check_bool("natural", natural)
        self.sab = check_bool("sab", sab)
        super().__init__(render_mode, obs_mode=obs_mode, obs_size=obs_size,
                         render_size=render_size)
        self.dealer: list[Card] = []
        self.player: list[Card] = []
        self.reward = 0.0
        """The final reward once the episode has ended, else 0."""

    # ---------------------------------------------------------------- rules
    def _deal(self, options: dict[str, Any]) -> str:
        self._check_options(options, ("dealer", "player"))
        # Gymnasium's order: the dealer's two cards, then the player's.
        self.dealer = self._hand_option(options, "dealer")
        self.player = self._hand_option(options, "player")
        self.reward = 0.0
        return "beat the dealer at blackjack: hit to take a card, stand to stop"

    def _hand_option(self, options: dict[str, Any], key: str) -> list[Card]:
        if key not in options:
            return [draw_card(self.np_random), draw_card(self.np_random)]
        names = options[key]
        if isinstance(names, str) or not hasattr(names, "__len__") or len(names) != 2:
            raise ValueError(
                f"options[{key!r}] must list two card names such as 'AH', got {names!r}"
            )
        return [Card.from_name(name) for name in names]

    def _play(self, action: int) -> tuple[float, bool, bool]:
        self._invalidate_table()  # a card is dealt or revealed either way
        if action == HIT:
            self.player.append(draw_card(self.np_random))
            if hand_total(self.player) > 21:
                return self._end(-1.0)
            return 0.0, False, False
        while hand_total(self.dealer) < DEALER_STANDS_ON:
            self.dealer.append(draw_card(self.np_random))
        player, dealer = score(self.player), score(self.dealer)
        reward = float(player > dealer) - float(player < dealer)
        if self.sab and is_natural(self.player) and not is_natural(self.dealer):
            reward = 1.0
        elif not self.sab and self.natural and is_natural(self.player) and reward == 1.0:
            reward = 1.5
        return self._end(reward)

    def _end(self, reward: float) -> tuple[float, bool, bool]:
        self.reward = reward
        return reward, True, False

    def is_success(self) -> bool:
        return self.episode_over and self.reward > 0

    def progress(self) -> float:
        if not self.episode_over:
            return 0.0
        return 1.0 if self.reward > 0 else 0.5 if self.reward == 0 else 0.0

    def expert_action(self) -> int:
        return basic_strategy(
            hand_total(self.player), has_usable_ace(self.player), self.dealer[0].value()
        )

    def visible_dealer_cards(self) -> list[Card]:
        """The up card during play; the whole hand once the episode has ended."""
        return list(self.dealer) if self.episode_over else self.dealer[:1]

    def state_text(self) -> str:
        player = ", ".join(card.rank_name for card in self.player)
        dealer = ", ".join(card.rank_name for card in self.visible_dealer_cards())
        label = "Dealer's cards" if self.episode_over else "Dealer's card"
        return f"{label}: {dealer}. Player's cards: {player}."

    def _game_info(self) -> dict[str, Any]:
        return {
            "dealer_cards": [card.name for card in self.visible_dealer_cards()],
            "player_cards": [card.name for card in self.player],
            "player_total": hand_total(self.player),
            "usable_ace": has_usable_ace(self.player),
        }

    state_names = ("player_total", "dealer_card", "usable_ace")

    def _state_space(self) -> spaces.Box:
        # The lowest two-card total is 2 + 2 (A + A is a soft 12); the highest, a hit
        # on 21 drawing a ten-card, 31.
        return spaces.Box(np.array([4, 1, 0], dtype=np.float32),
                          np.array([31, 10, 1], dtype=np.float32), dtype=np.float32)

    def state(self) -> np.ndarray:
        # Gymnasium's Blackjack-v1 observation, which basic strategy reads.
        return np.array([hand_total(self.player), self.dealer[0].value(),
                         has_usable_ace(self.player)], dtype=np.float32)

    # -------------------------------------------------------------- picture
    def _make_layout(self, size: int) -> _Layout:
        margin = max(2, round(0.03 * size))
        gap = max(1, round(0.02 * size))
        label_px = max(8, round(0.09 * size))
        label_h = line_height(label_px)
        card_room = (size - 2 * margin - 2 * label_h - 2 * gap) / 2
        card_w, card_h = card_size_fitting((size - 2 * margin - 3 * gap) / 4, card_room)
        dealer_y = margin + label_h
        player_label_y = dealer_y + card_h + 2 * gap
        return _Layout(
            label_px=label_px,
            label_xy=((margin, margin), (margin, player_label_y)),
            card_size=(card_w, card_h),
            row_y=(dealer_y, player_label_y + label_h),
            left=margin,
            width=size - 2 * margin,
            gap=gap,
        )

    def _draw_table(self, size: int) -> np.ndarray:
        frame = super()._draw_table(size)
        layout: _Layout = self._layout(size)
        for label, xy in zip(("Dealer", "Player"), layout.label_xy):
            paste(frame, text_sprite(label, layout.label_px, WHITE, FELT), *xy)
        dealer: list[Card | None] = list(self.visible_dealer_cards())
        if not self.episode_over:
            dealer.append(None)  # the hole card, face down
        self._draw_row(frame, layout, dealer, layout.row_y[0])
        self._draw_row(frame, layout, list(self.player), layout.row_y[1])
        return frame

    @staticmethod
    def _draw_row(frame: np.ndarray, layout: _Layout, cards: list[Card | None], y: int) -> None:
        card_w, card_h = layout.card_size
        step = card_w + layout.gap
        if len(cards) > 1 and (len(cards) - 1) * step + card_w > layout.width:
            step = (layout.width - card_w) / (len(cards) - 1)  # overlap, corners visible
        for i, card in enumerate(cards):
            paste(frame, card_sprite(card, card_w, card_h, FELT), layout.left + round(i * step), y)
