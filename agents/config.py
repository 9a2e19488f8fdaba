"""Training configs: YAML files with rl-zoo key names, checked before anything runs.

A config names an environment, a reward module and the PPO hyperparameters::

    env: vmalign/Reach-v0
    env_kwargs: {obs_size: 64, render_size: 64}
    reward: preference            # any name in rewards.names()
    reward_kwargs: {}             # its arguments (rewards.make)
    reward_checkpoint: null       # or a module saved by rewards.save / vmalign reward-train
    preference:                   # the online preference loop (reward: preference);
                                  # "preference: false" trains on a fixed reward
                                  # (e.g. reward_checkpoint: DIR)
      teacher: oracle
      total_queries: 400
    seed: 0
    hyperparams:                  # rl-zoo keys; the rest go to stable-baselines3 PPO
      n_timesteps: 200000
      n_envs: 8
      policy: CnnPolicy
      frame_stack: 2
      learning_rate: lin_3.0e-4   # lin_X: linear decay from X to 0, as in rl-zoo
      n_steps: 128

``key=value`` overrides on the command line address nested keys with dots
(``hyperparams.n_timesteps=50000``, ``env_kwargs.obs_size=84``); values are read as
YAML (``1e-3``, ``true``, ``[64, 64]``). Every key is checked at start-up: an unknown
key, a wrong type or a value out of range stops the run with a message naming the
key and what is allowed, before any environment steps.

``hyperparams.normalize: true`` is rl-zoo's reward normalisation (SB3's
``VecNormalize`` with ``norm_obs=False``: pixels are already scaled by the CNN
policy): PPO trains on rewards divided by a running standard deviation of the
discounted return, which keeps the value loss from swamping the policy's gradient
in the CNN both share when rewards are large or long-horizon. Logged returns stay
unnormalised, and the statistics are checkpointed with the policy.

rl-zoo writes ``policy_kwargs`` as a Python string it evaluates; here it is a YAML
mapping, ``activation_fn`` is a name (``relu``, ``tanh``, ``elu``, ``leaky_relu``,
``gelu``, ``silu``) and so is ``features_extractor_class`` (``NatureCNN``,
``PixelCNN``: :mod:`agents.encoders`), so a config never executes code.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""Where the shipped configs live (``agents/configs/*.yaml``)."""

ALGORITHMS = ("ppo", "vla-bc", "vla-ppo", "vla-dpo")
"""``ppo`` trains stable-baselines3 PPO (this module's schema); the ``vla-*`` ones train
the VLA policy (schema in :mod:`agents.vla.config`)."""
VEC_ENVS = ("dummy", "subproc")
REWARD_FRAMES = ("render", "observation")
ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu")
POLICIES = ("CnnPolicy", "MlpPolicy", "MultiInputPolicy")
SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")
_LINEAR = re.compile(r"^lin_(.+)$")

# rl-zoo keys handled here rather than passed to PPO.
_ZOO_KEYS = {
    "n_timesteps": "total environment steps to train for (required)",
    "n_envs": "parallel environments (default 8)",
    "policy": f"one of {list(POLICIES)} (default CnnPolicy)",
    "frame_stack": "stack this many observations (default 1: none)",
    "policy_kwargs": "mapping passed to the policy (net_arch, activation_fn, ...)",
    "normalize": "true: scale rewards by a running std of the discounted return "
                 "(SB3 VecNormalize, norm_obs off); or {norm_reward: true, clip_reward: X}",
}
# PPO arguments a config must not set: the trainer owns them.
_PPO_RESERVED = {"self", "policy", "env", "seed", "device", "verbose", "tensorboard_log",
                 "_init_setup_model", "rollout_buffer_class", "rollout_buffer_kwargs"}

PREFERENCE_DEFAULTS: dict[str, Any] = {
    "teacher": "oracle",        # a B-Pref simulated teacher, or "clip"
    "teacher_kwargs": {},       # e.g. {beta: 10} or {eps_mistake: 0.1}
    "total_queries": 500,       # the label budget (pairs asked, skipped ones included)
    "initial_queries": 100,     # asked after the first rollout (random-ish policy)
    "queries_per_round": 50,    # asked at every later round
    "update_every": 20000,      # environment steps between rounds
    "segment": 10,              # steps per segment
    "query": "disagreement",    # uniform, disagreement or entropy
    "pairing": "same_episode",  # same_episode or any (rewards.query)
    "pool_factor": 4,           # candidates drawn per query asked
    "epochs": 20,               # reward-training epochs per round
    "train_pairs": None,        # labels per round: null = all so far; N = the new ones
                                # plus a uniform sample of older ones, N in all
    "lr": 1.0e-3,               # reward-training Adam learning rate
    "buffer_steps": 1000,       # recent steps kept per env to cut segments from
    "initial_labels": None,     # a preference store folder whose labels seed the run
}
"""The online preference loop's keys and defaults (``preference:`` in a config)."""

TOP_LEVEL_DEFAULTS: dict[str, Any] = {
    "env": None,
    "env_kwargs": {},
    "reward": "ground_truth",
    "reward_kwargs": {},
    "reward_checkpoint": None,
    "reward_frames": "render",
    "preference": None,
    "algo": "ppo",
    "seed": 0,
    "device": "auto",
    "vec_env": "dummy",
    "checkpoint_every": 50000,
    "eval_episodes": 20,
    "out": None,
    "hyperparams": {},
}
"""Every top-level key with its default (``env`` and ``hyperparams.n_timesteps`` are required)."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, but ``1e-3`` (no dot) is a float, as researchers write it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    """YAML text -> Python values (safe: no objects are built)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class ConfigError(ValueError):
    """A config that cannot run: the message names the key and what is allowed."""


@dataclasses.dataclass
class TrainConfig:
    """A checked training config. ``raw`` is the resolved mapping saved with a run."""

    env: str
    env_kwargs: dict[str, Any]
    reward: str
    reward_kwargs: dict[str, Any]
    reward_checkpoint: str | None
    """A saved module (``rewards.save``) to start from instead of ``rewards.make``;
    ``reward_kwargs`` then override its non-architecture arguments."""
    reward_frames: str
    preference: dict[str, Any] | None
    algo: str
    seed: int
    device: str
    vec_env: str
    checkpoint_every: int
    eval_episodes: int
    out: str | None
    n_timesteps: int
    n_envs: int
    policy: str
    frame_stack: int
    policy_kwargs: dict[str, Any]
    ppo_kwargs: dict[str, Any]
    """PPO constructor arguments other than the policy, schedules still as written."""
    normalize: dict[str, Any] | None
    """``VecNormalize`` arguments for reward normalisation, or None for none."""
    raw: dict[str, Any]

    def ppo_arguments(self) -> dict[str, Any]:
        """PPO keyword arguments with ``lin_X`` schedules turned into functions."""
        return {key: parse_schedule(key, value) if key in SCHEDULED else value
                for key, value in self.ppo_kwargs.items()}

    def policy_arguments(self) -> dict[str, Any]:
        """``policy_kwargs`` with ``activation_fn`` and ``features_extractor_class``
        turned from names into classes."""
        kwargs = copy.deepcopy(self.policy_kwargs)
        if "features_extractor_class" in kwargs:
            from agents.encoders import FEATURES_EXTRACTORS

            kwargs["features_extractor_class"] = FEATURES_EXTRACTORS[
                kwargs["features_extractor_class"]]
        if "activation_fn" in kwargs:
            from torch import nn

            kwargs["activation_fn"] = {
                "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
                "gelu": nn.GELU, "silu": nn.SiLU,
            }[kwargs["activation_fn"]]
        return kwargs

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)


def linear_schedule(initial: float) -> Callable[[float], float]:
    """rl-zoo's ``lin_X``: X times the fraction of training remaining (1 -> 0)."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    schedule.initial = initial  # type: ignore[attr-defined]
    return schedule


def parse_schedule(key: str, value: Any) -> float | Callable[[float], float]:
    """A number stays a constant; ``"lin_X"`` becomes :func:`linear_schedule` (X)."""
    if isinstance(value, str):
        match = _LINEAR.match(value)
        if match:
            try:
                return linear_schedule(float(match.group(1)))
            except ValueError:
                pass
        raise ConfigError(f"hyperparams.{key}: {value!r} is not a number or 'lin_<number>' "
                          f"(e.g. lin_3.0e-4)")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"hyperparams.{key}: expected a number or 'lin_<number>', "
                          f"got {value!r}")
    return float(value)


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Any:
    """Reads the YAML config at ``path`` (a file, or the name of a shipped config such
    as ``reach_ground_truth``), applies ``key=value`` overrides and checks everything.

    Returns a :class:`TrainConfig` (``algo: ppo``, the default) or, for ``algo:
    vla-bc | vla-ppo | vla-dpo``, an :class:`agents.vla.config.VLARunConfig`."""
    file = resolve_config_path(path)
    try:
        data = read_yaml(file.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{file} is not valid YAML: {error}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a mapping of config keys, got {type(data).__name__}")
    data = apply_overrides(data, overrides)
    if str(data.get("algo", "ppo")).startswith("vla-"):
        from agents.vla.config import check_vla_config

        return check_vla_config(data, source=str(file))
    return check_config(data, source=str(file))


def resolve_config_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if it is a file, else the shipped config of that name."""
    file = Path(path)
    if file.is_file():
        return file
    shipped = CONFIG_DIR / f"{Path(path).name.removesuffix('.yaml')}.yaml"
    if shipped.is_file() and file.parent == Path("."):
        return shipped
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"no config file {str(path)!r}; give a path to a YAML file or one "
                            f"of the shipped configs: {names}")


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``dotted.key=yaml_value`` set."""
    data = copy.deepcopy(data)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not key=value (e.g. "
                              f"hyperparams.n_timesteps=50000)")
        try:
            value = read_yaml(text) if text else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"override {override!r}: the value is not valid YAML ({error})") from None
        parts = key.split(".")
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {'.'.join(parts[:depth + 1])} is "
                                  f"{child!r}, not a mapping")
            node = child
        node[parts[-1]] = value
    return data


def check_config(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Checks a config mapping and fills in defaults; raises :class:`ConfigError`."""
    unknown = sorted(set(data) - set(TOP_LEVEL_DEFAULTS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; valid top-level keys are "
                          f"{sorted(TOP_LEVEL_DEFAULTS)}")
    merged = {**copy.deepcopy(TOP_LEVEL_DEFAULTS), **copy.deepcopy(data)}

    env = merged["env"]
    if not isinstance(env, str) or not env:
        raise ConfigError(f"{source}: 'env' is required: an environment id such as "
                          f"vmalign/Reach-v0")
    _check_env_id(env, source)
    for key in ("env_kwargs", "reward_kwargs", "hyperparams"):
        if not isinstance(merged[key], dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {merged[key]!r}")
    _check_choice(source, "algo", merged["algo"], ALGORITHMS)
    _check_choice(source, "vec_env", merged["vec_env"], VEC_ENVS)
    _check_choice(source, "reward_frames", merged["reward_frames"], REWARD_FRAMES)
    reward = merged["reward"]
    import rewards

    if reward not in rewards.names():
        raise ConfigError(f"{source}: unknown reward {reward!r}; valid names are {rewards.names()}")
    merged["reward_checkpoint"] = _check_reward_checkpoint(source, reward,
                                                           merged["reward_checkpoint"])
    for key in ("seed",):
        merged[key] = _check_int(source, key, merged[key], minimum=0)
    for key in ("checkpoint_every", "eval_episodes"):
        merged[key] = _check_int(source, key, merged[key], minimum=1)
    if not isinstance(merged["device"], str):
        raise ConfigError(f"{source}: 'device' must be a string (auto, cpu, cuda, cuda:0)")
    if merged["out"] is not None and not isinstance(merged["out"], str):
        raise ConfigError(f"{source}: 'out' must be a folder path or null")

    merged["preference"] = _check_preference(source, reward, merged["preference"])
    hyper = dict(merged["hyperparams"])
    n_timesteps = hyper.pop("n_timesteps", None)
    if n_timesteps is None:
        raise ConfigError(f"{source}: 'hyperparams.n_timesteps' is required (total environment "
                          f"steps)")
    n_timesteps = _check_int(source, "hyperparams.n_timesteps", n_timesteps, minimum=1)
    n_envs = hyper.pop("n_envs", 8)
    n_envs = _check_int(source, "hyperparams.n_envs", n_envs, minimum=1)
    policy = hyper.pop("policy", "CnnPolicy")
    _check_choice(source, "hyperparams.policy", policy, POLICIES)
    frame_stack = hyper.pop("frame_stack", 1)
    frame_stack = _check_int(source, "hyperparams.frame_stack", frame_stack, minimum=1)
    policy_kwargs = hyper.pop("policy_kwargs", {}) or {}
    if not isinstance(policy_kwargs, dict):
        raise ConfigError(f"{source}: 'hyperparams.policy_kwargs' must be a mapping, got "
                          f"{policy_kwargs!r}")
    activation = policy_kwargs.get("activation_fn")
    if activation is not None:
        _check_choice(source, "hyperparams.policy_kwargs.activation_fn", activation, ACTIVATIONS)
    extractor = policy_kwargs.get("features_extractor_class")
    if extractor is not None:
        from agents.encoders import FEATURES_EXTRACTORS

        _check_choice(source, "hyperparams.policy_kwargs.features_extractor_class", extractor,
                      sorted(FEATURES_EXTRACTORS))
    extractor_kwargs = policy_kwargs.get("features_extractor_kwargs", {})
    if not isinstance(extractor_kwargs, dict):
        raise ConfigError(f"{source}: 'hyperparams.policy_kwargs.features_extractor_kwargs' "
                          f"must be a mapping, got {extractor_kwargs!r}")
    normalize = _check_normalize(source, hyper.pop("normalize", False))
    ppo_kwargs = _check_ppo_kwargs(source, hyper, n_envs)
    return TrainConfig(
        env=env, env_kwargs=merged["env_kwargs"], reward=reward,
        reward_kwargs=merged["reward_kwargs"], reward_checkpoint=merged["reward_checkpoint"],
        reward_frames=merged["reward_frames"],
        preference=merged["preference"], algo=merged["algo"], seed=int(merged["seed"]),
        device=merged["device"], vec_env=merged["vec_env"],
        checkpoint_every=int(merged["checkpoint_every"]),
        eval_episodes=int(merged["eval_episodes"]), out=merged["out"],
        n_timesteps=int(n_timesteps), n_envs=int(n_envs), policy=policy,
        frame_stack=int(frame_stack), policy_kwargs=policy_kwargs, ppo_kwargs=ppo_kwargs,
        normalize=normalize, raw=merged,
    )


def _check_normalize(source: str, value: Any) -> dict[str, Any] | None:
    """``hyperparams.normalize`` as ``VecNormalize`` keyword arguments (None: off)."""
    key = "hyperparams.normalize"
    if isinstance(value, bool):
        return {"clip_reward": 10.0} if value else None
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be true, false or a mapping with keys "
                          f"norm_reward and clip_reward, got {value!r}")
    unknown = sorted(set(value) - {"norm_obs", "norm_reward", "clip_reward"})
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {key}.{unknown}; valid keys are "
                          f"['clip_reward', 'norm_obs', 'norm_reward']")
    if value.get("norm_obs", False) is not False:
        raise ConfigError(f"{source}: {key}.norm_obs must be false: observations are "
                          f"pixels, which the CNN policy scales itself")
    norm_reward = value.get("norm_reward", True)
    if not isinstance(norm_reward, bool):
        raise ConfigError(f"{source}: {key}.norm_reward must be true or false, "
                          f"got {norm_reward!r}")
    clip = value.get("clip_reward", 10.0)
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
        raise ConfigError(f"{source}: {key}.clip_reward must be a number > 0, got {clip!r}")
    return {"clip_reward": float(clip)} if norm_reward else None


def _check_reward_checkpoint(source: str, reward: str, folder: Any) -> str | None:
    """The saved module's folder, checked to hold a module called ``reward``."""
    if folder is None:
        return None
    if not isinstance(folder, str) or not folder:
        raise ConfigError(f"{source}: 'reward_checkpoint' must be a folder path or null, "
                          f"got {folder!r}")
    from rewards.durable import read_json_header
    from rewards.serialization import CONFIG_FILE, FORMAT, VERSION

    header_file = Path(folder) / CONFIG_FILE
    if not header_file.is_file():
        raise ConfigError(f"{source}: reward_checkpoint {folder!r} is not a saved reward module "
                          f"(no {CONFIG_FILE}; vmalign reward-train writes one to OUT/reward)")
    try:
        header = read_json_header(header_file, FORMAT, VERSION, "a vmalign reward module config")
    except ValueError as error:
        raise ConfigError(f"{source}: reward_checkpoint: {error}") from None
    if header.get("module") != reward:
        raise ConfigError(f"{source}: reward_checkpoint {folder!r} holds a "
                          f"{header.get('module')!r} module but reward is {reward!r}")
    return str(Path(folder).resolve())


def _check_env_id(env: str, source: str) -> None:
    import gymnasium as gym

    import envs  # noqa: F401  (registers the vmalign ids)

    if env not in gym.registry:
        vmalign = sorted(name for name in gym.registry if name.startswith("vmalign/"))
        raise ConfigError(f"{source}: unknown env {env!r}; the vmalign ids are {vmalign}")


def _check_preference(source: str, reward: str, section: Any) -> dict[str, Any] | None:
    if section is False:
        return None  # "preference: false": a preference reward trained elsewhere, no loop
    if section is None:
        return dict(PREFERENCE_DEFAULTS) if reward == "preference" else None
    if reward != "preference":
        raise ConfigError(f"{source}: a 'preference' section needs reward: preference "
                          f"(got reward: {reward})")
    merged = check_section(source, "preference", section, PREFERENCE_DEFAULTS)
    from rewards.query import PAIRINGS, QUERY_METHODS
    from rewards.teachers import TEACHER_PRESETS

    _check_choice(source, "preference.teacher", merged["teacher"], [*TEACHER_PRESETS, "clip"])
    _check_choice(source, "preference.query", merged["query"], QUERY_METHODS)
    _check_choice(source, "preference.pairing", merged["pairing"], PAIRINGS)
    if not isinstance(merged["teacher_kwargs"], dict):
        raise ConfigError(f"{source}: 'preference.teacher_kwargs' must be a mapping")
    for key in ("total_queries", "initial_queries"):
        merged[key] = _check_int(source, f"preference.{key}", merged[key], minimum=0)
    for key in ("queries_per_round", "update_every", "segment", "pool_factor", "epochs",
                "buffer_steps"):
        merged[key] = _check_int(source, f"preference.{key}", merged[key], minimum=1)
    if isinstance(merged["lr"], bool) or not isinstance(merged["lr"], (int, float)) \
            or not merged["lr"] > 0:
        raise ConfigError(f"{source}: preference.lr must be a number > 0, got {merged['lr']!r}")
    if merged["train_pairs"] is not None:
        try:
            merged["train_pairs"] = _check_int(source, "preference.train_pairs",
                                               merged["train_pairs"], minimum=1)
        except ConfigError as error:
            raise ConfigError(f"{error} (or null: train on every label)") from None
    if merged["initial_labels"] is not None:
        merged["initial_labels"] = _check_store_folder(source, merged["initial_labels"])
    if merged["buffer_steps"] <= merged["segment"]:
        raise ConfigError(f"{source}: preference.buffer_steps ({merged['buffer_steps']}) must be "
                          f"more than preference.segment ({merged['segment']})")
    return merged


def _check_store_folder(source: str, value: Any) -> str:
    """``preference.initial_labels``: an existing, non-empty preference store."""
    from rewards.preference_store import HEADER_FILE

    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ConfigError(f"{source}: preference.initial_labels must be a folder path, got {value!r}")
    if not (Path(value) / HEADER_FILE).is_file():
        raise ConfigError(f"{source}: preference.initial_labels: {value} is not a preference "
                          f"store (a folder with {HEADER_FILE}, such as reward-train's "
                          f"OUT/preferences or a training run's preferences/)")
    return str(value)


def check_section(source: str, name: str, section: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """A config section (a mapping, or null for all defaults) merged over ``defaults``;
    an unknown key stops with the valid ones listed."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: '{name}' must be a mapping, got {section!r}")
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {name}.{unknown}; valid keys are "
                          f"{sorted(defaults)}")
    return {**copy.deepcopy(defaults), **section}


def _check_ppo_kwargs(source: str, hyper: dict[str, Any], n_envs: int) -> dict[str, Any]:
    from stable_baselines3 import PPO

    signature = inspect.signature(PPO.__init__).parameters
    allowed = sorted(set(signature) - _PPO_RESERVED)
    unknown = sorted(set(hyper) - set(allowed))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) hyperparams.{unknown}; valid keys are "
                          f"{sorted([*_ZOO_KEYS, *allowed])}")
    for key in SCHEDULED:
        if key in hyper and hyper[key] is not None:
            parse_schedule(key, hyper[key])
    for key in ("n_steps", "batch_size", "n_epochs"):
        if key in hyper:
            hyper[key] = _check_int(source, f"hyperparams.{key}", hyper[key], minimum=1)
    for key in ("gamma", "gae_lambda"):
        if key in hyper and not (isinstance(hyper[key], (int, float)) and 0 <= hyper[key] <= 1):
            raise ConfigError(f"{source}: hyperparams.{key} must be a number in [0, 1], got "
                              f"{hyper[key]!r}")
    for key in ("ent_coef", "vf_coef", "max_grad_norm"):
        if key in hyper and not (isinstance(hyper[key], (int, float)) and hyper[key] >= 0):
            raise ConfigError(f"{source}: hyperparams.{key} must be a number >= 0, got "
                              f"{hyper[key]!r}")
    n_steps = hyper.get("n_steps", signature["n_steps"].default)
    batch_size = hyper.get("batch_size", signature["batch_size"].default)
    if n_steps * n_envs < 2:
        raise ConfigError(f"{source}: hyperparams.n_steps x n_envs must be > 1 (PPO normalises "
                          f"advantages over the rollout), got {n_steps} x {n_envs}")
    if batch_size > n_steps * n_envs:
        raise ConfigError(f"{source}: hyperparams.batch_size ({batch_size}) is larger than a "
                          f"rollout (n_steps x n_envs = {n_steps * n_envs})")
    return hyper


def _check_choice(source: str, key: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{source}: {key}: {value!r} is not allowed; choose one of "
                          f"{list(choices)}")


def _check_int(source: str, key: str, value: Any, minimum: int) -> int:
    """``value`` as an int; whole floats are accepted (rl-zoo writes ``!!float 1e6``)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{source}: {key} must be an integer >= {minimum}, got {value!r}")
    return value
