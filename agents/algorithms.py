"""The algorithm table: every ``algo`` a config may name, and where its parts live.

A row gives the algorithm's config schema, its trainer and its evaluator. Adding an
algorithm is one row here plus its own module(s): a schema (a
:class:`agents.config.RunConfig` subclass, whose ``LENGTH_KEY`` names the key
``--resume`` may extend) and two functions::

    train(config, run_dir, resume, checked, progress_bar, log) -> summary dict
    evaluate(run_dir, config, episodes, seed, checkpoint, video_size, deterministic, log)
        -> summary dict (written to RUN/eval/eval.json)

Trainers and evaluators are named as ``"module:function"`` and imported on first
use: reading a config loads no trainer, and a VLA run never loads stable-baselines3's
training code it does not use.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from agents.config import RunConfig
from agents.sb3.config import PPOConfig, SACConfig
from agents.vla.config import VLABCConfig, VLADPOConfig, VLAGRPOConfig, VLAPPOConfig


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One row of the table."""

    schema: type[RunConfig]
    trainer: str
    """``"module:function"`` of the trainer."""
    evaluator: str
    """``"module:function"`` of ``vmalign eval`` for its runs."""
    unit: str
    """What the run's length counts (for messages)."""
    data_parallel: bool = False
    """Trains data-parallel under ``torchrun`` (:mod:`agents.distributed`)."""

    @property
    def length_key(self) -> str:
        return self.schema.LENGTH_KEY

    def train(self) -> Callable[..., dict[str, Any]]:
        return _resolve(self.trainer)

    def evaluate(self) -> Callable[..., dict[str, Any]]:
        return _resolve(self.evaluator)


ALGORITHMS: dict[str, Algorithm] = {
    "ppo": Algorithm(PPOConfig, "agents.sb3.train:train",
                     "agents.evaluation.policy:evaluate", "environment steps"),
    "sac": Algorithm(SACConfig, "agents.sb3.train:train",
                     "agents.evaluation.policy:evaluate", "environment steps"),
    "vla-bc": Algorithm(VLABCConfig, "agents.vla.bc:train",
                        "agents.vla.evaluate:evaluate", "gradient steps",
                        data_parallel=True),
    "vla-ppo": Algorithm(VLAPPOConfig, "agents.vla.ppo:train",
                         "agents.vla.evaluate:evaluate", "environment steps"),
    "vla-dpo": Algorithm(VLADPOConfig, "agents.vla.dpo:train",
                         "agents.vla.evaluate:evaluate", "epochs", data_parallel=True),
    "vla-grpo": Algorithm(VLAGRPOConfig, "agents.vla.grpo:train",
                          "agents.vla.evaluate:evaluate", "iterations", data_parallel=True),
}
"""name -> :class:`Algorithm`: the one place algorithm names are written."""


def _resolve(target: str) -> Callable[..., dict[str, Any]]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
