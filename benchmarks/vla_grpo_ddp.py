"""vla-grpo under torchrun: iterations per second of N data-parallel processes
against one process, on the same config in the same run.

Prints one JSON line. Both runs fine-tune the same freshly initialised ``tiny`` VLA
(saved once, so both start from the same weights) on a card game for the same
number of iterations; the figure is each run's training-loop time from its
``train_summary.json`` (the closing evaluation is left out). One process gets every
core (``OMP_NUM_THREADS`` = the core count); the N processes get an equal share of
them. The N-process run plays each chunk of groups in one process (rollouts are
what costs on a CPU) and shares every minibatch (DistributedDataParallel).

``speedup`` = one-process seconds / N-process seconds.

    python benchmarks/vla_grpo_ddp.py [--processes 2] [--iterations 4]
        [--env vmalign/NumberLine-v0] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def write_config(folder: Path, env: str, iterations: int) -> Path:
    import torch
    import yaml

    from agents.vla.model import VLAPolicy, make_config

    torch.manual_seed(0)
    VLAPolicy(make_config("tiny"), device="cpu").save(folder / "init")
    config = {"algo": "vla-grpo", "seed": 0, "device": "cpu", "checkpoint_every": 1000,
              "eval_episodes": 1, "env": env, "vla": {"init": str(folder / "init")},
              "grpo": {"iterations": iterations, "groups": 8, "group_size": 8, "n_epochs": 2,
                       "batch_size": 256, "lr": 1e-5, "parallel": 16}}
    path = folder / "grpo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def timed(config: Path, out: Path, processes: int, threads: int, overrides: list[str]) -> dict:
    command = [sys.executable, "-m", "agents", "train", "--no-progress", "--config",
               str(config), *overrides, "--out", str(out)]
    if processes > 1:
        command[1:3] = ["-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}", "-m", "agents"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads((out / "train_summary.json").read_text())
    return {"processes": processes, "threads_each": threads, "seconds": summary["seconds"],
            "env_steps": summary["env_steps"],
            "iterations_per_s": round(summary["iterations"] / summary["seconds"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--env", default="vmalign/NumberLine-v0")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides for both runs, e.g. grpo.groups=16")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="vmalign-grpo-ddp-") as folder:
        root = Path(folder)
        config = write_config(root, args.env, args.iterations)
        one = timed(config, root / "one", 1, cores, args.overrides)
        many = timed(config, root / "many", args.processes,
                     max(1, cores // args.processes), args.overrides)
    print(json.dumps({"benchmark": "vla_grpo_ddp", "env": args.env,
                      "iterations": args.iterations, "one_process": one,
                      "data_parallel": many,
                      "speedup": round(one["seconds"] / many["seconds"], 2),
                      "cores": cores, "machine": platform.machine()}))


if __name__ == "__main__":
    main()
