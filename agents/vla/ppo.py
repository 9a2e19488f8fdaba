"""``algo: vla-ppo``: PPO fine-tuning of a (behaviour-cloned) VLA policy against any
reward module, in the CleanRL style: one loop, read top to bottom.

The envs and the reward come from the same functions as SB3 PPO runs
(:func:`agents.vector.make_training_env`, :func:`agents.train.build_reward`), so every
reward module plugs in the same way: step rewards through the batched
``VecRewardWrapper``, episode rewards (RAPL) relabelled into the rollout before
advantages are computed. The instruction of each env's current episode is fed to the
policy with its pixels; discrete envs' action masks are applied.

Each update: a rollout of ``n_steps`` per env (actions sampled), GAE(``gamma``,
``gae_lambda``) advantages (time-limit truncations bootstrap from the value of the
final observation), then ``n_epochs`` passes of clipped-surrogate PPO over minibatches.
The first ``critic_warmup`` updates train the value head alone: a BC policy comes with
no critic, and policy gradients through a random critic would undo what it learned.
Mixed precision (bf16 autocast) on CUDA.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.vla import runs
from agents.vla.config import VLARunConfig
from agents.vla.model import ActionSpec


def _autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(config: VLARunConfig, run_dir: Path, resume: bool = False, log: Any = print,
          device: str = "cpu") -> dict[str, Any]:
    from agents.train import build_reward
    from agents.vector import check_env_and_reward, make_training_env, needs_rendered_frames

    s = config.ppo
    reward = build_reward(config, device)
    check_env_and_reward(config, reward, needs_rendered_frames(config, reward))
    policy = runs.build_policy(config, device)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=s["lr"],
                                 eps=1e-5)
    start, trainer = runs.resume(run_dir, policy, optimizer, log) if resume else (0, {})
    if not trainer:  # a new run: seeded sampling (a resumed one restored its RNG states)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
    updates = int(trainer.get("updates", 0))
    venv, layer = make_training_env(config, reward, s["n_envs"], seed=config.seed + start,
                                    vec_env=s["vec_env"])
    spec = ActionSpec.of(venv.action_space)
    logger = runs.make_logger(run_dir)
    n_envs, n_steps = s["n_envs"], s["n_steps"]
    log(f"vmalign train: vla-ppo on {config.env} with the {reward.name} reward, "
        f"{policy.num_parameters() / 1e6:.1f} M parameters, {device}")

    obs = venv.reset()
    reset_infos = venv.unwrapped.reset_infos
    instructions = [str(info.get("instruction", "")) for info in reset_infos]
    masks = [info.get("action_mask") for info in reset_infos]
    gt_returns: deque[float] = deque(maxlen=100)
    learned_returns: deque[float] = deque(maxlen=100)
    successes: deque[float] = deque(maxlen=100)
    running_learned = np.zeros(n_envs)
    step, started = start, time.perf_counter()

    try:
        while step < s["n_timesteps"]:
            # -- rollout ------------------------------------------------------------
            images = np.zeros((n_steps, n_envs, *obs.shape[1:]), np.uint8)
            texts: list[list[str]] = []
            step_masks: list[np.ndarray | None] = []
            # scored: what the reward module gave (the learned return logged sums these);
            # bootstraps: gamma * V(final observation) where a time limit cut an episode.
            indices, log_probs, values, scored, bootstraps, dones = [], [], [], [], [], []
            policy.eval()
            for t in range(n_steps):
                images[t] = obs
                texts.append(list(instructions))
                mask = np.stack(masks) if spec.kind == "discrete" and masks[0] is not None else None
                step_masks.append(mask)
                with torch.no_grad(), _autocast(policy.device):
                    features = policy.features(policy.preprocess(obs), policy.tokenize(instructions),
                                               instructions)
                    dist = policy.distribution(features.float(), spec, mask)
                    index = dist.sample()
                    values.append(policy.value(features.float()))
                log_probs.append(dist.log_prob(index))
                indices.append(index)
                obs, reward_t, done, infos = venv.step(dist.to_env(index))
                scored.append(np.array(reward_t, np.float32))  # a copy
                bootstrap = np.zeros(n_envs, np.float32)
                truncated = [i for i, info in enumerate(infos) if done[i]
                             and info.get("TimeLimit.truncated") and "terminal_observation" in info]
                if truncated:  # the episodes would have gone on: one batched value call
                    finals = np.stack([infos[i]["terminal_observation"] for i in truncated])
                    ended = [instructions[i] for i in truncated]
                    with torch.no_grad(), _autocast(policy.device):
                        final_values = policy.value(policy.features(
                            policy.preprocess(finals), policy.tokenize(ended), ended).float())
                    bootstrap[truncated] = s["gamma"] * final_values.cpu().numpy()
                bootstraps.append(bootstrap)
                for i, info in enumerate(infos):
                    if done[i]:
                        if "episode" in info:  # SB3's Monitor: the env's own reward
                            gt_returns.append(float(info["episode"]["r"]))
                        successes.append(float(info.get("is_success", False)))
                        new = reset_infos[i] if reset_infos else {}
                        instructions[i] = str(new.get("instruction", instructions[i]))
                        masks[i] = new.get("action_mask")
                    else:
                        masks[i] = info.get("action_mask")
                dones.append(np.asarray(done, bool))
            step += n_steps * n_envs
            rewards_np = np.stack(scored) + np.stack(bootstraps)
            step_learned = np.stack(scored)
            if reward.needs_trajectory:  # RAPL: whole-episode rewards, swapped in now
                learned, env_rewards = layer.relabel(reward)
                rewards_np += learned - env_rewards
                step_learned = learned
            for t in range(n_steps):
                running_learned += step_learned[t]
                for i in np.flatnonzero(dones[t]):
                    learned_returns.append(float(running_learned[i]))
                    running_learned[i] = 0.0

            # -- advantages (GAE) ---------------------------------------------------
            with torch.no_grad(), _autocast(policy.device):
                last = policy.value(policy.features(policy.preprocess(obs),
                                                    policy.tokenize(instructions),
                                                    instructions).float()).cpu().numpy()
            values_np = torch.stack(values).cpu().numpy()
            dones_np = np.stack(dones).astype(np.float32)
            advantages = np.zeros_like(rewards_np)
            gae = np.zeros(n_envs, np.float32)
            for t in reversed(range(n_steps)):
                next_value = last if t == n_steps - 1 else values_np[t + 1]
                not_done = 1.0 - dones_np[t]
                delta = rewards_np[t] + s["gamma"] * next_value * not_done - values_np[t]
                gae = delta + s["gamma"] * s["gae_lambda"] * not_done * gae
                advantages[t] = gae
            returns = advantages + values_np

            # -- PPO update ---------------------------------------------------------
            flat_images = torch.from_numpy(images.reshape(-1, *images.shape[2:]))
            flat_texts = [text for row in texts for text in row]
            flat_index = torch.stack(indices).flatten(0, 1)
            flat_old = torch.stack(log_probs).flatten().float()
            flat_adv = torch.as_tensor(advantages.reshape(-1), device=policy.device)
            flat_ret = torch.as_tensor(returns.reshape(-1), device=policy.device)
            flat_mask = (None if step_masks[0] is None else
                         torch.as_tensor(np.concatenate(step_masks), device=policy.device))
            critic_only = updates < s["critic_warmup"]
            policy.train()
            clip_fractions, kls, policy_losses, value_losses, entropies = [], [], [], [], []
            total = len(flat_texts)
            for _ in range(s["n_epochs"]):
                order = torch.randperm(total)
                stop_early = False
                for begin in range(0, total, s["batch_size"]):
                    rows = order[begin:begin + s["batch_size"]]
                    texts_b = [flat_texts[i] for i in rows.tolist()]
                    with _autocast(policy.device):
                        features = policy.features(policy.preprocess(flat_images[rows]),
                                                   policy.tokenize(texts_b), texts_b).float()
                    value = policy.value(features)
                    value_loss = 0.5 * ((value - flat_ret[rows]) ** 2).mean()
                    if critic_only:
                        loss = s["vf_coef"] * value_loss
                    else:
                        dist = policy.distribution(features, spec, None if flat_mask is None
                                                   else flat_mask[rows])
                        new_log_prob = dist.log_prob(flat_index[rows])
                        ratio = (new_log_prob - flat_old[rows]).exp()
                        adv = flat_adv[rows]
                        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                        clipped = ratio.clamp(1 - s["clip_range"], 1 + s["clip_range"])
                        policy_loss = -torch.min(ratio * adv, clipped * adv).mean()
                        entropy = dist.entropy().mean()
                        loss = policy_loss + s["vf_coef"] * value_loss - s["ent_coef"] * entropy
                        with torch.no_grad():
                            log_ratio = new_log_prob - flat_old[rows]
                            kls.append(float(((ratio - 1) - log_ratio).mean()))
                            clip_fractions.append(float(((ratio - 1).abs() > s["clip_range"])
                                                        .float().mean()))
                        policy_losses.append(float(policy_loss.detach()))
                        entropies.append(float(entropy.detach()))
                    value_losses.append(float(value_loss.detach()))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), s["max_grad_norm"])
                    optimizer.step()
                    if s["target_kl"] is not None and kls and kls[-1] > 1.5 * s["target_kl"]:
                        stop_early = True
                        break
                if stop_early:
                    break
            updates += 1

            # -- logs and checkpoints -----------------------------------------------
            if gt_returns:
                logger.record("rollout/gt_return", float(np.mean(gt_returns)))
            if successes:
                logger.record("rollout/success_rate", float(np.mean(successes)))
            if learned_returns:
                logger.record("rollout/learned_return", float(np.mean(learned_returns)))
            logger.record("train/value_loss", float(np.mean(value_losses)))
            logger.record("train/critic_only", int(critic_only))
            if policy_losses:
                logger.record("train/policy_loss", float(np.mean(policy_losses)))
                logger.record("train/entropy", float(np.mean(entropies)))
                logger.record("train/approx_kl", float(np.mean(kls)))
                logger.record("train/clip_fraction", float(np.mean(clip_fractions)))
            logger.record("time/fps", round((step - start) / (time.perf_counter() - started), 1))
            logger.record("time/total_timesteps", step)
            logger.dump(step)
            if step // config.checkpoint_every > (step - n_steps * n_envs) // config.checkpoint_every \
                    or step >= s["n_timesteps"]:
                runs.save_checkpoint(run_dir, step, policy, optimizer, {"updates": updates})
    finally:
        venv.close()
    seconds = time.perf_counter() - started
    results = runs.evaluate(policy, config)
    return runs.finish(run_dir, policy, {
        "algo": "vla-ppo", "env": config.env, "reward": reward.name, "steps": step,
        "resumed_from": start, "updates": updates, "seconds": round(seconds, 1),
        "fps": round((step - start) / seconds, 1) if seconds else None, "device": device,
        "gt_return": float(np.mean(gt_returns)) if gt_returns else None,
        "success_rate": float(np.mean(successes)) if successes else None,
        "eval": results,
    })
