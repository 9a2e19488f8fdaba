"""Environment throughput: steps per second including the pixel observation.

Prints one JSON line. For each vmalign environment: steps/s in one process at its
observation size (``env.step`` with random actions, which renders the observation;
``--size``, unless :data:`OBS_SIZE_BY_ENV` gives the env its own), the ratio to
Gymnasium's ``Pusher-v5`` stepped and rendered with ``render_mode="rgb_array"`` at
``--size`` (measured in the same run as the reference), and the speed-up of an
``AsyncVectorEnv`` with one worker per core over the single process. Each
measurement runs in a fresh process so that no GL context or Mesa setting leaks
between them; the reference runs with Gymnasium's own defaults.

    python benchmarks/env_throughput.py [--seconds 3] [--size 64] [--env ID ...]

``--obs-modes`` measures the manipulation tasks' observation modes instead (issue 24),
each in its own fresh process of the same run: steps/s with ``obs_mode="rgb"`` at
``--size``, with ``obs_mode="state"`` (no rendering), with ``obs_mode="state"`` plus
one ``render()`` of the reward-model view at ``--size`` per step, and the bare
physics of the same model: ``mujoco.mj_step(model, data, nstep=FRAME_SKIP)`` in a
loop, the same physics steps as one env step with no Python around them (the limit
of any env step). The env figures step ``gym.make``'s env with random actions drawn
beforehand (drawing one costs about 20 us, a fifth of a state-mode step) and include
the resets at the step limit.

    python benchmarks/env_throughput.py --obs-modes --env vmalign/Reach-v0 vmalign/Push-v0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

REFERENCE = "Pusher-v5"

OBS_SIZE_BY_ENV = {
    # The card games are read at 128x128, their default: text must stay legible.
    "vmalign/NumberLine-v0": 128,
    "vmalign/EZPoints-v0": 128,
    "vmalign/Points24-v0": 128,
    "vmalign/Blackjack-v0": 128,
}
"""Observation size per environment where it is not ``--size`` (the reference always
runs at ``--size``)."""


def measure_single(env_id: str, size: int, seconds: float) -> tuple[float, float]:
    """Steps/s of one env in this process, after a warm-up, and the mean cost of a
    ``reset`` (scene generation and the first observation) in milliseconds."""
    import gymnasium as gym

    if env_id == REFERENCE:
        env = gym.make(REFERENCE, render_mode="rgb_array", width=size, height=size)
        render = True
    else:
        import envs  # noqa: F401  (registers ids, selects headless GL)

        env = gym.make(env_id, obs_size=size)
        render = False
    env.reset(seed=0)
    env.action_space.seed(0)

    def one_step() -> None:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if render:
            env.render()
        if terminated or truncated:
            env.reset()

    for _ in range(10):
        one_step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        one_step()
        steps += 1
    rate = steps / (time.perf_counter() - start)
    resets, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 3 or resets < 5:
        env.reset(seed=resets)
        resets += 1
    reset_ms = (time.perf_counter() - start) / resets * 1e3
    env.close()
    return rate, reset_ms


def measure_vector(env_id: str, size: int, seconds: float, workers: int) -> float:
    """Total steps/s of an AsyncVectorEnv with ``workers`` subprocess envs."""
    import gymnasium as gym

    import envs  # noqa: F401

    vec = gym.make_vec(env_id, num_envs=workers, vectorization_mode="async", obs_size=size)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    for _ in range(10):
        vec.step(vec.action_space.sample())
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        vec.step(vec.action_space.sample())
        steps += workers
    rate = steps / (time.perf_counter() - start)
    vec.close()
    return rate


OBS_MODE_MEASUREMENTS = ("rgb", "state", "state+render", "physics")
"""What ``--obs-modes`` measures per env (see the module docstring)."""


def measure_obs_mode(env_id: str, size: int, seconds: float, kind: str) -> float:
    """Steps/s of one of :data:`OBS_MODE_MEASUREMENTS`, after a warm-up."""
    import gymnasium as gym
    import mujoco
    import numpy as np

    import envs  # noqa: F401
    from envs.manipulation.arm import FRAME_SKIP

    if kind == "rgb":
        env = gym.make(env_id, obs_size=size)
    else:
        views = {"render_mode": "rgb_array", "render_size": size} if kind == "state+render" else {}
        env = gym.make(env_id, obs_mode="state", **views)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(1000, 4)).astype(np.float32)
    env.reset(seed=0)
    for action in actions[:10]:
        env.step(action)
    if kind == "physics":
        model, data = env.unwrapped.model, env.unwrapped.data
        mj_step = mujoco.mj_step
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(100):
                mj_step(model, data, nstep=FRAME_SKIP)
            steps += 100
        return steps / (time.perf_counter() - start)
    render = kind == "state+render"
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if render:
                env.render()
            if terminated or truncated:
                env.reset()
        steps += len(actions)
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def obs_modes(env_ids: list[str], size: int, seconds: float) -> dict[str, dict[str, float]]:
    """:func:`measure_obs_mode` of every kind for each env, and the ratios."""
    results = {}
    for env_id in env_ids:
        rate = {kind: run_worker("mode:" + kind, env_id, size, seconds, 1)[0]
                for kind in OBS_MODE_MEASUREMENTS}
        results[env_id] = {
            **{f"{kind}_steps_per_s": round(value, 1) for kind, value in rate.items()},
            "state_vs_rgb": round(rate["state"] / rate["rgb"], 2),
            "state_vs_physics": round(rate["state"] / rate["physics"], 3),
            "state_render_vs_rgb": round(rate["state+render"] / rate["rgb"], 2),
        }
    return results


def run_worker(kind: str, env_id: str, size: int, seconds: float, workers: int) -> list[float]:
    """Runs one measurement in a fresh interpreter and returns its figures."""
    environment = dict(os.environ)
    if env_id == REFERENCE:
        environment.setdefault("MUJOCO_GL", "egl")
    command = [sys.executable, __file__, "--worker", kind, "--env", env_id,
               "--size", str(size), "--seconds", str(seconds), "--workers", str(workers)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
    return [float(value) for value in output.stdout.strip().splitlines()[-1].split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="*", default=None, help="vmalign ids (default: all)")
    parser.add_argument("--size", type=int, default=64, help="observation size in pixels")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--obs-modes", action="store_true",
                        help="compare the manipulation tasks' obs_mode rgb and state and "
                             "the bare physics (default envs: Reach and Push)")
    parser.add_argument("--worker", choices=["single", "vector"] + [
        "mode:" + kind for kind in OBS_MODE_MEASUREMENTS], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        env_id = args.env[0]
        if args.worker == "single":
            print(*measure_single(env_id, args.size, args.seconds))
        elif args.worker == "vector":
            print(measure_vector(env_id, args.size, args.seconds, args.workers))
        else:
            print(measure_obs_mode(env_id, args.size, args.seconds, args.worker[len("mode:"):]))
        return

    if args.obs_modes:
        env_ids = args.env or ["vmalign/Reach-v0", "vmalign/Push-v0"]
        print(json.dumps({
            "benchmark": "env_throughput --obs-modes",
            "obs_size": args.size,
            "seconds": args.seconds,
            "cores": os.cpu_count(),
            "machine": f"{platform.machine()} {platform.processor() or platform.node()}",
            "gl": os.environ.get("MUJOCO_GL", "egl"),
            "envs": obs_modes(env_ids, args.size, args.seconds),
        }))
        return

    if args.env is None:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import envs

        env_ids = list(envs.ENV_IDS)
    else:
        env_ids = args.env
    reference, _ = run_worker("single", REFERENCE, args.size, args.seconds, 1)
    results = {}
    for env_id in env_ids:
        size = OBS_SIZE_BY_ENV.get(env_id, args.size)
        single, reset_ms = run_worker("single", env_id, size, args.seconds, 1)
        (vector,) = run_worker("vector", env_id, size, args.seconds, args.workers)
        results[env_id] = {
            "obs_size": size,
            "steps_per_s": round(single, 1),
            "reset_ms": round(reset_ms, 3),
            "vs_reference": round(single / reference, 1),
            "vector_steps_per_s": round(vector, 1),
            "vector_speedup": round(vector / single, 2),
        }
    print(json.dumps({
        "benchmark": "env_throughput",
        "obs_size": args.size,
        "cores": os.cpu_count(),
        "vector_workers": args.workers,
        "machine": f"{platform.machine()} {platform.processor() or platform.node()}",
        "gl": os.environ.get("MUJOCO_GL", "egl"),
        "reference": {"env": REFERENCE, "render_mode": "rgb_array", "steps_per_s": round(reference, 1)},
        "envs": results,
    }))


if __name__ == "__main__":
    main()
