"""The base class every card game shares: arguments, the step loop, info and frames.

A game module (``numberline.py``, ``points24.py``, ...) subclasses :class:`CardGameEnv`,
sets its ``action_words`` and implements :meth:`~CardGameEnv._deal` (start an
episode), :meth:`~CardGameEnv._play` (apply one action), :meth:`~CardGameEnv._draw_table`
and :meth:`~CardGameEnv._draw_moving` (the picture), :attr:`~CardGameEnv.state_names`,
:meth:`~CardGameEnv._state_space` and :meth:`~CardGameEnv.state` (the state vector),
:meth:`~CardGameEnv.state_text`, :meth:`~CardGameEnv.is_success` and
:meth:`~CardGameEnv.expert_action`.

Every game offers ``obs_mode="state"`` (and ``"rgb+state"``): the observation is then
a few numbers, not (or besides) the picture. It is honest because a card game's
state is small and exact: the vector holds everything the rules and the expert act
on (card values, the formula typed so far, hand totals; not the suits, which never
matter, nor the final ``= value`` drawn after the last step), each game's
"Observation space" lists it entry by entry, and nothing is hidden in the picture
that a policy needs. It is cheap: a few list reads instead of composing a frame, and
no picture at all is drawn for the observation. :meth:`~CardGameEnv.render` and
``info`` are the same in every mode.

Frames are composed in two layers so a step costs a copy and a few pastes: the
*table* (background and whatever stays put until the next deal or hit) is drawn once
per episode and size and cached; the *moving* part (the formula, a number) is pasted
onto a fresh copy of it every step.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.cards.sprites import FELT, Color, blank
from envs.checks import check_choice, check_discrete_action, check_int_range, reject_unknown_kwargs

OBS_MODES = ("rgb", "state", "rgb+state")
"""What an observation holds: the picture, the state vector, or both (a Dict)."""
OBS_SIZE_RANGE = (64, 448)
RENDER_SIZE_RANGE = (32, 1024)


Observation = np.ndarray | dict[str, np.ndarray]
"""A picture, a state vector, or ``{"rgb": picture, "state": vector}`` (``obs_mode``)."""


class CardGameEnv(gym.Env[Observation, np.int64]):
    """Base class of the card games; see each game for its full contract.

    Keyword arguments shared by every game:

    - ``render_mode``: ``None`` or ``"rgb_array"``.
    - ``obs_mode`` (``"rgb"``, ``"state"`` or ``"rgb+state"``, default ``"rgb"``): the
      picture, the game's state vector (each game's "Observation space" lists it; no
      picture is drawn for the observation), or both in a ``Dict``.
    - ``obs_size`` (int, 64-448, default 128): observation height and width.
    - ``render_size`` (int, 32-1024, default 224): size of :meth:`render`'s frame, the
      view meant for reward models and videos; the same picture as the observation,
      drawn at that size.

    Info keys shared by every game: ``instruction`` (the task in words),
    ``is_success``, ``progress`` (task completion in [0, 1], 1 exactly on success;
    each game defines it), ``action_mask`` (``int8`` array, 1 where the action is
    legal now), ``legal_actions`` (the words of those actions) and ``text`` (the state
    in words, for text-only agents and prompts).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 2}
    background: ClassVar[Color] = FELT
    action_words: tuple[str, ...]
    """The word of every action, by index: what a text agent answers (see ``text_actions``)."""
    state_names: tuple[str, ...]
    """The names of :meth:`state`'s entries, in order."""

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        obs_mode: str = "rgb",
        obs_size: int = 128,
        render_size: int = 224,
        **unknown: Any,
    ) -> None:
        reject_unknown_kwargs(type(self), unknown)
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        check_choice("obs_mode", obs_mode, OBS_MODES)
        self.obs_size = check_int_range("obs_size", obs_size, *OBS_SIZE_RANGE)
        self.render_size = check_int_range("render_size", render_size, *RENDER_SIZE_RANGE)
        self.render_mode = render_mode
        self.obs_mode = obs_mode
        self.action_space = spaces.Discrete(len(self.action_words))
        picture = spaces.Box(0, 255, shape=(self.obs_size, self.obs_size, 3), dtype=np.uint8)
        state = self._state_space()
        self.observation_space: spaces.Space = {
            "rgb": picture, "state": state,
            "rgb+state": spaces.Dict({"rgb": picture, "state": state}),
        }[obs_mode]
        self.instruction = ""
        self._ended: bool | None = None  # None until the first reset
        self._layouts: dict[int, Any] = {}
        self._tables: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"options must be a dict or None, got {options!r}")
        self._tables.clear()
        self.instruction = self._deal(dict(options or {}))
        self._ended = False
        return self._observe(), self._info()

    def step(self, action: Any) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Plays the action with index ``action``; anything that is not an integer in the
        action space raises ``ValueError``, and so does nothing: the state is unchanged."""
        if self._ended is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError("the episode has ended; call reset() before step()")
        index = check_discrete_action(action, self.action_space)
        reward, terminated, truncated = self._play(index)
        self._ended = terminated or truncated
        return self._observe(), float(reward), terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """The picture at ``render_size`` (``render_mode="rgb_array"``); else None."""
        if self.render_mode != "rgb_array":
            return None
        if self._ended is None:
            raise RuntimeError("call reset() before render()")
        return self._draw(self.render_size)

    @property
    def episode_over(self) -> bool:
        """Whether the current episode has terminated or been truncated."""
        return bool(self._ended)

    # ------------------------------------------------------------ actions
    def action_mask(self) -> np.ndarray:
        """``int8`` per action: 1 where the action is legal now. All legal by default."""
        return np.ones(len(self.action_words), dtype=np.int8)

    def legal_actions(self) -> tuple[str, ...]:
        """The words of the actions legal now, in action order."""
        mask = self.action_mask()
        return tuple(word for word, legal in zip(self.action_words, mask) if legal)

    # ------------------------------------------------------------ internals
    def _observe(self) -> Observation:
        if self.obs_mode == "state":
            return self.state()
        picture = self._draw(self.obs_size)
        if self.obs_mode == "rgb":
            return picture
        return {"rgb": picture, "state": self.state()}

    def _info(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "is_success": self.is_success(),
            "progress": self.progress(),
            "action_mask": self.action_mask(),
            "legal_actions": self.legal_actions(),
            "text": self.state_text(),
            **self._game_info(),
        }

    def _draw(self, size: int) -> np.ndarray:
        """A fresh frame: a copy of the cached table plus the moving part."""
        table = self._tables.get(size)
        if table is None:
            table = self._tables[size] = self._draw_table(size)
        frame = table.copy()
        self._draw_moving(frame, size)
        return frame

    def _layout(self, size: int) -> Any:
        """The game's layout for ``size``, made once by :meth:`_make_layout`."""
        layout = self._layouts.get(size)
        if layout is None:
            layout = self._layouts[size] = self._make_layout(size)
        return layout

    def _invalidate_table(self) -> None:
        """Call when something on the table changes mid-episode (a card is dealt)."""
        self._tables.clear()

    @staticmethod
    def _check_options(options: dict[str, Any], allowed: Collection[str]) -> None:
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {unknown}; allowed: {sorted(allowed) or 'none'}"
            )

    # ----------------------------------------------------- game interface
    def _deal(self, options: dict[str, Any]) -> str:
        """Starts an episode with ``self.np_random``; returns the instruction."""
        raise NotImplementedError

    def _play(self, action: int) -> tuple[float, bool, bool]:
        """Applies a valid action index: (reward, terminated, truncated)."""
        raise NotImplementedError

    def _make_layout(self, size: int) -> Any:
        """Positions and sprite sizes of the picture at ``size`` pixels."""
        raise NotImplementedError

    def _draw_table(self, size: int) -> np.ndarray:
        """The part of the picture that stays put until :meth:`_invalidate_table`."""
        return blank(size, self.background)

    def _draw_moving(self, frame: np.ndarray, size: int) -> None:
        """Pastes what changes every step onto ``frame`` (a fresh table copy)."""

    def _game_info(self) -> dict[str, Any]:
        """Game-specific ``info`` entries."""
        return {}

    def _state_space(self) -> spaces.Box:
        """The ``float32`` box of :meth:`state`, one entry per :attr:`state_names`;
        called by ``__init__``, so it may use the game's own arguments only."""
        raise NotImplementedError

    def state(self) -> np.ndarray:
        """The state as numbers (``float32``): the ``obs_mode="state"`` observation,
        available in every mode once the episode has started."""
        raise NotImplementedError

    def state_text(self) -> str:
        """The state in words, as ``info["text"]``."""
        raise NotImplementedError

    def is_success(self) -> bool:
        """Whether the episode is won (so far)."""
        raise NotImplementedError

    def progress(self) -> float:
        """Task completion in [0, 1], 1.0 exactly when :meth:`is_success`: the measure
        learned rewards are judged against. Runs every step, so it must be cheap."""
        raise NotImplementedError

    def expert_action(self) -> int:
        """The expert's action for the current state (reads the privileged state)."""
        raise NotImplementedError
