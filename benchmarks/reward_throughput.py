"""Reward-module throughput: frames/s through the VecEnv wrapper, bare, and per frame.

Prints one JSON line. For each module, on the same batch of frames (one per env):

- ``bare_fps``: the module called on the whole batch (the reference);
- ``wrapper_fps``: the batch scored through ``agents.sb3.reward_wrappers.VecRewardWrapper``
  over a vector env that returns pre-rendered frames at no cost, so only the
  wrapper's own work is added; ``wrapper_overhead`` = 1 - wrapper_fps / bare_fps
  (target <= 0.10);
- ``per_frame_fps``: one module call per frame, what batching saves;
- ``bare_vs_cnn`` (preference modules on a named encoder): bare_fps against the
  from-scratch CNN ensemble's (``preference``) in the same run.

    python benchmarks/reward_throughput.py [--batch 16] [--size 224] [--seconds 3]
        [--module NAME[:KEY=VALUE,...] ...]

The default modules are the ground truth, the preference ensemble (from-scratch CNNs,
and on the frozen ImageNet EfficientNet-Lite0 at 64, 96 and 128 px), a tiny CLIP and
ViT-B-32 CLIP with random weights (a pretrained model runs at the same speed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_MODULES = (
    "ground_truth",
    "preference",
    'preference:encoder="efficientnet_lite0",image_size=64',
    'preference:encoder="efficientnet_lite0",image_size=96',
    'preference:encoder="efficientnet_lite0",image_size=128',
    'clip:model_config="tiny",pretrained=null',
    'clip:model="ViT-B-32",pretrained=null',
)
"""``model_config="tiny"`` stands for ``rewards.clip.TINY_MODEL_CONFIG``."""


def parse_module(spec: str) -> tuple[str, dict[str, Any]]:
    """``'clip:alpha=0.5,model="ViT-B-32"'`` -> (``"clip"``, kwargs)."""
    from agents.cli.arguments import parse_key_values as parse_reward_args

    name, _, rest = spec.partition(":")
    return name, parse_reward_args([item for item in rest.split(",") if item])


def timed(call: Any, frames_per_call: int, seconds: float) -> float:
    """Frames/s of ``call()`` repeated for about ``seconds`` after one warm-up call."""
    call()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        call()
        calls += 1
    return calls * frames_per_call / (time.perf_counter() - start)


def make_frozen_venv(frames: np.ndarray, instructions: list[str]) -> Any:
    """A VecEnv whose every step returns the same frames, at no cost."""
    from gymnasium import spaces
    from stable_baselines3.common.vec_env import VecEnv

    from agents.sb3.reward_wrappers import FRAME_KEY

    class FrozenVecEnv(VecEnv):
        def __init__(self) -> None:
            space = spaces.Box(0, 255, frames.shape[1:], np.uint8)
            super().__init__(len(frames), space, spaces.Box(-1, 1, (4,), np.float32))

        def reset(self) -> np.ndarray:
            return frames

        def step_async(self, actions: np.ndarray) -> None:
            pass

        def step_wait(self) -> Any:
            infos = [{FRAME_KEY: frame, "instruction": text, "is_success": False}
                     for frame, text in zip(frames, instructions)]
            return frames, np.zeros(len(frames), np.float32), np.zeros(len(frames), bool), infos

        def close(self) -> None:
            pass

        def get_attr(self, *args: Any, **kwargs: Any) -> list[Any]:
            return [None] * len(frames)

        def set_attr(self, *args: Any, **kwargs: Any) -> None:
            pass

        def env_method(self, *args: Any, **kwargs: Any) -> list[Any]:
            return [None] * len(frames)

        def env_is_wrapped(self, *args: Any, **kwargs: Any) -> list[bool]:
            return [False] * len(frames)

    return FrozenVecEnv()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="NAME[:KEY=VALUE,...] (repeatable)")
    parser.add_argument("--batch", type=int, default=16, help="frames per step (number of envs)")
    parser.add_argument("--size", type=int, default=224, help="frame size")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--device", default=None, help="torch device (default: rewards.get_device)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); on a busy small "
                             "machine 1 avoids oversubscription")
    args = parser.parse_args()

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    import envs  # noqa: F401
    import gymnasium as gym
    import rewards
    from agents.sb3.reward_wrappers import VecRewardWrapper

    env = gym.make("vmalign/Push-v0", render_mode="rgb_array", render_size=args.size)
    frames, instructions = [], []
    for seed in range(args.batch):
        _, info = env.reset(seed=seed)
        frames.append(env.render())
        instructions.append(info["instruction"])
    frames = np.stack(frames)
    env_rewards = np.zeros(args.batch, np.float32)
    device = str(rewards.get_device(args.device))

    results = {}
    for spec in args.module or DEFAULT_MODULES:
        name, kwargs = parse_module(spec)
        if kwargs.get("model_config") == "tiny":
            from rewards.clip import TINY_MODEL_CONFIG

            kwargs["model_config"] = TINY_MODEL_CONFIG
        if name != "ground_truth":
            kwargs.setdefault("device", device)
        module = rewards.make(name, **kwargs)
        bare = timed(lambda: module(frames, instructions, env_rewards), args.batch, args.seconds)
        venv = VecRewardWrapper(make_frozen_venv(frames, instructions), module)
        venv.reset()
        actions = np.zeros((args.batch, 4), np.float32)
        wrapped = timed(lambda: venv.step(actions), args.batch, args.seconds)
        per_frame = timed(
            lambda: [module(frames[i : i + 1], instructions[i : i + 1], env_rewards[i : i + 1])
                     for i in range(args.batch)],
            args.batch, args.seconds,
        )
        results[spec] = {
            "bare_fps": round(bare, 1),
            "wrapper_fps": round(wrapped, 1),
            "wrapper_overhead": round(1 - wrapped / bare, 3),
            "per_frame_fps": round(per_frame, 1),
            "batching_speedup": round(bare / per_frame, 2),
        }
    if "preference" in results:
        for spec, figures in results.items():
            if spec.startswith("preference:"):
                figures["bare_vs_cnn"] = round(figures["bare_fps"]
                                               / results["preference"]["bare_fps"], 3)
    print(json.dumps({
        "benchmark": "reward_throughput",
        "batch": args.batch,
        "frame_size": args.size,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or platform.node()}",
        "modules": results,
    }))


if __name__ == "__main__":
    main()
