"""A person as the teacher: the trainer waits for the page's labels, survives kills, and
the labels it trained on are the person's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from agents.config import load_config
from agents.labelling.human import HumanTeacher, HumanTeacherSettings
from agents.labelling.pending import PendingQueue
from agents.labelling.server import TOKEN_HEADER
from agents.runs import train
from rewards.preference_store import PreferenceStore
from tests.labelling_helpers import TOKEN, posted_queue, segments
from tests.test_train import TINY_PREFERENCE

ROOT = Path(__file__).resolve().parents[1]
HUMAN = [*TINY_PREFERENCE, "preference.teacher=human",
         "preference.teacher_kwargs={serve: false}", "hyperparams.n_timesteps=160"]


class Person(threading.Thread):
    """Answers every pending pair of a run ("left" when segment a is brighter) until
    stopped, ``limit`` answers at most."""

    def __init__(self, folder: Path, limit: int | None = None) -> None:
        super().__init__(daemon=True)
        self.folder, self.limit, self.given = folder, limit, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            if (self.folder / "pending").is_dir():
                queue = PendingQueue(PreferenceStore(self.folder / "preferences"))
                number = queue.open_round()
                for query in [] if number is None else queue.progress(number).pending:
                    if self.limit is not None and self.given >= self.limit:
                        return
                    frames_a, frames_b, _ = queue.pair(number, query)
                    choice = "left" if frames_a.mean() >= frames_b.mean() else "right"
                    queue.answer(number, query, choice, "tester")
                    self.given += 1
            time.sleep(0.02)

    def __enter__(self) -> Person:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.join(timeout=5)


def human_records(run: Path) -> list[dict]:
    return [r for r in PreferenceStore(run / "preferences").records() if r["source"] == "human"]


def test_a_training_run_waits_for_a_person_and_counts_their_labels(tmp_path):
    config = load_config("reach_preference", HUMAN)
    with Person(tmp_path / "run"):
        summary = train(config, tmp_path / "run", progress_bar=False, log=lambda *a: None)
    # Rounds at steps 32, 64, ..., 160: 8 + 4 x 4 pairs, every one answered by the person.
    assert summary["queries_asked"] == 24 == summary["labels"]
    assert summary["labels_by_source"] == {"human": 24}
    queue = PendingQueue(PreferenceStore(tmp_path / "run" / "preferences"))
    assert queue.rounds() == [0, 1, 2, 3, 4] and queue.open_round() is None
    assert [queue.header(n)["meta"]["step"] for n in queue.rounds()] == [32, 64, 96, 128, 160]
    assert {r["meta"]["labeller"] for r in human_records(tmp_path / "run")} == {"tester"}


def test_with_a_timeout_the_run_goes_on_with_what_was_answered(tmp_path):
    config = load_config("reach_preference", [
        *HUMAN, "preference.teacher_kwargs={serve: false, wait_seconds: 0.3}",
        "hyperparams.n_timesteps=64"])
    with Person(tmp_path / "run", limit=3):
        summary = train(config, tmp_path / "run", progress_bar=False, log=lambda *a: None)
    # Nobody answers after the third pair: both rounds close on the timeout; only the
    # answered pairs count against the budget.
    assert summary["labels"] == summary["queries_asked"] == 3


class Killed(Exception):
    """Stands in for SIGKILL inside the test process."""


def test_a_run_killed_while_waiting_resumes_with_the_same_pending_pairs(tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = load_config("reach_preference", [*HUMAN, "checkpoint_every=32"])
    real_wait = HumanTeacher._wait

    def die_after_three_answers(self, queue, number):
        if number == 1:
            while queue.progress(number).answered < 3:
                time.sleep(0.01)
            raise Killed
        return real_wait(self, queue, number)

    monkeypatch.setattr(HumanTeacher, "_wait", die_after_three_answers)
    with Person(run, limit=8 + 3), pytest.raises(Killed):  # round 0, then 3 of round 1
        train(config, run, progress_bar=False, log=lambda *a: None)
    queue = PendingQueue(PreferenceStore(run / "preferences"))
    assert queue.open_round() == 1
    posted = queue.pair(1, 0)[0].copy(), queue.pair(1, 3)[1].copy()
    assert queue.progress(1).answered == 3

    monkeypatch.setattr(HumanTeacher, "_wait", real_wait)
    with Person(run):
        summary = train(config, run, resume=True, progress_bar=False, log=lambda *a: None)
    assert queue.rounds() == [0, 1, 2, 3, 4]  # round 1 was waited for again, not re-drawn
    np.testing.assert_array_equal(queue.pair(1, 0)[0], posted[0])
    np.testing.assert_array_equal(queue.pair(1, 3)[1], posted[1])
    answered = [(r["meta"]["pending_round"], r["meta"]["pending_query"])
                for r in human_records(run)]
    assert len(answered) == len(set(answered)) == 24  # none lost, none twice
    assert summary["queries_asked"] == 24 and summary["labels_by_source"] == {"human": 24}


COLLECT = textwrap.dedent("""
    import json, sys
    from types import SimpleNamespace
    from agents.labelling.human import HumanTeacher, HumanTeacherSettings
    from rewards.preference_store import PreferenceStore
    from tests.labelling_helpers import segments

    def draw():
        if sys.argv[2] == "resume":
            raise AssertionError("a resumed round must not draw new pairs")
        frames_a, frames_b = segments(5)
        return SimpleNamespace(frames_a=frames_a, frames_b=frames_b, instructions=["i"] * 5)

    teacher = HumanTeacher(HumanTeacherSettings(serve=False), poll_seconds=0.02)
    collected = teacher.collect(draw, PreferenceStore(sys.argv[1]), {"round": 0, "step": 9})
    print(json.dumps(collected.__dict__), flush=True)
""")


def test_a_killed_trainer_process_waits_for_the_same_pairs_after_restart(tmp_path):
    store = PreferenceStore(tmp_path / "preferences")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-c", COLLECT, str(store.folder), "new"],
                             env=environment, cwd=ROOT)
    queue = PendingQueue(store)
    deadline = time.monotonic() + 60
    while queue.open_round() is None:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    queue.answer(0, 0, "left", "ada")
    queue.answer(0, 3, "skip", "ada")
    first.send_signal(signal.SIGKILL)
    first.wait()

    second = subprocess.Popen([sys.executable, "-c", COLLECT, str(store.folder), "resume"],
                              env=environment, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for query in (1, 2, 4):
        queue.answer(0, query, "right", "ada")
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 0
    assert json.loads(output.splitlines()[-1]) == {"asked": 5, "kept": 4, "resumed": True}
    assert queue.rounds() == [0] and queue.progress(0).closed
    assert [r["meta"]["pending_query"] for r in store.records()] == [0, 1, 2, 4]


def test_a_label_answered_before_the_server_is_killed_is_on_disk(tmp_path):
    posted_queue(tmp_path, count=3)
    server = subprocess.Popen(
        [sys.executable, "-m", "agents", "label", str(tmp_path), "--port", "0"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "VMALIGN_LABEL_TOKEN": TOKEN}, cwd=ROOT,
        stdout=subprocess.PIPE, text=True)
    try:
        url = None
        while url is None:
            line = server.stdout.readline()
            assert line, "the server exited before printing its URL"
            url = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=", line)
        base = url.group(1)
        reply = httpx.post(f"{base}/api/label", headers={TOKEN_HEADER: TOKEN},
                           json={"round": 0, "query": 1, "label": "equal"})
        assert reply.status_code == 200
    finally:
        server.send_signal(signal.SIGKILL)  # between the click and the next pair
        server.wait()
    records = PreferenceStore(tmp_path / "preferences").records()
    assert [(r["label"], r["meta"]["pending_query"]) for r in records] == [(0.5, 1)]


def test_human_teacher_settings_are_checked_before_the_run_folder_exists(tmp_path):
    for bad, words in [("{port: 99999}", "port: .*less than or equal"),
                       ("{colour: red}", "colour: Extra inputs.*keys allowed.*wait_seconds"),
                       ("{host: 0.0.0.0}", "--allow-remote"),
                       ("{wait_seconds: -1}", "wait_seconds: .*greater than 0")]:
        with pytest.raises(ValueError, match=words):
            load_config("reach_preference", [*TINY_PREFERENCE, "preference.teacher=human",
                                              f"preference.teacher_kwargs={bad}"])
    assert not (tmp_path / "run").exists()


def test_the_teacher_serves_the_page_and_stops_it(tmp_path):
    teacher = HumanTeacher(HumanTeacherSettings(port=0, wait_seconds=0.2),
                           log=lambda *a: None, poll_seconds=0.02)

    def draw():
        frames_a, frames_b = segments(2)
        return SimpleNamespace(frames_a=frames_a, frames_b=frames_b, instructions=["x", "y"])

    collected = teacher.collect(draw, PreferenceStore(tmp_path / "preferences"), {})
    assert collected.asked == 0 and not collected.resumed
    url = teacher.server.url
    assert httpx.get(url).status_code == 200
    teacher.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


@pytest.mark.parametrize("arguments, words", [
    (["--host", "0.0.0.0"], "--allow-remote"), (["--port", "70000"], "port"),
    (["--labeller", "../x"], "labeller name"),
])
def test_vmalign_label_refuses_bad_arguments_before_serving(tmp_path, capsys, arguments, words):
    from agents.cli import main

    posted_queue(tmp_path, count=1)
    assert main(["label", str(tmp_path), *arguments]) == 2
    assert words in capsys.readouterr().err
    assert main(["label", str(tmp_path / "missing")]) == 2
    assert "no pending/ folder" in capsys.readouterr().err
