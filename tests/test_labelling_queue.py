"""The pending queue a person answers: labels land in the store, once per pair."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from agents.labelling.pending import Conflict, PendingQueue, UnknownPair
from rewards.preference_store import PreferenceStore
from tests.labelling_helpers import posted_queue, segments


def test_answers_go_to_the_store_with_source_labeller_and_time(tmp_path):
    queue = posted_queue(tmp_path, count=4, meta={"budget": 100})
    queue.answer(0, 2, "left", "ada")
    queue.answer(0, 0, "right", "ada")
    queue.answer(0, 1, "equal", "bob")
    progress = queue.answer(0, 3, "skip", "bob")
    assert (progress.labelled, progress.skipped, progress.pending) == (3, 1, [])
    store = PreferenceStore(tmp_path / "preferences")  # a fresh reader: it is on disk
    pairs = store.load_all()
    np.testing.assert_array_equal(pairs.labels, [1.0, 0.0, 0.5])
    frames_a, frames_b = segments(4)
    np.testing.assert_array_equal(pairs.frames_a, frames_a[[2, 0, 1]])
    np.testing.assert_array_equal(pairs.frames_b, frames_b[[2, 0, 1]])
    assert pairs.sources == ["human"] * 3
    assert pairs.instructions == ["reach the red ball 2", "reach the red ball 0",
                                  "reach the red ball 1"]
    meta = store.records()[2]["meta"]
    assert meta["labeller"] == "bob" and meta["pending_round"] == 0
    assert meta["pending_query"] == 1 and meta["budget"] == 100 and meta["step"] == 100
    assert meta["time"].endswith("+00:00")


def test_a_pair_takes_one_answer_until_undone(tmp_path):
    queue = posted_queue(tmp_path, count=3)
    queue.answer(0, 1, "left", "ada")
    with pytest.raises(Conflict, match="answered already"):
        queue.answer(0, 1, "right", "bob")
    with pytest.raises(Conflict, match="answered already"):
        queue.answer(0, 1, "skip", "bob")
    assert queue.undo(0, 1, "ada").pending == [0, 1, 2]
    assert len(queue.store) == 0
    queue.answer(0, 1, "right", "ada")
    assert queue.store.load_all().labels.tolist() == [0.0]
    queue.answer(0, 2, "skip", "ada")
    assert queue.undo(0, 2, "ada").pending == [0, 2]  # a skip is undone too
    with pytest.raises(Conflict, match="no answer to undo"):
        queue.undo(0, 0, "ada")


def test_a_closed_round_takes_no_answer_and_no_undo(tmp_path):
    queue = posted_queue(tmp_path, count=3)
    queue.answer(0, 0, "left", "ada")
    queue.answer(0, 1, "skip", "ada")
    progress = queue.close(0)
    assert progress.closed and queue.open_round() is None
    with pytest.raises(Conflict, match="closed"):
        queue.answer(0, 2, "left", "ada")
    with pytest.raises(Conflict, match="closed"):
        queue.undo(0, 0, "ada")
    assert queue.answered_in_closed_rounds() == [(2, 100)]
    frames_a, frames_b = segments(2, offset=7)
    assert queue.post(frames_a, frames_b, ["a", "b"]) == 1
    assert queue.open_round() == 1


@pytest.mark.parametrize("call, error", [
    (lambda q: q.answer(0, 5, "left", "ada"), UnknownPair),
    (lambda q: q.answer(3, 0, "left", "ada"), UnknownPair),
    (lambda q: q.answer(0, 0, "maybe", "ada"), ValueError),
    (lambda q: q.answer(0, 0, "left", "../etc"), ValueError),
    (lambda q: q.answer(0, 0, "left", ""), ValueError),
    (lambda q: q.undo(0, 9, "ada"), UnknownPair),
])
def test_bad_answers_are_refused_and_write_nothing(tmp_path, call, error):
    queue = posted_queue(tmp_path, count=3)
    with pytest.raises(error):
        call(queue)
    assert len(queue.store) == 0 and queue.progress(0).pending == [0, 1, 2]


def test_concurrent_answers_to_one_pair_store_one_label(tmp_path):
    posted_queue(tmp_path, count=2)
    outcomes = []

    def answer(choice):
        queue = PendingQueue(PreferenceStore(tmp_path / "preferences"))  # its own reader
        try:
            queue.answer(0, 0, choice, "ada")
            outcomes.append("stored")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=answer, args=(c,)) for c in ["left", "right"] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["stored"]
    assert len(PreferenceStore(tmp_path / "preferences")) == 1


def test_a_post_needs_matching_uint8_segments_and_instructions(tmp_path):
    queue = PendingQueue(PreferenceStore(tmp_path / "preferences"))
    frames_a, frames_b = segments(2)
    with pytest.raises(ValueError, match="uint8"):
        queue.post(frames_a.astype(np.float32), frames_b, ["a", "b"])
    with pytest.raises(ValueError, match="one instruction per pair"):
        queue.post(frames_a, frames_b, ["a"])
    assert queue.rounds() == []
