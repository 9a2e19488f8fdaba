"""The point games' shared mechanics: type a formula from the cards, one token a step.

EZPoints and Points24 (``ezpoints.py``, ``points24.py``) subclass
:class:`FormulaGameEnv`; each sets its numbers, operators, target and length limit,
deals its cards and documents its contract. The rules below are gym-cards':

- A number action appends that number if an unused card shows it; a number no
  unused card shows (a card used twice, or not dealt) costs -1 and appends the
  placeholder ``_``, which counts toward the length limit and is skipped when the
  formula is evaluated (gym-cards appended a blank).
- An operator or parenthesis appends itself (reward 0).
- ``=`` ends the episode: +10 when every card was used and the formula equals the
  target exactly (:mod:`envs.cards.formula`), else -1.
- A step taken while the formula holds more than ``max_tokens`` tokens truncates the
  episode with -1, whatever the action.

The state observation (``obs_mode="state"``) is the cards' values, then one slot per
formula token the rules allow (``max_tokens + 1``): 0 while empty, else the token's
action index plus one (so a number token is its own value, as the numbers' actions
come first), and :data:`REJECTED_CODE` for ``_``. ``=`` ends the episode and is never
in the formula.

``info["progress"]`` is how much of a winning formula has been typed, by the exact
solver: with ``p`` the longest beginning of the formula (``_`` placeholders left out,
as evaluation does) that some solution starts with, and ``n`` the length of the
shortest such solution, progress is ``len(p) / (n + 1)`` (the 1 is ``=``), and 1.0 on
a win. Typing a shortest solution raises it by ``1 / (n + 1)`` a token (a token that
commits to a longer solution can lower it); it stays put once the formula has gone
wrong (nothing can be deleted), ignores the length limit, and is 0 throughout on a
deal with no solution. The solver runs once per deal, at its first step (about 10 ms
for four cards; its answers are cached per hand, so repeated hands cost nothing).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from fractions import Fraction
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.cards import formula, solver
from envs.cards.card_game import CardGameEnv
from envs.cards.deck import Card
from envs.cards.sprites import (
    FELT,
    WHITE,
    card_size_fitting,
    card_sprite,
    flow,
    line_height,
    paste,
    text_sprite,
    text_width,
)

REJECTED = "_"
"""Formula placeholder for a number no unused card shows."""
REJECTED_CODE = -1
"""The placeholder's number in the state vector (a word's is its action index + 1)."""
EQUALS = "="
WIN_REWARD = 10.0
LOSS_REWARD = -1.0
_CAPTION = "Formula:"
_CAPTION_MIN_SIZE = 96
"""Below this frame size the caption is left out to give the formula the room."""


@dataclasses.dataclass(frozen=True)
class _Layout:
    card_size: tuple[int, int]
    card_xy: tuple[tuple[int, int], ...]
    caption_xy: tuple[int, int] | None
    text_px: int
    formula_xy: tuple[int, int]
    formula_width: int
    formula_height: int
    gap: int


class FormulaGameEnv(CardGameEnv):
    """Base class of EZPoints and Points24; see each game for its full contract.

    Subclasses set ``action_words`` (numbers, then operators, then ``"="``),
    ``card_count``, ``target``, ``max_tokens``, ``operators`` (those the expert may
    use) and implement :meth:`_deal_cards` and :meth:`_instruction`.
    """

    card_count: int
    target: int
    max_tokens: int
    """A step taken while the formula is longer than this truncates the episode."""
    operators: str
    """The arithmetic operators among the actions, for the solver."""
    formula_lines: int
    """Lines of text kept free for the formula under the cards. A formula that needs
    more (only long, hopeless ones do) is drawn smaller until it fits."""

    def __init__(
        self, render_mode: str | None = None, *, obs_mode: str = "rgb", obs_size: int = 128,
        render_size: int = 224, **unknown: Any,
    ) -> None:
        # A slot for each token of the longest formula, max_tokens + 1 (the step after
        # that truncates instead of typing).
        self.state_names = (*(f"card_{i}" for i in range(self.card_count)),
                            *(f"token_{i}" for i in range(self.max_tokens + 1)))
        super().__init__(render_mode, obs_mode=obs_mode, obs_size=obs_size,
                         render_size=render_size, **unknown)
        self._number_of = {
            index: int(word) for index, word in enumerate(self.action_words) if word.isdigit()
        }
        self._token_codes = {word: index + 1 for index, word in enumerate(self.action_words)}
        self._token_codes[REJECTED] = REJECTED_CODE
        self.cards: list[Card] = []
        self.numbers: list[int] = []
        self.formula: list[str] = []
        self.used: list[int] = []
        self.result: Fraction | None = None
        """The formula's value once ``=`` was pressed (None if malformed or not yet)."""
        self._ended_with_equals = False
        self._won = False
        self._solution_prefixes: dict[tuple[str, ...], int] | None = None
        """Every beginning of a solution -> the length of the shortest solution with
        it; made on the first step of a deal (None until then), for :meth:`progress`."""

    # ---------------------------------------------------------------- rules
    def _deal(self, options: dict[str, Any]) -> str:
        self._check_options(options, ("cards",))
        if "cards" in options:
            self.cards = self._cards_from_option(options["cards"])
        else:
            self.cards = self._deal_cards()
        self.numbers = [self.card_value(card) for card in self.cards]
        self.formula, self.used = [], []
        self.result, self._ended_with_equals, self._won = None, False, False
        self._solution_prefixes = None
        return self._instruction()

    def _play(self, action: int) -> tuple[float, bool, bool]:
        if len(self.formula) > self.max_tokens:
            return LOSS_REWARD, False, True
        word = self.action_words[action]
        if action in self._number_of:
            number = self._number_of[action]
            if self.available()[number] <= 0:
                self.formula.append(REJECTED)
                return LOSS_REWARD, False, False
            self.used.append(number)
            self.formula.append(word)
            return 0.0, False, False
        if word == EQUALS:
            self._ended_with_equals = True
            try:
                self.result = formula.evaluate(self.evaluated_tokens())
            except formula.FormulaError:
                self.result = None
            self._won = len(self.used) == len(self.numbers) and self.result == self.target
            return (WIN_REWARD if self._won else LOSS_REWARD), True, False
        self.formula.append(word)
        return 0.0, False, False

    def available(self) -> Counter[int]:
        """How many unused cards show each number."""
        counts = Counter(self.numbers)
        counts.subtract(self.used)
        return counts

    def evaluated_tokens(self) -> list[str]:
        """The formula as evaluated: without the ``_`` placeholders."""
        return [token for token in self.formula if token != REJECTED]

    def action_mask(self) -> np.ndarray:
        mask = np.ones(len(self.action_words), dtype=np.int8)
        available = self.available()
        for index, number in self._number_of.items():
            mask[index] = available[number] > 0
        return mask

    def is_success(self) -> bool:
        return self._won

    def progress(self) -> float:
        """The share of a winning formula typed so far; see the module docstring."""
        if self._won:
            return 1.0
        typed = self.evaluated_tokens()
        if not typed:
            return 0.0  # no need to ask the solver at reset
        if self._solution_prefixes is None:
            # Once per deal, not per step: the solver's answer is cached per hand of
            # numbers, and a dict makes each step's lookups O(formula length).
            prefixes: dict[tuple[str, ...], int] = {}
            for tokens in self.solutions():  # shortest first: keep the first length
                for end in range(len(tokens) + 1):
                    prefixes.setdefault(tokens[:end], len(tokens))
            self._solution_prefixes = prefixes
        prefixes = self._solution_prefixes
        if not prefixes:
            return 0.0  # no solution
        matched = 0  # the beginnings of solutions are closed under shortening
        while matched < len(typed) and tuple(typed[: matched + 1]) in prefixes:
            matched += 1
        return matched / (prefixes[tuple(typed[:matched])] + 1)

    def card_value(self, card: Card) -> int:
        """The number a card counts for in this game."""
        return card.value()

    # --------------------------------------------------------------- expert
    def solutions(self) -> list[solver.Formula]:
        """Every formula from the dealt numbers that equals the target (exact solver)."""
        return solver.solutions(self.numbers, self.target, self.operators)

    def expert_action(self) -> int:
        """The next token of the shortest solution that extends the formula so far.

        Presses ``=`` when the formula is a complete solution, and also when no
        solution extends it within the length limit (an unsolvable deal, or a formula
        someone else started wrongly): that ends the episode at once with -1.
        """
        typed = self.evaluated_tokens()
        room = self.max_tokens - len(self.formula)  # tokens that can still precede "="
        for tokens in self.solutions():
            missing = len(tokens) - len(typed)
            if 0 < missing <= room and list(tokens[: len(typed)]) == typed:
                return self.action_words.index(tokens[len(typed)])
        return self.action_words.index(EQUALS)

    # ----------------------------------------------------------------- text
    def formula_text(self) -> str:
        """The formula so far, tokens separated by spaces (``_`` for a rejected number)."""
        return " ".join(self.formula)

    def state_text(self) -> str:
        return (
            f"Cards: {', '.join(card.name for card in self.cards)}. "
            f"Numbers: {', '.join(map(str, self.numbers))}. "
            f"Formula: {self.formula_text()}"
        )

    def _state_space(self) -> spaces.Box:
        values = [int(word) for word in self.action_words if word.isdigit()]
        typed = max(i + 1 for i, word in enumerate(self.action_words) if word != EQUALS)
        slots = self.max_tokens + 1
        low = [min(values)] * self.card_count + [REJECTED_CODE] * slots
        high = [max(values)] * self.card_count + [typed] * slots
        return spaces.Box(np.array(low, dtype=np.float32), np.array(high, dtype=np.float32),
                          dtype=np.float32)

    def state(self) -> np.ndarray:
        """The cards' values, then the formula's token codes, 0-padded (see the module
        docstring)."""
        vector = np.zeros(len(self.state_names), dtype=np.float32)
        vector[: self.card_count] = self.numbers
        codes = [self._token_codes[token] for token in self.formula]
        vector[self.card_count : self.card_count + len(codes)] = codes
        return vector

    def _game_info(self) -> dict[str, Any]:
        return {
            "cards": [card.name for card in self.cards],
            "numbers": list(self.numbers),
            "formula": self.formula_text(),
        }

    def _cards_from_option(self, names: Any) -> list[Card]:
        count = self.card_count
        if isinstance(names, str) or not hasattr(names, "__len__") or len(names) != count:
            raise ValueError(
                f"options['cards'] must list {count} card names such as '10H', got {names!r}"
            )
        cards = [Card.from_name(name) for name in names]
        allowed = set(self._number_of.values())
        for card in cards:
            if self.card_value(card) not in allowed:
                raise ValueError(
                    f"card {card.name} counts {self.card_value(card)}, not a number of this game"
                )
        return cards

    # ------------------------------------------------------------ subclass
    def _deal_cards(self) -> list[Card]:
        """A fresh hand dealt with ``self.np_random``."""
        raise NotImplementedError

    def _instruction(self) -> str:
        raise NotImplementedError

    # -------------------------------------------------------------- picture
    def _make_layout(self, size: int) -> _Layout:
        margin = max(2, round(0.03 * size))
        gap = max(1, round(0.02 * size))
        text_px = max(9, round(0.1 * size))
        height = line_height(text_px)
        width = size - 2 * margin
        lines = min(self._worst_case_lines(text_px, width, gap), self.formula_lines)
        caption = size >= _CAPTION_MIN_SIZE
        text_top = size - margin - lines * height - (height if caption else 0)
        count = self.card_count
        card_w, card_h = card_size_fitting(
            (width - (count - 1) * gap) / count, text_top - 2 * margin
        )
        row_width = count * card_w + (count - 1) * gap
        left = (size - row_width) // 2
        top = margin + max(0, (text_top - margin - card_h - margin) // 2)
        card_xy = tuple((left + i * (card_w + gap), top) for i in range(count))
        caption_xy = (margin, text_top) if caption else None
        formula_y = text_top + (height if caption else 0)
        return _Layout((card_w, card_h), card_xy, caption_xy, text_px, (margin, formula_y),
                       width, lines * height, gap)

    def _worst_case_lines(self, px: int, width: int, gap: int) -> int:
        """Lines the longest possible formula (and its result) needs at ``px``."""
        numbers = [w for w in self.action_words if w.isdigit()]
        others = [w for w in self.action_words if not w.isdigit()] + [REJECTED]
        widest_number = max(text_width(w, px) for w in numbers)
        widest_other = max(text_width(w, px) for w in others)
        count = self.card_count
        widths = [widest_number] * count + [widest_other] * (self.max_tokens + 1 - count)
        widths += [text_width(f"{EQUALS} {self.target}", px)]
        return flow(widths, width, gap)[-1][1] + 1

    def _draw_table(self, size: int) -> np.ndarray:
        frame = super()._draw_table(size)
        layout: _Layout = self._layout(size)
        for card, (x, y) in zip(self.cards, layout.card_xy):
            paste(frame, card_sprite(card, *layout.card_size, FELT), x, y)
        if layout.caption_xy is not None:
            paste(frame, text_sprite(_CAPTION, layout.text_px, WHITE, FELT), *layout.caption_xy)
        return frame

    def _draw_moving(self, frame: np.ndarray, size: int) -> None:
        layout: _Layout = self._layout(size)
        words = list(self.formula)
        if self._ended_with_equals:
            words.append(f"{EQUALS} {_fraction_text(self.result)}")
        x0, y0 = layout.formula_xy
        for px in range(layout.text_px, 4, -1):  # smaller only if it does not fit
            sprites = [text_sprite(word, px, WHITE, FELT) for word in words]
            placed = flow([s.shape[1] for s in sprites], layout.formula_width, layout.gap)
            lines = placed[-1][1] + 1 if placed else 0
            if lines * line_height(px) <= layout.formula_height:
                break
        for sprite, (x, line) in zip(sprites, placed):
            paste(frame, sprite, x0 + x, y0 + line * sprite.shape[0])


def _fraction_text(value: Fraction | None) -> str:
    if value is None:
        return "?"
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"
