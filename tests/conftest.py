"""Test-wide settings."""

from __future__ import annotations

import pytest
import torch

# The models under test are tiny; on a small machine that is also running other
# jobs, torch's per-core OpenMP threads thrash and single ops slow down 100-fold.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def random_tiny_policy(tmp_path_factory):
    """A saved, seeded, untrained ``tiny`` VLA policy (32-px images, 8-px patches): the
    starting point of short RL-trainer runs, for discrete and continuous actions."""
    from agents.vla.model import VLAPolicy, make_config

    folder = tmp_path_factory.mktemp("random-tiny-policy")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        VLAPolicy(make_config("tiny", image_size=32, patch_size=8), device="cpu").save(
            folder / "policy")
    return folder / "policy"
