"""What the three VLA trainers share: the policy they start from, logs, checkpoints
and the closing evaluation. Each trainer (:mod:`agents.vla.bc`, :mod:`agents.vla.ppo`,
:mod:`agents.vla.dpo`) reads top to bottom and calls these.

Run folder (as for PPO runs): ``config.yaml``, ``progress.csv`` and TensorBoard
events, ``checkpoints/step-N/`` (``policy/``, ``optimizer.pt``, ``state.json``) and,
at the end, ``policy/`` (the final policy) and ``train_summary.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

from agents import distributed
from agents.checkpoint import Checkpoint, latest_checkpoint, set_rng_state, write_checkpoint
from agents.evaluation import EVAL_SEED_OFFSET
from agents.logs import PROGRESS_FILE, AppendingCSV, truncate_log
from agents.vla.config import VLARunConfig
from agents.vla.model import VLAPolicy, make_config
from agents.vla.rollout import rollout_episodes, success_rate


def build_policy(config: VLARunConfig, device: str) -> VLAPolicy:
    """The policy the run starts from: ``vla.init`` (a saved policy), else a fresh one
    of ``vla.preset`` with the config's overrides (seeded by the run's seed)."""
    if config.vla.init is not None:
        return VLAPolicy.load(config.vla.init, device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return VLAPolicy(make_config(config.vla.preset, **config.vla.architecture()),
                         device=device)


def make_logger(run_dir: Path) -> Any:
    """SB3's logger writing ``progress.csv`` (appending across resumes) and TensorBoard;
    one that writes nothing in a torchrun process other than the main one."""
    if not distributed.world().is_main:
        return Logger(None, [])
    return Logger(str(run_dir), [AppendingCSV(run_dir / PROGRESS_FILE),
                                 TensorBoardOutputFormat(str(run_dir))])


def save_checkpoint(run_dir: Path, step: int, policy: VLAPolicy, optimizer: torch.optim.Optimizer,
                    trainer: dict[str, Any], extras: dict[str, Any] | None = None) -> Path | None:
    """Writes ``RUN/checkpoints/step-N`` (the main process only: None elsewhere).

    :param extras: more of the trainer's state, by name: each object's ``state_dict()``
        goes to ``NAME.pt`` (e.g. vla-ppo's state critic and its optimizer)."""
    if not distributed.world().is_main:
        return None

    def contents(folder: Path) -> None:
        policy.save(folder / "policy")
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")
        for name, item in (extras or {}).items():
            torch.save(item.state_dict(), folder / f"{name}.pt")

    return write_checkpoint(run_dir, step, contents, {"trainer": trainer})


def resume(run_dir: Path, policy: VLAPolicy, optimizer: torch.optim.Optimizer,
           log: Any, extras: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """Loads the latest checkpoint into ``policy``, ``optimizer`` and ``extras`` (as
    :func:`save_checkpoint` wrote them) and the RNGs; returns its step and trainer
    state, or ``(0, {})`` when there is none. Log rows written after that step move to
    ``progress.discarded.csv`` (they will be redone)."""
    checkpoint: Checkpoint | None = latest_checkpoint(run_dir)
    if checkpoint is None:
        log(f"vmalign train: {run_dir} has no checkpoint yet; starting from step 0")
        return 0, {}
    saved = VLAPolicy.load(checkpoint.folder / "policy", device=str(policy.device))
    policy.load_state_dict(saved.state_dict())
    optimizer.load_state_dict(_load_state(checkpoint.folder / "optimizer.pt", policy.device))
    for name, item in (extras or {}).items():
        item.load_state_dict(_load_state(checkpoint.folder / f"{name}.pt", policy.device))
    set_rng_state(checkpoint.state["rng"])
    moved = (truncate_log(run_dir / PROGRESS_FILE, checkpoint.num_timesteps)
             if distributed.world().is_main else 0)
    log(f"vmalign train: resuming {run_dir} from step {checkpoint.num_timesteps}"
        + (f" ({moved} log rows after it moved to progress.discarded.csv)" if moved else ""))
    return checkpoint.num_timesteps, dict(checkpoint.state.get("trainer", {}))


def _load_state(path: Path, device: torch.device) -> dict[str, Any]:
    """A state dict that :func:`save_checkpoint` wrote."""
    if not path.exists():
        raise ValueError(f"{path} is missing: the checkpoint was written by a run with other "
                         f"settings (e.g. vla-ppo without ppo.critic=state)")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises several types for a bad file
        raise ValueError(f"{path} is corrupt or truncated: {error}") from error


def evaluate(policy: VLAPolicy, config: VLARunConfig, episodes: int | None = None,
             seed: int | None = None) -> dict[str, dict[str, float]]:
    """Success rate and mean ground-truth return on every eval env (held-out seeds,
    deterministic actions)."""
    count = episodes or config.eval_episodes
    first = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    results = {}
    for env_id, kwargs in config.eval_env_kwargs.items():
        played = rollout_episodes(policy, env_id, kwargs, range(first, first + count))
        results[env_id] = {"success_rate": round(success_rate(played), 4),
                           "mean_return": round(float(np.mean([e.ground_truth_return
                                                               for e in played])), 4),
                           "episodes": count}
    return results


def finish(run_dir: Path, policy: VLAPolicy, summary: dict[str, Any]) -> dict[str, Any]:
    """Saves the final policy to ``RUN/policy``; returns the summary (which
    :func:`agents.runs.train` writes to ``train_summary.json``)."""
    policy.save(run_dir / "policy")
    return summary
