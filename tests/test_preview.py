"""`vmalign preview` against fake environments registered here.

The fakes draw a solid colour that changes every step, so the decoded video and
the contact sheet can be checked frame by frame without MuJoCo.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
from gymnasium import spaces
from PIL import Image

import envs
from agents import preview
from agents.cli import main

COLORS = np.array([(230, 30, 30), (30, 230, 30), (30, 30, 230)], dtype=np.uint8)
"""Frame colour after t steps is COLORS[t % 3]."""
INSTRUCTION = "paint the screen"
STOPPING_ID = "vmalign-test/Stopping-v0"  # terminates with success after 7 steps
ENDLESS_ID = "vmalign-test/Endless-v0"  # never terminates; truncated at 5 steps
FAKE_IDS = (STOPPING_ID, ENDLESS_ID)
SIZE = 32


class ColorEnv(gym.Env[np.ndarray, int]):
    """A tiny pixel env: the observation is the step count, the frame a solid colour."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self, render_mode: str | None = None, render_size: int = 64, episode_length: int = 0
    ) -> None:
        self.render_mode = render_mode
        self.render_size = render_size
        self.episode_length = episode_length  # 0: never terminates
        self.observation_space = spaces.Box(0.0, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"instruction": INSTRUCTION}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        done = self.episode_length > 0 and self.t >= self.episode_length
        info = {"instruction": INSTRUCTION, "is_success": done}
        return self._obs(), 0.5, done, False, info

    def render(self) -> np.ndarray:
        frame = np.empty((self.render_size, self.render_size, 3), dtype=np.uint8)
        frame[:] = COLORS[self.t % len(COLORS)]
        return frame

    def _obs(self) -> np.ndarray:
        return np.array([self.t], dtype=np.float32)


if STOPPING_ID not in gym.registry:
    gym.register(STOPPING_ID, entry_point=ColorEnv, kwargs={"episode_length": 7})
if ENDLESS_ID not in gym.registry:
    gym.register(ENDLESS_ID, entry_point=ColorEnv, max_episode_steps=5)


class CountingPolicy:
    """Always pushes action 1 and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, obs: np.ndarray) -> int:
        self.calls += 1
        return 1


@pytest.fixture
def fake_envs(monkeypatch: pytest.MonkeyPatch) -> list[CountingPolicy]:
    """Makes the fakes the only registered envs and their expert a CountingPolicy.

    Returns the list every policy built by ``envs.experts.expert_policy`` goes into.
    """
    monkeypatch.setattr(envs, "ENV_IDS", FAKE_IDS)
    built: list[CountingPolicy] = []

    def expert_policy(env: gym.Env) -> CountingPolicy:
        built.append(CountingPolicy())
        return built[-1]

    experts = types.ModuleType("envs.experts")
    experts.expert_policy = expert_policy  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "envs.experts", experts)
    monkeypatch.setattr(envs, "experts", experts, raising=False)
    return built


def read_video(path: Path) -> list[np.ndarray]:
    """Every decoded frame of a video file."""
    with imageio.get_reader(path) as reader:
        return [np.asarray(frame) for frame in reader]


def assert_color(pixels: np.ndarray, color: np.ndarray) -> None:
    """The pixels' mean is within lossy-codec tolerance of ``color``."""
    mean = pixels.reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - color).max() < 12, (mean, color)


def test_videos_have_one_frame_per_step_plus_reset(
    fake_envs: list[CountingPolicy], tmp_path: Path
) -> None:
    result = preview.run_preview(out_dir=tmp_path / "out", size=SIZE, log=lambda line: None)

    assert result.out_dir == tmp_path / "out"
    assert [e.env_id for e in result.episodes] == list(FAKE_IDS)
    assert [p.calls for p in fake_envs] == [7, 5]  # the expert drove every step
    stopping, endless = result.episodes
    assert (stopping.steps, stopping.success, stopping.episode_return) == (7, True, 3.5)
    assert (endless.steps, endless.success) == (5, False)
    assert stopping.instruction == INSTRUCTION

    for episode, expected_frames in ((stopping, 8), (endless, 6)):
        assert episode.video == result.out_dir / f"{episode.env_id.split('/')[1]}.mp4"
        frames = read_video(episode.video)
        assert len(frames) == expected_frames
        assert frames[0].shape == (SIZE, SIZE, 3)
        for t, frame in enumerate(frames):
            assert_color(frame, COLORS[t % 3])
    # Only the final files are left: no temporary ".partial" names.
    assert sorted(p.name for p in result.out_dir.iterdir()) == [
        "Endless-v0.mp4",
        "Stopping-v0.mp4",
        "contact_sheet.png",
    ]


def test_contact_sheet_has_one_labelled_row_per_env(
    fake_envs: list[CountingPolicy], tmp_path: Path
) -> None:
    result = preview.run_preview(out_dir=tmp_path, size=SIZE, log=lambda line: None)

    with Image.open(result.contact_sheet) as image:
        assert image.format == "PNG"
        sheet = np.asarray(image.convert("RGB"))
    row_height = preview.LABEL_HEIGHT + SIZE
    assert sheet.shape == (len(FAKE_IDS) * row_height, 3 * SIZE, 3)
    # Row 0 (7 steps): frames t=0, 4 and 7; row 1 (5 steps): t=0, 3 and 5.
    for row, times in enumerate(((0, 4, 7), (0, 3, 5))):
        top = row * row_height + preview.LABEL_HEIGHT
        for column, t in enumerate(times):
            tile = sheet[top : top + SIZE, column * SIZE : (column + 1) * SIZE]
            assert_color(tile, COLORS[t % 3])
        label = sheet[row * row_height : top]
        assert (label > 128).any(), "label band has no text"


def test_odd_size_still_writes_a_video(fake_envs: list[CountingPolicy], tmp_path: Path) -> None:
    result = preview.run_preview([STOPPING_ID], tmp_path, size=33, log=lambda line: None)
    frames = read_video(result.episodes[0].video)
    assert len(frames) == 8
    assert frames[0].shape == (34, 34, 3)  # padded to even for H.264


def test_unknown_id_lists_valid_ids_and_writes_nothing(
    fake_envs: list[CountingPolicy], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(preview.UnknownEnvError) as info:
        preview.run_preview(["vmalign/Nope-v0"], out, size=SIZE, log=lambda line: None)
    message = str(info.value)
    assert "'vmalign/Nope-v0'" in message
    assert all(env_id in message for env_id in FAKE_IDS)
    assert not out.exists()


def test_cli_unknown_id_exits_2(
    fake_envs: list[CountingPolicy], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["preview", "--env", "vmalign/Nope-v0", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "vmalign/Nope-v0" in err and STOPPING_ID in err


def test_existing_non_empty_folder_is_never_overwritten(
    fake_envs: list[CountingPolicy], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old_video = out / "Stopping-v0.mp4"
    old_video.write_bytes(b"an older run")
    (tmp_path / "out-1").mkdir()
    (tmp_path / "out-1" / "notes.txt").write_text("also taken")

    result = preview.run_preview([STOPPING_ID], out, size=SIZE, log=lambda line: None)

    assert result.out_dir == tmp_path / "out-2"
    assert old_video.read_bytes() == b"an older run"
    assert sorted(p.name for p in out.iterdir()) == ["Stopping-v0.mp4"]
    assert (result.out_dir / "Stopping-v0.mp4").stat().st_size > len(b"an older run")


def test_existing_empty_folder_is_used(fake_envs: list[CountingPolicy], tmp_path: Path) -> None:
    result = preview.run_preview([STOPPING_ID], tmp_path, size=SIZE, log=lambda line: None)
    assert result.out_dir == tmp_path


def test_cli_default_runs_every_env_into_a_timestamped_folder(
    fake_envs: list[CountingPolicy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["preview", "--size", str(SIZE), "--seed", "3"]) == 0

    (out,) = (tmp_path / "outputs").iterdir()
    assert out.name.startswith("preview-")
    assert sorted(p.name for p in out.iterdir()) == [
        "Endless-v0.mp4",
        "Stopping-v0.mp4",
        "contact_sheet.png",
    ]
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed  # absolute path at the end
    assert f"{STOPPING_ID}: 7 steps, success yes" in printed
    assert f"{ENDLESS_ID}: 5 steps, success no" in printed


def test_real_environment_preview_with_its_scripted_expert(tmp_path: Path) -> None:
    result = preview.run_preview(["vmalign/Reach-v0"], tmp_path / "real", size=64,
                                 log=lambda line: None)
    (episode,) = result.episodes
    assert episode.success and episode.steps == 50
    assert episode.instruction.startswith("move the gripper to the")
    frames = imageio.mimread(episode.video)
    assert len(frames) == 51 and frames[0].shape == (64, 64, 3)
    sheet = Image.open(result.contact_sheet)
    sheet.load()
    assert sheet.width == 3 * 64


def test_a_size_the_env_refuses_writes_nothing(tmp_path: Path, capsys) -> None:
    """``vmalign preview --size 100000`` (issue 23, defect 7): an error, no empty folder."""
    out = tmp_path / "huge"
    assert main(["preview", "--env", "vmalign/Reach-v0", "--size", "100000",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "render_size" in err and "100000" in err and "Traceback" not in err
    assert not out.exists()
