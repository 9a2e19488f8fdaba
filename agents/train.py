"""Train PPO on pixels against any env and reward module, from a config.

``vmalign train --config reach_preference [key=value ...]`` (or ``python -m
agents.train ...``) trains stable-baselines3 PPO with a CNN policy on the config's
env, with its reward module swapped in through the batched vector-env wrapper, and
writes to the run folder:

- ``config.yaml``: the resolved config (what ``--resume`` and ``vmalign eval`` read);
- ``progress.csv`` and TensorBoard event files (``tensorboard --logdir RUN``);
- ``checkpoints/step-N/`` every ``checkpoint_every`` steps and at the end;
- ``preferences/``: the labels of the online preference loop (reward: preference);
- ``reward/``: the final learned reward module.

``vmalign train --resume RUN`` continues a run from its latest checkpoint: policy,
optimiser, reward model, preference labels (all of them, including any written after
the checkpoint), RNG states and step counters. Episodes that were running when the
run stopped are started afresh (new seeds), which is all that differs from an
uninterrupted run.

Every key of the config is checked, and one env and the reward module are built,
before training starts: a bad config stops in seconds with a message naming the key.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from agents.config import TrainConfig, load_config

CONFIG_FILE = "config.yaml"
PROGRESS_FILE = "progress.csv"
PREFERENCES = "preferences"


def build_reward(config: TrainConfig, device: str, checkpoint_folder: Path | None = None) -> Any:
    """The config's reward module: from a training checkpoint's ``reward/`` (resume),
    else from ``reward_checkpoint``, else made fresh from ``reward_kwargs``."""
    import rewards

    saved = checkpoint_folder if checkpoint_folder is not None else config.reward_checkpoint
    accepted = _parameters(rewards.get(config.reward))
    if saved is not None:
        overrides = dict(config.reward_kwargs) if checkpoint_folder is None else {}
        if "device" in accepted:
            overrides.setdefault("device", device)
        return rewards.load(saved, **overrides)
    kwargs = dict(config.reward_kwargs)
    if config.reward == "preference":
        kwargs.setdefault("seed", config.seed)
    if "device" in accepted:
        kwargs.setdefault("device", device)
    return rewards.make(config.reward, **kwargs)


def build_model(config: TrainConfig, venv: Any, device: str, rollout_buffer: dict[str, Any] | None = None) -> Any:
    """The PPO learner the config describes, on ``venv``."""
    from stable_baselines3 import PPO

    extra = rollout_buffer or {}
    return PPO(config.policy, venv, seed=config.seed, device=device, verbose=0,
               policy_kwargs=config.policy_arguments(), **extra, **config.ppo_arguments())


def normalize_rewards(config: TrainConfig, venv: Any) -> Any:
    """``venv`` under SB3's ``VecNormalize``, scaling rewards only (``normalize``)."""
    from stable_baselines3.common.vec_env import VecNormalize

    gamma = config.ppo_kwargs.get("gamma", 0.99)  # PPO's default: the return it scales by
    return VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=gamma,
                        **config.normalize)


def return_statistics(venv: Any) -> dict[str, float]:
    """The reward normaliser's running statistics, for a checkpoint."""
    stats = venv.ret_rms
    return {"mean": float(stats.mean), "var": float(stats.var), "count": float(stats.count)}


def set_return_statistics(venv: Any, state: dict[str, float]) -> None:
    """Restores :func:`return_statistics` (a resumed run scales rewards as before)."""
    venv.ret_rms.mean = float(state["mean"])
    venv.ret_rms.var = float(state["var"])
    venv.ret_rms.count = float(state["count"])


LENGTH_KEYS = {"ppo": "hyperparams.n_timesteps", "vla-bc": "bc.steps",
               "vla-ppo": "ppo.n_timesteps", "vla-dpo": "dpo.epochs"}
"""The one key ``--resume`` may override per algo: how long the run goes on."""


def train(config: Any, run_dir: Path, resume: bool = False, progress_bar: bool = True,
          log: Any = print) -> dict[str, Any]:
    """Trains (or, with ``resume``, continues) the run in ``run_dir``; returns a summary.

    ``config`` is a :class:`TrainConfig` (PPO) or a VLA run config (``algo: vla-*``)."""
    if config.algo != "ppo":
        return train_vla(config, run_dir, resume=resume, log=log)
    from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

    from agents import checkpoint as ckpt
    from agents.callbacks import AppendingCSV, EpisodeMetrics, PeriodicCheckpoint, ProgressBar
    from agents.callbacks import truncate_log
    from agents.preference_loop import PreferenceLoop, import_labels
    from agents.relabel import RelabelRolloutBuffer
    from agents.vector import check_env_and_reward, make_training_env, needs_rendered_frames
    from rewards.device import get_device
    from rewards.preference_store import PreferenceStore

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config)  # the run folder describes itself (resume and eval read it)
    device = str(get_device(None if config.device == "auto" else config.device))
    restored = ckpt.latest_checkpoint(run_dir) if resume else None
    if resume and restored is None:
        log(f"vmalign train: {run_dir} has no checkpoint yet; starting it from step 0")

    # Start-up checks that would otherwise fail late: the reward module and one env.
    reward = build_reward(config, device, restored.reward_folder if restored else None)
    if config.normalize is not None and reward.needs_trajectory:
        raise ValueError(f"hyperparams.normalize does not apply to the {reward.name} reward: "
                         f"it rewrites whole episodes in the rollout buffer after the "
                         f"normaliser has seen each step; set normalize: false")
    frame_shape = check_env_and_reward(config, reward, needs_rendered_frames(config, reward))
    learned = reward.name if reward.tensors() else None
    if config.preference is not None:
        store = PreferenceStore(run_dir / PREFERENCES)
        if config.preference["initial_labels"]:
            copied = import_labels(store, config.preference["initial_labels"],
                                   (config.preference["segment"], *frame_shape))
            if copied:
                log(f"vmalign train: {copied} labels from {config.preference['initial_labels']} "
                    f"copied into {store.folder}")

    start = restored.num_timesteps if restored else 0
    venv, layer = make_training_env(config, reward, config.n_envs, seed=config.seed + start)
    if config.normalize is not None:
        venv = normalize_rewards(config, venv)
    buffer = None
    if reward.needs_trajectory:
        buffer = {"rollout_buffer_class": RelabelRolloutBuffer,
                  "rollout_buffer_kwargs": {"relabel": lambda: layer.relabel(reward)}}
    model = build_model(config, venv, device, buffer)

    trainer_state: dict[str, Any] = restored.state.get("trainer", {}) if restored else {}
    if restored:
        ckpt.load_policy_weights(restored, model)
        ckpt.restore_counters(restored, model)
        venv.seed(config.seed + start)  # fresh episodes, not the first run's again
        if config.normalize is not None and "normalize" in trainer_state:
            set_return_statistics(venv, trainer_state["normalize"])
        moved = truncate_log(run_dir / PROGRESS_FILE, start)
        log(f"vmalign train: resuming {run_dir} from step {start}"
            + (f" ({moved} log rows after it moved to progress.discarded.csv)" if moved else ""))
    model.set_logger(Logger(str(run_dir), [AppendingCSV(run_dir / PROGRESS_FILE),
                                           TensorBoardOutputFormat(str(run_dir))]))

    metrics = EpisodeMetrics(relabelled=(lambda: layer.last_rewards) if buffer else None,
                             raw_rewards=venv.get_original_reward if config.normalize else None)
    callbacks: list[Any] = [metrics]
    loop = None
    if config.preference is not None:
        loop = PreferenceLoop(layer, reward, store, config.preference, seed=config.seed,
                              state=trainer_state.get("preference"))
        callbacks.append(loop)

    def save() -> Path:
        state: dict[str, Any] = {"preference": loop.state()} if loop else {}
        if config.normalize is not None:
            state["normalize"] = return_statistics(venv)
        return ckpt.save_checkpoint(run_dir, model, reward if learned else None, state)

    callbacks.append(PeriodicCheckpoint(config.checkpoint_every, save, start=start))
    if progress_bar:
        callbacks.append(ProgressBar(config.n_timesteps, start, metrics))

    started = time.perf_counter()
    remaining = config.n_timesteps - start
    try:
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=callbacks, log_interval=1,
                        reset_num_timesteps=False)
        final = save()
        if learned:
            import rewards

            rewards.save(reward, run_dir / "reward")
    finally:
        venv.close()
    seconds = time.perf_counter() - started
    summary = {
        "env": config.env, "reward": config.reward, "steps": int(model.num_timesteps),
        "resumed_from": start, "seconds": round(seconds, 1),
        "fps": round((model.num_timesteps - start) / seconds, 1) if seconds > 0 else None,
        "gt_return": _mean(metrics.gt_returns), "success_rate": _mean(metrics.successes),
        "learned_return": _mean(metrics.learned_returns),
        "checkpoint": str(final), "device": device,
    }
    if loop is not None:
        summary.update(queries_asked=loop.asked, labels=len(loop.store),
                       reward_training_accuracy=loop.last_accuracy)
    return summary


def train_vla(config: Any, run_dir: Path, resume: bool = False, log: Any = print) -> dict[str, Any]:
    """A VLA run: behaviour cloning, PPO fine-tuning or DPO (agents/vla/)."""
    import importlib

    from rewards.device import get_device

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config)
    device = str(get_device(None if config.device == "auto" else config.device))
    trainer = importlib.import_module(f"agents.vla.{config.algo.removeprefix('vla-')}")
    return trainer.train(config, run_dir, resume=resume, log=log, device=device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a YAML config file, or the name of a shipped one "
                                         "(agents/configs/NAME.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. hyperparams.n_timesteps=50000 seed=1")
    parser.add_argument("--algo", choices=sorted(LENGTH_KEYS),
                        help="ppo (default) or a VLA trainer; without --config a VLA algo "
                             "starts from its shipped config (agents/configs/vla_bc.yaml, ...)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue this run from its latest checkpoint (only its length "
                             "may be overridden: hyperparams.n_timesteps, bc.steps, "
                             "ppo.n_timesteps or dpo.epochs)")
    parser.add_argument("--out", help="run folder (default: the config's 'out', else "
                                      "outputs/train-<env>-<reward>-<time>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def prepare_run(args: argparse.Namespace) -> tuple[Any, Path, bool]:
    """The config and run folder for ``args`` (new run, or ``--resume``)."""
    from agents.output import make_output_dir

    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / CONFIG_FILE
        if not saved.is_file():
            raise FileNotFoundError(f"{saved} not found: {run_dir} is not a vmalign run folder")
        if args.config or args.algo:
            raise ValueError("--resume continues a run with its own config; leave out "
                             "--config and --algo")
        length = LENGTH_KEYS[load_config(saved).algo]
        allowed = [o for o in args.overrides if o.split("=", 1)[0] == length]
        if len(allowed) != len(args.overrides):
            raise ValueError(f"with --resume only {length}=N may be overridden "
                             "(the rest of a run's config is fixed)")
        return load_config(saved, allowed), run_dir, True
    overrides = list(args.overrides) + ([f"algo={args.algo}"] if args.algo else [])
    config_name = args.config
    if config_name is None and args.algo and args.algo != "ppo":
        config_name = args.algo.replace("-", "_")
    if not config_name:
        raise ValueError("give --config FILE_OR_NAME (e.g. --config reach_ground_truth), "
                         "--algo vla-bc|vla-ppo|vla-dpo, or --resume RUN_DIR")
    config = load_config(config_name, overrides)
    if config.env:
        name = config.env.split("/")[-1].removesuffix("-v0").lower()
    else:
        name = "multitask"
    kind = config.reward if config.algo in ("ppo", "vla-ppo") else ""
    prefix = "-".join(part for part in ("train", config.algo if config.algo != "ppo" else "",
                                        name, kind) if part)
    run_dir = make_output_dir(args.out or config.out, prefix=prefix)
    return config, run_dir, False


def write_config(run_dir: Path, config: Any) -> None:
    """Writes the resolved config to ``RUN/config.yaml`` (what resume and eval read)."""
    from rewards.durable import atomic_write

    atomic_write(run_dir / CONFIG_FILE, lambda handle: handle.write(config.to_yaml().encode()))


def run(args: argparse.Namespace) -> int:
    config, run_dir, resume = prepare_run(args)
    if config.algo != "ppo":
        print(f"vmalign train: {config.algo}, {config.total_steps} "
              f"{'epochs' if config.algo == 'vla-dpo' else 'steps'}; writing to {run_dir}")
        summary = train(config, run_dir, resume=resume)
        print(f"vmalign train: done in {summary['seconds']} s; evaluation "
              f"{json.dumps(summary['eval'])}; run folder {run_dir}")
        return 0
    print(f"vmalign train: {config.env} with the {config.reward} reward, "
          f"{config.n_timesteps} steps; writing to {run_dir}")
    summary = train(config, run_dir, resume=resume, progress_bar=not args.no_progress)
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"vmalign train: done, {summary['steps']} steps in {summary['seconds']} s "
          f"({summary['fps']} steps/s); ground-truth return {summary['gt_return']}, "
          f"success rate {summary['success_rate']}; run folder {run_dir}")
    return 0


def _mean(values: Any) -> float | None:
    values = list(values)
    return round(float(sum(values) / len(values)), 4) if values else None


def _parameters(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)


def main(argv: list[str] | None = None) -> int:
    from agents.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
