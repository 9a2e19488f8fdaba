"""The durable preference store: round trips, reopening, crashes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rewards.preference_store import INDEX_FILE, PreferencePairs, PreferenceStore

STORE_MODULE = Path(__file__).resolve().parents[1] / "rewards" / "preference_store.py"


def make_pairs(first: int, count: int, steps: int = 3, size: int = 8):
    """Segments whose pixels encode their pair number, so loads can be checked exactly."""
    numbers = np.arange(first, first + count)
    frames_a = np.empty((count, steps, size, size, 3), np.uint8)
    frames_b = np.empty_like(frames_a)
    frames_a[:] = (numbers % 251)[:, None, None, None, None]
    frames_b[:] = ((numbers + 100) % 251)[:, None, None, None, None]
    frames_a[:, :, 0, 0, 0] = np.arange(steps)  # frames within a segment differ too
    labels = (numbers % 3) / 2.0  # 0, 0.5, 1
    return frames_a, frames_b, labels


def check_pairs(pairs: PreferencePairs, count: int) -> None:
    frames_a, frames_b, labels = make_pairs(0, count)
    np.testing.assert_array_equal(pairs.frames_a, frames_a)
    np.testing.assert_array_equal(pairs.frames_b, frames_b)
    np.testing.assert_array_equal(pairs.labels, labels.astype(np.float32))


def test_append_and_load_round_trip(tmp_path):
    store = PreferenceStore(tmp_path / "prefs")
    frames_a, frames_b, labels = make_pairs(0, 4)
    indices = store.append(frames_a, frames_b, labels, "oracle",
                           instructions=["push", "push", "reach", "push"], meta={"round": 1})
    assert indices.tolist() == [0, 1, 2, 3]
    assert len(store) == 4 and store.frame_shape == (3, 8, 8, 3)
    pairs = store.load_all()
    check_pairs(pairs, 4)
    assert pairs.sources == ["oracle"] * 4
    assert pairs.instructions == ["push", "push", "reach", "push"]
    assert [record["meta"] for record in store.records()] == [{"round": 1}] * 4
    assert pairs.frames_a.dtype == np.uint8 and pairs.labels.dtype == np.float32


def test_reopening_continues_the_store_and_filters_by_source(tmp_path):
    folder = tmp_path / "prefs"
    PreferenceStore(folder).append(*make_pairs(0, 3), source="oracle")
    store = PreferenceStore(folder)
    assert len(store) == 3
    assert store.append(*make_pairs(3, 2), source="human").tolist() == [3, 4]
    reopened = PreferenceStore(folder)
    check_pairs(reopened.load_all(), 5)
    human = reopened.load_all(sources=["human"])
    assert human.sources == ["human", "human"]
    np.testing.assert_array_equal(human.frames_a, make_pairs(3, 2)[0])
    assert len(PreferenceStore(tmp_path / "empty").load_all()) == 0


def test_frames_are_stored_compactly(tmp_path):
    store = PreferenceStore(tmp_path)
    frames_a, frames_b, labels = make_pairs(0, 20, steps=10, size=32)
    store.append(frames_a, frames_b, labels, "oracle")
    stored = sum(path.stat().st_size for path in (tmp_path / "batches").iterdir())
    assert stored < (frames_a.nbytes + frames_b.nbytes) / 10  # uint8, compressed


def test_a_torn_last_index_line_is_ignored_and_cut_by_the_next_append(tmp_path):
    store = PreferenceStore(tmp_path)
    store.append(*make_pairs(0, 2), source="oracle")
    with open(tmp_path / INDEX_FILE, "ab") as index:  # a writer died mid-line
        index.write(b'{"batch": "pairs-00000002.npz", "label": 1.0, "pa')
    reopened = PreferenceStore(tmp_path)
    assert len(reopened) == 2
    check_pairs(reopened.load_all(), 2)
    assert reopened.append(*make_pairs(2, 2), source="oracle").tolist() == [2, 3]
    check_pairs(PreferenceStore(tmp_path).load_all(), 4)


def test_a_dead_writers_batch_files_are_ignored_and_replaced(tmp_path):
    store = PreferenceStore(tmp_path)
    store.append(*make_pairs(0, 2), source="oracle")
    # A writer died after writing its frames and before its index lines.
    orphan_a, orphan_b, _ = make_pairs(50, 5)
    np.savez_compressed(tmp_path / "batches" / "pairs-00000002.npz",
                        frames_a=orphan_a, frames_b=orphan_b)
    # ...or while writing them, leaving a temporary file.
    stale = tmp_path / "batches" / ".pairs-00000002.npz.tmp-99999"
    stale.write_bytes(b"half a batch")
    assert len(PreferenceStore(tmp_path)) == 2
    store.append(*make_pairs(2, 1), source="oracle")
    check_pairs(PreferenceStore(tmp_path).load_all(), 3)
    assert not stale.exists()


def test_corruption_gives_clear_errors(tmp_path):
    store = PreferenceStore(tmp_path)
    store.append(*make_pairs(0, 2), source="oracle")
    store.append(*make_pairs(2, 2), source="oracle")
    batch = tmp_path / "batches" / "pairs-00000000.npz"
    batch.write_bytes(batch.read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match="pairs-00000000.npz is corrupt or truncated"):
        PreferenceStore(tmp_path).load_all()
    # Never unpickled: a batch file holding Python objects is refused.
    np.savez(batch, frames_a=np.array([object()], dtype=object), frames_b=np.zeros(1))
    with pytest.raises(ValueError, match="corrupt"):
        PreferenceStore(tmp_path).load_all()
    index = tmp_path / INDEX_FILE
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(lines[0] + b"not json\n" + b"".join(lines[2:]))
    with pytest.raises(ValueError, match="index.jsonl is corrupt"):
        PreferenceStore(tmp_path)


def test_bad_input_is_refused_with_what_is_allowed(tmp_path):
    store = PreferenceStore(tmp_path)
    frames_a, frames_b, labels = make_pairs(0, 2)
    with pytest.raises(ValueError, match="NaN.*skipped"):
        store.append(frames_a, frames_b, np.array([1.0, np.nan]), "oracle")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        store.append(frames_a, frames_b, np.array([1.0, 2.0]), "oracle")
    with pytest.raises(ValueError, match="uint8"):
        store.append(frames_a.astype(np.float32), frames_b, labels, "oracle")
    with pytest.raises(ValueError, match=r"\(N, T, H, W, 3\)"):
        store.append(frames_a[0], frames_b[0], labels, "oracle")
    with pytest.raises(ValueError, match="differ in shape"):
        store.append(frames_a, frames_b[:, :2], labels, "oracle")
    with pytest.raises(ValueError, match="expected 2 labels"):
        store.append(frames_a, frames_b, labels[:1], "oracle")
    with pytest.raises(ValueError, match="source"):
        store.append(frames_a, frames_b, labels, "")
    with pytest.raises(ValueError, match="instruction"):
        store.append(frames_a, frames_b, labels, "oracle", instructions=["only one"])
    with pytest.raises(ValueError, match="JSON"):
        store.append(frames_a, frames_b, labels, "oracle", meta={"x": object()})
    assert len(store) == 0
    store.append(frames_a, frames_b, labels, "oracle")
    other_a, other_b, other_labels = make_pairs(0, 2, steps=4)
    with pytest.raises(ValueError, match="one store per segment length"):
        store.append(other_a, other_b, other_labels, "oracle")
    with pytest.raises(ValueError, match="not a folder"):
        PreferenceStore(tmp_path / INDEX_FILE)


WRITER = textwrap.dedent(
    """
    import importlib.util, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("preference_store", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    sys.modules["preference_store"] = module
    spec.loader.exec_module(module)
    store = module.PreferenceStore(sys.argv[2])
    while True:
        first = len(store)
        count = 1 + first % 3
        numbers = np.arange(first, first + count)
        frames_a = np.empty((count, 3, 8, 8, 3), np.uint8)
        frames_b = np.empty_like(frames_a)
        frames_a[:] = (numbers % 251)[:, None, None, None, None]
        frames_b[:] = ((numbers + 100) % 251)[:, None, None, None, None]
        frames_a[:, :, 0, 0, 0] = np.arange(3)
        store.append(frames_a, frames_b, (numbers % 3) / 2.0, "oracle")
        print(len(store), flush=True)  # only after append returned
    """
)


def test_durable_preference_store_survives_a_killed_writer(tmp_path):
    folder = tmp_path / "prefs"
    acknowledged = 0
    for round_number, appends_before_kill in enumerate((3, 7, 12)):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(STORE_MODULE), str(folder)],
                                  stdout=subprocess.PIPE, text=True)
        seen = 0
        for line in writer.stdout:  # SIGKILL lands wherever the writer is, mid-append or not
            acknowledged = int(line)
            seen += 1
            if seen == appends_before_kill:
                os.kill(writer.pid, signal.SIGKILL)
                break
        acknowledged = max([acknowledged, *map(int, writer.stdout.read().split())])
        writer.wait()
        assert writer.returncode == -signal.SIGKILL, round_number

        store = PreferenceStore(folder)
        assert len(store) >= acknowledged  # every pair whose append returned is there
        check_pairs(store.load_all(), len(store))
    # ...and the store stays appendable, numbering on.
    count = len(store)
    assert store.append(*make_pairs(count, 2), source="human").tolist() == [count, count + 1]
    check_pairs(PreferenceStore(folder).load_all(), count + 2)
    records = PreferenceStore(folder).records()
    assert [record["pair"] for record in records] == list(range(count + 2))
    assert all(json.dumps(record) for record in records)


def test_load_picks_pairs_by_number_in_the_order_asked(tmp_path):
    store = PreferenceStore(tmp_path)
    for first in (0, 3, 5):  # three batches
        store.append(*make_pairs(first, 3 if first == 0 else 2), "oracle")
    wanted = [6, 0, 4]
    pairs = store.load(wanted)
    frames_a, frames_b, labels = make_pairs(0, 7)
    np.testing.assert_array_equal(pairs.frames_a, frames_a[wanted])
    np.testing.assert_array_equal(pairs.frames_b, frames_b[wanted])
    np.testing.assert_array_equal(pairs.labels, labels[wanted].astype(np.float32))
    assert len(store.load([])) == 0
    with pytest.raises(ValueError, match=r"must lie in \[0, 7\)"):
        store.load([7])
    with pytest.raises(ValueError, match="1-D sequence of pair numbers"):
        store.load([[0, 1]])


def test_a_withdrawn_label_leaves_every_reader_but_stays_on_disk(tmp_path):
    folder = tmp_path / "prefs"
    store = PreferenceStore(folder)
    store.append(*make_pairs(0, 4), source="human")
    store.withdraw(1, meta={"labeller": "ada"})
    for reader in (store, PreferenceStore(folder)):  # this writer and a fresh reader
        assert len(reader) == 3
        assert [record["pair"] for record in reader.records()] == [0, 2, 3]
        np.testing.assert_array_equal(reader.load_all().frames_a, make_pairs(0, 4)[0][[0, 2, 3]])
        # Positions count live pairs: position 1 is now pair 2.
        np.testing.assert_array_equal(reader.load([1]).frames_a, make_pairs(2, 1)[0])
    # Appending after a withdrawal keeps numbering by append order.
    assert store.append(*make_pairs(4, 1), source="human").tolist() == [4]
    assert len(PreferenceStore(folder).load_all()) == 4
    assert len((folder / INDEX_FILE).read_text().splitlines()) == 5  # nothing deleted


def test_withdrawing_an_unknown_or_withdrawn_pair_is_refused(tmp_path):
    store = PreferenceStore(tmp_path / "prefs")
    store.append(*make_pairs(0, 2), source="human")
    with pytest.raises(ValueError, match="pair 5 does not exist"):
        store.withdraw(5)
    store.withdraw(0)
    with pytest.raises(ValueError, match="withdrawn already"):
        store.withdraw(0)
    assert len(store) == 1


def test_a_reader_opened_empty_loads_what_another_writer_appended(tmp_path):
    reader = PreferenceStore(tmp_path / "prefs")
    PreferenceStore(tmp_path / "prefs").append(*make_pairs(0, 2), source="human")
    assert reader.frame_shape == (3, 8, 8, 3)
    check_pairs(reader.load_all(), 2)
