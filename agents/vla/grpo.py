"""``algo: vla-grpo``: group-relative policy optimisation of a (behaviour-cloned) VLA
policy, in the CleanRL style: one loop, read top to bottom.

GRPO (Shao et al. 2024, DeepSeekMath; SimpleVLA-RL and RL4VLA for VLAs) needs no
critic: the baseline of a rollout is its group. Each iteration of :func:`train`:

1. **Groups.** ``grpo.groups`` start states (env seeds ``seed + iteration * groups
   + g``, never repeated across iterations), ``grpo.group_size`` rollouts from each,
   actions sampled (:func:`agents.vla.rollout.rollout_episodes`). Groups are played
   in chunks of ``grpo.parallel // grpo.group_size`` (envs in lockstep), each chunk
   with its own seeded sampler, so which process plays a chunk does not change it.
2. **Advantages** (:func:`group_advantages`): a rollout's return under the run's
   reward (:func:`rollout_returns`) minus its group's mean, divided by the group's
   standard deviation (plus ``1e-6``); every step of the rollout gets its rollout's
   advantage. A group whose rollouts all return the same has nothing to compare and
   gets zeros.
3. **Update** (:func:`grpo_update`): ``grpo.n_epochs`` passes over the steps in
   minibatches of ``grpo.batch_size``, PPO's clipped ratio against the
   log-probabilities the rollouts were sampled with, plus ``grpo.kl_coef`` times an
   unbiased estimate of KL(policy || reference) (Schulman's k3,
   ``exp(ref - logp) - (ref - logp) - 1``) to the starting policy ``vla.init``.

Data-parallel under ``torchrun --nproc_per_node=N -m agents train --algo vla-grpo``
(:mod:`agents.distributed`): each process plays every N-th chunk of groups (the
rollouts are the expensive part), every process gathers all of them, the
log-probabilities under the policy and the reference are computed a slice per
process and gathered too, and each minibatch is shared out row by row,
DistributedDataParallel summing the shares' gradients into the minibatch's mean. N processes therefore take the steps one
process takes; the main process logs, checkpoints and evaluates.

A checkpoint after every ``checkpoint_every`` iterations (policy, optimizer, RNG
states); ``--resume`` continues from the last one with the next iteration's start
states.

The reward is any reward module (``reward``, ``reward_kwargs``, ``reward_checkpoint``,
as for ``vla-ppo``): the env's own by default; a learned one scores each rollout's
rendered frames (``env.render()``, the reward-model view) once the rollout ends, a
trajectory module (RAPL) the whole episode. The module is not trained during the run,
so the returns of a group stay comparable. Logs and evaluation report the ground
truth whatever the reward.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents import distributed
from agents.rollouts import NO_FRAMES, Episode
from agents.runs import Checked
from agents.vla import runs
from agents.vla.config import VLAGRPOConfig, VLAGRPOSettings
from agents.vla.model import ActionSpec, VLAPolicy
from agents.vla.rollout import rollout_episodes, success_rate
from rewards.base import RewardModel


def group_advantages(returns: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``(R - mean_g R) / (std_g R + eps)`` for returns of shape (groups, group_size);
    zeros for a group whose returns are all equal (population standard deviation)."""
    returns = np.asarray(returns, np.float64)
    if returns.ndim != 2 or returns.shape[1] < 2:
        raise ValueError(f"returns must be (groups, group_size >= 2), got {returns.shape}")
    centred = returns - returns.mean(axis=1, keepdims=True)
    spread = returns.std(axis=1, keepdims=True)
    return np.where(spread > 0, centred / (spread + eps), 0.0).astype(np.float32)


def kl_estimate(log_prob: torch.Tensor, reference_log_prob: torch.Tensor) -> torch.Tensor:
    """Per-step k3 estimate of KL(policy || reference) from the policy's samples:
    non-negative, unbiased, zero where the two agree."""
    difference = reference_log_prob - log_prob
    return difference.exp() - difference - 1


def rollout_returns(reward: RewardModel, episodes: list[Episode]) -> np.ndarray:
    """Each rollout's return under ``reward``: the env's own for a module that reads
    no frames (the ground truth), else the sum of its scores of the rendered frames."""
    if not reward.needs_frames:
        return np.array([e.ground_truth_return for e in episodes], np.float64)
    return np.array([float(reward.score_trajectory(e.frames, e.instruction, e.env_rewards).sum())
                     for e in episodes], np.float64)


def play_chunk(policy: VLAPolicy, config: VLAGRPOConfig, reward: RewardModel, iteration: int,
               chunk: range) -> tuple[list[list[Episode]], np.ndarray]:
    """``group_size`` sampled rollouts from each of the chunk's start states, actions
    drawn from the chunk's own generator (seeded by run seed, iteration and chunk),
    and their returns under ``reward`` (chunk groups, group_size). The rendered
    frames are scored here and dropped."""
    s = config.grpo
    first = config.seed + iteration * s.groups
    seeds = [first + g for g in chunk for _ in range(s.group_size)]
    key = np.random.SeedSequence([config.seed, iteration, chunk.start]).generate_state(1)[0]
    generator = torch.Generator(device=policy.device).manual_seed(int(key))
    played = rollout_episodes(policy, config.env, config.env_kwargs, seeds, deterministic=False,
                              parallel=s.parallel, keep_trajectories=True,
                              render=reward.needs_frames, generator=generator)
    returns = rollout_returns(reward, played).reshape(len(chunk), s.group_size)
    played = [dataclasses.replace(e, frames=NO_FRAMES, first_frame=None) for e in played]
    return [played[g * s.group_size:(g + 1) * s.group_size] for g in range(len(chunk))], returns


def play_groups(policy: VLAPolicy, config: VLAGRPOConfig, reward: RewardModel, iteration: int,
                world: distributed.World) -> tuple[list[list[Episode]], np.ndarray]:
    """The iteration's groups, in order, and their returns under ``reward`` (groups,
    group_size): this process plays its share of the chunks and gets the others'
    from them."""
    mine = {chunk.start: play_chunk(policy, config, reward, iteration, chunk)
            for chunk in config.grpo.chunks()[world.rank::world.size]}
    played = {start: result for share in distributed.gather(mine)
              for start, result in share.items()}
    order = sorted(played)
    return ([group for start in order for group in played[start][0]],
            np.concatenate([played[start][1] for start in order]))


def step_batch(policy: VLAPolicy, groups: list[list[Episode]], advantages: np.ndarray,
               spec: ActionSpec) -> dict[str, Any]:
    """Every step of every rollout, flat: images (and a frozen encoder's tokens for
    them), instructions, action indices, masks, and the rollout's advantage on each of
    its steps."""
    episodes = [e for group in groups for e in group]
    flat_advantages = advantages.reshape(-1)
    images = torch.from_numpy(np.concatenate([e.observations for e in episodes]))
    masks = [e.action_masks for e in episodes]
    return {
        "images": images,
        # A frozen encoder's tokens are computed once here, not at every pass.
        "encoder_tokens": (shared_out(len(images), lambda rows: policy.encoder_tokens(
            policy.preprocess(images[rows]))).to(policy.device)
            if policy.image_encoder_frozen else None),
        "texts": [e.instruction for e in episodes for _ in range(len(e))],
        "indices": torch.as_tensor(np.concatenate([e.action_indices for e in episodes]),
                                   device=policy.device),
        "masks": None if masks[0] is None else torch.as_tensor(np.concatenate(masks),
                                                               device=policy.device),
        "advantages": torch.as_tensor(np.concatenate(
            [np.full(len(e), a, np.float32) for e, a in zip(episodes, flat_advantages)]),
            device=policy.device),
    }


def log_probs(policy: VLAPolicy, batch: dict[str, Any], rows: torch.Tensor,
              spec: ActionSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the recorded actions at ``rows``, and the entropies."""
    texts = [batch["texts"][i] for i in rows.tolist()]
    if batch.get("encoder_tokens") is not None and policy.image_encoder_frozen:
        features = policy.features(None, policy.tokenize(texts), texts,
                                   encoder_tokens=batch["encoder_tokens"][rows])
    else:
        features = policy.features(policy.preprocess(batch["images"][rows]),
                                   policy.tokenize(texts), texts)
    masks = None if batch["masks"] is None else batch["masks"][rows]
    dist = policy.distribution(features.float(), spec, masks)
    return dist.log_prob(batch["indices"][rows]), dist.entropy()


def shared_out(total: int, compute: Callable[[torch.Tensor], torch.Tensor],
               chunk: int = 256) -> torch.Tensor:
    """``compute(rows)`` for every row, chunk by chunk, without gradients. Under
    torchrun each process computes its own slice of the rows and the slices are
    gathered, instead of every process computing the whole batch."""
    here = distributed.world()
    share = -(-total // here.size)
    mine = range(min(total, here.rank * share), min(total, (here.rank + 1) * share))
    with torch.no_grad():
        values = [compute(torch.arange(begin, min(begin + chunk, mine.stop))).cpu()
                  for begin in range(mine.start, mine.stop, chunk)]
    # Through the CPU: a pickled CUDA tensor would unpickle onto the sender's GPU index.
    slices = distributed.gather(torch.cat(values) if values else torch.zeros(0))
    return torch.cat(slices)


def all_log_probs(policy: VLAPolicy, batch: dict[str, Any], spec: ActionSpec) -> torch.Tensor:
    """Log-probabilities of every recorded action under ``policy``, without gradients."""
    was_training = policy.training
    policy.eval()
    values = shared_out(len(batch["texts"]), lambda rows: log_probs(policy, batch, rows, spec)[0])
    policy.train(was_training)
    return values.to(policy.device)


class GroupRelativeLoss(nn.Module):
    """The clipped group-relative objective of some rows of a minibatch, as a module
    because DistributedDataParallel hooks ``forward``. Summed over the rows and
    divided by the minibatch's size over the processes, so that the gradients the
    processes average are those of the whole minibatch's mean."""

    def __init__(self, policy: VLAPolicy, spec: ActionSpec, s: VLAGRPOSettings) -> None:
        super().__init__()
        self.policy, self.spec, self.s = policy, spec, s

    def forward(self, batch: dict[str, Any], rows: torch.Tensor, old: torch.Tensor,
                ref: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, statistics)``; the statistics are summed over the rows: policy
        loss, entropy, clipped ratios, KL to the reference."""
        new, entropy = log_probs(self.policy, batch, rows, self.spec)
        ratio = (new - old[rows]).exp()
        advantage = batch["advantages"][rows]
        clipped = ratio.clamp(1 - self.s.clip_range, 1 + self.s.clip_range)
        policy_loss = -torch.min(ratio * advantage, clipped * advantage)
        loss = policy_loss.sum() - self.s.ent_coef * entropy.sum()
        kl = kl_estimate(new, ref[rows]) if ref is not None else torch.zeros_like(new)
        loss = loss + self.s.kl_coef * kl.sum()
        stats = torch.stack([policy_loss.sum(), entropy.sum(),
                             ((ratio - 1).abs() > self.s.clip_range).float().sum(), kl.sum(),
                             new.new_tensor(float(len(rows)))]).detach()
        return loss * scale, stats


def minibatches(total: int, batch_size: int, processes: int,
                generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled pass over ``total`` rows in minibatches of ``batch_size``; a last
    one too small to give every process a row joins the one before."""
    order = torch.randperm(total, generator=generator)
    batches = [order[begin:begin + batch_size] for begin in range(0, total, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < processes:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def grpo_update(policy: VLAPolicy, reference: VLAPolicy | None,
                optimizer: torch.optim.Optimizer, batch: dict[str, Any], spec: ActionSpec,
                s: VLAGRPOSettings, generator: torch.Generator,
                objective: nn.Module) -> dict[str, float]:
    """``s.n_epochs`` passes of ``objective`` (the :class:`GroupRelativeLoss` of
    ``policy``, wrapped for data parallelism under torchrun); the statistics' means
    over the steps."""
    here = distributed.world()
    old = all_log_probs(policy, batch, spec)
    ref = all_log_probs(reference, batch, spec) if reference is not None else None
    total = len(batch["texts"])  # every process has a chunk: at least 2 steps each
    sums = torch.zeros(5, device=policy.device)
    policy.train()
    for _ in range(s.n_epochs):
        for rows in minibatches(total, s.batch_size, here.size, generator):
            loss, stats = objective(batch, rows[here.rank::here.size], old, ref,
                                    here.size / len(rows))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), s.max_grad_norm)
            optimizer.step()
            sums += stats
    sums = distributed.average(sums)  # the mean of the sums: the ratios below hold
    means = {"policy_loss": sums[0], "entropy": sums[1], "clip_fraction": sums[2]}
    if ref is not None:
        means["kl"] = sums[3]
    return {key: float(value / sums[4]) for key, value in means.items()}


def train(config: VLAGRPOConfig, run_dir: Path, resume: bool, checked: Checked,
          progress_bar: bool = True, log: Any = print) -> dict[str, Any]:
    s, device, world = config.grpo, checked.device, distributed.world()
    log = distributed.main_only(log)
    policy = runs.build_policy(config, device)
    reference = (VLAPolicy.load(config.vla.init, device=device).eval().requires_grad_(False)
                 if s.kl_coef > 0 else None)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=s.lr)
    start, _trainer = runs.resume(run_dir, policy, optimizer, log) if resume else (0, {})
    env = gym.make(config.env, **config.env_kwargs)
    spec = ActionSpec.of(env.action_space)
    env.close()
    objective = distributed.data_parallel(GroupRelativeLoss(policy, spec, s), device)
    logger = runs.make_logger(run_dir)
    reward = checked.reward
    log(f"vmalign train: vla-grpo on {config.env} with the {reward.name} reward, {s.groups} "
        f"groups x {s.group_size} rollouts per iteration, "
        f"{policy.num_parameters() / 1e6:.1f} M parameters, {device}"
        + (f", {world.size} processes" if world.is_distributed else ""))
    started = time.perf_counter()
    steps = 0
    for iteration in range(start, s.iterations):
        groups, returns = play_groups(policy, config, reward, iteration, world)
        ground_truth = np.array([[e.ground_truth_return for e in group] for group in groups])
        advantages = group_advantages(returns)
        batch = step_batch(policy, groups, advantages, spec)
        # Seeded per iteration: a resumed run shuffles its minibatches as an unbroken one.
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + iteration)
        stats = grpo_update(policy, reference, optimizer, batch, spec, s, generator, objective)
        steps += len(batch["texts"])
        done = iteration + 1
        episodes = [e for group in groups for e in group]
        logger.record("rollout/gt_return", float(ground_truth.mean()))
        if reward.needs_frames:
            logger.record("rollout/learned_return", float(returns.mean()))
        logger.record("rollout/success_rate", success_rate(episodes))
        logger.record("grpo/groups_with_signal", float((returns.std(axis=1) > 0).mean()))
        for key, value in stats.items():
            logger.record(f"grpo/{key}", value)
        logger.record("time/total_timesteps", done)
        logger.dump(done)
        log(f"  iteration {done}/{s.iterations}: return {ground_truth.mean():.3f}"
            + (f" (learned {returns.mean():.3f})" if reward.needs_frames else "") + ", success "
            f"{success_rate(episodes):.2f}, {len(batch['texts'])} steps")
        if done % config.checkpoint_every == 0 or done == s.iterations:
            runs.save_checkpoint(run_dir, done, policy, optimizer, {})
    seconds = time.perf_counter() - started
    summary = {"algo": "vla-grpo", "env": config.env, "reward": reward.name,
               "iterations": s.iterations,
               "steps": s.iterations, "env_steps": steps, "resumed_from": start,
               "seconds": round(seconds, 1), "device": device, "processes": world.size}
    if not world.is_main:
        return summary  # the main process evaluates and saves
    results = runs.evaluate(policy, config)
    starting = runs.evaluate(reference if reference is not None
                             else VLAPolicy.load(config.vla.init, device=device), config)
    return runs.finish(run_dir, policy, {**summary, "eval": results,
                                         "eval_starting_policy": starting})
