"""``algo: ppo`` and ``algo: sac``: configs of stable-baselines3 runs, with rl-zoo key names.

A config names an environment, a reward module and the algorithm's hyperparameters::

    env: vmalign/Reach-v0
    env_kwargs: {obs_size: 64, render_size: 64}
    reward: preference            # any name in rewards.names()
    reward_kwargs: {}             # its arguments (rewards.make)
    reward_checkpoint: null       # or a module saved by rewards.save / vmalign reward-train
    preference:                   # the online preference loop (reward: preference);
                                  # "preference: false" trains on a fixed reward
      teacher: oracle
      total_queries: 400
    seed: 0
    hyperparams:                  # rl-zoo keys, then the stable-baselines3 algorithm's
      n_timesteps: 200000         # own arguments (PPO's or SAC's)
      n_envs: 8
      policy: CnnPolicy
      frame_stack: 2
      learning_rate: lin_3.0e-4   # lin_X: linear decay from X to 0, as in rl-zoo
      n_steps: 128

SAC (``algo: sac``) suits state observations (``env_kwargs: {obs_mode: state}``,
``policy: MlpPolicy``); its replay buffer is checkpointed (``replay_buffer.npz``) so a
resumed run continues with the same transitions. Pixel SAC works but keeps
``buffer_size`` images twice (observation and next observation): 1M transitions of
64-px frames need 24 GB.

``hyperparams.normalize: true`` is rl-zoo's reward normalisation (SB3's
``VecNormalize`` with ``norm_obs=False``: pixels are already scaled by the CNN
policy): PPO trains on rewards divided by a running standard deviation of the
discounted return, which keeps the value loss from swamping the policy's gradient
in the CNN both share when rewards are large or long-horizon. Logged returns stay
unnormalised, and the statistics are checkpointed with the policy.

rl-zoo writes ``policy_kwargs`` as a Python string it evaluates; here it is a YAML
mapping, ``activation_fn`` is a name (``relu``, ``tanh``, ...) and so is
``features_extractor_class`` (``NatureCNN``, ``PixelCNN``, ``PretrainedEncoder``:
:mod:`agents.sb3.encoders`),
so a config never executes code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from agents.config import EnvFields, Int, RewardFields, RunConfig, Section, at_least

ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu")
FEATURES_EXTRACTORS = ("NatureCNN", "PixelCNN", "PretrainedEncoder")
"""Encoder names (classes in :data:`agents.sb3.encoders.FEATURES_EXTRACTORS`)."""
_LINEAR = re.compile(r"^lin_(.+)$")

Probability = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return value


def _number_after(prefix: str, text: str) -> bool:
    """Whether ``text`` is ``prefix`` followed by a number > 0 (``lin_3e-4``, ``auto_0.1``)."""
    try:
        return text.startswith(prefix) and float(text.removeprefix(prefix)) > 0
    except ValueError:
        return False


def _check_schedule(value: float | str) -> float | str:
    if isinstance(value, str):
        if _number_after("lin_", value):
            return value
        raise ValueError(f"{value!r} is not a number or 'lin_<number>' (e.g. lin_3.0e-4)")
    return _positive(value)


Schedule = Annotated[float | str, AfterValidator(_check_schedule)]
"""A number > 0, or rl-zoo's ``lin_X``: X times the fraction of training remaining."""


def linear_schedule(initial: float) -> Callable[[float], float]:
    """rl-zoo's ``lin_X``: X times the fraction of training remaining (1 -> 0)."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    schedule.initial = initial  # type: ignore[attr-defined]
    return schedule


def parse_schedule(value: float | str) -> float | Callable[[float], float]:
    """A number stays a constant; ``"lin_X"`` becomes :func:`linear_schedule` (X)."""
    if isinstance(value, str):
        return linear_schedule(float(_LINEAR.match(value).group(1)))  # type: ignore[union-attr]
    return float(value)


def _switch(key: str) -> Callable[[Any], Any]:
    """Reads ``true`` / ``false`` for a section as ``{key: true}`` / ``{key: false}``
    (``normalize: true``, ``preference: false``)."""
    def read(value: Any) -> Any:
        if isinstance(value, bool):
            return {key: value}
        if value is not None and not isinstance(value, (dict, Section)):
            raise ValueError(f"must be true, false or a mapping of settings, got {value!r}")
        return value

    return read


class PreferenceSettings(Section):
    """``preference:``: the online preference loop (:mod:`agents.sb3.preference_loop`).

    ``preference: false`` is short for ``{enabled: false}``: a fixed preference reward
    (e.g. ``reward_checkpoint: DIR``), no loop."""

    enabled: bool = True
    teacher: str = "oracle"
    """A B-Pref simulated teacher (``rewards.teachers.TEACHER_PRESETS``), ``clip``, or
    ``human`` (a person on the labelling page, :mod:`agents.labelling.human`)."""
    teacher_kwargs: dict[str, Any] = {}
    """e.g. ``{beta: 10}`` or ``{eps_mistake: 0.1}``; for ``human``
    ``{wait_seconds: 600, port: 8765}`` (``HumanTeacherSettings``)."""
    total_queries: at_least(0) = 500
    """The label budget (pairs asked, skipped ones included)."""
    initial_queries: at_least(0) = 100
    """Asked after the first rollout (a random-ish policy)."""
    queries_per_round: at_least(1) = 50
    update_every: at_least(1) = 20000
    """Environment steps between rounds."""
    segment: at_least(1) = 10
    """Steps per segment."""
    query: Literal["uniform", "disagreement", "entropy"] = "disagreement"
    pairing: Literal["same_episode", "any"] = "same_episode"
    """Both segments of a pair from one episode, or from any two (``rewards.query``)."""
    pool_factor: at_least(1) = 4
    """Candidates drawn per query asked."""
    epochs: at_least(1) = 20
    """Reward-training epochs per round."""
    train_pairs: at_least(1) | None = None
    """Labels per round: null = all so far; N = the new ones plus a uniform sample of
    older ones, N in all (a flat cost per round as labels pile up)."""
    lr: Positive = 1.0e-3
    """Reward-training Adam learning rate."""
    buffer_steps: at_least(1) = 1000
    """Recent steps kept per env to cut segments from."""
    initial_labels: str | None = None
    """A preference store folder whose labels seed the reward (outside the budget)."""
    demo_episodes: at_least(0) = 0
    """Scripted episodes added to every round's query pool, as DemPref and RAPL seed
    preference learning with demonstrations: the env's expert played by
    ``demo_policy``, rendered in the reward view, on seeds from the run's seed +
    3,000,000 (apart from training's and evaluation's). The teacher labels their
    segments like the policy's, within the budget. A near-random policy's first
    rounds rarely show the task done, and a reward learned from them alone learns
    little that transfers (docs/results.md, session 41). 0 (default): none."""
    demo_policy: str = "noisy(0.5)"
    """Who plays the demonstrations: ``expert``, ``noisy(P)`` (the expert, each action
    random with probability P), ``random`` or ``decoy`` (:mod:`agents.rollouts`)."""

    @field_validator("teacher")
    @classmethod
    def _known_teacher(cls, teacher: str) -> str:
        # Here, not at the top: the rewards package loads torch (1.5 s).
        from rewards.teachers import TEACHER_PRESETS

        teachers = [*TEACHER_PRESETS, "clip", "human"]
        if teacher not in teachers:
            raise ValueError(f"{teacher!r} is not allowed; choose one of {teachers}")
        return teacher

    @model_validator(mode="after")
    def _consistent(self) -> PreferenceSettings:
        from rewards.preference_store import HEADER_FILE  # the rewards package loads torch

        if self.teacher == "human":
            from agents.labelling.human import check_settings

            check_settings(self.teacher_kwargs)  # bad keys fail before the run folder exists
        if self.demo_episodes:
            from agents.rollouts import parse_policy

            parse_policy(self.demo_policy)  # ValueError naming the policies allowed
        if self.buffer_steps <= self.segment:
            raise ValueError(f"buffer_steps ({self.buffer_steps}) must be more than segment "
                             f"({self.segment})")
        if self.initial_labels is not None:
            if not (Path(self.initial_labels) / HEADER_FILE).is_file():
                raise ValueError(f"initial_labels: {self.initial_labels} is not a preference "
                                 f"store (a folder with {HEADER_FILE}, such as reward-train's "
                                 f"OUT/preferences or a training run's preferences/)")
        return self


class NormalizeSettings(Section):
    """``hyperparams.normalize``: ``true`` is short for ``{norm_reward: true,
    clip_reward: 10}``, ``false`` for ``{norm_reward: false}``."""

    norm_obs: bool = False
    """Must stay false: observations are pixels, which the CNN policy scales itself."""
    norm_reward: bool = True
    clip_reward: Positive = 10.0

    @field_validator("norm_obs")
    @classmethod
    def _no_observation_scaling(cls, norm_obs: bool) -> bool:
        if norm_obs:
            raise ValueError("must be false: observations are pixels, which the CNN policy "
                             "scales itself")
        return norm_obs


class PolicyKwargs(Section):
    """``hyperparams.policy_kwargs``: the SB3 policy's arguments, by name (those both
    algorithms' policies take)."""

    net_arch: list[at_least(1)] | dict[str, list[at_least(1)]] | None = None
    activation_fn: Literal[ACTIVATIONS] | None = None  # type: ignore[valid-type]
    log_std_init: float | None = None
    use_expln: bool | None = None
    features_extractor_class: Literal[FEATURES_EXTRACTORS] | None = None  # type: ignore[valid-type]
    features_extractor_kwargs: dict[str, Any] | None = None
    share_features_extractor: bool | None = None
    normalize_images: bool | None = None
    optimizer_kwargs: dict[str, Any] | None = None

    def arguments(self) -> dict[str, Any]:
        """The keys set, with ``activation_fn`` and ``features_extractor_class`` turned
        from names into classes."""
        # Here, not at the top: torch is needed to build a policy, not to read a config.
        from torch import nn

        from agents.sb3.encoders import FEATURES_EXTRACTORS as EXTRACTORS

        kwargs = self.model_dump(exclude_none=True)
        if "features_extractor_class" in kwargs:
            kwargs["features_extractor_class"] = EXTRACTORS[kwargs["features_extractor_class"]]
        if "activation_fn" in kwargs:
            kwargs["activation_fn"] = {
                "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
                "gelu": nn.GELU, "silu": nn.SiLU,
            }[kwargs["activation_fn"]]
        return kwargs


class PPOPolicyKwargs(PolicyKwargs):
    """PPO's ``ActorCriticPolicy`` arguments."""

    ortho_init: bool | None = None
    full_std: bool | None = None
    squash_output: bool | None = None


class SACPolicyKwargs(PolicyKwargs):
    """SAC's ``SACPolicy`` arguments."""

    clip_mean: Positive | None = None
    n_critics: at_least(1) | None = None


class SB3Hyperparams(Section):
    """``hyperparams:`` keys every SB3 algorithm has: rl-zoo's, then the algorithm's own
    arguments (listed in ``ARGUMENTS``, defaults as in SB3 2.x)."""

    ARGUMENTS: ClassVar[tuple[str, ...]] = ()
    SCHEDULES: ClassVar[tuple[str, ...]] = ("learning_rate",)

    n_timesteps: at_least(1)
    """Total environment steps to train for (required)."""
    frame_stack: at_least(1) = 1
    """Stack this many observations (1: none)."""
    frozen_encoder: str | None = None
    """A :mod:`rewards.encoders` name (e.g. ``efficientnet_lite0``): image observations
    become that frozen encoder's features, computed once per env step, and the policy
    (``MlpPolicy``) reads them (:mod:`agents.sb3.frozen_features`)."""
    normalize: Annotated[NormalizeSettings, BeforeValidator(_switch("norm_reward"))] = \
        NormalizeSettings(norm_reward=False)
    """true: scale rewards by a running std of the discounted return (VecNormalize,
    norm_obs off); or ``{norm_reward: true, clip_reward: X}``."""
    learning_rate: Schedule = 3.0e-4
    gamma: Probability = 0.99
    use_sde: bool = False
    sde_sample_freq: Int = -1
    stats_window_size: at_least(1) = 100

    def sb3_arguments(self) -> dict[str, Any]:
        """The algorithm's keyword arguments, ``lin_X`` schedules turned into functions."""
        kwargs = {key: getattr(self, key) for key in self.ARGUMENTS}
        for key in self.SCHEDULES:
            if kwargs.get(key) is not None:
                kwargs[key] = parse_schedule(kwargs[key])
        return kwargs

    def normalize_arguments(self) -> dict[str, Any] | None:
        """``VecNormalize`` arguments for reward normalisation, or None for none."""
        if not self.normalize.norm_reward:
            return None
        return {"clip_reward": float(self.normalize.clip_reward)}


class PPOHyperparams(SB3Hyperparams):
    """``hyperparams:`` of ``algo: ppo``."""

    ARGUMENTS: ClassVar[tuple[str, ...]] = (
        "learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda",
        "clip_range", "clip_range_vf", "normalize_advantage", "ent_coef", "vf_coef",
        "max_grad_norm", "use_sde", "sde_sample_freq", "target_kl", "stats_window_size")
    SCHEDULES: ClassVar[tuple[str, ...]] = ("learning_rate", "clip_range", "clip_range_vf")
    n_envs: at_least(1) = 8
    policy: Literal["CnnPolicy", "MlpPolicy", "MultiInputPolicy"] = "CnnPolicy"
    policy_kwargs: PPOPolicyKwargs = PPOPolicyKwargs()
    n_steps: at_least(1) = 2048
    batch_size: at_least(1) = 64
    n_epochs: at_least(1) = 10
    gae_lambda: Probability = 0.95
    clip_range: Schedule = 0.2
    clip_range_vf: Schedule | None = None
    normalize_advantage: bool = True
    ent_coef: NonNegative = 0.0
    vf_coef: NonNegative = 0.5
    max_grad_norm: NonNegative = 0.5
    target_kl: Positive | None = None

    @model_validator(mode="after")
    def _rollout_fits(self) -> PPOHyperparams:
        rollout = self.n_steps * self.n_envs
        if rollout < 2:
            raise ValueError(f"n_steps x n_envs must be > 1 (PPO normalises advantages over "
                             f"the rollout), got {self.n_steps} x {self.n_envs}")
        if self.batch_size > rollout:
            raise ValueError(f"batch_size ({self.batch_size}) is larger than a rollout "
                             f"(n_steps x n_envs = {rollout})")
        return self


def _check_entropy_coefficient(value: float | str) -> float | str:
    if isinstance(value, str):
        if value == "auto" or _number_after("auto_", value):
            return value
        raise ValueError(f"{value!r} is not a number > 0, 'auto' or 'auto_<initial value>'")
    return _positive(value)


class SACHyperparams(SB3Hyperparams):
    """``hyperparams:`` of ``algo: sac`` (rl-zoo's key names; SB3's SAC defaults)."""

    ARGUMENTS: ClassVar[tuple[str, ...]] = (
        "learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma",
        "train_freq", "gradient_steps", "n_steps", "ent_coef", "target_update_interval",
        "target_entropy", "use_sde", "sde_sample_freq", "use_sde_at_warmup",
        "stats_window_size")
    n_envs: at_least(1) = 1
    policy: Literal["MlpPolicy", "CnnPolicy", "MultiInputPolicy"] = "MlpPolicy"
    policy_kwargs: SACPolicyKwargs = SACPolicyKwargs()
    buffer_size: at_least(1) = 1_000_000
    """Transitions kept (the replay buffer; checkpointed with the run)."""
    learning_starts: at_least(0) = 100
    batch_size: at_least(1) = 256
    tau: Annotated[float, Field(gt=0, le=1)] = 0.005
    train_freq: at_least(1) | tuple[at_least(1), Literal["step", "episode"]] = 1
    gradient_steps: Int = 1
    """Gradient steps after each ``train_freq``; -1: as many as environment steps."""
    n_steps: at_least(1) = 1
    """n-step returns (1: SAC as published)."""
    ent_coef: Annotated[float | str, AfterValidator(_check_entropy_coefficient)] = "auto"
    target_update_interval: at_least(1) = 1
    target_entropy: float | Literal["auto"] = "auto"
    use_sde_at_warmup: bool = False
    pretrain_steps: at_least(0) = 0
    """PEBBLE's unsupervised pre-training: for the first N steps the agent maximises a
    state-entropy bonus (k-nearest-neighbour distance between states), so the first
    preference queries compare diverse behaviour; 0 (default): off."""

    @field_validator("gradient_steps")
    @classmethod
    def _gradient_steps(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be >= 1, or -1 (as many as environment steps), got {value}")
        return value


class SB3Config(EnvFields, RewardFields, RunConfig):
    """What stable-baselines3 runs share: env, reward module, optional online
    preference loop."""

    preference: Annotated[PreferenceSettings | None, BeforeValidator(_switch("enabled"))] = None
    """The online preference loop (``reward: preference`` only); ``false`` for a fixed
    reward; unset means the defaults with ``reward: preference``."""
    vec_env: Literal["dummy", "subproc"] = "dummy"
    hyperparams: SB3Hyperparams

    LENGTH_KEY: ClassVar[str] = "hyperparams.n_timesteps"

    @model_validator(mode="before")
    @classmethod
    def _preference_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preference") is None \
                and data.get("reward", "ground_truth") == "preference":
            data = {**data, "preference": {}}
        return data

    @model_validator(mode="after")
    def _preference_needs_preference_reward(self) -> SB3Config:
        if self.preference is not None and self.preference.enabled \
                and self.reward != "preference":
            raise ValueError(f"a 'preference' section needs reward: preference (got reward: "
                             f"{self.reward})")
        frozen = self.hyperparams.frozen_encoder
        if frozen is not None:
            from rewards.encoders import check_encoder_name  # the rewards package loads torch

            check_encoder_name(frozen)
            if getattr(self.hyperparams, "policy", None) != "MlpPolicy":
                raise ValueError("hyperparams.frozen_encoder makes the observations feature "
                                 "vectors: set hyperparams.policy: MlpPolicy")
            if self.env_kwargs.get("obs_mode", "rgb") != "rgb":
                raise ValueError(f"hyperparams.frozen_encoder encodes image observations; "
                                 f"env_kwargs.obs_mode is {self.env_kwargs['obs_mode']!r} "
                                 f"(use rgb)")
        loop = self.preference_loop
        if loop is not None and loop.demo_episodes and self.reward_frames != "render":
            raise ValueError(f"preference.demo_episodes records the reward view "
                             f"(env.render()), but this run's reward scores "
                             f"reward_frames: {self.reward_frames}; use render")
        if self.hyperparams.normalize_arguments() and self.rewards_whole_episodes():
            raise ValueError(f"hyperparams.normalize does not apply to the {self.reward} "
                             f"reward: it rewrites whole episodes in the rollout buffer "
                             f"after the normaliser has seen each step; set normalize: false")
        return self

    def check_start(self, checked: Any) -> None:
        loop = self.preference_loop
        if loop is not None and loop.demo_episodes:
            from agents.rollouts import check_policies

            try:
                check_policies(self.env, [loop.demo_policy], self.env_kwargs)
            except TypeError as error:
                raise ValueError(f"preference.demo_policy: {error}") from None

    def rewards_whole_episodes(self) -> bool:
        """Whether the reward module scores whole episodes (RAPL)."""
        from rewards.registry import get  # the module's class: the rewards package loads torch

        return bool(get(self.reward).needs_trajectory)

    @property
    def preference_loop(self) -> PreferenceSettings | None:
        """The online loop's settings, or None when the reward is fixed."""
        return self.preference if self.preference is not None and self.preference.enabled \
            else None

    def run_name(self) -> str:
        env = self.env.split("/")[-1].removesuffix("-v0").lower()
        return f"train-{self.algo + '-' if self.algo != 'ppo' else ''}{env}-{self.reward}"


class PPOConfig(SB3Config):
    """``algo: ppo``: stable-baselines3 PPO."""

    algo: Literal["ppo"] = "ppo"
    hyperparams: PPOHyperparams


class SACConfig(SB3Config):
    """``algo: sac``: stable-baselines3 SAC, with PEBBLE's relabelling when the reward
    is learned online (every reward in the replay buffer is recomputed from its
    transition's reward-view frame after each reward update)."""

    algo: Literal["sac"] = "sac"
    hyperparams: SACHyperparams

    def check_start(self, checked: Any) -> None:
        super().check_start(checked)
        shape = checked.observation_shape
        if self.hyperparams.pretrain_steps and shape is not None and len(shape) != 1:
            raise ValueError(f"hyperparams.pretrain_steps needs flat state observations for "
                             f"its state-entropy bonus; {self.env} observes shape {shape} "
                             f"(set env_kwargs.obs_mode: state)")

    @model_validator(mode="after")
    def _step_rewards_only(self) -> SACConfig:
        if self.rewards_whole_episodes():
            raise ValueError(f"the {self.reward} reward scores whole episodes, which SAC's "
                             f"replay buffer cannot take step by step; use algo: ppo")
        return self
