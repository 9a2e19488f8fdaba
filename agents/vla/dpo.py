"""``algo: vla-dpo``: trajectory-wise DPO (as in GRAPE) from preferences over the
policy's own rollouts.

1. **Rollouts.** The starting policy (``vla.init``, e.g. a BC policy) plays
   ``dpo.rollouts`` episodes on the config's env, ``dpo.rollouts_per_start`` of them
   from each start state (same env seed, sampled actions), recorded durably in
   ``RUN/rollouts`` (a dataset as written by ``vmalign collect``, plus each step's
   action mask).
2. **Preferences.** ``dpo.pairs`` pairs of distinct rollouts *from the same start*
   are labelled by a B-Pref simulated teacher on their ground-truth rewards and
   appended durably to ``RUN/preferences.jsonl`` (``{"a": i, "b": j, "label": y,
   "source": teacher}``; 1 = a preferred, 0 = b, 0.5 = equal). Sharing the start
   matters: between different starts the return mostly reflects where an episode
   began, not what the policy did, and DPO would learn that confound. Pairs of
   identical return carry no preference and are recorded as ties (0.5); skipped pairs
   go to ``preferences.skipped.jsonl``. Labels from people can be appended to
   ``preferences.jsonl`` in the same form.
3. **DPO.** With ``pi_ref`` the frozen starting policy and ``log pi(tau)`` the sum of
   the trajectory's per-step action log-probabilities, each decided pair (winner w,
   loser l) contributes::

       -log sigmoid(beta * [(log pi(tau_w) - log pi_ref(tau_w))
                            - (log pi(tau_l) - log pi_ref(tau_l))])

   (ties are left out), plus, with ``dpo.nll_coef`` > 0, that coefficient times the
   winner's mean per-step negative log-likelihood (the regulariser of RPO, Pang et
   al. 2024, against DPO lowering the winner's likelihood along with the loser's).
   Adam, ``dpo.epochs`` passes over the pairs in batches of ``dpo.batch_pairs``; a
   checkpoint after every epoch (``checkpoint_every`` counts
   epochs here). Resuming reuses the recorded rollouts and labels. A frozen registry
   encoder encodes each paired rollout's frames once for the whole run (up to
   ``dpo.encoder_cache_gib``).

Data-parallel under ``torchrun --nproc_per_node=N -m agents train --algo vla-dpo``
(:mod:`agents.distributed`): each process plays a share of the rollouts (chunks of
:data:`ROLLOUT_CHUNK`, each with its own sampler, so the rollouts are those one
process records) and the main process writes them; the main process labels the
pairs; in every batch each process takes every N-th pair and the summed gradients
make the step one process takes. Only the main process logs, checkpoints and
evaluates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from agents import distributed
from agents.dataset import (DatasetWriter, EpisodeDataset, append_line, cut_torn_line,
                            read_lines)
from agents.labelling import make_teacher
from agents.rollouts import NO_FRAMES, Episode
from agents.runs import Checked
from agents.vla import runs
from agents.vla.config import VLADPOConfig
from agents.vla.model import ActionSpec, VLAPolicy, indices_to_actions, total_log_prob
from agents.vla.rollout import rollout_episodes

ROLLOUTS = "rollouts"
PREFERENCES = "preferences.jsonl"


ROLLOUT_CHUNK = 16
"""Rollouts played per call. Each chunk of the run's start list has its own action
sampler, keyed by the run's seed and the chunk's place, so the recorded rollouts do
not depend on which process plays a chunk or on where a run was resumed."""


def missing_positions(writer: DatasetWriter, starts: list[int]) -> list[int]:
    """Places in ``starts`` (one per rollout, its start seed) with no recorded rollout."""
    recorded: dict[int, int] = {}
    for record in writer.episodes:
        recorded[int(record["seed"])] = recorded.get(int(record["seed"]), 0) + 1
    missing = []
    for position, seed in enumerate(starts):
        if recorded.get(seed, 0) > 0:
            recorded[seed] -= 1
        else:
            missing.append(position)
    return missing


def record_rollouts(policy: VLAPolicy, config: VLADPOConfig, run_dir: Path, log: Any) -> Any:
    """The rollout dataset, recorded now as far as it is not on disk yet. Under torchrun
    each process plays a share of the chunks and the main process writes them all."""
    s, world = config.dpo, distributed.world()
    env = gym.make(config.env, **config.env_kwargs)
    obs, _ = env.reset(seed=config.seed)
    space = env.action_space
    spec = ActionSpec.of(space)
    env.close()
    features = {"observation.image": ("uint8", obs.shape),
                "action": (str(space.dtype), space.shape)}
    writer = (DatasetWriter(run_dir / ROLLOUTS, features,
                            {"env": config.env, "env_kwargs": config.env_kwargs,
                             "policy": "vla (dpo rollouts)"})
              if world.is_main else None)
    starts = [config.seed + i // s.rollouts_per_start for i in range(s.rollouts)]
    missing = distributed.from_main(lambda: missing_positions(writer, starts))
    chunks: dict[int, list[int]] = {}
    for position in missing:
        chunks.setdefault(position // ROLLOUT_CHUNK, []).append(position)
    if missing:
        log(f"  recording {len(missing)} rollouts of the starting policy")
    order = sorted(chunks)
    for begin in range(0, len(order), world.size):
        turn = order[begin:begin + world.size]  # one chunk per process at a time
        mine = []
        if world.rank < len(turn):
            key = np.random.SeedSequence([config.seed, turn[world.rank]]).generate_state(1)[0]
            generator = torch.Generator(device=policy.device).manual_seed(int(key))
            mine = rollout_episodes(policy, config.env, config.env_kwargs,
                                    [starts[p] for p in chunks[turn[world.rank]]],
                                    deterministic=not s.sample_rollouts,
                                    keep_trajectories=True, generator=generator)
        played = [episode for share in distributed.gather(mine) for episode in share]
        if writer is None:
            continue
        for episode in played:
            actions = indices_to_actions(episode.action_indices, spec, policy.config.action_bins)
            extras = ({"action_mask": episode.action_masks}
                      if episode.action_masks is not None else {})
            writer.add_episode(episode.observations, actions, episode.env_rewards,
                               np.array([False] * (len(episode) - 1) + [episode.success]),
                               episode.instruction, episode.seed, extras)
    distributed.barrier()  # the others read what the main process has just written
    return EpisodeDataset(run_dir / ROLLOUTS, cache_episodes=s.rollouts)


def label_pairs(dataset: Any, config: VLADPOConfig, run_dir: Path) -> list[dict[str, Any]]:
    """The labelled pairs, drawn and labelled now as far as they are not on disk yet."""
    s = config.dpo
    path = run_dir / PREFERENCES
    cut_torn_line(path)
    records = read_lines(path)
    asked = len(records) + len(read_lines(path.with_suffix(".skipped.jsonl")))
    if asked >= s.pairs:
        return records
    episodes = [Episode(NO_FRAMES, dataset.episode(i)["reward"])
                for i in range(dataset.num_episodes)]
    length = max(len(e.env_rewards) for e in episodes)
    teacher = make_teacher(s.teacher, dict(s.teacher_kwargs), episodes, length, config.seed)
    by_start: dict[int, list[int]] = {}
    for index, record in enumerate(dataset.episodes):
        by_start.setdefault(int(record["seed"]), []).append(index)
    groups = [group for group in by_start.values() if len(group) >= 2]
    rng = np.random.default_rng(config.seed + asked)
    for _ in range(s.pairs - asked):
        group = groups[int(rng.integers(len(groups)))]
        a, b = (int(i) for i in rng.choice(group, size=2, replace=False))
        # Zero rewards in front align the ends (what a myopic teacher weighs most).
        rewards = np.zeros((2, length), np.float32)
        for row, index in enumerate((a, b)):
            values = episodes[index].env_rewards
            rewards[row, length - len(values):] = values
        label = float(teacher.label(None, None, [""], rewards[:1], rewards[1:])[0])
        if rewards[0].sum() == rewards[1].sum() and not np.isnan(label):
            label = 0.5
        record = {"a": a, "b": b, "label": label, "source": teacher.name}
        if np.isnan(label):  # a skip: remembered so the budget counts it, but no label
            append_line(path.with_suffix(".skipped.jsonl"), record | {"label": None})
            continue
        append_line(path, record)
        records.append(record)
    return records


class TrajectoryInputs:
    """What ``log pi(tau)`` needs of each recorded rollout: its preprocessed frames, the
    instruction's token ids, the recorded actions' bins and masks.

    With ``encoder_tokens`` (a frozen registry encoder shared by the policy and the
    reference) each rollout's frames are encoded once, on first use, and the tokens are
    kept: they never change while DPO trains the rest, and encoding them dominates every
    pass over a pair (a 4.7 M-parameter ImageNet network against the small transformer).
    Without, every pass preprocesses and encodes the frames anew."""

    def __init__(self, policy: VLAPolicy, dataset: EpisodeDataset, tasks: list[str],
                 spec: ActionSpec, encoder_tokens: bool) -> None:
        self.policy, self.dataset, self.tasks, self.spec = policy, dataset, tasks, spec
        self.encoder_tokens = encoder_tokens
        self._kept: dict[int, torch.Tensor] = {}

    def log_prob(self, policy: VLAPolicy, index: int) -> torch.Tensor:
        """``log pi(tau)`` of rollout ``index`` under ``policy``: the sum over its steps of
        the recorded actions' log-probabilities (differentiable when gradients are on)."""
        episode = self.dataset.episode(index)
        images, kept = None, None
        if not self.encoder_tokens:
            images = policy.preprocess(episode["observation.image"])
        else:
            if index not in self._kept:
                self._kept[index] = self.policy.encoder_tokens(
                    self.policy.preprocess(episode["observation.image"]))
            kept = self._kept[index]
        tokens = policy.tokenize([self.tasks[index]] * len(episode["action"]))
        indices = policy.action_indices(episode["action"], self.spec)
        masks = episode.get("action_mask")
        masks = None if masks is None else torch.as_tensor(masks, device=policy.device)
        return total_log_prob(policy, images, tokens, indices, self.spec, masks,
                              encoder_tokens=kept)


def keeps_encoder_tokens(policy: VLAPolicy, reference: VLAPolicy, frames: int,
                         limit_gib: float, log: Any) -> bool:
    """Whether DPO keeps each rollout's encoder tokens: both models have the same frozen
    registry encoder and the tokens of all ``frames`` fit in ``limit_gib``."""
    def encoder(model: VLAPolicy) -> tuple[Any, ...]:
        c = model.config
        return c.vision_encoder, c.vision_weights, c.vision_stage, c.vision_grid, c.image_size

    if not (policy.image_encoder_frozen and reference.image_encoder_frozen
            and encoder(policy) == encoder(reference)):
        return False
    gib = policy.encoder_tokens_gib(frames)
    if gib > limit_gib:
        log(f"  the frozen encoder encodes every pass (its tokens for the {frames} rollout "
            f"frames would take {gib:.2f} GiB, over dpo.encoder_cache_gib={limit_gib:g})")
        return False
    return True


def dpo_loss(policy_w: torch.Tensor, reference_w: torch.Tensor, policy_l: torch.Tensor,
             reference_l: torch.Tensor, beta: float) -> torch.Tensor:
    """``-log sigmoid(beta * ((log pi_w - log ref_w) - (log pi_l - log ref_l)))``."""
    return -F.logsigmoid(beta * ((policy_w - reference_w) - (policy_l - reference_l)))


def train(config: VLADPOConfig, run_dir: Path, resume: bool, checked: Checked,
          progress_bar: bool = True, log: Any = print) -> dict[str, Any]:
    s, device, world = config.dpo, checked.device, distributed.world()
    log = distributed.main_only(log)
    policy = runs.build_policy(config, device)
    reference = VLAPolicy.load(config.vla.init, device=device).eval().requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=s.lr)
    start, _trainer = runs.resume(run_dir, policy, optimizer, log) if resume else (0, {})
    env = gym.make(config.env, **config.env_kwargs)
    spec = ActionSpec.of(env.action_space)
    env.close()
    started = time.perf_counter()
    log(f"vmalign train: vla-dpo on {config.env}, beta {s.beta}, {device}"
        + (f", {world.size} processes" if world.is_distributed else ""))

    # Rollouts and labels come from the *starting* policy: on resume, the reference.
    dataset = record_rollouts(reference, config, run_dir, log)
    pairs = [r for r in distributed.from_main(lambda: label_pairs(dataset, config, run_dir))
             if r["label"] != 0.5]
    tasks = [dataset.tasks[int(dataset.episode(i)["task_index"][0])]
             for i in range(dataset.num_episodes)]
    paired = sorted({pair[key] for pair in pairs for key in ("a", "b")})
    frames = sum(int(dataset.episodes[i]["length"]) for i in paired)
    inputs = TrajectoryInputs(policy, dataset, tasks, spec, keeps_encoder_tokens(
        policy, reference, frames, s.encoder_cache_gib, log))
    with torch.no_grad():  # each process scores a share
        mine = {i: float(inputs.log_prob(reference, i)) for i in paired[world.rank::world.size]}
    reference_logp = {i: value for share in distributed.gather(mine) for i, value in share.items()}
    returns = np.array([dataset.episode(i)["reward"].sum() for i in range(dataset.num_episodes)])
    log(f"  {len(pairs)} decided pairs over {dataset.num_episodes} rollouts (ground-truth "
        f"return {returns.mean():.3f} +- {returns.std():.3f}, success "
        f"{np.mean([r['success'] for r in dataset.episodes]):.2f})")
    logger = runs.make_logger(run_dir)
    rng = np.random.default_rng(config.seed)
    for _ in range(start):  # the same pair orders as an unbroken run
        rng.permutation(len(pairs))
    policy.train()
    for epoch in range(start, s.epochs):
        losses, correct = [], []
        order = rng.permutation(len(pairs))
        for begin in range(0, len(order), s.batch_pairs):
            batch = [pairs[i] for i in order[begin:begin + s.batch_pairs]]
            mine = dpo_step(policy, optimizer, inputs, batch, reference_logp, s.beta,
                            s.nll_coef, world)
            for batch_losses, batch_correct in distributed.gather(mine):
                losses += batch_losses
                correct += batch_correct
        done = epoch + 1
        logger.record("dpo/loss", float(np.mean(losses)) if losses else float("nan"))
        logger.record("dpo/preference_accuracy",
                      float(np.mean(correct)) if correct else float("nan"))
        logger.record("time/total_timesteps", done)
        logger.dump(done)
        if done % config.checkpoint_every == 0 or done == s.epochs:
            runs.save_checkpoint(run_dir, done, policy, optimizer, {})
    seconds = time.perf_counter() - started
    summary = {"algo": "vla-dpo", "env": config.env, "epochs": s.epochs, "steps": s.epochs,
               "resumed_from": start, "pairs": len(pairs), "rollouts": dataset.num_episodes,
               "seconds": round(seconds, 1), "device": device, "processes": world.size}
    if not world.is_main:
        return summary  # the main process evaluates and saves
    results = runs.evaluate(policy, config)
    starting = runs.evaluate(reference, config)
    return runs.finish(run_dir, policy, {**summary, "eval": results,
                                         "eval_starting_policy": starting})


def dpo_step(policy: VLAPolicy, optimizer: torch.optim.Optimizer, inputs: TrajectoryInputs,
             batch: list[dict[str, Any]], reference_logp: dict[int, float], beta: float,
             nll_coef: float, world: distributed.World = distributed.World()
             ) -> tuple[list[float], list[bool]]:
    """One optimiser step on a batch of labelled pairs; returns, for this process's
    pairs, each pair's loss and whether the policy now prefers the winner more than
    the reference does. Under torchrun each process takes every N-th pair and the
    gradients are summed over processes: the step one process takes on the batch."""
    optimizer.zero_grad(set_to_none=True)
    losses, correct = [], []
    for pair in batch[world.rank::world.size]:
        winner, loser = (pair["a"], pair["b"]) if pair["label"] > 0.5 else (pair["b"], pair["a"])
        logp_w = inputs.log_prob(policy, winner)
        logp_l = inputs.log_prob(policy, loser)
        loss = dpo_loss(logp_w, torch.tensor(reference_logp[winner]), logp_l,
                        torch.tensor(reference_logp[loser]), beta)
        if nll_coef:
            steps = int(inputs.dataset.episodes[winner]["length"])
            loss = loss - nll_coef * logp_w / steps
        (loss / len(batch)).backward()
        losses.append(float(loss.detach()))
        margin = ((float(logp_w.detach()) - reference_logp[winner])
                  - (float(logp_l.detach()) - reference_logp[loser]))
        correct.append(margin > 0)
    distributed.sum_gradients(policy.parameters())
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    optimizer.step()
    return losses, correct
