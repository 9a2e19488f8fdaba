"""Card games with pixel observations, after RL4VLM's gym-cards.

One module per game, its whole contract and expert included: ``numberline.py``,
``ezpoints.py``, ``points24.py``, ``blackjack.py``. Shared pieces, one concept each:

- ``card_game.py``: the base class every game shares (arguments, step loop, info,
  frame caching);
- ``formula_game.py``: the mechanics EZPoints and Points24 share (typing a formula
  from the cards, card reuse, the length limit, scoring ``=``);
- ``deck.py``: cards, their names and values, dealing from an infinite deck;
- ``sprites.py``: card and text sprites drawn once per size with the shipped font,
  and frame composition;
- ``formula.py``: the exact rational formula parser and evaluator;
- ``solver.py``: the exact 24-point solver (every solution);
- ``text_actions.py``: turns a language model's text answer into an action.
"""

from envs.cards.text_actions import TextActionError, TextActions, parse_action

__all__ = ["TextActionError", "TextActions", "parse_action"]
