"""Test-wide settings."""

from __future__ import annotations

import torch

# The models under test are tiny; on a small machine that is also running other
# jobs, torch's per-core OpenMP threads thrash and single ops slow down 100-fold.
torch.set_num_threads(1)
