"""Success and return of a uniform random policy and of the scripted expert on the
held-out seeds that ``vmalign eval`` uses (1,000,000 + i), with the env kwargs of the
shipped PPO configs: the reference columns of docs/results.md (issue #6).

    ./run.sh python docs/scripts/reference_policies.py
"""

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the ids)

MANIPULATION = {"obs_size": 64, "camera": "workspace", "randomize_colors": False}
ENVS = {
    "vmalign/Reach-v0": (MANIPULATION, 50),
    "vmalign/Push-v0": (MANIPULATION, 50),
    "vmalign/GoToObject-v0": ({"obs_size": 64, "num_objects": 1}, 50),
    "vmalign/Sweep-v0": ({**MANIPULATION, "embodiment": "long_stick"}, 20),
    "vmalign/Blackjack-v0": ({"obs_size": 64}, 1000),
}
FIRST_SEED = 1_000_000


def play(env: gym.Env, policy: str, seed: int) -> tuple[float, bool]:
    env.action_space.seed(seed)
    _, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = env.action_space.sample() if policy == "random" else env.unwrapped.expert_action()
        _, reward, terminated, truncated, info = env.step(action)
        total, done = total + float(reward), terminated or truncated
    return total, bool(info["is_success"])


for env_id, (kwargs, episodes) in ENVS.items():
    env = gym.make(env_id, **kwargs)
    for policy in ("random", "expert"):
        results = [play(env, policy, FIRST_SEED + i) for i in range(episodes)]
        returns, successes = zip(*results)
        print(f"{env_id} {policy}: success {np.mean(successes):.3f}, "
              f"mean return {np.mean(returns):.3f} over {episodes} episodes", flush=True)
    env.close()
