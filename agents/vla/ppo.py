"""``algo: vla-ppo``: PPO fine-tuning of a (behaviour-cloned) VLA policy against any
reward module, in the CleanRL style: one loop, read top to bottom.

The envs and the reward come from the same functions as SB3 PPO runs
(:func:`agents.sb3.vector.make_training_env`, :func:`agents.runs.build_reward`), so
every reward module plugs in the same way: step rewards through the batched
``VecRewardWrapper``, episode rewards (RAPL) relabelled into the rollout before
advantages are computed. The instruction of each env's current episode is fed to the
policy with its pixels; discrete envs' action masks are applied.

Each update (:func:`train`'s loop): :func:`collect_rollout` plays ``n_steps`` per env
(actions sampled), :func:`compute_gae` gives GAE(``gamma``, ``gae_lambda``)
advantages (time-limit truncations bootstrap from the value of the final
observation), then :func:`ppo_update` runs ``n_epochs`` passes of clipped-surrogate
PPO over minibatches; a frozen registry encoder's tokens for each rollout frame are
kept from the rollout, so the update's passes never run the encoder again. The first
``critic_warmup`` updates train the value head alone:
a BC policy comes with no critic, and policy gradients through a random critic would
undo what it learned. Mixed precision (bf16 autocast) on CUDA.

With ``ppo.critic=state`` the value function is :class:`StateCritic`, an MLP on the
simulator's state vector (the training envs run with ``obs_mode="rgb+state"``): an
asymmetric actor-critic (Pinto et al. 2018). The policy still reads only the pixels
and the instruction; the critic exists for training only. A value head on the
policy's own pixel features explained about 1% of the return's variance on Reach,
so PPO's advantages were mostly noise (``docs/results.md``); the state holds what
the return depends on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.utils import explained_variance
from torch import nn

from agents.runs import Checked
from agents.sb3.vector import make_training_env
from agents.vla import runs
from agents.vla.config import VLAPPOConfig, VLAPPOSettings
from agents.vla.model import ActionSpec, VLAPolicy


def _autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclasses.dataclass
class EnvState:
    """What carries over from one rollout to the next: the envs' last observations,
    each env's current instruction and action mask, and the episode statistics."""

    obs: np.ndarray
    instructions: list[str]
    masks: list[np.ndarray | None]
    running_learned: np.ndarray
    gt_returns: deque[float] = dataclasses.field(default_factory=lambda: deque(maxlen=100))
    learned_returns: deque[float] = dataclasses.field(default_factory=lambda: deque(maxlen=100))
    successes: deque[float] = dataclasses.field(default_factory=lambda: deque(maxlen=100))


@dataclasses.dataclass
class Rollout:
    """``n_steps`` x ``n_envs`` steps, as PPO's update reads them."""

    images: np.ndarray
    texts: list[list[str]]
    masks: list[np.ndarray | None]
    indices: torch.Tensor
    log_probs: torch.Tensor
    values: np.ndarray
    rewards: np.ndarray
    """The reward module's rewards plus the bootstrap of time-limit truncations."""
    dones: np.ndarray
    states: np.ndarray | None = None
    """The state critic's inputs (n_steps, n_envs, state size); None without one."""
    encoder_tokens: torch.Tensor | None = None
    """A frozen encoder's tokens for ``images`` (n_steps, n_envs, N, C), kept from the
    rollout's forward passes for the update's; None for an encoder that trains."""


class StateCritic(nn.Module):
    """The value function of ``ppo.critic=state``: an MLP (tanh, as SB3's) on the
    simulator's state vector."""

    def __init__(self, state_size: int, net_arch: list[int], device: torch.device | str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = state_size
        for size in net_arch:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        self.net = nn.Sequential(*layers, nn.Linear(width, 1)).to(device)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        # float32 even inside the policy's bf16 autocast: values feed GAE and numpy
        with torch.autocast(states.device.type, enabled=False):
            return self.net(states.float()).squeeze(-1)


def build_critic(config: VLAPPOConfig, device: torch.device) -> StateCritic | None:
    """The run's state critic (None with ``ppo.critic=policy``), seeded by the run's
    seed; a resumed run then loads its checkpointed weights into it."""
    if config.ppo.critic != "state":
        return None
    env = gym.make(config.env, **config.training_env_kwargs())
    try:
        size = env.observation_space["state"].shape[0]
    finally:
        env.close()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return StateCritic(size, config.ppo.critic_net_arch, device)


def pixels(obs: Any) -> np.ndarray:
    """The policy's part of a (batch of) observation(s): all of it, or the ``rgb``
    entry of the ``rgb+state`` dict a state critic's envs return."""
    return obs["rgb"] if isinstance(obs, dict) else obs


def stack_observations(observations: list[Any]) -> Any:
    """Single observations (arrays, or dicts of arrays) as one batch."""
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


def initial_state(venv: Any) -> EnvState:
    """Resets ``venv``: its first observations, instructions and action masks."""
    obs = venv.reset()
    reset_infos = venv.unwrapped.reset_infos
    return EnvState(obs=obs,
                    instructions=[str(info.get("instruction", "")) for info in reset_infos],
                    masks=[info.get("action_mask") for info in reset_infos],
                    running_learned=np.zeros(len(reset_infos)))


def _value(policy: VLAPolicy, critic: StateCritic | None, obs: Any,
           texts: list[str]) -> torch.Tensor:
    """The value of a batch of observations: the state critic's, else the policy's."""
    with torch.no_grad():
        if critic is not None:
            return critic(torch.as_tensor(obs["state"], dtype=torch.float32,
                                          device=policy.device))
        with _autocast(policy.device):
            return policy.value(policy.features(policy.preprocess(pixels(obs)),
                                                policy.tokenize(texts), texts).float())


def collect_rollout(policy: VLAPolicy, venv: Any, layer: Any, reward: Any, spec: ActionSpec,
                    state: EnvState, s: VLAPPOSettings, critic: StateCritic | None = None
                    ) -> Rollout:
    """Plays ``s.n_steps`` steps in every env with sampled actions."""
    n_envs = len(state.instructions)
    images = np.zeros((s.n_steps, n_envs, *pixels(state.obs).shape[1:]), np.uint8)
    states = (None if critic is None else
              np.zeros((s.n_steps, n_envs, *state.obs["state"].shape[1:]), np.float32))
    texts: list[list[str]] = []
    step_masks: list[np.ndarray | None] = []
    # scored: what the reward module gave (the learned return logged sums these);
    # bootstraps: gamma * V(final observation) where a time limit cut an episode.
    indices, log_probs, values, scored, bootstraps, dones = [], [], [], [], [], []
    reset_infos = venv.unwrapped.reset_infos
    keep_tokens = policy.image_encoder_frozen
    encoder_tokens: list[torch.Tensor] = []
    policy.eval()
    for t in range(s.n_steps):
        images[t] = pixels(state.obs)
        if states is not None:
            states[t] = state.obs["state"]
        texts.append(list(state.instructions))
        masks = state.masks
        mask = np.stack(masks) if spec.kind == "discrete" and masks[0] is not None else None
        step_masks.append(mask)
        with torch.no_grad(), _autocast(policy.device):
            preprocessed = policy.preprocess(images[t])
            tokens = policy.encoder_tokens(preprocessed) if keep_tokens else None
            features = policy.features(None if keep_tokens else preprocessed,
                                       policy.tokenize(state.instructions), state.instructions,
                                       encoder_tokens=tokens)
            if tokens is not None:
                encoder_tokens.append(tokens)
            dist = policy.distribution(features.float(), spec, mask)
            index = dist.sample()
            values.append(policy.value(features.float()) if critic is None
                          else _value(policy, critic, state.obs, state.instructions))
        log_probs.append(dist.log_prob(index))
        indices.append(index)
        state.obs, reward_t, done, infos = venv.step(dist.to_env(index))
        scored.append(np.array(reward_t, np.float32))  # a copy
        bootstrap = np.zeros(n_envs, np.float32)
        truncated = [i for i, info in enumerate(infos) if done[i]
                     and info.get("TimeLimit.truncated") and "terminal_observation" in info]
        if truncated:  # the episodes would have gone on: one batched value call
            finals = stack_observations([infos[i]["terminal_observation"] for i in truncated])
            ended = [state.instructions[i] for i in truncated]
            bootstrap[truncated] = s.gamma * _value(policy, critic, finals, ended).cpu().numpy()
        bootstraps.append(bootstrap)
        for i, info in enumerate(infos):
            if done[i]:
                if "episode" in info:  # SB3's Monitor: the env's own reward
                    state.gt_returns.append(float(info["episode"]["r"]))
                state.successes.append(float(info.get("is_success", False)))
                new = reset_infos[i] if reset_infos else {}
                state.instructions[i] = str(new.get("instruction", state.instructions[i]))
                state.masks[i] = new.get("action_mask")
            else:
                state.masks[i] = info.get("action_mask")
        dones.append(np.asarray(done, bool))
    step_learned = np.stack(scored)
    rewards = step_learned + np.stack(bootstraps)
    if reward.needs_trajectory:  # RAPL: whole-episode rewards, swapped in now
        learned, env_rewards = layer.relabel(reward)
        rewards += learned - env_rewards
        step_learned = learned
    for t in range(s.n_steps):
        state.running_learned += step_learned[t]
        for i in np.flatnonzero(dones[t]):
            state.learned_returns.append(float(state.running_learned[i]))
            state.running_learned[i] = 0.0
    return Rollout(images=images, texts=texts, masks=step_masks, indices=torch.stack(indices),
                   log_probs=torch.stack(log_probs), values=torch.stack(values).cpu().numpy(),
                   rewards=rewards, dones=np.stack(dones), states=states,
                   encoder_tokens=torch.stack(encoder_tokens) if keep_tokens else None)


def compute_gae(rollout: Rollout, last_values: np.ndarray, gamma: float, gae_lambda: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """GAE advantages and returns (advantages + values), each (n_steps, n_envs)."""
    dones = rollout.dones.astype(np.float32)
    advantages = np.zeros_like(rollout.rewards)
    gae = np.zeros(rollout.rewards.shape[1], np.float32)
    for t in reversed(range(len(rollout.rewards))):
        next_value = last_values if t == len(rollout.rewards) - 1 else rollout.values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rollout.rewards[t] + gamma * next_value * not_done - rollout.values[t]
        gae = delta + gamma * gae_lambda * not_done * gae
        advantages[t] = gae
    return advantages, advantages + rollout.values


def ppo_update(policy: VLAPolicy, optimizer: torch.optim.Optimizer, rollout: Rollout,
               advantages: np.ndarray, returns: np.ndarray, spec: ActionSpec,
               s: VLAPPOSettings, critic_only: bool, critic: StateCritic | None = None,
               critic_optimizer: torch.optim.Optimizer | None = None
               ) -> dict[str, list[float]]:
    """``s.n_epochs`` passes of clipped-surrogate PPO (or value regression alone with
    ``critic_only``) over minibatches; returns the per-minibatch statistics. With a
    state ``critic`` the value regression trains it (by ``critic_optimizer``) instead
    of the policy's value head."""
    flat_images = torch.from_numpy(rollout.images.reshape(-1, *rollout.images.shape[2:]))
    flat_texts = [text for row in rollout.texts for text in row]
    flat_tokens = (None if rollout.encoder_tokens is None
                   else rollout.encoder_tokens.flatten(0, 1))
    flat_index = rollout.indices.flatten(0, 1)
    flat_old = rollout.log_probs.flatten().float()
    flat_adv = torch.as_tensor(advantages.reshape(-1), device=policy.device)
    flat_ret = torch.as_tensor(returns.reshape(-1), device=policy.device)
    flat_mask = (None if rollout.masks[0] is None else
                 torch.as_tensor(np.concatenate(rollout.masks), device=policy.device))
    flat_states = (None if critic is None else torch.as_tensor(
        rollout.states.reshape(-1, rollout.states.shape[-1]), device=policy.device))
    stats: dict[str, list[float]] = {"clip_fraction": [], "approx_kl": [], "policy_loss": [],
                                     "value_loss": [], "entropy": []}
    policy.train()
    total = len(flat_texts)
    for _ in range(s.n_epochs):
        order = torch.randperm(total)
        for begin in range(0, total, s.batch_size):
            rows = order[begin:begin + s.batch_size]
            texts = [flat_texts[i] for i in rows.tolist()]
            features = None
            if critic is None or not critic_only:  # a state critic's warm-up needs no pixels
                with _autocast(policy.device):
                    preprocessed = (None if flat_tokens is not None
                                    else policy.preprocess(flat_images[rows]))
                    features = policy.features(
                        preprocessed, policy.tokenize(texts), texts,
                        encoder_tokens=None if flat_tokens is None else flat_tokens[rows]).float()
            predicted = policy.value(features) if critic is None else critic(flat_states[rows])
            value_loss = 0.5 * ((predicted - flat_ret[rows]) ** 2).mean()
            loss = s.vf_coef * value_loss
            if not critic_only:
                dist = policy.distribution(features, spec,
                                           None if flat_mask is None else flat_mask[rows])
                new_log_prob = dist.log_prob(flat_index[rows])
                log_ratio = new_log_prob - flat_old[rows]
                ratio = log_ratio.exp()
                adv = flat_adv[rows]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                clipped = ratio.clamp(1 - s.clip_range, 1 + s.clip_range)
                policy_loss = -torch.min(ratio * adv, clipped * adv).mean()
                entropy = dist.entropy().mean()
                loss = policy_loss + loss - s.ent_coef * entropy
                with torch.no_grad():
                    stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                    stats["clip_fraction"].append(float(((ratio - 1).abs() > s.clip_range)
                                                        .float().mean()))
                stats["policy_loss"].append(float(policy_loss.detach()))
                stats["entropy"].append(float(entropy.detach()))
            stats["value_loss"].append(float(value_loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            if critic_optimizer is not None:
                critic_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), s.max_grad_norm)
            optimizer.step()  # parameters without a gradient (a warm-up's) stay put
            if critic_optimizer is not None:
                torch.nn.utils.clip_grad_norm_(critic.parameters(), s.max_grad_norm)
                critic_optimizer.step()
            if s.target_kl is not None and stats["approx_kl"] \
                    and stats["approx_kl"][-1] > 1.5 * s.target_kl:
                return stats
    return stats


def train(config: VLAPPOConfig, run_dir: Path, resume: bool, checked: Checked,
          progress_bar: bool = True, log: Any = print) -> dict[str, Any]:
    s, reward, device = config.ppo, checked.reward, checked.device
    policy = runs.build_policy(config, device)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=s.lr,
                                 eps=1e-5)
    critic = build_critic(config, policy.device)
    critic_optimizer = (None if critic is None else
                        torch.optim.Adam(critic.parameters(), lr=s.critic_lr, eps=1e-5))
    extras = ({} if critic is None else
              {"critic": critic, "critic_optimizer": critic_optimizer})
    start, trainer = (runs.resume(run_dir, policy, optimizer, log, extras) if resume
                      else (0, {}))
    if not trainer:  # a new run: seeded sampling (a resumed one restored its RNG states)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
    updates = int(trainer.get("updates", 0))
    venv, layer = make_training_env(config.env, config.training_env_kwargs(), reward, s.n_envs,
                                    seed=config.seed + start, reward_frames=config.reward_frames,
                                    vec_env=s.vec_env)
    spec = ActionSpec.of(venv.action_space)
    logger = runs.make_logger(run_dir)
    log(f"vmalign train: vla-ppo on {config.env} with the {reward.name} reward, "
        f"{policy.num_parameters() / 1e6:.1f} M parameters, {device}"
        + (", critic on the state vector" if critic is not None else ""))
    state = initial_state(venv)
    step, started = start, time.perf_counter()
    try:
        while step < s.n_timesteps:
            rollout = collect_rollout(policy, venv, layer, reward, spec, state, s, critic)
            step += s.n_steps * s.n_envs
            last_values = _value(policy, critic, state.obs, state.instructions).cpu().numpy()
            advantages, returns = compute_gae(rollout, last_values, s.gamma, s.gae_lambda)
            critic_only = updates < s.critic_warmup
            stats = ppo_update(policy, optimizer, rollout, advantages, returns, spec, s,
                               critic_only, critic, critic_optimizer)
            # how much of the returns' variance the critic's rollout values explain (as
            # SB3 logs it): near 0 or below, the advantages are mostly the critic's noise
            stats["explained_variance"] = [float(explained_variance(
                rollout.values.ravel(), returns.ravel()))]
            updates += 1
            _log_update(logger, state, stats, critic_only, step, start, started)
            if step // config.checkpoint_every > (step - s.n_steps * s.n_envs) // config.checkpoint_every \
                    or step >= s.n_timesteps:
                runs.save_checkpoint(run_dir, step, policy, optimizer, {"updates": updates},
                                     extras)
    finally:
        venv.close()
    seconds = time.perf_counter() - started
    results = runs.evaluate(policy, config)
    return runs.finish(run_dir, policy, {
        "algo": "vla-ppo", "env": config.env, "reward": reward.name, "steps": step,
        "resumed_from": start, "updates": updates, "seconds": round(seconds, 1),
        "fps": round((step - start) / seconds, 1) if seconds else None, "device": device,
        "gt_return": float(np.mean(state.gt_returns)) if state.gt_returns else None,
        "success_rate": float(np.mean(state.successes)) if state.successes else None,
        "eval": results,
    })


def _log_update(logger: Any, state: EnvState, stats: dict[str, list[float]], critic_only: bool,
                step: int, start: int, started: float) -> None:
    for key, values in (("rollout/gt_return", state.gt_returns),
                        ("rollout/success_rate", state.successes),
                        ("rollout/learned_return", state.learned_returns)):
        if values:
            logger.record(key, float(np.mean(values)))
    logger.record("train/critic_only", int(critic_only))
    for key, values in stats.items():
        if values:
            logger.record(f"train/{key}", float(np.mean(values)))
    logger.record("time/fps", round((step - start) / (time.perf_counter() - started), 1))
    logger.record("time/total_timesteps", step)
    logger.dump(step)
