"""Registration: ids exist after `import envs`, and `envs:` ids need no import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym

import envs

REPO = Path(__file__).resolve().parents[1]


def test_import_registers_every_id():
    for env_id in envs.ENV_IDS:
        assert env_id in gym.registry, env_id
    assert len(set(envs.ENV_IDS)) == len(envs.ENV_IDS)


def test_module_prefixed_id_works_without_prior_import():
    # A fresh interpreter with no MUJOCO_GL set: `envs` must register the ids and
    # choose a headless GL backend on its own.
    environment = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "LP_NUM_THREADS")}
    environment["PYTHONPATH"] = str(REPO)
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('envs:vmalign/Push-v0')\n"
        "obs, info = env.reset(seed=0)\n"
        "print(obs.shape, obs.dtype, info['instruction'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environment, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "(64, 64, 3) uint8 push the" in result.stdout


def test_rendering_then_training_in_one_process_does_not_crash():
    # Mesa's llvmpipe and triton (installed with CUDA builds of torch, imported by
    # torch's optimisers) both bring an LLVM; in the wrong order the process segfaults.
    code = (
        "import envs, gymnasium as gym, torch\n"
        "env = gym.make('vmalign/Push-v0', render_mode='rgb_array', render_size=32)\n"
        "env.reset(seed=0); env.render()\n"
        "layer = torch.nn.Linear(3, 1); optimizer = torch.optim.Adam(layer.parameters())\n"
        "layer(torch.ones(3)).sum().backward(); optimizer.step()\n"
        "print('trained')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0 and "trained" in result.stdout, result.stderr[-2000:]
