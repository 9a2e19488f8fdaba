"""``vmalign eval``: success rate, best/worst videos and the learning curve of a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from agents.cli import main
from agents.config import load_config
from agents.evaluation import evaluate_run
from agents.rollouts import NO_FRAMES, Episode
from agents.runs import train

# 128 steps over 2 envs: one 50-step Reach episode ends in each, so the learning
# curve has points.
TINY = ["hyperparams.n_timesteps=128", "hyperparams.n_envs=2", "hyperparams.n_steps=16",
        "hyperparams.batch_size=32", "hyperparams.n_epochs=1", "checkpoint_every=32"]


def quiet(*_args) -> None:
    pass


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny trained Reach run (128 steps, a checkpoint every 32), built once."""
    folder = tmp_path_factory.mktemp("run")
    config = load_config("reach_ground_truth", TINY)
    (folder / "config.yaml").write_text(config.to_yaml())
    train(config, folder, progress_bar=False, log=quiet)
    return folder


@pytest.fixture(scope="module")
def first_eval(run_dir) -> dict:
    return evaluate_run(run_dir, episodes=2, log=quiet)


def frame_count(path: Path) -> int:
    reader = imageio.get_reader(path)
    try:
        return sum(1 for _ in reader)
    finally:
        reader.close()


def test_eval_writes_summary_videos_and_curve(run_dir, first_eval):
    out = Path(first_eval["out_dir"])
    assert out == run_dir / "eval"
    saved = json.loads((out / "eval.json").read_text())
    assert saved["episodes"] == 2 and len(saved["episode_results"]) == 2
    assert saved["env"] == "vmalign/Reach-v0" and saved["reward"] == "ground_truth"
    assert saved["checkpoint_step"] == 128
    assert saved["seed"] == 1_000_000  # config seed 0 + the held-out offset
    assert [e["seed"] for e in saved["episode_results"]] == [1_000_000, 1_000_001]
    for episode in saved["episode_results"]:
        assert set(episode) >= {"seed", "return", "success", "length"}
        assert episode["length"] == 50  # Reach's time limit
        assert isinstance(episode["success"], bool)
    assert "learned_return" not in saved["episode_results"][0]  # ground truth: not repeated
    assert "mean_learned_return" not in saved
    assert 0.0 <= saved["success_rate"] <= 1.0
    returns = [e["return"] for e in saved["episode_results"]]
    assert saved["mean_return"] == pytest.approx(sum(returns) / 2, abs=1e-3)
    assert saved["std_return"] >= 0
    progress = [e["final_progress"] for e in saved["episode_results"]]
    assert all(0.0 <= p <= 1.0 for p in progress)
    assert saved["mean_final_progress"] == pytest.approx(sum(progress) / 2, abs=1e-4)
    assert saved["videos"]["best"]["return"] == max(returns)
    assert saved["videos"]["worst"]["return"] == min(returns)
    for name in ("best.mp4", "worst.mp4"):
        assert frame_count(out / name) == 51  # the reset frame and one per step
    assert saved["learning_curve"] == "learning_curve.png"
    assert (out / "learning_curve.png").stat().st_size > 0
    assert not list(out.glob("*.partial*")) and not list(out.glob(".*tmp*"))


def test_final_progress_is_the_progress_after_the_last_step():
    def episode(progress):
        return Episode(NO_FRAMES, np.zeros(3, np.float32), progress=progress)

    assert episode(np.array([0.1, 0.5, 0.75], np.float32)).final_progress == 0.75
    assert episode(np.array([0.1, 0.5, np.nan], np.float32)).final_progress is None
    assert episode(None).final_progress is None  # an env that reports no progress


def test_same_seeds_give_the_same_episodes(run_dir, first_eval):
    again = evaluate_run(run_dir, episodes=1, log=quiet)
    try:
        assert again["episode_results"][0]["return"] == first_eval["episode_results"][0]["return"]
    finally:
        shutil.rmtree(again["out_dir"])


def test_second_eval_goes_to_a_new_folder(run_dir, first_eval):
    before = (run_dir / "eval" / "eval.json").read_bytes()
    lines: list[str] = []
    second = evaluate_run(run_dir, episodes=1, seed=7, checkpoint="step-0000000032",
                          video_size=48, log=lines.append)
    try:
        out = Path(second["out_dir"])
        assert out != run_dir / "eval" and out.name.startswith("eval-")
        assert (run_dir / "eval" / "eval.json").read_bytes() == before
        saved = json.loads((out / "eval.json").read_text())
        assert saved["checkpoint_step"] == 32 and saved["seed"] == 7
        assert saved["episodes"] == 1 and saved["video_size"] == 48
        frame = imageio.get_reader(out / "best.mp4").get_data(0)
        assert frame.shape[:2] == (48, 48)
        assert "success rate" in lines[-1] and str(out) in lines[-1]
    finally:
        shutil.rmtree(second["out_dir"])


def test_missing_run_folder_or_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        evaluate_run(tmp_path / "nope", episodes=1, log=quiet)
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        evaluate_run(tmp_path, episodes=1, log=quiet)


def test_run_without_checkpoint(tmp_path, run_dir):
    shutil.copy(run_dir / "config.yaml", tmp_path / "config.yaml")
    with pytest.raises(ValueError, match="no checkpoint yet"):
        evaluate_run(tmp_path, episodes=1, log=quiet)
    assert not (tmp_path / "eval").exists()


def test_checkpoint_names(run_dir):
    from agents.checkpoint import checkpoint_folder

    root = run_dir / "checkpoints"
    assert checkpoint_folder(run_dir, "step-0000000032") == root / "step-0000000032"
    # "latest" is a pointer file, not a folder: it names the newest checkpoint.
    assert checkpoint_folder(run_dir, "latest") == root / "step-0000000128"
    assert checkpoint_folder(run_dir, root / "step-0000000032") == root / "step-0000000032"


def test_bad_arguments(run_dir):
    with pytest.raises(ValueError, match="--episodes"):
        evaluate_run(run_dir, episodes=0, log=quiet)
    # A name that is neither a folder nor a checkpoint of the run lists the ones there are.
    with pytest.raises(FileNotFoundError, match=r"no checkpoint 'step-0000000999'.*"
                                                r"step-0000000032, .*0128 \(or latest\)"):
        evaluate_run(run_dir, episodes=1, checkpoint="step-0000000999", log=quiet)
    with pytest.raises(FileNotFoundError, match="not a vmalign checkpoint"):
        evaluate_run(run_dir, episodes=1, checkpoint=run_dir / "checkpoints", log=quiet)


def test_learning_curve_skipped_without_progress(tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval*", "progress.csv"))
    lines: list[str] = []
    result = evaluate_run(copy, episodes=1, log=lines.append)
    out = Path(result["out_dir"])
    assert json.loads((out / "eval.json").read_text())["learning_curve"] is None
    assert not (out / "learning_curve.png").exists()
    assert any("no learning curve" in line for line in lines)


def test_learning_curve_without_finished_episodes_is_written_empty(tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval*"))
    (copy / "progress.csv").write_text("time/total_timesteps,time/fps\n32,100\n")
    lines: list[str] = []
    result = evaluate_run(copy, episodes=1, log=lines.append)
    assert result["learning_curve"] == "learning_curve.png"
    assert (Path(result["out_dir"]) / "learning_curve.png").is_file()
    assert any("learning curve is empty" in line for line in lines)


def test_cli(run_dir, first_eval, capsys):
    assert main(["eval", str(run_dir), "--episodes", "2", "--stochastic"]) == 0
    out = capsys.readouterr().out
    assert "success rate" in out and "over 2 episode(s)" in out
    assert main(["eval", str(run_dir), "--episodes", "0"]) == 2
    assert "--episodes must be" in capsys.readouterr().err
    assert main(["eval", str(run_dir.parent / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
