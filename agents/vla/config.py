"""Configs of VLA runs (``algo: vla-bc | vla-ppo | vla-dpo``), checked at start-up.

Read by the same loader as PPO configs (:func:`agents.config.load_config`, with the
same ``key=value`` overrides); ``algo`` picks the schema::

    algo: vla-bc
    seed: 0
    device: auto
    checkpoint_every: 1000        # gradient steps (vla-bc, vla-dpo) or env steps (vla-ppo)
    eval_episodes: 20
    vla: {preset: tiny, init: null, width: 128}   # VLAConfig settings; init: a saved policy
    # vla-bc: behaviour cloning on datasets written by `vmalign collect`
    datasets: [outputs/data-reach, outputs/data-numberline]
    bc: {steps: 5000, batch_size: 64, lr: 3.0e-4, weight_decay: 0.01, warmup: 100}
    # vla-ppo: PPO fine-tuning against any reward module
    env: vmalign/Push-v0
    env_kwargs: {}
    reward: ground_truth          # and reward_kwargs, reward_checkpoint, reward_frames
    ppo: {n_timesteps: 100000, n_envs: 8, n_steps: 128, ...}
    # vla-dpo: trajectory-wise DPO from preferences over the policy's own rollouts
    dpo: {rollouts: 64, pairs: 128, teacher: oracle, beta: 0.1, ...}

Every section's keys and defaults are listed below; unknown keys, wrong types and
values out of range stop the run with a message naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

VLA_ALGORITHMS = ("vla-bc", "vla-ppo", "vla-dpo")

BC_DEFAULTS: dict[str, Any] = {
    "steps": 5000,           # gradient steps (each: one batch from every dataset)
    "batch_size": 64,        # frames per dataset per step
    "lr": 3.0e-4,
    "weight_decay": 0.01,
    "warmup": 100,           # linear learning-rate warm-up steps, then cosine decay to 10%
    "grad_clip": 1.0,
    "log_every": 50,
    "max_episodes": None,    # use only the first N episodes of each dataset (weak policies)
}
PPO_DEFAULTS: dict[str, Any] = {
    "n_timesteps": 100_000,
    "n_envs": 8,
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 4,
    "lr": 1.0e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "critic_warmup": 5,      # first rollouts train the value head only (a BC policy has no critic)
    "target_kl": None,       # stop an update's epochs early past this KL (None: never)
    "vec_env": "dummy",
}
DPO_DEFAULTS: dict[str, Any] = {
    "rollouts": 64,          # episodes of the starting policy to compare
    "rollouts_per_start": 4, # of them from each start state (pairs share their start)
    "pairs": 128,            # labelled pairs of whole episodes
    "teacher": "oracle",     # a B-Pref simulated teacher (on ground-truth return)
    "teacher_kwargs": {},
    "beta": 0.5,
    "nll_coef": 0.5,         # + coef * mean per-step NLL of the winner (RPO's regulariser;
                             # without it DPO collapsed the test task's policy)
    "epochs": 8,
    "lr": 1.0e-4,
    "batch_pairs": 4,
    "sample_rollouts": True, # rollouts sample actions (diverse pairs) rather than take the mode
}
TOP_DEFAULTS: dict[str, Any] = {
    "algo": None, "seed": 0, "device": "auto", "out": None, "checkpoint_every": 1000,
    "eval_episodes": 20, "vla": {}, "datasets": [], "eval_envs": None, "bc": {},
    "env": None, "env_kwargs": {}, "reward": "ground_truth", "reward_kwargs": {},
    "reward_checkpoint": None, "reward_frames": "render", "ppo": {}, "dpo": {},
}
_USED = {
    "vla-bc": {"datasets", "eval_envs", "bc"},
    "vla-ppo": {"env", "env_kwargs", "reward", "reward_kwargs", "reward_checkpoint",
                "reward_frames", "ppo"},
    "vla-dpo": {"env", "env_kwargs", "dpo"},
}
_COMMON = {"algo", "seed", "device", "out", "checkpoint_every", "eval_episodes", "vla"}


@dataclasses.dataclass
class VLARunConfig:
    """A checked VLA run config; ``raw`` is the resolved mapping saved with the run."""

    algo: str
    seed: int
    device: str
    out: str | None
    checkpoint_every: int
    eval_episodes: int
    vla: dict[str, Any]
    """``preset``, ``init`` (a saved policy folder or None) and VLAConfig overrides."""
    datasets: list[str]
    eval_envs: dict[str, dict[str, Any]]
    """env id -> env kwargs the run is evaluated on."""
    bc: dict[str, Any]
    env: str | None
    env_kwargs: dict[str, Any]
    reward: str
    reward_kwargs: dict[str, Any]
    reward_checkpoint: str | None
    reward_frames: str
    ppo: dict[str, Any]
    dpo: dict[str, Any]
    raw: dict[str, Any]

    @property
    def total_steps(self) -> int:
        """What the run counts to: gradient steps (bc, dpo) or env steps (ppo)."""
        if self.algo == "vla-bc":
            return int(self.bc["steps"])
        if self.algo == "vla-ppo":
            return int(self.ppo["n_timesteps"])
        return int(self.dpo["epochs"])

    # What agents.train.build_reward and agents.vector read, as in a PPO config:
    # the VLA PPO trainer builds its reward and vector env with the same functions.
    preference = None
    frame_stack = 1

    @property
    def n_envs(self) -> int:
        return int(self.ppo["n_envs"]) if self.ppo else 1

    @property
    def vec_env(self) -> str:
        return str(self.ppo.get("vec_env", "dummy")) if self.ppo else "dummy"

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.raw, sort_keys=False)


def check_vla_config(data: dict[str, Any], source: str) -> VLARunConfig:
    """Checks a VLA run config mapping and fills in defaults; raises ``ConfigError``."""
    from agents.config import (
        REWARD_FRAMES,
        ConfigError,
        _check_choice,
        check_section,
        _check_env_id,
        _check_int,
        _check_reward_checkpoint,
    )

    algo = data.get("algo")
    _check_choice(source, "algo", algo, VLA_ALGORITHMS)
    unknown = sorted(set(data) - set(TOP_DEFAULTS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; valid top-level keys for "
                          f"{algo} are {sorted(_COMMON | _USED[algo])}")
    unused = sorted(key for key in data if key not in _COMMON | _USED[algo]
                    and data[key] != TOP_DEFAULTS[key])  # an empty section is no conflict
    if unused:
        raise ConfigError(f"{source}: {unused} do not apply to algo {algo} (its keys are "
                          f"{sorted(_COMMON | _USED[algo])})")
    merged = {**copy.deepcopy(TOP_DEFAULTS), **copy.deepcopy(data)}
    merged["seed"] = _check_int(source, "seed", merged["seed"], minimum=0)
    for key in ("checkpoint_every", "eval_episodes"):
        merged[key] = _check_int(source, key, merged[key], minimum=1)
    if not isinstance(merged["device"], str):
        raise ConfigError(f"{source}: 'device' must be a string (auto, cpu, cuda, cuda:0)")
    vla = _check_vla_section(source, merged["vla"], needs_init=algo != "vla-bc")

    datasets: list[str] = []
    eval_envs: dict[str, dict[str, Any]] = {}
    bc = ppo = dpo = {}
    if algo == "vla-bc":
        datasets, eval_envs = _check_datasets(source, merged["datasets"], merged["eval_envs"])
        bc = check_section(source, "bc", merged["bc"], BC_DEFAULTS)
        for key in ("steps", "batch_size", "warmup", "log_every"):
            bc[key] = _check_int(source, f"bc.{key}", bc[key], minimum=0 if key == "warmup" else 1)
        if bc["max_episodes"] is not None:
            bc["max_episodes"] = _check_int(source, "bc.max_episodes", bc["max_episodes"], 1)
        _check_positive(source, "bc", bc, ("lr",), ("weight_decay", "grad_clip"))
    else:
        if not isinstance(merged["env"], str) or not merged["env"]:
            raise ConfigError(f"{source}: 'env' is required for {algo}: an environment id")
        _check_env_id(merged["env"], source)
        if not isinstance(merged["env_kwargs"], dict):
            raise ConfigError(f"{source}: 'env_kwargs' must be a mapping")
        eval_envs = {merged["env"]: dict(merged["env_kwargs"])}
    if algo == "vla-ppo":
        import rewards

        if merged["reward"] not in rewards.names():
            raise ConfigError(f"{source}: unknown reward {merged['reward']!r}; valid names are "
                              f"{rewards.names()}")
        merged["reward_checkpoint"] = _check_reward_checkpoint(source, merged["reward"],
                                                               merged["reward_checkpoint"])
        _check_choice(source, "reward_frames", merged["reward_frames"], REWARD_FRAMES)
        ppo = check_section(source, "ppo", merged["ppo"], PPO_DEFAULTS)
        for key in ("n_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs"):
            ppo[key] = _check_int(source, f"ppo.{key}", ppo[key], minimum=1)
        ppo["critic_warmup"] = _check_int(source, "ppo.critic_warmup", ppo["critic_warmup"], 0)
        _check_choice(source, "ppo.vec_env", ppo["vec_env"], ("dummy", "subproc"))
        for key in ("gamma", "gae_lambda"):
            if not isinstance(ppo[key], (int, float)) or not 0 <= ppo[key] <= 1:
                raise ConfigError(f"{source}: ppo.{key} must be a number in [0, 1], got {ppo[key]!r}")
        _check_positive(source, "ppo", ppo, ("lr", "clip_range"),
                        ("ent_coef", "vf_coef", "max_grad_norm"))
        if ppo["target_kl"] is not None:
            _check_positive(source, "ppo", ppo, ("target_kl",), ())
        if ppo["batch_size"] > ppo["n_steps"] * ppo["n_envs"]:
            raise ConfigError(f"{source}: ppo.batch_size ({ppo['batch_size']}) is larger than a "
                              f"rollout (n_steps x n_envs = {ppo['n_steps'] * ppo['n_envs']})")
    if algo == "vla-dpo":
        from rewards.teachers import TEACHER_PRESETS

        dpo = check_section(source, "dpo", merged["dpo"], DPO_DEFAULTS)
        for key in ("rollouts", "pairs", "epochs", "batch_pairs"):
            dpo[key] = _check_int(source, f"dpo.{key}", dpo[key], minimum=1)
        dpo["rollouts_per_start"] = _check_int(source, "dpo.rollouts_per_start",
                                               dpo["rollouts_per_start"], minimum=2)
        if dpo["rollouts"] < dpo["rollouts_per_start"]:
            raise ConfigError(f"{source}: dpo.rollouts ({dpo['rollouts']}) must be at least "
                              f"dpo.rollouts_per_start ({dpo['rollouts_per_start']})")
        _check_choice(source, "dpo.teacher", dpo["teacher"], list(TEACHER_PRESETS))
        if not isinstance(dpo["teacher_kwargs"], dict):
            raise ConfigError(f"{source}: dpo.teacher_kwargs must be a mapping")
        _check_positive(source, "dpo", dpo, ("beta", "lr"), ("nll_coef",))
    return VLARunConfig(
        algo=algo, seed=merged["seed"], device=merged["device"], out=merged["out"],
        checkpoint_every=merged["checkpoint_every"], eval_episodes=merged["eval_episodes"],
        vla=vla, datasets=datasets, eval_envs=eval_envs, bc=bc, env=merged["env"],
        env_kwargs=dict(merged["env_kwargs"] or {}), reward=merged["reward"],
        reward_kwargs=dict(merged["reward_kwargs"] or {}),
        reward_checkpoint=merged["reward_checkpoint"], reward_frames=merged["reward_frames"],
        ppo=ppo, dpo=dpo, raw=merged,
    )


def _check_positive(source: str, name: str, section: dict[str, Any], positive: tuple[str, ...],
                    non_negative: tuple[str, ...]) -> None:
    from agents.config import ConfigError

    for key in positive:
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{source}: {name}.{key} must be a number > 0, got {value!r}")
    for key in non_negative:
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{source}: {name}.{key} must be a number >= 0, got {value!r}")


def _check_vla_section(source: str, section: Any, needs_init: bool) -> dict[str, Any]:
    from agents.config import ConfigError
    from agents.vla.model import PRESETS, make_config

    if not isinstance(section, dict):
        raise ConfigError(f"{source}: 'vla' must be a mapping, got {section!r}")
    section = dict(section)
    preset = section.pop("preset", "tiny")
    init = section.pop("init", None)
    if init is not None:
        if not isinstance(init, str) or not (Path(init) / "config.json").is_file():
            raise ConfigError(f"{source}: vla.init {init!r} is not a saved VLA policy folder "
                              f"(a run's checkpoints/step-N/policy, or policy/ of a finished run)")
        init = str(Path(init).resolve())
    elif needs_init:
        raise ConfigError(f"{source}: vla.init is required: the policy to fine-tune (e.g. "
                          f"the final policy/ of a vla-bc run)")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"{source}: vla.preset {preset!r} is not one of {sorted(PRESETS)}")
    if init is None:
        try:
            make_config(preset, **section)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{source}: vla: {error}") from None
    elif section:
        raise ConfigError(f"{source}: vla.init fixes the architecture; drop {sorted(section)}")
    return {"preset": preset, "init": init, **section}


def _check_datasets(source: str, datasets: Any, eval_envs: Any
                    ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    from agents.config import ConfigError, _check_env_id
    from agents.dataset import EpisodeDataset

    if isinstance(datasets, str):
        datasets = [datasets]
    if not isinstance(datasets, list) or not datasets:
        raise ConfigError(f"{source}: 'datasets' must list at least one dataset folder "
                          f"(vmalign collect writes them)")
    folders, envs_seen = [], {}
    for folder in datasets:
        try:
            dataset = EpisodeDataset(folder)
        except (FileNotFoundError, ValueError) as error:
            raise ConfigError(f"{source}: datasets: {error}") from None
        if dataset.num_episodes == 0:
            raise ConfigError(f"{source}: dataset {folder} holds no episodes")
        folders.append(str(Path(folder).resolve()))
        envs_seen.setdefault(dataset.env, dict(dataset.info.get("env_kwargs") or {}))
    if eval_envs is None:
        eval_envs = envs_seen
    if not isinstance(eval_envs, dict):
        raise ConfigError(f"{source}: 'eval_envs' must map env ids to env kwargs")
    for env_id, kwargs in eval_envs.items():
        _check_env_id(env_id, source)
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{source}: eval_envs.{env_id} must be a mapping of env kwargs")
    return folders, {env_id: dict(kwargs) for env_id, kwargs in eval_envs.items()}
