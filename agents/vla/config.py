"""Configs of VLA runs (``algo: vla-bc | vla-ppo | vla-grpo | vla-dpo``): one schema per trainer.

Read by the same loader as PPO configs (:func:`agents.config.load_config`, with the
same ``key=value`` overrides); ``algo`` picks the schema::

    algo: vla-bc
    seed: 0
    device: auto
    checkpoint_every: 1000        # gradient steps (vla-bc), env steps (vla-ppo), epochs (vla-dpo)
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
    # vla-grpo: group-relative policy optimisation against any reward module (as vla-ppo)
    grpo: {iterations: 50, groups: 8, group_size: 8, ...}
    # vla-dpo: trajectory-wise DPO from preferences over the policy's own rollouts
    dpo: {rollouts: 64, pairs: 128, teacher: oracle, beta: 0.1, ...}

Each schema holds only its own keys. Run folders written before the schemas were
split list every section of every trainer; :meth:`VLARunConfig.upgrade`
reads those still, as long as the foreign sections hold their old empty defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import gymnasium as gym
from pydantic import Field, field_validator, model_validator

from agents.config import EnvFields, RewardFields, RunConfig, Section, at_least

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]

_OLD_DEFAULTS: dict[str, Any] = {
    "datasets": [], "eval_envs": None, "bc": {}, "env": None, "env_kwargs": {},
    "reward": "ground_truth", "reward_kwargs": {}, "reward_checkpoint": None,
    "reward_frames": "render", "ppo": {}, "dpo": {},
}
"""What configs written before the split held under the keys of other trainers."""


class VLASettings(Section):
    """``vla:``: the policy a run starts from, and (for a fresh one) its architecture."""

    model_config = {**Section.model_config, "extra": "allow"}  # VLAConfig fields, checked below
    preset: str | None = "tiny"
    init: str | None = None
    """A saved policy folder (a run's ``policy/`` or ``checkpoints/step-N/policy``)."""

    @model_validator(mode="after")
    def _architecture(self) -> VLASettings:
        # The VLA model module imports torch: only configs that name a VLA pay for it.
        from agents.vla.model import PRESETS, make_config

        overrides = dict(self.model_extra or {})
        if self.init is not None:
            if not (Path(self.init) / "config.json").is_file():
                raise ValueError(f"vla.init {self.init!r} is not a saved VLA policy folder (a "
                                 f"run's checkpoints/step-N/policy, or policy/ of a finished run)")
            if overrides:
                raise ValueError(f"vla.init fixes the architecture; drop {sorted(overrides)}")
            object.__setattr__(self, "init", str(Path(self.init).resolve()))
            return self
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"vla.preset {self.preset!r} is not one of {sorted(PRESETS)}")
        try:
            make_config(self.preset, **overrides)
        except (ValueError, TypeError) as error:
            raise ValueError(f"vla: {error}") from None
        return self

    def architecture(self) -> dict[str, Any]:
        """The VLAConfig overrides given next to ``preset``."""
        return dict(self.model_extra or {})


class VLARunConfig(RunConfig):
    """What the three VLA trainers share."""

    checkpoint_every: at_least(1) = 1000
    vla: VLASettings = Field(default_factory=VLASettings)

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Drops the keys of other trainers that configs written before the split kept
        at their empty defaults; a set one is an error naming the algo's keys."""
        foreign = [key for key in data if key not in cls.model_fields and key in _OLD_DEFAULTS]
        clash = [key for key in foreign if data[key] != _OLD_DEFAULTS[key]]
        if clash:
            raise ValueError(f"{clash} do not apply to algo {data.get('algo')} (its keys are "
                             f"{sorted(cls.model_fields)})")
        return {key: value for key, value in data.items() if key not in foreign}

    @property
    def eval_env_kwargs(self) -> dict[str, dict[str, Any]]:
        """env id -> env kwargs the run is evaluated on."""
        return {self.env: dict(self.env_kwargs)}  # type: ignore[attr-defined]

    def run_name(self) -> str:
        env = getattr(self, "env", None)
        name = env.split("/")[-1].removesuffix("-v0").lower() if env else "multitask"
        return f"train-{self.algo}-{name}"

    def model_limits(self) -> Any:
        """The :class:`agents.vla.model.VLAConfig` the run's policy will have: the
        saved one of ``vla.init``, else the preset with its overrides."""
        from agents.vla.model import CONFIG_FILE, FORMAT, VERSION, VLAConfig, make_config
        from rewards.durable import read_json_header

        if self.vla.init is not None:
            header = read_json_header(Path(self.vla.init) / CONFIG_FILE, FORMAT, VERSION,
                                      "a vmalign VLA policy config")
            return VLAConfig(**header["config"])
        return make_config(self.vla.preset, **self.vla.architecture())

    def check_start(self, checked: Any) -> None:
        """Every env's actions fit the policy's heads: a Points24 run (17 actions) on a
        16-action model stops here, before the run folder exists, with the setting
        that fixes it."""
        from agents.vla.model import ActionSpec

        limits = self.model_limits()
        for env_id, kwargs in self.eval_env_kwargs.items():  # fine-tuning: its env
            env = gym.make(env_id, **kwargs)
            try:
                spec = ActionSpec.of(env.action_space)
            finally:
                env.close()
            most = limits.discrete_actions if spec.kind == "discrete" else limits.continuous_dims
            if spec.size > most:
                key = "discrete_actions" if spec.kind == "discrete" else "continuous_dims"
                fix = (f"start from a policy made with vla.{key} >= {spec.size}"
                       if self.vla.init is not None else f"set vla.{key}={spec.size}")
                raise ValueError(f"{env_id} has {spec.size} {spec.kind} actions; the policy "
                                 f"emits at most {most} ({key}): {fix}")


class BCSettings(Section):
    """``bc:``: behaviour cloning (:mod:`agents.vla.bc`)."""

    steps: at_least(1) = 5000
    """Gradient steps (each: one batch from every dataset)."""
    batch_size: at_least(1) = 64
    """Frames per dataset per step."""
    lr: Positive = 3.0e-4
    weight_decay: NonNegative = 0.01
    warmup: at_least(0) = 100
    """Linear learning-rate warm-up steps, then cosine decay to 10%."""
    grad_clip: NonNegative = 1.0
    log_every: at_least(1) = 50
    max_episodes: at_least(1) | None = None
    """Use only the first N episodes of each dataset (weak policies)."""
    encoder_cache_gib: NonNegative = 8.0
    """A frozen registry encoder (``vla.vision_finetune: frozen``) encodes every dataset
    frame once, before the first step, when all the tokens fit in this many GiB of
    memory; otherwise (or at 0) it encodes each batch anew, as trainable encoders do."""


class VLABCConfig(VLARunConfig):
    """``algo: vla-bc``: multi-task behaviour cloning from ``vmalign collect`` datasets."""

    algo: Literal["vla-bc"] = "vla-bc"
    datasets: list[str] | str
    """Dataset folders (``vmalign collect``); stored as absolute paths."""
    eval_envs: dict[str, dict[str, Any]] | None = None
    """env id -> env kwargs to evaluate on (default: each dataset's env)."""
    bc: BCSettings = Field(default_factory=BCSettings)

    LENGTH_KEY: ClassVar[str] = "bc.steps"

    @model_validator(mode="after")
    def _datasets_exist(self) -> VLABCConfig:
        # Here, not at the top: the dataset reader's durable writes come from the
        # rewards package, which loads torch (1.5 s).
        from agents.dataset import EpisodeDataset

        datasets = [self.datasets] if isinstance(self.datasets, str) else list(self.datasets)
        if not datasets:
            raise ValueError("'datasets' must list at least one dataset folder (vmalign "
                             "collect writes them)")
        folders, seen = [], {}
        for folder in datasets:
            try:
                dataset = EpisodeDataset(folder)
            except (FileNotFoundError, ValueError) as error:
                raise ValueError(f"datasets: {error}") from None
            if dataset.num_episodes == 0:
                raise ValueError(f"dataset {folder} holds no episodes")
            folders.append(str(Path(folder).resolve()))
            seen.setdefault(dataset.env, dict(dataset.info.get("env_kwargs") or {}))
        eval_envs = seen if self.eval_envs is None else self.eval_envs
        for env_id in eval_envs:
            if env_id not in gym.registry:
                raise ValueError(f"eval_envs: unknown env {env_id!r}")
        object.__setattr__(self, "datasets", folders)
        object.__setattr__(self, "eval_envs", {k: dict(v) for k, v in eval_envs.items()})
        return self

    @property
    def eval_env_kwargs(self) -> dict[str, dict[str, Any]]:
        return dict(self.eval_envs or {})

    def check_start(self, checked: Any) -> None:
        """Also, under torchrun, every process gets an equal share of each batch."""
        super().check_start(checked)
        from agents.distributed import world

        size = world().size
        if self.bc.batch_size % size:
            raise ValueError(f"bc.batch_size={self.bc.batch_size} is not a multiple of the "
                             f"{size} torchrun processes (--nproc_per_node): each takes an "
                             f"equal share of every batch; use e.g. bc.batch_size="
                             f"{-(-self.bc.batch_size // size) * size}")


class VLAPPOSettings(Section):
    """``ppo:``: PPO fine-tuning of a VLA policy (:mod:`agents.vla.ppo`)."""

    n_timesteps: at_least(1) = 100_000
    n_envs: at_least(1) = 8
    n_steps: at_least(1) = 128
    batch_size: at_least(1) = 256
    n_epochs: at_least(1) = 4
    lr: Positive = 1.0e-4
    gamma: Probability = 0.99
    gae_lambda: Probability = 0.95
    clip_range: Positive = 0.2
    ent_coef: NonNegative = 0.0
    vf_coef: NonNegative = 0.5
    max_grad_norm: NonNegative = 0.5
    critic_warmup: at_least(0) = 5
    """The first updates train the value head only (a BC policy has no critic)."""
    target_kl: Positive | None = None
    """Stop an update's epochs early past this KL (None: never)."""
    vec_env: Literal["dummy", "subproc"] = "dummy"
    critic: Literal["policy", "state"] = "policy"
    """What the value function reads: ``policy``, the VLA's value head on its own
    features; ``state``, an MLP on the simulator's state vector (the env's
    ``obs_mode="state"`` entries), an asymmetric actor-critic: the policy still reads
    only pixels and the instruction, the critic is a training aid (in the checkpoints,
    not in the final ``policy/``). For envs with ``obs_mode="rgb+state"`` (every
    vmalign env), with pixel observations."""
    critic_net_arch: list[at_least(1)] = [256, 256]
    """Hidden layer sizes of the ``state`` critic."""
    critic_lr: Positive = 1.0e-3
    """Adam's learning rate for the ``state`` critic (trained from scratch, so larger
    than the fine-tuned policy's ``lr``)."""

    @model_validator(mode="after")
    def _rollout_fits(self) -> VLAPPOSettings:
        if self.batch_size > self.n_steps * self.n_envs:
            raise ValueError(f"batch_size ({self.batch_size}) is larger than a rollout "
                             f"(n_steps x n_envs = {self.n_steps * self.n_envs})")
        return self


class FineTuningConfig(EnvFields, VLARunConfig):
    """A VLA run that starts from a saved policy (``vla.init``) in an env."""

    @field_validator("vla")
    @classmethod
    def _needs_init(cls, vla: VLASettings) -> VLASettings:
        if vla.init is None:
            raise ValueError("init is required: the policy to fine-tune (e.g. the final "
                             "policy/ of a vla-bc run)")
        return vla


class VLAPPOConfig(RewardFields, FineTuningConfig):
    """``algo: vla-ppo``: PPO fine-tuning of a saved VLA policy against any reward module."""

    algo: Literal["vla-ppo"] = "vla-ppo"
    ppo: VLAPPOSettings = Field(default_factory=VLAPPOSettings)

    LENGTH_KEY: ClassVar[str] = "ppo.n_timesteps"

    def run_name(self) -> str:
        return f"{super().run_name()}-{self.reward}"

    def check_start(self, checked: Any) -> None:
        """Also, with ``ppo.critic=state``: the env has a state vector to give the
        critic, and the policy and reward still get pixels."""
        super().check_start(checked)
        if self.ppo.critic != "state":
            return
        mode = self.env_kwargs.get("obs_mode", "rgb")
        if mode != "rgb":
            raise ValueError(f"ppo.critic=state gives the critic the state vector and the "
                             f"policy pixels; env_kwargs.obs_mode={mode!r} would take the "
                             f"policy's pixels away: leave obs_mode out (or 'rgb')")
        if self.reward_frames == "observation":
            raise ValueError("ppo.critic=state makes the observations a dict of pixels and "
                             "state, which reward_frames=observation cannot score: use "
                             "reward_frames=render")
        try:
            gym.make(self.env, **self.training_env_kwargs()).close()
        except (TypeError, ValueError) as error:
            raise ValueError(f"ppo.critic=state needs an env with a state vector "
                             f"(obs_mode='rgb+state', as every vmalign env has); {self.env} "
                             f"has none: {error}") from None

    def training_env_kwargs(self) -> dict[str, Any]:
        """The training envs' kwargs: with a ``state`` critic they add the state vector
        to the pixels (``obs_mode="rgb+state"``)."""
        if self.ppo.critic == "state":
            return {**self.env_kwargs, "obs_mode": "rgb+state"}
        return dict(self.env_kwargs)


class VLAGRPOSettings(Section):
    """``grpo:``: group-relative policy optimisation (:mod:`agents.vla.grpo`)."""

    iterations: at_least(1) = 50
    """Rounds of (play the groups, update)."""
    groups: at_least(1) = 8
    """Start states per iteration."""
    group_size: at_least(2) = 8
    """Sampled rollouts from each start state."""
    n_epochs: at_least(1) = 2
    batch_size: at_least(1) = 256
    """Steps per minibatch."""
    lr: Positive = 1.0e-5
    clip_range: Positive = 0.2
    kl_coef: NonNegative = 0.0
    """Weight of KL(policy || vla.init) (0: no reference model is loaded)."""
    ent_coef: NonNegative = 0.0
    max_grad_norm: NonNegative = 1.0
    parallel: at_least(1) = 16
    """Envs stepped in lockstep while playing (one batched policy call per step)."""

    def chunks(self) -> list[range]:
        """The groups played together (``parallel // group_size`` of them, at least
        one): the unit of work a process takes under torchrun."""
        size = max(1, self.parallel // self.group_size)
        return [range(first, min(first + size, self.groups))
                for first in range(0, self.groups, size)]


class VLAGRPOConfig(RewardFields, FineTuningConfig):
    """``algo: vla-grpo``: GRPO from a saved VLA policy against any reward module (the
    env's own by default), which scores each rollout's rendered frames."""

    algo: Literal["vla-grpo"] = "vla-grpo"
    grpo: VLAGRPOSettings = Field(default_factory=VLAGRPOSettings)

    @field_validator("reward_frames")
    @classmethod
    def _scores_rendered_frames(cls, reward_frames: str) -> str:
        if reward_frames != "render":
            raise ValueError("vla-grpo scores each rollout's env.render() frames (the "
                             "reward-model view; set it with env_kwargs render_camera and "
                             "render_size): reward_frames must be 'render'")
        return reward_frames

    LENGTH_KEY: ClassVar[str] = "grpo.iterations"

    def check_start(self, checked: Any) -> None:
        """Also, under torchrun, every process plays at least one chunk of groups."""
        super().check_start(checked)
        from agents.distributed import world

        size, s = world().size, self.grpo
        per_chunk, chunks = len(s.chunks()[0]), len(s.chunks())
        if chunks < size:
            fewer = (f", or grpo.parallel={s.groups // size * s.group_size} or less"
                     if s.groups >= size else "")
            raise ValueError(
                f"grpo: {s.groups} groups played {per_chunk} at a time (grpo.parallel="
                f"{s.parallel} // grpo.group_size={s.group_size}) make {chunks} chunk(s) for "
                f"{size} torchrun processes, so some would play nothing; use grpo.groups="
                f"{per_chunk * size} or more{fewer}")


class DPOSettings(Section):
    """``dpo:``: trajectory-wise DPO (:mod:`agents.vla.dpo`)."""

    rollouts: at_least(1) = 64
    """Episodes of the starting policy to compare."""
    rollouts_per_start: at_least(2) = 4
    """Of them from each start state (pairs share their start)."""
    pairs: at_least(1) = 128
    """Labelled pairs of whole episodes."""
    teacher: str = "oracle"
    """A B-Pref simulated teacher (on ground-truth return)."""
    teacher_kwargs: dict[str, Any] = {}
    beta: Positive = 0.5
    nll_coef: NonNegative = 0.5
    """+ coef * mean per-step NLL of the winner (RPO's regulariser; without it DPO
    collapsed the test task's policy)."""
    epochs: at_least(1) = 8
    lr: Positive = 1.0e-4
    batch_pairs: at_least(1) = 4
    sample_rollouts: bool = True
    """Rollouts sample actions (diverse pairs) rather than take the mode."""
    encoder_cache_gib: NonNegative = 8.0
    """A frozen registry encoder encodes each paired rollout's frames once and keeps the
    tokens for every epoch when all of them fit in this many GiB of memory; otherwise
    (or at 0) every pass encodes them anew."""

    @model_validator(mode="after")
    def _consistent(self) -> DPOSettings:
        from rewards.teachers import TEACHER_PRESETS  # the rewards package loads torch

        if self.teacher not in TEACHER_PRESETS:
            raise ValueError(f"teacher {self.teacher!r} is not allowed; choose one of "
                             f"{list(TEACHER_PRESETS)}")
        if self.rollouts < self.rollouts_per_start:
            raise ValueError(f"rollouts ({self.rollouts}) must be at least rollouts_per_start "
                             f"({self.rollouts_per_start})")
        return self


class VLADPOConfig(FineTuningConfig):
    """``algo: vla-dpo``: DPO on teacher-labelled pairs of the policy's own rollouts."""

    algo: Literal["vla-dpo"] = "vla-dpo"
    dpo: DPOSettings = Field(default_factory=DPOSettings)

    LENGTH_KEY: ClassVar[str] = "dpo.epochs"
