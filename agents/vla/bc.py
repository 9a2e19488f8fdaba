"""``algo: vla-bc``: multi-task behaviour cloning of the VLA policy from datasets.

Every gradient step draws ``bc.batch_size`` random frames from *each* dataset
(``vmalign collect`` output; one per task or env), and minimises the sum over
datasets of the mean negative log-likelihood of the recorded actions: the binned
continuous actions (a cross-entropy per dimension) or the discrete ones. AdamW with
a linear warm-up and a cosine decay to 10% of ``bc.lr``; gradients clipped to
``bc.grad_clip``. Checkpoints every ``checkpoint_every`` steps; the run ends with the
success rate of the final policy on every dataset's env (held-out seeds).

A frozen registry image encoder (``vla.image_encoder: registry``, the default
``vla.vision_finetune: frozen``) encodes every dataset frame once before the first
step, when the tokens fit in ``bc.encoder_cache_gib``: the steps then train only what
learns, and give what encoding each batch anew gives.

Data-parallel under ``torchrun --nproc_per_node=N -m agents train ...``
(:mod:`agents.distributed`): every process draws the same global batch indices from
the run's seeded generator and keeps its share (every N-th, a distributed sampler
without a data loader), DistributedDataParallel averages the gradients, and the
main process logs, checkpoints and evaluates. N processes therefore take the steps
one process takes with the same ``bc.batch_size``, which must be a multiple of N.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents import distributed
from agents.dataset import EpisodeDataset
from agents.runs import Checked
from agents.vla import runs
from agents.vla.config import BCSettings, VLABCConfig
from agents.vla.model import ActionSpec, VLAPolicy


class Batch(NamedTuple):
    """One dataset's frames for a step: preprocessed ``images``, or the frozen encoder's
    ``encoder_tokens`` for them when the dataset is cached."""

    images: torch.Tensor | None
    encoder_tokens: torch.Tensor | None
    tokens: torch.Tensor
    texts: list[str]
    action_indices: torch.Tensor
    spec: ActionSpec


class TaskData:
    """One dataset with its env's action spec, sampled frame by frame."""

    def __init__(self, folder: str, max_episodes: int | None) -> None:
        self.dataset = EpisodeDataset(folder, cache_episodes=512)
        self.name = self.dataset.env
        env = gym.make(self.dataset.env, **(self.dataset.info.get("env_kwargs") or {}))
        self.spec = ActionSpec.of(env.action_space)
        env.close()
        episodes = self.dataset.num_episodes if max_episodes is None else min(
            max_episodes, self.dataset.num_episodes)
        self.frames = int(sum(r["length"] for r in self.dataset.episodes[:episodes]))
        self.episodes = episodes
        self.encoder_tokens: torch.Tensor | None = None

    def cache_encoder_tokens(self, policy: VLAPolicy, batch: int = 256) -> None:
        """Encode every frame once with the policy's frozen encoder: its tokens never
        change, and encoding dominates a step (a 4.7 M-parameter ImageNet network
        against a few-million-parameter transformer)."""
        blocks = []
        for start in range(0, self.frames, batch):
            images = np.stack([self.dataset[i]["observation.image"]
                               for i in range(start, min(start + batch, self.frames))])
            blocks.append(policy.encoder_tokens(policy.preprocess(images)))
        self.encoder_tokens = torch.cat(blocks)

    def sample(self, policy: VLAPolicy, count: int, rng: np.random.Generator,
               world: distributed.World) -> Batch:
        """This process's share of ``count`` random frames (all of them in a world of one)."""
        chosen = rng.integers(0, self.frames, count)[world.rank::world.size]
        items = [self.dataset[int(i)] for i in chosen]
        texts = [item["task"] for item in items]
        actions = np.stack([item["action"] for item in items])
        if self.encoder_tokens is None:
            images = policy.preprocess(np.stack([item["observation.image"] for item in items]))
            cached = None
        else:
            images, cached = None, self.encoder_tokens[torch.as_tensor(chosen)]
        return Batch(images, cached, policy.tokenize(texts), texts,
                     policy.action_indices(actions, self.spec), self.spec)


class CloningLoss(nn.Module):
    """The objective as a module, because DistributedDataParallel hooks ``forward``:
    the mean negative log-likelihood of the recorded actions, one per dataset."""

    def __init__(self, policy: VLAPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batches: list[Batch]) -> torch.Tensor:
        losses = []
        for batch in batches:
            features = self.policy.features(batch.images, batch.tokens, batch.texts,
                                            encoder_tokens=batch.encoder_tokens)
            distribution = self.policy.distribution(features, batch.spec)
            losses.append(-distribution.log_prob(batch.action_indices).mean())
        return torch.stack(losses)


def cache_encoder_tokens(policy: VLAPolicy, tasks: list[TaskData], limit_gib: float,
                         log: Any) -> None:
    """Encode every dataset frame once when the policy's encoder is frozen and the
    tokens fit in ``limit_gib`` (``bc.encoder_cache_gib``)."""
    if not policy.image_encoder_frozen:
        return
    gib = policy.encoder_tokens_gib(sum(t.frames for t in tasks))
    if gib > limit_gib:
        log(f"vmalign train: the frozen encoder encodes every batch (its tokens for all "
            f"frames would take {gib:.2f} GiB, over bc.encoder_cache_gib={limit_gib:g})")
        return
    started = time.perf_counter()
    for task in tasks:
        task.cache_encoder_tokens(policy)
    log(f"vmalign train: frozen encoder's tokens for {sum(t.frames for t in tasks)} frames "
        f"computed once ({gib:.2f} GiB, {time.perf_counter() - started:.0f} s)")


def learning_rate(step: int, settings: BCSettings) -> float:
    """Linear warm-up to ``lr``, then cosine decay to 10% of it at ``steps``."""
    base, warmup, total = settings.lr, settings.warmup, settings.steps
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def train(config: VLABCConfig, run_dir: Path, resume: bool, checked: Checked,
          progress_bar: bool = True, log: Any = print) -> dict[str, Any]:
    settings, device, world = config.bc, checked.device, distributed.world()
    log = distributed.main_only(log)
    tasks = [TaskData(folder, settings.max_episodes) for folder in config.datasets]
    policy = runs.build_policy(config, device)
    decay = [p for n, p in policy.named_parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for n, p in policy.named_parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": other, "weight_decay": 0.0}], lr=settings.lr)
    start, trainer = runs.resume(run_dir, policy, optimizer, log) if resume else (0, {})
    cache_encoder_tokens(policy, tasks, settings.encoder_cache_gib, log)
    objective = distributed.data_parallel(CloningLoss(policy), device)
    # Every process draws the same indices from this generator and keeps its share.
    rng = np.random.default_rng(trainer.get("rng_seed", config.seed) + start)
    logger = runs.make_logger(run_dir)
    log(f"vmalign train: vla-bc on {len(tasks)} dataset(s) "
        f"({', '.join(f'{t.name}: {t.episodes} episodes' for t in tasks)}), "
        f"{policy.num_parameters() / 1e6:.1f} M parameters, {device}"
        + (f", {world.size} processes" if world.is_distributed else ""))

    started, losses = time.perf_counter(), []
    policy.train()
    for step in range(start, settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        optimizer.zero_grad(set_to_none=True)
        loss = objective([task.sample(policy, settings.batch_size, rng, world) for task in tasks])
        loss.sum().backward()
        losses.append(loss.detach())
        torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.grad_clip)
        optimizer.step()
        done = step + 1
        if done % settings.log_every == 0 or done == settings.steps:
            mean = distributed.average(torch.stack(losses).mean(0)).tolist()
            for task, value in zip(tasks, mean):
                logger.record(f"bc/loss/{task.name}", value)
            logger.record("bc/lr", optimizer.param_groups[0]["lr"])
            logger.record("time/fps", (done - start) / (time.perf_counter() - started))
            logger.record("time/total_timesteps", done)
            logger.dump(done)
            losses = []
        if done % config.checkpoint_every == 0 or done == settings.steps:
            runs.save_checkpoint(run_dir, done, policy, optimizer, {"rng_seed": config.seed})
    seconds = time.perf_counter() - started
    summary = {"algo": "vla-bc", "steps": settings.steps, "resumed_from": start,
               "seconds": round(seconds, 1), "device": device, "processes": world.size,
               "parameters": policy.num_parameters(),
               "datasets": {t.name: {"episodes": t.episodes, "frames": t.frames} for t in tasks}}
    if not world.is_main:
        return summary  # the main process evaluates and saves
    results = runs.evaluate(policy, config)
    for env_id, result in results.items():
        logger.record(f"eval/success_rate/{env_id}", result["success_rate"])
    logger.record("time/total_timesteps", settings.steps)
    logger.dump(settings.steps)
    return runs.finish(run_dir, policy, {**summary, "eval": results})
