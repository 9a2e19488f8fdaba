"""vla-bc with a frozen ImageNet encoder: training steps per second when every batch
is encoded anew against steps on tokens computed once per dataset frame
(``bc.encoder_cache_gib``), in the same run.

Prints one JSON line. Both arms take the same steps of :class:`agents.vla.bc.CloningLoss`
(forward, backward, AdamW) on the same frames: the ``tiny`` VLA with
``efficientnet_lite0`` (frozen, 4x4 tokens at 128 px, the Reach BC row's setup) on
random 64-px frames and random 4-d actions; the content of the frames does not change
the cost. ``speedup`` = cached steps/s / live steps/s; ``cache_seconds_per_1k_frames``
is the one-off cost of the cache, so a run of S steps on F frames gains when S x
(1/live - 1/cached) exceeds F / 1000 x that.

    python benchmarks/vla_frozen_encoder.py [--steps 20] [--batch 64] [--frames 2048]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()

    import numpy as np
    import torch

    from agents.vla.bc import Batch, CloningLoss
    from agents.vla.model import ActionSpec, VLAPolicy, make_config

    torch.manual_seed(0)
    policy = VLAPolicy(make_config("tiny", image_encoder="registry",
                                   vision_encoder="efficientnet_lite0",
                                   image_size=args.image_size, vision_grid=4), device="cpu")
    spec = ActionSpec(kind="continuous", size=4)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.frames, 64, 64, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (args.frames, 4)).astype(np.float32)
    texts = ["reach the ball"] * args.batch
    tokens = policy.tokenize(texts)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    objective = CloningLoss(policy)
    policy.train()

    started = time.perf_counter()
    cache = torch.cat([policy.encoder_tokens(policy.preprocess(frames[i:i + 256]))
                       for i in range(0, args.frames, 256)])
    cache_seconds = time.perf_counter() - started

    def steps_per_second(cached: bool) -> float:
        started = time.perf_counter()
        for _ in range(args.steps):
            chosen = rng.integers(0, args.frames, args.batch)
            indices = policy.action_indices(actions[chosen], spec)
            batch = (Batch(None, cache[torch.as_tensor(chosen)], tokens, texts, indices, spec)
                     if cached else
                     Batch(policy.preprocess(frames[chosen]), None, tokens, texts, indices, spec))
            optimizer.zero_grad(set_to_none=True)
            objective([batch]).sum().backward()
            optimizer.step()
        return args.steps / (time.perf_counter() - started)

    steps_per_second(True)  # warm-up: first-call allocations
    live = steps_per_second(False)
    cached = steps_per_second(True)
    print(json.dumps({
        "benchmark": "vla_frozen_encoder", "machine": platform.node(),
        "threads": torch.get_num_threads(), "image_size": args.image_size,
        "batch": args.batch, "steps": args.steps,
        "live_steps_per_s": round(live, 2), "cached_steps_per_s": round(cached, 2),
        "speedup": round(cached / live, 2),
        "cache_seconds_per_1k_frames": round(cache_seconds / args.frames * 1000, 2),
    }))


if __name__ == "__main__":
    main()
