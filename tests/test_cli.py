"""The `vmalign` command line entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_help_exits_zero_and_lists_preview(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "preview" in capsys.readouterr().out


def test_preview_help_lists_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--env", "--out", "--seed", "--size"):
        assert option in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "preview" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2


def test_python_dash_m_agents() -> None:
    path = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    done = subprocess.run(
        [sys.executable, "-m", "agents", "--help"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "preview" in done.stdout


def test_help_and_the_algorithm_table_load_no_torch() -> None:
    """Only the command being run is imported: `vmalign --help` and reading the
    algorithm table stay fast (torch alone takes over a second to import)."""
    code = ("import sys; from agents.cli import build_parser; build_parser(); "
            "import agents.algorithms; print(sorted(m for m in ('torch', 'mujoco', "
            "'stable_baselines3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["train", "eval", "demo", "preview", "collect",
                                     "reward-eval", "reward-train"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"vmalign {command}" in capsys.readouterr().out
