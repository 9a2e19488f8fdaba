"""Run configs: YAML files read into one typed schema per algorithm, checked before anything runs.

A config is a YAML mapping; its ``algo`` key (default ``ppo``) picks the schema from
the algorithm table (:mod:`agents.algorithms`): :class:`agents.sb3.config.PPOConfig`,
or one of the VLA schemas in :mod:`agents.vla.config`. Each schema is a pydantic
model: every key is defined once, with its type, default, range and choices, and
the model's docstring is its reference.

``key=value`` overrides on the command line address nested keys with dots
(``hyperparams.n_timesteps=50000``, ``env_kwargs.obs_size=84``); values are read as
YAML (``1e-3``, ``true``, ``[64, 64]``). A bad key or value stops with one message
that names the key, what is allowed, and where the value came from: the file, or the
command-line override that set it.

Values are read strictly: ``"64"`` is not a number and ``"yes"`` is not a boolean.
Integers may be written as whole floats (``1e6``), as rl-zoo writes them.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import gymnasium as gym
import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)

import envs  # noqa: F401, E402  (registers the vmalign ids; no MuJoCo until an env is made)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""Where the shipped configs live (``agents/configs/*.yaml``)."""


class ConfigError(ValueError):
    """A config that cannot run: the message names the key, what is allowed, and the source."""


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


# -- schema building blocks -------------------------------------------------------------

def _whole_number(value: Any) -> Any:
    """rl-zoo writes step counts as ``!!float 1e6``: a whole float is an integer here."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_whole_number)]
"""An integer; a whole float (``1e6``) counts as one."""


def at_least(minimum: int) -> Any:
    """An integer >= ``minimum``."""
    return Annotated[Int, Field(ge=minimum)]


class Section(BaseModel):
    """A block of config keys: typed, strict, closed (an unknown key is an error)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True,
                              validate_assignment=True)


class RunConfig(Section):
    """What every run config has, whatever the algorithm."""

    algo: str
    seed: at_least(0) = 0
    """Seeds the environments, the networks and every random draw of the run."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    out: str | None = None
    """Run folder (default ``outputs/train-...-<time>``)."""
    checkpoint_every: at_least(1) = 50000
    eval_episodes: at_least(1) = 20
    """Episodes of the closing evaluation and the default of ``vmalign eval``."""

    LENGTH_KEY: ClassVar[str] = ""
    """The dotted key of the run's length: the one ``--resume`` may change."""

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Reads a config written by an earlier vmalign (a run folder's
        ``config.yaml``) into this schema's keys; raises ``ValueError`` if it cannot."""
        return data

    def check_start(self, checked: Any) -> None:
        """Checks what needs the built env (``checked``: :class:`agents.runs.Checked`),
        before the run folder exists; raises ``ValueError``."""

    @property
    def total_steps(self) -> int:
        """What the run counts to (the value of :attr:`LENGTH_KEY`)."""
        value: Any = self
        for part in self.LENGTH_KEY.split("."):
            value = getattr(value, part)
        return int(value)

    def run_name(self) -> str:
        """The default run folder's name, ``train-<algo>-<env>-<reward>``."""
        return "train"

    def to_yaml(self) -> str:
        """The resolved config, as ``RUN/config.yaml`` keeps it (it reloads to the same)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class EnvFields(Section):
    """The environment a run trains in (mixed into schemas that have one)."""

    env: str
    """A registered id, e.g. ``vmalign/Reach-v0``."""
    env_kwargs: dict[str, Any] = {}
    """Arguments of ``gym.make``; checked by building the env once before the run starts."""

    @field_validator("env")
    @classmethod
    def _registered(cls, env: str) -> str:
        if env not in gym.registry:
            vmalign = sorted(name for name in gym.registry if name.startswith("vmalign/"))
            raise ValueError(f"unknown env {env!r}; the vmalign ids are {vmalign}")
        return env


class RewardFields(Section):
    """The reward module a run scores its frames with (mixed into schemas that have one)."""

    reward: str = "ground_truth"
    """Any name in ``rewards.names()``."""
    reward_kwargs: dict[str, Any] = {}
    """Arguments of ``rewards.make`` (or, with ``reward_checkpoint``, overrides of the
    saved module's non-architecture arguments)."""
    reward_checkpoint: str | None = None
    """A module saved by ``rewards.save`` / ``vmalign reward-train`` (its ``OUT/reward``)
    to start from; stored as an absolute path."""
    reward_frames: Literal["render", "observation"] = "render"
    """What the reward scores: ``env.render()`` (the reward-model view) or the observation."""

    @field_validator("reward")
    @classmethod
    def _known_reward(cls, reward: str) -> str:
        # Here, not at the top: importing the rewards package loads torch (1.5 s), which
        # reading a config does not otherwise need.
        from rewards.registry import names

        if reward not in names():
            raise ValueError(f"unknown reward {reward!r}; valid names are {names()}")
        return reward

    @model_validator(mode="after")
    def _checkpoint_holds_reward(self) -> RewardFields:
        if self.reward_checkpoint is not None:
            check_reward_checkpoint(self.reward_checkpoint, self.reward)
            # Frozen to an absolute path: a resumed run may start from another folder.
            object.__setattr__(self, "reward_checkpoint",
                               str(Path(self.reward_checkpoint).resolve()))
        return self


def check_reward_checkpoint(folder: str, reward: str) -> None:
    """Raises ``ValueError`` unless ``folder`` holds a saved module called ``reward``."""
    # Here, not at the top: the rewards package loads torch.
    from rewards.durable import read_json_header
    from rewards.serialization import CONFIG_FILE, FORMAT, VERSION

    if not folder:
        raise ValueError("reward_checkpoint must be a folder path or null")
    header_file = Path(folder) / CONFIG_FILE
    if not header_file.is_file():
        raise ValueError(f"{folder!r} is not a saved reward module (no {CONFIG_FILE}; "
                         f"vmalign reward-train writes one to OUT/reward)")
    header = read_json_header(header_file, FORMAT, VERSION, "a vmalign reward module config")
    if header.get("module") != reward:
        raise ValueError(f"{folder!r} holds a {header.get('module')!r} module but reward is "
                         f"{reward!r}")


# -- reading ---------------------------------------------------------------------------

def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> RunConfig:
    """Reads the YAML config at ``path`` (a file, or the name of a shipped config such
    as ``reach_ground_truth``), applies ``key=value`` overrides and checks everything.

    Returns the schema of the config's ``algo`` (see :mod:`agents.algorithms`).

    :raises ConfigError: a bad key or value, naming it and its source.
    :raises FileNotFoundError: no such file or shipped config.
    """
    file = resolve_config_path(path)
    try:
        data = read_yaml(file.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{file} is not valid YAML: {error}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a mapping of config keys, got {type(data).__name__}")
    data, sources = apply_overrides(data, overrides)
    return check_config(data, source=str(file), overrides=sources)


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


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]
                    ) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of ``data`` with each ``dotted.key=yaml_value`` set, and which override
    set each dotted key (so an error can blame the command line, not the file)."""
    data = copy.deepcopy(data)
    sources: dict[str, str] = {}
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
            if child is None or child is False:  # "preference: false" then preference.x=...
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {'.'.join(parts[:depth + 1])} is "
                                  f"{child!r}, not a mapping")
            node = child
        node[parts[-1]] = value
        sources[key] = override
    return data, sources


def check_config(data: dict[str, Any], source: str = "config",
                 overrides: dict[str, str] | None = None) -> RunConfig:
    """Validates a config mapping against its algorithm's schema; raises :class:`ConfigError`."""
    # The table imports every schema, and the schemas import this module.
    from agents.algorithms import ALGORITHMS

    overrides = overrides or {}
    algo = data.get("algo", "ppo")
    if algo not in ALGORITHMS:
        raise ConfigError(f"{_blame('algo', source, overrides)}: algo {algo!r} is not allowed; "
                          f"choose one of {list(ALGORITHMS)}")
    schema = ALGORITHMS[algo].schema
    try:
        data = schema.upgrade(data)
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None
    _refuse_unknown_keys(schema, data, "", source, overrides)
    try:
        return schema.model_validate({**data, "algo": algo})
    except ValidationError as error:
        raise ConfigError(_describe(error, schema, source, overrides)) from None


def _refuse_unknown_keys(schema: type[BaseModel], data: Any, prefix: str, source: str,
                         overrides: dict[str, str]) -> None:
    """An unknown key anywhere in the schema's sections: named, with the valid keys."""
    if not isinstance(data, dict) or schema.model_config.get("extra") != "forbid":
        return
    fields = schema.model_fields
    for key in data:
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{_blame(dotted, source, overrides)}: unknown key "
                              f"{dotted!r}; valid keys{' of ' + prefix[:-1] if prefix else ''} "
                              f"are {sorted(fields)}")
        for section in _sections(fields[key].annotation):
            _refuse_unknown_keys(section, data[key], f"{dotted}.", source, overrides)


def _sections(annotation: Any) -> list[type[BaseModel]]:
    """The :class:`Section` types an annotation admits (``X``, ``X | None``, ``bool | X``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [arg for arg in getattr(annotation, "__args__", ())
            if isinstance(arg, type) and issubclass(arg, BaseModel)]


def _blame(dotted: str, source: str, overrides: dict[str, str]) -> str:
    """The command-line override that set ``dotted`` (or a key above it), else the file."""
    parts = dotted.split(".")
    for depth in range(len(parts), 0, -1):
        override = overrides.get(".".join(parts[:depth]))
        if override is not None:
            return f"command-line override {override!r}"
    return source


_MESSAGES = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "literal_error": "must be one of {expected}",
    "greater_than": "must be > {gt:g}",
    "greater_than_equal": "must be >= {ge:g}",
    "less_than": "must be < {lt:g}",
    "less_than_equal": "must be <= {le:g}",
}
"""pydantic's error types in the project's words (others keep pydantic's message)."""


def _describe(error: ValidationError, schema: type[BaseModel], source: str,
              overrides: dict[str, str]) -> str:
    """pydantic's errors as one line per key: where the value came from, which key,
    what is wrong and the value given."""
    lines = []
    for item in error.errors(include_url=False):
        dotted = _config_key(schema, item["loc"])
        message = _MESSAGES.get(item["type"], item["msg"].removeprefix("Value error, "))
        message = message.format(**item.get("ctx", {}))
        if item["type"] not in ("value_error", "missing") and "input" in item:
            message += f", got {item['input']!r}"
        where = _blame(dotted, source, overrides)
        lines.append(f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}")
    return "\n".join(dict.fromkeys(lines))


def _config_key(schema: type[BaseModel], location: tuple[Any, ...]) -> str:
    """The dotted config key of a pydantic error location, without the union members
    and validator names pydantic adds to it."""
    keys: list[str] = []
    model: type[BaseModel] | None = schema
    for part in location:
        if isinstance(part, int):
            keys.append(str(part))
        elif model is not None and part in model.model_fields:
            keys.append(part)
            sections = _sections(model.model_fields[part].annotation)
            model = sections[0] if sections else None
        elif model is None:
            keys.append(str(part))  # a key inside a plain mapping
    return ".".join(keys)
