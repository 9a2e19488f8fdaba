"""Preference-reward training speed: what one round of the online loop costs.

Prints one JSON line. On random uint8 segment pairs of the given frame size (views
side by side, as ``render_camera=[...]`` renders them):

- ``train_frames_per_s``: frames through :func:`rewards.preference.train_preference_reward`
  per second (every member's forward and backward pass, random shifts on), i.e. pairs
  x 2 segments x steps x members x epochs / seconds, against
  ``train_reference_frames_per_s``, the same training with the reference shift below
  swapped in, alternating runs (``train_speedup``: their ratio);
- ``shift_frames_per_s``: :func:`rewards.preference.shift_images` alone, on one
  training batch of frames, against ``gather_reference_frames_per_s``, the
  per-pixel gather it replaced (kept below as the reference), in the same run;
  ``shift_speedup`` is their ratio (the two give identical images, checked here).

    python benchmarks/reward_training.py [--pairs 100] [--views 2] [--size 64]
        [--members 2] [--epochs 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gather_reference(images, pad: int, rng: np.random.Generator, views: int = 1):
    """The random shift as it was before (one index per pixel): the reference."""
    import torch
    from torch.nn import functional as F

    if views > 1:
        tiles = images.unflatten(3, (views, -1)).permute(0, 3, 1, 2, 4).flatten(0, 1)
        shifted = gather_reference(tiles, pad, rng)
        return shifted.unflatten(0, (len(images), views)).permute(0, 2, 3, 1, 4).flatten(3, 4)
    count, channels, height, width = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate").to(images.dtype)
    offsets = torch.as_tensor(rng.integers(0, 2 * pad + 1, size=(count, 2)))
    rows = offsets[:, :1] + torch.arange(height)
    cols = offsets[:, 1:] + torch.arange(width)
    return padded[torch.arange(count)[:, None, None, None],
                  torch.arange(channels)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def frames_per_second(call, frames: int, repeats: int = 5) -> float:
    call()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return frames * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10, help="segment length")
    parser.add_argument("--size", type=int, default=64, help="pixels per view")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from rewards import preference
    from rewards.preference import PreferenceReward, shift_images, train_preference_reward
    from rewards.preference_store import PreferencePairs

    if args.size // 16 < 1:
        parser.error(f"--size must be at least 16 pixels (random shifts of size // 16), "
                     f"got {args.size}")

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    shape = (args.pairs, args.steps, args.size, args.views * args.size, 3)
    pairs = PreferencePairs(rng.integers(0, 256, shape, dtype=np.uint8),
                            rng.integers(0, 256, shape, dtype=np.uint8),
                            rng.integers(0, 2, args.pairs).astype(np.float32))
    model = PreferenceReward(ensemble_size=args.members, image_size=args.size, views=args.views)
    train_preference_reward(model, pairs, epochs=1)  # warm-up (torch's first-call costs)
    seconds = {"shift_images": 0.0, "reference": 0.0}
    for _ in range(2):  # alternating, so drifting load on a shared machine hits both
        for name, shift in (("shift_images", shift_images), ("reference", gather_reference)):
            preference.shift_images = shift
            started = time.perf_counter()
            train_preference_reward(model, pairs, epochs=args.epochs)
            seconds[name] += time.perf_counter() - started
    preference.shift_images = shift_images
    trained = 2 * args.pairs * 2 * args.steps * args.members * args.epochs

    # One training batch (32 pairs) of frames, as train_preference_reward shifts them.
    batch = torch.from_numpy(pairs.frames_a[:32].reshape(-1, *shape[2:])).permute(0, 3, 1, 2)
    batch = batch.contiguous(memory_format=torch.channels_last)
    pad = args.size // 16
    same = torch.equal(shift_images(batch, pad, np.random.default_rng(1), args.views),
                       gather_reference(batch, pad, np.random.default_rng(1), args.views))
    shift = frames_per_second(
        lambda: shift_images(batch, pad, np.random.default_rng(1), args.views), len(batch))
    reference = frames_per_second(
        lambda: gather_reference(batch, pad, np.random.default_rng(1), args.views), len(batch))
    print(json.dumps({
        "benchmark": "reward_training", "machine": platform.processor() or platform.machine(),
        "threads": args.threads, "frame": list(shape[2:]), "members": args.members,
        "pairs": args.pairs, "epochs": args.epochs,
        "train_frames_per_s": round(trained / seconds["shift_images"], 1),
        "train_reference_frames_per_s": round(trained / seconds["reference"], 1),
        "train_speedup": round(seconds["reference"] / seconds["shift_images"], 3),
        "shift_frames_per_s": round(shift, 1),
        "gather_reference_frames_per_s": round(reference, 1),
        "shift_speedup": round(shift / reference, 2), "shift_identical": same,
    }))


if __name__ == "__main__":
    main()
