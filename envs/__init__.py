"""vmalign environments: Gymnasium envs with pixel observations.

Importing this package registers every id below with Gymnasium, so user code
only needs ``gym.make("vmalign/Push-v0")`` after ``import envs``, or
``gym.make("envs:vmalign/Push-v0")`` with no import at all.

This package makes pixels and knows nothing of rewards or agents.
"""

from __future__ import annotations

import os

# MuJoCo picks its OpenGL backend when `mujoco` is first imported. Research
# machines are usually headless, so default to EGL (software Mesa or a GPU
# driver); a user who sets MUJOCO_GL themselves keeps their choice.
os.environ.setdefault("MUJOCO_GL", "egl")
# Mesa's software rasteriser (llvmpipe) splits every frame across worker threads;
# for 64x64 frames the hand-off costs more than the drawing (measured: 240 us a
# frame single-threaded against 470 us with threads), and vector envs already use
# every core. Read when the first GL context is made.
os.environ.setdefault("LP_NUM_THREADS", "0")

import importlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from gymnasium.envs.registration import register, registry  # noqa: E402

RENDER_MODES: tuple[str | None, ...] = (None, "rgb_array")
"""The render modes every vmalign env takes: all rendering is offscreen."""

# id -> (entry point, max_episode_steps)
_MANIPULATION = {
    "vmalign/Reach-v0": ("envs.manipulation.reach:ReachEnv", 50),
    "vmalign/Push-v0": ("envs.manipulation.push:PushEnv", 100),
    "vmalign/Push-v1": ("envs.manipulation.push:PushV1Env", 100),
    "vmalign/PickPlace-v0": ("envs.manipulation.pick_place:PickPlaceEnv", 120),
    "vmalign/PickPlace-v1": ("envs.manipulation.pick_place:PickPlaceV1Env", 120),
    "vmalign/Stack-v0": ("envs.manipulation.stack:StackEnv", 150),
    "vmalign/Stack-v1": ("envs.manipulation.stack:StackV1Env", 150),
    "vmalign/Sweep-v0": ("envs.manipulation.sweep:SweepEnv", 200),
    "vmalign/Sweep-v1": ("envs.manipulation.sweep:SweepV1Env", 200),
}

# The card games end every episode themselves (NumberLine's limit depends on its
# max_position argument), so they need no TimeLimit wrapper: max_episode_steps None.
_CARDS = {
    "vmalign/NumberLine-v0": ("envs.cards.numberline:NumberLineEnv", None),
    "vmalign/EZPoints-v0": ("envs.cards.ezpoints:EZPointsEnv", None),
    "vmalign/Points24-v0": ("envs.cards.points24:Points24Env", None),
    "vmalign/Blackjack-v0": ("envs.cards.blackjack:BlackjackEnv", None),
}

# The navigation envs truncate themselves after max_steps, whose default grows with
# the layout (room_size, maze_size): no TimeLimit wrapper either.
_NAVIGATION = {
    "vmalign/GoToObject-v0": ("envs.navigation.go_to_object:GoToObjectEnv", None),
    "vmalign/Maze-v0": ("envs.navigation.maze:MazeEnv", None),
}

ENV_IDS: tuple[str, ...] = (*_MANIPULATION, *_CARDS, *_NAVIGATION)
"""Every environment id this package registers, in a stable order."""


# Why the registered entry points are factories and not the env classes: when
# render_mode="human" is not among a class's metadata["render_modes"] but
# "rgb_array" is, gymnasium.make() quietly makes the env with "rgb_array" and wraps
# it in HumanRendering, which needs pygame and a display and fails only at reset().
# make() reads render_modes from the entry point's `metadata` attribute; a factory
# has none, so make() passes render_mode through unchanged and the factory refuses
# what needs a window at make time. The classes keep their metadata (env.metadata
# is unchanged), the entry points stay "module:attribute" strings (gym.spec,
# load_env_creator and pickled specs work as before), and `import envs` still
# imports no env module until an env is made. make() no longer turns
# "rgb_array_list" into "rgb_array" plus RenderCollection either: that mode is
# refused too, and wrapping the env in gymnasium.wrappers.RenderCollection does it.
def _offscreen_factory(target: str) -> Callable[..., Any]:
    """The entry point that makes the env class ``target`` (``"module:Class"``)."""
    module, name = target.split(":")

    def make(render_mode: str | None = None, **kwargs: Any) -> Any:
        if render_mode not in RENDER_MODES:
            raise ValueError(
                f"render_mode={render_mode!r} is not allowed: vmalign environments render "
                f"offscreen only (no window); choose one of {list(RENDER_MODES)} and show "
                "or save the frames of env.render() yourself"
            )
        env_class = getattr(importlib.import_module(module), name)
        return env_class(render_mode=render_mode, **kwargs)

    # A module-level name, so that the function pickles by reference.
    make.__name__ = make.__qualname__ = f"make_{name}"
    make.__module__ = __name__
    make.__doc__ = f"Makes a :class:`{module}.{name}` (see its docstring for the arguments)."
    return make


for _env_id, (_entry_point, _max_steps) in {**_MANIPULATION, **_CARDS, **_NAVIGATION}.items():
    _factory = _offscreen_factory(_entry_point)
    globals()[_factory.__name__] = _factory
    if _env_id not in registry:  # importing twice (e.g. via "envs:") must not warn
        register(id=_env_id, entry_point=f"{__name__}:{_factory.__name__}",
                 max_episode_steps=_max_steps)

__all__ = ["ENV_IDS", "RENDER_MODES"]
