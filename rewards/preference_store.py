"""A durable, append-only dataset of labelled segment pairs (preferences).

Labels cost people time (or GPU time for a VLM teacher), so the store never loses a
label whose :meth:`PreferenceStore.append` returned, even if the process is killed
at any instant afterwards or during a later append. A store is a folder::

    store.json                {"format": "vmalign-preferences", "version": 1,
                               "frame_shape": [T, H, W, 3]}
    batches/pairs-00000042.npz  frames_a, frames_b: uint8 (n, T, H, W, 3), compressed
    index.jsonl               one JSON line per pair: its number, batch file, row,
                              label, source, instruction and meta
    withdrawn.jsonl           (only once a label was taken back) one JSON line per
                              withdrawn pair: its number, and why

An append writes its batch file under a temporary name, fsyncs it and renames it
into place (so a batch file is either whole or absent), then appends one index line
per pair in a single write, flushed and fsynced. A pair exists once its index line
does; a crash can therefore leave only (a) a batch file no line refers to, which is
ignored and overwritten by the next append, or (b) a torn last index line, which
loading ignores and the next append cuts off (as it deletes a dead writer's temporary
files). Appends hold an exclusive ``flock`` so
two writers never interleave; the kernel releases it when a writer dies.

Labels are the probability that segment ``a`` is preferred: 1 (a preferred), 0 (b
preferred), 0.5 (equally preferable), or a soft value between.

A label can be taken back (:meth:`PreferenceStore.withdraw`: a person's "undo" on the
labelling page). Nothing is deleted: the pair's number goes into ``withdrawn.jsonl``
and every reader leaves the pair out from then on (``len``, ``records``, ``load``,
``load_all`` count live pairs only), so the store stays append-only.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewards.durable import atomic_write, cut_torn_tail, fsync_folder, read_json_header

FORMAT = "vmalign-preferences"
VERSION = 1
HEADER_FILE = "store.json"
INDEX_FILE = "index.jsonl"
WITHDRAWN_FILE = "withdrawn.jsonl"
BATCH_FOLDER = "batches"


@dataclasses.dataclass
class PreferencePairs:
    """Labelled segment pairs in memory, as :meth:`PreferenceStore.load_all` returns them."""

    frames_a: np.ndarray
    """uint8 (N, T, H, W, 3): the first segment of each pair."""
    frames_b: np.ndarray
    """uint8 (N, T, H, W, 3): the second segment."""
    labels: np.ndarray
    """float32 (N,): probability that segment a is preferred (1, 0, 0.5 or soft)."""
    sources: list[str] = dataclasses.field(default_factory=list)
    """Who labelled each pair (a teacher name such as ``"oracle"``, ``"human"``, ``"clip"``)."""
    instructions: list[str | None] = dataclasses.field(default_factory=list)
    """The instruction each pair was judged against, where known."""

    def __post_init__(self) -> None:
        check_pair_arrays(self.frames_a, self.frames_b, self.labels)
        count = len(self.labels)
        self.labels = np.asarray(self.labels, dtype=np.float32)
        self.sources = list(self.sources) or ["unknown"] * count
        self.instructions = list(self.instructions) or [None] * count
        if len(self.sources) != count or len(self.instructions) != count:
            raise ValueError(f"got {len(self.sources)} sources and {len(self.instructions)} "
                             f"instructions for {count} pairs")

    def __len__(self) -> int:
        return len(self.labels)


def check_pair_arrays(frames_a: Any, frames_b: Any, labels: Any) -> None:
    """Raises ``ValueError`` unless the arrays describe ``N`` labelled segment pairs."""
    for side, frames in (("frames_a", frames_a), ("frames_b", frames_b)):
        if not isinstance(frames, np.ndarray) or frames.ndim != 5 or frames.shape[-1] != 3:
            shape = getattr(frames, "shape", type(frames).__name__)
            raise ValueError(f"{side} must be a uint8 array (N, T, H, W, 3), got {shape}")
        if frames.dtype != np.uint8:
            raise ValueError(f"{side} must be uint8 RGB, got dtype {frames.dtype}")
    if frames_a.shape != frames_b.shape:
        raise ValueError(f"frames_a {frames_a.shape} and frames_b {frames_b.shape} differ in shape")
    labels = np.asarray(labels)
    if labels.shape != (len(frames_a),):
        raise ValueError(f"expected {len(frames_a)} labels, got shape {labels.shape}")
    if np.isnan(labels.astype(np.float64)).any():
        raise ValueError("labels contain NaN (queries the teacher skipped); drop them first, "
                         "e.g. keep = ~np.isnan(labels)")
    if ((labels < 0) | (labels > 1)).any():
        raise ValueError("labels must lie in [0, 1]: 1 = segment a preferred, 0 = b preferred, "
                         f"0.5 = equal; got values from {labels.min()} to {labels.max()}")


class PreferenceStore:
    """An append-only folder of labelled segment pairs; reopening continues it.

    :param folder: the store's folder; created (with its parents) if missing.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"{self.folder} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / BATCH_FOLDER).mkdir(exist_ok=True)
        self._index = self.folder / INDEX_FILE
        self._withdrawn_file = self.folder / WITHDRAWN_FILE
        self._records: list[dict[str, Any]] = []  # every appended pair, withdrawn ones too
        self._offset = 0  # bytes of the index read into _records (whole lines only)
        self._withdrawn: set[int] = set()
        self._live: list[dict[str, Any]] = []
        self._frame_shape = self._read_header()
        self._read_new_records()

    @property
    def frame_shape(self) -> tuple[int, ...] | None:
        """``(T, H, W, 3)`` of every stored segment; None while the store is empty."""
        self._read_new_records()
        return self._frame_shape

    def __len__(self) -> int:
        """The pairs stored and not withdrawn."""
        self._read_new_records()
        return len(self._live)

    def records(self) -> list[dict[str, Any]]:
        """The index entries (number, label, source, instruction, meta) without frames,
        of the pairs not withdrawn, in the order they were appended."""
        self._read_new_records()
        return [dict(record) for record in self._live]

    def withdraw(self, pair: int, meta: dict[str, Any] | None = None) -> None:
        """Takes back the label of pair number ``pair`` (as :meth:`append` returned it,
        or a record's ``"pair"``): durable when this returns, as an append is.

        :param meta: JSON-serialisable facts kept with the withdrawal (who, when).
        :raises ValueError: the pair does not exist or is withdrawn already.
        """
        line = json.dumps({"pair": int(pair), "meta": dict(meta or {})}, sort_keys=True) + "\n"
        with open(self._index, "a+b") as index:
            fcntl.flock(index.fileno(), fcntl.LOCK_EX)
            self._read_new_records()
            if not 0 <= int(pair) < len(self._records):
                raise ValueError(f"pair {pair} does not exist: the store has pairs numbered "
                                 f"0..{len(self._records) - 1}")
            if int(pair) in self._withdrawn:
                raise ValueError(f"pair {pair} is withdrawn already")
            with open(self._withdrawn_file, "a+b") as withdrawn:
                cut_torn_tail(withdrawn)
                withdrawn.seek(0, os.SEEK_END)
                withdrawn.write(line.encode())
                withdrawn.flush()
                os.fsync(withdrawn.fileno())
            fsync_folder(self.folder)
            self._read_new_records()

    def append(
        self,
        frames_a: np.ndarray,
        frames_b: np.ndarray,
        labels: np.ndarray | Sequence[float],
        source: str,
        instructions: Sequence[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Stores ``N`` labelled pairs durably; returns their numbers (int64 (N,)).

        :param frames_a: uint8 (N, T, H, W, 3), the first segment of each pair.
        :param frames_b: uint8 (N, T, H, W, 3), the second segment.
        :param labels: (N,) in [0, 1]: 1 = a preferred, 0 = b preferred, 0.5 = equal.
            Skipped queries (NaN) are refused: drop them first.
        :param source: who labelled the pairs, e.g. ``"oracle"``, ``"human"``, ``"clip"``.
        :param instructions: one instruction per pair, or None.
        :param meta: JSON-serialisable facts recorded with every pair of this batch
            (teacher parameters, query method, episode ids...).
        """
        check_pair_arrays(frames_a, frames_b, labels)
        labels = np.asarray(labels, dtype=np.float32)
        count = len(labels)
        if not isinstance(source, str) or not source:
            raise ValueError(f"source must be a non-empty string naming the labeller, got {source!r}")
        if instructions is not None:
            instructions = list(instructions)
            if len(instructions) != count or not all(isinstance(t, str) for t in instructions):
                raise ValueError(f"expected {count} instruction strings, got {instructions!r:.200}")
        meta = dict(meta or {})
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as error:
            raise ValueError(f"meta must be JSON-serialisable: {error}") from error
        if count == 0:
            return np.zeros(0, dtype=np.int64)

        with open(self._index, "a+b") as index:
            fcntl.flock(index.fileno(), fcntl.LOCK_EX)  # released on close, or by the kernel
            # An append that never returned: the writer holding the lock now knows no
            # live writer is halfway through it.
            cut_torn_tail(index)
            self._remove_stale_temporaries()
            self._read_new_records()
            self._check_or_write_header(tuple(frames_a.shape[1:]))
            first = len(self._records)
            batch = f"pairs-{first:08d}.npz"
            atomic_write(
                self.folder / BATCH_FOLDER / batch,
                lambda handle: np.savez_compressed(handle, frames_a=frames_a, frames_b=frames_b),
            )
            fsync_folder(self.folder / BATCH_FOLDER)
            lines = [
                {
                    "pair": first + row,
                    "batch": batch,
                    "row": row,
                    "label": float(labels[row]),
                    "source": source,
                    "instruction": None if instructions is None else instructions[row],
                    "meta": meta,
                }
                for row in range(count)
            ]
            text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
            index.seek(0, os.SEEK_END)
            index.write(text.encode())
            index.flush()
            os.fsync(index.fileno())
            fsync_folder(self.folder)
            self._read_new_records()
        return np.arange(first, first + count, dtype=np.int64)

    def load_all(self, sources: Sequence[str] | None = None) -> PreferencePairs:
        """Every stored pair (or those whose source is in ``sources``), in order."""
        self._read_new_records()
        records = self._live
        if sources is not None:
            wanted = set(sources)
            records = [record for record in records if record["source"] in wanted]
        return self._load_records(records)

    def load(self, pairs: Sequence[int] | np.ndarray) -> PreferencePairs:
        """The stored pairs at positions ``pairs`` of :meth:`records` (0 is the first
        appended; withdrawn pairs hold no position), in that order.

        Reads only the batches those pairs are in: an online loop that trains on a
        sample of a large store need not hold all of it in memory.
        """
        self._read_new_records()
        numbers = np.asarray(pairs)
        if numbers.ndim != 1 or (numbers.size and not np.issubdtype(numbers.dtype, np.integer)):
            raise ValueError(f"pairs must be a 1-D sequence of pair numbers, got {pairs!r}")
        if numbers.size and (numbers.min() < 0 or numbers.max() >= len(self._live)):
            raise ValueError(f"pair numbers must lie in [0, {len(self._live)}): the store "
                             f"holds {len(self._live)} pairs; got {numbers.min()}..{numbers.max()}")
        return self._load_records([self._live[number] for number in numbers.tolist()])

    # -- internals -------------------------------------------------------------------

    def _load_records(self, records: list[dict[str, Any]]) -> PreferencePairs:
        """The pairs of ``records`` in their order, each batch file read once."""
        shape = self._frame_shape or (0, 0, 0, 3)
        frames_a = np.empty((len(records), *shape), dtype=np.uint8)
        frames_b = np.empty_like(frames_a)
        by_batch: dict[str, list[tuple[int, int]]] = {}
        for position, record in enumerate(records):
            by_batch.setdefault(record["batch"], []).append((position, record["row"]))
        for batch, rows in by_batch.items():
            stored_a, stored_b = self._read_batch(batch)
            positions = [position for position, _ in rows]
            indices = [row for _, row in rows]
            if max(indices) >= len(stored_a):
                raise ValueError(f"{batch} holds {len(stored_a)} pairs but the index refers to "
                                 f"row {max(indices)}: the store is corrupt")
            frames_a[positions] = stored_a[indices]
            frames_b[positions] = stored_b[indices]
        return PreferencePairs(
            frames_a=frames_a,
            frames_b=frames_b,
            labels=np.array([record["label"] for record in records], dtype=np.float32),
            sources=[record["source"] for record in records],
            instructions=[record["instruction"] for record in records],
        )

    def _read_batch(self, batch: str) -> tuple[np.ndarray, np.ndarray]:
        path = self.folder / BATCH_FOLDER / batch
        try:
            with np.load(path, allow_pickle=False) as data:  # never unpickle
                return data["frames_a"], data["frames_b"]
        except FileNotFoundError as error:
            raise ValueError(f"{path} is missing but the index refers to it: the store "
                             f"is corrupt") from error
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise ValueError(f"{path} is corrupt or truncated: {error}") from error

    def _read_header(self) -> tuple[int, ...] | None:
        path = self.folder / HEADER_FILE
        if not path.exists():
            return None
        header = read_json_header(path, FORMAT, VERSION, "a vmalign preference store header")
        return tuple(header["frame_shape"])

    def _check_or_write_header(self, frame_shape: tuple[int, ...]) -> None:
        if self._frame_shape is None:
            self._frame_shape = self._read_header()  # another writer may have made it
        if self._frame_shape is None:
            text = json.dumps({"format": FORMAT, "version": VERSION,
                               "frame_shape": list(frame_shape)}, indent=2)
            atomic_write(self.folder / HEADER_FILE, lambda handle: handle.write(text.encode()))
            fsync_folder(self.folder)
            self._frame_shape = frame_shape
        elif tuple(self._frame_shape) != frame_shape:
            raise ValueError(f"this store holds segments of shape (T, H, W, 3) = "
                             f"{tuple(self._frame_shape)}; got {frame_shape}. Use one store "
                             f"per segment length and image size")

    def _read_new_records(self) -> None:
        """Parses whole index lines written since the last call; a torn last line (no
        newline yet: a writer died, or is still writing) is left unread. Then the
        withdrawals, and which pairs are live."""
        appended = len(self._records)
        self._read_index()
        if self._frame_shape is None and self._records:
            self._frame_shape = self._read_header()  # another writer made the first append
        withdrawn = self._read_withdrawn()
        if len(self._records) != appended or withdrawn != self._withdrawn:
            self._withdrawn = withdrawn
            self._live = [r for r in self._records if r["pair"] not in withdrawn]

    def _read_withdrawn(self) -> set[int]:
        if not self._withdrawn_file.exists():
            return set()
        data = self._withdrawn_file.read_bytes()
        withdrawn = set()
        for line in data[:data.rfind(b"\n") + 1].splitlines():
            try:
                withdrawn.add(int(json.loads(line)["pair"]))
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError,
                    ValueError) as error:
                raise ValueError(f"{self._withdrawn_file} is corrupt: {error}") from error
        return withdrawn

    def _read_index(self) -> None:
        if not self._index.exists():
            return
        with open(self._index, "rb") as index:
            index.seek(self._offset)
            data = index.read()
        end = data.rfind(b"\n") + 1
        for number, line in enumerate(data[:end].splitlines()):
            try:
                record = json.loads(line)
                expected = len(self._records)
                if record["pair"] != expected:
                    raise ValueError(f"pair number {record['pair']}, expected {expected}")
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError,
                    ValueError) as error:
                raise ValueError(f"{self._index} is corrupt near byte {self._offset}, "
                                 f"line {number + 1} after it: {error}") from error
            self._records.append(record)
        self._offset += end

    def _remove_stale_temporaries(self) -> None:
        """Deletes temporary files of writers that died mid-write (under the lock, no
        live writer has one)."""
        for folder in (self.folder, self.folder / BATCH_FOLDER):
            for path in folder.glob(".*.tmp-*"):
                path.unlink(missing_ok=True)
