"""Registration: ids exist after `import envs`, and `envs:` ids need no import."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

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


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
@pytest.mark.parametrize("mode", ["human", "rgb_array_list", "depth"])
def test_window_and_unknown_render_modes_fail_at_make(env_id, mode):
    # Gymnasium's make() used to swap "human" for "rgb_array" plus its HumanRendering
    # wrapper, which failed only at reset() ("pygame is not installed").
    with pytest.raises(ValueError, match=r"offscreen.*\[None, 'rgb_array'\]") as error:
        gym.make(env_id, render_mode=mode)
    assert f"render_mode={mode!r}" in str(error.value)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_allowed_render_modes_specs_and_metadata_still_work(env_id):
    spec = gym.spec(env_id)
    assert spec.id == env_id
    for mode in (None, "rgb_array"):
        env = gym.make(env_id, render_mode=mode)
        assert env.render_mode == mode
        assert env.unwrapped.render_mode == mode
        assert env.metadata["render_modes"] == ["rgb_array"]  # the class's own metadata
        assert type(env.unwrapped).metadata is env.unwrapped.metadata
        env.close()
    # A pickled spec (what a subprocess vector env receives) still makes the env.
    env = gym.make(pickle.loads(pickle.dumps(spec)), render_mode="rgb_array")
    assert env.spec.id == env_id and env.render_mode == "rgb_array"
    env.close()
