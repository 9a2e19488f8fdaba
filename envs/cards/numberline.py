"""NumberLine: step the current number to the target, one unit at a time."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.cards.card_game import CardGameEnv
from envs.cards.sprites import BLACK, WHITE, font, paste, text_sprite, text_width
from envs.checks import check_int_range, reject_unknown_kwargs
from envs.progress import progress_toward

MINUS, PLUS = 0, 1
LABELS = ("Target: ", "Current: ")


@dataclasses.dataclass(frozen=True)
class _Layout:
    label_px: int
    value_px: int
    x: int
    """Left edge of both rows."""
    value_x: int
    label_y: tuple[int, int]
    value_y: tuple[int, int]


class NumberLineEnv(CardGameEnv):
    """Move the current number to the target with ``-`` and ``+``.

    ## Description
    The simplest gym-cards game, for debugging agents: the picture shows
    "Target: g" and "Current: c", two integers in ``[0, max_position]``, in black on
    white. Each action moves the current number one step left or right.

    ## Action space
    ``Discrete(2)``: 0 ``"-"`` (one down, not below 0), 1 ``"+"`` (one up, not above
    ``max_position``); the words are ``action_words``, as gym-cards' text agents use
    them. Anything but an integer in range raises ``ValueError``.

    ## Observation space
    Chosen by ``obs_mode``:

    - ``"rgb"`` (default): ``Box(0, 255, (obs_size, obs_size, 3), uint8)``, the
      picture. The numbers are drawn larger than their labels, so they stay legible
      at 64 pixels.
    - ``"state"``: ``Box(0, max_position, (2,), float32)``, the two numbers the
      picture shows: index 0 the target, 1 the current number (integers). No picture
      is drawn.
    - ``"rgb+state"``: ``Dict({"rgb": ..., "state": ...})`` holding both.

    :meth:`render` and ``info`` are the same in every mode.

    ## Rewards
    As gym-cards: +1 on reaching the target; -1 when the step does not bring the
    current number closer (a wrong direction, or pushing against an end); else 0.

    ## Info
    ``instruction``, ``is_success`` (current equals target), ``progress`` (``1 -
    |current - target| / |start - target|``, floored at 0: 0 at the start, 1 exactly
    on success), ``action_mask`` (both actions are always legal), ``legal_actions``,
    ``text`` (``"Target: 3. Current: 1."``), ``target`` and ``current``.

    ## Starting state
    Target uniform in ``[0, max_position]``, current uniform among the other values:
    every ordered pair with current != target is equally likely, so the start
    (current) is uniform in ``[0, max_position]``, as in gym-cards.
    ``reset(options={"target": g, "current": c})`` sets either or both; the other is
    then uniform among the values that differ from it.

    gym-cards' ``reset`` (since its commit 2d947f4; its first version let them start
    equal) also keeps them apart, but its target is not uniform: it draws start and
    target uniformly and, when they are equal, moves the target to ``(target + 1) %
    max_position``. So given the start ``s``, target ``(s + 1) % max_position`` is
    twice as likely as each other value (over all deals target 1 is the most likely
    and ``max_position`` the least), and with ``max_position=1`` the target stays 0
    when both are drawn 0, a deal already won, a quarter of the time. Here those
    deals are not made, and every pair is equally likely. gym-cards also draws from
    Python's global ``random``, which ``reset(seed=...)`` does not seed.

    ## Episode end
    Termination when the current number reaches the target. Truncation after
    ``2 * max_position`` steps, done by the environment itself since the limit depends
    on ``max_position`` (registered without ``max_episode_steps``). The expert needs at
    most ``max_position`` steps.

    ## Expert
    :meth:`expert_action` steps toward the target: success rate 100% (optimal, by
    construction; checked by the tests).

    ## Arguments
    ``gym.make("vmalign/NumberLine-v0", render_mode=None, max_position=5,
    obs_mode="rgb", obs_size=128, render_size=224)``; ``max_position`` is an integer
    in [1, 99]; see :class:`envs.cards.card_game.CardGameEnv` for the rest. Unknown
    keyword arguments raise ``TypeError`` listing the valid ones.

    ## Version history
    - v0: initial release (gym-cards' ``NumberLine-v0`` rules, seeded, start never
      equal to the target); ``info["progress"]`` and ``obs_mode`` added later
      (episodes unchanged; the default ``obs_mode="rgb"`` observes as before).
    """

    background = WHITE
    action_words = ("-", "+")

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        max_position: int = 5,
        obs_mode: str = "rgb",
        obs_size: int = 128,
        render_size: int = 224,
        **unknown: Any,
    ) -> None:
        reject_unknown_kwargs(type(self), unknown)
        self.max_position = check_int_range("max_position", max_position, 1, 99)
        super().__init__(render_mode, obs_mode=obs_mode, obs_size=obs_size,
                         render_size=render_size)
        self.target = 0
        self.current = 0
        self.start = 0
        """The current number at the start of the episode."""
        self.steps_made = 0

    # ---------------------------------------------------------------- rules
    def _deal(self, options: dict[str, Any]) -> str:
        self._check_options(options, ("target", "current"))
        top = self.max_position
        target = options.get("target")
        current = options.get("current")
        if target is None:
            if current is None:
                target = int(self.np_random.integers(top + 1))
            else:  # uniform among the values other than the given start
                target = int(self.np_random.integers(top))
                target += target >= check_int_range("current", current, 0, top)
        if current is None:
            current = int(self.np_random.integers(top))
            current += current >= target  # uniform among the values other than the target
        self.target = check_int_range("target", target, 0, top)
        self.current = check_int_range("current", current, 0, top)
        if self.target == self.current:
            raise ValueError(f"target and current must differ, both are {self.target}")
        self.start = self.current
        self.steps_made = 0
        return "move the current number to the target number with - and +"

    def _play(self, action: int) -> tuple[float, bool, bool]:
        self.steps_made += 1
        before = abs(self.current - self.target)
        step = 1 if action == PLUS else -1
        self.current = min(max(self.current + step, 0), self.max_position)
        after = abs(self.current - self.target)
        if after == 0:
            return 1.0, True, False
        reward = -1.0 if after >= before else 0.0
        return reward, False, self.steps_made >= 2 * self.max_position

    def is_success(self) -> bool:
        return self.current == self.target

    def progress(self) -> float:
        # Linear in the distance left; a step away from the target can make it 0.
        return progress_toward(abs(self.current - self.target), abs(self.start - self.target), 0)

    def expert_action(self) -> int:
        return PLUS if self.current < self.target else MINUS

    def state_text(self) -> str:
        return f"Target: {self.target}. Current: {self.current}."

    def _game_info(self) -> dict[str, Any]:
        return {"target": self.target, "current": self.current}

    state_names = ("target", "current")

    def _state_space(self) -> spaces.Box:
        return spaces.Box(0, self.max_position, shape=(2,), dtype=np.float32)

    def state(self) -> np.ndarray:
        return np.array([self.target, self.current], dtype=np.float32)

    # -------------------------------------------------------------- picture
    def _make_layout(self, size: int) -> _Layout:
        widest = str(self.max_position)
        # Numbers 1.6x their labels; the widest row fills at most 90% of the width.
        label_px = max(4, round(0.16 * size))
        while label_px > 4 and (
            text_width(LABELS[1], label_px) + text_width(widest, round(1.6 * label_px))
            > 0.9 * size
        ):
            label_px -= 1
        value_px = round(1.6 * label_px)
        label_width = max(text_width(label, label_px) for label in LABELS)
        row_width = label_width + text_width(widest, value_px)
        x = (size - row_width) // 2
        value_ascent, label_ascent = font(value_px).getmetrics()[0], font(label_px).getmetrics()[0]
        top, bottom = (round(f * size - value_ascent / 2) for f in (0.3, 0.68))
        value_y = (top, bottom)
        label_y = (top + value_ascent - label_ascent, bottom + value_ascent - label_ascent)
        return _Layout(label_px, value_px, x, x + label_width, label_y, value_y)

    def _draw_table(self, size: int) -> np.ndarray:
        frame = super()._draw_table(size)
        layout: _Layout = self._layout(size)
        for label, y in zip(LABELS, layout.label_y):
            paste(frame, text_sprite(label.strip(), layout.label_px, BLACK, WHITE), layout.x, y)
        paste(frame, self._number(self.target, layout), layout.value_x, layout.value_y[0])
        return frame

    def _draw_moving(self, frame: np.ndarray, size: int) -> None:
        layout: _Layout = self._layout(size)
        paste(frame, self._number(self.current, layout), layout.value_x, layout.value_y[1])

    @staticmethod
    def _number(value: int, layout: _Layout) -> np.ndarray:
        return text_sprite(str(value), layout.value_px, BLACK, WHITE)


__all__ = ["NumberLineEnv"]
