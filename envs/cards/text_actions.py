"""Text actions: turn a language model's answer into a card game's action.

VLM and VLA agents answer in text, RL4VLM-style::

    {"thoughts": "I have 13 against a 10; hitting is better.", "action": "hit"}

:func:`parse_action` reads such an answer strictly: the value of ``"action"`` must be
one of the game's action words (``env.unwrapped.action_words``: ``"stand"``, ``"hit"``,
``"10"``, ``"*"``, ...), compared without case and surrounding spaces. JSON wrapped in
prose or a code fence is found; a bare answer that is exactly one action word is
accepted too. Anything else raises :class:`TextActionError` saying why.

:class:`TextActions` wraps any card env so that ``step`` takes the answer itself. An
answer that cannot be read never becomes an action (RL4VLM's parser substituted a
chance one): the game does not move, the step returns the last observation with a
configurable ``penalty`` and ``info["parse_error"]`` holding the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ACTION_KEY = "action"
MAX_RESPONSE_CHARS = 100_000
"""Longest answer the wrapper's (nominal) text action space admits."""

# "action": "hit" or "action": 10 inside text that is not valid JSON (single quotes
# elsewhere, a trailing comma, an unescaped quote in the thoughts).
_ACTION_FIELD = re.compile(r'"action"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+))', re.IGNORECASE)


class TextActionError(ValueError):
    """An answer that names no action of the game; the message says why."""


def parse_action(response: Any, action_words: Sequence[str]) -> int:
    """The index in ``action_words`` of the action ``response`` names.

    :raises TextActionError: the response is not text, holds no ``"action"`` (or holds
        several different ones), or names a word that is not an action of the game.
    """
    if not isinstance(response, str):
        raise TextActionError(f"the response is a {type(response).__name__}, not text")
    words = [word.lower() for word in action_words]
    text = response.strip()
    if text.lower() in words:  # a bare answer such as "hit"
        return words.index(text.lower())
    value = _action_value(text)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TextActionError(
            f'"action" is {json.dumps(value)}; expected a string, one of {_listing(action_words)}'
        )
    word = str(value).strip().lower()
    if word not in words:
        raise TextActionError(
            f'"action" is {json.dumps(value)}, which is not an action of this game; '
            f"allowed: {_listing(action_words)}"
        )
    return words.index(word)


def _action_value(text: str) -> Any:
    """The value of the ``"action"`` key of the JSON object(s) in ``text``."""
    values = [obj[ACTION_KEY] for obj in _json_objects(text) if ACTION_KEY in obj]
    if not values:
        for match in _ACTION_FIELD.finditer(text):
            quoted, number = match.groups()
            values.append(_unescape(quoted) if quoted is not None else int(number))
    if not values:
        if "{" not in text:
            raise TextActionError(
                'no JSON object found; answer like {"thoughts": "...", "action": "<word>"}'
            )
        raise TextActionError('no "action" key found in the JSON object (or it is not valid JSON)')
    distinct = {json.dumps(v, sort_keys=True) for v in values}
    if len(distinct) > 1:
        raise TextActionError(f'the response names several actions: {", ".join(sorted(distinct))}')
    return values[0]


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object embedded in ``text`` (prose and fences around it)."""
    decoder = json.JSONDecoder()
    objects, position = [], text.find("{")
    while position != -1:
        try:
            obj, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        if isinstance(obj, dict):
            objects.append(obj)
        position = text.find("{", end)
    return objects


def _unescape(quoted: str) -> str:
    try:
        return json.loads(f'"{quoted}"')
    except json.JSONDecodeError:
        return quoted


def _listing(words: Sequence[str]) -> str:
    return ", ".join(json.dumps(word) for word in words)


class TextActions(gym.Wrapper):
    """Steps a card env with text answers instead of action indices.

    :param env: any card env (wrapped or not) whose unwrapped env has ``action_words``.
    :param penalty: reward of a step whose answer names no action (default -1, the
        games' own penalty for an invalid move).
    :param max_parse_errors: the episode is truncated at this many unreadable answers
        in one episode, so a model that never answers properly cannot loop forever;
        None for no limit.

    ``info`` of every step gains ``parse_error`` (None, or the reason the answer was
    not read) and ``text_action`` (the action word played, or None). On a parse
    error the game state does not change: the observation and the rest of ``info``
    are the last ones, ``terminated`` is False.
    """

    def __init__(
        self, env: gym.Env, penalty: float = -1.0, max_parse_errors: int | None = 10
    ) -> None:
        super().__init__(env)
        words = getattr(env.unwrapped, "action_words", None)
        if words is None:
            raise TypeError(
                f"{type(env.unwrapped).__name__} has no action_words to read answers with"
            )
        if max_parse_errors is not None and (
            isinstance(max_parse_errors, bool) or not isinstance(max_parse_errors, int)
            or max_parse_errors < 1
        ):
            raise ValueError(
                f"max_parse_errors must be a positive integer or None, got {max_parse_errors!r}"
            )
        self.action_words: tuple[str, ...] = tuple(words)
        """The words an answer may name, by action index: put them in the prompt."""
        self.penalty = float(penalty)
        self.max_parse_errors = max_parse_errors
        self.action_space = spaces.Text(max_length=MAX_RESPONSE_CHARS)
        self.parse_errors = 0
        """Unreadable answers so far in this episode."""
        self._last: tuple[np.ndarray, dict[str, Any]] | None = None
        self._episode_over = False

    @property
    def answer_format(self) -> str:
        """A sentence for the prompt: how to answer and which words are allowed."""
        return (
            'Answer with a JSON object {"thoughts": "...", "action": "..."} whose "action" '
            f"is one of {_listing(self.action_words)}."
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.parse_errors = 0
        self._episode_over = False
        info = {**info, "parse_error": None, "text_action": None}
        self._last = (obs, info)
        return obs, info

    def step(self, response: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        if self._episode_over:
            raise RuntimeError("the episode has ended; call reset() before step()")
        try:
            action = parse_action(response, self.action_words)
        except TextActionError as error:
            self.parse_errors += 1
            obs, info = self._last
            info = {**info, "parse_error": str(error), "text_action": None}
            limit = self.max_parse_errors
            truncated = limit is not None and self.parse_errors >= limit
            self._episode_over = truncated
            return obs.copy(), self.penalty, False, truncated, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "parse_error": None, "text_action": self.action_words[action]}
        self._last = (obs, info)
        self._episode_over = terminated or truncated
        return obs, reward, terminated, truncated, info
