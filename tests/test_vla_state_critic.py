"""vla-ppo with ``ppo.critic=state``: the critic reads the simulator's state vector, the
policy pixels; the critic is trained, checkpointed and restored; set-ups without a
state vector stop before the run folder exists."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import agents.vla.ppo as ppo
from agents.config import load_config
from agents.runs import build_reward, preflight, train
from agents.sb3.vector import make_training_env
from agents.vla.model import ActionSpec, VLAPolicy
from tests import easy_env

REACH = {"obs_size": 32, "camera": "workspace", "randomize_colors": False}


def config_file(tmp_path, init, **ppo_settings):
    config = {"algo": "vla-ppo", "device": "cpu", "env": "vmalign/Reach-v0", "env_kwargs": REACH,
              "reward": "ground_truth", "eval_episodes": 1, "checkpoint_every": 64,
              "vla": {"init": str(init)},
              "ppo": {"n_timesteps": 64, "n_envs": 2, "n_steps": 32, "batch_size": 32,
                      "n_epochs": 2, "lr": 1e-4, "critic": "state", "critic_warmup": 1,
                      **ppo_settings}}
    path = tmp_path / "ppo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def reach_rollout(tmp_path, init, watch=None):
    """One 60-step rollout of 2 Reach envs with a state critic (Reach ends after 50
    steps). Returns the config, policy, critic, action spec, the rollout and the value
    of the envs' last observations; ``watch(venv)`` may wrap the envs first."""
    config = load_config(config_file(tmp_path, init, n_steps=60))
    policy = VLAPolicy.load(init, device="cpu")
    critic = ppo.build_critic(config, policy.device)
    reward = build_reward(config, "cpu")
    venv, layer = make_training_env(config.env, config.training_env_kwargs(), reward, 2, seed=0)
    spec = ActionSpec.of(venv.action_space)
    if watch is not None:
        watch(venv)
    try:
        state = ppo.initial_state(venv)
        rollout = ppo.collect_rollout(policy, venv, layer, reward, spec, state, config.ppo, critic)
        last = ppo._value(policy, critic, state.obs, state.instructions).numpy()
    finally:
        venv.close()
    return config, policy, critic, spec, rollout, last


def test_the_rollout_values_are_the_state_critics_of_the_env_state(tmp_path, monkeypatch,
                                                                   random_tiny_policy):
    stepped, valued = [], []  # what the envs returned, what the value function saw

    def watch(venv):
        step = venv.step
        venv.step = lambda actions: stepped.append(step(actions)) or stepped[-1]

    value = ppo._value
    monkeypatch.setattr(ppo, "_value", lambda policy, critic, obs, texts: valued.append(
        (obs, value(policy, critic, obs, texts))) or valued[-1][1])
    config, _, critic, _, rollout, _ = reach_rollout(tmp_path, random_tiny_policy, watch)
    # The critic read the env's state vector; the policy its pixels.
    env = gym.make(config.env, **config.training_env_kwargs())
    obs, _ = env.reset(seed=0)
    env.close()
    np.testing.assert_array_equal(rollout.states[0, 0], obs["state"])
    assert rollout.images.shape == (60, 2, 32, 32, 3) and rollout.images.any()
    with torch.no_grad():
        expected = critic(torch.as_tensor(rollout.states)).numpy()
    np.testing.assert_allclose(rollout.values, expected, rtol=1e-6, atol=1e-6)
    # Reach ends after 50 steps: the truncation bootstraps from the critic's value of
    # each env's final state (not the next episode's first, not the policy's value head).
    assert rollout.dones[49].all() and not rollout.dones[:49].any()
    _, env_rewards, _, infos = stepped[49]
    finals = np.stack([info["terminal_observation"]["state"] for info in infos])
    bootstraps = [(obs, out) for obs, out in valued if len(obs["state"]) == 2
                  and np.array_equal(obs["state"], finals)]
    assert len(bootstraps) == 1
    with torch.no_grad():
        final_values = critic(torch.as_tensor(finals)).numpy()
    assert not np.array_equal(finals, rollout.states[50])
    np.testing.assert_allclose(rollout.rewards[49], env_rewards + 0.99 * final_values,
                               rtol=1e-5, atol=1e-6)


def test_the_state_critic_learns_the_returns_and_the_warm_up_leaves_the_policy(
        tmp_path, random_tiny_policy):
    config, policy, critic, spec, rollout, last = reach_rollout(tmp_path, random_tiny_policy)
    advantages, returns = ppo.compute_gae(rollout, last, 0.99, 0.95)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-4)
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    losses = [np.mean(ppo.ppo_update(policy, optimizer, rollout, advantages, returns, spec,
                                     config.ppo, True, critic, critic_optimizer)["value_loss"])
              for _ in range(10)]
    assert losses[-1] < 0.5 * losses[0], losses
    for name, value in policy.state_dict().items():  # the warm-up trains the critic alone
        assert torch.equal(value, before[name]), name
    stats = ppo.ppo_update(policy, optimizer, rollout, advantages, returns, spec, config.ppo,
                           False, critic, critic_optimizer)
    assert stats["policy_loss"]
    assert any(not torch.equal(value, before[name])
               for name, value in policy.state_dict().items())


def test_the_state_critic_is_checkpointed_and_restored(tmp_path, monkeypatch,
                                                       random_tiny_policy):
    path = config_file(tmp_path, random_tiny_policy)
    run = tmp_path / "run"
    train(load_config(path), run, log=lambda *a: None)
    checkpoint = run / "checkpoints" / "step-0000000064"
    saved = torch.load(checkpoint / "critic.pt", weights_only=True)
    assert (checkpoint / "critic_optimizer.pt").exists()
    # The resumed run starts from the saved critic, not a fresh one.
    seen = []
    original = ppo.collect_rollout
    monkeypatch.setattr(ppo, "collect_rollout", lambda *args: seen.append(
        {k: v.clone() for k, v in args[-1].state_dict().items()}) or original(*args))
    resumed = train(load_config(path, ["ppo.n_timesteps=128"]), run, resume=True,
                    log=lambda *a: None)
    assert resumed["resumed_from"] == 64
    for name, value in saved.items():
        torch.testing.assert_close(seen[0][name], value, rtol=0, atol=0)
    fresh = ppo.build_critic(load_config(path), torch.device("cpu")).state_dict()
    assert not all(torch.equal(fresh[name], value) for name, value in saved.items())


def test_a_checkpoint_without_the_critic_is_refused_on_resume(tmp_path, random_tiny_policy):
    path = config_file(tmp_path, random_tiny_policy, critic="policy")
    run = tmp_path / "run"
    train(load_config(path), run, log=lambda *a: None)
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace(
        "critic: policy", "critic: state"))
    with pytest.raises(ValueError, match=r"critic.pt is missing.*ppo.critic=state"):
        train(load_config(run / "config.yaml", ["ppo.n_timesteps=128"]), run, resume=True,
              log=lambda *a: None)


@pytest.mark.parametrize("change, message", [
    ({"env": easy_env.ENV_ID, "env_kwargs": {}},
     rf"ppo.critic=state needs an env with a state vector .*{easy_env.ENV_ID} has none"),
    ({"env_kwargs": {**REACH, "obs_mode": "state"}},
     r"env_kwargs.obs_mode='state' would take the policy's pixels away"),
    ({"reward_frames": "observation"}, r"use reward_frames=render"),
])
def test_a_state_critic_without_a_state_vector_stops_before_the_run_folder(
        tmp_path, random_tiny_policy, change, message):
    easy_env.register()  # an env without obs_mode
    path = config_file(tmp_path, random_tiny_policy)
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, **change}))
    with pytest.raises(ValueError, match=message):
        preflight(load_config(path))


def test_the_state_critic_gives_float32_values_inside_the_policys_autocast():
    critic = ppo.StateCritic(5, [8], "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = critic(torch.ones(3, 5))
    assert values.dtype == torch.float32 and values.shape == (3,)
