"""Playing cards: ranks, suits, names and dealing from an infinite deck.

Every game deals with replacement (an infinite deck), as gym-cards and Gymnasium's
Blackjack do: each card's rank and suit are uniform and independent of the others.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SUITS = ("C", "D", "H", "S")
"""Clubs, diamonds, hearts, spades: the letter that ends a card's name."""

RED_SUITS = frozenset({"D", "H"})

SUIT_SYMBOLS = {"C": "\u2663", "D": "\u2666", "H": "\u2665", "S": "\u2660"}
"""The symbols drawn on the cards (present in the shipped DejaVu font)."""

RANK_NAMES = {1: "A", 11: "J", 12: "Q", 13: "K"}
"""Ranks shown as letters; 2 to 10 are shown as their number (a 10 shows "10")."""

_RANKS_BY_NAME = {**{str(r): r for r in range(2, 11)}, **{n: r for r, n in RANK_NAMES.items()}}


@dataclasses.dataclass(frozen=True)
class Card:
    """One playing card: ``rank`` 1 (ace) to 13 (king) and a ``suit`` letter."""

    rank: int
    suit: str

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= 13 or self.suit not in SUITS:
            raise ValueError(f"no such card: rank {self.rank!r}, suit {self.suit!r}")

    @property
    def rank_name(self) -> str:
        """``"A"``, ``"2"`` ... ``"10"``, ``"J"``, ``"Q"``, ``"K"``."""
        return RANK_NAMES.get(self.rank, str(self.rank))

    @property
    def name(self) -> str:
        """Rank then suit letter: ``"10H"``, ``"QS"``, ``"AC"``."""
        return self.rank_name + self.suit

    def value(self, face_cards_as_10: bool = True) -> int:
        """Points the card counts for: its rank, with J, Q, K as 10 unless told otherwise."""
        return min(self.rank, 10) if face_cards_as_10 else self.rank

    @classmethod
    def from_name(cls, name: str) -> Card:
        """Parses a name such as ``"10H"``, ``"qs"`` or ``"AC"``; ``ValueError`` otherwise."""
        if not isinstance(name, str) or len(name) < 2:
            raise ValueError(f"card name {name!r} is not rank + suit, e.g. '10H' or 'QS'")
        rank_name, suit = name[:-1].upper(), name[-1].upper()
        if rank_name not in _RANKS_BY_NAME or suit not in SUITS:
            raise ValueError(
                f"card name {name!r} is not rank + suit; ranks are A, 2-10, J, Q, K and "
                f"suits {', '.join(SUITS)} (e.g. '10H', 'QS')"
            )
        return cls(_RANKS_BY_NAME[rank_name], suit)


def draw_suit(rng: np.random.Generator) -> str:
    """A uniform suit."""
    return SUITS[int(rng.integers(len(SUITS)))]


def draw_card(rng: np.random.Generator, low_rank: int = 1) -> Card:
    """A card from an infinite deck: rank uniform in [low_rank, 13], suit uniform."""
    return Card(int(rng.integers(low_rank, 14)), draw_suit(rng))
