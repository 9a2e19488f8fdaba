"""Scripted experts: the source of demonstrations and simulated preferences.

Every vmalign environment implements ``expert_action()``, a scripted policy that
reads privileged simulator state (object poses, not pixels). This module turns it
into an ordinary policy, a callable from observation to action, so that callers
(preview, data collection, teachers) need not know which env they hold.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

Policy = Callable[[Any], np.ndarray]


def expert_policy(env: gym.Env) -> Policy:
    """The scripted expert of ``env`` (wrapped or not) as an ``obs -> action`` callable.

    The observation argument is ignored: the expert acts on the simulator state of
    the very env it was made for, so step that env with the returned actions.
    """
    unwrapped = env.unwrapped
    expert_action = getattr(unwrapped, "expert_action", None)
    if expert_action is None:
        raise TypeError(f"{type(unwrapped).__name__} has no scripted expert (expert_action)")

    def policy(observation: Any) -> np.ndarray:
        del observation  # the expert reads privileged state instead
        return expert_action()

    return policy


def decoy_policy(env: gym.Env) -> Policy:
    """The env's scripted decoy (``decoy_action()``, where it has one) as an ``obs ->
    action`` callable: what a reward that follows the tool rather than the task
    can score as high as the expert, e.g. Sweep's lowered tool parked in the goal
    zone or at a table edge, the debris left where it lies. Its episodes, ranked
    low by the ground truth, teach a learned reward that difference."""
    unwrapped = env.unwrapped
    decoy_action = getattr(unwrapped, "decoy_action", None)
    if decoy_action is None:
        raise TypeError(f"{type(unwrapped).__name__} has no scripted decoy (decoy_action); "
                        "the 'decoy' policy is for vmalign/Sweep-v0 and vmalign/Sweep-v1")

    def policy(observation: Any) -> np.ndarray:
        del observation  # reads privileged state, like the expert
        return decoy_action()

    return policy
