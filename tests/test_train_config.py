"""Training configs: shipped ones load, bad ones stop at start-up naming the key."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

from agents.cli import build_parser, main
from agents.config import CONFIG_DIR, ConfigError, apply_overrides, load_config
from agents.runs import preflight_run
from agents.sb3.config import parse_schedule

import envs

# The PPO configs load as shipped; the VLA ones need data or a policy first
# (tests/test_vla_bc.py checks that they say so).
SHIPPED = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("vla_"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


MINIMAL = "env: vmalign/Reach-v0\nhyperparams: {n_timesteps: 1000}\n"


def test_every_registered_env_has_a_ground_truth_config():
    for env_id in envs.ENV_IDS:
        # vmalign/Push-v0 -> push_ground_truth; later versions keep theirs: push_v1_...
        name = env_id.split("/")[1].removesuffix("-v0").lower().replace("-", "_")
        config = load_config(f"{name}_ground_truth")
        assert config.env == env_id and config.reward == "ground_truth"


@pytest.mark.parametrize("task", ["reach", "push", "pick_place", "stack", "sweep"])
@pytest.mark.parametrize("reward", ["preference", "clip"])
def test_manipulation_tasks_have_learned_reward_configs(task, reward):
    config = load_config(f"{task.replace('_', '')}_{reward}")
    assert config.reward == reward


@pytest.mark.parametrize("task", ["reach", "push_v1", "pickplace", "stack", "sweep",
                                  "gotoobject"])
def test_every_task_has_state_policy_configs_with_pixel_rewards(task):
    preference = load_config(f"{task}_state_preference")
    assert preference.env_kwargs["obs_mode"] == "state" and preference.reward == "preference"
    assert preference.preference_loop.total_queries <= 2000  # the label budget
    if task != "gotoobject":  # VLM-RM's row: SAC on state, CLIP on rendered frames
        clip = load_config(f"{task}_state_clip")
        assert (clip.algo, clip.reward, clip.env_kwargs["obs_mode"]) == ("sac", "clip", "state")
        assert clip.reward_kwargs["alpha"] == 0.5


def test_the_cross_embodiment_config_scores_the_view_reward_train_records():
    # sweep_state_rapl's reward comes from `vmalign reward-train --env vmalign/Sweep-v0`
    # on the gripper with its default frames; a different camera or size here would score
    # frames the reward never saw (the run's start-up check only sees the size).
    config = load_config("sweep_state_rapl")
    kwargs = config.env_kwargs
    assert (config.reward, kwargs["obs_mode"], kwargs["embodiment"]) == ("rapl", "state",
                                                                         "long_stick")
    recorded = build_parser("reward-train").parse_args(
        ["reward-train", "--env", "vmalign/Sweep-v0"])
    gripper = gym.make("vmalign/Sweep-v0")
    assert kwargs["render_size"] == recorded.render_size
    assert kwargs["render_camera"] == gripper.unwrapped.render_camera
    # Every 200-step episode ends inside a rollout, so each is scored whole.
    assert config.hyperparams.n_steps % gripper.spec.max_episode_steps == 0


def test_the_reach_demonstration_recipe_keeps_its_three_levers():
    # docs/results.md, session 41: two views, random starts, demonstrations in the pool.
    config = load_config("reach_state_preference_demos")
    kwargs, loop = config.env_kwargs, config.preference_loop
    assert kwargs["render_camera"] == ["workspace", "side"] and kwargs["randomize_start"]
    assert loop.demo_episodes == 40 and loop.total_queries <= 2000  # the budget
    # The env renders both views side by side and the reward module scores them so.
    assert preflight_run(config, None).frame_shape == (64, 128, 3)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load(name):
    config = load_config(name)
    assert config.hyperparams.n_timesteps > 0 and config.hyperparams.sb3_arguments()
    assert load_config(CONFIG_DIR / f"{name}.yaml") == config


def test_defaults_and_overrides(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["hyperparams.n_envs=3", "seed=7",
                                                    "env_kwargs.obs_size=32"])
    assert (config.hyperparams.n_envs, config.seed, config.env_kwargs) == (3, 7, {"obs_size": 32})
    assert config.reward == "ground_truth" and config.hyperparams.policy == "CnnPolicy"
    assert config.preference_loop is None
    preference = load_config(write(tmp_path, MINIMAL + "reward: preference\n"))
    assert preference.preference_loop.teacher == "oracle"
    fixed = load_config(write(tmp_path, MINIMAL + "reward: preference\npreference: false\n"))
    assert fixed.reward == "preference" and fixed.preference_loop is None  # no online loop


def test_normalize_reads_as_rl_zoo_writes_it(tmp_path):
    def normalize(overrides=()):
        return load_config(write(tmp_path, MINIMAL), overrides).hyperparams.normalize_arguments()

    assert normalize() is None
    assert normalize(["hyperparams.normalize=true"]) == {"clip_reward": 10.0}
    mapping = ["hyperparams.normalize={norm_obs: false, norm_reward: true, clip_reward: 5}"]
    assert normalize(mapping) == {"clip_reward": 5.0}
    assert normalize(["hyperparams.normalize={norm_reward: false}"]) is None


def test_linear_schedule_decays_to_zero():
    schedule = parse_schedule("lin_3e-4")
    assert schedule(1.0) == pytest.approx(3e-4) and schedule(0.5) == pytest.approx(1.5e-4)
    assert parse_schedule(0.2) == 0.2


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (MINIMAL + "n_timesteps: 5\n", [], "unknown key 'n_timesteps'; valid keys are ['algo'"),
        ("hyperparams: {n_timesteps: 10}\n", [], "env: is required"),
        ("env: vmalign/Nope-v0\nhyperparams: {n_timesteps: 10}\n", [], "unknown env"),
        ("env: vmalign/Reach-v0\nhyperparams: {}\n", [], "hyperparams.n_timesteps: is required"),
        (MINIMAL, ["hyperparams.n_timesteps=-1"],
         "override 'hyperparams.n_timesteps=-1': hyperparams.n_timesteps: must be >= 1, "
         "got -1"),
        (MINIMAL, ["hyperparams.learnin_rate=0.1"],
         "override 'hyperparams.learnin_rate=0.1': unknown key 'hyperparams.learnin_rate'; "
         "valid keys of hyperparams are ['batch_size'"),
        (MINIMAL, ["hyperparams.learning_rate=fast"], "not a number or 'lin_<number>'"),
        (MINIMAL, ["hyperparams.gamma=1.5"], "gamma: must be <= 1, got 1.5"),
        (MINIMAL, ["hyperparams.policy=Transformer"], "hyperparams.policy"),
        (MINIMAL, ["hyperparams.batch_size=100000"], "larger than a rollout"),
        (MINIMAL, ["reward=golden"], "unknown reward 'golden'"),
        (MINIMAL, ["preference.teacher=oracle"], "needs reward: preference"),
        (MINIMAL, ["reward=preference", "preference.teacher=sage"],
         "preference.teacher: 'sage' is not allowed; choose one of ['oracle'"),
        (MINIMAL, ["reward=preference", "preference.budget=3"], "unknown key 'preference.budget'"),
        (MINIMAL, ["vec_env=threads"], "vec_env"),
        (MINIMAL, ["hyperparams.policy_kwargs.activation_fn=swish"], "activation_fn"),
        (MINIMAL, ["hyperparams.policy_kwargs.features_extractor_class=ResNet50"],
         "features_extractor_class: must be one of 'NatureCNN', 'PixelCNN' or 'PretrainedEncoder', got 'ResNet50'"),
        (MINIMAL, ["hyperparams.policy_kwargs.features_extractor_kwargs=[64]"],
         "features_extractor_kwargs: must be a mapping, got [64]"),
        (MINIMAL, ["reward=preference", "preference.pairing=neighbours"], "preference.pairing"),
        (MINIMAL, ["reward=preference", "preference.lr=0"], "preference.lr: must be > 0, got 0"),
        (MINIMAL, ["reward=preference", "preference.train_pairs=0"],
         "train_pairs: must be >= 1, got 0"),
        (MINIMAL, ["reward=preference", "preference.initial_labels=/no/such/store"],
         "/no/such/store is not a preference store"),
        (MINIMAL, ["reward=preference", "preference.demo_episodes=4",
                   "preference.demo_policy=clever"],
         "unknown policy 'clever'; use expert, random, noisy(P)"),
        (MINIMAL, ["reward=preference", "preference.demo_episodes=4",
                   "reward_frames=observation"],
         "preference.demo_episodes records the reward view (env.render()), but this run's "
         "reward scores reward_frames: observation; use render"),
        (MINIMAL, ["reward=preference", "preference.segment=10", "preference.buffer_steps=10"],
         "buffer_steps (10) must be more than segment (10)"),
        (MINIMAL, ["hyperparams.normalize=maybe"], "hyperparams.normalize: must be true, false"),
        (MINIMAL, ["hyperparams.normalize={norm_obs: true}"], "norm_obs: must be false"),
        (MINIMAL, ["hyperparams.normalize={clip: 5}"], "unknown key 'hyperparams.normalize.clip'"),
        (MINIMAL, ["hyperparams.normalize={clip_reward: 0}"], "clip_reward: must be > 0, got 0"),
        (MINIMAL, ["seed"], "is not key=value"),
        (MINIMAL, ["env_kwargs=3", "env_kwargs.obs_size=4"], "not a mapping"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), overrides)
    assert message in str(error.value)


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "env: [unclosed\n"))
    with pytest.raises(FileNotFoundError, match="shipped configs"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_do_not_touch_the_input():
    data = {"hyperparams": {"n_timesteps": 5}}
    changed, sources = apply_overrides(data, ["hyperparams.n_timesteps=6"])
    assert data == {"hyperparams": {"n_timesteps": 5}}
    assert changed == {"hyperparams": {"n_timesteps": 6}}
    assert sources == {"hyperparams.n_timesteps": "hyperparams.n_timesteps=6"}


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    path = write(tmp_path, MINIMAL)
    assert main(["train", "--config", str(path), "hyperparams.n_envz=2"]) == 2
    err = capsys.readouterr().err
    assert "n_envz" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_bad_env_kwarg_stops_before_training(tmp_path, capsys):
    path = write(tmp_path, MINIMAL)
    code = main(["train", "--config", str(path), "env_kwargs.colour=red", "--out",
                 str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert "colour" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_demo_policy_the_env_has_not_stops_before_the_run_folder(tmp_path, capsys):
    # Reach has an expert but no scripted decoy; found by building the env, as a bad
    # env kwarg is, before anything is written.
    path = write(tmp_path, MINIMAL)
    code = main(["train", "--config", str(path), "reward=preference",
                 "preference.demo_episodes=2", "preference.demo_policy=decoy", "--out",
                 str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert "preference.demo_policy: ReachEnv has no scripted decoy" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_reward_checkpoint_must_hold_the_named_module(tmp_path):
    import rewards

    with pytest.raises(ConfigError, match="not a saved reward module"):
        load_config(write(tmp_path, MINIMAL), ["reward=rapl",
                                                f"reward_checkpoint={tmp_path / 'nothing'}"])
    rewards.save(rewards.make("preference", ensemble_size=1, image_size=8, channels=[4],
                              hidden_size=4), tmp_path / "pref")
    with pytest.raises(ConfigError, match="holds a 'preference' module but reward is 'rapl'"):
        load_config(write(tmp_path, MINIMAL), ["reward=rapl",
                                                f"reward_checkpoint={tmp_path / 'pref'}"])
    config = load_config(write(tmp_path, MINIMAL), ["reward=preference", "preference=false",
                                                     f"reward_checkpoint={tmp_path / 'pref'}"])
    assert config.reward_checkpoint == str((tmp_path / "pref").resolve())
    from agents.runs import build_reward

    module = build_reward(config, "cpu")
    assert module.name == "preference" and module.ensemble_size == 1


def test_numbers_are_read_as_researchers_write_them(tmp_path):
    # YAML 1.1 reads "5e-4" as a string; rl-zoo writes "!!float 1e6" for step counts.
    text = MINIMAL.replace("n_timesteps: 1000", "n_timesteps: !!float 2e4")
    config = load_config(write(tmp_path, text), ["hyperparams.learning_rate=5e-4",
                                                 "hyperparams.ent_coef=1e-3",
                                                 "hyperparams.n_steps=6.4e1"])
    hyper = config.hyperparams
    assert hyper.n_timesteps == 20000 and isinstance(hyper.n_timesteps, int)
    assert hyper.sb3_arguments()["learning_rate"] == pytest.approx(5e-4)
    assert hyper.ent_coef == pytest.approx(1e-3)
    assert hyper.n_steps == 64 and isinstance(hyper.n_steps, int)
    with pytest.raises(ConfigError, match="n_envs: must be an integer, got 2.5"):
        load_config(write(tmp_path, MINIMAL), ["hyperparams.n_envs=2.5"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["env_kwargs.obs_sise=64"], "obs_sise"),
        (["env_kwargs.obs_size='64'"], "obs_size must be an integer"),
        (["reward=preference"], None),  # control: a valid run gets past the checks
        (["reward=preference", "reward_kwargs.ensemble_size=abc"],
         "ensemble_size must be an integer"),
        (["device=cuda"], "CUDA is not available"),
        (["device=tpu"], "tpu"),
    ],
)
def test_failed_checks_leave_nothing_on_disk(tmp_path, capsys, monkeypatch, overrides, message):
    """Every check runs before the run folder exists (issue 23, defect 3)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    args = ["train", "--config", str(write(tmp_path, MINIMAL)), *overrides, "--out", str(out),
            "--no-progress"]
    if message is None:  # a valid config: stop it right after the checks
        from agents.cli import train as command

        monkeypatch.setattr(command, "train", lambda *a, **k: {"steps": 0, "seconds": 0,
                                                               "fps": 0, "gt_return": None,
                                                               "success_rate": None})
        assert main(args) == 0 and out.is_dir()
        return
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "outputs").exists()


def test_a_misspelt_override_is_blamed_on_the_command_line(tmp_path, capsys):
    path = write(tmp_path, MINIMAL)
    assert main(["train", "--config", str(path), "hyperparams.n_timestep=5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vmalign train: error: command-line override "
                          "'hyperparams.n_timestep=5': unknown key 'hyperparams.n_timestep'")
    valid = err[err.index("["):err.index("]") + 1]
    keys = [key.strip(" '") for key in valid.strip("[]").split(",")]
    assert len(keys) == len(set(keys)) and "n_timesteps" in keys  # each key once
    assert str(path) not in err  # the file is not blamed for the command line's typo


def test_preference_false_survives_the_saved_config(tmp_path):
    """A fixed preference reward stays fixed when the run is resumed from config.yaml."""
    config = load_config(write(tmp_path, MINIMAL), ["reward=preference", "preference=false"])
    saved = tmp_path / "saved.yaml"
    saved.write_text(config.to_yaml())
    assert load_config(saved).preference_loop is None and load_config(saved) == config


def test_a_reward_checkpoint_with_nan_weights_stops_before_the_run_starts(tmp_path, capsys):
    """Issue 23, defect 4: the error names the reward module, not torch's Normal."""
    import rewards
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "pref"
    rewards.save(rewards.make("preference", ensemble_size=1, image_size=8, channels=[4],
                              hidden_size=4), folder)
    weights = load_file(str(folder / "weights.safetensors"))
    name = sorted(weights)[0]
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, str(folder / "weights.safetensors"))
    out = tmp_path / "run"
    assert main(["train", "--config", str(write(tmp_path, MINIMAL)), "reward=preference",
                 "preference=false", f"reward_checkpoint={folder}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "NaN" in err and name in err and "Traceback" not in err
    assert not out.exists()


def test_a_ppo_config_yaml_written_before_the_typed_schemas_still_loads(tmp_path):
    """What vmalign wrote to RUN/config.yaml before issue 23 (every top-level key,
    hyperparams as given): a run started then resumes now."""
    old = ("env: vmalign/Reach-v0\nenv_kwargs: {obs_size: 64}\nreward: preference\n"
           "reward_kwargs: {ensemble_size: 1}\nreward_checkpoint: null\nreward_frames: render\n"
           "preference: {teacher: oracle, teacher_kwargs: {}, total_queries: 40, "
           "initial_queries: 8, queries_per_round: 4, update_every: 32, segment: 5, "
           "query: disagreement, pairing: same_episode, pool_factor: 4, epochs: 1, "
           "train_pairs: null, lr: 0.001, buffer_steps: 100, initial_labels: null}\n"
           "algo: ppo\nseed: 0\ndevice: auto\nvec_env: dummy\ncheckpoint_every: 64\n"
           "eval_episodes: 20\nout: null\nhyperparams: {n_timesteps: 96, n_envs: 2, "
           "policy: CnnPolicy, frame_stack: 1, n_steps: 16, batch_size: 32, n_epochs: 1, "
           "learning_rate: lin_3.0e-4, policy_kwargs: {log_std_init: -1.0}}\n")
    config = load_config(write(tmp_path, old))
    assert config.preference_loop.total_queries == 40
    assert config.hyperparams.n_steps == 16 and config.hyperparams.policy_kwargs.log_std_init == -1
    saved = tmp_path / "again.yaml"
    saved.write_text(config.to_yaml())
    assert load_config(saved) == config
