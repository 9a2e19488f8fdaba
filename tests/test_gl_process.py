"""One process, several renderers: Gymnasium's own MuJoCo envs mixed with ours.

Mesa's software renderer (llvmpipe) loads the system libLLVM with RTLD_GLOBAL;
triton (installed with CUDA builds of torch, imported by torch's optimisers on
their first step) carries its own LLVM and segfaults when it is loaded after that
one unless it is isolated (see ``envs.rendering._import_triton_safely``). vmalign
only controls the order when it makes the process's first GL context, so these
tests let Gymnasium's Pusher render first as well. Each order runs in a fresh
interpreter: a crash kills only the subprocess, and the outcome depends on what
the process has loaded before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_PUSHER = (
    "import gymnasium as gym\n"
    "env = gym.make('Pusher-v5', render_mode='rgb_array', width=64, height=64)\n"
    "env.reset(seed=0); assert env.render().shape == (64, 64, 3); env.close()\n"
)
_VMALIGN = (
    "import envs, gymnasium as gym\n"
    "env = gym.make('vmalign/Reach-v0', render_mode='rgb_array', render_size=32)\n"
    "env.reset(seed=0); assert env.render().shape == (32, 32, 3); env.close()\n"
)
_OPTIMISER_STEP = (
    "import torch\n"
    "layer = torch.nn.Linear(3, 1); optimizer = torch.optim.Adam(layer.parameters())\n"
    "layer(torch.ones(3)).sum().backward(); optimizer.step()\n"
)


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param((_PUSHER, _VMALIGN, _OPTIMISER_STEP), id="pusher-vmalign-optimiser"),
        pytest.param((_VMALIGN, _PUSHER, _OPTIMISER_STEP), id="vmalign-pusher-optimiser"),
    ],
)
def test_gymnasium_mujoco_and_vmalign_envs_then_training_share_a_process(steps):
    code = "".join(steps) + "print('survived')\n"
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
    )
    assert result.returncode == 0 and "survived" in result.stdout, (
        f"exit code {result.returncode}; stderr:\n{result.stderr[-4000:]}"
    )
